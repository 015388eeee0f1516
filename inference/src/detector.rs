//! The detector core: stored events in, incident commands out. No IO.
//!
//! For each `SecurityEventObserved` it updates the (org, source ip) windows, computes the
//! features at the event's time, runs the rules and turns their hits into commands on the
//! source's incident of that hour: `Open` the first time, then `AttachEvidence` for new
//! events and `Escalate` when severity goes up, risk rises by a step, or new rules or
//! techniques join. Ids are deterministic (incident: org, source and hour; command:
//! incident, kind and triggering event id) and `now` is the event's `recorded_at`, so processing the
//! same events again — a redelivery, a restarted detector rebuilding from the log, another
//! replica — yields the same commands, which append nothing the second time.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use uuid::Uuid;
use xdr_commands::StoredEvent;
use xdr_domain::ids::{IncidentId, OrgId};
use xdr_domain::incident::{
    command_id_for, hour_bucket, incident_id_for, AttachEvidence, EscalateIncident, FeatureValue, IncidentCategory,
    IncidentCommand, ModelScores, OpenIncident, Severity,
};
use xdr_domain::telemetry::SecurityEvent;

use crate::features::{extract, observe, FeatureVector, Features};
use crate::partition::Partition;
use crate::rules::{evaluate_all, score, RuleConfig, RuleContext, RuleHit};
use crate::scoring::ModelScorer;
use crate::windows::{Refused, SourceWindow, MICROS, WINDOW_1H};

/// Optional model input: the lead wires the ONNX classifier and the per-org baseline in
/// through this. Called only when an incident is opened or escalated, never per event.
pub trait Scorer: Send + Sync {
    fn score(&self, org: OrgId, src_ip: &str, features: &Features) -> Option<ModelScores>;
}

/// Tunables of the core.
#[derive(Debug, Clone)]
pub struct DetectorSettings {
    /// How far (seconds of event time) a record may arrive behind the newest record of its
    /// source and still be placed in the windows.
    pub lateness_secs: i64,
    /// Memory bound per source: the oldest observations beyond this are dropped.
    pub max_events_per_source: usize,
    /// Memory bound for all sources together (≈ 500 bytes each with their sources' state): past it, the sweep
    /// forgets the sources that have been quiet longest until a tenth is free again.
    pub max_observations: usize,
    /// Risk must rise by at least this much before a new `Escalate` is issued for it alone.
    pub risk_step: f64,
    /// Thresholds for orgs without an override.
    pub rules: RuleConfig,
    /// Per-org threshold overrides.
    pub org_rules: HashMap<OrgId, RuleConfig>,
}

impl Default for DetectorSettings {
    fn default() -> Self {
        DetectorSettings {
            lateness_secs: 600,
            max_events_per_source: 20_000,
            max_observations: DEFAULT_MAX_OBSERVATIONS,
            risk_step: 0.05,
            rules: RuleConfig::default(),
            org_rules: HashMap::new(),
        }
    }
}

/// One million observations: about 500 MiB with their sources' state (the soak measured
/// ≈ 190 MiB above an idle detector at 400 000), inside the manifests' 1 GiB limit.
pub const DEFAULT_MAX_OBSERVATIONS: usize = 1_000_000;

/// A command for the incident aggregate, with everything needed to execute it idempotently.
#[derive(Debug, Clone, PartialEq)]
pub struct IssuedCommand {
    pub org_id: OrgId,
    pub incident_id: IncidentId,
    /// Deterministic: pass to `xdr_commands::handler::execute` as `command_id`.
    pub command_id: Uuid,
    /// The event that caused it (goes to the metadata's `causation_id`).
    pub causation_id: Uuid,
    pub command: IncidentCommand,
    /// For `Open`/`Escalate`: the source's window vector and the log position of the event
    /// that triggered the command, so the worker can add the org's baseline score from the
    /// baseline in force at that position (`crate::baselines`; it needs the log, the core
    /// does no IO). `None` for other commands.
    pub baseline_input: Option<BaselineInput>,
}

