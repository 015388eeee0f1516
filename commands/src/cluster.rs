//! Running on a NATS cluster (docs/OPERATIONS.md, "Scaling out"): how many servers keep a
//! copy of every stream, how often a message is redelivered before it is given up on, and
//! what happens to a message given up on (it becomes a dead letter with its reason, never
//! silently dropped, never redelivered forever).
//!
//! The settings are read from the environment where streams and consumers are made, so
//! every role (and every crate that creates a stream) applies the same ones:
//!
//! * `XDR_NATS_STREAM_REPLICAS` (default 1): replicas of every stream. 3 on a 3-node
//!   cluster, so losing one server (its leader included) loses nothing and stops nothing.
//! * `XDR_NATS_MAX_DELIVER` (default 500): deliveries of one message to a consumer before
//!   JetStream stops redelivering it and publishes a `MAX_DELIVERIES` advisory, which
//!   [`run_undeliverable_dead_letterer`] turns into a dead letter.
//! * `XDR_NATS_MAX_ACK_PENDING` (default: each consumer's own, 4096 for ingest): unacknowledged
//!   messages a consumer hands out across all its replicas (a bound on redelivery after a
//!   crash, and on memory).

use async_nats::jetstream::consumer::{pull, AckPolicy};
use async_nats::jetstream::stream::{self, RetentionPolicy, Stream};
use async_nats::jetstream::{self, AckKind};
use futures::StreamExt;
use std::future::Future;
use std::time::Duration;

use crate::ingest::dlq::{publish_dead_letters_to, DeadLetter};
use crate::ingest::NatsError;

/// Replicas of every stream, deliveries per message, unacked messages per consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JetStreamSettings {
    pub stream_replicas: usize,
    pub max_deliver: i64,
    /// Unset: each consumer's own default.
    pub max_ack_pending: Option<i64>,
}

impl Default for JetStreamSettings {
    fn default() -> Self {
        JetStreamSettings { stream_replicas: 1, max_deliver: 500, max_ack_pending: None }
    }
}

/// JetStream keeps at most 5 replicas of a stream.
const MAX_REPLICAS: usize = 5;

impl JetStreamSettings {
    /// The settings from `env` (unset or empty: the default); a clear error for a bad value.
    pub fn from_lookup(env: impl Fn(&str) -> Option<String>) -> Result<Self, NatsError> {
        let mut settings = JetStreamSettings::default();
        let read = |var: &str| env(var).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        if let Some(v) = read("XDR_NATS_STREAM_REPLICAS") {
            settings.stream_replicas = v
                .parse()
                .ok()
                .filter(|n| (1..=MAX_REPLICAS).contains(n))
                .ok_or_else(|| bad("XDR_NATS_STREAM_REPLICAS", &v, "a number of servers from 1 to 5"))?;
        }
        if let Some(v) = read("XDR_NATS_MAX_DELIVER") {
            settings.max_deliver = v
                .parse()
                .ok()
                .filter(|n| *n >= 2)
                .ok_or_else(|| bad("XDR_NATS_MAX_DELIVER", &v, "a number of deliveries, 2 or more"))?;
        }
        if let Some(v) = read("XDR_NATS_MAX_ACK_PENDING") {
            let pending = v
                .parse()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| bad("XDR_NATS_MAX_ACK_PENDING", &v, "a number of messages, 1 or more"))?;
            settings.max_ack_pending = Some(pending);
        }
        Ok(settings)
    }

    /// The settings from the process environment.
    pub fn from_env() -> Result<Self, NatsError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// A durable pull consumer with explicit acks and these limits (`max_ack_pending`
    /// unless set: `default_pending`).
    pub fn consumer(&self, durable: &str, ack_wait: Duration, default_pending: i64) -> pull::Config {
        pull::Config {
            durable_name: Some(durable.to_owned()),
            ack_policy: AckPolicy::Explicit,
            ack_wait,
            max_deliver: self.max_deliver,
            max_ack_pending: self.max_ack_pending.unwrap_or(default_pending),
            ..Default::default()
        }
    }
}

