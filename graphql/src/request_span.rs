//! A span per request, so every log line a request causes carries its `request_id` (echoed to
//! the client as `X-Request-Id`), method and path, and the `org_id` once a token verified it
//! (`extract::Caller` records it); one line (target `xdr_http`) when the answer is ready.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing::Instrument;

pub async fn request_span(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    // Our own id, never the client's: a log line must not be attributable to a forged id.
    let request_id = uuid::Uuid::new_v4();
    let peer = req.peer_addr().map(|a| a.ip());
    let started = std::time::Instant::now();
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %req.method(),
        path = req.path(),
        org_id = tracing::field::Empty,
    );
    let mut response = async {
        let response = next.call(req).await;
        let status = match &response {
            Ok(r) => r.status().as_u16(),
            Err(e) => e.as_response_error().status_code().as_u16(),
        };
        let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        tracing::info!(target: "xdr_http", peer = peer.map(tracing::field::display), status, duration_ms, "request answered");
        response
    }
    .instrument(span)
    .await?;
    if let Ok(value) = HeaderValue::from_str(&request_id.to_string()) {
        response.headers_mut().insert(HeaderName::from_static("x-request-id"), value);
    }
    Ok(response)
}
