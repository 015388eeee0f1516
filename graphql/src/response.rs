//! Containment actions as the API asks for them: on an incident of the caller's org, with the
//! target defaulting to the incident's source, dispatched at once when a dispatcher is
//! configured. Shared by the GraphQL resolvers and the REST compatibility routes, so both
//! check and answer the same way.

use chrono::Utc;
use uuid::Uuid;
use xdr_commands::auth::identity::Principal;
use xdr_commands::handler::{load, CommandError};
use xdr_commands::response::actions::{
    approve_action, dispatch_action, reject_action, request_and_dispatch, Approver, NewAction, ResponseError,
};
use xdr_domain::ids::{ActionId, IncidentId, OrgId};
use xdr_domain::incident::Incident;
use xdr_domain::response::action::{Action, ActionError, ActionKind, ActionStatus};
use xdr_domain::EventMetadata;

use crate::startup::AppState;

/// Why an action could not be requested, approved or rejected.
#[derive(Debug, thiserror::Error)]
pub enum ResponseFailure {
    /// No such incident or action in the caller's org (another org's ids included).
    #[error("not found")]
    NotFound,
    #[error("approving or rejecting needs the soc_lead role or above")]
    Forbidden,
    /// Four-eyes: the requester tried to approve their own action.
    #[error("four-eyes: an action cannot be approved by the person who requested it")]
    SelfApproval,
    /// A safety rail refused the target (protected or private address).
    #[error("{0}")]
    Protected(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Internal(String),
}

impl From<ActionError> for ResponseFailure {
    fn from(e: ActionError) -> Self {
        match e {
            ActionError::NotFound => ResponseFailure::NotFound,
            ActionError::NotAllowedToApprove => ResponseFailure::Forbidden,
            ActionError::SelfApproval => ResponseFailure::SelfApproval,
            e @ ActionError::Protected { .. } => ResponseFailure::Protected(e.to_string()),
            other => ResponseFailure::Invalid(other.to_string()),
        }
    }
}

impl From<CommandError<ActionError>> for ResponseFailure {
    fn from(e: CommandError<ActionError>) -> Self {
        match e {
            CommandError::Domain(d) => d.into(),
            other => ResponseFailure::Internal(other.to_string()),
        }
    }
}

/// What the caller asks for; the org, the requester and the time are added here.
#[derive(Debug, Clone)]
pub struct ActionAsk {
    pub kind: ActionKind,
    /// Defaults to the incident's source address for `block_ip` / `unblock_ip`.
    pub target: Option<String>,
    pub duration_secs: Option<u64>,
    pub note: Option<String>,
    /// Four-eyes: hold the action until a `soc_lead` approves it.
    pub require_approval: bool,
}

/// Request `ask` on `incident` (of the caller's org) and, when it needs no approval and a
/// dispatcher is configured, send the order at once.
pub async fn request_on_incident(
    state: &AppState,
    caller: &Principal,
    metadata: &EventMetadata,
    incident: IncidentId,
    ask: ActionAsk,
) -> Result<Action, ResponseFailure> {
    let store = state.identity.store();
    let org = caller.org_id;
    // The incident is read from the caller's org only: another org's id is simply not found.
    let (current, _) = load::<Incident>(store, org, &incident.stream_id())
        .await
        .map_err(|e| ResponseFailure::Internal(e.to_string()))?;
    if !current.is_opened() {
        return Err(ResponseFailure::NotFound);
    }
    let target = match ask.target.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()) {
        Some(t) => t,
        None if ask.kind.targets_ip() => current.src_ip.clone(),
        None => return Err(ResponseFailure::Invalid(format!("{} needs a target", ask.kind.as_str()))),
    };
    let action_id = ActionId(Uuid::now_v7());
    let new = NewAction {
        action_id,
        incident_id: Some(incident),
        kind: ask.kind,
        target,
        duration_secs: ask.duration_secs,
        note: ask.note,
        requested_by: Some(caller.user_id),
        follows: None,
        policy: None,
        automatic: false,
        needs_approval: ask.require_approval,
    };
    match request_and_dispatch(store, state.config.dispatcher.as_ref(), org, new, metadata, Utc::now()).await {
        Ok(action) => Ok(action),
        Err(e) => recover_from_send_failure(state, org, action_id, e).await,
    }
}

/// Approve a pending action and send it at once when a dispatcher is configured.
pub async fn approve(
    state: &AppState,
    caller: &Principal,
    metadata: &EventMetadata,
    action: ActionId,
) -> Result<Action, ResponseFailure> {
    let store = state.identity.store();
    let org = caller.org_id;
    let now = Utc::now();
    let approver = Approver { user: caller.user_id, role: caller.role };
    let approved = approve_action(store, org, action, approver, metadata, now).await?;
    let Some(dispatcher) = state.config.dispatcher.as_ref() else {
        return Ok(approved);
    };
    if approved.status != ActionStatus::Approved || approved.attempts != 0 {
        return Ok(approved);
    }
    match dispatch_action(store, dispatcher, org, action, 0, now).await {
        Ok(dispatched) => Ok(dispatched.state),
        Err(e) => recover_from_send_failure(state, org, action, e).await,
    }
}

pub async fn reject(
    state: &AppState,
    caller: &Principal,
    metadata: &EventMetadata,
    action: ActionId,
    reason: Option<String>,
) -> Result<Action, ResponseFailure> {
    let approver = Approver { user: caller.user_id, role: caller.role };
    Ok(reject_action(state.identity.store(), caller.org_id, action, approver, reason, metadata, Utc::now()).await?)
}

/// The request (or approval) is committed but sending the order failed: the action stands
/// and the scheduler's sweep sends it (an approved action after its grace period, a
/// dispatched one at its deadline), so the caller gets the action, not an error that would
/// invite a second request.
async fn recover_from_send_failure(
    state: &AppState,
    org: OrgId,
    action: ActionId,
    error: ResponseError,
) -> Result<Action, ResponseFailure> {
    match error {
        ResponseError::Action(e) => Err(e.into()),
        ResponseError::Nats(e) => {
            tracing::error!(%org, %action, error = %e, "order not sent; the scheduler will send it");
            Ok(load::<Action>(state.identity.store(), org, &action.stream_id()).await?.0)
        }
        ResponseError::Incident(e) => Err(ResponseFailure::Internal(e)),
    }
}
