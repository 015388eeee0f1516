//! What every request passes through before its route: the body limit of its route class,
//! then on the way out the security headers and (only when configured) CORS.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::HttpMessage;
use actix_web::{web, HttpResponse, ResponseError};
use futures::Stream;
use std::cell::Cell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use crate::error::ApiError;
use crate::extract::ForwardedFor;
use crate::metrics::Metrics;
use crate::startup::AppState;

/// The largest request body per route class (`XDR_BODY_LIMIT_BYTES`,
/// `XDR_GRAPHQL_BODY_LIMIT_BYTES`, `XDR_INGEST_BODY_LIMIT_BYTES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimits {
    /// Everything that is neither GraphQL nor ingest: `/api/*` (auth, agent, incidents), the
    /// dashboard, probes.
    pub api: usize,
    /// `POST /graphql`: a query document with its variables.
    pub graphql: usize,
    /// `/ingest/*`: batches of log records.
    pub ingest: usize,
}

impl Default for BodyLimits {
    fn default() -> Self {
        BodyLimits { api: 64 * 1024, graphql: 1024 * 1024, ingest: 10 * 1024 * 1024 }
    }
}

impl BodyLimits {
    pub fn for_path(&self, path: &str) -> usize {
        if path.starts_with("/ingest/") {
            self.ingest
        } else if path == "/graphql" || path.starts_with("/graphql/") {
            self.graphql
        } else {
            self.api
        }
    }
}

/// Refuses a body over its route's limit with 413: at once when `Content-Length` says so, and
/// for a chunked (or lying) body as soon as the bytes read pass the limit, before anything
/// buffers more. Extractors (GraphQL's included, which `JsonConfig` does not reach) only ever
/// see a stream that ends in an error at the limit; whatever they answered then, the client
/// gets 413. WebSocket upgrades are left alone: their payload is the socket's frames, limited
/// per frame by the WebSocket codec, not a body.
pub async fn limit_body(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return next.call(req).await.map(ServiceResponse::map_into_left_body);
    };
    let limit = state.config.body_limits.for_path(req.path());
    let upgrade = req.headers().get(header::UPGRADE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if upgrade.eq_ignore_ascii_case("websocket") {
        return next.call(req).await.map(ServiceResponse::map_into_left_body);
    }
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        Metrics::inc(&state.metrics.bodies_too_large);
        return Ok(req.into_response(too_large(limit)).map_into_right_body());
    }
    let exceeded = Rc::new(Cell::new(false));
    let payload = LimitedPayload { inner: req.take_payload(), remaining: limit, exceeded: exceeded.clone() };
    req.set_payload(Payload::from(Box::pin(payload) as Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>>));
    let response = next.call(req).await?;
    if exceeded.get() {
        Metrics::inc(&state.metrics.bodies_too_large);
        let (req, _) = response.into_parts();
        return Ok(ServiceResponse::new(req, too_large(limit)).map_into_right_body());
    }
    Ok(response.map_into_left_body())
}

fn too_large(limit: usize) -> HttpResponse {
    let mut response = ApiError::PayloadTooLarge(limit).error_response();
    // The rest of the body is not read: the connection cannot carry another request.
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A request body that ends with `PayloadError::Overflow` once more than `remaining` bytes
/// arrive, and then reads nothing more.
struct LimitedPayload {
    inner: Payload,
    remaining: usize,
    exceeded: Rc<Cell<bool>>,
}

impl Stream for LimitedPayload {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.exceeded.get() {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) if chunk.len() > self.remaining => {
                self.exceeded.set(true);
                Poll::Ready(Some(Err(PayloadError::Overflow)))
            }
            Poll::Ready(Some(Ok(chunk))) => {
                self.remaining -= chunk.len();
                Poll::Ready(Some(Ok(chunk)))
            }
            other => other,
        }
    }
}

/// Content-Security-Policy of every answer that is not HTML: it is data, never a document that
/// may run, embed or be embedded.
pub const API_CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";
/// HSTS for a year, subdomains included, once the client has reached us over HTTPS.
pub const STRICT_TRANSPORT_SECURITY: &str = "max-age=31536000; includeSubDomains";

/// On every answer: `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY`,
/// `Referrer-Policy: no-referrer`, a Content-Security-Policy (the dashboard's for HTML, which
/// sets its own, [`API_CONTENT_SECURITY_POLICY`] otherwise), and HSTS when the client came over
/// HTTPS (served here, or reported by a trusted proxy in `X-Forwarded-Proto`). CORS headers only
/// for an allowed origin: otherwise a browser keeps other sites' pages from reading answers.
pub async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    // The probe-only server of the other roles has no AppState: no TLS, no proxy, no CORS.
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let config = state.as_ref().map(|s| &s.config);
    let https = config
        .is_some_and(|c| c.tls.is_some() || (c.trust_forwarded_for != ForwardedFor::Ignore && proxy_says_https(&req)));
    let cors_on = config.is_some_and(|c| !c.cors_allowed_origins.is_empty());
    let allowed_origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .filter(|o| config.is_some_and(|c| c.cors_allowed_origins.iter().any(|allowed| allowed == o)))
        .and_then(|o| HeaderValue::from_str(o).ok());
    let preflight =
        req.method() == Method::OPTIONS && req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut response = match (&allowed_origin, preflight) {
        (Some(_), true) => {
            let mut r = HttpResponse::NoContent();
            r.insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST"))
                .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, "authorization, content-type, x-ingest-key"))
                .insert_header((header::ACCESS_CONTROL_MAX_AGE, "600"));
            req.into_response(r.finish()).map_into_right_body()
        }
        _ => next.call(req).await?.map_into_left_body(),
    };
    let h = response.headers_mut();
    if let Some(origin) = allowed_origin {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("retry-after"));
    }
    if cors_on {
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    let kind = h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        set_if_absent(h, name, value);
    }
    // A script's own answer carries no policy: a worker started from it would run under that
    // policy instead of the page's (the dashboard's CSP allows its workers what they need).
    if kind.starts_with("text/html") {
        set_if_absent(h, header::CONTENT_SECURITY_POLICY, crate::routes::dashboard::CONTENT_SECURITY_POLICY);
    } else if !kind.contains("javascript") {
        set_if_absent(h, header::CONTENT_SECURITY_POLICY, API_CONTENT_SECURITY_POLICY);
    }
    if https {
        set_if_absent(h, header::STRICT_TRANSPORT_SECURITY, STRICT_TRANSPORT_SECURITY);
    }
    Ok(response)
}

fn set_if_absent(h: &mut actix_web::http::header::HeaderMap, name: HeaderName, value: &'static str) {
    if !h.contains_key(&name) {
        h.insert(name, HeaderValue::from_static(value));
    }
}

/// The right-most `X-Forwarded-Proto` is the one our proxy set.
fn proxy_says_https(req: &ServiceRequest) -> bool {
    req.headers()
        .get_all("x-forwarded-proto")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .last()
        .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
}
