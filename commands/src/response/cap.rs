//! The per-org cap on automatic blocks: which automatic blocks were requested recently.
//!
//! Read from `rm_actions` (indexed by `(org_id, requested_at)`), so every detector replica
//! sees the others' blocks once the projector has caught up — typically well under a second.
//! The caller adds the blocks it requested itself that the read model may not show yet; the
//! remaining gap (two replicas deciding within the projector's lag) can overshoot the cap by
//! the number of replicas, which is the documented approximation.

use chrono::{DateTime, Utc};
use xdr_domain::ids::{ActionId, OrgId};

use crate::store::{EventStore, StoreError};

/// Automatic blocks that went out without approval, requested in `(since, until]`. Blocks a
/// policy asked for but the safety rails refused (failed before any attempt) do not count.
pub async fn recent_automatic_blocks(
    store: &EventStore,
    org: OrgId,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<ActionId>, StoreError> {
    let mut tx = store.pool().begin().await?;
    // Row-level security: the read model shows only the org named in the transaction.
    sqlx::query("SELECT set_config('app.org_id', $1, true)").bind(org.0.to_string()).execute(&mut *tx).await?;
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
