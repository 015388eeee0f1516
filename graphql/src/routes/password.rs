//! `/api/auth/forgot-password`, `/api/auth/reset-password`, `/api/auth/change-password`.
//!
//! `forgot-password` answers `202` with the same body, after the same time, for every address
//! (`IdentityService::forgot_password`); it is limited per client address and per target
//! address, so it can be used neither to probe accounts nor to flood a mailbox.

use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::SecretString;
use serde::Deserialize;

use crate::error::ApiError;
use crate::extract::{request_context, Caller};
use crate::metrics::Metrics;
use crate::startup::AppState;

/// What `forgot-password` always says.
pub const RESET_REQUESTED: &str = "If the address belongs to an account, a reset link is on its way.";

#[derive(Deserialize)]
pub struct ForgotPasswordBody {
    email: String,
}

#[tracing::instrument(skip_all)]
pub async fn forgot_password(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<ForgotPasswordBody>,
) -> Result<HttpResponse, ApiError> {
    let ctx = request_context(&req, state.config.trust_forwarded_for);
    let client = ctx.ip.as_deref().unwrap_or_default();
    let target = body.email.trim().to_lowercase();
    if !state.password_reset_limiter.check(client) || !state.password_reset_limiter.check_name(&target) {
        Metrics::inc(&state.metrics.registrations_rate_limited);
        return Err(ApiError::RateLimited);
    }
    state.identity.forgot_password(&body.email, &ctx).await?;
    Ok(HttpResponse::Accepted().json(serde_json::json!({ "detail": RESET_REQUESTED })))
}

#[derive(Deserialize)]
pub struct ResetPasswordBody {
    token: String,
    password: SecretString,
}

#[tracing::instrument(skip_all)]
pub async fn reset_password(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<ResetPasswordBody>,
) -> Result<HttpResponse, ApiError> {
    let ctx = request_context(&req, state.config.trust_forwarded_for);
    // An argon2 hash per request, like an invitation's acceptance: the same budget.
    if !state.register_limiter.check(ctx.ip.as_deref().unwrap_or_default()) {
        Metrics::inc(&state.metrics.registrations_rate_limited);
        return Err(ApiError::RateLimited);
    }
    let body = body.into_inner();
    state.identity.reset_password(&body.token, body.password, &ctx).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "detail": "Password changed; sign in with the new password" })))
}

#[derive(Deserialize)]
pub struct ChangePasswordBody {
    current_password: SecretString,
    new_password: SecretString,
}

#[tracing::instrument(skip_all, fields(org_id))]
pub async fn change_password(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<ChangePasswordBody>,
) -> Result<HttpResponse, ApiError> {
    let ctx = request_context(&req, state.config.trust_forwarded_for);
    // Guesses at the current password from a stolen session cost what guesses at login cost.
    if !state.login_limiter.check(ctx.ip.as_deref().unwrap_or_default()) {
        Metrics::inc(&state.metrics.logins_rate_limited);
        return Err(ApiError::RateLimited);
    }
    let body = body.into_inner();
    state.identity.change_password(&caller.0, body.current_password, body.new_password, &ctx).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "detail": "Password changed; other sessions ended" })))
}
