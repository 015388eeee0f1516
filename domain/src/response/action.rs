//! Containment actions (`action-<uuid>` streams): one request to do something about a source
//! or host — block it, lift a block, isolate or release a host, notify — from the request,
//! through approval and dispatch to an enforcement agent, to the agent's answer and, for a
//! timed block, its expiry.
//!
//! Lifecycle:
//! `requested → (pending_approval → approved | rejected) → dispatched (→ dispatched again on a
//! retry) → succeeded | failed`, and `succeeded → expired` for a block with a duration.
//! Every transition is an event with its actor, so the incident timeline can show who did
//! what and whether it worked.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use uuid::Uuid;

use crate::aggregate::Aggregate;
use crate::identity::{Permission, Role};
use crate::ids::{ActionId, IncidentId, OrgId, PolicyId, UserId};
use crate::response::rails::{RailViolation, SafetyRails};
use crate::Event;

/// Namespace of action ids derived from other facts (a fixed random UUID).
const ACTION_NAMESPACE: Uuid = Uuid::from_u128(0x9d41_07c3_5be2_4a8e_8f1d_2c6a_b703_e95f);

/// Longest block a request may ask for: 30 days. Longer is "permanent", which is a different
/// decision than a timed block and is requested without a duration.
pub const MAX_BLOCK_SECS: u64 = 30 * 24 * 3600;

/// Longest free-text note or agent detail kept in an event.
pub const MAX_TEXT_CHARS: usize = 2000;

/// Grace before the scheduler dispatches an approved action itself: the request or approval
/// path dispatches inline, so the scheduler only catches what a crash left behind.
pub const DISPATCH_GRACE_SECS: i64 = 2;

/// When the scheduler sends an order nobody sent, for an action approved (or requested
/// without approval) at `at`.
fn dispatch_due(at: DateTime<Utc>) -> DateTime<Utc> {
    at + Duration::seconds(DISPATCH_GRACE_SECS)
}

/// The action a policy asks for on an incident: the same incident and policy always give the
/// same id, so a redelivered detection or a second detector replica requests nothing new.
pub fn policy_action_id(incident: IncidentId, policy: PolicyId) -> ActionId {
    ActionId(Uuid::new_v5(&ACTION_NAMESPACE, format!("policy/{incident}/{policy}").as_bytes()))
}

/// The unblock that lifts an expired block: one per block, whoever (which scheduler replica,
/// before or after a restart) notices the expiry.
pub fn expiry_unblock_id(block: ActionId) -> ActionId {
    ActionId(Uuid::new_v5(&ACTION_NAMESPACE, format!("expiry-unblock/{block}").as_bytes()))
}

/// Deterministic id of a follow-up command (`kind`) on `action`, e.g. the incident status
/// change caused by its success, so processing the same result twice appends nothing.
pub fn action_command_id(action: ActionId, kind: &str) -> Uuid {
    Uuid::new_v5(&ACTION_NAMESPACE, format!("{action}/{kind}").as_bytes())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    BlockIp,
    UnblockIp,
    IsolateHost,
    ReleaseHost,
    Notify,
}

impl ActionKind {
    pub const ALL: [ActionKind; 5] = [
        ActionKind::BlockIp,
        ActionKind::UnblockIp,
        ActionKind::IsolateHost,
        ActionKind::ReleaseHost,
        ActionKind::Notify,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::BlockIp => "block_ip",
            ActionKind::UnblockIp => "unblock_ip",
            ActionKind::IsolateHost => "isolate_host",
            ActionKind::ReleaseHost => "release_host",
            ActionKind::Notify => "notify",
        }
    }

    pub fn parse(s: &str) -> Option<ActionKind> {
        ActionKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Undoing actions are never held back by approval or caps: lifting a block must always
    /// be possible for an analyst.
    pub fn is_undo(self) -> bool {
        matches!(self, ActionKind::UnblockIp | ActionKind::ReleaseHost)
    }

    /// Kinds whose target is an IP address.
    pub fn targets_ip(self) -> bool {
        matches!(self, ActionKind::BlockIp | ActionKind::UnblockIp)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ActionStatus {
    /// Not requested yet (an empty stream).
    #[default]
    None,
    PendingApproval,
    Approved,
    Rejected,
    Dispatched,
    Succeeded,
    Failed,
    Expired,
}

impl ActionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionStatus::None => "none",
            ActionStatus::PendingApproval => "pending_approval",
            ActionStatus::Approved => "approved",
            ActionStatus::Rejected => "rejected",
            ActionStatus::Dispatched => "dispatched",
            ActionStatus::Succeeded => "succeeded",
            ActionStatus::Failed => "failed",
            ActionStatus::Expired => "expired",
        }
    }

    /// Nothing more will happen to the action (an expiry is still pending on a succeeded block).
    pub fn is_final(self) -> bool {
        matches!(self, ActionStatus::Rejected | ActionStatus::Failed | ActionStatus::Expired)
    }
}