fn bad(var: &str, value: &str, wanted: &str) -> NatsError {
    NatsError::JetStream(format!("{var}={value:?} is not {wanted}"))
}

/// `NATS_URL` may list several servers, comma-separated (`nats://a:4222,nats://b:4222`): the
/// client connects to any that answers and fails over between them (and the servers the
/// cluster tells it about).
pub fn nats_servers(url: &str) -> Vec<String> {
    url.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// Create `config` with `XDR_NATS_STREAM_REPLICAS` replicas, or keep the existing stream.
/// An existing stream with another replica count is not changed here (the roles may only
/// create streams, not edit them: an edit could also shorten retention); the role logs what
/// the operator must run, once per start (docs/OPERATIONS.md, "Scaling out").
pub async fn ensure_stream(js: &jetstream::Context, mut config: stream::Config) -> Result<Stream, NatsError> {
    let settings = JetStreamSettings::from_env()?;
    config.num_replicas = settings.stream_replicas;
    let name = config.name.clone();
    let stream = retrying(&format!("creating stream {name}"), || js.get_or_create_stream(config.clone())).await?;
    // Retried too: a cluster electing a leader times out any request, this one included.
    let info = retrying(&format!("reading stream {name}"), || stream.get_info()).await?;
    if info.config.num_replicas != settings.stream_replicas {
        tracing::warn!(
            stream = %name,
            replicas = info.config.num_replicas,
            wanted = settings.stream_replicas,
            "stream {name} has {} replica(s) but XDR_NATS_STREAM_REPLICAS={}: change it with \
             `nats stream edit {name} --replicas {}` (as a user allowed $JS.API.STREAM.UPDATE.{name})",
            info.config.num_replicas,
            settings.stream_replicas,
            settings.stream_replicas,
        );
    }
    Ok(stream)
}

/// Create or update the durable consumer `config` on `stream`: its limits (ack wait,
/// `max_deliver`, `max_ack_pending`) follow the settings even for a consumer made by an
/// earlier version.
pub async fn ensure_consumer(
    stream: &Stream,
    config: pull::Config,
) -> Result<jetstream::consumer::PullConsumer, NatsError> {
    let name = config.durable_name.clone().unwrap_or_default();
    retrying(&format!("creating consumer {name}"), || stream.create_consumer(config.clone())).await
}

/// How long one pull request of a consumer's message stream lasts, and how often the server
/// sends heartbeats meanwhile. With the client library's defaults (30 s, 15 s) a consumer sat
/// idle for up to half a minute after a NATS restart: the pull request the restarted server
/// no longer knows is replaced only when it expires or its heartbeats are missed.
pub const PULL_EXPIRES: Duration = Duration::from_secs(5);
pub const PULL_HEARTBEAT: Duration = Duration::from_secs(2);

/// The message stream of a pull consumer, `batch` messages per pull request, with
/// [`PULL_EXPIRES`] and [`PULL_HEARTBEAT`].
pub async fn pull_messages(
    consumer: &jetstream::consumer::PullConsumer,
    batch: usize,
) -> Result<pull::Stream, NatsError> {
    consumer
        .stream()
        .max_messages_per_batch(batch)
        .expires(PULL_EXPIRES)
        .heartbeat(PULL_HEARTBEAT)
        .messages()
        .await
        .map_err(NatsError::from_display)
}

/// Attempts of a stream or consumer request before a role gives up (a cluster electing a
/// leader answers requests with timeouts for a few seconds).
const ATTEMPTS: u32 = 10;

/// `request`, retried with a growing pause while it fails (timeouts, no leader yet).
async fn retrying<T, E: std::fmt::Display, F: std::future::Future<Output = Result<T, E>>>(
    what: &str,
    mut request: impl FnMut() -> F,
) -> Result<T, NatsError> {
    let mut pause = Duration::from_millis(250);
    for attempt in 1..=ATTEMPTS {
        match request().await {
            Ok(value) => return Ok(value),
            Err(e) if attempt < ATTEMPTS => {
                tracing::warn!(error = %e, attempt, "{what} failed; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(4));
            }
            Err(e) => return Err(NatsError::JetStream(format!("{what}: {e}"))),
        }
    }
    unreachable!("the last attempt returns")
}

/// The advisory JetStream publishes when a message of `stream` reached `consumer`'s
/// `max_deliver` without an ack.
pub fn max_deliveries_subject(stream: &str, consumer: &str) -> String {
    format!("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{stream}.{consumer}")
}

/// The stream that keeps `stream`'s max-deliveries advisories until they are dead-lettered.
pub fn undeliverable_stream_name(stream: &str) -> String {
    format!("{stream}_UNDELIVERABLE")
}

/// What a max-deliveries advisory says (`io.nats.jetstream.advisory.v1.max_deliver`).
#[derive(Debug, serde::Deserialize)]
pub struct MaxDeliveries {
    pub stream: String,
    pub consumer: String,
    pub stream_seq: u64,
    pub deliveries: u64,
}

/// Where undeliverable messages of one consumer go.
#[derive(Debug, Clone)]
pub struct Undeliverable {
    /// The stream the consumer reads, and the consumer.
    pub stream: String,
    pub consumer: String,
    /// The dead-letter subject (captured by the DLQ stream).
    pub dlq_subject: String,
}

/// Run [`run_undeliverable_dead_letterer`] for `watch` as a task of its own for as long as
/// the returned handle is not aborted; its failure is logged (naming `what` it guards), not
/// fatal to the consumer it serves.
pub fn spawn_undeliverable_dead_letterer(
    js: jetstream::Context,
    watch: Undeliverable,
    what: &'static str,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = run_undeliverable_dead_letterer(js, watch, std::future::pending::<()>()).await {
            tracing::error!(error = %e, "the dead-letterer of undeliverable {what} stopped");
        }
    })
}

