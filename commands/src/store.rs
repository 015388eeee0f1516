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

use crate::chain::{self, ChainRow, GENESIS_HASH, MAX_JSON_DEPTH};
use crate::db::{begin_org_tx, set_org};

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

/// Columns selected whenever full rows are read.
pub const EVENT_COLUMNS: &str = "org_id, org_seq, stream_id, stream_version, event_id, event_type, \
     schema_version, payload, metadata, recorded_at, hash";

pub fn row_to_event(row: &sqlx::postgres::PgRow) -> Result<StoredEvent, sqlx::Error> {
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

/// Take the org's head row lock, creating the head on the org's first append (only then:
/// the insert runs the heads guard, which looks at the log).
async fn lock_head(conn: &mut PgConnection, org: OrgId) -> Result<(i64, Vec<u8>), StoreError> {
    let select = "SELECT last_seq, last_hash FROM org_heads WHERE org_id = $1 FOR UPDATE";
    let row = match sqlx::query(select).bind(org.0).fetch_optional(&mut *conn).await? {
        Some(row) => row,
        None => {
            sqlx::query(
                "INSERT INTO org_heads (org_id, last_seq, last_hash) VALUES ($1, 0, $2) ON CONFLICT DO NOTHING",
            )
            .bind(org.0)
            .bind(&GENESIS_HASH[..])
            .execute(&mut *conn)
            .await?;
            sqlx::query(select).bind(org.0).fetch_one(&mut *conn).await?
        }
    };
    Ok((row.try_get("last_seq")?, row.try_get("last_hash")?))
}

/// Remove events whose id is already stored or repeated earlier in the same batch.
/// Runs under the head lock, so a concurrent append of the same id has committed by now.
async fn drop_known_ids(
    conn: &mut PgConnection,
    org: OrgId,
    events: Vec<NewEvent>,
) -> Result<Vec<NewEvent>, StoreError> {
    if events.is_empty() {
        return Ok(events);
    }
    let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
    let known: HashSet<Uuid> =
        sqlx::query_scalar("SELECT event_id FROM event_log WHERE org_id = $1 AND event_id = ANY($2)")
            .bind(org.0)
            .bind(&ids)
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .collect();
    let mut seen = HashSet::with_capacity(events.len());
    Ok(events.into_iter().filter(|e| !known.contains(&e.event_id) && seen.insert(e.event_id)).collect())
}

/// Current version of each stream (absent = 0), one index probe per stream.
async fn stream_versions(
    conn: &mut PgConnection,
    org: OrgId,
    streams: &[String],
) -> Result<HashMap<String, i64>, StoreError> {
    let rows = sqlx::query(
        "SELECT s.stream_id, (SELECT max(stream_version) FROM event_log e \
           WHERE e.org_id = $1 AND e.stream_id = s.stream_id) AS version \
         FROM unnest($2::text[]) AS s(stream_id)",
    )
    .bind(org.0)
    .bind(streams)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            let v: Option<i64> = r.try_get("version")?;
            Ok((r.try_get::<String, _>("stream_id")?, v.unwrap_or(0)))
        })
        .collect()
}

/// Number the events, link the chain, insert the rows, advance the head and announce it.
///
/// One `INSERT … SELECT FROM unnest(…)` per batch: row-level security (which the API's login
/// is subject to) does not allow `COPY FROM`, and a handful of array parameters cost about
/// the same as COPY's text stream (docs/BENCHMARKS.md, "Append").
async fn write_rows(
    conn: &mut PgConnection,
    org: OrgId,
    mut last_seq: i64,
    prev_hash: &[u8],
    versions: &mut HashMap<String, i64>,
    events: &[NewEvent],
) -> Result<i64, StoreError> {
    let mut prev_hash = prev_hash.to_vec();
    let recorded_at = chain::to_db_precision(Utc::now());
    let mut rows = Columns::with_capacity(events.len());
    for e in events {
        last_seq += 1;
        let version = versions.entry(e.stream_id.clone()).or_insert(0);
        *version += 1;
        let payload = canonical_nul_free(&e.payload).ok_or_else(|| too_deep(e, "payload"))?;
        let metadata = canonical_nul_free(&e.metadata).ok_or_else(|| too_deep(e, "metadata"))?;
        let hash = chain::link_hash(
            &prev_hash,
            &ChainRow {
                org_id: org.0,
                org_seq: last_seq,
                stream_id: &e.stream_id,
                stream_version: *version,
                event_id: e.event_id,
                event_type: &e.event_type,
                schema_version: e.schema_version,
                payload: &payload,
                metadata: &metadata,
                recorded_at,
            },
        );
        rows.org_seq.push(last_seq);
        rows.stream_id.push(e.stream_id.as_str());
        rows.stream_version.push(*version);
        rows.event_id.push(e.event_id);
        rows.event_type.push(e.event_type.as_str());
        rows.schema_version.push(e.schema_version);
        rows.payload.push(payload);
        rows.metadata.push(metadata);
        rows.hash.push(hash.to_vec());
        prev_hash = hash.to_vec();
    }
    sqlx::query(
        "INSERT INTO event_log (org_id, org_seq, stream_id, stream_version, event_id, event_type, \
           schema_version, payload, metadata, recorded_at, hash) \
         SELECT $1, r.org_seq, r.stream_id, r.stream_version, r.event_id, r.event_type, r.schema_version, \
                r.payload::jsonb, r.metadata::jsonb, $2, r.hash \
         FROM unnest($3::bigint[], $4::text[], $5::bigint[], $6::uuid[], $7::text[], $8::integer[], \
                     $9::text[], $10::text[], $11::bytea[]) \
           AS r(org_seq, stream_id, stream_version, event_id, event_type, schema_version, payload, metadata, hash)",
    )
    .bind(org.0)
    .bind(recorded_at)
    .bind(&rows.org_seq)
    .bind(&rows.stream_id)
    .bind(&rows.stream_version)
    .bind(&rows.event_id)
    .bind(&rows.event_type)
    .bind(&rows.schema_version)
    .bind(&rows.payload)
    .bind(&rows.metadata)
    .bind(&rows.hash)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE org_heads SET last_seq = $2, last_hash = $3 WHERE org_id = $1")
        .bind(org.0)
        .bind(last_seq)
        .bind(&prev_hash)
        .execute(&mut *conn)
        .await?;
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(NOTIFY_CHANNEL)
        .bind(format!("{}:{last_seq}", org.0))
        .execute(&mut *conn)
        .await?;
    Ok(last_seq)
}

