//! `mini-xdr rebuild`: clear read models and their checkpoints, replay the whole log into
//! them, and print a digest of the result.
//!
//! The digest is SHA-256 over every read-model row in a fixed order (org, table name,
//! primary key) in PostgreSQL's text form with `TimeZone = UTC`, so two databases built
//! from the same log — by one rebuild, by two, or by live projection in any batch sizes —
//! give the same digest.

use sha2::{Digest, Sha256};
use sqlx::PgPool;
use std::time::{Duration, Instant};
use uuid::Uuid;
use xdr_domain::ids::OrgId;

use crate::models;
use crate::runner::{catch_up_with, Projection, ProjectionError, ReadModelTable};
use crate::tenant::begin_org_tx;

/// Events per transaction while rebuilding (bigger than the live runner's: nobody waits).
pub const REBUILD_BATCH: i64 = 25_000;

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("no projection named {name:?}; known: {known}")]
    UnknownProjection { name: String, known: String },
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    #[error(
        "database error during rebuild: {0} (rebuild clears tables with TRUNCATE, which only the schema owner may do)"
    )]
    Database(#[from] sqlx::Error),
}

#[derive(Debug, Clone)]
pub struct RebuildReport {
    pub projections: Vec<&'static str>,
    pub events: u64,
    pub elapsed: Duration,
    pub digest: String,
}

/// Projections to rebuild: all, or the one named.
pub fn select(only: Option<&str>) -> Result<Vec<Projection>, RebuildError> {
    let all = models::ALL;
    match only {
        None => Ok(all.to_vec()),
        Some(name) => {
            let known = all.iter().map(|p| p.name).collect::<Vec<_>>().join(", ");
            let chosen: Vec<Projection> = all.iter().filter(|p| p.name == name).copied().collect();
            if chosen.is_empty() {
                return Err(RebuildError::UnknownProjection { name: name.to_owned(), known });
            }
            Ok(chosen)
        }
    }
}

/// Total events in the log (the progress bar's length).
pub async fn log_length(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let n: Option<i64> = sqlx::query_scalar("SELECT sum(last_seq)::bigint FROM org_heads").fetch_one(pool).await?;
    Ok(n.unwrap_or(0) as u64)
}

/// Clear the chosen projections' tables and checkpoints in one transaction (a concurrent
/// projector waits, then starts them again from zero), then replay every org's log.
/// `on_batch` gets the number of events of each committed batch.
pub async fn rebuild(
    pool: &PgPool,
    only: Option<&str>,
    on_batch: impl FnMut(u64) + Send,
) -> Result<RebuildReport, RebuildError> {
    let projections = select(only)?;
    let start = Instant::now();
    clear(pool, &projections).await?;
    let done = catch_up_with(pool, &projections, REBUILD_BATCH, on_batch).await?;
    let elapsed = start.elapsed();
    Ok(RebuildReport {
        projections: projections.iter().map(|p| p.name).collect(),
        events: done.events,
        elapsed,
        digest: digest(pool).await?,
    })
}

