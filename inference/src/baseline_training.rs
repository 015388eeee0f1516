//! Training an org's baseline from its own history: one feature vector per source (its last
//! hour of activity), a linfa model of what is normal for this org, stored as the event
//! `BaselineTrained` in the org's log so it is replayable and auditable.
//!
//! Two ways in: `mini-xdr models train-baseline` ([`train_baseline`], the operator's forced
//! retrain), and the detector's periodic [`BaselineTrainer`], which trains every org that
//! has gathered enough new history since its last baseline. Several detector replicas may
//! run the trainer at once: each trains only the orgs its partition owns, and the append is
//! guarded twice — the event id is derived from (org, next baseline version) and the append
//! expects the baseline stream at its current version — so a race appends one baseline.

use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::time::Duration;
use uuid::Uuid;
use xdr_commands::store::{read_org_with, recent_source_counts, stream_tail, EventStore, ExpectedVersion, NewEvent};
use xdr_commands::StoreError;
use xdr_domain::detection::{baseline_stream_id, BaselineTrained};
use xdr_domain::ids::OrgId;
use xdr_domain::{Event, EventMetadata};

use crate::features::{extract, observe, FeatureVector};
use crate::model::baseline::MIN_SAMPLES;
use crate::model::{Baseline, BaselineError};
use crate::partition::Partition;
use crate::scoring::ModelScorer;
use crate::windows::SourceWindow;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Store(#[from] xdr_commands::StoreError),
    #[error("cannot train a baseline for this org: {0}")]
    Baseline(#[from] BaselineError),
    #[error("baseline fitting panicked: {0}")]
    Panicked(String),
}

/// Namespace of the automatic trainer's event ids (UUIDv5 of `<org>/baseline/<version>`).
const BASELINE_NAMESPACE: Uuid = Uuid::from_u128(0x6d2f_90a4_5b1e_4c3a_9f07_ba5e_11e0_0001);

/// Fit and store the org's baseline over its whole history; returns it with the number of
/// source windows used. Always appends (the operator asked for it).
pub async fn train_baseline(
    store: &EventStore,
    org: OrgId,
    seed: u64,
    metadata: &EventMetadata,
) -> Result<(Baseline, usize), TrainError> {
    let through = store.head(org).await?.map_or(0, |h| h.0);
    let (baseline, windows) = fit_org(store, org, through, usize::MAX, seed).await?;
    let stream = baseline_stream_id(org);
    let event = baseline_event(org, &baseline, windows, Utc::now());
    store
        .append(
            org,
            &stream,
            ExpectedVersion::Any,
            vec![NewEvent::from_event(Uuid::now_v7(), &stream, &event, metadata)],
        )
        .await?;
    Ok((baseline, windows))
}

fn baseline_event(org: OrgId, baseline: &Baseline, windows: usize, at: DateTime<Utc>) -> Event {
    Event::BaselineTrained(BaselineTrained {
        org_id: org,
        feature_version: crate::features::vector::FEATURE_VERSION,
        params: baseline.to_json(),
        trained_on: windows as u64,
        at,
    })
}

/// One vector per source over the org's newest `max_events` events up to `through` (its
/// last hour of activity there), in source order, so the same history gives the same input.
pub async fn training_vectors(
    store: &EventStore,
    org: OrgId,
    through: i64,
    max_events: usize,
) -> Result<Vec<FeatureVector>, StoreError> {
    const PAGE: i64 = 5_000;
    let mut windows: BTreeMap<String, SourceWindow> = BTreeMap::new();
    let mut until = through;
    let mut read = 0usize;
    // Newest first, page by page, so a long history costs at most `max_events` rows.
    while until > 0 && read < max_events {
        let page = read_org_with(store.pool(), org, (until - PAGE).max(0), until, PAGE).await?;
        read += page.len();
        for stored in &page {
            let Ok(Event::SecurityEventObserved(ev)) = stored.event() else { continue };
            let Some(ip) = ev.src_ip else { continue };
            let obs = observe(stored.org_seq, stored.event_id, &ev);
            // History, not a live stream: accept any order, keep what the windows need.
            let _ = windows.entry(ip.to_string()).or_default().insert(obs, i64::MAX / 4, 100_000);
        }
        until -= PAGE;
    }
    Ok(windows.values().map(|w| ModelScorer::vector_of(&extract(w, w.watermark()))).collect())
}

async fn fit_org(
    store: &EventStore,
    org: OrgId,
    through: i64,
    max_events: usize,
    seed: u64,
) -> Result<(Baseline, usize), TrainError> {
    let vectors = training_vectors(store, org, through, max_events).await?;
    let n = vectors.len();
    // k-means is CPU-bound: keep it off the async workers.
    let baseline = tokio::task::spawn_blocking(move || Baseline::fit(&vectors, seed))
        .await
        .map_err(|e| TrainError::Panicked(e.to_string()))??;
    Ok((baseline, n))
}

/// When an org gets an automatic baseline (`XDR_BASELINE_*`, see docs/DETECTION.md).
#[derive(Debug, Clone, PartialEq)]
pub struct AutoTrainConfig {
    /// Distinct source ips among the security events since the last baseline (at least
    /// `MIN_SAMPLES`: the fit needs that many windows).
    pub min_sources: usize,
    /// Security events since the last baseline (the first baseline: since the start).
    pub min_events: u64,
    /// Minimum age of the last baseline before the next one.
    pub retrain_after: Duration,
    /// How often the trainer looks at the orgs.
    pub check_every: Duration,
    /// The newest this many events of the org are the training data (bounds time and memory).
    pub max_events: usize,
    pub seed: u64,
}

impl Default for AutoTrainConfig {
    fn default() -> Self {
        AutoTrainConfig {
            min_sources: 50,
            min_events: 1_000,
            retrain_after: Duration::from_secs(24 * 3600),
            check_every: Duration::from_secs(300),
            max_events: 500_000,
            seed: 20_261_126,
        }
    }
}

/// What the trainer did for one org.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrainOutcome {
    /// A `BaselineTrained` was appended as version `version` of the baseline stream.
    Trained {
        version: i64,
        windows: usize,
    },
    /// Another trainer appended this version first; nothing was written.
    LostRace {
        version: i64,
    },
    /// The last baseline is younger than `retrain_after`.
    TooRecent,
    TooFewEvents {
        found: u64,
        needed: u64,
    },
    TooFewSources {
        found: usize,
        needed: usize,
    },
}

