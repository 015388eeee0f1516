//! `/api/auth/*`: the REST compatibility routes of the earlier service, same JSON shapes.
//!
//! A browser client asks for its refresh token as a cookie with `X-XDR-Refresh-Cookie: 1` on
//! register, login and refresh: the token then travels in an `HttpOnly; SameSite=Strict`
//! cookie scoped to `/api/auth/refresh` (`Secure` under TLS) and the JSON's `refresh_token`
//! is `null`, so script on the page never holds it. Without the header nothing changes.
//!
//! Every successful login also sets the known-device cookie (`xdr_device`, `HttpOnly;
//! SameSite=Strict`, scoped to `/api/auth/login`, for the known-device lifetime). A client
//! that presents it on a later login is recognised, and a lock caused by someone else's bad
//! passwords does not keep it out (`xdr_domain::identity::user`).

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

/// The refresh cookie's name and the only path it is sent to.
pub const REFRESH_COOKIE: &str = "xdr_refresh";
pub const REFRESH_PATH: &str = "/api/auth/refresh";
/// The known-device cookie's name and the only path it is sent to.
pub const DEVICE_COOKIE: &str = "xdr_device";
pub const DEVICE_PATH: &str = "/api/auth/login";

/// The request header by which a client asks for cookie mode. A cross-site page cannot send it
/// without a CORS preflight this server never grants, so the cookie is read only with it.
pub const COOKIE_MODE_HEADER: &str = "x-xdr-refresh-cookie";

fn wants_cookie(req: &HttpRequest) -> bool {
    req.headers().get(COOKIE_MODE_HEADER).and_then(|v| v.to_str().ok()).is_some_and(|v| v.trim() == "1")
}

