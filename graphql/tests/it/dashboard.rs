//! What the dashboard relies on: the built console served at `/` (client routes fall back to
//! `index.html`, hashed assets cached for good, a strict CSP, nothing outside the build
//! reachable), GraphiQL from the same build behind the introspection switch, the refresh token
//! as an HttpOnly cookie on request, and the queue's exclusion filters and top sources.

use reqwest::StatusCode;
use serde_json::{json, Value};
use std::path::PathBuf;
use xdr_graphql::ServerConfig;

use crate::helpers::{spawn_app, spawn_app_with, TestApp, PASSWORD};

const COOKIE_MODE: (&str, &str) = ("X-XDR-Refresh-Cookie", "1");

/// A stand-in build: what `npm run build` writes (index, GraphiQL page, a hashed asset and its
/// gzip sibling).
fn fake_build() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xdr-dashboard-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(dir.join("assets")).unwrap();
    std::fs::write(dir.join("index.html"), "<!doctype html><div id=\"root\"></div>").unwrap();
    std::fs::write(dir.join("graphiql.html"), "<!doctype html><div id=\"graphiql\"></div>").unwrap();
    std::fs::write(dir.join("assets/main-abc123.js"), "console.log(1)").unwrap();
    std::fs::write(dir.join("assets/main-abc123.js.gz"), b"\x1f\x8bfake").unwrap();
    std::fs::write(dir.join("favicon.svg"), "<svg/>").unwrap();
    dir
}

async fn app_with_build(introspection: bool) -> TestApp {
    spawn_app_with(ServerConfig { dashboard_dir: Some(fake_build()), introspection, ..crate::helpers::unlimited() })
        .await
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

#[tokio::test]
async fn the_console_is_served_at_the_root_with_client_routes_and_a_strict_csp() {
    let app = app_with_build(true).await;
    for path in ["/", "/incidents", "/incidents/5f0c?status=OPEN", "/admin"] {
        let r = app.get(path, None).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let csp = header(&r, "content-security-policy");
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(header(&r, "cache-control"), "no-cache", "{path}");
        assert!(r.text().await.unwrap().contains("id=\"root\""), "{path} falls back to index.html");
    }
    let r = app.get("/assets/main-abc123.js", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "cache-control"), "public, max-age=31536000, immutable");
    assert!(header(&r, "content-type").starts_with("text/javascript"));
    assert_eq!(r.text().await.unwrap(), "console.log(1)");
    let r = app.client.get(format!("{}/assets/main-abc123.js", app.address)).header("accept-encoding", "gzip").send();
    let r = r.await.unwrap();
    assert_eq!(header(&r, "content-encoding"), "gzip", "the build's .gz sibling is sent as is");
    // A stale page asking for an asset of an older build gets a 404, not HTML.
    assert_eq!(app.get("/assets/main-old.js", None).await.status(), StatusCode::NOT_FOUND);
    // The API keeps its meaning: unknown API paths are 404s, never the console.
    for path in ["/api/nothing", "/ingest/nothing", "/graphql/x"] {
        assert_eq!(app.get(path, None).await.status(), StatusCode::NOT_FOUND, "{path}");
    }
    assert_eq!(app.get("/healthz", None).await.status(), StatusCode::OK);
    // Nothing outside the build can be named.
    for path in ["/%2e%2e/Cargo.toml", "/.%2e/Cargo.toml", "/assets/%2e%2e%2f%2e%2e%2fCargo.toml"] {
        let r = app.get(path, None).await;
        let body = r.text().await.unwrap();
        assert!(!body.contains("[package]"), "{path} leaked a file");
    }
}

