//! The event store: append-only, per-org hash-chained log on PostgreSQL.
//!
//! Every append takes the org's `org_heads` row `FOR UPDATE`, so within one org appends are
//! serialized: `org_seq` is gap-free, the chain links in commit order, and a reader that
//! sees `last_seq = N` can read every event ≤ N (see `subscription`).
//!
//! Every org-scoped read and append runs in a transaction scoped to its org
//! (`app.org_id`), so the store works unchanged for the API's login, which row-level
//! security confines to that org, and for the workers' login, which sees all orgs.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgPool, Postgres, Row, Transaction};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;
use xdr_domain::ids::OrgId;
use xdr_domain::{Event, EventMetadata};

use crate::db::{begin_org_tx, set_org};
use append::{drop_known_ids, is_duplicate_event_id, lock_head, stream_versions, write_rows};
use chain::ChainRow;

/// Columns selected whenever full rows are read (the order [`LogRow`] and `jsonl` rely on).
macro_rules! event_columns {
    () => {
        "org_id, org_seq, stream_id, stream_version, event_id, event_type, schema_version, payload, metadata, \
         recorded_at, hash"
    };
}

/// The `FROM` clause of a projection statement that reads the log in SQL (`Apply::Sql`):
/// the org's rows in an `org_seq` range, `$1` the org and `($2, $3]` the range. The one
/// place outside this module where SQL names the log: such a statement runs inside the
/// projector's own transaction, together with its checkpoint, and copies high-volume rows
/// without sending them to the client and back.
#[macro_export]
macro_rules! org_log_range {
    () => {
        "event_log WHERE org_id = $1 AND org_seq > $2 AND org_seq <= $3"
    };
}

mod append;
pub mod chain;
mod jsonl;
mod queries;
mod scan;

pub use queries::*;
pub use scan::{count, count_by_type, last_link, scan, scan_all, LogFilter, LogRow};

/// Channel on which every commit announces `"<org_id>:<last_seq>"`.
pub const NOTIFY_CHANNEL: &str = "xdr_event_log";

/// What the caller believes the stream's version to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// No check (telemetry, idempotent system facts).
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last event must have exactly this version.
    Exact(i64),
}

impl ExpectedVersion {
    /// Whether a stream at `actual` may take the append.
    fn admits(self, actual: i64) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual == 0,
            ExpectedVersion::Exact(v) => actual == v,
        }
    }
}

/// An event ready to be appended.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// Idempotency key: appending an id that is already in the org's log is a no-op.
    pub event_id: Uuid,
    pub stream_id: String,
    pub event_type: String,
    pub schema_version: i32,
    pub payload: Value,
    pub metadata: Value,
}

impl NewEvent {
    pub fn from_event(event_id: Uuid, stream_id: impl Into<String>, event: &Event, metadata: &EventMetadata) -> Self {
        let (event_type, payload) = event.to_parts();
        NewEvent {
            event_id,
            stream_id: stream_id.into(),
            event_type: event_type.to_owned(),
            schema_version: event.schema_version(),
            payload,
            metadata: serde_json::to_value(metadata).expect("metadata always serializes"),
        }
    }
}

/// A row of the log.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoredEvent {
    pub org_id: Uuid,
    pub org_seq: i64,
    pub stream_id: String,
    pub stream_version: i64,
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: i32,
    pub payload: Value,
    pub metadata: Value,
    pub recorded_at: DateTime<Utc>,
    #[serde(with = "hex_bytes")]
    pub hash: Vec<u8>,
}

impl StoredEvent {
    /// Decode into the domain's event enum.
    pub fn event(&self) -> Result<Event, String> {
        Event::from_parts(&self.event_type, &self.payload)
    }

    pub fn metadata(&self) -> EventMetadata {
        serde_json::from_value(self.metadata.clone()).unwrap_or_default()
    }

    /// The chain link recomputed from this row's columns.
    pub fn expected_hash(&self, prev_hash: &[u8]) -> [u8; 32] {
        let payload = chain::canonical_json(&self.payload);
        let metadata = chain::canonical_json(&self.metadata);
        chain::link_hash(
            prev_hash,
            &ChainRow {
                org_id: self.org_id,
                org_seq: self.org_seq,
                stream_id: &self.stream_id,
                stream_version: self.stream_version,
                event_id: self.event_id,
                event_type: &self.event_type,
                schema_version: self.schema_version,
                payload: &payload,
                metadata: &metadata,
                recorded_at: self.recorded_at,
            },
        )
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(s).map_err(serde::de::Error::custom)
    }
}

