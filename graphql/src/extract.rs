//! Request extractors: the authenticated caller and the request context for event metadata.

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use futures::future::LocalBoxFuture;
use std::net::IpAddr;
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

/// How far the server trusts `X-Forwarded-For` (`XDR_TRUSTED_PROXY_HOPS`).
///
/// Every proxy appends the address of the peer it saw to the right of the header; anything to
/// its left was written by whoever connected to that proxy, the client included. Behind `n`
/// trusted proxies the client is therefore the `n`-th entry from the right, and only that
/// entry: the left-most one is whatever the client chose to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ForwardedFor {
    /// The socket peer is the client (no proxy, or one that is not trusted).
    #[default]
    Ignore,
    /// This many proxies of ours (at least one) stand between the client and the server.
    TrustedHops(u8),
}

impl ForwardedFor {
    pub fn from_hops(hops: u8) -> ForwardedFor {
        if hops == 0 {
            ForwardedFor::Ignore
        } else {
            ForwardedFor::TrustedHops(hops)
        }
    }
}

/// The client's address: the socket peer, or the entry the outermost trusted proxy appended
/// to `X-Forwarded-For`. IPv4-mapped IPv6 addresses come out as the IPv4 address they are.
pub fn client_addr(req: &HttpRequest, trust: ForwardedFor) -> Option<IpAddr> {
    let peer = req.peer_addr().map(|a| a.ip().to_canonical());
    let ForwardedFor::TrustedHops(hops) = trust else {
        return peer;
    };
    let entries: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    // Fewer entries than hops: the request passed fewer proxies than configured, and every
    // entry was appended by one of ours; the left-most is the farthest client they saw.
    let trusted = match entries.len().checked_sub(usize::from(hops)) {
        Some(i) => entries.get(i),
        None => entries.first(),
    };
    match trusted {
        Some(entry) => parse_forwarded_addr(entry).or(peer),
        None => peer,
    }
}

/// `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]` or `[2001:db8::1]:443`.
fn parse_forwarded_addr(entry: &str) -> Option<IpAddr> {
    let ip = entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| entry.strip_prefix('[')?.strip_suffix(']')?.parse().ok())?;
    Some(ip.to_canonical())
}

/// [`client_addr`] as text, for event metadata and the rate limiters: IPv6 kept whole.
pub fn client_ip(req: &HttpRequest, trust: ForwardedFor) -> Option<String> {
    client_addr(req, trust).map(|a| a.to_string())
}

pub fn request_context(req: &HttpRequest, trust: ForwardedFor) -> RequestContext {
    RequestContext { ip: client_ip(req, trust), user_agent: user_agent(req), operator: false }
}

/// Longest `User-Agent` kept for the session list; the rest is cut.
const MAX_USER_AGENT_CHARS: usize = 256;

/// The client's `User-Agent`, cut to a sane length (it is shown, never trusted).
pub fn user_agent(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(actix_web::http::header::USER_AGENT)?.to_str().ok()?.trim();
    (!value.is_empty()).then(|| value.chars().take(MAX_USER_AGENT_CHARS).collect())
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

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn addr(xff: &[&str], trust: ForwardedFor) -> Option<String> {
        let mut req = TestRequest::default().peer_addr("10.1.2.3:40000".parse().unwrap());
        for value in xff {
            req = req.append_header(("X-Forwarded-For", *value));
        }
        client_ip(&req.to_http_request(), trust)
    }

    #[test]
    fn the_entry_the_trusted_proxy_appended_is_the_client_never_the_left_most() {
        let one = ForwardedFor::TrustedHops(1);
        assert_eq!(addr(&["6.6.6.6, 203.0.113.7"], one).as_deref(), Some("203.0.113.7"));
        // Several header lines are one list, in order.
        assert_eq!(addr(&["6.6.6.6", "203.0.113.7"], one).as_deref(), Some("203.0.113.7"));
        // CDN in front of the ALB: the CDN's entry is the client, the ALB's is the CDN.
        assert_eq!(
            addr(&["6.6.6.6, 203.0.113.7, 198.51.100.1"], ForwardedFor::TrustedHops(2)).as_deref(),
            Some("203.0.113.7")
        );
        assert_eq!(addr(&["203.0.113.7"], ForwardedFor::TrustedHops(3)).as_deref(), Some("203.0.113.7"));
        // Nothing appended (a probe from inside the cluster): the peer.
        assert_eq!(addr(&[], one).as_deref(), Some("10.1.2.3"));
        assert_eq!(addr(&["6.6.6.6"], ForwardedFor::Ignore).as_deref(), Some("10.1.2.3"));
    }

    #[test]
    fn ipv6_stays_whole_ports_and_brackets_go_and_mapped_ipv4_is_ipv4() {
        let one = ForwardedFor::TrustedHops(1);
        assert_eq!(addr(&["2001:db8:aa::1"], one).as_deref(), Some("2001:db8:aa::1"));
        assert_eq!(addr(&["[2001:db8:aa::1]:443"], one).as_deref(), Some("2001:db8:aa::1"));
        assert_eq!(addr(&["[2001:db8:aa::1]"], one).as_deref(), Some("2001:db8:aa::1"));
        assert_eq!(addr(&["203.0.113.7:5555"], one).as_deref(), Some("203.0.113.7"));
        assert_eq!(addr(&["::ffff:203.0.113.7"], one).as_deref(), Some("203.0.113.7"));
        // Garbage where the proxy's entry should be: the peer, never the garbage.
        assert_eq!(addr(&["not-an-address"], one).as_deref(), Some("10.1.2.3"));
    }
}