#[tokio::test]
async fn graphiql_comes_from_the_build_and_follows_the_introspection_switch() {
    let app = app_with_build(true).await;
    let r = app.get("/graphql", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(header(&r, "content-security-policy").contains("default-src 'self'"));
    let body = r.text().await.unwrap();
    assert!(body.contains("id=\"graphiql\"") && !body.contains("unpkg") && !body.contains("jsdelivr"), "{body}");

    let off = app_with_build(false).await;
    assert_eq!(off.get("/graphql", None).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn without_a_build_the_root_says_how_to_build_the_console() {
    let app = spawn_app().await;
    let r = app.get("/", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("npm ci &amp;&amp; npm run build"));
}

fn refresh_cookie(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("xdr_refresh="))
        .map(str::to_owned)
}

fn cookie_value(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().trim_start_matches("xdr_refresh=").to_owned()
}

#[tokio::test]
async fn the_refresh_token_travels_in_an_http_only_cookie_when_the_client_asks() {
    let app = spawn_app().await;
    let body = json!({"organization_name": "Cookie Org", "admin_email": "c@cookie.com", "admin_password": PASSWORD, "admin_name": "C"});
    let r = app.client.post(format!("{}/api/auth/register", app.address)).header(COOKIE_MODE.0, COOKIE_MODE.1);
    let r = r.json(&body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let set = refresh_cookie(&r).expect("cookie set on register");
    for part in ["HttpOnly", "SameSite=Strict", "Path=/api/auth/refresh", "Max-Age=2592000"] {
        assert!(set.contains(part), "{part} missing in {set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP: no Secure flag (a browser would drop the cookie)");
    let json: Value = r.json().await.unwrap();
    assert!(json["refresh_token"].is_null(), "page script never sees the refresh token");
    assert!(json["access_token"].is_string() && json["user"]["email"] == "c@cookie.com");

    // Without the header: the earlier service's shapes, no cookie.
    let r = app.login("c@cookie.com", PASSWORD).await;
    assert!(refresh_cookie(&r).is_none());
    assert!(r.json::<Value>().await.unwrap()["refresh_token"].is_string());

    // Login in cookie mode, then refresh with the cookie alone: a new pair, the cookie rotates.
    let r = app.client.post(format!("{}/api/auth/login", app.address)).header(COOKIE_MODE.0, COOKIE_MODE.1);
    let r = r.json(&json!({"email": "c@cookie.com", "password": PASSWORD})).send().await.unwrap();
    let first = cookie_value(&refresh_cookie(&r).unwrap());
    let refresh = |cookie: String, cookie_mode: bool| {
        let mut req = app
            .client
            .post(format!("{}/api/auth/refresh", app.address))
            .header("cookie", format!("xdr_refresh={cookie}"));
        if cookie_mode {
            req = req.header(COOKIE_MODE.0, COOKIE_MODE.1);
        }
        req.send()
    };
    // The cookie is read only with the header a cross-site form cannot send.
    assert_eq!(refresh(first.clone(), false).await.unwrap().status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = refresh(first.clone(), true).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let second = cookie_value(&refresh_cookie(&r).unwrap());
    assert_ne!(second, first, "single-use: the cookie rotates");
    let access = r.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(app.me(&access).await.status(), StatusCode::OK);

    // Logout revokes the session and clears the cookie; the cookie is then worthless.
    let r = app.post("/api/auth/logout", json!({}), Some(&access)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let cleared = refresh_cookie(&r).expect("logout clears the cookie");
    assert!(
        cleared.starts_with("xdr_refresh=;")
            && cleared.contains("Max-Age=0")
            && cleared.contains("Path=/api/auth/refresh")
    );
    let r = refresh(second, true).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(refresh_cookie(&r).unwrap().contains("Max-Age=0"), "a refused cookie is dropped");
    // No cookie at all: 401 "Not signed in", which the console turns into its sign-in page.
    let r = app.client.post(format!("{}/api/auth/refresh", app.address)).header(COOKIE_MODE.0, COOKIE_MODE.1);
    assert_eq!(r.send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
}

async fn gql(app: &TestApp, query: &str, variables: Value, token: &str) -> Value {
    app.post("/graphql", json!({"query": query, "variables": variables}), Some(token)).await.json().await.unwrap()
}

#[tokio::test]
async fn the_queue_excludes_values_filters_by_detector_and_technique_and_counts_top_sources() {
    let app = spawn_app().await;
    let a = app.register("Org A", "admin@a.com").await;
    let admin = app.login_ok("admin@a.com", PASSWORD).await.access;
    crate::incidents::attacked(&app, &admin, a["organization"]["id"].as_str().unwrap()).await;
    let list = "query($filter: IncidentFilter) { incidents(first: 50, filter: $filter) { edges { node { srcIp } } } }";
    let ips = |r: &Value| -> Vec<String> {
        let edges = r["data"]["incidents"]["edges"].as_array().unwrap_or_else(|| panic!("{r}"));
        let mut v: Vec<String> = edges.iter().map(|e| e["node"]["srcIp"].as_str().unwrap().to_owned()).collect();
        v.sort();
        v
    };
    let all = ips(&gql(&app, list, json!({}), &admin).await);
    assert_eq!(all, ["127.0.0.2", "127.0.0.3", "127.0.0.5", "127.0.0.8"]);
    let r =
        gql(&app, list, json!({"filter": {"exclude": {"srcIps": ["127.0.0.3"], "severities": ["LOW"]}}}), &admin).await;
    assert_eq!(ips(&r), ["127.0.0.2", "127.0.0.8"]);
    let r = gql(&app, list, json!({"filter": {"exclude": {"categories": ["BRUTE_FORCE", "RECON"]}}}), &admin).await;
    assert_eq!(ips(&r), ["127.0.0.3", "127.0.0.8"]);
    let r = gql(&app, list, json!({"filter": {"detector": "compromise_after_brute_force"}}), &admin).await;
    assert_eq!(ips(&r), ["127.0.0.3"]);
    let r = gql(
        &app,
        list,
        json!({"filter": {"technique": "T1110.001", "exclude": {"detectors": ["persistence"]}}}),
        &admin,
    )
    .await;
    assert_eq!(ips(&r), ["127.0.0.2"]);
    let r =
        gql(&app, list, json!({"filter": {"exclude": {"techniques": ["T1110.001"], "statuses": ["OPEN"]}}}), &admin)
            .await;
    assert_eq!(ips(&r), Vec::<String>::new());

    let r =
        gql(&app, "{ stats(since: \"2020-01-01T00:00:00Z\") { topSources { key count } } }", json!({}), &admin).await;
    let top = r["data"]["stats"]["topSources"].as_array().unwrap_or_else(|| panic!("{r}"));
    assert_eq!(top.len(), 4);
    assert!(top.iter().all(|c| c["count"] == 1), "{top:?}");
}
