//! Quarantined events: what the runner could not project, and projecting them again.
//!
//! When a batch fails on an event's data, the runner isolates the event (see
//! `runner::apply_isolating`), records it in `projection_quarantine` (projection, `org_seq`,
//! event type, error) and moves the checkpoint past it in the same transaction, so one bad
//! event never stops an org. This module lists those entries (the CLI, GraphQL) and re-projects
//! them after a fix ([`retry`]): the affected projection of the affected org is cleared and
//! replayed from the start, so the result is exactly what a `rebuild` would give — a
//! quarantined event applied late could otherwise land out of order in a read model whose
//! rows depend on order (`last_seq` guards).

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;
use xdr_domain::ids::OrgId;

use crate::rebuild::{select, RebuildError, REBUILD_BATCH};
use crate::runner::catch_up_org;
use crate::tenant::begin_org_tx;

/// One quarantined event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantinedEvent {
    pub org_id: Uuid,
    pub projection: String,
    pub org_seq: i64,
    pub event_type: String,
    pub error: String,
    pub quarantined_at: DateTime<Utc>,
}

/// A page of one org's quarantined events, newest `org_seq` first (then by projection),
/// strictly after `after` = `(org_seq, projection)` of the previous page's last entry.
/// `conn` must be in a transaction scoped to `org` (row-level security).
pub async fn list_org(
    conn: &mut PgConnection,
    org: OrgId,
    after: Option<(i64, &str)>,
    limit: i64,
) -> Result<Vec<QuarantinedEvent>, sqlx::Error> {
    let rows: Vec<(Uuid, String, i64, String, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT org_id, projection, org_seq, event_type, error, quarantined_at FROM projection_quarantine \
         WHERE org_id = $1 AND ($2::bigint IS NULL OR org_seq < $2 OR (org_seq = $2 AND projection > $3)) \
         ORDER BY org_seq DESC, projection LIMIT $4",
    )
    .bind(org.0)
    .bind(after.map(|a| a.0))
    .bind(after.map(|a| a.1))
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(org_id, projection, org_seq, event_type, error, quarantined_at)| QuarantinedEvent {
            org_id,
            projection,
            org_seq,
            event_type,
            error,
            quarantined_at,
        })
        .collect())
}

/// Orgs with at least one quarantined event (from the checkpoints' counts: no tenant rows).
async fn orgs_with_quarantine(pool: &PgPool, org: Option<OrgId>) -> Result<Vec<OrgId>, sqlx::Error> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT DISTINCT org_id FROM projection_checkpoints \
         WHERE quarantined > 0 AND ($1::uuid IS NULL OR org_id = $1) ORDER BY org_id",
    )
    .bind(org.map(|o| o.0))
    .fetch_all(pool)
    .await?;
    Ok(ids.into_iter().map(OrgId).collect())
}

/// Every quarantined event, of one org or of all, in (org, `org_seq`) order. Reads each org
/// in its own scoped transaction, so it works under row-level security as any role.
pub async fn list(pool: &PgPool, org: Option<OrgId>) -> Result<Vec<QuarantinedEvent>, sqlx::Error> {
    let mut all = Vec::new();
    for org in orgs_with_quarantine(pool, org).await? {
        let mut tx = begin_org_tx(pool, org).await?;
        let mut page = list_org(&mut tx, org, None, i64::MAX).await?;
        tx.commit().await?;
        page.reverse();
        all.extend(page);
    }
    Ok(all)
}

/// Per projection, how many events are quarantined across all orgs (the `/metrics` gauge).
/// Reads only the checkpoints' counts, never tenant rows.
pub async fn counts(pool: &PgPool) -> Result<Vec<(String, i64)>, sqlx::Error> {
    // A SECURITY DEFINER function: the API's login may not read other orgs' checkpoints.
    sqlx::query_as("SELECT projection, quarantined FROM xdr_quarantine_counts()").fetch_all(pool).await
}

/// What [`retry`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetryReport {
    /// The (org, projection) pairs that were re-projected.
    pub reprojected: Vec<(OrgId, &'static str)>,
    /// Quarantined events before and after.
    pub before: i64,
    pub after: i64,
    /// Events replayed.
    pub events: u64,
}

/// Re-project every (org, projection) with quarantined events — of one org and/or one
/// projection when given: in one org-scoped transaction, delete the org's rows of that
/// projection, its quarantine entries and its checkpoint (back to 0), then replay the org's
/// log into it. Events that still fail are quarantined again, with today's error. Deleting
/// read-model rows is the schema owner's right, like `rebuild`'s TRUNCATE.
pub async fn retry(pool: &PgPool, org: Option<OrgId>, projection: Option<&str>) -> Result<RetryReport, RebuildError> {
    let chosen = select(projection)?;
    let names: Vec<&str> = chosen.iter().map(|p| p.name).collect();
    let pairs: Vec<(Uuid, String, i64)> = sqlx::query_as(
        "SELECT org_id, projection, quarantined FROM projection_checkpoints \
         WHERE quarantined > 0 AND ($1::uuid IS NULL OR org_id = $1) AND projection = ANY($2) \
         ORDER BY org_id, projection",
    )
    .bind(org.map(|o| o.0))
    .bind(&names)
    .fetch_all(pool)
    .await?;
    let mut report = RetryReport::default();
    for (org_id, name, quarantined) in pairs {
        let org = OrgId(org_id);
        let Some(p) = chosen.iter().find(|p| p.name == name) else { continue };
        let mut tx = begin_org_tx(pool, org).await?;
        // Waits for a live runner's batch on this org, which holds the checkpoint rows.
        sqlx::query("SELECT 1 FROM projection_checkpoints WHERE org_id = $1 AND projection = $2 FOR UPDATE")
            .bind(org.0)
            .bind(p.name)
            .execute(&mut *tx)
            .await?;
        for table in p.tables {
            // Table names come from the compiled-in projections, never from input.
            sqlx::query(&format!("DELETE FROM {} WHERE org_id = $1", table.name)).bind(org.0).execute(&mut *tx).await?;
        }
        sqlx::query("DELETE FROM projection_quarantine WHERE org_id = $1 AND projection = $2")
            .bind(org.0)
            .bind(p.name)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE projection_checkpoints SET last_seq = 0, quarantined = 0 WHERE org_id = $1 AND projection = $2",
        )
        .bind(org.0)
        .bind(p.name)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let one = select(Some(p.name))?;
        report.events += catch_up_org(pool, org, &one, REBUILD_BATCH, |_| {}).await?;
        report.before += quarantined;
        report.reprojected.push((org, p.name));
        let now: i64 =
            sqlx::query_scalar("SELECT quarantined FROM projection_checkpoints WHERE org_id = $1 AND projection = $2")
                .bind(org.0)
                .bind(p.name)
                .fetch_one(pool)
                .await?;
        report.after += now;
    }
    Ok(report)
}
