//! Ingest: producer records → parsed `SecurityEventObserved` events → the org's log, with
//! nothing committed twice and nothing dropped silently.
//!
//! One component per module: `prepare` (records → events + rejections, pure), `commit`
//! (batched appends), `dlq` (dead letters), `nats_ingestor` (JetStream consumer),
//! `publisher` (pushing a file through NATS). [`ingest_body`] is the shared entry point of
//! the HTTP routes.

pub mod commit;
pub mod config;
pub mod dlq;
pub mod nats_ingestor;
pub mod prepare;
pub mod publisher;

pub use commit::{body_from_values, ingest_body, IngestOutcome, Rejection};
pub use config::IngestConfig;
pub use nats_ingestor::{run_ingestor, IngestError, IngestorStats};
pub use prepare::{dedupe_base_of, prepare_records, Prepared};
pub use publisher::{publish_file, PublishSummary};

/// Errors of the NATS side of ingest (ingestor, relay, publisher).
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    #[error("JetStream: {0}")]
    JetStream(String),
}

impl NatsError {
    pub fn from_display(e: impl std::fmt::Display) -> Self {
        NatsError::JetStream(e.to_string())
    }
}
