//! Containment policies evaluated where incidents are decided: after the detector's
//! commands opened or escalated an incident, the org's policies are evaluated against the
//! incident as it now stands, and the first match requests (and, when nothing holds it back,
//! dispatches) its action.
//!
//! - **Idempotent.** The action id is `policy_action_id(incident, policy)`, so a redelivered
//!   message, a rebuild after a restart or a second replica evaluating the same incident
//!   requests nothing new. Every opened/escalated incident of a command batch is evaluated,
//!   whether or not its events were appended this time: a detector that died between the
//!   incident's append and the request catches up when it rebuilds (within the rebuild
//!   lookback), and the request's fixed id makes the re-evaluation free of side effects.
//! - **Never loses a detection.** The incident is committed before this runs; a failure here
//!   is logged at error level and counted, never returned to the worker (which would nack and
//!   redo the detection). The incident is kept for a retry with backoff (1 s doubling to
//!   60 s) that the worker drives even when no new events arrive ([`Responder::retry_due`]),
//!   so a database outage delays a containment, it does not drop it.
//! - **Policies are cached per org for `policy_cache_ttl`** (default 2 s): the detector
//!   consumes only security events, so containment changes never pass by it, and a policy
//!   edit takes effect within the TTL. Evaluation happens only when an incident opens or
//!   escalates, so even a TTL of zero costs one small stream read per decision.
//! - **The per-minute cap** counts automatic, unapproved `block_ip` actions requested in the
//!   last 60 s: the `rm_actions` read model (every replica's blocks, as far as the projector
//!   has caught up) united with the blocks this responder requested itself. Across replicas
//!   the cap may overshoot by the blocks decided within the projector's lag.

use chrono::{DateTime, Utc};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};
use xdr_commands::handler::load;
use xdr_commands::response::actions::{load_containment, request_and_dispatch, NewAction};
use xdr_commands::response::{Dispatcher, ResponseConfig};
use xdr_commands::EventStore;
use xdr_domain::ids::{ActionId, IncidentId, OrgId};
use xdr_domain::incident::{Incident, IncidentCommand, IncidentStatus, Severity};
use xdr_domain::response::action::{policy_action_id, Action, ActionKind, ActionStatus, PolicyMatch};
use xdr_domain::response::policy::{ContainmentPolicies, IncidentFacts, PolicyMode};
use xdr_domain::EventMetadata;
use xdr_projections::action_queue::recent_automatic_blocks;

use crate::detector::IssuedCommand;

/// The window of the per-org cap on automatic blocks.
pub const CAP_WINDOW_SECS: i64 = 60;

/// Target of a policy's `notify` action: the org's default notification channel.
pub const NOTIFY_CHANNEL: &str = "default";

/// How the detector responds: where orders go and how long policies are cached.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseSettings {
    pub config: ResponseConfig,
    pub policy_cache_ttl: Duration,
}

impl Default for ResponseSettings {
    fn default() -> Self {
        ResponseSettings { config: ResponseConfig::default(), policy_cache_ttl: Duration::from_secs(2) }
    }
}

/// What the evaluation of one incident led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Not opened, or closed by an analyst (dismissed, resolved): nothing to contain.
    NotApplicable,
    NoMatch,
    /// The policy's action exists already (redelivery, another replica, an earlier escalation).
    AlreadyRequested(ActionId),
    /// Requested now; `status` as it stands after the inline dispatch.
    Requested {
        action: ActionId,
        status: ActionStatus,
        held_for_approval: Option<String>,
    },
}

/// Counters, exported in the worker's stats log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResponseStats {
    pub evaluated: u64,
    pub matched: u64,
    pub requested: u64,
    pub held_for_approval: u64,
    pub refused: u64,
    pub failures: u64,
    /// Evaluations that failed and succeeded on a later retry.
    pub retried: u64,
    /// Incidents dropped from the retry queue because it was full (logged at error level).
    pub retries_dropped: u64,
}

/// Incidents whose evaluation failed, waiting for another try.
const MAX_PENDING_RETRIES: usize = 10_000;
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(60);

/// An incident whose evaluation failed: tried again at `due`.
#[derive(Debug, Clone)]
struct PendingRetry {
    org: OrgId,
    incident: IncidentId,
    causation: uuid::Uuid,
    delay: Duration,
    due: Instant,
}

/// Evaluates containment policies for the incidents the detector opened or escalated.
pub struct Responder {
    dispatcher: Option<Dispatcher>,
    policy_cache_ttl: Duration,
    policies: HashMap<OrgId, (ContainmentPolicies, Instant)>,
    /// Automatic blocks this responder requested, per org, newest last (for the cap).
    recent_blocks: HashMap<OrgId, VecDeque<(ActionId, DateTime<Utc>)>>,
    pending: VecDeque<PendingRetry>,
    stats: ResponseStats,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder").field("stats", &self.stats).finish_non_exhaustive()
    }
}