/// The detector's periodic trainer (one per detector replica).
pub struct BaselineTrainer {
    config: AutoTrainConfig,
    partition: Partition,
    /// Orgs that lacked history at this head: nothing changes until their log grows.
    short_at: HashMap<OrgId, i64>,
}

impl BaselineTrainer {
    pub fn new(mut config: AutoTrainConfig, partition: Partition) -> Self {
        config.min_sources = config.min_sources.max(MIN_SAMPLES);
        BaselineTrainer { config, partition, short_at: HashMap::new() }
    }

    pub fn config(&self) -> &AutoTrainConfig {
        &self.config
    }

    /// One pass over the orgs this partition owns; failures of one org are logged and do
    /// not stop the others.
    pub async fn run_once(
        &mut self,
        store: &EventStore,
        now: DateTime<Utc>,
    ) -> Result<Vec<(OrgId, TrainOutcome)>, StoreError> {
        let mut out = Vec::new();
        for (org, head) in store.org_heads().await? {
            if !self.partition.owns_org(org) || self.short_at.get(&org) == Some(&head) {
                continue;
            }
            match train_if_due(store, org, head, &self.config, now).await {
                Ok(outcome) => {
                    match &outcome {
                        TrainOutcome::TooFewEvents { .. } | TrainOutcome::TooFewSources { .. } => {
                            self.short_at.insert(org, head);
                        }
                        TrainOutcome::Trained { version, windows } => {
                            self.short_at.remove(&org);
                            tracing::info!(org_id = %org, version, windows, "baseline trained");
                        }
                        _ => {
                            self.short_at.remove(&org);
                        }
                    }
                    out.push((org, outcome));
                }
                Err(e) => tracing::warn!(org_id = %org, error = %e, "baseline training failed; next pass retries"),
            }
        }
        Ok(out)
    }

