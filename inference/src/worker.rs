//! The detection worker: a durable JetStream pull consumer on the committed security
//! events (`<prefix>events.*.SecurityEventObserved` of stream `XDR_EVENTS`), the detector
//! core, and the incident commands it issues, executed idempotently through the command
//! handler.
//!
//! Trust: a message is only a pointer to `(org, org_seq)`; the event processed is the one
//! the log holds there ([`crate::verify`]). Messages the log does not back, or about an org
//! the database does not know, are refused: logged, counted (`/metrics`), dead-lettered on
//! `<prefix>xdr.dlq.events` with the org in `Xdr-Org-Id`, and terminated.
//!
//! Restart safety: the first time an org is seen, its windows are rebuilt from the log (the
//! org's recent `SecurityEventObserved` events) and the commands that rebuild yields are
//! executed too — they are no-ops when already applied, and they recover detections lost
//! when a previous run died between processing and appending. Events delivered afterwards
//! that the rebuild already read are recognised by their `org_seq` and skipped.
//!
//! Batches: deliveries that have already arrived (up to [`VERIFY_BATCH`]) are checked
//! against the log together, and each org's share is detected and its commands committed in
//! one append transaction (every incident stream loaded once) before its messages are
//! acknowledged — one round of queries per org and batch instead of one per event, which is
//! what lets detection keep up with ingest. When appending fails the org's state is dropped
//! and its share is negatively acknowledged, so the redelivery rebuilds. Messages that keep
//! failing are given up on after `XDR_NATS_MAX_DELIVER` deliveries and dead-lettered with
//! their reason (`xdr_commands::cluster::run_undeliverable_dead_letterer`).
//!
//! Baselines: before `Open`/`Escalate` commands are executed, their `baseline_score` is
//! filled from the org's baseline in force at the triggering event ([`BaselineCache`]).
//!
//! Partitions: with [`DetectorConfig::partition`] `i/n`, the worker consumes through its
//! own durable consumer (`<durable>-<i>-of-<n>`), processes only the sources the partition
//! owns and acknowledges the others; its rebuilds replay only its own sources.

use chrono::{DateTime, Utc};
use futures::StreamExt;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::Duration;
use xdr_commands::handler::{execute_all, BatchCommand, CommandError};
use xdr_commands::store::read_org_with;
use xdr_commands::{EventStore, StoreError, StoredEvent};
use xdr_domain::ids::OrgId;
use xdr_domain::incident::{Incident, IncidentCommand};
use xdr_domain::EventMetadata;

use crate::baselines::BaselineCache;
use crate::coalesce::coalesce_attachments;
use crate::detector::{Detector, IssuedCommand};
use crate::partition::Partition;
use crate::response::{Responder, ResponseSettings};
use crate::verify::{verify_batch, Refusal, Verdict};
use xdr_commands::ingest::dlq::header_safe;

/// Where the worker reads from. Tests use their own prefix so they run in parallel.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorConfig {
    /// Subject prefix, `xdr.` in production: events arrive on `<prefix>events.<org>.<Type>`.
    pub subject_prefix: String,
    pub stream_name: String,
    /// Durable consumer name; with several partitions each uses `<durable>-<i>-of-<n>`.
    pub durable: String,
    /// Which share of the sources this worker handles (default: all of them).
    pub partition: Partition,
    /// How far back (by `recorded_at`) a rebuild reads an org's log.
    pub rebuild_lookback: Duration,
    /// Upper bound on the events one rebuild reads.
    pub rebuild_max_events: usize,
    /// Containment policies evaluated on opened/escalated incidents (`None`: detection only).
    pub response: Option<ResponseSettings>,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            subject_prefix: "xdr.".to_owned(),
            stream_name: "XDR_EVENTS".to_owned(),
            durable: "detector".to_owned(),
            partition: Partition::default(),
            rebuild_lookback: Duration::from_secs(2 * 3600),
            rebuild_max_events: 1_000_000,
            response: None,
        }
    }
}