/// What the per-org baseline scores: the window vector at the triggering event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BaselineInput {
    /// `org_seq` of the triggering event: the baseline used is the newest one committed
    /// before it, whatever the detector has loaded when it (re)processes the event.
    pub seq: i64,
    pub vector: FeatureVector,
}

/// Counters of the core (exported as metrics by the worker).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DetectorStats {
    pub processed: u64,
    pub duplicates: u64,
    pub too_late: u64,
    pub ignored: u64,
    pub undecodable: u64,
    pub hits: u64,
    pub commands: u64,
    /// Events of sources another partition owns (skipped).
    pub other_partition: u64,
    /// Sources forgotten while still inside the windows because the memory bound
    /// (`DetectorSettings::max_observations`) was reached.
    pub evicted_sources: u64,
}

/// What the detector remembers about one incident it issued commands for.
#[derive(Debug, Clone)]
struct Tracked {
    bucket: i64,
    id: IncidentId,
    severity: Severity,
    risk: f64,
    rules: BTreeSet<&'static str>,
    techniques: BTreeSet<&'static str>,
    evidence: HashSet<i64>,
}

#[derive(Debug, Default)]
struct SourceState {
    window: SourceWindow,
    /// Incidents of the current and previous hour buckets.
    incidents: Vec<Tracked>,
}

pub struct Detector {
    settings: DetectorSettings,
    sources: HashMap<(OrgId, IpAddr), SourceState>,
    org_watermark: HashMap<OrgId, i64>,
    scorer: Option<Arc<dyn Scorer>>,
    partition: Partition,
    stats: DetectorStats,
    since_sweep: u64,
}

impl Default for Detector {
    fn default() -> Self {
        Detector::new(DetectorSettings::default())
    }
}

/// Every this many events, sources idle for longer than any window are forgotten.
const SWEEP_EVERY: u64 = 1 << 16;

impl Detector {
    pub fn new(settings: DetectorSettings) -> Self {
        Detector {
            settings,
            sources: HashMap::new(),
            org_watermark: HashMap::new(),
            scorer: None,
            partition: Partition::default(),
            stats: DetectorStats::default(),
            since_sweep: 0,
        }
    }

    /// Add model scores to every opened or escalated incident.
    pub fn with_scorer(mut self, scorer: Arc<dyn Scorer>) -> Self {
        self.scorer = Some(scorer);
        self
    }

    /// Handle only the sources `partition` owns; events of other sources are skipped
    /// (counted in `DetectorStats::other_partition`). The default is the whole work.
    pub fn set_partition(&mut self, partition: Partition) {
        self.partition = partition;
    }

    pub fn partition(&self) -> Partition {
        self.partition
    }

    pub fn stats(&self) -> DetectorStats {
        self.stats
    }

    /// Sources currently held in memory.
    pub fn source_count(&self) -> usize {
        self.sources.len()
    }

    /// Observations currently held in the windows of all sources.
    pub fn observation_count(&self) -> usize {
        self.sources.values().map(|s| s.window.len()).sum()
    }

    /// Drop all state of one org (e.g. after a failed command, so the next message rebuilds
    /// it from the log instead of trusting state that ran ahead of the log).
    pub fn forget_org(&mut self, org: OrgId) {
        self.sources.retain(|(o, _), _| *o != org);
        self.org_watermark.remove(&org);
    }

    /// Process one stored event of any type; only `SecurityEventObserved` matters.
    pub fn process(&mut self, stored: &StoredEvent) -> Vec<IssuedCommand> {
        if stored.event_type != "SecurityEventObserved" {
            self.stats.ignored += 1;
            return Vec::new();
        }
        match SecurityEvent::deserialize(&stored.payload) {
            Ok(ev) => self.process_security_event(
                OrgId(stored.org_id),
                stored.org_seq,
                stored.event_id,
                stored.recorded_at,
                &ev,
            ),
            Err(_) => {
                self.stats.undecodable += 1;
                Vec::new()
            }
        }
    }

