//! The per-org hash chain: `hash = SHA-256(prev_hash ‖ canonical bytes of the row)`.
//!
//! Canonical bytes are a length-prefixed encoding of every column, so no two different rows
//! share an encoding. JSON is hashed in a canonical text (compact, sorted keys, numbers as
//! below) that is also the text stored, and that `jsonb` gives back unchanged after a parse:
//!
//! * `jsonb` keeps a number's exact decimal value. serde_json prints an `f64` as the shortest
//!   decimal that parses back to it, so a correctly rounding parser (the workspace enables
//!   serde_json's `float_roundtrip`; without it some doubles come back one ULP off and print
//!   differently — the bug of issue #13) recovers the same `f64` and the same text.
//! * Two floats `jsonb` cannot give back as floats are printed as what it will give back:
//!   `-0.0` as `0.0` (numeric has no negative zero), and an integral float that serde_json
//!   prints in exponent form within the 64-bit integer range (`1e16` … `1.8e19`) as its
//!   digits, because `jsonb` prints it without a decimal point and it parses as an integer.
//!   Every other value prints exactly as serde_json does, so chains written before this rule
//!   verify unchanged (docs/AUDIT.md, "Canonical form").
//! * Nesting is bounded ([`MAX_JSON_DEPTH`]) so every stored value parses back within
//!   serde_json's recursion limit.

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

/// Deepest nesting of arrays and objects a payload or metadata value may have. serde_json
/// refuses to parse beyond 128 levels; a bundle line nests the payload one level deeper, and
/// the margin keeps every stored value readable by every reader.
pub const MAX_JSON_DEPTH: usize = 100;

/// Canonical JSON text: compact, object keys sorted by their bytes at every depth, numbers
/// in the form `jsonb` gives back (module docs).
///
/// Sorted explicitly rather than relying on serde_json's map type, because any crate in the
/// build enabling `preserve_order` would otherwise silently change every hash.
pub fn canonical_json(value: &serde_json::Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out, usize::MAX);
    out
}

/// [`canonical_json`], or `None` when the value nests deeper than `max_depth` levels.
pub fn canonical_json_within(value: &serde_json::Value, max_depth: usize) -> Option<String> {
    let mut out = String::new();
    write_canonical(value, &mut out, max_depth).then_some(out)
}

/// Appends the canonical text; false (with `out` partly written) when nesting exceeds `levels`.
fn write_canonical(value: &serde_json::Value, out: &mut String, levels: usize) -> bool {
    use serde_json::Value;
    match value {
        Value::Object(_) | Value::Array(_) if levels == 0 => return false,
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
                if !write_canonical(&map[k], out, levels - 1) {
                    return false;
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if !write_canonical(item, out, levels - 1) {
                    return false;
                }
            }
            out.push(']');
        }
        Value::Number(n) => write_number(n, out),
        scalar => out.push_str(&scalar.to_string()),
    }
    true
}

fn write_number(n: &serde_json::Number, out: &mut String) {
    let Some(x) = n.as_f64().filter(|_| n.is_f64()) else {
        out.push_str(&n.to_string());
        return;
    };
    if x == 0.0 {
        out.push_str("0.0");
        return;
    }
    let text = n.to_string();
    // Beyond 2^53 every double is integral; the bounds are exactly 2^64 and -2^63.
    if text.contains('e') && x.fract() == 0.0 {
        if (0.0..18_446_744_073_709_551_616.0).contains(&x) {
            out.push_str(&(x as u64).to_string());
            return;
        }
        if (-9_223_372_036_854_775_808.0..0.0).contains(&x) {
            out.push_str(&(x as i64).to_string());
            return;
        }
    }
    out.push_str(&text);
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

    /// Parse as every reader of the log does (sqlx decodes `jsonb` with serde_json).
    fn reparsed(text: &str) -> String {
        canonical_json(&serde_json::from_str(text).unwrap())
    }

    #[test]
    fn floats_print_as_they_come_back_from_a_parse() {
        // A model probability as serde_json prints it, and as `jsonb` prints it back: without
        // a correctly rounding parse it comes back as 3.943013383563368e-25.
        let x = 3.943_013_383_563_367_6e-25_f64;
        let written = canonical_json(&serde_json::json!({ "apt": x }));
        assert_eq!(written, r#"{"apt":3.9430133835633676e-25}"#);
        assert_eq!(reparsed(r#"{"apt":0.00000000000000000000000039430133835633676}"#), written);
        for (value, canonical) in [
            (-0.0_f64, "0.0"),
            (1e16, "10000000000000000"),
            (-1.5e17, "-150000000000000000"),
            (1.8446744073709552e19, "1.8446744073709552e+19"),
            (-9.223372036854776e18, "-9223372036854775808"),
            (1e300, "1e+300"),
            (5e-324, "5e-324"),
            (0.1, "0.1"),
            (123.0, "123.0"),
        ] {
            assert_eq!(canonical_json(&serde_json::json!(value)), canonical, "{value:e}");
            assert_eq!(reparsed(canonical), canonical, "{value:e} survives a parse");
        }
    }

    #[test]
    fn nesting_beyond_the_bound_is_refused() {
        let mut v = serde_json::json!(1);
        for _ in 0..3 {
            v = serde_json::json!([v]);
        }
        assert_eq!(canonical_json_within(&v, 3).as_deref(), Some("[[[1]]]"));
        assert_eq!(canonical_json_within(&v, 2), None);
    }

    #[test]
    fn canonical_json_sorts_keys_regardless_of_input_order() {
        let a: serde_json::Value = serde_json::from_str(r#"{"b":1,"a":{"d":2,"c":3}}"#).unwrap();
        assert_eq!(canonical_json(&a), r#"{"a":{"c":3,"d":2},"b":1}"#);
    }
}
