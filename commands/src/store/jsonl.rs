//! Writing stored events as JSON lines fast, byte for byte as `serde_json::to_writer(&StoredEvent)`
//! would, without building a `serde_json::Value` per payload.
//!
//! Replay and export spend most of their time turning each row's `jsonb` into a `Value` (one
//! allocation per key, string and map node) only to print it again. Here the row's JSON text
//! is borrowed from the row buffer, parsed into a light tree whose strings point into that
//! text, and printed with object keys sorted by their bytes and numbers read and printed as
//! `Value` reads and prints them — so the output is identical (tested against `Value`).

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use sqlx::postgres::PgRow;
use sqlx::Row;
use std::borrow::Cow;

/// A JSON value whose strings borrow from the text it was parsed from when they can.
enum Node<'a> {
    Null,
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    Str(Cow<'a, str>),
    Arr(Vec<Node<'a>>),
    /// Sorted by key (bytes) with duplicates resolved as `Value` does (the last wins).
    Obj(Vec<(Cow<'a, str>, Node<'a>)>),
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node<'de>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }
    fn visit_none<E>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Node<'de>, E> {
        Ok(Node::Bool(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Node<'de>, E> {
        Ok(Node::U64(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Node<'de>, E> {
        Ok(Node::I64(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Node<'de>, E> {
        Ok(Node::F64(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Owned(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Arr(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node<'de>, A::Error> {
        let mut entries: Vec<(Cow<'de, str>, Node<'de>)> = Vec::with_capacity(map.size_hint().unwrap_or(8));
        while let Some(Key(key)) = map.next_key()? {
            entries.push((key, map.next_value()?));
        }
        // Stable: of equal keys the last stays last, and is the one kept (as a map insert).
        entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let mut deduped: Vec<(Cow<'de, str>, Node<'de>)> = Vec::with_capacity(entries.len());
        for entry in entries {
            match deduped.last_mut() {
                Some(last) if last.0 == entry.0 => *last = entry,
                _ => deduped.push(entry),
            }
        }
        Ok(Node::Obj(deduped))
    }
}

impl<'de> Deserialize<'de> for Node<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

/// An object key, borrowed when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

impl Serialize for Node<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Node::Null => s.serialize_unit(),
            Node::Bool(b) => s.serialize_bool(*b),
            Node::U64(n) => s.serialize_u64(*n),
            Node::I64(n) => s.serialize_i64(*n),
            Node::F64(n) => s.serialize_f64(*n),
            Node::Str(v) => s.serialize_str(v),
            Node::Arr(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Node::Obj(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k.as_ref(), v)?;
                }
                map.end()
            }
        }
    }
}

/// `text` (any JSON) printed compactly with object keys sorted: what parsing it into a
/// `serde_json::Value` and printing that gives, without the `Value`.
fn write_sorted_json(out: &mut Vec<u8>, text: &[u8]) -> serde_json::Result<()> {
    let node: Node = serde_json::from_slice(text)?;
    serde_json::to_writer(out, &node)
}

/// One row of `EVENT_COLUMNS` (in that order) as a JSON line, byte for byte what
/// `serde_json::to_writer(&row_to_event(row)?)` + `\n` writes.
pub(super) fn write_row_jsonl(out: &mut Vec<u8>, row: &PgRow) -> Result<(), sqlx::Error> {
    let decode = |e: Box<dyn std::error::Error + Send + Sync>| sqlx::Error::Decode(e);
    let org_id: uuid::Uuid = row.try_get(0)?;
    let org_seq: i64 = row.try_get(1)?;
    let stream_id: &str = row.try_get(2)?;
    let stream_version: i64 = row.try_get(3)?;
    let event_id: uuid::Uuid = row.try_get(4)?;
    let event_type: &str = row.try_get(5)?;
    let schema_version: i32 = row.try_get(6)?;
    let payload = jsonb_text(row, 7)?;
    let metadata = jsonb_text(row, 8)?;
    let recorded_at: chrono::DateTime<chrono::Utc> = row.try_get(9)?;
    let hash: &[u8] = row.try_get(10)?;

    let mut uuid_buf = uuid::Uuid::encode_buffer();
    out.extend_from_slice(b"{\"org_id\":\"");
    out.extend_from_slice(org_id.hyphenated().encode_lower(&mut uuid_buf).as_bytes());
    out.extend_from_slice(b"\",\"org_seq\":");
    serde_json::to_writer(&mut *out, &org_seq).map_err(|e| decode(e.into()))?;
    out.extend_from_slice(b",\"stream_id\":");
    serde_json::to_writer(&mut *out, stream_id).map_err(|e| decode(e.into()))?;
    out.extend_from_slice(b",\"stream_version\":");
    serde_json::to_writer(&mut *out, &stream_version).map_err(|e| decode(e.into()))?;
    out.extend_from_slice(b",\"event_id\":\"");
    out.extend_from_slice(event_id.hyphenated().encode_lower(&mut uuid_buf).as_bytes());
    out.extend_from_slice(b"\",\"event_type\":");
    serde_json::to_writer(&mut *out, event_type).map_err(|e| decode(e.into()))?;
    out.extend_from_slice(b",\"schema_version\":");
    serde_json::to_writer(&mut *out, &schema_version).map_err(|e| decode(e.into()))?;
    out.extend_from_slice(b",\"payload\":");
    write_sorted_json(out, payload).map_err(|e| decode(e.into()))?;
    out.extend_from_slice(b",\"metadata\":");
    write_sorted_json(out, metadata).map_err(|e| decode(e.into()))?;
    out.extend_from_slice(b",\"recorded_at\":");
    serde_json::to_writer(&mut *out, &recorded_at).map_err(|e| decode(e.into()))?;
    out.extend_from_slice(b",\"hash\":\"");
    let start = out.len();
    out.resize(start + hash.len() * 2, 0);
    hex::encode_to_slice(hash, &mut out[start..]).map_err(|e| decode(e.into()))?;
    out.extend_from_slice(b"\"}\n");
    Ok(())
}

/// The JSON text of a `jsonb` column, borrowed from the row: in the binary protocol (which
/// sqlx uses for every prepared query) a `jsonb` value is a version byte (1) and the text.
fn jsonb_text(row: &PgRow, index: usize) -> Result<&[u8], sqlx::Error> {
    let raw: &[u8] = row.try_get_unchecked(index)?;
    match raw.split_first() {
        Some((1, text)) => Ok(text),
        _ => Err(sqlx::Error::Decode(format!("column {index} is not jsonb in binary format").into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn via_value(text: &str) -> String {
        serde_json::to_string(&serde_json::from_str::<serde_json::Value>(text).unwrap()).unwrap()
    }

    #[test]
    fn sorted_json_is_byte_for_byte_what_a_value_prints() {
        for text in [
            r#"{"b": 1, "a": [1, 2.5, -3, {"z": null, "y": true}], "aa": "x"}"#,
            r#"{"timestamp": "2026-11-26T21:00:00Z", "message": "quote \" backslash \\ tab \t nl \n ctl \u0001 é ☃ 😀 \/"}"#,
            r#"{"n": 0.0000001, "big": 100000000000000000000, "neg": -9223372036854775808, "f": 1.50, "e": 1e300}"#,
            r#"{"dup": 1, "dup": 2, "k\u00e9y": {}, "": [], "B": "upper before lower"}"#,
            r#"[{"b": 2, "a": 1}, "s", 3, false, null]"#,
            r#""just a string""#,
            "42",
        ] {
            let mut out = Vec::new();
            write_sorted_json(&mut out, text.as_bytes()).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), via_value(text), "{text}");
        }
    }
}
