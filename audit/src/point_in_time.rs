//! `mini-xdr rebuild --org ORG --until T|SEQ --into SCHEMA`: an org's read models as they
//! were at a point of its log, built into a schema of their own for inspection, without
//! touching the live read models or their checkpoints.
//!
//! How: create `SCHEMA` with a copy of every read-model table (`LIKE live.t INCLUDING ALL`)
//! and its own `projection_checkpoints`, then run the ordinary projections (the same code as
//! the live projector) over the org's events `org_seq ≤ cut`, on connections whose
//! `search_path` is `SCHEMA, live`. The projections write unqualified table names, so their
//! rows and checkpoints land in `SCHEMA`; `event_log`, `org_heads` and `xdr_redact` exist
//! only in the live schema and are read from there. Before projecting, every table name is
//! checked to resolve into `SCHEMA`, so nothing can fall through to a live table.
//!
//! The schema is owned by the connecting role and has neither row-level security (`LIKE`
//! copies no policies; it holds one org only) nor grants to the app role: it is for the
//! auditor, who reads it as that role (or grants `USAGE`/`SELECT` to whom they choose).

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Executor, PgPool};
use std::time::{Duration, Instant};
use uuid::Uuid;
use xdr_commands::store;
use xdr_domain::ids::OrgId;

use crate::replay::Position;
pub use xdr_projections::rebuild::quote_ident;
use xdr_projections::rebuild::{all_tables, digest_scoped, REBUILD_BATCH};
use xdr_projections::runner::{catch_up_org_until, ProjectionError};

/// Every schema made here carries a comment starting with this; `--replace` only ever drops
/// a schema that has it, so a typo cannot drop somebody's data.
pub const SCHEMA_COMMENT: &str = "mini-xdr point-in-time read models";

#[derive(Debug, thiserror::Error)]
pub enum PointInTimeError {
    #[error("organization {0} has no events: nothing to rebuild")]
    UnknownOrg(Uuid),
    #[error("{0}")]
    BadCut(String),
    #[error(
        "invalid schema name {0:?}: use lower-case letters, digits and _ (not starting with a digit or pg_, \
         at most 63 characters), other than the live schema"
    )]
    BadSchemaName(String),
    #[error(
        "schema {schema:?} already exists and holds {objects} table(s), view(s), sequence(s) or function(s); \
         choose another name, or pass --replace to drop and rebuild it"
    )]
    SchemaExists { schema: String, objects: i64 },
    #[error(
        "schema {0:?} was not made by `rebuild --into` (its comment does not say so); refusing to drop it — \
         drop it yourself if you mean to"
    )]
    NotOurs(String),
    #[error("table {table} resolves to schema {found:?}, not {schema:?}; refusing to project into it")]
    Leak { table: String, found: String, schema: String },
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    #[error("database error during the point-in-time rebuild: {0}")]
    Database(#[from] sqlx::Error),
    #[error("cannot read the log for the point-in-time rebuild: {0}")]
    Store(#[from] xdr_commands::StoreError),
    #[error(transparent)]
    Connect(#[from] xdr_commands::db::DbError),
}

/// Where the log is cut: the last `org_seq` included and when it was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    pub seq: i64,
    pub recorded_at: DateTime<Utc>,
    /// The org's head when the cut was resolved.
    pub head: i64,
}

#[derive(Debug, Clone)]
pub struct PointInTimeReport {
    pub org: OrgId,
    pub schema: String,
    pub cut: Cut,
    pub events: u64,
    pub elapsed: Duration,
    /// [`digest_scoped`] of the schema for this org.
    pub digest: String,
}

/// Accept only names an inspector can type unquoted, and never the live schema.
pub fn check_schema_name(name: &str, live: &str) -> Result<(), PointInTimeError> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    let reserved = name.starts_with("pg_") || ["public", "information_schema", live].contains(&name);
    if !first_ok || !rest_ok || name.len() > 63 || reserved {
        return Err(PointInTimeError::BadSchemaName(name.to_owned()));
    }
    Ok(())
}

/// The last event to include. A time cuts at the longest prefix of the log recorded at or
/// before it: `(first org_seq recorded after T) − 1`. (`recorded_at` is the appending
/// server's clock, so with clocks that disagree it need not grow with `org_seq`; a prefix
/// is what "the log as it was at T" can mean, and with agreeing clocks it is simply the
/// last event recorded at or before T.)
pub async fn resolve_cut(pool: &PgPool, org: OrgId, until: Option<Position>) -> Result<Cut, PointInTimeError> {
    let head = store::head_of(pool, org.0).await?.map(|(seq, _)| seq);
    let head = head.filter(|h| *h > 0).ok_or(PointInTimeError::UnknownOrg(org.0))?;
    let seq = match until {
        None => head,
        Some(Position::Seq(s)) if s < 1 => {
            return Err(PointInTimeError::BadCut(format!("--until {s}: an org_seq starts at 1")));
        }
        Some(Position::Seq(s)) if s > head => {
            return Err(PointInTimeError::BadCut(format!("--until {s}: org {} has only {head} events", org.0)));
        }
        Some(Position::Seq(s)) => s,
        Some(Position::Time(t)) => {
            let first_after = store::first_seq_recorded_after(pool, org, t).await?;
            let seq = first_after.map_or(head, |f| (f - 1).min(head));
            if seq < 1 {
                let first = store::recorded_at(pool, org, 1).await?;
                return Err(PointInTimeError::BadCut(format!(
                    "--until {}: org {} has no event recorded at or before that time (its first was recorded at {})",
                    t.to_rfc3339(),
                    org.0,
                    first.map_or_else(|| "?".to_owned(), |f| f.to_rfc3339())
                )));
            }
            seq
        }
    };
    let recorded_at: DateTime<Utc> = store::recorded_at(pool, org, seq).await?.ok_or_else(|| {
        PointInTimeError::BadCut(format!("org {} has no event at org_seq {seq} below its head {head}", org.0))
    })?;
    Ok(Cut { seq, recorded_at, head })
}

