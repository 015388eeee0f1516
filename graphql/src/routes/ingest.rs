//! `POST /ingest/cowrie` and `POST /ingest/multi`: HTTP producers, authenticated by an ingest
//! key (which alone decides the org), through the same parsers and batching as NATS.

use actix_web::{web, HttpRequest, HttpResponse};
use futures::StreamExt;
use serde::Deserialize;
use xdr_commands::auth::AuthError;
use xdr_commands::ingest::{dedupe_base_of, ingest_body};
use xdr_commands::ingest_keys::KeyStatus;
use xdr_domain::telemetry::SourceType;

use crate::error::ApiError;
use crate::extract::bearer_token;
use crate::startup::AppState;

/// The key from `Authorization: Bearer` or `X-Ingest-Key`.
fn presented_key(req: &HttpRequest) -> Option<&str> {
    bearer_token(req).or_else(|| req.headers().get("X-Ingest-Key")?.to_str().ok().map(str::trim))
}

async fn resolve(req: &HttpRequest, state: &AppState) -> Result<xdr_commands::ingest_keys::ResolvedKey, ApiError> {
    let key = presented_key(req).ok_or(AuthError::Unauthenticated("Missing ingest key"))?;
    match state.ingest_keys.resolve(key).await.map_err(|e| AuthError::Internal(e.to_string()))? {
        KeyStatus::Valid(k) => {
            tracing::Span::current().record("org_id", tracing::field::display(k.org_id));
            Ok(k)
        }
        KeyStatus::Revoked | KeyStatus::Unknown => {
            Err(AuthError::Unauthenticated("Invalid or revoked ingest key").into())
        }
    }
}

/// Read the body up to the configured limit; beyond it, 413 without reading the rest.
async fn read_body(mut payload: web::Payload, limit: usize) -> Result<String, ApiError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::Unprocessable(format!("Unreadable request body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    String::from_utf8(body.to_vec()).map_err(|_| ApiError::Unprocessable("Request body is not UTF-8".into()))
}

async fn commit(
    state: &AppState,
    key: xdr_commands::ingest_keys::ResolvedKey,
    source: SourceType,
    hostname: Option<&str>,
    body: &str,
) -> Result<HttpResponse, ApiError> {
    // The body's content hash names it: a producer retrying the same request stores nothing twice.
    let base = dedupe_base_of(None, body.as_bytes());
    let outcome =
        ingest_body(state.identity.store(), chrono::Utc::now(), key.org_id, key.key_id, source, hostname, body, &base)
            .await
            .map_err(|e| AuthError::Internal(e.to_string()))?;
    Ok(HttpResponse::Ok().json(outcome))
}

/// One Cowrie record as a JSON object, an array of them, or newline-delimited records.
pub async fn cowrie(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let key = resolve(&req, &state).await?;
    let body = read_body(payload, state.config.body_limits.ingest).await?;
    commit(&state, key, SourceType::Cowrie, None, &body).await
}

#[derive(Deserialize)]
struct MultiBody {
    source_type: String,
    hostname: Option<String>,
    events: Vec<serde_json::Value>,
}

/// `{source_type, hostname, events: [...]}`: JSON records, or strings for line formats.
pub async fn multi(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let key = resolve(&req, &state).await?;
    let body = read_body(payload, state.config.body_limits.ingest).await?;
    let multi: MultiBody =
        serde_json::from_str(&body).map_err(|e| ApiError::Unprocessable(format!("Malformed request body: {e}")))?;
    let source = SourceType::parse(&multi.source_type).ok_or_else(|| {
        AuthError::Validation(format!(
            "Unknown source_type {:?}: use cowrie, sshd, suricata, cef or json",
            multi.source_type
        ))
    })?;
    // Re-serialize as newline-delimited records so record indexes match `events`.
    let records: Vec<String> = multi
        .events
        .iter()
        .map(|e| match e {
            serde_json::Value::String(line) => line.replace(['\n', '\r'], " "),
            other => other.to_string(),
        })
        .collect();
    commit(&state, key, source, multi.hostname.as_deref(), &records.join("\n")).await
}
