//! `/api/auth/*`: the REST compatibility routes of the earlier service, same JSON shapes.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::Deserialize;
use uuid::Uuid;
use xdr_domain::ids::UserId;

use crate::error::ApiError;
use crate::extract::{client_ip, request_context, Caller};
use crate::metrics::Metrics;
use crate::startup::AppState;

#[derive(Deserialize)]
pub struct RegisterBody {
    organization_name: String,
    admin_email: String,
    admin_password: SecretString,
    admin_name: String,
}

#[tracing::instrument(skip_all)]
pub async fn register(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<RegisterBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let ctx = request_context(&req, state.config.trust_forwarded_for);
    let r = state
        .identity
        .register(&body.organization_name, &body.admin_email, body.admin_password, &body.admin_name, &ctx)
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "access_token": r.tokens.access_token,
        "refresh_token": r.tokens.refresh_token,
        "token_type": r.tokens.token_type,
        "user": r.user,
        "organization": r.organization,
    })))
}

#[derive(Deserialize)]
pub struct LoginBody {
    email: String,
    password: SecretString,
}

#[tracing::instrument(skip_all)]
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<LoginBody>,
) -> Result<HttpResponse, ApiError> {
    let client = client_ip(&req, state.config.trust_forwarded_for).unwrap_or_default();
    if !state.login_limiter.check(&client) {
        Metrics::inc(&state.metrics.logins_rate_limited);
        return Err(ApiError::RateLimited);
    }
    let body = body.into_inner();
    let ctx = request_context(&req, state.config.trust_forwarded_for);
    match state.identity.login(&body.email, body.password, &ctx).await {
        Ok(tokens) => {
            Metrics::inc(&state.metrics.logins_succeeded);
            Ok(HttpResponse::Ok().json(tokens))
        }
        Err(e) => {
            Metrics::inc(&state.metrics.logins_refused);
            Err(e.into())
        }
    }
}

#[derive(Deserialize)]
pub struct RefreshBody {
    refresh_token: String,
}

#[tracing::instrument(skip_all)]
pub async fn refresh(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<RefreshBody>,
) -> Result<HttpResponse, ApiError> {
    let ctx = request_context(&req, state.config.trust_forwarded_for);
    let tokens = state.identity.refresh(&body.refresh_token, &ctx).await?;
    Ok(HttpResponse::Ok().json(tokens))
}

#[tracing::instrument(skip_all, fields(org_id))]
pub async fn me(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let (user, organization) = state.identity.me(&caller.0).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "user": user, "organization": organization })))
}

#[tracing::instrument(skip_all, fields(org_id))]
pub async fn logout(req: HttpRequest, state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let ctx = request_context(&req, state.config.trust_forwarded_for);
    state.identity.logout(&caller.0, &ctx).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "detail": "Logged out" })))
}

#[derive(Deserialize)]
pub struct InviteBody {
    email: String,
    full_name: String,
    role: String,
}

#[tracing::instrument(skip_all, fields(org_id))]
pub async fn invite(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<InviteBody>,
) -> Result<HttpResponse, ApiError> {
    let ctx = request_context(&req, state.config.trust_forwarded_for);
    let invited = state.identity.invite(&caller.0, &body.email, &body.full_name, &body.role, &ctx).await?;
    Ok(HttpResponse::Ok().json(invited))
}

#[derive(Deserialize)]
pub struct AcceptInviteBody {
    token: String,
    password: SecretString,
}

#[tracing::instrument(skip_all)]
pub async fn accept_invite(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<AcceptInviteBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let ctx = request_context(&req, state.config.trust_forwarded_for);
    let user = state.identity.accept_invite(&body.token, body.password, &ctx).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "user": user })))
}

fn user_id(path: &str) -> Result<UserId, ApiError> {
    // An unparseable id is "no such user", the same answer as another org's user.
    Uuid::parse_str(path).map(UserId).map_err(|_| xdr_commands::auth::AuthError::NotFound.into())
}

#[tracing::instrument(skip_all, fields(org_id))]
pub async fn get_user(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let user = state.identity.get_user(&caller.0, user_id(&path)?).await?;
    Ok(HttpResponse::Ok().json(user))
}

#[derive(Deserialize, Default)]
pub struct LockBody {
    until: Option<DateTime<Utc>>,
}

#[tracing::instrument(skip_all, fields(org_id))]
pub async fn lock_user(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: Option<web::Json<LockBody>>,
) -> Result<HttpResponse, ApiError> {
    let ctx = request_context(&req, state.config.trust_forwarded_for);
    let until = body.and_then(|b| b.into_inner().until);
    let user = state.identity.lock_user(&caller.0, user_id(&path)?, until, &ctx).await?;
    Ok(HttpResponse::Ok().json(user))
}

#[tracing::instrument(skip_all, fields(org_id))]
pub async fn unlock_user(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let ctx = request_context(&req, state.config.trust_forwarded_for);
    let user = state.identity.unlock_user(&caller.0, user_id(&path)?, &ctx).await?;
    Ok(HttpResponse::Ok().json(user))
}
