//! `POST /api/incidents/{id}/contain?duration_seconds=N` and `POST /api/incidents/{id}/unblock`:
//! the earlier service's containment routes, now requesting `block_ip` / `unblock_ip` actions
//! on the incident's source (analyst and up), answered with the action.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use uuid::Uuid;
use xdr_commands::auth::AuthError;
use xdr_domain::identity::Permission;
use xdr_domain::ids::IncidentId;
use xdr_domain::response::action::{Action, ActionKind};

use crate::error::ApiError;
use crate::extract::{actor_metadata, request_context, Caller};
use crate::response::{request_on_incident, ActionAsk, ResponseFailure};
use crate::startup::AppState;

#[derive(Deserialize)]
pub struct ContainQuery {
    /// Lift the block automatically after this many seconds; none: until unblocked.
    duration_seconds: Option<u64>,
}

#[tracing::instrument(skip_all)]
pub async fn contain(
    req: HttpRequest,
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
    query: web::Query<ContainQuery>,
) -> Result<HttpResponse, ApiError> {
    let ask = ActionAsk {
        kind: ActionKind::BlockIp,
        target: None,
        duration_secs: query.duration_seconds,
        note: None,
        require_approval: false,
    };
    run(&req, &state, &caller, &path, ask).await
}

/// Lifting a block is always allowed to analysts (a safety rail): no approval, no rail check.
#[tracing::instrument(skip_all)]
pub async fn unblock(
    req: HttpRequest,
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let ask = ActionAsk {
        kind: ActionKind::UnblockIp,
        target: None,
        duration_secs: None,
        note: None,
        require_approval: false,
    };
    run(&req, &state, &caller, &path, ask).await
}

async fn run(
    req: &HttpRequest,
    state: &AppState,
    caller: &xdr_commands::auth::identity::Principal,
    incident: &str,
    ask: ActionAsk,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::RequestAction)?;
    let incident = Uuid::parse_str(incident).map(IncidentId).map_err(|_| AuthError::NotFound)?;
    let metadata = actor_metadata(caller, request_context(req, state.config.trust_forwarded_for));
    let action = request_on_incident(state, caller, &metadata, incident, ask).await.map_err(|e| match e {
        ResponseFailure::NotFound => ApiError::Auth(AuthError::NotFound),
        ResponseFailure::Forbidden | ResponseFailure::SelfApproval => ApiError::Auth(AuthError::Forbidden),
        ResponseFailure::Protected(m) | ResponseFailure::Invalid(m) => ApiError::Unprocessable(m),
        ResponseFailure::Internal(cause) => ApiError::Auth(AuthError::Internal(cause)),
    })?;
    Ok(HttpResponse::Ok().json(answer(&action)))
}

fn answer(action: &Action) -> serde_json::Value {
    let Some(r) = &action.request else { return serde_json::json!({}) };
    serde_json::json!({
        "action_id": r.action_id,
        "incident_id": r.incident_id,
        "kind": r.kind.as_str(),
        "target": r.target,
        "duration_seconds": r.duration_secs,
        "status": action.status.as_str(),
        "attempts": action.attempts,
    })
}
