//! The per-org hash chain: `hash = SHA-256(prev_hash ‖ canonical bytes of the row)`.
//!
//! Canonical bytes are a length-prefixed encoding of every column, so no two different rows
//! share an encoding. JSON is hashed in serde_json's compact form with sorted keys — the
//! same form whether the value came from a command or back out of `jsonb`.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Hash of the empty chain that precedes an org's first event.
pub const GENESIS_HASH: [u8; 32] = [0u8; 32];

/// The columns that the chain covers.
pub struct ChainRow<'a> {
    pub org_id: Uuid,
    pub org_seq: i64,
    pub stream_id: &'a str,
    pub stream_version: i64,
    pub event_id: Uuid,
    pub event_type: &'a str,
    pub schema_version: i32,
    /// Canonical JSON text of the payload (see [`canonical_json`]).
    pub payload: &'a str,
    /// Canonical JSON text of the metadata.
    pub metadata: &'a str,
    pub recorded_at: DateTime<Utc>,
}

/// Canonical JSON text: compact, object keys sorted by their bytes at every depth.
///
/// Sorted explicitly rather than relying on serde_json's map type, because any crate in the
/// build enabling `preserve_order` would otherwise silently change every hash.
pub fn canonical_json(value: &serde_json::Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Truncate to what `timestamptz` stores, so the hashed time equals the stored one.
pub fn to_db_precision(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).expect("micros round-trip")
}

fn put_str(h: &mut Sha256, s: &str) {
    h.update((s.len() as u64).to_be_bytes());
    h.update(s.as_bytes());
}

/// `SHA-256(prev_hash ‖ canonical(row))`.
pub fn link_hash(prev_hash: &[u8], row: &ChainRow<'_>) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev_hash);
    h.update(row.org_id.as_bytes());
    h.update(row.org_seq.to_be_bytes());
    put_str(&mut h, row.stream_id);
    h.update(row.stream_version.to_be_bytes());
    h.update(row.event_id.as_bytes());
    put_str(&mut h, row.event_type);
    h.update(row.schema_version.to_be_bytes());
    put_str(&mut h, row.payload);
    put_str(&mut h, row.metadata);
    h.update(row.recorded_at.timestamp_micros().to_be_bytes());
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row<'a>(payload: &'a str) -> ChainRow<'a> {
        ChainRow {
            org_id: Uuid::nil(),
            org_seq: 1,
            stream_id: "user-1",
            stream_version: 1,
            event_id: Uuid::nil(),
            event_type: "X",
            schema_version: 1,
            payload,
            metadata: "{}",
            recorded_at: DateTime::from_timestamp(0, 0).unwrap(),
        }
    }

    #[test]
    fn any_change_to_a_column_or_the_previous_hash_changes_the_link() {
        let base = link_hash(&GENESIS_HASH, &row("{\"a\":1}"));
        assert_ne!(base, link_hash(&GENESIS_HASH, &row("{\"a\":2}")));
        assert_ne!(base, link_hash(&[1u8; 32], &row("{\"a\":1}")));
        assert_eq!(base, link_hash(&GENESIS_HASH, &row("{\"a\":1}")));
    }

    #[test]
    fn length_prefixes_keep_field_boundaries_apart() {
        let mut a = row("{}");
        a.stream_id = "ab";
        a.event_type = "c";
        let mut b = row("{}");
        b.stream_id = "a";
        b.event_type = "bc";
        assert_ne!(link_hash(&GENESIS_HASH, &a), link_hash(&GENESIS_HASH, &b));
    }

    #[test]
    fn canonical_json_sorts_keys_regardless_of_input_order() {
        let a: serde_json::Value = serde_json::from_str(r#"{"b":1,"a":{"d":2,"c":3}}"#).unwrap();
        assert_eq!(canonical_json(&a), r#"{"a":{"c":3,"d":2},"b":1}"#);
    }
}
