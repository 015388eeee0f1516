//! What the response loop asks of the actions read model (`models::actions`): which actions
//! are due for the scheduler, and which automatic blocks were requested recently (the
//! per-org cap). The write side reads no read-model table itself; it asks here.

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use sqlx::{PgPool, Row};
use xdr_commands::response::scheduler::{DueAction, DueActions, DueReason};
use xdr_commands::StoreError;
use xdr_domain::ids::{ActionId, OrgId};

use crate::tenant::begin_org_tx;

/// The scheduler's queue (`action_schedule`): a system table across orgs, holding only ids
/// and due times, which the actions projection fills from the times the events carry.
#[derive(Clone)]
pub struct ActionSchedule {
    pool: PgPool,
}

impl ActionSchedule {
    pub fn new(pool: PgPool) -> Self {
        ActionSchedule { pool }
    }

    /// Up to `limit` actions due at `now`, the longest overdue first.
    pub async fn due_at(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<DueAction>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT org_id, action_id, reason FROM action_schedule WHERE due_at <= $1 ORDER BY due_at LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut due = Vec::with_capacity(rows.len());
        for row in rows {
            let (org, action) = (OrgId(row.try_get("org_id")?), ActionId(row.try_get("action_id")?));
            let reason: String = row.try_get("reason")?;
            match DueReason::parse(&reason) {
                Some(reason) => due.push(DueAction { org, action, reason }),
                None => tracing::warn!(%org, %action, reason, "unknown schedule reason"),
            }
        }
        Ok(due)
    }
}

impl DueActions for ActionSchedule {
    fn due(&self, now: DateTime<Utc>, limit: i64) -> BoxFuture<'_, Result<Vec<DueAction>, StoreError>> {
        Box::pin(async move { Ok(self.due_at(now, limit).await?) })
    }
}

/// Automatic blocks that went out without approval, requested in `(since, until]`. Blocks a
/// policy asked for but the safety rails refused (failed before any attempt) do not count.
///
/// Read from `rm_actions` (indexed by `(org_id, requested_at)`), so every detector replica
/// sees the others' blocks once the projector has caught up — typically well under a second.
/// The caller adds the blocks it requested itself that the read model may not show yet; the
/// remaining gap (two replicas deciding within the projector's lag) can overshoot the cap by
/// the number of replicas, which is the documented approximation.
pub async fn recent_automatic_blocks(
    pool: &PgPool,
    org: OrgId,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<ActionId>, sqlx::Error> {
    // Row-level security: the read model shows only the org named in the transaction.
    let mut tx = begin_org_tx(pool, org).await?;
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT action_id FROM rm_actions \
         WHERE org_id = $1 AND requested_at > $2 AND requested_at <= $3 \
           AND kind = 'block_ip' AND automatic AND NOT needs_approval \
           AND NOT (status = 'failed' AND attempts = 0)",
    )
    .bind(org.0)
    .bind(since)
    .bind(until)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(ids.into_iter().map(ActionId).collect())
}
