//! `/api/auth/second-factor/…` and `/api/auth/users/{id}/second-factor/reset`: the REST side
//! of the TOTP second factor (same handlers as the GraphQL mutations). The second step of a
//! sign-in is `/api/auth/login/mfa` (`accounts.rs`).

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use xdr_domain::identity::totp::SecondFactorRequirement;

use super::auth::user_id;
use crate::error::ApiError;
use crate::extract::{request_context, Caller};
use crate::startup::AppState;

/// Begin enrolling: the secret as an `otpauth://` URI (for a QR code) and in base32.
#[tracing::instrument(skip_all, fields(org_id))]
pub async fn start_enrolment(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let ctx = request_context(&req, state.config.trust_forwarded_for);
    let e = state.identity.start_second_factor_enrolment(&caller.0, &ctx).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "otpauth_uri": e.otpauth_uri, "secret": e.secret_base32 })))
}

#[derive(Deserialize)]
pub struct CodeBody {
    code: String,
}

/// Confirm enrolment with a first code; answers the ten single-use recovery codes, once.
#[tracing::instrument(skip_all, fields(org_id))]
pub async fn confirm_enrolment(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<CodeBody>,
) -> Result<HttpResponse, ApiError> {
    let ctx = request_context(&req, state.config.trust_forwarded_for);
    let codes = state.identity.confirm_second_factor_enrolment(&caller.0, &body.code, &ctx).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "recovery_codes": codes })))
}

/// Remove a user's second factor (admin of their org); they enrol again.
#[tracing::instrument(skip_all, fields(org_id))]
pub async fn reset(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let ctx = request_context(&req, state.config.trust_forwarded_for);
    state.identity.reset_second_factor(&caller.0, user_id(&path)?, &ctx).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
pub struct PolicyBody {
    /// `nobody`, `admins` or `everyone`.
    required_for: SecondFactorRequirement,
}

/// Set who in the caller's organization must use a second factor (admin).
#[tracing::instrument(skip_all, fields(org_id))]
pub async fn set_policy(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<PolicyBody>,
) -> Result<HttpResponse, ApiError> {
    let ctx = request_context(&req, state.config.trust_forwarded_for);
    let set = state.identity.set_second_factor_policy(&caller.0, body.required_for, &ctx).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "required_for": set })))
}