    /// Process one security event at log position `seq`, recorded at `recorded_at` (used as
    /// the commands' `now`, so reprocessing issues identical commands).
    pub fn process_security_event(
        &mut self,
        org: OrgId,
        seq: i64,
        event_id: Uuid,
        recorded_at: DateTime<Utc>,
        ev: &SecurityEvent,
    ) -> Vec<IssuedCommand> {
        let Some(ip) = ev.src_ip else {
            self.stats.ignored += 1;
            return Vec::new();
        };
        if !self.partition.owns(org, ip) {
            self.stats.other_partition += 1;
            return Vec::new();
        }
        self.maybe_sweep();
        let obs = observe(seq, event_id, ev);
        let lateness = self.settings.lateness_secs * MICROS;
        let max_events = self.settings.max_events_per_source;
        let state = self.sources.entry((org, ip)).or_default();
        match state.window.insert(obs, lateness, max_events) {
            Ok(()) => {}
            Err(Refused::Duplicate) => {
                self.stats.duplicates += 1;
                return Vec::new();
            }
            Err(Refused::TooLate) => {
                self.stats.too_late += 1;
                return Vec::new();
            }
        }
        self.stats.processed += 1;
        let wm = self.org_watermark.entry(org).or_insert(obs.t);
        *wm = (*wm).max(obs.t);

        let config = self.settings.org_rules.get(&org).unwrap_or(&self.settings.rules);
        // Windows end at the event's own time; a late event may also complete a window that
        // ends at the newest event of the source, so that one is checked too.
        let mut anchors = vec![obs.t];
        if state.window.watermark() > obs.t {
            anchors.push(state.window.watermark());
        }
        let mut hits: Vec<RuleHit> = Vec::new();
        let mut features: Option<Features> = None;
        for anchor in anchors {
            let f = extract(&state.window, anchor);
            let new = evaluate_all(&RuleContext { features: &f, window: &state.window, anchor, config });
            for h in new {
                if !hits.iter().any(|x| x.rule_id == h.rule_id) {
                    hits.push(h);
                }
            }
            if features.is_none() && !hits.is_empty() {
                features = Some(f);
            }
        }
        self.stats.hits += hits.len() as u64;

        let bucket = hour_bucket(micros_to_time(obs.t));
        state.incidents.retain(|t| t.bucket >= bucket - 3600);
        let src = ip.to_string();
        let at = micros_to_time(obs.t);
        let signal = obs.kind.is_signal();
        let mut out = Vec::new();
        let tracked_idx = state.incidents.iter().position(|t| t.bucket == bucket);

        if hits.is_empty() {
            if let Some(i) = tracked_idx {
                let tr = &mut state.incidents[i];
                if signal && tr.evidence.insert(seq) {
                    out.push(IssuedCommand {
                        org_id: org,
                        incident_id: tr.id,
                        command_id: command_id_for(tr.id, "attach", event_id),
                        causation_id: event_id,
                        command: IncidentCommand::AttachEvidence(AttachEvidence {
                            incident_id: tr.id,
                            org_seqs: vec![seq],
                            last_seen: at,
                            now: recorded_at,
                        }),
                        baseline_input: None,
                    });
                }
            }
            self.stats.commands += out.len() as u64;
            return out;
        }

        let features = features.unwrap_or_default();
        let merged = Merged::of(&hits, &features, signal.then_some((seq, obs.t)));
        let model = || self.scorer.as_ref().and_then(|s| s.score(org, &src, &features));
        let baseline_input = Some(BaselineInput { seq, vector: ModelScorer::vector_of(&features) });

        match tracked_idx {
            None => {
                let id = incident_id_for(org, &src, at);
                out.push(IssuedCommand {
                    org_id: org,
                    incident_id: id,
                    command_id: command_id_for(id, "open", event_id),
                    causation_id: event_id,
                    command: IncidentCommand::Open(OpenIncident {
                        incident_id: id,
                        org_id: org,
                        src_ip: src.clone(),
                        category: merged.category,
                        severity: merged.severity,
                        risk_score: merged.risk,
                        confidence: merged.confidence,
                        rule_ids: merged.rule_ids.iter().map(|s| s.to_string()).collect(),
                        techniques: merged.techniques.iter().map(|s| s.to_string()).collect(),
                        reason: merged.reason.clone(),
                        top_features: merged.top_features.clone(),
                        evidence: merged.evidence.clone(),
                        model: model(),
                        first_seen: micros_to_time(merged.first_t),
                        last_seen: micros_to_time(merged.last_t),
                        now: recorded_at,
                    }),
                    baseline_input,
                });
                state.incidents.push(Tracked {
                    bucket,
                    id,
                    severity: merged.severity,
                    risk: merged.risk,
                    rules: merged.rule_ids.iter().copied().collect(),
                    techniques: merged.techniques.iter().copied().collect(),
                    evidence: merged.evidence.iter().copied().collect(),
                });
            }
            Some(i) => {
                let risk_step = self.settings.risk_step;
                let tr = &mut state.incidents[i];
                let new_evidence: Vec<i64> =
                    merged.evidence.iter().copied().filter(|s| !tr.evidence.contains(s)).collect();
                if !new_evidence.is_empty() {
                    tr.evidence.extend(new_evidence.iter().copied());
                    out.push(IssuedCommand {
                        org_id: org,
                        incident_id: tr.id,
                        command_id: command_id_for(tr.id, "attach", event_id),
                        causation_id: event_id,
                        command: IncidentCommand::AttachEvidence(AttachEvidence {
                            incident_id: tr.id,
                            org_seqs: new_evidence,
                            last_seen: micros_to_time(merged.last_t),
                            now: recorded_at,
                        }),
                        baseline_input: None,
                    });
                }
                let escalate = merged.severity > tr.severity
                    || merged.risk >= tr.risk + risk_step
                    || merged.rule_ids.iter().any(|r| !tr.rules.contains(r))
                    || merged.techniques.iter().any(|t| !tr.techniques.contains(t));
                if escalate {
                    let id = tr.id;
                    tr.severity = tr.severity.max(merged.severity);
                    tr.risk = tr.risk.max(merged.risk);
                    tr.rules.extend(merged.rule_ids.iter().copied());
                    tr.techniques.extend(merged.techniques.iter().copied());
                    out.push(IssuedCommand {
                        org_id: org,
                        incident_id: id,
                        command_id: command_id_for(id, "escalate", event_id),
                        causation_id: event_id,
                        command: IncidentCommand::Escalate(EscalateIncident {
                            incident_id: id,
                            severity: merged.severity,
                            category: merged.category,
                            risk_score: merged.risk,
                            confidence: merged.confidence,
                            rule_ids: merged.rule_ids.iter().map(|s| s.to_string()).collect(),
                            techniques: merged.techniques.iter().map(|s| s.to_string()).collect(),
                            reason: merged.reason,
                            top_features: merged.top_features,
                            model: model(),
                            now: recorded_at,
                        }),
                        baseline_input,
                    });
                }
            }
        }
        self.stats.commands += out.len() as u64;
        out
    }