// ---------------------------------------------------------------------------- events

/// A containment policy matched an incident. Recorded first on the action stream it caused,
/// so "why was this blocked?" is answered by the log itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyMatched {
    pub action_id: ActionId,
    pub org_id: OrgId,
    pub incident_id: IncidentId,
    pub policy_id: PolicyId,
    pub policy_name: String,
    pub priority: i32,
    /// Human-readable conditions that held, e.g. `severity >= high`.
    pub matched: Vec<String>,
    /// The policy's mode (`auto` or `approval`).
    pub mode: String,
    /// Why an `auto` policy's action still waits for approval (switch off, cap reached).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_for_approval: Option<String>,
    pub matched_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRequested {
    pub action_id: ActionId,
    pub org_id: OrgId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_id: Option<IncidentId>,
    pub kind: ActionKind,
    /// An IP address for block/unblock, a host name for isolate/release, a channel for notify.
    pub target: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The analyst who asked; `None` when a policy or the scheduler did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_id: Option<PolicyId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_name: Option<String>,
    /// The action this one follows up, e.g. the expired block an unblock lifts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follows: Option<ActionId>,
    /// Requested automatically (policy in auto mode, scheduler), counted against the org's cap.
    pub automatic: bool,
    pub needs_approval: bool,
    pub requested_at: DateTime<Utc>,
    /// When the scheduler sends the order itself if nobody has (no approval needed). Absent on
    /// events recorded before the request carried it: see [`ActionRequested::dispatch_due`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispatch_due_at: Option<DateTime<Utc>>,
}