impl DetectorConfig {
    /// The subjects the stream captures (all committed events).
    pub fn stream_subjects(&self) -> Vec<String> {
        vec![format!("{}events.>", self.subject_prefix)]
    }

    /// The durable consumer of this worker's partition: `durable` itself with one partition
    /// (unchanged from before partitioning), else `<durable>-<i>-of-<n>`, so each partition
    /// keeps its own position and a change of `n` starts fresh consumers.
    pub fn consumer_name(&self) -> String {
        if self.partition.count() == 1 {
            self.durable.clone()
        } else {
            format!("{}-{}-of-{}", self.durable, self.partition.index(), self.partition.count())
        }
    }

    /// Where refused messages go: `<prefix>xdr.dlq.events` (kept by the ingest pipeline's
    /// dead-letter stream, `<prefix>xdr.dlq.>`).
    pub fn dead_letter_subject(&self) -> String {
        format!("{}dlq.events", self.subject_prefix)
    }

    /// The subjects the detector consumes.
    pub fn filter_subject(&self) -> String {
        format!("{}events.*.SecurityEventObserved", self.subject_prefix)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("NATS: {0}")]
    Nats(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stored event cannot be decoded: {0}")]
    Corrupt(String),
}

fn nats(e: impl std::error::Error + Send + Sync + 'static) -> WorkerError {
    WorkerError::Nats(Box::new(e))
}

/// Counters of one worker run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerStats {
    pub messages: u64,
    pub poison: u64,
    /// Messages the log does not back (forged, stale, subject and payload disagreeing).
    pub refused: u64,
    /// Messages about an org this database does not know.
    pub unknown_org: u64,
    pub commands: u64,
    pub events_appended: u64,
    pub rebuilds: u64,
    pub failures: u64,
    /// Events whose detection could not be committed while their org's others could: dead-lettered.
    pub uncommitted: u64,
    /// Security events (delivered or read by a rebuild) skipped because another partition
    /// owns their source; delivered ones are acknowledged unprocessed.
    pub other_partition: u64,
}

/// Execute commands in order, idempotently: per org, all of them in one append transaction
/// (each incident stream loaded once; see [`execute_all`]). Returns how many events were
/// appended. A command the incident refuses (e.g. evidence for an incident that does not
/// exist) is logged and skipped; store failures stop and are returned.
pub async fn execute_commands(store: &EventStore, commands: &[IssuedCommand]) -> Result<usize, WorkerError> {
    let mut written = 0;
    for (org, commands) in by_key(commands, |c| c.org_id) {
        let streams: Vec<String> = commands.iter().map(|c| c.incident_id.stream_id()).collect();
        let metadata: Vec<EventMetadata> = commands
            .iter()
            .map(|c| EventMetadata {
                actor: Some("detector".to_owned()),
                causation_id: Some(c.causation_id),
                ..Default::default()
            })
            .collect();
        let batch: Vec<BatchCommand<'_, IncidentCommand>> = commands
            .iter()
            .zip(&streams)
            .zip(&metadata)
            .map(|((c, stream_id), metadata)| BatchCommand {
                stream_id,
                command: &c.command,
                metadata,
                command_id: Some(c.command_id),
            })
            .collect();
        match execute_all::<Incident>(store, org, &batch).await {
            Ok(done) => {
                written += done.written;
                for (index, error) in done.refused {
                    let c = commands[index];
                    tracing::warn!(org_id = %org, incident_id = %c.incident_id, error = %error, "incident command refused");
                }
            }
            // `execute_all` reports refusals per command instead.
            Err(CommandError::Domain(e)) => {
                tracing::warn!(org_id = %org, error = %e, "incident commands refused");
            }
            Err(CommandError::Store(e)) => return Err(e.into()),
            Err(CommandError::Corrupt(e)) => return Err(WorkerError::Corrupt(e)),
        }
    }
    Ok(written)
}

/// Group items by a key, keeping each group's items in their order and the groups in order
/// of first appearance.
fn by_key<T, K: PartialEq>(items: impl IntoIterator<Item = T>, key_of: impl Fn(&T) -> K) -> Vec<(K, Vec<T>)> {
    let mut groups: Vec<(K, Vec<T>)> = Vec::new();
    for item in items {
        let key = key_of(&item);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, group)) => group.push(item),
            None => groups.push((key, vec![item])),
        }
    }
    groups
}