fn refresh_cookie(req: &HttpRequest, state: &AppState, value: &str, max_age_seconds: i64) -> String {
    let secure = state.config.tls.is_some() || req.connection_info().scheme() == "https";
    format!(
        "{REFRESH_COOKIE}={value}; Path={REFRESH_PATH}; Max-Age={max_age_seconds}; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

fn device_cookie(req: &HttpRequest, state: &AppState, value: &str) -> String {
    let secure = state.config.tls.is_some() || req.connection_info().scheme() == "https";
    let max_age = state.identity.lockout_policy().known_device_lifetime.num_seconds();
    format!(
        "{DEVICE_COOKIE}={value}; Path={DEVICE_PATH}; Max-Age={max_age}; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

fn cookie_value<'r>(req: &'r HttpRequest, name: &str) -> Option<&'r str> {
    req.headers()
        .get_all(actix_web::http::header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, v)| *k == name && !v.is_empty())
        .map(|(_, v)| v)
}

/// The token pair as JSON (plus `extra` fields); in cookie mode the refresh token goes into
/// the cookie instead of the body.
pub(super) fn token_response(
    req: &HttpRequest,
    state: &AppState,
    access_token: &str,
    refresh_token: &str,
    token_type: &str,
    extra: serde_json::Value,
) -> HttpResponse {
    let cookie_mode = wants_cookie(req);
    let mut body = serde_json::json!({
        "access_token": access_token,
        "refresh_token": if cookie_mode { None } else { Some(refresh_token) },
        "token_type": token_type,
    });
    if let (Some(body), serde_json::Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    let mut response = HttpResponse::Ok();
    if cookie_mode {
        let max_age = xdr_commands::auth::tokens::REFRESH_TTL.num_seconds();
        response
            .insert_header((actix_web::http::header::SET_COOKIE, refresh_cookie(req, state, refresh_token, max_age)));
        response.insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"));
    }
    response.json(body)
}

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
    let ctx = request_context(&req, state.config.trust_forwarded_for);
    if !state.register_limiter.check(ctx.ip.as_deref().unwrap_or_default()) {
        Metrics::inc(&state.metrics.registrations_rate_limited);
        return Err(ApiError::RateLimited);
    }
    let body = body.into_inner();
    let r = state
        .identity
        .register(&body.organization_name, &body.admin_email, body.admin_password, &body.admin_name, &ctx)
        .await?;
    Ok(token_response(
        &req,
        &state,
        &r.tokens.access_token,
        &r.tokens.refresh_token,
        r.tokens.token_type,
        serde_json::json!({ "user": r.user, "organization": r.organization }),
    ))
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
    let device = cookie_value(&req, DEVICE_COOKIE);
    match state.identity.login(&body.email, body.password, device, &ctx).await {
        Ok(signed_in) => {
            Metrics::inc(&state.metrics.logins_succeeded);
            let tokens = &signed_in.tokens;
            let mut response = token_response(
                &req,
                &state,
                &tokens.access_token,
                &tokens.refresh_token,
                tokens.token_type,
                serde_json::json!({}),
            );
            if let Ok(cookie) = device_cookie(&req, &state, &signed_in.device_token).parse() {
                response.headers_mut().append(actix_web::http::header::SET_COOKIE, cookie);
            }
            Ok(response)
        }
        // Right password, second factor next: `/api/auth/login/mfa` with this token.
        Err(xdr_commands::auth::AuthError::SecondFactorRequired(pending)) => {
            let mut response = HttpResponse::Ok();
            response.append_header((
                actix_web::http::header::SET_COOKIE,
                device_cookie(&req, &state, &pending.device_token),
            ));
            response.insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"));
            Ok(response.json(serde_json::json!({
                "mfa_required": true,
                "mfa_token": pending.mfa_token,
                "token_type": "mfa",
            })))
        }
        Err(e) => {
            Metrics::inc(&state.metrics.logins_refused);
            Err(e.into())
        }
    }
}

#[derive(Deserialize, Default)]
pub struct RefreshBody {
    /// Absent in cookie mode: the token comes from the cookie.
    refresh_token: Option<String>,
}

#[tracing::instrument(skip_all)]
pub async fn refresh(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Option<web::Json<RefreshBody>>,
) -> Result<HttpResponse, ApiError> {
    let ctx = request_context(&req, state.config.trust_forwarded_for);
    if !state.refresh_limiter.check(ctx.ip.as_deref().unwrap_or_default()) {
        Metrics::inc(&state.metrics.refreshes_rate_limited);
        return Err(ApiError::RateLimited);
    }
    let from_body = body.and_then(|b| b.into_inner().refresh_token).filter(|t| !t.is_empty());
    let presented = match from_body {
        Some(token) => token,
        None if wants_cookie(&req) => cookie_value(&req, REFRESH_COOKIE)
            .map(str::to_owned)
            .ok_or(xdr_commands::auth::AuthError::Unauthenticated("Not signed in"))?,
        None => return Err(ApiError::Unprocessable("refresh_token is required".into())),
    };
    match state.identity.refresh(&presented, &ctx).await {
        Ok(tokens) => Ok(token_response(
            &req,
            &state,
            &tokens.access_token,
            &tokens.refresh_token,
            tokens.token_type,
            serde_json::json!({}),
        )),
        Err(e) => {
            let mut response = actix_web::ResponseError::error_response(&ApiError::from(e));
            // A refused cookie is dead (expired, revoked, reused): drop it so the browser stops sending it.
            if wants_cookie(&req) {
                if let Ok(v) = refresh_cookie(&req, &state, "", 0).parse() {
                    response.headers_mut().insert(actix_web::http::header::SET_COOKIE, v);
                }
            }
            Ok(response)
        }
    }
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
    // The session is revoked either way; the browser's refresh cookie is cleared too.
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::SET_COOKIE, refresh_cookie(&req, &state, "", 0)))
        .json(serde_json::json!({ "detail": "Logged out" })))
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
    let ctx = request_context(&req, state.config.trust_forwarded_for);
    if !state.register_limiter.check(ctx.ip.as_deref().unwrap_or_default()) {
        Metrics::inc(&state.metrics.registrations_rate_limited);
        return Err(ApiError::RateLimited);
    }
    let body = body.into_inner();
    let user = state.identity.accept_invite(&body.token, body.password, &ctx).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "user": user })))
}

pub(super) fn user_id(path: &str) -> Result<UserId, ApiError> {
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