/// Turn every message `watch.consumer` gave up on into a dead letter, until `shutdown`.
///
/// The advisories are captured by a stream of their own (a work queue), so one published
/// while no dead-letterer runs waits for the next. Each becomes a dead letter with the
/// original body and subject, the reason (`delivered N times without an ack`) and a stable id
/// (`undeliverable-<stream>-<seq>`, so a repeated advisory dead-letters once); the advisory
/// is acked only after JetStream stored the dead letter. A message no longer in the stream
/// (expired) is dead-lettered with an empty body and says so.
pub async fn run_undeliverable_dead_letterer(
    js: jetstream::Context,
    watch: Undeliverable,
    shutdown: impl Future<Output = ()>,
) -> Result<(), NatsError> {
    let advisories_name = undeliverable_stream_name(&watch.stream);
    let advisories = ensure_stream(
        &js,
        stream::Config {
            name: advisories_name.clone(),
            // Every consumer of the stream: partitions of one role (`detector-<i>-of-<n>`)
            // share this stream and its work-queue consumer, whichever of them creates it.
            subjects: vec![max_deliveries_subject(&watch.stream, "*")],
            retention: RetentionPolicy::WorkQueue,
            max_age: Duration::from_secs(14 * 24 * 3600),
            ..Default::default()
        },
    )
    .await?;
    let settings = JetStreamSettings::from_env()?;
    let consumer =
        ensure_consumer(&advisories, settings.consumer("dead-letterer", Duration::from_secs(30), 64)).await?;
    let source = js.get_stream(&watch.stream).await.map_err(NatsError::from_display)?;
    let mut messages = pull_messages(&consumer, 64).await?;
    tokio::pin!(shutdown);
    loop {
        let advisory = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            next = messages.next() => match next {
                None => return Ok(()),
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "reading max-deliveries advisories failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
                Some(Ok(m)) => m,
            },
        };
        let Ok(said) = serde_json::from_slice::<MaxDeliveries>(&advisory.payload) else {
            tracing::warn!(subject = %advisory.subject, "not a max-deliveries advisory; dropped");
            let _ = advisory.ack_with(AckKind::Term).await;
            continue;
        };
        let (body, source_subject, note) = match source.get_raw_message(said.stream_seq).await {
            Ok(original) => (original.payload.to_vec(), original.subject.to_string(), ""),
            Err(_) => (Vec::new(), String::new(), " (no longer in the stream)"),
        };
        let letter = DeadLetter {
            reason: format!(
                "delivered {} times to consumer {} without an ack (max_deliver){note}",
                said.deliveries, said.consumer
            ),
            source_subject,
            record_index: None,
            owner: None,
            dedupe_id: format!("undeliverable-{}-{}", said.stream, said.stream_seq),
            body,
        };
        match publish_dead_letters_to(&js, &watch.dlq_subject, vec![letter]).await {
            Ok(()) => {
                tracing::warn!(stream = %said.stream, consumer = %said.consumer, seq = said.stream_seq,
                    deliveries = said.deliveries, "message given up on after max_deliver: dead-lettered");
                let _ = advisory.ack().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "dead-lettering an undeliverable message failed; retrying");
                let _ = advisory.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(vars: &[(&str, &str)]) -> Result<JetStreamSettings, NatsError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        JetStreamSettings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn settings_default_to_one_replica_and_a_bounded_redelivery() {
        assert_eq!(from(&[]).unwrap(), JetStreamSettings::default());
        assert_eq!(from(&[("XDR_NATS_STREAM_REPLICAS", "")]).unwrap().stream_replicas, 1);
        let set = from(&[
            ("XDR_NATS_STREAM_REPLICAS", "3"),
            ("XDR_NATS_MAX_DELIVER", "5"),
            ("XDR_NATS_MAX_ACK_PENDING", "100"),
        ])
        .unwrap();
        assert_eq!(set, JetStreamSettings { stream_replicas: 3, max_deliver: 5, max_ack_pending: Some(100) });
        let consumer = set.consumer("c", Duration::from_secs(7), 10);
        assert_eq!(
            (consumer.max_deliver, consumer.max_ack_pending, consumer.ack_wait),
            (5, 100, Duration::from_secs(7))
        );
        assert_eq!(JetStreamSettings::default().consumer("c", Duration::from_secs(7), 10).max_ack_pending, 10);
    }

    #[test]
    fn bad_settings_are_refused_by_name() {
        for (var, value) in [
            ("XDR_NATS_STREAM_REPLICAS", "0"),
            ("XDR_NATS_STREAM_REPLICAS", "6"),
            ("XDR_NATS_STREAM_REPLICAS", "three"),
            ("XDR_NATS_MAX_DELIVER", "1"),
            ("XDR_NATS_MAX_DELIVER", "-1"),
            ("XDR_NATS_MAX_ACK_PENDING", "0"),
        ] {
            let err = from(&[(var, value)]).unwrap_err().to_string();
            assert!(err.contains(var) && err.contains(value), "{var}={value}: {err}");
        }
    }

    #[test]
    fn nats_url_lists_servers() {
        assert_eq!(nats_servers("nats://a:1"), ["nats://a:1"]);
        assert_eq!(nats_servers("nats://a:1, nats://b:2,,nats://c:3"), ["nats://a:1", "nats://b:2", "nats://c:3"]);
    }

    #[test]
    fn advisories_are_named_per_stream_and_consumer() {
        assert_eq!(
            max_deliveries_subject("XDR_INGEST", "xdr-ingestor"),
            "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.XDR_INGEST.xdr-ingestor"
        );
        assert_eq!(undeliverable_stream_name("XDR_INGEST"), "XDR_INGEST_UNDELIVERABLE");
        let said: MaxDeliveries = serde_json::from_str(
            r#"{"type":"io.nats.jetstream.advisory.v1.max_deliver","id":"x","timestamp":"2026-01-01T00:00:00Z",
                "stream":"S","consumer":"C","stream_seq":7,"deliveries":3}"#,
        )
        .unwrap();
        assert_eq!((said.stream.as_str(), said.consumer.as_str(), said.stream_seq, said.deliveries), ("S", "C", 7, 3));
    }
}