/// Feed the org's recent security events (recorded within `config.rebuild_lookback`, at
/// most `config.rebuild_max_events`, oldest first) into the detector and return the
/// commands that yields. Events the detector already holds are skipped.
pub async fn rebuild_org(
    detector: &mut Detector,
    store: &EventStore,
    org: OrgId,
    config: &DetectorConfig,
) -> Result<Vec<IssuedCommand>, StoreError> {
    const PAGE: i64 = 10_000;
    let Some((head, _)) = store.head(org).await? else { return Ok(Vec::new()) };
    let cutoff: DateTime<Utc> = Utc::now() - chrono::Duration::from_std(config.rebuild_lookback).unwrap_or_default();
    // Walk back page by page until events are older than the cutoff; then replay forward.
    let mut pages: Vec<Vec<StoredEvent>> = Vec::new();
    let mut until = head;
    let mut count = 0usize;
    while until > 0 && count < config.rebuild_max_events {
        let page = read_org_with(store.pool(), org, (until - PAGE).max(0), until, PAGE).await?;
        let reached_cutoff = page.first().is_none_or(|e| e.recorded_at < cutoff);
        let kept: Vec<StoredEvent> =
            page.into_iter().filter(|e| e.event_type == "SecurityEventObserved" && e.recorded_at >= cutoff).collect();
        count += kept.len();
        pages.push(kept);
        if reached_cutoff {
            break;
        }
        until -= PAGE;
    }
    let mut commands = Vec::new();
    for page in pages.iter().rev() {
        for e in page {
            commands.extend(detector.process(e));
        }
    }
    tracing::info!(org_id = %org, events = count, commands = commands.len(), "detector windows rebuilt from the log");
    Ok(commands)
}

