//! The NATS ingestor: a durable pull consumer on `<prefix>xdr.ingest.>` shared by every
//! replica. Each round takes a bounded batch from one long-lived pull subscription, resolves
//! keys, parses records, dead-letters what cannot be stored, commits the rest with one
//! `append_batch` per org, and only then acks. A crash anywhere before the ack means redelivery, and redelivery writes nothing new
//! because event ids are derived from the message id (or content hash) and record index.

use async_nats::jetstream::consumer::{pull, PullConsumer};
use async_nats::jetstream::message::AckKind;
use async_nats::jetstream::stream::{self, RetentionPolicy};
use async_nats::jetstream::{self, Message};
use futures::StreamExt;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use xdr_domain::ids::{IngestKeyId, OrgId};
use xdr_domain::telemetry::parsers::SshdPidTracker;
use xdr_domain::telemetry::SourceType;

use super::commit::commit_events;
use super::dlq::{publish_dead_letters, DeadLetter};
use super::prepare::{dedupe_base_of, prepare_records};
use super::{IngestConfig, NatsError};
use crate::ingest_keys::{IngestKeyResolver, KeyStatus};
use crate::store::{EventStore, NewEvent, StoreError};

/// Header that carries the producer's ingest key.
pub const HEADER_INGEST_KEY: &str = "Xdr-Ingest-Key";

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Nats(#[from] NatsError),
    #[error("committing telemetry failed: {0}")]
    Store(#[from] StoreError),
    #[error("resolving an ingest key failed: {0}")]
    KeyLookup(#[from] sqlx::Error),
}

/// Counters of one ingestor (shared with whoever holds a clone).
#[derive(Debug, Default)]
pub struct IngestorStats {
    pub messages: AtomicU64,
    /// Events newly written to the log.
    pub events_written: AtomicU64,
    /// Good records that were already in the log (redelivery, re-publish).
    pub events_duplicate: AtomicU64,
    pub dead_letters: AtomicU64,
}

impl IngestorStats {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Create (or keep) the ingest and dead-letter streams.
pub async fn ensure_ingest_streams(js: &jetstream::Context, config: &IngestConfig) -> Result<(), NatsError> {
    crate::cluster::ensure_stream(
        js,
        stream::Config {
            name: config.stream_name.clone(),
            subjects: vec![config.ingest_wildcard()],
            // Acked messages are done: the stream holds the backlog, not history.
            retention: RetentionPolicy::WorkQueue,
            ..Default::default()
        },
    )
    .await?;
    crate::cluster::ensure_stream(
        js,
        stream::Config {
            name: config.dlq_stream_name.clone(),
            subjects: vec![config.dlq_wildcard()],
            max_age: Duration::from_secs(14 * 24 * 3600),
            ..Default::default()
        },
    )
    .await?;
    Ok(())
}

/// The durable consumer every replica shares (created or brought to the current limits).
pub async fn ingest_consumer(js: &jetstream::Context, config: &IngestConfig) -> Result<PullConsumer, NatsError> {
    let stream = js.get_stream(&config.stream_name).await.map_err(NatsError::from_display)?;
    let settings = crate::cluster::JetStreamSettings::from_env()?;
    crate::cluster::ensure_consumer(
        &stream,
        settings.consumer(&config.consumer_name, config.ack_wait, config.max_ack_pending),
    )
    .await
}

/// Messages of one round with what they turned into, ready to be committed and acked.
pub struct PreparedRound {
    pub messages: Vec<Message>,
    per_org: HashMap<OrgId, Vec<NewEvent>>,
    letters: Vec<DeadLetter>,
}

/// The commit side of a replica: dead letters, appends, acks. Cheap to clone.
#[derive(Clone)]
pub struct Committer {
    js: jetstream::Context,
    config: IngestConfig,
    store: EventStore,
    pub stats: Arc<IngestorStats>,
}

impl Committer {
    /// Dead-letter what cannot be stored and commit the rest; does NOT ack. Returns once
    /// every dead letter is stored by JetStream and every event committed.
    pub async fn commit(&self, round: &mut PreparedRound) -> Result<(), IngestError> {
        let letters = std::mem::take(&mut round.letters);
        let dead = letters.len() as u64;
        publish_dead_letters(&self.js, &self.config, letters).await?;
        for (org, events) in std::mem::take(&mut round.per_org) {
            let total = events.len() as u64;
            let written = commit_events(&self.store, org, events).await? as u64;
            self.stats.events_written.fetch_add(written, Ordering::Relaxed);
            self.stats.events_duplicate.fetch_add(total - written, Ordering::Relaxed);
            crate::readiness::count_duplicates("ingestor", total - written);
            if written < total {
                // Redelivered (or re-published) records the log already holds.
                tracing::info!(org_id = %org, duplicates = total - written, "duplicate records dropped");
            }
        }
        self.stats.dead_letters.fetch_add(dead, Ordering::Relaxed);
        self.stats.messages.fetch_add(round.messages.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Ack after commit: the messages are done.
    pub async fn ack(&self, messages: &[Message]) {
        for m in messages {
            if let Err(e) = m.ack().await {
                // Not acked = redelivered = deduplicated; nothing is lost.
                tracing::warn!(error = %e, "ack failed; the message will be redelivered");
            }
        }
    }

    /// Give messages back for redelivery after a failed round.
    pub async fn nak(&self, messages: &[Message]) {
        for m in messages {
            let _ = m.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
        }
    }
}

/// One ingestor replica: fetching and preparing rounds, plus its [`Committer`].
pub struct Ingestor {
    /// One long-lived pull subscription: the client keeps a pull request outstanding and
    /// renews it before it runs dry. (A fresh short-lived pull request per round let
    /// deliveries fall between expiring requests and stall ingestion for seconds under load;
    /// `bench e2e` shows it.)
    messages: pull::Stream,
    config: IngestConfig,
    resolver: Arc<IngestKeyResolver>,
    /// Per key, so sshd lines without an address are attributed across messages of the
    /// same producer (best effort: another replica may get the next message).
    trackers: HashMap<IngestKeyId, SshdPidTracker>,
    fetch_max_bytes: usize,
    pub committer: Committer,
}

/// How long a round keeps gathering messages that are already on their way.
const ROUND_GATHER: Duration = Duration::from_millis(2);

/// Keys whose PID trackers are kept at most (each tracker is itself bounded).
const MAX_TRACKERS: usize = 1024;

impl Ingestor {
    pub async fn new(
        client: async_nats::Client,
        config: IngestConfig,
        store: EventStore,
        resolver: Arc<IngestKeyResolver>,
    ) -> Result<Ingestor, IngestError> {
        // A fetch whose byte limit is below one message's size would never deliver it.
        let fetch_max_bytes = config.max_batch_bytes.max(client.server_info().max_payload + 4096);
        let js = jetstream::new(client);
        ensure_ingest_streams(&js, &config).await?;
        let consumer = ingest_consumer(&js, &config).await?;
        let messages = consumer
            .stream()
            .max_messages_per_batch(config.batch_messages)
            .max_bytes_per_batch(fetch_max_bytes)
            .expires(crate::cluster::PULL_EXPIRES)
            .heartbeat(crate::cluster::PULL_HEARTBEAT)
            .messages()
            .await
            .map_err(NatsError::from_display)?;
        let committer = Committer { js, config: config.clone(), store, stats: Arc::default() };
        Ok(Ingestor { messages, config, resolver, trackers: HashMap::new(), fetch_max_bytes, committer })
    }

    pub fn stats(&self) -> Arc<IngestorStats> {
        self.committer.stats.clone()
    }

    /// The next round: waits up to `batch_wait` for a first message, then takes whatever
    /// else has already arrived (up to `batch_messages` and `max_batch_bytes`), so a round
    /// is committed as soon as its messages are here instead of after a fixed wait.
    pub async fn fetch(&mut self) -> Result<Vec<Message>, IngestError> {
        let mut out = Vec::new();
        let first = match tokio::time::timeout(self.config.batch_wait, self.messages.next()).await {
            Err(_idle) => return Ok(out),
            Ok(None) => return Err(NatsError::JetStream("the ingest subscription ended".into()).into()),
            Ok(Some(Err(e))) => return Err(NatsError::from_display(e).into()),
            Ok(Some(Ok(m))) => m,
        };
        let mut bytes = first.payload.len();
        out.push(first);
        while out.len() < self.config.batch_messages && bytes < self.fetch_max_bytes {
            // `next()` is cancel-safe: a message not taken now stays buffered for the next round.
            match tokio::time::timeout(ROUND_GATHER, self.messages.next()).await {
                Ok(Some(Ok(m))) => {
                    bytes += m.payload.len();
                    out.push(m);
                }
                Ok(Some(Err(e))) => {
                    tracing::debug!(error = %e, "pull stream hiccup; committing what arrived");
                    break;
                }
                Ok(None) | Err(_) => break,
            }
        }
        crate::readiness::count_redelivered(
            "ingestor",
            out.iter().filter(|m| crate::readiness::is_redelivery(m)).count() as u64,
        );
        Ok(out)
    }

    /// Resolve keys, parse records, sort out dead letters. No side effects outside memory.
    pub async fn prepare(&mut self, messages: Vec<Message>) -> Result<PreparedRound, IngestError> {
        let mut per_org: HashMap<OrgId, Vec<NewEvent>> = HashMap::new();
        let mut letters = Vec::new();
        let bytes: usize = messages.iter().map(|m| m.payload.len()).sum();
        tracing::debug!(messages = messages.len(), bytes, "preparing an ingest round");
        for msg in &messages {
            self.prepare_message(msg, &mut per_org, &mut letters).await?;
        }
        Ok(PreparedRound { messages, per_org, letters })
    }

    /// Prepare and commit, without acking (what a round does before its ack).
    pub async fn process(&mut self, messages: Vec<Message>) -> Result<PreparedRound, IngestError> {
        let mut round = self.prepare(messages).await?;
        self.committer.commit(&mut round).await?;
        Ok(round)
    }

    async fn prepare_message(
        &mut self,
        msg: &Message,
        per_org: &mut HashMap<OrgId, Vec<NewEvent>>,
        letters: &mut Vec<DeadLetter>,
    ) -> Result<(), IngestError> {
        let subject = msg.subject.as_str().to_owned();
        let header = |name: &str| msg.headers.as_ref().and_then(|h| h.get(name)).map(|v| v.as_str().to_owned());
        // A standard header: looked up by its typed name (a string lookup would miss it).
        let msg_id = msg.headers.as_ref().and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID));
        let base = dedupe_base_of(msg_id.map(|v| v.as_str()), &msg.payload);
        let whole = |reason: String| DeadLetter {
            reason,
            source_subject: subject.clone(),
            record_index: None,
            owner: None,
            dedupe_id: format!("{subject}|{base}|message"),
            body: msg.payload.to_vec(),
        };
        let source = match self.config.source_of_subject(&subject).and_then(SourceType::parse) {
            Some(s) => s,
            None => {
                letters.push(whole(format!("unknown source type in subject {subject}")));
                return Ok(());
            }
        };
        if msg.payload.len() > self.config.max_message_bytes {
            letters.push(whole(format!(
                "message too large: {} bytes (limit {})",
                msg.payload.len(),
                self.config.max_message_bytes
            )));
            return Ok(());
        }
        let resolved = match header(HEADER_INGEST_KEY) {
            None => {
                letters.push(whole("missing ingest key".into()));
                return Ok(());
            }
            Some(key) => match self.resolver.resolve(key.trim()).await? {
                KeyStatus::Valid(r) => r,
                other => {
                    letters.push(whole(other.refusal().unwrap_or("ingest key refused").into()));
                    return Ok(());
                }
            },
        };
        let Ok(body) = std::str::from_utf8(&msg.payload) else {
            letters.push(whole("body is not UTF-8".into()));
            return Ok(());
        };
        if self.trackers.len() >= MAX_TRACKERS && !self.trackers.contains_key(&resolved.key_id) {
            self.trackers.clear();
        }
        let tracker = self.trackers.entry(resolved.key_id).or_default();
        // The publish time, not ours: a message redelivered tomorrow is judged as it was today.
        let received_at = msg
            .info()
            .ok()
            .and_then(|i| chrono::DateTime::from_timestamp(i.published.unix_timestamp(), i.published.nanosecond()))
            .unwrap_or_else(chrono::Utc::now);
        let prepared = prepare_records(received_at, resolved.key_id, source, None, body, &base, tracker);
        for r in prepared.rejected {
            letters.push(DeadLetter {
                reason: format!("parse error: {}", r.reason),
                source_subject: subject.clone(),
                record_index: Some(r.index),
                owner: Some((resolved.org_id, resolved.key_id)),
                // Scoped by key: a producer cannot pre-empt another key's dead letters.
                dedupe_id: format!("{subject}|{}|{base}|{}", resolved.key_id, r.index),
                body: r.record.into_bytes(),
            });
        }
        per_org.entry(resolved.org_id).or_default().extend(prepared.events);
        Ok(())
    }
}

/// Run an ingestor replica until `shutdown` resolves.
///
/// Two stages overlap: one task fetches and prepares the next round (network and parsing)
/// while this one commits and acks the previous (database). At most two rounds are in
/// memory, each bounded by `batch_messages` and `max_batch_bytes`. Transient failures are logged and
/// retried after a pause; the messages of a failed round are given back for redelivery.
pub async fn run_ingestor(
    config: IngestConfig,
    client: async_nats::Client,
    store: EventStore,
    resolver: Arc<IngestKeyResolver>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<Arc<IngestorStats>, IngestError> {
    let undeliverable = crate::cluster::Undeliverable {
        stream: config.stream_name.clone(),
        consumer: config.consumer_name.clone(),
        dlq_subject: config.dlq_subject(),
    };
    let mut ingestor = Ingestor::new(client, config, store, resolver).await?;
    let committer = ingestor.committer.clone();
    // Messages JetStream gave up on (max_deliver) become dead letters with their reason.
    let dead_letterer =
        crate::cluster::spawn_undeliverable_dead_letterer(committer.js.clone(), undeliverable, "ingest messages");
    let (tx, mut rx) = tokio::sync::mpsc::channel::<PreparedRound>(1);
    let preparer = tokio::spawn(async move {
        loop {
            // Fetch only once the channel has room, so at most two rounds are in memory:
            // the one being committed and the one prepared next.
            let Ok(permit) = tx.reserve().await else { return };
            let messages = match ingestor.fetch().await {
                Ok(m) if m.is_empty() => continue,
                Ok(m) => m,
                Err(e) => {
                    tracing::error!(error = %e, "fetching from the ingest stream failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            let backup = messages.clone();
            match ingestor.prepare(messages).await {
                Ok(round) => permit.send(round),
                Err(e) => {
                    tracing::error!(error = %e, "preparing an ingest round failed; redelivering");
                    ingestor.committer.nak(&backup).await;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    });
    tokio::pin!(shutdown);
    loop {
        let mut round = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            r = rx.recv() => match r { Some(r) => r, None => break },
        };
        match committer.commit(&mut round).await {
            Ok(()) => committer.ack(&round.messages).await,
            Err(e) => {
                tracing::error!(error = %e, "committing an ingest round failed; redelivering");
                committer.nak(&round.messages).await;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    preparer.abort();
    dead_letterer.abort();
    // A round prepared but not committed goes back now rather than after `ack_wait`.
    while let Ok(round) = rx.try_recv() {
        committer.nak(&round.messages).await;
    }
    Ok(committer.stats)
}