    /// Run passes every `check_every` until `shutdown` resolves.
    pub async fn run(mut self, store: EventStore, shutdown: impl Future<Output = ()>) {
        let mut tick = tokio::time::interval(self.config.check_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        tracing::info!(config = ?self.config, partition = %self.partition, "baseline trainer running");
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tick.tick() => {}
            }
            if let Err(e) = self.run_once(&store, Utc::now()).await {
                tracing::warn!(error = %e, "baseline trainer pass failed; retrying next interval");
            }
        }
    }
}

/// Train the org's next baseline if it qualifies. `head` is the org's log head; the data is
/// its events up to there.
pub async fn train_if_due(
    store: &EventStore,
    org: OrgId,
    head: i64,
    config: &AutoTrainConfig,
    now: DateTime<Utc>,
) -> Result<TrainOutcome, TrainError> {
    match prepare(store, org, head, config, now).await? {
        Ok(fitted) => commit(store, fitted).await,
        Err(outcome) => Ok(outcome),
    }
}

/// A baseline fitted for the org's next baseline version, not yet appended.
#[derive(Debug)]
pub struct Fitted {
    org: OrgId,
    /// The baseline stream's version when the trainer looked.
    version: i64,
    baseline: Baseline,
    windows: usize,
    at: DateTime<Utc>,
}

/// The first half of [`train_if_due`]: decide and fit, or say why not (`Err(outcome)`).
pub async fn prepare(
    store: &EventStore,
    org: OrgId,
    head: i64,
    config: &AutoTrainConfig,
    now: DateTime<Utc>,
) -> Result<Result<Fitted, TrainOutcome>, TrainError> {
    let stream = baseline_stream_id(org);
    let (last_seq, version) = match stream_tail(store.pool(), org, &stream).await? {
        Some(tail) => {
            let retrain = chrono::Duration::from_std(config.retrain_after).unwrap_or(chrono::Duration::MAX);
            if now < tail.recorded_at + retrain {
                return Ok(Err(TrainOutcome::TooRecent));
            }
            (tail.org_seq, tail.stream_version)
        }
        None => (0, 0),
    };
    // Counted over at most `max_events` of the newest events, like the training data.
    let limit = i64::try_from(config.max_events).unwrap_or(i64::MAX);
    let counts = recent_source_counts(store.pool(), org, last_seq, head, limit).await?;
    let (events, sources) = (counts.events, counts.sources);
    let needed_sources = config.min_sources.max(MIN_SAMPLES);
    if events < config.min_events {
        return Ok(Err(TrainOutcome::TooFewEvents { found: events, needed: config.min_events }));
    }
    if sources < needed_sources {
        return Ok(Err(TrainOutcome::TooFewSources { found: sources, needed: needed_sources }));
    }
    let (baseline, windows) = match fit_org(store, org, head, config.max_events, config.seed).await {
        Ok(fitted) => fitted,
        Err(TrainError::Baseline(BaselineError::TooFewSamples { got, .. })) => {
            return Ok(Err(TrainOutcome::TooFewSources { found: got, needed: needed_sources }))
        }
        Err(e) => return Err(e),
    };
    Ok(Ok(Fitted { org, version, baseline, windows, at: now }))
}

/// The second half of [`train_if_due`]: append the fitted baseline as the next version,
/// unless another trainer appended that version since `prepare` looked.
pub async fn commit(store: &EventStore, fitted: Fitted) -> Result<TrainOutcome, TrainError> {
    let Fitted { org, version, baseline, windows, at: now } = fitted;
    let stream = baseline_stream_id(org);
    let next = version + 1;
    let event_id = Uuid::new_v5(&BASELINE_NAMESPACE, format!("{org}/baseline/{next}").as_bytes());
    let event = baseline_event(org, &baseline, windows, now);
    let metadata = EventMetadata::system("detector");
    let appended = store
        .append(
            org,
            &stream,
            ExpectedVersion::Exact(version),
            vec![NewEvent::from_event(event_id, &stream, &event, &metadata)],
        )
        .await;
    match appended {
        Ok(a) if a.written > 0 => Ok(TrainOutcome::Trained { version: next, windows }),
        Ok(_) | Err(StoreError::Conflict { .. }) => Ok(TrainOutcome::LostRace { version: next }),
        Err(e) => Err(e.into()),
    }
}