impl ActionRequested {
    /// When the scheduler must dispatch this action if nobody has: `None` while it waits for
    /// approval. Older events without the time get the rule they were recorded under.
    pub fn dispatch_due(&self) -> Option<DateTime<Utc>> {
        (!self.needs_approval).then(|| self.dispatch_due_at.unwrap_or_else(|| dispatch_due(self.requested_at)))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionApproved {
    pub action_id: ActionId,
    pub by_user: UserId,
    pub approved_at: DateTime<Utc>,
    /// When the scheduler sends the order itself if nobody has. Absent on events recorded
    /// before the approval carried it: see [`ActionApproved::dispatch_due`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispatch_due_at: Option<DateTime<Utc>>,
}

impl ActionApproved {
    /// When the scheduler must dispatch the approved action if nobody has.
    pub fn dispatch_due(&self) -> DateTime<Utc> {
        self.dispatch_due_at.unwrap_or_else(|| dispatch_due(self.approved_at))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRejected {
    pub action_id: ActionId,
    pub by_user: UserId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub rejected_at: DateTime<Utc>,
}

/// An order went out to the org's agents. `attempt` counts from 1; an order not answered by
/// `deadline` is sent again or, after the last attempt, the action fails.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionDispatched {
    pub action_id: ActionId,
    pub attempt: u32,
    pub deadline: DateTime<Utc>,
    pub dispatched_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionSucceeded {
    pub action_id: ActionId,
    pub attempt: u32,
    /// `agentkey:<id>` of the agent that did it.
    pub agent: String,
    pub detail: String,
    /// When a timed block lifts (succeeded_at + duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    pub succeeded_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionFailed {
    pub action_id: ActionId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// The agent that reported the failure; `None` when nobody answered in time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    pub detail: String,
    pub failed_at: DateTime<Utc>,
}

/// The gateway handed an attempt's order to one agent. Only an agent an order was delivered
/// to may answer it (`Action::was_delivered_to`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionDelivered {
    pub action_id: ActionId,
    pub attempt: u32,
    /// `agentkey:<id>` of the receiving agent.
    pub agent: String,
    pub delivered_at: DateTime<Utc>,
}

/// A timed block reached its expiry; the unblock that lifts it is its own action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionExpired {
    pub action_id: ActionId,
    pub expired_at: DateTime<Utc>,
}

// -------------------------------------------------------------------------- commands

/// Why an `auto` policy matched; recorded as [`PolicyMatched`] before the request.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyMatch {
    pub policy_id: PolicyId,
    pub policy_name: String,
    pub priority: i32,
    pub matched: Vec<String>,
    pub mode: String,
    pub held_for_approval: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RequestAction {
    pub action_id: ActionId,
    pub org_id: OrgId,
    pub incident_id: Option<IncidentId>,
    pub kind: ActionKind,
    pub target: String,
    pub duration_secs: Option<u64>,
    pub note: Option<String>,
    pub requested_by: Option<UserId>,
    pub follows: Option<ActionId>,
    /// Set when a policy asks; its `held_for_approval` or an `approval` mode means the action
    /// waits for a `soc_lead`.
    pub policy: Option<PolicyMatch>,
    pub automatic: bool,
    pub needs_approval: bool,
    /// The org's protected addresses and private-range opt-in, from its containment settings.
    pub rails: SafetyRails,
    pub now: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ActionCommand {
    Request(Box<RequestAction>),
    Approve {
        by_user: UserId,
        role: Role,
        /// The org's four-eyes setting: may the requester approve their own request?
        allow_self_approval: bool,
        now: DateTime<Utc>,
    },
    Reject {
        by_user: UserId,
        role: Role,
        reason: Option<String>,
        now: DateTime<Utc>,
    },
    /// Send (or resend) the order; the agent must answer within `ack_timeout`. `after_attempt`
    /// is the attempt the caller saw: when someone else already dispatched (the inline path
    /// and the scheduler racing), nothing is decided, so an order never goes out twice for
    /// one attempt.
    Dispatch {
        after_attempt: u32,
        ack_timeout: Duration,
        now: DateTime<Utc>,
    },
    /// The gateway delivered an attempt's order to `agent`.
    RecordDelivery {
        attempt: u32,
        agent: String,
        now: DateTime<Utc>,
    },
    /// An agent answered an attempt.
    RecordResult {
        attempt: u32,
        agent: String,
        ok: bool,
        detail: String,
        now: DateTime<Utc>,
    },
    /// Nobody answered the last attempt in time and no attempts are left.
    GiveUp {
        max_attempts: u32,
        now: DateTime<Utc>,
    },
    /// A timed block's time is up.
    Expire {
        now: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    #[error("action already requested")]
    AlreadyRequested,
    #[error("no such action")]
    NotFound,
    #[error("{0} needs a target")]
    MissingTarget(&'static str),
    #[error("target {0:?} is not an IP address")]
    InvalidTarget(String),
    #[error("refusing to block {target}: {violation}")]
    Protected { target: String, violation: RailViolation },
    #[error("a duration applies only to block_ip")]
    DurationNotAllowed,
    #[error("duration must be between 1 second and {MAX_BLOCK_SECS} seconds")]
    InvalidDuration,
    #[error("text longer than {MAX_TEXT_CHARS} characters")]
    TextTooLong,
    #[error("approving or rejecting needs the soc_lead role or above")]
    NotAllowedToApprove,
    #[error("four-eyes: an action cannot be approved by the person who requested it")]
    SelfApproval,
    #[error("attempt {0} of this action was never dispatched")]
    NotDispatched(u32),
    #[error("action is {0}, not waiting for approval")]
    NotPendingApproval(&'static str),
    #[error("action is {0} and cannot be dispatched")]
    NotDispatchable(&'static str),
    #[error("action has not expired yet")]
    NotExpired,
}

// ------------------------------------------------------------------------- aggregate

/// State of one action: a fold of its stream.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Action {
    pub request: Option<ActionRequested>,
    pub policy: Option<PolicyMatched>,
    pub status: ActionStatus,
    pub attempts: u32,
    pub deadline: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub approved_by: Option<UserId>,
    pub detail: Option<String>,
    /// `(agent, attempt)` of every order delivered.
    pub deliveries: Vec<(String, u32)>,
}

impl Action {
    /// Whether the gateway delivered `attempt`'s order to `agent`: the only answer it accepts.
    pub fn was_delivered_to(&self, agent: &str, attempt: u32) -> bool {
        self.deliveries.iter().any(|(a, n)| a == agent && *n == attempt)
    }

    /// Whether a timed block is due to be lifted at `now`.
    pub fn is_due_to_expire(&self, now: DateTime<Utc>) -> bool {
        self.status == ActionStatus::Succeeded && self.expires_at.is_some_and(|t| t <= now)
    }
}

fn check_text(text: &Option<String>) -> Result<(), ActionError> {
    match text {
        Some(t) if t.chars().count() > MAX_TEXT_CHARS => Err(ActionError::TextTooLong),
        _ => Ok(()),
    }
}

fn truncated(text: &str) -> String {
    text.chars().take(MAX_TEXT_CHARS).collect()
}

impl Action {
    fn decide_request(&self, r: &RequestAction) -> Result<Vec<Event>, ActionError> {
        if self.request.is_some() {
            return Err(ActionError::AlreadyRequested);
        }
        let target = r.target.trim().to_owned();
        if target.is_empty() {
            return Err(ActionError::MissingTarget(r.kind.as_str()));
        }
        // Normalised so `010.0.0.1`-style spellings cannot slip past the rails or the read model.
        let mut refused = None;
        let target = if r.kind.targets_ip() {
            let ip: IpAddr = target.parse().map_err(|_| ActionError::InvalidTarget(target.clone()))?;
            if r.kind == ActionKind::BlockIp {
                if let Err(violation) = r.rails.check(ip) {
                    let error = ActionError::Protected { target: ip.to_string(), violation };
                    // An analyst is told at once. A policy has nobody to tell, so its match,
                    // the request and the refusal are recorded (and nothing is dispatched):
                    // "why was this not blocked?" has an answer on the incident's timeline.
                    if r.policy.is_none() || r.incident_id.is_none() {
                        return Err(error);
                    }
                    refused = Some(error.to_string());
                }
            }
            ip.to_string()
        } else {
            target
        };
        match (r.kind, r.duration_secs) {
            (ActionKind::BlockIp, Some(d)) if d == 0 || d > MAX_BLOCK_SECS => return Err(ActionError::InvalidDuration),
            (ActionKind::BlockIp, _) | (_, None) => {}
            (_, Some(_)) => return Err(ActionError::DurationNotAllowed),
        }
        check_text(&r.note)?;
        let mut events = Vec::with_capacity(2);
        if let (Some(p), Some(incident_id)) = (&r.policy, r.incident_id) {
            events.push(Event::PolicyMatched(PolicyMatched {
                action_id: r.action_id,
                org_id: r.org_id,
                incident_id,
                policy_id: p.policy_id,
                policy_name: p.policy_name.clone(),
                priority: p.priority,
                matched: p.matched.clone(),
                mode: p.mode.clone(),
                held_for_approval: p.held_for_approval.clone(),
                matched_at: r.now,
            }));
        }
        // Undoing is always allowed straight away (safety rail: nobody waits to lift a block).
        let needs_approval = r.needs_approval && !r.kind.is_undo();
        events.push(Event::ActionRequested(ActionRequested {
            action_id: r.action_id,
            org_id: r.org_id,
            incident_id: r.incident_id,
            kind: r.kind,
            target,
            duration_secs: r.duration_secs,
            note: r.note.clone(),
            requested_by: r.requested_by,
            policy_id: r.policy.as_ref().map(|p| p.policy_id),
            policy_name: r.policy.as_ref().map(|p| p.policy_name.clone()),
            follows: r.follows,
            automatic: r.automatic,
            needs_approval,
            requested_at: r.now,
            dispatch_due_at: (!needs_approval).then(|| dispatch_due(r.now)),
        }));
        if let Some(detail) = refused {
            events.push(Event::ActionFailed(ActionFailed {
                action_id: r.action_id,
                attempt: None,
                agent: None,
                detail,
                failed_at: r.now,
            }));
        }
        Ok(events)
    }
}

impl Aggregate for Action {
    type Command = ActionCommand;
    type Error = ActionError;

    fn apply(&mut self, event: &Event) {
        match event {
            Event::PolicyMatched(e) => self.policy = Some(e.clone()),
            Event::ActionRequested(e) => {
                self.status = if e.needs_approval { ActionStatus::PendingApproval } else { ActionStatus::Approved };
                self.request = Some(e.clone());
            }
            Event::ActionApproved(e) => {
                self.status = ActionStatus::Approved;
                self.approved_by = Some(e.by_user);
            }
            Event::ActionRejected(e) => {
                self.status = ActionStatus::Rejected;
                self.detail = e.reason.clone();
            }
            Event::ActionDispatched(e) => {
                self.status = ActionStatus::Dispatched;
                self.attempts = e.attempt;
                self.deadline = Some(e.deadline);
            }
            Event::ActionSucceeded(e) => {
                self.status = ActionStatus::Succeeded;
                self.expires_at = e.expires_at;
                self.detail = Some(e.detail.clone());
            }
            Event::ActionFailed(e) => {
                self.status = ActionStatus::Failed;
                self.detail = Some(e.detail.clone());
            }
            Event::ActionExpired(_) => self.status = ActionStatus::Expired,
            Event::ActionDelivered(e) => self.deliveries.push((e.agent.clone(), e.attempt)),
            _ => {}
        }
    }

    fn decide(&self, command: &ActionCommand) -> Result<Vec<Event>, ActionError> {
        if let ActionCommand::Request(r) = command {
            return self.decide_request(r);
        }
        let Some(request) = &self.request else {
            return Err(ActionError::NotFound);
        };
        let action_id = request.action_id;
        match command {
            ActionCommand::Request(_) => unreachable!("handled above"),
            ActionCommand::Approve { by_user, role, allow_self_approval, now } => {
                if !role.can(Permission::ApproveAction) {
                    return Err(ActionError::NotAllowedToApprove);
                }
                if !allow_self_approval && request.requested_by == Some(*by_user) {
                    return Err(ActionError::SelfApproval);
                }
                match self.status {
                    ActionStatus::PendingApproval => Ok(vec![Event::ActionApproved(ActionApproved {
                        action_id,
                        by_user: *by_user,
                        approved_at: *now,
                        dispatch_due_at: Some(dispatch_due(*now)),
                    })]),
                    // Approving twice (a double click, a retried request) changes nothing.
                    ActionStatus::Approved | ActionStatus::Dispatched | ActionStatus::Succeeded
                        if self.approved_by.is_some() =>
                    {
                        Ok(vec![])
                    }
                    _ => Err(ActionError::NotPendingApproval(self.status.as_str())),
                }
            }
            ActionCommand::Reject { by_user, role, reason, now } => {
                if !role.can(Permission::ApproveAction) {
                    return Err(ActionError::NotAllowedToApprove);
                }
                check_text(reason)?;
                match self.status {
                    ActionStatus::PendingApproval => Ok(vec![Event::ActionRejected(ActionRejected {
                        action_id,
                        by_user: *by_user,
                        reason: reason.clone(),
                        rejected_at: *now,
                    })]),
                    ActionStatus::Rejected => Ok(vec![]),
                    _ => Err(ActionError::NotPendingApproval(self.status.as_str())),
                }
            }
            ActionCommand::Dispatch { after_attempt, ack_timeout, now } => match self.status {
                _ if self.attempts != *after_attempt => Ok(vec![]),
                ActionStatus::Approved | ActionStatus::Dispatched => {
                    Ok(vec![Event::ActionDispatched(ActionDispatched {
                        action_id,
                        attempt: self.attempts + 1,
                        deadline: *now + *ack_timeout,
                        dispatched_at: *now,
                    })])
                }
                _ => Err(ActionError::NotDispatchable(self.status.as_str())),
            },
            ActionCommand::RecordDelivery { attempt, agent, now } => {
                if *attempt == 0 || *attempt > self.attempts {
                    return Err(ActionError::NotDispatched(*attempt));
                }
                if self.was_delivered_to(agent, *attempt) {
                    return Ok(vec![]);
                }
                Ok(vec![Event::ActionDelivered(ActionDelivered {
                    action_id,
                    attempt: *attempt,
                    agent: agent.clone(),
                    delivered_at: *now,
                })])
            }
            ActionCommand::RecordResult { attempt, agent, ok, detail, now } => {
                // The first answer decides; a late answer to an earlier attempt still counts
                // (the agent did act), later ones are duplicates.
                if self.status != ActionStatus::Dispatched {
                    return Ok(vec![]);
                }
                let detail = truncated(detail);
                if *ok {
                    let expires_at = match (request.kind, request.duration_secs) {
                        (ActionKind::BlockIp, Some(secs)) => Some(*now + Duration::seconds(secs as i64)),
                        _ => None,
                    };
                    Ok(vec![Event::ActionSucceeded(ActionSucceeded {
                        action_id,
                        attempt: *attempt,
                        agent: agent.clone(),
                        detail,
                        expires_at,
                        succeeded_at: *now,
                    })])
                } else {
                    Ok(vec![Event::ActionFailed(ActionFailed {
                        action_id,
                        attempt: Some(*attempt),
                        agent: Some(agent.clone()),
                        detail,
                        failed_at: *now,
                    })])
                }
            }
            ActionCommand::GiveUp { max_attempts, now } => {
                let timed_out = self.status == ActionStatus::Dispatched
                    && self.attempts >= *max_attempts
                    && self.deadline.is_some_and(|d| d <= *now);
                if !timed_out {
                    return Ok(vec![]);
                }
                Ok(vec![Event::ActionFailed(ActionFailed {
                    action_id,
                    attempt: Some(self.attempts),
                    agent: None,
                    detail: format!("no agent answered after {} attempt(s)", self.attempts),
                    failed_at: *now,
                })])
            }
            ActionCommand::Expire { now } => {
                if self.status == ActionStatus::Expired {
                    return Ok(vec![]);
                }
                if !self.is_due_to_expire(*now) {
                    return Err(ActionError::NotExpired);
                }
                Ok(vec![Event::ActionExpired(ActionExpired { action_id, expired_at: *now })])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::spec::{at, given};

    fn id() -> ActionId {
        ActionId(Uuid::from_u128(42))
    }

    fn lead() -> UserId {
        UserId(Uuid::from_u128(7))
    }

    fn request(kind: ActionKind, target: &str, needs_approval: bool) -> RequestAction {
        RequestAction {
            action_id: id(),
            org_id: OrgId(Uuid::from_u128(1)),
            incident_id: Some(IncidentId(Uuid::from_u128(2))),
            kind,
            target: target.into(),
            duration_secs: None,
            note: None,
            requested_by: None,
            follows: None,
            policy: None,
            automatic: true,
            needs_approval,
            rails: SafetyRails::default(),
            now: at(0),
        }
    }

    fn requested(kind: ActionKind, duration_secs: Option<u64>, needs_approval: bool) -> Event {
        Event::ActionRequested(ActionRequested {
            action_id: id(),
            org_id: OrgId(Uuid::from_u128(1)),
            incident_id: Some(IncidentId(Uuid::from_u128(2))),
            kind,
            target: "203.0.113.9".into(),
            duration_secs,
            note: None,
            requested_by: None,
            policy_id: None,
            policy_name: None,
            follows: None,
            automatic: true,
            needs_approval,
            requested_at: at(0),
            dispatch_due_at: (!needs_approval).then(|| at(DISPATCH_GRACE_SECS)),
        })
    }

    #[test]
    fn the_scheduler_due_time_is_decided_with_the_request_and_the_approval() {
        let events = given::<Action>(vec![])
            .when(ActionCommand::Request(Box::new(request(ActionKind::BlockIp, "203.0.113.9", false))))
            .events();
        let Some(Event::ActionRequested(r)) = events.last() else { panic!("no request: {events:?}") };
        assert_eq!(r.dispatch_due(), Some(at(DISPATCH_GRACE_SECS)));
        assert_eq!(r.dispatch_due_at, Some(at(DISPATCH_GRACE_SECS)), "the time travels in the event");

        let pending = vec![requested(ActionKind::BlockIp, None, true)];
        let Event::ActionRequested(waiting) = &pending[0] else { unreachable!() };
        assert_eq!(waiting.dispatch_due(), None, "nothing is due while approval is pending");
        let approve =
            ActionCommand::Approve { by_user: lead(), role: Role::SocLead, allow_self_approval: false, now: at(10) };
        let approved = given::<Action>(pending).when(approve).events();
        let [Event::ActionApproved(a)] = approved.as_slice() else { panic!("not approved: {approved:?}") };
        assert_eq!(
            (a.dispatch_due_at, a.dispatch_due()),
            (Some(at(10 + DISPATCH_GRACE_SECS)), at(10 + DISPATCH_GRACE_SECS))
        );

        // Events recorded before the times travelled keep the rule they were recorded under.
        let legacy: ActionApproved =
            serde_json::from_value(serde_json::json!({"action_id": id(), "by_user": lead(), "approved_at": at(5)}))
                .unwrap();
        assert_eq!(legacy.dispatch_due(), at(5 + DISPATCH_GRACE_SECS));
        let mut old_request = r.clone();
        old_request.dispatch_due_at = None;
        assert_eq!(old_request.dispatch_due(), Some(at(DISPATCH_GRACE_SECS)));
    }

    fn dispatched(attempt: u32, at_s: i64) -> Event {
        Event::ActionDispatched(ActionDispatched {
            action_id: id(),
            attempt,
            deadline: at(at_s + 30),
            dispatched_at: at(at_s),
        })
    }

    #[test]
    fn a_policy_request_records_the_match_first() {
        let mut r = request(ActionKind::BlockIp, " 203.0.113.9 ", false);
        r.policy = Some(PolicyMatch {
            policy_id: PolicyId(Uuid::from_u128(5)),
            policy_name: "block brute force".into(),
            priority: 1,
            matched: vec!["severity >= high".into()],
            mode: "auto".into(),
            held_for_approval: None,
        });
        let events = given::<Action>(vec![]).when(ActionCommand::Request(Box::new(r))).events();
        assert_eq!(events.len(), 2);
        assert!(matches!(&events[0], Event::PolicyMatched(p) if p.policy_name == "block brute force"));
        let Event::ActionRequested(req) = &events[1] else { panic!("{events:?}") };
        assert_eq!(req.target, "203.0.113.9");
        assert_eq!(req.policy_id, Some(PolicyId(Uuid::from_u128(5))));
        assert_eq!(Action::from_history(&events).status, ActionStatus::Approved);
    }

    #[test]
    fn a_request_is_validated() {
        let bad_ip = request(ActionKind::BlockIp, "not-an-ip", false);
        given::<Action>(vec![])
            .when(ActionCommand::Request(Box::new(bad_ip)))
            .then_err(ActionError::InvalidTarget("not-an-ip".into()));
        let mut long = request(ActionKind::BlockIp, "203.0.113.9", false);
        long.duration_secs = Some(MAX_BLOCK_SECS + 1);
        given::<Action>(vec![]).when(ActionCommand::Request(Box::new(long))).then_err(ActionError::InvalidDuration);
        let mut timed_notify = request(ActionKind::Notify, "soc-channel", false);
        timed_notify.duration_secs = Some(60);
        given::<Action>(vec![])
            .when(ActionCommand::Request(Box::new(timed_notify)))
            .then_err(ActionError::DurationNotAllowed);
        given::<Action>(vec![requested(ActionKind::BlockIp, None, false)])
            .when(ActionCommand::Request(Box::new(request(ActionKind::BlockIp, "203.0.113.9", false))))
            .then_err(ActionError::AlreadyRequested);
    }

    #[test]
    fn protected_addresses_are_never_blocked_but_may_be_unblocked() {
        let err = given::<Action>(vec![])
            .when(ActionCommand::Request(Box::new(request(ActionKind::BlockIp, "127.0.0.1", false))))
            .err();
        assert!(matches!(err, ActionError::Protected { .. }), "{err:?}");
        let private = given::<Action>(vec![])
            .when(ActionCommand::Request(Box::new(request(ActionKind::BlockIp, "10.1.2.3", false))))
            .err();
        assert!(matches!(private, ActionError::Protected { violation: RailViolation::PrivateRange(_), .. }));
        let events = given::<Action>(vec![])
            .when(ActionCommand::Request(Box::new(request(ActionKind::UnblockIp, "127.0.0.1", true))))
            .events();
        let Event::ActionRequested(r) = &events[0] else { panic!() };
        assert!(!r.needs_approval, "lifting a block never waits for approval");
    }

    #[test]
    fn a_policy_asking_to_block_a_protected_address_records_the_refusal_and_dispatches_nothing() {
        let mut r = request(ActionKind::BlockIp, "127.0.0.5", false);
        r.policy = Some(PolicyMatch {
            policy_id: PolicyId(Uuid::from_u128(5)),
            policy_name: "block everything".into(),
            priority: 1,
            matched: vec![],
            mode: "auto".into(),
            held_for_approval: None,
        });
        let events = given::<Action>(vec![]).when(ActionCommand::Request(Box::new(r))).events();
        assert!(matches!(&events[0], Event::PolicyMatched(_)));
        assert!(matches!(&events[1], Event::ActionRequested(_)));
        let Event::ActionFailed(f) = &events[2] else { panic!("{events:?}") };
        assert!(f.detail.contains("protected range 127.0.0.0/8"), "{}", f.detail);
        let state = Action::from_history(&events);
        assert_eq!(state.status, ActionStatus::Failed);
        given::<Action>(events)
            .when(ActionCommand::Dispatch { after_attempt: 0, ack_timeout: Duration::seconds(30), now: at(1) })
            .then_err(ActionError::NotDispatchable("failed"));
    }

    #[test]
    fn only_a_soc_lead_or_admin_approves_and_approval_is_idempotent() {
        let pending = vec![requested(ActionKind::BlockIp, None, true)];
        assert_eq!(Action::from_history(&pending).status, ActionStatus::PendingApproval);
        given::<Action>(pending.clone())
            .when(ActionCommand::Approve {
                by_user: lead(),
                role: Role::Analyst,
                allow_self_approval: false,
                now: at(1),
            })
            .then_err(ActionError::NotAllowedToApprove);
        let approved = Event::ActionApproved(ActionApproved {
            action_id: id(),
            by_user: lead(),
            approved_at: at(1),
            dispatch_due_at: Some(at(1 + DISPATCH_GRACE_SECS)),
        });
        given::<Action>(pending.clone())
            .when(ActionCommand::Approve {
                by_user: lead(),
                role: Role::SocLead,
                allow_self_approval: false,
                now: at(1),
            })
            .then(vec![approved.clone()]);
        given::<Action>(vec![pending[0].clone(), approved])
            .when(ActionCommand::Approve { by_user: lead(), role: Role::Admin, allow_self_approval: false, now: at(2) })
            .then(vec![]);
    }

    #[test]
    fn a_rejected_action_is_never_dispatched() {
        let rejected = Event::ActionRejected(ActionRejected {
            action_id: id(),
            by_user: lead(),
            reason: Some("known scanner partner".into()),
            rejected_at: at(1),
        });
        let history = vec![requested(ActionKind::BlockIp, None, true), rejected];
        given::<Action>(history.clone())
            .when(ActionCommand::Dispatch { after_attempt: 0, ack_timeout: Duration::seconds(30), now: at(2) })
            .then_err(ActionError::NotDispatchable("rejected"));
        given::<Action>(vec![requested(ActionKind::BlockIp, None, true)])
            .when(ActionCommand::Dispatch { after_attempt: 0, ack_timeout: Duration::seconds(30), now: at(2) })
            .then_err(ActionError::NotDispatchable("pending_approval"));
    }

    #[test]
    fn dispatch_counts_attempts_and_gives_up_only_after_the_last_deadline() {
        let history = vec![requested(ActionKind::BlockIp, None, false)];
        given::<Action>(history.clone())
            .when(ActionCommand::Dispatch { after_attempt: 0, ack_timeout: Duration::seconds(30), now: at(0) })
            .then(vec![dispatched(1, 0)]);
        // A racing dispatcher that saw attempt 0 too decides nothing.
        given::<Action>(vec![history[0].clone(), dispatched(1, 0)])
            .when(ActionCommand::Dispatch { after_attempt: 0, ack_timeout: Duration::seconds(30), now: at(1) })
            .then(vec![]);
        let history = vec![history[0].clone(), dispatched(1, 0), dispatched(2, 30)];
        given::<Action>(history.clone()).when(ActionCommand::GiveUp { max_attempts: 2, now: at(59) }).then(vec![]);
        given::<Action>(history.clone()).when(ActionCommand::GiveUp { max_attempts: 3, now: at(61) }).then(vec![]);
        let failed = given::<Action>(history).when(ActionCommand::GiveUp { max_attempts: 2, now: at(60) }).events();
        assert!(matches!(&failed[0], Event::ActionFailed(f) if f.agent.is_none() && f.detail.contains("2 attempt")));
    }

    #[test]
    fn the_first_result_decides_and_a_timed_block_expires_once() {
        let history = vec![requested(ActionKind::BlockIp, Some(600), false), dispatched(1, 0)];
        let ok = ActionCommand::RecordResult {
            attempt: 1,
            agent: "agentkey:1".into(),
            ok: true,
            detail: "added to set".into(),
            now: at(1),
        };
        let events = given::<Action>(history.clone()).when(ok.clone()).events();
        let Event::ActionSucceeded(s) = &events[0] else { panic!() };
        assert_eq!(s.expires_at, Some(at(601)));
        let mut history = history;
        history.extend(events);
        given::<Action>(history.clone()).when(ok).then(vec![]);
        given::<Action>(history.clone()).when(ActionCommand::Expire { now: at(600) }).then_err(ActionError::NotExpired);
        let expired = Event::ActionExpired(ActionExpired { action_id: id(), expired_at: at(601) });
        given::<Action>(history.clone()).when(ActionCommand::Expire { now: at(601) }).then(vec![expired.clone()]);
        history.push(expired);
        given::<Action>(history).when(ActionCommand::Expire { now: at(700) }).then(vec![]);
    }

    #[test]
    fn derived_ids_are_stable() {
        let incident = IncidentId(Uuid::from_u128(2));
        let policy = PolicyId(Uuid::from_u128(3));
        assert_eq!(policy_action_id(incident, policy), policy_action_id(incident, policy));
        assert_ne!(policy_action_id(incident, policy), policy_action_id(incident, PolicyId(Uuid::from_u128(4))));
        assert_ne!(expiry_unblock_id(id()), id());
        assert_ne!(action_command_id(id(), "contain"), action_command_id(id(), "reopen"));
    }

    fn requested_by(user: UserId) -> Event {
        let Event::ActionRequested(mut r) = requested(ActionKind::BlockIp, None, true) else { unreachable!() };
        r.requested_by = Some(user);
        r.automatic = false;
        Event::ActionRequested(r)
    }

    #[test]
    fn four_eyes_a_requester_cannot_approve_their_own_action_unless_the_org_allows_it() {
        let mine = vec![requested_by(lead())];
        let approve = |allow_self_approval| ActionCommand::Approve {
            by_user: lead(),
            role: Role::SocLead,
            allow_self_approval,
            now: at(1),
        };
        given::<Action>(mine.clone()).when(approve(false)).then_err(ActionError::SelfApproval);
        // An admin is held to it too: four eyes means two people.
        given::<Action>(mine.clone())
            .when(ActionCommand::Approve { by_user: lead(), role: Role::Admin, allow_self_approval: false, now: at(1) })
            .then_err(ActionError::SelfApproval);
        given::<Action>(mine.clone()).when(approve(true)).then(vec![Event::ActionApproved(ActionApproved {
            action_id: id(),
            by_user: lead(),
            approved_at: at(1),
            dispatch_due_at: Some(at(1 + DISPATCH_GRACE_SECS)),
        })]);
        // Another soc_lead approves; the requester may still withdraw (reject) their own.
        let other = UserId(Uuid::from_u128(8));
        let events = given::<Action>(mine.clone())
            .when(ActionCommand::Approve {
                by_user: other,
                role: Role::SocLead,
                allow_self_approval: false,
                now: at(1),
            })
            .events();
        assert_eq!(events.len(), 1);
        let rejected = given::<Action>(mine)
            .when(ActionCommand::Reject { by_user: lead(), role: Role::SocLead, reason: None, now: at(1) })
            .events();
        assert!(matches!(rejected[..], [Event::ActionRejected(_)]));
    }

    #[test]
    fn only_dispatched_attempts_are_delivered_and_each_delivery_is_recorded_once() {
        let agent = "agentkey:a".to_string();
        let deliver = |attempt| ActionCommand::RecordDelivery { attempt, agent: agent.clone(), now: at(2) };
        let approved = vec![requested(ActionKind::BlockIp, None, false)];
        given::<Action>(approved.clone()).when(deliver(1)).then_err(ActionError::NotDispatched(1));
        let mut sent = approved;
        sent.push(dispatched(1, 1));
        let delivered = Event::ActionDelivered(ActionDelivered {
            action_id: id(),
            attempt: 1,
            agent: agent.clone(),
            delivered_at: at(2),
        });
        given::<Action>(sent.clone()).when(deliver(1)).then(vec![delivered.clone()]);
        given::<Action>(sent.clone()).when(deliver(2)).then_err(ActionError::NotDispatched(2));
        given::<Action>(sent.clone()).when(deliver(0)).then_err(ActionError::NotDispatched(0));
        sent.push(delivered);
        given::<Action>(sent.clone()).when(deliver(1)).then(vec![]);
        let state = Action::from_history(&sent);
        assert!(state.was_delivered_to("agentkey:a", 1));
        assert!(!state.was_delivered_to("agentkey:b", 1), "another agent of the org did not get it");
        assert!(!state.was_delivered_to("agentkey:a", 2));
    }
}
