//! `/api/auth/users/{id}/{role,deactivate,reactivate,sessions/revoke}` and
//! `/api/auth/sessions/…`: the REST side of account administration (same handlers as GraphQL).

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use uuid::Uuid;
use xdr_commands::auth::AuthError;
use xdr_domain::identity::Role;
use xdr_domain::ids::SessionId;

use super::auth::user_id;
use crate::error::ApiError;
use crate::extract::{request_context, Caller};
use crate::startup::AppState;

#[derive(Deserialize)]
pub struct RoleBody {
    role: String,
}

#[tracing::instrument(skip_all, fields(org_id))]
pub async fn change_role(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<RoleBody>,
) -> Result<HttpResponse, ApiError> {
    let ctx = request_context(&req, state.config.trust_forwarded_for);
    let role = Role::parse(&body.role).map_err(AuthError::from)?;
    let user = state.identity.change_role(&caller.0, user_id(&path)?, role, &ctx).await?;
    Ok(HttpResponse::Ok().json(user))
}

#[tracing::instrument(skip_all, fields(org_id))]
pub async fn deactivate_user(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let ctx = request_context(&req, state.config.trust_forwarded_for);
    let user = state.identity.deactivate_user(&caller.0, user_id(&path)?, &ctx).await?;
    Ok(HttpResponse::Ok().json(user))
}

#[tracing::instrument(skip_all, fields(org_id))]
pub async fn reactivate_user(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let ctx = request_context(&req, state.config.trust_forwarded_for);
    let user = state.identity.reactivate_user(&caller.0, user_id(&path)?, &ctx).await?;
    Ok(HttpResponse::Ok().json(user))
}

#[tracing::instrument(skip_all, fields(org_id))]
pub async fn revoke_user_sessions(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let ctx = request_context(&req, state.config.trust_forwarded_for);
    state.identity.revoke_user_sessions(&caller.0, user_id(&path)?, &ctx).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "detail": "Sessions revoked" })))
}

#[tracing::instrument(skip_all, fields(org_id))]
pub async fn revoke_session(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let ctx = request_context(&req, state.config.trust_forwarded_for);
    // An unparseable id is "no such session", the same answer as another org's session.
    let session = Uuid::parse_str(&path).map(SessionId).map_err(|_| AuthError::NotFound)?;
    state.identity.revoke_session(&caller.0, session, &ctx).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "detail": "Session revoked" })))
}

#[tracing::instrument(skip_all, fields(org_id))]
pub async fn revoke_other_sessions(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let ctx = request_context(&req, state.config.trust_forwarded_for);
    state.identity.revoke_other_sessions(&caller.0, &ctx).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "detail": "Other sessions revoked" })))
}

#[derive(Deserialize)]
pub struct SecondStepBody {
    mfa_token: String,
    code: String,
}

/// The second step of a sign-in: the `mfa_token` from `/api/auth/login` and a TOTP or
/// recovery code. Spends from the same per-client budget as the password step.
#[tracing::instrument(skip_all)]
pub async fn login_second_factor(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<SecondStepBody>,
) -> Result<HttpResponse, ApiError> {
    let ctx = request_context(&req, state.config.trust_forwarded_for);
    if !state.login_limiter.check(ctx.ip.as_deref().unwrap_or_default()) {
        crate::metrics::Metrics::inc(&state.metrics.logins_rate_limited);
        return Err(ApiError::RateLimited);
    }
    let tokens = state.identity.login_second_factor(&body.mfa_token, &body.code, &ctx).await?;
    crate::metrics::Metrics::inc(&state.metrics.logins_succeeded);
    Ok(super::auth::token_response(
        &req,
        &state,
        &tokens.access_token,
        &tokens.refresh_token,
        tokens.token_type,
        serde_json::json!({}),
    ))
}
