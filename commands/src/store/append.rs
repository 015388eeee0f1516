//! Appending: the head lock, idempotency by event id, stream versions, the chain link and the
//! multi-row INSERT. Private to the store; `EventStore::append*` are the doors.

use chrono::Utc;
use serde_json::Value;
use sqlx::{PgConnection, Row};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;
use xdr_domain::ids::OrgId;

use super::chain::{self, ChainRow, GENESIS_HASH, MAX_JSON_DEPTH};
use super::{NewEvent, StoreError, NOTIFY_CHANNEL};

/// Take the org's head row lock, creating the head on the org's first append (only then:
/// the insert runs the heads guard, which looks at the log).
pub(super) async fn lock_head(conn: &mut PgConnection, org: OrgId) -> Result<(i64, Vec<u8>), StoreError> {
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
pub(super) async fn drop_known_ids(
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
pub(super) async fn stream_versions(
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
pub(super) async fn write_rows(
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

pub(super) fn is_duplicate_event_id(e: &StoreError) -> bool {
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
        assert_eq!(canonical_nul_free(&v), Some(super::chain::canonical_json(&without_nul(v.clone()))));
        let literal = serde_json::json!({"a": "\\u0000 is not a NUL"});
        assert_eq!(canonical_nul_free(&literal), Some(super::chain::canonical_json(&literal)));
    }
}
