//! Command handlers of an action's lifecycle: request, approve, reject, dispatch, record an
//! agent's result, time out, expire — and the incident status that follows (`contained` when
//! a block succeeds, `open` again when it is lifted).
//!
//! Every follow-up command has a deterministic id, so whoever runs it twice (a redelivered
//! result, two scheduler replicas, a restart) appends it once.

use chrono::{DateTime, Duration, Utc};
use xdr_domain::identity::Role;
use xdr_domain::ids::{ActionId, IncidentId, OrgId, UserId};
use xdr_domain::incident::{Incident, IncidentCommand, IncidentStatus, UpdateIncidentStatus};
use xdr_domain::response::action::{
    action_command_id, expiry_unblock_id, Action, ActionCommand, ActionError, ActionKind, ActionStatus, PolicyMatch,
    RequestAction,
};
use xdr_domain::response::order::{ActionOrder, ActionResult};
use xdr_domain::response::policy::{containment_stream_id, ContainmentPolicies};
use xdr_domain::{Event, EventMetadata};

use super::dispatch::Dispatcher;
use crate::handler::{execute, load, CommandError};
use crate::ingest::NatsError;
use crate::store::EventStore;

pub type ActionCommandError = CommandError<ActionError>;

/// Errors of handlers that also talk to NATS.
#[derive(Debug, thiserror::Error)]
pub enum ResponseError {
    #[error(transparent)]
    Action(#[from] ActionCommandError),
    #[error("incident status could not follow the action: {0}")]
    Incident(String),
    #[error("cannot send the order: {0}")]
    Nats(#[from] NatsError),
}

/// What is being asked for (the handler adds the org's safety rails and the time).
#[derive(Debug, Clone, PartialEq)]
pub struct NewAction {
    pub action_id: ActionId,
    pub incident_id: Option<IncidentId>,
    pub kind: ActionKind,
    pub target: String,
    pub duration_secs: Option<u64>,
    pub note: Option<String>,
    pub requested_by: Option<UserId>,
    pub follows: Option<ActionId>,
    pub policy: Option<PolicyMatch>,
    pub automatic: bool,
    pub needs_approval: bool,
}

/// The org's containment policies and settings as they are now.
pub async fn load_containment(
    store: &EventStore,
    org: OrgId,
) -> Result<ContainmentPolicies, CommandError<xdr_domain::response::policy::ContainmentError>> {
    Ok(load::<ContainmentPolicies>(store, org, &containment_stream_id(org)).await?.0)
}

fn action_stream(action: ActionId) -> String {
    action.stream_id()
}

/// Request an action. Requesting an id that exists returns that action unchanged (a policy
/// that matches the same incident again, a retried request), so the call is idempotent.
pub async fn request_action(
    store: &EventStore,
    org: OrgId,
    new: NewAction,
    metadata: &EventMetadata,
    now: DateTime<Utc>,
) -> Result<Action, ActionCommandError> {
    let rails = load_containment(store, org).await.map_err(|e| CommandError::Corrupt(e.to_string()))?.rails();
    let command = ActionCommand::Request(Box::new(RequestAction {
        action_id: new.action_id,
        org_id: org,
        incident_id: new.incident_id,
        kind: new.kind,
        target: new.target,
        duration_secs: new.duration_secs,
        note: new.note,
        requested_by: new.requested_by,
        follows: new.follows,
        policy: new.policy,
        automatic: new.automatic,
        needs_approval: new.needs_approval,
        rails,
        now,
    }));
    let stream = action_stream(new.action_id);
    match execute::<Action>(store, org, &stream, &command, metadata, Some(new.action_id.0)).await {
        Ok(done) => Ok(done.state),
        Err(CommandError::Domain(ActionError::AlreadyRequested)) => Ok(load::<Action>(store, org, &stream).await?.0),
        Err(e) => Err(e),
    }
}

/// Who approves or rejects: the verified user and their role (checked by the aggregate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Approver {
    pub user: UserId,
    pub role: Role,
}

pub async fn approve_action(
    store: &EventStore,
    org: OrgId,
    action: ActionId,
    approver: Approver,
    metadata: &EventMetadata,
    now: DateTime<Utc>,
) -> Result<Action, ActionCommandError> {
    // Four-eyes unless the org's admins turned it off; decided by the action aggregate.
    let allow_self_approval =
        load_containment(store, org).await.map_err(|e| CommandError::Corrupt(e.to_string()))?.allow_self_approval;
    let command = ActionCommand::Approve { by_user: approver.user, role: approver.role, allow_self_approval, now };
    Ok(execute::<Action>(store, org, &action_stream(action), &command, metadata, None).await?.state)
}

pub async fn reject_action(
    store: &EventStore,
    org: OrgId,
    action: ActionId,
    approver: Approver,
    reason: Option<String>,
    metadata: &EventMetadata,
    now: DateTime<Utc>,
) -> Result<Action, ActionCommandError> {
    let command = ActionCommand::Reject { by_user: approver.user, role: approver.role, reason, now };
    Ok(execute::<Action>(store, org, &action_stream(action), &command, metadata, None).await?.state)
}

/// What a dispatch did: the action as it stands after it, and the order that went out (none
/// when someone else had already sent an attempt after `after_attempt`).
#[derive(Debug, Clone)]
pub struct Dispatched {
    pub state: Action,
    pub order: Option<ActionOrder>,
}

/// Send the next attempt of an approved (or unanswered) action, if nobody has sent an
/// attempt after `after_attempt` yet.
pub async fn dispatch_action(
    store: &EventStore,
    dispatcher: &Dispatcher,
    org: OrgId,
    action: ActionId,
    after_attempt: u32,
    now: DateTime<Utc>,
) -> Result<Dispatched, ResponseError> {
    let ack_timeout = Duration::from_std(dispatcher.config().ack_timeout).unwrap_or(Duration::seconds(30));
    let command = ActionCommand::Dispatch { after_attempt, ack_timeout, now };
    let metadata = EventMetadata::system("dispatcher");
    let done = execute::<Action>(store, org, &action_stream(action), &command, &metadata, None).await?;
    let Some(Event::ActionDispatched(d)) = done.events.first() else {
        return Ok(Dispatched { state: done.state, order: None });
    };
    let Some(request) = &done.state.request else {
        return Err(ActionCommandError::Corrupt(format!("action {action} dispatched without a request")).into());
    };
    let order = ActionOrder {
        action_id: action,
        org_id: org,
        attempt: d.attempt,
        kind: request.kind,
        target: request.target.clone(),
        duration_secs: request.duration_secs,
        issued_at: d.dispatched_at,
        deadline: d.deadline,
    };
    dispatcher.publish_order(&order).await?;
    Ok(Dispatched { state: done.state, order: Some(order) })
}

/// Request, then (when it needs no approval and a dispatcher is at hand) dispatch at once.
/// Without a dispatcher, the scheduler sends it after the grace period.
pub async fn request_and_dispatch(
    store: &EventStore,
    dispatcher: Option<&Dispatcher>,
    org: OrgId,
    new: NewAction,
    metadata: &EventMetadata,
    now: DateTime<Utc>,
) -> Result<Action, ResponseError> {
    let action_id = new.action_id;
    let state = request_action(store, org, new, metadata, now).await?;
    match dispatcher {
        Some(d) if state.status == ActionStatus::Approved && state.attempts == 0 => {
            Ok(dispatch_action(store, d, org, action_id, 0, now).await?.state)
        }
        _ => Ok(state),
    }
}

/// Record that the gateway delivered `attempt` of `action` to `agent` (`agentkey:<id>`).
/// Idempotent: a redelivery of the same attempt to the same agent appends nothing.
pub async fn record_delivery(
    store: &EventStore,
    org: OrgId,
    action: ActionId,
    attempt: u32,
    agent: &str,
    now: DateTime<Utc>,
) -> Result<Action, ActionCommandError> {
    let command = ActionCommand::RecordDelivery { attempt, agent: agent.to_owned(), now };
    let metadata = EventMetadata::system(agent);
    let id = action_command_id(action, &format!("delivered/{agent}/{attempt}"));
    Ok(execute::<Action>(store, org, &action_stream(action), &command, &metadata, Some(id)).await?.state)
}

/// Whether the log of `org` records `attempt` of `action` as delivered to `agent`: the only
/// agent whose answer (and acknowledgement) the gateway accepts for it.
pub async fn delivered_to(
    store: &EventStore,
    org: OrgId,
    action: ActionId,
    attempt: u32,
    agent: &str,
) -> Result<bool, ActionCommandError> {
    Ok(load::<Action>(store, org, &action_stream(action)).await?.0.was_delivered_to(agent, attempt))
}

/// Record an agent's answer; the incident's status follows a successful block or unblock.
/// The result's `org_id` must be the org the caller verified (the agent's key), never one
/// the agent claims.
pub async fn record_result(store: &EventStore, org: OrgId, result: &ActionResult) -> Result<Action, ResponseError> {
    let command = ActionCommand::RecordResult {
        attempt: result.attempt,
        agent: result.agent.clone(),
        ok: result.ok,
        detail: result.detail.clone(),
        now: result.at,
    };
    let metadata = EventMetadata::system(&result.agent);
    let stream = action_stream(result.action_id);
    let done = execute::<Action>(store, org, &stream, &command, &metadata, None).await?;
    if done.events.iter().any(|e| matches!(e, Event::ActionSucceeded(_))) {
        follow_incident(store, org, result.action_id, &done.state, result.at).await?;
    }
    Ok(done.state)
}

/// An attempt's deadline passed with no answer: send the next attempt, or give up after the
/// last one. Acts only if the action is still overdue when loaded here.
pub async fn handle_deadline(
    store: &EventStore,
    dispatcher: &Dispatcher,
    org: OrgId,
    action: ActionId,
    now: DateTime<Utc>,
) -> Result<Action, ResponseError> {
    let stream = action_stream(action);
    let (state, _) = load::<Action>(store, org, &stream).await?;
    let overdue = state.status == ActionStatus::Dispatched && state.deadline.is_some_and(|d| d <= now);
    if !overdue {
        return Ok(state);
    }
    let max_attempts = dispatcher.config().max_attempts;
    if state.attempts >= max_attempts {
        let command = ActionCommand::GiveUp { max_attempts, now };
        let metadata = EventMetadata::system("scheduler");
        let id = action_command_id(action, &format!("give-up/{}", state.attempts));
        return Ok(execute::<Action>(store, org, &stream, &command, &metadata, Some(id)).await?.state);
    }
    Ok(dispatch_action(store, dispatcher, org, action, state.attempts, now).await?.state)
}

/// A timed block is due: mark it expired and request (and, with a dispatcher, send) the
/// unblock that lifts it. Both steps have fixed ids: running this twice, or on two
/// schedulers, or again after a restart, expires and unblocks once.
pub async fn expire_block(
    store: &EventStore,
    dispatcher: Option<&Dispatcher>,
    org: OrgId,
    action: ActionId,
    now: DateTime<Utc>,
) -> Result<Option<Action>, ResponseError> {
    let stream = action_stream(action);
    let (state, _) = load::<Action>(store, org, &stream).await?;
    let Some(request) = state.request.clone() else {
        return Ok(None);
    };
    if !state.is_due_to_expire(now) && state.status != ActionStatus::Expired {
        return Ok(None);
    }
    let metadata = EventMetadata::system("scheduler");
    // Unblock first, expire second: a crash in between leaves the block due (its schedule row
    // stays), so the next sweep finds the unblock already requested and just expires.
    let unblock = NewAction {
        action_id: expiry_unblock_id(action),
        incident_id: request.incident_id,
        kind: ActionKind::UnblockIp,
        target: request.target.clone(),
        duration_secs: None,
        note: Some(format!("timed block {action} expired")),
        requested_by: None,
        follows: Some(action),
        policy: None,
        automatic: true,
        needs_approval: false,
    };
    let unblock = request_and_dispatch(store, dispatcher, org, unblock, &metadata, now).await?;
    let id = action_command_id(action, "expire");
    match execute::<Action>(store, org, &stream, &ActionCommand::Expire { now }, &metadata, Some(id)).await {
        Ok(_) | Err(CommandError::Domain(ActionError::NotExpired)) => Ok(Some(unblock)),
        Err(e) => Err(e.into()),
    }
}

/// The incident follows its actions: `open → contained` when a block succeeds,
/// `contained → open` when a block on it is lifted. Anything else (an analyst already
/// resolved it, it was never opened) is left alone.
async fn follow_incident(
    store: &EventStore,
    org: OrgId,
    action: ActionId,
    state: &Action,
    now: DateTime<Utc>,
) -> Result<(), ResponseError> {
    let Some(request) = &state.request else { return Ok(()) };
    let Some(incident) = request.incident_id else { return Ok(()) };
    let (from, to, note) = match request.kind {
        ActionKind::BlockIp => (IncidentStatus::Open, IncidentStatus::Contained, format!("{} blocked", request.target)),
        ActionKind::UnblockIp => {
            (IncidentStatus::Contained, IncidentStatus::Open, format!("block on {} lifted", request.target))
        }
        _ => return Ok(()),
    };
    let stream = incident.stream_id();
    let (current, _) =
        load::<Incident>(store, org, &stream).await.map_err(|e| ResponseError::Incident(e.to_string()))?;
    if current.status != from {
        return Ok(());
    }
    let command = IncidentCommand::UpdateStatus(UpdateIncidentStatus {
        incident_id: incident,
        status: to,
        note: Some(note),
        by_user: request.requested_by,
        now,
    });
    let metadata = EventMetadata::system(&format!("action:{action}"));
    let id = action_command_id(action, "incident-status");
    match execute::<Incident>(store, org, &stream, &command, &metadata, Some(id)).await {
        Ok(_) => Ok(()),
        // Someone changed the status in between; theirs stands.
        Err(CommandError::Domain(_)) => Ok(()),
        Err(e) => Err(ResponseError::Incident(e.to_string())),
    }
}

/// Whether an `Action` state is a block that is in force.
pub fn is_active_block(state: &Action) -> bool {
    state.status == ActionStatus::Succeeded && state.request.as_ref().is_some_and(|r| r.kind == ActionKind::BlockIp)
}

/// The order the log backs for a delivered `order`: built from the action's stream in `org`
/// (the agent's org, never the order's own claim) — its request's kind, target and duration
/// and its `ActionDispatched` for `order.attempt`. `None` when the log holds no such
/// dispatch, or one with another kind, target or duration: a forged or foreign order.
pub async fn logged_order(
    store: &EventStore,
    org: OrgId,
    order: &ActionOrder,
) -> Result<Option<ActionOrder>, crate::store::StoreError> {
    let mut request = None;
    let mut dispatched = None;
    for stored in store.read_stream(org, &order.action_id.stream_id()).await? {
        match stored.event() {
            Ok(Event::ActionRequested(r)) => request = Some(r),
            Ok(Event::ActionDispatched(d)) if d.attempt == order.attempt => dispatched = Some(d),
            _ => {}
        }
    }
    let (Some(request), Some(dispatched)) = (request, dispatched) else { return Ok(None) };
    let logged = ActionOrder {
        action_id: order.action_id,
        org_id: org,
        attempt: dispatched.attempt,
        kind: request.kind,
        target: request.target,
        duration_secs: request.duration_secs,
        issued_at: dispatched.dispatched_at,
        deadline: dispatched.deadline,
    };
    let same = logged.org_id == order.org_id
        && logged.kind == order.kind
        && logged.target == order.target
        && logged.duration_secs == order.duration_secs;
    Ok(same.then_some(logged))
}