/// Build the org's read models as of `until` (its head when `None`) into `schema`.
/// `replace` drops a schema an earlier `rebuild --into` made; any other existing, non-empty
/// schema is refused. `on_batch` gets the events of each committed batch (progress bars).
pub async fn rebuild_into(
    options: &PgConnectOptions,
    org: OrgId,
    until: Option<Position>,
    schema: &str,
    replace: bool,
    on_batch: impl FnMut(u64) + Send,
) -> Result<PointInTimeReport, PointInTimeError> {
    let live = xdr_commands::db::owner_pool(options, 2).await?;
    let live_schema: String = sqlx::query_scalar("SELECT current_schema()").fetch_one(&live).await?;
    check_schema_name(schema, &live_schema)?;
    let cut = resolve_cut(&live, org, until).await?;
    prepare_schema(&live, schema, &live_schema, replace, org, cut.seq).await?;

    // The projections' unqualified names resolve into the new schema first, then the live
    // one (event_log, org_heads, xdr_redact).
    let search_path = format!("{}, {}", quote_ident(schema), quote_ident(&live_schema));
    let scoped = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(move |conn, _meta| {
            let set = format!("SET search_path TO {search_path}");
            Box::pin(async move {
                conn.execute(set.as_str()).await?;
                Ok(())
            })
        })
        .connect_with(options.clone())
        .await?;
    check_resolution(&scoped, schema).await?;

    let start = Instant::now();
    let events =
        catch_up_org_until(&scoped, org, xdr_projections::models::ALL, REBUILD_BATCH, Some(cut.seq), on_batch).await?;
    let elapsed = start.elapsed();
    scoped.close().await;
    let digest = digest_scoped(&live, Some(schema), Some(org)).await?;
    live.close().await;
    Ok(PointInTimeReport { org, schema: schema.to_owned(), cut, events, elapsed, digest })
}

/// Create `schema` with empty copies of every read-model table and a checkpoint table, in
/// one transaction (a failure leaves nothing half made).
async fn prepare_schema(
    live: &PgPool,
    schema: &str,
    live_schema: &str,
    replace: bool,
    org: OrgId,
    cut: i64,
) -> Result<(), PointInTimeError> {
    let mut tx = live.begin().await?;
    let existing: Option<(i64, Option<String>)> = sqlx::query_as(
        "SELECT (SELECT count(*) FROM pg_class WHERE relnamespace = n.oid AND relkind IN ('r', 'p', 'v', 'm', 'f', 'S')) \
              + (SELECT count(*) FROM pg_proc WHERE pronamespace = n.oid), \
                obj_description(n.oid, 'pg_namespace') \
         FROM pg_namespace n WHERE nspname = $1",
    )
    .bind(schema)
    .fetch_optional(&mut *tx)
    .await?;
    let q = quote_ident(schema);
    match existing {
        None => {}
        Some((0, _)) => {
            tx.execute(format!("DROP SCHEMA {q}").as_str()).await?;
        }
        Some((objects, comment)) => {
            if !replace {
                return Err(PointInTimeError::SchemaExists { schema: schema.to_owned(), objects });
            }
            if !comment.is_some_and(|c| c.starts_with(SCHEMA_COMMENT)) {
                return Err(PointInTimeError::NotOurs(schema.to_owned()));
            }
            tx.execute(format!("DROP SCHEMA {q} CASCADE").as_str()).await?;
        }
    }
    tx.execute(format!("CREATE SCHEMA {q}").as_str()).await?;
    let comment = format!("{SCHEMA_COMMENT}: org {} up to org_seq {cut}", org.0);
    tx.execute(format!("COMMENT ON SCHEMA {q} IS '{}'", comment.replace('\'', "''")).as_str()).await?;
    let live_q = quote_ident(live_schema);
    // Table names come from the compiled-in projections, never from input.
    for table in all_tables().iter().map(|t| t.name).chain(["projection_checkpoints", "projection_quarantine"]) {
        tx.execute(format!("CREATE TABLE {q}.{table} (LIKE {live_q}.{table} INCLUDING ALL)").as_str()).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Every table the projections write must resolve into `schema` on the scoped connection.
async fn check_resolution(scoped: &PgPool, schema: &str) -> Result<(), PointInTimeError> {
    for table in all_tables().iter().map(|t| t.name).chain(["projection_checkpoints", "projection_quarantine"]) {
        let found: Option<String> = sqlx::query_scalar(
            "SELECT n.nspname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.oid = to_regclass($1)",
        )
        .bind(table)
        .fetch_optional(scoped)
        .await?;
        let found = found.unwrap_or_default();
        if found != schema {
            return Err(PointInTimeError::Leak { table: table.to_owned(), found, schema: schema.to_owned() });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_lower_case_names_other_than_the_live_schema_are_accepted() {
        for ok in ["audit_2026", "_x", "s"] {
            assert!(check_schema_name(ok, "public").is_ok(), "{ok}");
        }
        for bad in ["", "public", "live", "pg_temp", "Audit", "a-b", "1abc", "a\"b", "information_schema"] {
            assert!(check_schema_name(bad, "live").is_err(), "{bad}");
        }
        assert!(check_schema_name(&"a".repeat(64), "public").is_err());
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