/// Outcome of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Events actually written (duplicates of existing `event_id`s are skipped).
    pub written: usize,
    /// The org's head after the append: read models caught up to this have seen it.
    pub last_seq: i64,
    /// For single-stream appends, the stream's version after the append.
    pub stream_version: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Optimistic concurrency: somebody appended to the stream first. Reload and decide again.
    #[error("stream {stream_id} is at version {actual}, expected {expected:?}")]
    Conflict { stream_id: String, expected: ExpectedVersion, actual: i64 },
    #[error("invalid append: {0}")]
    Invalid(String),
    #[error("event store database error: {0}")]
    Database(#[from] sqlx::Error),
}

const EVENT_COLUMNS: &str = event_columns!();

fn row_to_event(row: &sqlx::postgres::PgRow) -> Result<StoredEvent, sqlx::Error> {
    Ok(StoredEvent {
        org_id: row.try_get("org_id")?,
        org_seq: row.try_get("org_seq")?,
        stream_id: row.try_get("stream_id")?,
        stream_version: row.try_get("stream_version")?,
        event_id: row.try_get("event_id")?,
        event_type: row.try_get("event_type")?,
        schema_version: row.try_get("schema_version")?,
        payload: row.try_get("payload")?,
        metadata: row.try_get("metadata")?,
        recorded_at: row.try_get("recorded_at")?,
        hash: row.try_get("hash")?,
    })
}

#[derive(Clone)]
pub struct EventStore {
    pool: PgPool,
}