    fn maybe_sweep(&mut self) {
        self.since_sweep += 1;
        if self.since_sweep < SWEEP_EVERY {
            return;
        }
        self.since_sweep = 0;
        self.sweep();
    }

    /// Forget idle sources, then, if the windows still hold more than the memory bound, the
    /// sources quiet longest. Between sweeps memory may pass the bound by [`SWEEP_EVERY`]
    /// observations at most.
    fn sweep(&mut self) {
        // Idle = older than the windows, the lateness and the incident bucket behind the
        // newest event of its org.
        let keep = WINDOW_1H + self.settings.lateness_secs * MICROS + 3600 * MICROS;
        let marks = &self.org_watermark;
        self.sources.retain(|(org, _), s| marks.get(org).is_none_or(|m| s.window.watermark() >= m - keep));
        let held = self.observation_count();
        let bound = self.settings.max_observations;
        if held <= bound {
            return;
        }
        // Quiet longest = furthest behind its own org's newest event (orgs' producers may
        // have clocks of their own). A tenth is freed so the next sweep has room.
        let target = bound - bound / 10;
        let mut by_quiet: Vec<(i64, (OrgId, IpAddr), usize)> = self
            .sources
            .iter()
            .map(|(key, s)| {
                let behind = marks.get(&key.0).map_or(0, |m| m - s.window.watermark());
                (behind, *key, s.window.len())
            })
            .collect();
        by_quiet.sort_unstable_by_key(|q| std::cmp::Reverse(q.0));
        let mut remaining = held;
        for (_, key, len) in by_quiet {
            if remaining <= target {
                break;
            }
            self.sources.remove(&key);
            remaining -= len;
            self.stats.evicted_sources += 1;
        }
    }
}

