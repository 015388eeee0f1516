//! Catch-up subscription to one org's log: every committed event exactly once, in `org_seq`
//! order, never skipping one that commits late.
//!
//! Why this is gap-safe: `org_seq` is assigned under the org's head row lock and committed
//! with the head, so when a reader sees `org_heads.last_seq = N`, every event ≤ N is already
//! visible. The tail reads the head first and then only events ≤ head. (A `bigserial`
//! cursor would skip a low sequence number whose transaction commits after a higher one.)
//! LISTEN/NOTIFY only wakes the tail early; a missed notification costs one poll interval.

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use std::time::Duration;
use xdr_domain::ids::OrgId;

use crate::store::{read_org_with, NOTIFY_CHANNEL};
use crate::{StoreError, StoredEvent};

/// Tails one org's log from a cursor.
pub struct OrgTail {
    pool: PgPool,
    org: OrgId,
    cursor: i64,
    listener: Option<PgListener>,
    poll_interval: Duration,
}

impl OrgTail {
    /// Start after `after_seq` (0 = from the beginning).
    pub async fn new(pool: PgPool, org: OrgId, after_seq: i64) -> Result<Self, StoreError> {
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.listen(NOTIFY_CHANNEL).await?;
        Ok(OrgTail {
            pool,
            org,
            cursor: after_seq,
            listener: Some(listener),
            poll_interval: Duration::from_millis(500),
        })
    }

    /// Poll only, without a LISTEN connection (for short-lived readers).
    pub fn polling(pool: PgPool, org: OrgId, after_seq: i64, poll_interval: Duration) -> Self {
        OrgTail { pool, org, cursor: after_seq, listener: None, poll_interval }
    }

    /// Sequence number of the last event handed out.
    pub fn cursor(&self) -> i64 {
        self.cursor
    }

    /// Events committed since the cursor, at most `max`, without waiting. Empty when caught up.
    pub async fn poll(&mut self, max: i64) -> Result<Vec<StoredEvent>, StoreError> {
        let mut tx = crate::db::begin_org_tx(&self.pool, self.org).await?;
        let head: Option<i64> = sqlx::query_scalar("SELECT last_seq FROM org_heads WHERE org_id = $1")
            .bind(self.org.0)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        let head = head.unwrap_or(0);
        if head <= self.cursor {
            return Ok(Vec::new());
        }
        let events = read_org_with(&self.pool, self.org, self.cursor, head, max).await?;
        // The head said these exist; a hole here would be a broken invariant, not a race.
        for (i, e) in events.iter().enumerate() {
            let expected = self.cursor + 1 + i as i64;
            if e.org_seq != expected {
                return Err(StoreError::Invalid(format!(
                    "org {} log has a gap: expected org_seq {expected}, found {}",
                    self.org, e.org_seq
                )));
            }
        }
        if let Some(last) = events.last() {
            self.cursor = last.org_seq;
        }
        Ok(events)
    }

    /// Wait until at least one new event is committed and return up to `max` of them.
    pub async fn next_batch(&mut self, max: i64) -> Result<Vec<StoredEvent>, StoreError> {
        loop {
            let events = self.poll(max).await?;
            if !events.is_empty() {
                return Ok(events);
            }
            self.wait().await;
        }
    }

    /// Sleep until a notification for this org arrives or the poll interval passes.
    async fn wait(&mut self) {
        let Some(listener) = self.listener.as_mut() else {
            tokio::time::sleep(self.poll_interval).await;
            return;
        };
        let org_prefix = format!("{}:", self.org);
        let deadline = tokio::time::Instant::now() + self.poll_interval;
        loop {
            match tokio::time::timeout_at(deadline, listener.recv()).await {
                Ok(Ok(n)) if n.payload().starts_with(&org_prefix) => return,
                Ok(Ok(_)) => continue,
                // A broken listener reconnects on the next recv; fall back to polling meanwhile.
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "event log listener failed; polling");
                    tokio::time::sleep_until(deadline).await;
                    return;
                }
                Err(_elapsed) => return,
            }
        }
    }
}