/// Empty the projections' tables and forget their checkpoints, in one transaction.
pub async fn clear(pool: &PgPool, projections: &[Projection]) -> Result<(), sqlx::Error> {
    let names: Vec<&str> = projections.iter().map(|p| p.name).collect();
    let tables: Vec<&str> = projections.iter().flat_map(|p| p.tables.iter().map(|t| t.name)).collect();
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM projection_checkpoints WHERE projection = ANY($1)").bind(&names).execute(&mut *tx).await?;
    // Table names come from the compiled-in projections, never from input.
    sqlx::query(&format!("TRUNCATE {}", tables.join(", "))).execute(&mut *tx).await?;
    // The replay quarantines again whatever still fails. Row-level security hides the
    // entries from a non-superuser owner too, hence org by org (the same transaction).
    let orgs: Vec<Uuid> =
        sqlx::query_scalar("SELECT org_id FROM org_heads ORDER BY org_id").fetch_all(&mut *tx).await?;
    for org in orgs {
        crate::tenant::set_org(&mut tx, OrgId(org)).await?;
        sqlx::query("DELETE FROM projection_quarantine WHERE org_id = $1 AND projection = ANY($2)")
            .bind(org)
            .bind(&names)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}

/// `"name"` with embedded quotes doubled: an identifier that is safe to splice into SQL.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Every read-model table, sorted by name.
pub fn all_tables() -> Vec<ReadModelTable> {
    let mut tables: Vec<ReadModelTable> = models::ALL.iter().flat_map(|p| p.tables.to_vec()).collect();
    tables.sort_by_key(|t| t.name);
    tables
}

/// SHA-256 (hex) over the content of every read model. Reads org by org inside an
/// org-scoped transaction, so it works as the app role under row-level security too.
pub async fn digest(pool: &PgPool) -> Result<String, sqlx::Error> {
    digest_scoped(pool, None, None).await
}

/// [`digest`] of the read models in `schema` (e.g. one made by `rebuild --into`) instead of
/// the live ones, and/or of one org only. The digest of one org equals the whole-database
/// digest of a database that holds only that org, so a point-in-time schema can be compared
/// with a rebuild of a log that really ends there.
pub async fn digest_scoped(pool: &PgPool, schema: Option<&str>, org: Option<OrgId>) -> Result<String, sqlx::Error> {
    use futures::TryStreamExt;
    let orgs: Vec<Uuid> = match org {
        Some(org) => vec![org.0],
        None => sqlx::query_scalar("SELECT org_id FROM org_heads ORDER BY org_id").fetch_all(pool).await?,
    };
    // Qualified, so a table missing from `schema` is an error rather than the live one.
    let prefix = schema.map(|s| format!("{}.", quote_ident(s))).unwrap_or_default();
    let tables = all_tables();
    let mut hasher = Sha256::new();
    for org in orgs {
        let mut tx = begin_org_tx(pool, OrgId(org)).await?;
        sqlx::query("SET LOCAL TimeZone = 'UTC'").execute(&mut *tx).await?;
        sqlx::query("SET LOCAL DateStyle = 'ISO, YMD'").execute(&mut *tx).await?;
        sqlx::query("SET LOCAL IntervalStyle = 'postgres'").execute(&mut *tx).await?;
        sqlx::query("SET LOCAL extra_float_digits = 3").execute(&mut *tx).await?;
        for t in &tables {
            hasher.update(format!("\u{1}{org}\u{1}{}\n", t.name).as_bytes());
            // Also filtered explicitly: a superuser connection bypasses row-level security.
            let sql = format!("SELECT r::text FROM {prefix}{} r WHERE r.org_id = $1 ORDER BY {}", t.name, t.order_by);
            let mut rows = sqlx::query_scalar::<_, String>(&sql).bind(org).fetch(&mut *tx);
            while let Some(row) = rows.try_next().await? {
                hasher.update(row.as_bytes());
                hasher.update(b"\n");
            }
        }
        // Quarantined events are part of the result (a rebuild must quarantine the same
        // ones with the same errors), but not when: `quarantined_at` is left out. Hashed only
        // when there are any, so a clean database keeps the digest it had before quarantine.
        let sql = format!(
            "SELECT concat_ws(E'\\x1f', projection, org_seq::text, event_type, error) FROM {prefix}projection_quarantine \
             WHERE org_id = $1 ORDER BY projection, org_seq"
        );
        let quarantined: Vec<String> = sqlx::query_scalar(&sql).bind(org).fetch_all(&mut *tx).await?;
        if !quarantined.is_empty() {
            hasher.update(format!("\u{1}{org}\u{1}projection_quarantine\n").as_bytes());
            for row in quarantined {
                hasher.update(row.as_bytes());
                hasher.update(b"\n");
            }
        }
        tx.commit().await?;
    }
    Ok(hex::encode(hasher.finalize()))
}
