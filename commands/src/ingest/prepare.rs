//! Turning a producer's body into events: split into records, parse, attribute sshd lines
//! through their PID, and give every record a deterministic, time-ordered event id.
//!
//! Pure apart from the caller-owned PID tracker: the same body with the same dedupe base
//! always yields the same event ids, which is what makes redelivery harmless.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;
use xdr_domain::ids::IngestKeyId;
use xdr_domain::telemetry::parsers::{parse_record, split_records, ParseContext, SshdPidTracker};
use xdr_domain::telemetry::{telemetry_event_id, SecurityEvent, SourceType};
use xdr_domain::EventMetadata;

use crate::store::NewEvent;

/// A record that was not accepted, with its index in the body and the record itself.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedRecord {
    pub index: usize,
    pub reason: String,
    pub record: String,
}

/// The outcome of preparing one body.
#[derive(Debug, Default)]
pub struct Prepared {
    pub events: Vec<NewEvent>,
    pub rejected: Vec<RejectedRecord>,
}

const EVENT_TYPE: &str = "SecurityEventObserved";
const SCHEMA_VERSION: i32 = 1;

/// The stored payload of `SecurityEventObserved(ev)`, equal to `Event::to_parts`'s, built
/// without deep-copying the verbatim record (the biggest part): it is moved in, not cloned.
fn payload_of(mut ev: SecurityEvent) -> Value {
    let raw = std::mem::take(&mut ev.raw);
    let mut payload = serde_json::to_value(&ev).expect("security events always serialize");
    if let Value::Object(map) = &mut payload {
        map.insert("raw".to_owned(), raw);
    }
    payload
}

/// The dedupe base of a body: the producer's message id when it gave one, else the
/// body's SHA-256 (a re-sent identical body is then the same message).
pub fn dedupe_base_of(message_id: Option<&str>, body: &[u8]) -> String {
    match message_id.filter(|m| !m.is_empty()) {
        Some(id) => format!("msg:{id}"),
        None => format!("sha256:{}", hex::encode(Sha256::digest(body))),
    }
}

/// Stream of a log source: `source-<type>-<host or key id>`, with the host reduced to a
/// safe, bounded token.
pub fn source_stream_id(source: SourceType, hostname: Option<&str>, key_id: IngestKeyId) -> String {
    let host: String = hostname
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .take(64)
        .collect();
    if host.is_empty() {
        format!("source-{source}-{}", key_id.0)
    } else {
        format!("source-{source}-{host}")
    }
}

/// Parse every record of `body` into `SecurityEventObserved` events. The org is not an
/// input: it comes from the key, and records never choose it.
///
/// The event id of record `i` is `telemetry_event_id(record time, "<source>:<dedupe_base>/<i>")`;
/// indices count every record, rejected ones too, so they are stable across retries.
/// `received_at` is when the body arrived (bounds the record times accepted, see
/// [`ParseContext::received_at`]).
pub fn prepare_records(
    received_at: DateTime<Utc>,
    key_id: IngestKeyId,
    source: SourceType,
    hostname_override: Option<&str>,
    body: &str,
    dedupe_base: &str,
    tracker: &mut SshdPidTracker,
) -> Prepared {
    let mut ctx = ParseContext::received_at(received_at);
    if let Some(h) = hostname_override.filter(|h| !h.is_empty()) {
        ctx = ctx.with_hostname(h);
    }
    let metadata = serde_json::to_value(EventMetadata::system(&format!("ingest-key:{}", key_id.0)))
        .expect("metadata always serializes");
    let mut out = Prepared::default();
    for (index, record) in split_records(source, body).into_iter().enumerate() {
        match parse_record(source, &record, &ctx) {
            Ok(mut ev) => {
                tracker.attribute(&mut ev);
                let key = format!("{source}:{dedupe_base}/{index}");
                let event_id: Uuid = telemetry_event_id(ev.timestamp, key.as_bytes());
                let stream_id = source_stream_id(source, ev.hostname.as_deref(), key_id);
                out.events.push(NewEvent {
                    event_id,
                    stream_id,
                    event_type: EVENT_TYPE.to_owned(),
                    schema_version: SCHEMA_VERSION,
                    payload: payload_of(ev),
                    metadata: metadata.clone(),
                });
            }
            Err(e) => out.rejected.push(RejectedRecord { index, reason: e.0, record }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const COWRIE: &str = r#"{"eventid":"cowrie.session.connect","timestamp":"2026-11-26T21:17:25.529043Z","src_ip":"127.0.0.5","sensor":"s1"}"#;

    #[test]
    fn same_body_and_base_give_the_same_ids_and_other_bases_do_not() {
        let key = IngestKeyId(Uuid::from_u128(2));
        let body = format!("{COWRIE}\nnot json\n{COWRIE}");
        let a = prepare_records(Utc::now(), key, SourceType::Cowrie, None, &body, "msg:1", &mut SshdPidTracker::new());
        let b = prepare_records(Utc::now(), key, SourceType::Cowrie, None, &body, "msg:1", &mut SshdPidTracker::new());
        let c = prepare_records(Utc::now(), key, SourceType::Cowrie, None, &body, "msg:2", &mut SshdPidTracker::new());
        let ids = |p: &Prepared| p.events.iter().map(|e| e.event_id).collect::<Vec<_>>();
        assert_eq!(ids(&a), ids(&b));
        assert_eq!(a.events.len(), 2);
        assert_ne!(a.events[0].event_id, a.events[1].event_id, "identical records at two indices are two events");
        assert!(ids(&a).iter().all(|id| !ids(&c).contains(id)));
        assert_eq!(a.rejected.len(), 1);
        assert_eq!(a.rejected[0].index, 1);
        assert_eq!(a.rejected[0].record, "not json");
        assert_eq!(a.events[0].event_type, "SecurityEventObserved");
        assert_eq!(a.events[0].metadata["actor"], format!("ingest-key:{}", key.0));
    }

    #[test]
    fn payloads_equal_what_the_event_enum_stores() {
        let key = IngestKeyId(Uuid::from_u128(2));
        let p = prepare_records(Utc::now(), key, SourceType::Cowrie, None, COWRIE, "m", &mut SshdPidTracker::new());
        let ev = xdr_domain::telemetry::parsers::parse_record(
            SourceType::Cowrie,
            COWRIE,
            &ParseContext::received_at(Utc::now()),
        )
        .unwrap();
        let (event_type, payload) = xdr_domain::Event::SecurityEventObserved(ev.clone()).to_parts();
        assert_eq!((p.events[0].event_type.as_str(), &p.events[0].payload), (event_type, &payload));
        assert_eq!(p.events[0].schema_version, xdr_domain::Event::SecurityEventObserved(ev).schema_version());
    }

    #[test]
    fn stream_ids_are_per_source_and_sanitized() {
        let key = IngestKeyId(Uuid::from_u128(2));
        assert_eq!(source_stream_id(SourceType::Sshd, Some("bastion-01"), key), "source-sshd-bastion-01");
        assert_eq!(source_stream_id(SourceType::Sshd, Some("a b/c"), key), "source-sshd-abc");
        assert_eq!(source_stream_id(SourceType::Cef, None, key), format!("source-cef-{}", key.0));
    }

    #[test]
    fn dedupe_base_prefers_the_message_id() {
        assert_eq!(dedupe_base_of(Some("f/1"), b"x"), "msg:f/1");
        assert_eq!(dedupe_base_of(None, b"x"), dedupe_base_of(Some(""), b"x"));
        assert!(dedupe_base_of(None, b"x").starts_with("sha256:2d711642"));
    }
}