/// A batch of rows, column by column, as the array parameters of the INSERT.
struct Columns<'a> {
    org_seq: Vec<i64>,
    stream_id: Vec<&'a str>,
    stream_version: Vec<i64>,
    event_id: Vec<Uuid>,
    event_type: Vec<&'a str>,
    schema_version: Vec<i32>,
    payload: Vec<String>,
    metadata: Vec<String>,
    hash: Vec<Vec<u8>>,
}

impl Columns<'_> {
    fn with_capacity(n: usize) -> Self {
        Columns {
            org_seq: Vec::with_capacity(n),
            stream_id: Vec::with_capacity(n),
            stream_version: Vec::with_capacity(n),
            event_id: Vec::with_capacity(n),
            event_type: Vec::with_capacity(n),
            schema_version: Vec::with_capacity(n),
            payload: Vec::with_capacity(n),
            metadata: Vec::with_capacity(n),
            hash: Vec::with_capacity(n),
        }
    }
}

fn is_duplicate_event_id(e: &StoreError) -> bool {
    match e {
        StoreError::Database(sqlx::Error::Database(db)) => {
            db.code().as_deref() == Some("23505") && db.constraint().is_some_and(|c| c.contains("event_id"))
        }
        _ => false,
    }
}

/// Canonical JSON of a value, with U+0000 scrubbed; `None` when it nests too deeply to be
/// read back. NUL is rare and always serializes as `\u0000`, so the text is searched instead
/// of walking (or copying) every value first.
fn canonical_nul_free(value: &Value) -> Option<String> {
    let text = chain::canonical_json_within(value, MAX_JSON_DEPTH)?;
    if text.contains("\\u0000") {
        chain::canonical_json_within(&without_nul(value.clone()), MAX_JSON_DEPTH)
    } else {
        Some(text)
    }
}

fn too_deep(e: &NewEvent, column: &str) -> StoreError {
    StoreError::Invalid(format!(
        "event {} ({}): {column} nests JSON deeper than {MAX_JSON_DEPTH} levels",
        e.event_id, e.event_type
    ))
}

/// `jsonb` cannot store U+0000; producers do send it. Replace it with U+FFFD before hashing,
/// so one hostile byte cannot fail a whole batch and the stored value still hashes the same.
fn without_nul(mut value: Value) -> Value {
    fn scrub(v: &mut Value) {
        match v {
            Value::String(s) if s.contains('\0') => *s = s.replace('\0', "\u{fffd}"),
            Value::Array(items) => items.iter_mut().for_each(scrub),
            Value::Object(map) => {
                let keys: Vec<String> = map.keys().filter(|k| k.contains('\0')).cloned().collect();
                for k in keys {
                    if let Some(inner) = map.remove(&k) {
                        map.insert(k.replace('\0', "\u{fffd}"), inner);
                    }
                }
                map.values_mut().for_each(scrub);
            }
            _ => {}
        }
    }
    scrub(&mut value);
    value
}

#[cfg(test)]
mod tests {
    use super::{canonical_nul_free, without_nul};

    #[test]
    fn nul_characters_are_replaced_in_keys_and_values() {
        let v = serde_json::json!({"a\0": ["x\0y", {"b": "\0"}]});
        assert_eq!(without_nul(v.clone()), serde_json::json!({"a\u{fffd}": ["x\u{fffd}y", {"b": "\u{fffd}"}]}));
        assert_eq!(canonical_nul_free(&v), Some(crate::chain::canonical_json(&without_nul(v.clone()))));
        let literal = serde_json::json!({"a": "\\u0000 is not a NUL"});
        assert_eq!(canonical_nul_free(&literal), Some(crate::chain::canonical_json(&literal)));
    }
}
