//! Normalized telemetry: every producer's record becomes one [`SecurityEvent`] that keeps
//! the original record verbatim, so nothing a producer said is ever lost in translation.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

pub mod parsers;

/// The log format a record arrived in. The string form is the NATS subject suffix
/// (`xdr.ingest.<source_type>`) and the `source_type` of `POST /ingest/multi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceType {
    Cowrie,
    Sshd,
    Suricata,
    Cef,
    Json,
}

impl SourceType {
    pub const ALL: [SourceType; 5] =
        [SourceType::Cowrie, SourceType::Sshd, SourceType::Suricata, SourceType::Cef, SourceType::Json];

    pub fn as_str(self) -> &'static str {
        match self {
            SourceType::Cowrie => "cowrie",
            SourceType::Sshd => "sshd",
            SourceType::Suricata => "suricata",
            SourceType::Cef => "cef",
            SourceType::Json => "json",
        }
    }

    pub fn parse(s: &str) -> Option<SourceType> {
        SourceType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl std::fmt::Display for SourceType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One normalized security observation. Fields a format does not carry are `None`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecurityEvent {
    /// When it happened, from the record itself (never arrival time).
    pub timestamp: DateTime<Utc>,
    pub source_type: SourceType,
    /// Normalized event type, e.g. `cowrie.login.failed`, `sshd.failed_password`,
    /// `suricata.alert`. Stable strings: detection rules match on them.
    pub event_type: String,
    pub src_ip: Option<IpAddr>,
    pub src_port: Option<u16>,
    pub dst_ip: Option<IpAddr>,
    pub dst_port: Option<u16>,
    pub protocol: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub command: Option<String>,
    pub url: Option<String>,
    pub file_hash: Option<String>,
    pub session_id: Option<String>,
    /// Sensor or host name that produced the record.
    pub hostname: Option<String>,
    pub message: Option<String>,
    /// Session duration in seconds, where the format reports one.
    pub duration_secs: Option<f64>,
    /// The original record, verbatim (a JSON value for JSON formats, a string for lines).
    pub raw: serde_json::Value,
}

impl SecurityEvent {
    /// An event with only the mandatory fields set; parsers fill in the rest.
    pub fn new(
        timestamp: DateTime<Utc>,
        source_type: SourceType,
        event_type: impl Into<String>,
        raw: serde_json::Value,
    ) -> Self {
        SecurityEvent {
            timestamp,
            source_type,
            event_type: event_type.into(),
            src_ip: None,
            src_port: None,
            dst_ip: None,
            dst_port: None,
            protocol: None,
            username: None,
            password: None,
            command: None,
            url: None,
            file_hash: None,
            session_id: None,
            hostname: None,
            message: None,
            duration_secs: None,
            raw,
        }
    }
}

/// Why a record could not be parsed. The message goes to the dead-letter header verbatim.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

impl ParseError {
    pub fn new(reason: impl Into<String>) -> Self {
        ParseError(reason.into())
    }
}

/// Namespace of telemetry event ids (a fixed random UUID).
const TELEMETRY_ID_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6c1f_0b7e_53d2_4b8e_9a41_2f6d_8c3e_7a15);

/// The event id of a telemetry record: deterministic (the same record from the same message
/// always gets the same id, so redelivery writes nothing twice) and time-ordered (the first
/// 48 bits are the record's Unix milliseconds, like UUIDv7), so ids of a batch land next to
/// each other in the `(org_id, event_id)` index instead of all over it.
pub fn telemetry_event_id(timestamp: DateTime<Utc>, dedupe_key: &[u8]) -> uuid::Uuid {
    let digest = uuid::Uuid::new_v5(&TELEMETRY_ID_NAMESPACE, dedupe_key).into_bytes();
    let millis = timestamp.timestamp_millis().max(0) as u64;
    let mut bytes = digest;
    bytes[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

#[cfg(test)]
mod id_tests {
    use super::*;

    #[test]
    fn telemetry_ids_are_deterministic_distinct_and_time_ordered() {
        let t1 = DateTime::from_timestamp(1_764_000_000, 0).unwrap();
        let t2 = t1 + chrono::Duration::milliseconds(1);
        assert_eq!(telemetry_event_id(t1, b"msg-1/0"), telemetry_event_id(t1, b"msg-1/0"));
        assert_ne!(telemetry_event_id(t1, b"msg-1/0"), telemetry_event_id(t1, b"msg-1/1"));
        assert!(telemetry_event_id(t1, b"zzz") < telemetry_event_id(t2, b"aaa"));
        assert_eq!(telemetry_event_id(t1, b"x").get_version_num(), 8);
    }
}
