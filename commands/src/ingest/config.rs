//! Names and limits of the NATS ingest pipeline. Every subject and stream name takes a
//! prefix, so tests (and tenants of a shared NATS) each get their own.

use std::time::Duration;

/// Configuration shared by the ingestor, the file publisher and the relay.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Prepended to every subject, e.g. `""` in production, `"t1234."` in a test.
    pub subject_prefix: String,
    /// JetStream stream that captures `<prefix>xdr.ingest.>`.
    pub stream_name: String,
    /// JetStream stream that keeps dead letters (`<prefix>xdr.dlq.>`).
    pub dlq_stream_name: String,
    /// JetStream stream of committed events (`<prefix>xdr.events.>`), written by the relay.
    pub events_stream_name: String,
    /// Durable pull consumer shared by every ingestor replica.
    pub consumer_name: String,
    /// Messages larger than this are dead-lettered unread.
    pub max_message_bytes: usize,
    /// Messages fetched and committed together (bounds memory with `max_batch_bytes`).
    pub batch_messages: usize,
    /// Bytes fetched per batch at most (never below the server's `max_payload`). Parsed
    /// records take ~5 KiB each in memory, ~8× their wire size for Cowrie JSON, so 4 MiB of
    /// records is ~40 MiB per round.
    pub max_batch_bytes: usize,
    /// How long a round waits for its first message (then it takes what has arrived).
    pub batch_wait: Duration,
    /// Redelivery after this long without an ack (a crashed ingestor's messages come back).
    pub ack_wait: Duration,
    /// Unacked messages the server hands out across all replicas.
    pub max_ack_pending: i64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            subject_prefix: String::new(),
            stream_name: "XDR_INGEST".into(),
            dlq_stream_name: "XDR_DLQ".into(),
            events_stream_name: "XDR_EVENTS".into(),
            consumer_name: "xdr-ingestor".into(),
            max_message_bytes: 1 << 20,
            batch_messages: 256,
            max_batch_bytes: 4 << 20,
            batch_wait: Duration::from_millis(200),
            ack_wait: Duration::from_secs(30),
            max_ack_pending: 4096,
        }
    }
}

impl IngestConfig {
    /// A config whose names are all unique to `prefix` (tests): `t<uuid>.` etc.
    pub fn with_prefix(prefix: &str) -> Self {
        let tag: String = prefix.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
        IngestConfig {
            subject_prefix: prefix.to_owned(),
            stream_name: format!("XDR_INGEST_{tag}"),
            dlq_stream_name: format!("XDR_DLQ_{tag}"),
            events_stream_name: format!("XDR_EVENTS_{tag}"),
            ..IngestConfig::default()
        }
    }

    /// `<prefix>xdr.ingest.<source_type>`.
    pub fn ingest_subject(&self, source: &str) -> String {
        format!("{}xdr.ingest.{source}", self.subject_prefix)
    }

    pub fn ingest_wildcard(&self) -> String {
        format!("{}xdr.ingest.>", self.subject_prefix)
    }

    /// `<prefix>xdr.dlq.ingest`.
    pub fn dlq_subject(&self) -> String {
        format!("{}xdr.dlq.ingest", self.subject_prefix)
    }

    pub fn dlq_wildcard(&self) -> String {
        format!("{}xdr.dlq.>", self.subject_prefix)
    }

    /// `<prefix>xdr.events.<org_id>.<EventType>`.
    pub fn event_subject(&self, org: uuid::Uuid, event_type: &str) -> String {
        format!("{}xdr.events.{org}.{event_type}", self.subject_prefix)
    }

    pub fn events_wildcard(&self) -> String {
        format!("{}xdr.events.>", self.subject_prefix)
    }

    /// The source type named by an ingest subject, if the subject is one of ours.
    pub fn source_of_subject<'a>(&self, subject: &'a str) -> Option<&'a str> {
        subject.strip_prefix(&self.subject_prefix)?.strip_prefix("xdr.ingest.")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_take_the_prefix() {
        let c = IngestConfig::with_prefix("t42.");
        assert_eq!(c.ingest_subject("cowrie"), "t42.xdr.ingest.cowrie");
        assert_eq!(c.dlq_subject(), "t42.xdr.dlq.ingest");
        assert_eq!(c.stream_name, "XDR_INGEST_t42");
        assert_eq!(c.source_of_subject("t42.xdr.ingest.sshd"), Some("sshd"));
        assert_eq!(c.source_of_subject("xdr.ingest.sshd"), None);
        let d = IngestConfig::default();
        assert_eq!(d.ingest_wildcard(), "xdr.ingest.>");
        assert_eq!(d.event_subject(uuid::Uuid::nil(), "X"), format!("xdr.events.{}.X", uuid::Uuid::nil()));
    }
}