impl Responder {
    /// Without a dispatcher, approved actions are sent by the scheduler after its grace period.
    pub fn new(dispatcher: Option<Dispatcher>, policy_cache_ttl: Duration) -> Self {
        Responder {
            dispatcher,
            policy_cache_ttl,
            policies: HashMap::new(),
            recent_blocks: HashMap::new(),
            pending: VecDeque::new(),
            stats: ResponseStats::default(),
        }
    }

    /// Connect the dispatcher (creating the order streams if needed).
    pub async fn connect(
        jetstream: async_nats::jetstream::Context,
        settings: &ResponseSettings,
    ) -> Result<Self, xdr_commands::ingest::NatsError> {
        let dispatcher = Dispatcher::new(jetstream, settings.config.clone()).await?;
        Ok(Responder::new(Some(dispatcher), settings.policy_cache_ttl))
    }

    pub fn stats(&self) -> ResponseStats {
        self.stats
    }

    /// Evaluate policies for every incident the (already executed) `commands` opened or
    /// escalated. Never fails: errors are logged and counted.
    pub async fn respond(&mut self, store: &EventStore, commands: &[IssuedCommand]) -> Vec<(IncidentId, Outcome)> {
        self.respond_at(store, commands, Utc::now()).await
    }

    /// [`Responder::respond`] with an injected clock (tests, benchmarks).
    pub async fn respond_at(
        &mut self,
        store: &EventStore,
        commands: &[IssuedCommand],
        now: DateTime<Utc>,
    ) -> Vec<(IncidentId, Outcome)> {
        // Once per incident per batch, after all its commands: the incident as it now stands.
        let mut incidents: Vec<(OrgId, IncidentId, uuid::Uuid)> = Vec::new();
        for c in commands {
            if matches!(c.command, IncidentCommand::Open(_) | IncidentCommand::Escalate(_))
                && !incidents.iter().any(|(o, i, _)| *o == c.org_id && *i == c.incident_id)
            {
                incidents.push((c.org_id, c.incident_id, c.causation_id));
            }
        }
        let mut outcomes = Vec::with_capacity(incidents.len());
        for (org, incident, causation) in incidents {
            match self.evaluate(store, org, incident, causation, now).await {
                Ok(outcome) => outcomes.push((incident, outcome)),
                Err(e) => {
                    self.stats.failures += 1;
                    // The incident stands; only its automatic response is missing until a retry.
                    tracing::error!(org_id = %org, incident_id = %incident, error = %e,
                        "RESPONSE FAILED: containment policies not applied to this incident yet; will retry");
                    self.schedule_retry(org, incident, causation, FIRST_RETRY);
                }
            }
        }
        outcomes
    }

    /// Incidents waiting for a retry of their evaluation.
    pub fn pending_retries(&self) -> usize {
        self.pending.len()
    }

    /// When the next retry is due (`None`: nothing waits).
    pub fn next_retry(&self) -> Option<Instant> {
        self.pending.iter().map(|p| p.due).min()
    }

    /// Evaluate again every incident whose retry is due; a failure doubles its delay.
    pub async fn retry_due(&mut self, store: &EventStore) -> Vec<(IncidentId, Outcome)> {
        let now = Instant::now();
        let (due, waiting): (VecDeque<_>, VecDeque<_>) = self.pending.drain(..).partition(|p| p.due <= now);
        self.pending = waiting;
        let mut outcomes = Vec::new();
        for p in due {
            match self.evaluate(store, p.org, p.incident, p.causation, Utc::now()).await {
                Ok(outcome) => {
                    self.stats.retried += 1;
                    tracing::info!(org_id = %p.org, incident_id = %p.incident, outcome = ?outcome,
                        "containment policies applied on retry");
                    outcomes.push((p.incident, outcome));
                }
                Err(e) => {
                    let delay = (p.delay * 2).min(MAX_RETRY);
                    tracing::warn!(org_id = %p.org, incident_id = %p.incident, error = %e,
                        retry_in_secs = delay.as_secs(), "containment retry failed");
                    self.schedule_retry(p.org, p.incident, p.causation, delay);
                }
            }
        }
        outcomes
    }

    fn schedule_retry(&mut self, org: OrgId, incident: IncidentId, causation: uuid::Uuid, delay: Duration) {
        if let Some(p) = self.pending.iter_mut().find(|p| p.org == org && p.incident == incident) {
            // A newer escalation failed too: one retry evaluates the incident as it stands.
            p.causation = causation;
            return;
        }
        if self.pending.len() >= MAX_PENDING_RETRIES {
            if let Some(dropped) = self.pending.pop_front() {
                self.stats.retries_dropped += 1;
                tracing::error!(org_id = %dropped.org, incident_id = %dropped.incident,
                    "containment retry queue full: dropped the oldest (a detector restart re-evaluates it)");
            }
        }
        self.pending.push_back(PendingRetry { org, incident, causation, delay, due: Instant::now() + delay });
    }