/// Run the detector until `shutdown` resolves or the subscription ends.
pub async fn run_detector(
    config: DetectorConfig,
    store: EventStore,
    jetstream: async_nats::jetstream::Context,
    mut detector: Detector,
    shutdown: impl Future<Output = ()>,
) -> Result<WorkerStats, WorkerError> {
    use async_nats::jetstream::{consumer, stream, AckKind};
    let stream = xdr_commands::cluster::ensure_stream(
        &jetstream,
        stream::Config { name: config.stream_name.clone(), subjects: config.stream_subjects(), ..Default::default() },
    )
    .await
    .map_err(nats)?;
    detector.set_partition(config.partition);
    let durable = config.consumer_name();
    let settings = xdr_commands::cluster::JetStreamSettings::from_env().map_err(nats)?;
    let consumer = xdr_commands::cluster::ensure_consumer(
        &stream,
        consumer::pull::Config {
            filter_subject: config.filter_subject(),
            ..settings.consumer(&durable, Duration::from_secs(60), 1024)
        },
    )
    .await
    .map_err(nats)?;
    let mut messages = xdr_commands::cluster::pull_messages(&consumer, 2 * VERIFY_BATCH).await.map_err(nats)?;
    // Messages JetStream gave up on (max_deliver) become dead letters with their reason.
    let undeliverable = xdr_commands::cluster::Undeliverable {
        stream: config.stream_name.clone(),
        consumer: durable.clone(),
        dlq_subject: config.dead_letter_subject(),
    };
    let dead_letterer =
        xdr_commands::cluster::spawn_undeliverable_dead_letterer(jetstream.clone(), undeliverable, "event messages");
    let mut responder = match &config.response {
        Some(settings) => Some(Responder::connect(jetstream.clone(), settings).await.map_err(nats)?),
        None => None,
    };
    let mut rebuilt: HashSet<OrgId> = HashSet::new();
    // Events whose detections could not be committed, until their delivery is dead-lettered
    // (a rebuild may meet them before they are delivered).
    let mut uncommittable: HashMap<uuid::Uuid, String> = HashMap::new();
    let mut baselines = BaselineCache::new();
    let mut stats = WorkerStats::default();
    tokio::pin!(shutdown);
    tracing::info!(stream = %config.stream_name, subject = %config.filter_subject(), durable = %durable,
        partition = %config.partition, "detector consuming");

    loop {
        // A containment evaluation that failed (the database away) is retried on its own
        // schedule, also when no event arrives.
        let retry_at = responder.as_ref().and_then(Responder::next_retry);
        let first = tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep_until(retry_at.unwrap_or_else(std::time::Instant::now).into()), if retry_at.is_some() => {
                if let Some(r) = responder.as_mut() {
                    r.retry_due(&store).await;
                }
                continue;
            }
            next = messages.next() => match next {
                None => break,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "detector pull failed; retrying");
                    continue;
                }
                Some(Ok(m)) => m,
            },
        };
        // Take what else has already arrived, so the log is asked about a batch at once.
        let mut batch = vec![first];
        while batch.len() < VERIFY_BATCH {
            match tokio::time::timeout(GATHER, messages.next()).await {
                Ok(Some(Ok(m))) => batch.push(m),
                _ => break,
            }
        }
        stats.messages += batch.len() as u64;
        let redelivered = batch.iter().filter(|m| xdr_commands::readiness::is_redelivery(m)).count();
        xdr_commands::readiness::count_redelivered("detector", redelivered as u64);
        let duplicates_before = detector.stats().duplicates;
        let evicted_before = detector.stats().evicted_sources;
        let claims: Vec<(&str, &[u8])> = batch.iter().map(|m| (m.subject.as_str(), &m.payload[..])).collect();
        let verdicts = match verify_batch(&store, &config.subject_prefix, &claims).await {
            Ok(v) => v,
            Err(e) => {
                stats.failures += 1;
                tracing::error!(error = %e, "checking events against the log failed; will retry");
                for m in &batch {
                    m.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await.map_err(WorkerError::Nats)?;
                }
                continue;
            }
        };
        let mut accepted: Vec<(&async_nats::jetstream::Message, StoredEvent)> = Vec::with_capacity(batch.len());
        for (msg, verdict) in batch.iter().zip(verdicts) {
            match verdict {
                Verdict::Accepted(stored) => accepted.push((msg, stored)),
                Verdict::Refused { org, reason } => {
                    refuse(&jetstream, &config, &mut stats, msg, org, &reason).await;
                    msg.ack_with(AckKind::Term).await.map_err(WorkerError::Nats)?;
                }
            }
        }
        // One org's deliveries are detected, committed and acknowledged together; a failure
        // redelivers that org's share of the batch only.
        for (org, deliveries) in by_key(accepted, |(_, stored)| OrgId(stored.org_id)) {
            let mut ctx = Ctx { detector: &mut detector, baselines: &mut baselines, store: &store, config: &config };
            let events: Vec<&StoredEvent> = deliveries.iter().map(|(_, stored)| stored).collect();
            match handle(&mut ctx, &mut rebuilt, &mut stats, responder.as_mut(), org, &events).await {
                Ok(failed) => {
                    uncommittable.extend(failed);
                    for (msg, stored) in &deliveries {
                        match uncommittable.remove(&stored.event_id) {
                            None => msg.ack().await.map_err(WorkerError::Nats)?,
                            Some(reason) => {
                                stats.uncommitted += 1;
                                tracing::error!(org_id = %org, org_seq = stored.org_seq, %reason, "event dead-lettered");
                                dead_letter(&jetstream, &config, msg, Some(stored.org_id), &reason).await;
                                msg.ack_with(AckKind::Term).await.map_err(WorkerError::Nats)?;
                            }
                        }
                    }
                }
                Err(e) => {
                    stats.failures += 1;
                    let (first, last) = (events[0].org_seq, events[events.len() - 1].org_seq);
                    tracing::error!(org_id = %org, first_seq = first, last_seq = last, error = %e,
                        "detection failed; will rebuild and retry");
                    detector.forget_org(org);
                    rebuilt.remove(&org);
                    for (msg, _) in &deliveries {
                        msg.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await.map_err(WorkerError::Nats)?;
                    }
                }
            }
        }
        let duplicates = detector.stats().duplicates.saturating_sub(duplicates_before);
        let evicted = detector.stats().evicted_sources.saturating_sub(evicted_before);
        if evicted > 0 {
            tracing::warn!(
                evicted_sources = evicted,
                held_sources = detector.source_count(),
                "detector memory bound reached: forgot the sources quiet longest (raise XDR_DETECTOR_MAX_OBSERVATIONS)"
            );
        }
        xdr_commands::readiness::count_duplicates("detector", duplicates);
    }
    dead_letterer.abort();
    stats.other_partition = detector.stats().other_partition;
    if let Some(r) = &responder {
        tracing::info!(stats = ?r.stats(), "detector response stopped");
    }
    Ok(stats)
}

