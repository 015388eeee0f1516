//! Request extractors: the authenticated caller and the request context for event metadata.

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use futures::future::LocalBoxFuture;
use xdr_commands::auth::identity::{Principal, RequestContext};
use xdr_commands::auth::AuthError;

use crate::error::ApiError;
use crate::startup::AppState;

/// The caller, from a verified `Authorization: Bearer <access token>`.
pub struct Caller(pub Principal);

pub fn bearer_token(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = bearer_token(req).map(str::to_owned);
        Box::pin(async move {
            let state = state.ok_or_else(|| AuthError::Internal("application state missing".into()))?;
            let token = token.ok_or(AuthError::Unauthenticated("Not authenticated"))?;
            let principal = state.identity.authenticate(&token).await?;
            tracing::Span::current().record("org_id", tracing::field::display(principal.org_id));
            Ok(Caller(principal))
        })
    }
}

/// The client's address: the socket peer, or the proxy-reported address when the server is
/// configured to trust `X-Forwarded-For` (behind an ALB).
pub fn client_ip(req: &HttpRequest, trust_forwarded_for: bool) -> Option<String> {
    if trust_forwarded_for {
        req.connection_info().realip_remote_addr().map(|a| a.split(':').next().unwrap_or(a).to_owned())
    } else {
        req.peer_addr().map(|a| a.ip().to_string())
    }
}

pub fn request_context(req: &HttpRequest, trust_forwarded_for: bool) -> RequestContext {
    RequestContext { ip: client_ip(req, trust_forwarded_for), operator: false }
}

/// Event metadata for a change made by `caller`: who, and from which address. Every
/// mutation and REST write records it, GraphQL and REST alike.
pub fn actor_metadata(caller: &Principal, request: RequestContext) -> xdr_domain::EventMetadata {
    xdr_domain::EventMetadata {
        actor_user_id: Some(caller.user_id.0),
        actor: Some(format!("user:{}", caller.user_id)),
        request_ip: request.ip,
        ..Default::default()
    }
}