    /// Evaluate the org's policies for one incident.
    pub async fn evaluate(
        &mut self,
        store: &EventStore,
        org: OrgId,
        incident: IncidentId,
        causation: uuid::Uuid,
        now: DateTime<Utc>,
    ) -> Result<Outcome, String> {
        let (state, _) = load::<Incident>(store, org, &incident.stream_id()).await.map_err(|e| e.to_string())?;
        let (Some(category), true) = (state.category, state.is_opened()) else {
            return Ok(Outcome::NotApplicable);
        };
        // An analyst closed it: no automatic action on a decided incident.
        if !matches!(state.status, IncidentStatus::Open | IncidentStatus::Contained) {
            return Ok(Outcome::NotApplicable);
        }
        self.stats.evaluated += 1;
        let policies = self.policies(store, org).await?;
        let techniques: Vec<String> = state.techniques.iter().cloned().collect();
        let facts = IncidentFacts {
            severity: state.severity.unwrap_or(Severity::Low),
            category,
            risk_score: state.risk_score,
            techniques: &techniques,
            src_ip: &state.src_ip,
        };
        let Some((policy, matched)) = policies.evaluate(&facts) else {
            return Ok(Outcome::NoMatch);
        };
        self.stats.matched += 1;
        let action_id = policy_action_id(incident, policy.policy_id);
        let (existing, _) = load::<Action>(store, org, &action_id.stream_id()).await.map_err(|e| e.to_string())?;
        if existing.request.is_some() {
            return Ok(Outcome::AlreadyRequested(action_id));
        }
        let is_block = policy.action.kind == ActionKind::BlockIp;
        let held_for_approval = match policy.mode {
            PolicyMode::Approval => None,
            PolicyMode::Auto if !policies.auto_containment => Some("auto-containment is off for this org".to_owned()),
            PolicyMode::Auto if is_block => {
                let cap = policies.max_auto_blocks_per_minute as usize;
                let recent = self.recent_automatic_blocks(store, org, now).await?;
                (recent >= cap).then(|| format!("{recent} automatic blocks in the last minute (cap {cap})"))
            }
            PolicyMode::Auto => None,
        };
        let needs_approval = policy.mode == PolicyMode::Approval || held_for_approval.is_some();
        let target = match policy.action.kind {
            ActionKind::Notify => NOTIFY_CHANNEL.to_owned(),
            _ => state.src_ip.clone(),
        };
        let new = NewAction {
            action_id,
            incident_id: Some(incident),
            kind: policy.action.kind,
            target,
            duration_secs: policy.action.duration_secs,
            note: None,
            requested_by: None,
            follows: None,
            policy: Some(PolicyMatch {
                policy_id: policy.policy_id,
                policy_name: policy.name.clone(),
                priority: policy.priority,
                matched,
                mode: policy.mode.as_str().to_owned(),
                held_for_approval: held_for_approval.clone(),
            }),
            automatic: true,
            needs_approval,
        };
        let metadata =
            EventMetadata { actor: Some("detector".to_owned()), causation_id: Some(causation), ..Default::default() };
        let action = request_and_dispatch(store, self.dispatcher.as_ref(), org, new, &metadata, now)
            .await
            .map_err(|e| e.to_string())?;
        self.stats.requested += 1;
        let refused = action.status == ActionStatus::Failed && action.attempts == 0;
        if refused {
            self.stats.refused += 1;
            tracing::warn!(org_id = %org, incident_id = %incident, action_id = %action_id,
                detail = action.detail.as_deref().unwrap_or(""), "policy action refused by the safety rails");
        } else if needs_approval {
            self.stats.held_for_approval += 1;
        } else if is_block {
            self.recent_blocks.entry(org).or_default().push_back((action_id, now));
        }
        Ok(Outcome::Requested { action: action_id, status: action.status, held_for_approval })
    }

    async fn policies(&mut self, store: &EventStore, org: OrgId) -> Result<ContainmentPolicies, String> {
        if let Some((policies, loaded)) = self.policies.get(&org) {
            if loaded.elapsed() < self.policy_cache_ttl {
                return Ok(policies.clone());
            }
        }
        let policies = load_containment(store, org).await.map_err(|e| e.to_string())?;
        self.policies.insert(org, (policies.clone(), Instant::now()));
        Ok(policies)
    }

    /// Automatic blocks of the org in the cap window ending at `now`: the read model's,
    /// plus this responder's own that the read model may not show yet.
    async fn recent_automatic_blocks(
        &mut self,
        store: &EventStore,
        org: OrgId,
        now: DateTime<Utc>,
    ) -> Result<usize, String> {
        let since = now - chrono::Duration::seconds(CAP_WINDOW_SECS);
        let mut ids = recent_automatic_blocks(store.pool(), org, since, now).await.map_err(|e| e.to_string())?;
        let own = self.recent_blocks.entry(org).or_default();
        while own.front().is_some_and(|(_, at)| *at <= since) {
            own.pop_front();
        }
        ids.extend(own.iter().filter(|(_, at)| *at <= now).map(|(id, _)| *id));
        ids.sort_unstable_by_key(|id| id.0);
        ids.dedup();
        Ok(ids.len())
    }
}