/// Most deliveries checked against the log with one query per org.
const VERIFY_BATCH: usize = 256;
/// How long a batch keeps gathering deliveries that are already on their way.
const GATHER: Duration = Duration::from_millis(2);

/// Log, count and dead-letter a refused message. The dead letter carries the org the subject
/// names (`Xdr-Org-Id`) so an operator can tell whose it is; failing to store it is logged,
/// not retried (the refusal itself is in the log line and the counters).
async fn refuse(
    js: &async_nats::jetstream::Context,
    config: &DetectorConfig,
    stats: &mut WorkerStats,
    msg: &async_nats::jetstream::Message,
    org: Option<uuid::Uuid>,
    reason: &Refusal,
) {
    use xdr_commands::trust::{Refusals, REFUSALS};
    match reason {
        Refusal::Undecodable(_) => stats.poison += 1,
        Refusal::UnknownOrg => {
            stats.unknown_org += 1;
            Refusals::count(&REFUSALS.events_unknown_org);
        }
        Refusal::SubjectMismatch | Refusal::NotInLog => {
            stats.refused += 1;
            Refusals::count(&REFUSALS.events_forged);
        }
    }
    let org_text = org.map_or_else(|| "-".to_owned(), |o| o.to_string());
    tracing::warn!(subject = %msg.subject, org_id = %org_text, reason = %reason, "event message refused");
    dead_letter(js, config, msg, org, &reason.to_string()).await;
}

/// Dead-letter a message with its reason and the org it concerns (`Xdr-Org-Id`, `-` when
/// unknown). Failing to store the dead letter is logged, not retried: the reason is in the
/// log line and the counters as well.
async fn dead_letter(
    js: &async_nats::jetstream::Context,
    config: &DetectorConfig,
    msg: &async_nats::jetstream::Message,
    org: Option<uuid::Uuid>,
    reason: &str,
) {
    let org_text = org.map_or_else(|| "-".to_owned(), |o| o.to_string());
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(xdr_commands::ingest::dlq::HEADER_REASON, header_safe(reason).as_str());
    headers.insert(xdr_commands::ingest::dlq::HEADER_SOURCE_SUBJECT, header_safe(msg.subject.as_str()).as_str());
    headers.insert(xdr_commands::ingest::dlq::HEADER_ORG_ID, org_text.as_str());
    let dedupe = match msg.info() {
        Ok(info) => format!("{}|{}|{}", config.stream_name, info.stream_sequence, org_text),
        Err(_) => format!("{}|{}", msg.subject, org_text),
    };
    let publish = async_nats::jetstream::context::Publish::build()
        .headers(headers)
        .payload(msg.payload.clone())
        .message_id(dedupe);
    let stored = match js.send_publish(config.dead_letter_subject(), publish).await {
        Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = stored {
        tracing::warn!(error = %e, subject = %msg.subject, "event message not dead-lettered");
    }
}

struct Ctx<'a> {
    detector: &'a mut Detector,
    baselines: &'a mut BaselineCache,
    store: &'a EventStore,
    config: &'a DetectorConfig,
}

