//! The results consumer: agents' answers from `xdr.actions.results.<org_id>` into the log.
//!
//! A durable pull consumer shared by every replica. The org is taken from the subject, which
//! only the agent gateway publishes to, after verifying the agent's key; a payload naming
//! another org is refused. A result is acked only after its events are committed, so a crash
//! redelivers it, and `RecordResult` is idempotent, so the redelivery appends nothing.

use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::{self, Message};
use futures::StreamExt;
use std::future::Future;
use std::time::Duration;
use xdr_domain::ids::OrgId;
use xdr_domain::response::order::ActionResult;

use super::actions::{record_result, ResponseError};
use super::config::ResponseConfig;
use crate::ingest::NatsError;
use crate::store::EventStore;

/// Durable name shared by every replica.
pub const RESULTS_CONSUMER: &str = "xdr-action-results";

pub async fn results_consumer(js: &jetstream::Context, config: &ResponseConfig) -> Result<PullConsumer, NatsError> {
    super::dispatch::ensure_streams(js, config).await?;
    let stream = js.get_stream(&config.results_stream).await.map_err(NatsError::from_display)?;
    let settings = crate::cluster::JetStreamSettings::from_env()?;
    crate::cluster::ensure_consumer(&stream, settings.consumer(RESULTS_CONSUMER, Duration::from_secs(30), 1024)).await
}

/// What happened to one result message.
#[derive(Debug, PartialEq, Eq)]
pub enum Handled {
    Recorded,
    /// Unreadable or naming another org: dropped (acked) with an error log, never retried.
    Refused(String),
}

/// Record one result message. `Err` means "try again later" (database or store trouble).
pub async fn handle_result(
    store: &EventStore,
    config: &ResponseConfig,
    message: &Message,
) -> Result<Handled, ResponseError> {
    let Some(org) = config.org_of_results_subject(message.subject.as_str()) else {
        return Ok(Handled::Refused(format!("subject {} is not a results subject", message.subject)));
    };
    let result: ActionResult = match serde_json::from_slice(&message.payload) {
        Ok(r) => r,
        Err(e) => return Ok(Handled::Refused(format!("unreadable result: {e}"))),
    };
    if result.org_id.0 != org {
        return Ok(Handled::Refused(format!("result names org {} on org {org}'s subject", result.org_id)));
    }
    match record_result(store, OrgId(org), &result).await {
        Ok(_) => Ok(Handled::Recorded),
        // A result for an action this org does not have is not going to become valid.
        Err(ResponseError::Action(crate::handler::CommandError::Domain(e))) => {
            Ok(Handled::Refused(format!("action {}: {e}", result.action_id)))
        }
        Err(e) => Err(e),
    }
}

/// Consume results until `shutdown` resolves.
pub async fn run_results_consumer(
    store: EventStore,
    js: jetstream::Context,
    config: ResponseConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), NatsError> {
    let consumer = results_consumer(&js, &config).await?;
    let mut messages = crate::cluster::pull_messages(&consumer, 200).await?;
    // Results JetStream gave up on (max_deliver) become dead letters with their reason.
    let undeliverable = crate::cluster::Undeliverable {
        stream: config.results_stream.clone(),
        consumer: RESULTS_CONSUMER.to_owned(),
        dlq_subject: config.results_dlq_subject(),
    };
    let dead_letterer = crate::cluster::spawn_undeliverable_dead_letterer(js.clone(), undeliverable, "action results");
    let stopped = consume(&store, &js, &config, &mut messages, shutdown).await;
    dead_letterer.abort();
    stopped
}

async fn consume(
    store: &EventStore,
    js: &jetstream::Context,
    config: &ResponseConfig,
    messages: &mut jetstream::consumer::pull::Stream,
    shutdown: impl Future<Output = ()>,
) -> Result<(), NatsError> {
    tokio::pin!(shutdown);
    loop {
        let next = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            next = messages.next() => next,
        };
        let Some(message) = next else { return Ok(()) };
        let message = match message {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "results consumer: receive failed");
                continue;
            }
        };
        match handle_result(store, config, &message).await {
            Ok(Handled::Recorded) => ack(&message).await,
            Ok(Handled::Refused(reason)) => {
                tracing::error!(subject = %message.subject, reason, "action result refused");
                // Acked only once the dead letter is stored: nothing vanishes silently.
                match dead_letter(js, config, &message, reason).await {
                    Ok(()) => ack(&message).await,
                    Err(e) => tracing::error!(error = %e, "refused result not dead-lettered yet; will retry"),
                }
            }
            // Not acked: redelivered after ack_wait.
            Err(e) => tracing::error!(error = %e, "action result not recorded yet; will retry"),
        }
    }
}

async fn ack(message: &Message) {
    if let Err(e) = message.ack().await {
        tracing::warn!(error = %e, "ack failed; the result will be redelivered and deduplicated");
    }
}

/// Dead-letter a refused result with its reason; the stream sequence keeps a redelivered
/// result from being dead-lettered twice.
async fn dead_letter(
    js: &jetstream::Context,
    config: &ResponseConfig,
    message: &Message,
    reason: String,
) -> Result<(), NatsError> {
    let dedupe_id = match message.info() {
        Ok(info) => format!("refused-{}-{}", config.results_stream, info.stream_sequence),
        Err(_) => format!("refused-{}", message.subject),
    };
    let letter = crate::ingest::dlq::DeadLetter {
        reason,
        source_subject: message.subject.to_string(),
        record_index: None,
        owner: None,
        dedupe_id,
        body: message.payload.to_vec(),
    };
    crate::ingest::dlq::publish_dead_letters_to(js, &config.results_dlq_subject(), vec![letter]).await
}