impl EventStore {
    pub fn new(pool: PgPool) -> Self {
        EventStore { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Append events to one aggregate stream with an optimistic concurrency check.
    ///
    /// Re-appending events whose ids are all already stored is a successful no-op, so a
    /// retried command never writes twice.
    pub async fn append(
        &self,
        org: OrgId,
        stream_id: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Appended, StoreError> {
        if let Some(e) = events.iter().find(|e| e.stream_id != stream_id) {
            return Err(StoreError::Invalid(format!(
                "event {} targets stream {} inside an append to {stream_id}",
                e.event_id, e.stream_id
            )));
        }
        let mut tx = self.pool.begin().await?;
        let outcome = self.append_in_tx(&mut tx, org, stream_id, expected, events).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// Like [`append`](Self::append) inside a caller's transaction, so a command can commit
    /// its events together with a uniqueness reservation (e-mail, slug) or not at all. Scopes
    /// the transaction to `org` (`app.org_id`) first, so the reservation the caller writes
    /// after it must be `org`'s too.
    pub async fn append_in_tx(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        org: OrgId,
        stream_id: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Appended, StoreError> {
        set_org(tx, org).await?;
        let (mut last_seq, prev_hash) = lock_head(tx, org).await?;
        let fresh = drop_known_ids(tx, org, events).await?;
        let actual = stream_versions(tx, org, &[stream_id.to_owned()]).await?.get(stream_id).copied().unwrap_or(0);
        if fresh.is_empty() {
            return Ok(Appended { written: 0, last_seq, stream_version: actual });
        }
        if !expected.admits(actual) {
            return Err(StoreError::Conflict { stream_id: stream_id.to_owned(), expected, actual });
        }
        let mut versions = HashMap::from([(stream_id.to_owned(), actual)]);
        let written = fresh.len();
        let head = write_rows(tx, org, last_seq, &prev_hash, &mut versions, &fresh).await?;
        last_seq = head;
        Ok(Appended { written, last_seq, stream_version: versions[stream_id] })
    }

    /// Append telemetry in one batch: one head lock, one multi-row INSERT. Events may target any
    /// streams; each stream's versions continue from its current version. Duplicates of
    /// stored (or repeated) `event_id`s are skipped.
    pub async fn append_batch(&self, org: OrgId, events: Vec<NewEvent>) -> Result<Appended, StoreError> {
        let mut tx = self.pool.begin().await?;
        let outcome = self.append_batch_in_tx(&mut tx, org, events).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// Like [`append_batch`](Self::append_batch) inside a caller's transaction.
    pub async fn append_batch_in_tx(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        org: OrgId,
        events: Vec<NewEvent>,
    ) -> Result<Appended, StoreError> {
        set_org(tx, org).await?;
        let (last_seq, prev_hash) = lock_head(tx, org).await?;
        let mut seen = HashSet::with_capacity(events.len());
        let events: Vec<NewEvent> = events.into_iter().filter(|e| seen.insert(e.event_id)).collect();
        if events.is_empty() {
            return Ok(Appended { written: 0, last_seq, stream_version: 0 });
        }
        let streams: Vec<String> =
            events.iter().map(|e| e.stream_id.clone()).collect::<HashSet<_>>().into_iter().collect();
        let versions = stream_versions(tx, org, &streams).await?;
        // Redeliveries are rare: write optimistically and let the unique index find a
        // duplicate, instead of probing the index for every id of every batch up front.
        sqlx::query("SAVEPOINT xdr_append_batch").execute(&mut **tx).await?;
        match write_rows(tx, org, last_seq, &prev_hash, &mut versions.clone(), &events).await {
            Ok(head) => {
                sqlx::query("RELEASE SAVEPOINT xdr_append_batch").execute(&mut **tx).await?;
                Ok(Appended { written: events.len(), last_seq: head, stream_version: 0 })
            }
            Err(e) if is_duplicate_event_id(&e) => {
                sqlx::query("ROLLBACK TO SAVEPOINT xdr_append_batch").execute(&mut **tx).await?;
                let fresh = drop_known_ids(tx, org, events).await?;
                if fresh.is_empty() {
                    return Ok(Appended { written: 0, last_seq, stream_version: 0 });
                }
                let head = write_rows(tx, org, last_seq, &prev_hash, &mut versions.clone(), &fresh).await?;
                Ok(Appended { written: fresh.len(), last_seq: head, stream_version: 0 })
            }
            Err(e) => Err(e),
        }
    }

    /// Append events to several aggregate streams of one org in one transaction, each stream
    /// with its own concurrency check (`expected`; every event's stream must be listed):
    /// the whole batch commits or none of it. Events whose ids are already stored are
    /// skipped, and a stream left with nothing fresh is not checked, so a redelivered batch
    /// is a successful no-op. `Appended::stream_version` is 0 (there are several streams).
    pub async fn append_streams(
        &self,
        org: OrgId,
        expected: &[(String, ExpectedVersion)],
        events: Vec<NewEvent>,
    ) -> Result<Appended, StoreError> {
        let expected: HashMap<&str, ExpectedVersion> = expected.iter().map(|(s, v)| (s.as_str(), *v)).collect();
        if let Some(e) = events.iter().find(|e| !expected.contains_key(e.stream_id.as_str())) {
            return Err(StoreError::Invalid(format!(
                "event {} targets stream {}, which the append does not check",
                e.event_id, e.stream_id
            )));
        }
        let mut tx = self.pool.begin().await?;
        set_org(&mut tx, org).await?;
        let (last_seq, prev_hash) = lock_head(&mut tx, org).await?;
        let fresh = drop_known_ids(&mut tx, org, events).await?;
        if fresh.is_empty() {
            tx.commit().await?;
            return Ok(Appended { written: 0, last_seq, stream_version: 0 });
        }
        let touched: Vec<String> =
            fresh.iter().map(|e| e.stream_id.clone()).collect::<HashSet<_>>().into_iter().collect();
        let mut versions = stream_versions(&mut tx, org, &touched).await?;
        for stream_id in &touched {
            let actual = versions.get(stream_id).copied().unwrap_or(0);
            let wanted = expected[stream_id.as_str()];
            if !wanted.admits(actual) {
                return Err(StoreError::Conflict { stream_id: stream_id.clone(), expected: wanted, actual });
            }
        }
        let written = fresh.len();
        let head = write_rows(&mut tx, org, last_seq, &prev_hash, &mut versions, &fresh).await?;
        tx.commit().await?;
        Ok(Appended { written, last_seq: head, stream_version: 0 })
    }

    /// All events of several streams, in (stream, version) order, in one round trip.
    pub async fn read_streams(&self, org: OrgId, stream_ids: &[String]) -> Result<Vec<StoredEvent>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM event_log WHERE org_id = $1 AND stream_id = ANY($2) \
             ORDER BY stream_id, stream_version"
        );
        let mut tx = begin_org_tx(&self.pool, org).await?;
        let rows = sqlx::query(&sql).bind(org.0).bind(stream_ids).fetch_all(&mut *tx).await?;
        tx.commit().await?;
        rows.iter().map(row_to_event).collect::<Result<_, _>>().map_err(Into::into)
    }

    /// Whether the database answers a trivial query: tells a failure of one write (poison)
    /// from the database being away.
    pub async fn answers(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// All events of one stream, in version order.
    pub async fn read_stream(&self, org: OrgId, stream_id: &str) -> Result<Vec<StoredEvent>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM event_log WHERE org_id = $1 AND stream_id = $2 ORDER BY stream_version"
        );
        let mut tx = begin_org_tx(&self.pool, org).await?;
        let rows = sqlx::query(&sql).bind(org.0).bind(stream_id).fetch_all(&mut *tx).await?;
        tx.commit().await?;
        rows.iter().map(row_to_event).collect::<Result<_, _>>().map_err(Into::into)
    }

    /// The events of one stream after `after_version`, in version order, read on `conn` (a
    /// caller's transaction): the tail a snapshot at `after_version` still needs.
    pub async fn read_stream_after(
        conn: &mut PgConnection,
        org: OrgId,
        stream_id: &str,
        after_version: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM event_log WHERE org_id = $1 AND stream_id = $2 AND stream_version > $3 \
             ORDER BY stream_version"
        );
        let rows = sqlx::query(&sql).bind(org.0).bind(stream_id).bind(after_version).fetch_all(&mut *conn).await?;
        rows.iter().map(row_to_event).collect::<Result<_, _>>().map_err(Into::into)
    }

    /// Up to `limit` events of the org with `org_seq > after_seq`, in order.
    pub async fn read_org(&self, org: OrgId, after_seq: i64, limit: i64) -> Result<Vec<StoredEvent>, StoreError> {
        read_org_with(&self.pool, org, after_seq, i64::MAX, limit).await
    }

    /// The org's head: `(last_seq, last_hash)`, or `None` before its first event.
    pub async fn head(&self, org: OrgId) -> Result<Option<(i64, Vec<u8>)>, StoreError> {
        let mut tx = begin_org_tx(&self.pool, org).await?;
        let row = sqlx::query("SELECT last_seq, last_hash FROM org_heads WHERE org_id = $1")
            .bind(org.0)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(match row {
            Some(r) => Some((r.try_get("last_seq")?, r.try_get("last_hash")?)),
            None => None,
        })
    }

    /// Every org that has a log, with its head sequence (all orgs for the workers' login; the
    /// API's login sees none outside an org-scoped transaction).
    pub async fn org_heads(&self) -> Result<Vec<(OrgId, i64)>, StoreError> {
        let rows = sqlx::query("SELECT org_id, last_seq FROM org_heads ORDER BY org_id").fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok((OrgId(r.try_get("org_id")?), r.try_get("last_seq")?))).collect()
    }
}

/// Events with `after < org_seq <= until`, at most `limit`, in order.
pub async fn read_org_with(
    pool: &PgPool,
    org: OrgId,
    after_seq: i64,
    until_seq: i64,
    limit: i64,
) -> Result<Vec<StoredEvent>, StoreError> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM event_log \
         WHERE org_id = $1 AND org_seq > $2 AND org_seq <= $3 ORDER BY org_seq LIMIT $4"
    );
    let mut tx = begin_org_tx(pool, org).await?;
    let rows = sqlx::query(&sql).bind(org.0).bind(after_seq).bind(until_seq).bind(limit).fetch_all(&mut *tx).await?;
    tx.commit().await?;
    rows.iter().map(row_to_event).collect::<Result<_, _>>().map_err(Into::into)
}

/// The org's events at the given `org_seq`s (those that exist), in `org_seq` order: one
/// index lookup per seq in one round trip, for consumers that check a batch of messages
/// against the log.
pub async fn read_org_seqs(pool: &PgPool, org: OrgId, seqs: &[i64]) -> Result<Vec<StoredEvent>, StoreError> {
    let sql = format!("SELECT {EVENT_COLUMNS} FROM event_log WHERE org_id = $1 AND org_seq = ANY($2) ORDER BY org_seq");
    let mut tx = begin_org_tx(pool, org).await?;
    let rows = sqlx::query(&sql).bind(org.0).bind(seqs).fetch_all(&mut *tx).await?;
    tx.commit().await?;
    rows.iter().map(row_to_event).collect::<Result<_, _>>().map_err(Into::into)
}