/// Detect on one org's share of a batch (rebuilding the org's windows first if needed) and
/// commit what it decides, in one append. Returns the events whose detections could not be
/// committed while the others' could (with why): poison, to be dead-lettered when delivered
/// rather than retried with the whole share.
async fn handle(
    ctx: &mut Ctx<'_>,
    rebuilt: &mut HashSet<OrgId>,
    stats: &mut WorkerStats,
    mut responder: Option<&mut Responder>,
    org: OrgId,
    events: &[&StoredEvent],
) -> Result<Vec<(uuid::Uuid, String)>, WorkerError> {
    let mut failed = Vec::new();
    if !rebuilt.contains(&org) {
        let mut commands = coalesce_attachments(rebuild_org(ctx.detector, ctx.store, org, ctx.config).await?);
        stats.commands += commands.len() as u64;
        ctx.baselines.score_commands(ctx.store, &mut commands).await?;
        let done = commit_isolating(ctx.store, &commands).await?;
        stats.events_appended += done.written as u64;
        if let Some(r) = responder.as_deref_mut() {
            r.respond(ctx.store, &done.committed(&commands)).await;
        }
        failed = done.failed;
        stats.rebuilds += 1;
        rebuilt.insert(org);
    }
    let mut commands = coalesce_attachments(events.iter().flat_map(|stored| ctx.detector.process(stored)).collect());
    stats.commands += commands.len() as u64;
    ctx.baselines.score_commands(ctx.store, &mut commands).await?;
    let done = commit_isolating(ctx.store, &commands).await?;
    stats.events_appended += done.written as u64;
    // After the incident commands are committed; never fails (see `response`).
    if let Some(r) = responder {
        r.respond(ctx.store, &done.committed(&commands)).await;
    }
    failed.extend(done.failed);
    Ok(failed)
}

/// What [`commit_isolating`] did.
struct Committed {
    written: usize,
    /// Causing events whose incidents' commands could not be committed, with the error.
    failed: Vec<(uuid::Uuid, String)>,
}

impl Committed {
    /// The commands that took effect (those of incidents that did not fail).
    fn committed(&self, commands: &[IssuedCommand]) -> Vec<IssuedCommand> {
        if self.failed.is_empty() {
            return commands.to_vec();
        }
        let failed: HashSet<uuid::Uuid> = self.failed.iter().map(|(id, _)| *id).collect();
        commands.iter().filter(|c| !failed.contains(&c.causation_id)).cloned().collect()
    }
}

/// Commit the commands in one append per org. If that fails while the database answers, the
/// failure is these commands' own: they are committed incident by incident, so that one
/// incident whose events cannot be stored does not hold back every other detection of its
/// org, and the incidents that fail are reported with the events that caused them. A
/// failure while the database does not answer, or of every incident of several, is general
/// and returned, to be retried.
async fn commit_isolating(store: &EventStore, commands: &[IssuedCommand]) -> Result<Committed, WorkerError> {
    let error = match execute_commands(store, commands).await {
        Ok(written) => return Ok(Committed { written, failed: Vec::new() }),
        Err(e) => e,
    };
    if !store.answers().await {
        return Err(error);
    }
    let incidents = by_key(commands, |c| c.incident_id);
    if incidents.len() == 1 {
        let reason = format!("its detection could not be committed: {error}");
        return Ok(Committed {
            written: 0,
            failed: commands.iter().map(|c| (c.causation_id, reason.clone())).collect(),
        });
    }
    tracing::warn!(error = %error, incidents = incidents.len(),
        "committing detections together failed; committing incident by incident");
    let mut done = Committed { written: 0, failed: Vec::new() };
    let mut last_error = None;
    for (_, group) in &incidents {
        let group: Vec<IssuedCommand> = group.iter().map(|c| (*c).clone()).collect();
        match execute_commands(store, &group).await {
            Ok(written) => done.written += written,
            Err(e) => {
                let reason = format!("its detection could not be committed: {e}");
                done.failed.extend(group.iter().map(|c| (c.causation_id, reason.clone())));
                last_error = Some(e);
            }
        }
    }
    match last_error {
        Some(e) if done.failed.len() == commands.len() => Err(e),
        _ => Ok(done),
    }
}
