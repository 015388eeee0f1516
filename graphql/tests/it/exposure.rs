//! What the server exposes: security headers on every answer, CORS only for configured
//! origins, HSTS only over HTTPS, and `/readyz` and `/metrics` off the public listener when
//! they have their own.

use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::json;
use xdr_graphql::{ForwardedFor, ServerConfig};

use crate::helpers::{spawn_app, spawn_app_with, unlimited};

const DASHBOARD_CSP_START: &str = "default-src 'self'";

fn header<'h>(h: &'h HeaderMap, name: &str) -> &'h str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

#[tokio::test]
async fn every_answer_carries_nosniff_frame_denial_and_a_content_security_policy() {
    let app = spawn_app().await;
    let url = |p: &str| format!("{}{p}", app.address);
    let answers = [
        ("GET /healthz", app.client.get(url("/healthz")).send().await.unwrap()),
        ("GET /api/auth/me (401)", app.client.get(url("/api/auth/me")).send().await.unwrap()),
        (
            "POST /graphql",
            app.client.post(url("/graphql")).json(&json!({"query": "{ __typename }"})).send().await.unwrap(),
        ),
        ("POST /api/auth/login (422)", app.client.post(url("/api/auth/login")).json(&json!({})).send().await.unwrap()),
        ("GET /api/nothing (404)", app.client.get(url("/api/nothing")).send().await.unwrap()),
        ("GET / (HTML)", app.client.get(url("/")).send().await.unwrap()),
    ];
    for (what, r) in &answers {
        let h = r.headers();
        assert_eq!(header(h, "x-content-type-options"), "nosniff", "{what}");
        assert_eq!(header(h, "x-frame-options"), "DENY", "{what}");
        assert_eq!(header(h, "referrer-policy"), "no-referrer", "{what}");
        let csp = header(h, "content-security-policy");
        assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp:?}");
        if header(h, "content-type").starts_with("text/html") {
            assert!(csp.starts_with(DASHBOARD_CSP_START) && !csp.contains("unsafe-inline"), "{what}: {csp:?}");
        } else {
            assert!(csp.starts_with("default-src 'none'"), "{what}: {csp:?}");
        }
        // Plain HTTP, no proxy of ours: HSTS would be meaningless (and ignored) here.
        assert!(!h.contains_key("strict-transport-security"), "{what}");
        assert!(!h.contains_key("access-control-allow-origin"), "{what}");
    }
}

#[tokio::test]
async fn hsts_follows_https_as_the_trusted_proxy_reports_it_and_a_client_cannot_claim_it() {
    let direct = spawn_app().await;
    let r = direct.client.get(format!("{}/healthz", direct.address)).header("X-Forwarded-Proto", "https").send().await;
    assert!(!r.unwrap().headers().contains_key("strict-transport-security"), "no proxy is trusted");

    let behind_alb =
        spawn_app_with(ServerConfig { trust_forwarded_for: ForwardedFor::TrustedHops(1), ..unlimited() }).await;
    let get = |proto: &'static str| {
        behind_alb.client.get(format!("{}/healthz", behind_alb.address)).header("X-Forwarded-Proto", proto).send()
    };
    let hsts = get("https").await.unwrap();
    assert_eq!(header(hsts.headers(), "strict-transport-security"), "max-age=31536000; includeSubDomains");
    assert!(!get("http").await.unwrap().headers().contains_key("strict-transport-security"));
}

#[tokio::test]
async fn cors_is_off_unless_an_origin_is_configured_and_then_only_for_that_origin() {
    let preflight = |app_address: String, origin: &'static str| async move {
        reqwest::Client::new()
            .request(reqwest::Method::OPTIONS, format!("{app_address}/graphql"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", "authorization, content-type")
            .send()
            .await
            .unwrap()
    };
    let off = spawn_app().await;
    let r = preflight(off.address.clone(), "https://evil.example").await;
    assert!(!r.headers().contains_key("access-control-allow-origin"), "CORS off by default: {:?}", r.headers());
    let r = off.client.post(format!("{}/graphql", off.address)).header("Origin", "https://evil.example");
    let r = r.json(&json!({"query": "{ __typename }"})).send().await.unwrap();
    assert!(!r.headers().contains_key("access-control-allow-origin"));

    let on = spawn_app_with(ServerConfig {
        cors_allowed_origins: vec!["https://console.example.com".into()],
        ..unlimited()
    })
    .await;
    let r = preflight(on.address.clone(), "https://console.example.com").await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(r.headers(), "access-control-allow-origin"), "https://console.example.com");
    assert!(header(r.headers(), "access-control-allow-headers").contains("authorization"));
    // No credentials cross-origin: the refresh cookie (and its header) stay same-origin.
    assert!(!r.headers().contains_key("access-control-allow-credentials"));
    assert!(!header(r.headers(), "access-control-allow-headers").contains("x-xdr-refresh-cookie"));
    let r = preflight(on.address.clone(), "https://evil.example").await;
    assert!(!r.headers().contains_key("access-control-allow-origin"));
    let r = on.client.post(format!("{}/graphql", on.address)).header("Origin", "https://console.example.com");
    let r = r.json(&json!({"query": "{ __typename }"})).send().await.unwrap();
    assert_eq!(header(r.headers(), "access-control-allow-origin"), "https://console.example.com");
    assert!(header(r.headers(), "vary").contains("Origin"));
}

#[tokio::test]
async fn readiness_and_metrics_leave_the_public_listener_when_they_have_their_own() {
    let shared = spawn_app().await;
    assert_eq!(shared.get("/readyz", None).await.status(), StatusCode::OK, "one listener: everything on it");

    let app = spawn_app_with(ServerConfig { probe_bind: Some("127.0.0.1:0".into()), ..unlimited() }).await;
    let probes = app.probe_address.clone().expect("probe listener");
    for path in ["/readyz", "/metrics", "/metrics/", "/readyz?x=1"] {
        assert_eq!(app.get(path, None).await.status(), StatusCode::NOT_FOUND, "{path} on the public listener");
    }
    assert_eq!(app.get("/healthz", None).await.status(), StatusCode::OK, "the load balancer's health check stays");
    let client = reqwest::Client::new();
    assert_eq!(client.get(format!("{probes}/readyz")).send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(client.get(format!("{probes}/healthz")).send().await.unwrap().status(), StatusCode::OK);
    // The probe listener shows the API's own counters.
    app.post("/api/auth/login", json!({"email": "a@b.com", "password": "x"}), None).await;
    let metrics = client.get(format!("{probes}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("xdr_logins_refused_total 1"), "{metrics}");
    // Nothing else is served there.
    assert_eq!(client.get(format!("{probes}/graphql")).send().await.unwrap().status(), StatusCode::NOT_FOUND);
}
