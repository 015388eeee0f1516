//! Dead letters: every record or message the ingestor cannot commit is published to
//! `<prefix>xdr.dlq.ingest` (kept by a JetStream stream) with the reason and origin in
//! headers, and the publish is acknowledged before the source message is. Nothing is dropped
//! silently.

use async_nats::jetstream::{self, context::Publish};
use async_nats::HeaderMap;

use super::{IngestConfig, NatsError};

pub const HEADER_REASON: &str = "Xdr-Dlq-Reason";
pub const HEADER_SOURCE_SUBJECT: &str = "Xdr-Source-Subject";
/// Index of the record inside the source message (absent when the whole message is dead).
pub const HEADER_RECORD_INDEX: &str = "Xdr-Record-Index";
/// Whose dead letter it is, when known (the resolved key's org, or the org a refused event
/// message names), so an operator can tell tenants' dead letters apart.
pub const HEADER_ORG_ID: &str = "Xdr-Org-Id";
/// The ingest key the message came with, when it resolved.
pub const HEADER_INGEST_KEY_ID: &str = "Xdr-Ingest-Key-Id";

/// One dead letter.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub reason: String,
    pub source_subject: String,
    pub record_index: Option<usize>,
    /// The org and key of the producer, once its key resolved.
    pub owner: Option<(xdr_domain::ids::OrgId, xdr_domain::ids::IngestKeyId)>,
    /// Stable id, so a redelivered source message does not dead-letter twice (JetStream
    /// de-duplicates on `Nats-Msg-Id`).
    pub dedupe_id: String,
    pub body: Vec<u8>,
}

/// Header values must be one line of visible text; reasons may quote hostile input.
pub fn header_safe(value: &str) -> String {
    let cleaned: String = value.chars().map(|c| if c.is_control() { ' ' } else { c }).take(256).collect();
    cleaned.trim().to_owned()
}

/// Publish dead letters and wait until JetStream has stored every one.
pub async fn publish_dead_letters(
    js: &jetstream::Context,
    config: &IngestConfig,
    letters: Vec<DeadLetter>,
) -> Result<(), NatsError> {
    publish_dead_letters_to(js, &config.dlq_subject(), letters).await
}

/// Publish dead letters to `subject` (a DLQ stream's) and wait until JetStream stored each.
pub async fn publish_dead_letters_to(
    js: &jetstream::Context,
    subject: &str,
    letters: Vec<DeadLetter>,
) -> Result<(), NatsError> {
    let mut acks = Vec::with_capacity(letters.len());
    let n = letters.len() as u64;
    for letter in letters {
        let mut headers = HeaderMap::new();
        headers.insert(HEADER_REASON, header_safe(&letter.reason).as_str());
        headers.insert(HEADER_SOURCE_SUBJECT, header_safe(&letter.source_subject).as_str());
        if let Some(i) = letter.record_index {
            headers.insert(HEADER_RECORD_INDEX, i.to_string().as_str());
        }
        if let Some((org, key)) = letter.owner {
            headers.insert(HEADER_ORG_ID, org.to_string().as_str());
            headers.insert(HEADER_INGEST_KEY_ID, key.to_string().as_str());
        }
        let publish = Publish::build().headers(headers).payload(letter.body.into()).message_id(letter.dedupe_id);
        acks.push(js.send_publish(subject.to_owned(), publish).await.map_err(NatsError::from_display)?);
    }
    for ack in acks {
        ack.await.map_err(NatsError::from_display)?;
    }
    crate::readiness::count_dead_lettered(subject, n);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::header_safe;

    #[test]
    fn header_values_are_single_line_and_bounded() {
        assert_eq!(header_safe("bad\r\nX-Injected: 1"), "bad  X-Injected: 1");
        assert_eq!(header_safe(&"x".repeat(1000)).len(), 256);
    }
}