fn micros_to_time(t: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t).unwrap_or_default()
}

/// The hits of one event folded into one incident update.
struct Merged {
    severity: Severity,
    category: IncidentCategory,
    risk: f64,
    confidence: f64,
    rule_ids: Vec<&'static str>,
    techniques: Vec<&'static str>,
    reason: String,
    top_features: Vec<FeatureValue>,
    evidence: Vec<i64>,
    first_t: i64,
    last_t: i64,
}

impl Merged {
    fn of(hits: &[RuleHit], features: &Features, trigger: Option<(i64, i64)>) -> Merged {
        // The most severe hit names the category; ties go to the earlier rule in `RULES`.
        let top = hits.iter().fold(&hits[0], |best, h| if h.severity > best.severity { h } else { best });
        let mut techniques: Vec<&'static str> = Vec::new();
        let mut names: Vec<&'static str> = Vec::new();
        for h in hits {
            for t in &h.techniques {
                if !techniques.contains(t) {
                    techniques.push(t);
                }
            }
            for n in &h.features {
                if !names.contains(n) {
                    names.push(n);
                }
            }
        }
        let mut ev: Vec<(i64, i64)> = hits.iter().flat_map(|h| h.evidence.iter().map(|e| (e.seq, e.t))).collect();
        ev.extend(trigger);
        ev.sort_unstable();
        ev.dedup();
        let first_t = ev.iter().map(|e| e.1).min().unwrap_or(0);
        let last_t = ev.iter().map(|e| e.1).max().unwrap_or(0);
        Merged {
            severity: top.severity,
            category: top.category,
            risk: score(hits.iter().map(|h| h.risk_score).fold(0.0, f64::max)),
            confidence: score(hits.iter().map(|h| h.confidence).fold(0.0, f64::max)),
            rule_ids: hits.iter().map(|h| h.rule_id).collect(),
            techniques,
            reason: hits.iter().map(|h| format!("{}: {}", h.rule_id, h.reason)).collect::<Vec<_>>().join("; "),
            top_features: names
                .into_iter()
                .map(|n| FeatureValue { name: n.to_owned(), value: features.get(n).unwrap_or(0.0) })
                .collect(),
            evidence: ev.into_iter().map(|e| e.0).collect(),
            first_t,
            last_t,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testkit::{cmd, connect, failed, success};

    fn org() -> OrgId {
        OrgId(Uuid::from_u128(42))
    }

    fn run(detector: &mut Detector, events: &[SecurityEvent]) -> Vec<IssuedCommand> {
        events
            .iter()
            .enumerate()
            .flat_map(|(i, e)| {
                let seq = i as i64 + 1;
                let id = Uuid::from_u128(seq as u128);
                detector.process_security_event(org(), seq, id, e.timestamp, e)
            })
            .collect()
    }

    fn brute_then_login() -> Vec<SecurityEvent> {
        let mut h: Vec<SecurityEvent> = (0..8).map(|i| failed(i * 5, "root", &format!("p{i}"))).collect();
        h.push(success(50, "root", "1qaz@WSX"));
        h.push(cmd(55, "uname -a"));
        h.push(cmd(56, "cat /proc/cpuinfo"));
        h
    }

    #[test]
    fn opens_once_then_attaches_and_escalates() {
        let mut d = Detector::default();
        let cmds = run(&mut d, &brute_then_login());
        let opens: Vec<_> = cmds.iter().filter(|c| matches!(c.command, IncidentCommand::Open(_))).collect();
        assert_eq!(opens.len(), 1);
        let IncidentCommand::Open(open) = &opens[0].command else { unreachable!() };
        assert_eq!(open.rule_ids, vec!["ssh_brute_force"]);
        assert_eq!(open.severity, Severity::Medium);
        assert_eq!(open.evidence, (1..=6).collect::<Vec<_>>());
        assert!(open.top_features.iter().any(|f| f.name == "failed_logins_1m" && f.value == 6.0));
        let escalations: Vec<&EscalateIncident> = cmds
            .iter()
            .filter_map(|c| match &c.command {
                IncidentCommand::Escalate(e) => Some(e),
                _ => None,
            })
            .collect();
        assert!(escalations
            .iter()
            .any(|e| e.severity == Severity::Critical && e.techniques.contains(&"T1078".to_owned())));
        assert!(escalations.iter().any(|e| e.rule_ids.contains(&"discovery".to_owned())));
        // Every command targets the same incident.
        assert!(cmds.iter().all(|c| c.incident_id == opens[0].incident_id));
    }

    #[test]
    fn a_fresh_detector_issues_identical_commands_and_a_redelivery_none() {
        let events = brute_then_login();
        let first = run(&mut Detector::default(), &events);
        let mut d = Detector::default();
        assert_eq!(run(&mut d, &events), first);
        assert_eq!(run(&mut d, &events), vec![]);
        assert_eq!(d.stats().duplicates, events.len() as u64);
    }

    #[test]
    fn out_of_order_events_are_judged_on_event_time() {
        // Six failures in 50 s of event time delivered in reverse: still a brute force.
        let mut events: Vec<SecurityEvent> = (0..6).map(|i| failed(i * 10, "root", "x")).collect();
        events.reverse();
        let cmds = run(&mut Detector::default(), &events);
        assert!(cmds
            .iter()
            .any(|c| matches!(&c.command, IncidentCommand::Open(o) if o.rule_ids == vec!["ssh_brute_force"])));
        // The same six spread over 10 minutes of event time but delivered within a second: nothing.
        let slow: Vec<SecurityEvent> = (0..6).map(|i| failed(i * 100, "root", "x")).collect();
        assert!(run(&mut Detector::default(), &slow).is_empty());
    }

    #[test]
    fn a_new_hour_opens_a_new_incident() {
        let mut events: Vec<SecurityEvent> = (0..10).map(connect).collect();
        events.extend((0..10).map(|i| connect(7200 + i)));
        let cmds = run(&mut Detector::default(), &events);
        let opens: HashSet<IncidentId> =
            cmds.iter().filter(|c| matches!(c.command, IncidentCommand::Open(_))).map(|c| c.incident_id).collect();
        assert_eq!(opens.len(), 2);
    }

    #[test]
    fn per_org_thresholds_override_the_defaults() {
        let strict_org = OrgId(Uuid::from_u128(43));
        let mut settings = DetectorSettings::default();
        settings.org_rules.insert(strict_org, RuleConfig { brute_force_failures: 7, ..Default::default() });
        let mut d = Detector::new(settings);
        let six: Vec<SecurityEvent> = (0..6).map(|i| failed(i, "root", "x")).collect();
        let issued = |d: &mut Detector, org: OrgId| -> usize {
            six.iter()
                .enumerate()
                .map(|(i, e)| {
                    d.process_security_event(org, i as i64 + 1, Uuid::from_u128(i as u128), e.timestamp, e).len()
                })
                .sum()
        };
        assert_eq!(issued(&mut d, strict_org), 0, "six failures are below this org's threshold of seven");
        assert_eq!(issued(&mut d, org()), 1, "the default threshold of six still applies elsewhere");
    }

    #[test]
    fn opens_and_escalations_carry_the_window_for_the_baseline_and_attachments_do_not() {
        let cmds = run(&mut Detector::default(), &brute_then_login());
        for c in &cmds {
            match (&c.command, c.baseline_input) {
                (IncidentCommand::Open(_) | IncidentCommand::Escalate(_), Some(input)) => {
                    assert!(input.vector.as_slice().iter().any(|v| *v > 0.0));
                }
                (IncidentCommand::AttachEvidence(_), None) => {}
                (other, input) => panic!("{other:?} with {input:?}"),
            }
        }
        // The open is triggered by the sixth failure (seq 6) and scores its window.
        assert_eq!(cmds[0].baseline_input.map(|i| i.seq), Some(6));
    }

    #[test]
    fn a_partition_handles_only_its_own_sources() {
        let events = brute_then_login();
        let owner = crate::partition::partition_of(org(), events[0].src_ip.unwrap(), 2);
        let mut mine = Detector::default();
        mine.set_partition(Partition::new(owner, 2).unwrap());
        let mut other = Detector::default();
        other.set_partition(Partition::new(1 - owner, 2).unwrap());
        assert_eq!(run(&mut mine, &events), run(&mut Detector::default(), &events));
        assert!(run(&mut other, &events).is_empty());
        assert_eq!(other.stats().other_partition, events.len() as u64);
        assert_eq!(other.source_count(), 0);
    }

    #[test]
    fn past_the_memory_bound_the_sources_quiet_longest_are_forgotten() {
        let settings = DetectorSettings { max_observations: 100, ..DetectorSettings::default() };
        let mut d = Detector::new(settings);
        // 30 sources with 5 observations each, source i active at minute i: 150 held.
        let mut seq = 0;
        for i in 0..30u8 {
            for k in 0..5 {
                seq += 1;
                let mut e = connect(i64::from(i) * 60 + k);
                e.src_ip = Some(std::net::IpAddr::from([198, 51, 100, i]));
                d.process_security_event(org(), seq, Uuid::from_u128(seq as u128), e.timestamp, &e);
            }
        }
        assert_eq!(d.observation_count(), 150);
        d.sweep();
        // Down to 90 % of the bound: the 12 quietest sources (0..12) went, the newest stayed.
        assert_eq!(d.observation_count(), 90);
        assert_eq!(d.stats().evicted_sources, 12);
        let kept = |i: u8| d.sources.contains_key(&(org(), std::net::IpAddr::from([198, 51, 100, i])));
        assert!(!kept(0) && !kept(11) && kept(12) && kept(29));
        // Under the bound nothing more goes.
        d.sweep();
        assert_eq!(d.stats().evicted_sources, 12);
    }

    struct Fixed;
    impl Scorer for Fixed {
        fn score(&self, _: OrgId, _: &str, f: &Features) -> Option<ModelScores> {
            Some(ModelScores {
                predicted_class: Some("brute_force".into()),
                baseline_score: Some(f.failed_logins_1m),
                ..Default::default()
            })
        }
    }

    #[test]
    fn model_scores_ride_along_when_a_scorer_is_wired() {
        let mut d = Detector::default().with_scorer(Arc::new(Fixed));
        let cmds = run(&mut d, &brute_then_login());
        let IncidentCommand::Open(open) = &cmds[0].command else { panic!("first command opens") };
        assert_eq!(open.model.as_ref().and_then(|m| m.baseline_score), Some(6.0));
    }
}
