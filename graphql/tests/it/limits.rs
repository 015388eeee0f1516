//! Abuse limits, performed against the running server: oversized bodies on every route
//! class, forged `X-Forwarded-For`, floods of addresses, aliased argon2 mutations, and probing
//! `register` for taken addresses.

use reqwest::StatusCode;
use serde_json::{json, Value};
use xdr_graphql::{BodyLimits, ForwardedFor, ServerConfig};

use crate::helpers::{detail, port_of, post_raw, spawn_app_with, unlimited, Framing, TestApp, PASSWORD};

/// An ingest key of the admin's org, over GraphQL.
async fn ingest_key(app: &TestApp, admin: &str) -> String {
    let r: Value = app
        .post("/graphql", json!({"query": "mutation { createIngestKey(name: \"hp\") { key } }"}), Some(admin))
        .await
        .json()
        .await
        .unwrap();
    r["data"]["createIngestKey"]["key"].as_str().expect("key").to_owned()
}

/// A path, the headers it needs, and its body limit.
type Route<'a> = (&'a str, Vec<(&'a str, &'a str)>, usize);

#[tokio::test]
async fn every_route_class_refuses_a_body_past_its_own_limit_with_413_whether_declared_or_chunked() {
    let limits = BodyLimits { api: 2 * 1024, graphql: 8 * 1024, ingest: 32 * 1024 };
    let app = spawn_app_with(ServerConfig { body_limits: limits, ..unlimited() }).await;
    let admin = app.register("Acme", "admin@acme.com").await["access_token"].as_str().unwrap().to_owned();
    let key = ingest_key(&app, &admin).await;
    let port = port_of(&app.address);
    let bearer = format!("Bearer {admin}");
    let routes: [Route; 5] = [
        // Anonymous: nothing about the caller is known, and the body is still refused.
        ("/graphql", vec![], limits.graphql),
        ("/api/auth/login", vec![], limits.api),
        ("/api/auth/register", vec![], limits.api),
        ("/api/agent/v1/results", vec![("Authorization", bearer.as_str())], limits.api),
        ("/ingest/cowrie", vec![("X-Ingest-Key", key.as_str())], limits.ingest),
    ];
    for (path, headers, limit) in &routes {
        for framing in [Framing::Declared, Framing::Chunked] {
            let (status, answer) = post_raw(port, path, headers, limit + 1, framing).await;
            assert_eq!(status, 413, "{path} {framing:?} one byte over {limit}: {answer}");
            let (status, answer) = post_raw(port, path, headers, 4 * 1024 * 1024, framing).await;
            assert_eq!(status, 413, "{path} {framing:?} 4 MiB: {answer}");
            // At the limit the route itself answers (here: the body is not valid JSON).
            let (status, answer) = post_raw(port, path, headers, *limit, framing).await;
            assert_ne!(status, 413, "{path} {framing:?} exactly {limit}: {answer}");
        }
    }
    // Ingest batches may be larger than an auth body: the classes have their own limits.
    let records: Vec<Value> = (0..40)
        .map(|i| {
            json!({"eventid": "cowrie.login.failed", "timestamp": "2026-11-26T21:00:00Z",
                        "src_ip": "10.0.0.9", "username": "root", "password": format!("{i:0>40}")})
        })
        .collect();
    let batch = serde_json::to_vec(&records).unwrap();
    assert!(batch.len() > limits.api && batch.len() < limits.ingest, "{}", batch.len());
    let r = app
        .client
        .post(format!("{}/ingest/cowrie", app.address))
        .header("X-Ingest-Key", &key)
        .body(batch)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    assert!(metrics.contains("xdr_http_bodies_too_large_total 20"), "{metrics}");
}

/// The failed-login events' client addresses, oldest first.
async fn login_failure_ips(app: &TestApp) -> Vec<String> {
    let rows: Vec<Value> = sqlx::query_scalar(
        "SELECT metadata FROM event_log WHERE event_type = 'LoginFailed' ORDER BY recorded_at, org_seq",
    )
    .fetch_all(&app.db.pool)
    .await
    .unwrap();
    rows.iter().map(|m| m["request_ip"].as_str().unwrap_or("none").to_owned()).collect()
}

async fn login_from(app: &TestApp, forwarded_for: &str) -> StatusCode {
    app.client
        .post(format!("{}/api/auth/login", app.address))
        .header("X-Forwarded-For", forwarded_for)
        .json(&json!({"email": "admin@acme.com", "password": "WrongPass123!@#"}))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn a_forged_left_most_forwarded_for_neither_bypasses_the_login_limit_nor_lands_in_the_audit_log() {
    let app = spawn_app_with(ServerConfig {
        login_rate_per_minute: 3,
        trust_forwarded_for: ForwardedFor::TrustedHops(1),
        ..unlimited()
    })
    .await;
    app.register("Acme", "admin@acme.com").await;
    // The client writes a fresh address each time; the ALB appends the one it saw.
    let mut statuses = Vec::new();
    for i in 0..8 {
        statuses.push(login_from(&app, &format!("6.6.6.{i}, 203.0.113.7")).await);
    }
    let refused = statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count();
    assert_eq!(refused, 5, "{statuses:?}");
    assert_eq!(login_failure_ips(&app).await, ["203.0.113.7"; 3]);
}

#[tokio::test]
async fn without_a_trusted_proxy_forwarded_for_is_ignored() {
    let app = spawn_app_with(ServerConfig { login_rate_per_minute: 2, ..unlimited() }).await;
    app.register("Acme", "admin@acme.com").await;
    let statuses =
        [login_from(&app, "6.6.6.1").await, login_from(&app, "6.6.6.2").await, login_from(&app, "6.6.6.3").await];
    assert_eq!(statuses, [StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED, StatusCode::TOO_MANY_REQUESTS]);
    assert_eq!(login_failure_ips(&app).await, ["127.0.0.1"; 2]);
}

#[tokio::test]
async fn clients_behind_the_proxy_have_their_own_budgets_and_ipv6_addresses_stay_whole() {
    let app = spawn_app_with(ServerConfig {
        login_rate_per_minute: 2,
        trust_forwarded_for: ForwardedFor::TrustedHops(1),
        ..unlimited()
    })
    .await;
    app.register("Acme", "admin@acme.com").await;
    // One IPv4 client spends its budget; the IPv6 clients are not cut to "2001" and do not
    // share it. Two addresses of one /64 are one subscriber and share theirs.
    assert_eq!(login_from(&app, "203.0.113.7").await, StatusCode::UNAUTHORIZED);
    assert_eq!(login_from(&app, "203.0.113.7").await, StatusCode::UNAUTHORIZED);
    assert_eq!(login_from(&app, "203.0.113.7").await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(login_from(&app, "2001:db8:aa:bb::1").await, StatusCode::UNAUTHORIZED);
    assert_eq!(login_from(&app, "[2001:db8:aa:bb::2]:51000").await, StatusCode::UNAUTHORIZED);
    assert_eq!(login_from(&app, "2001:db8:aa:bb::3").await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(login_from(&app, "2001:db8:aa:cc::1").await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        login_failure_ips(&app).await,
        ["203.0.113.7", "203.0.113.7", "2001:db8:aa:bb::1", "2001:db8:aa:bb::2", "2001:db8:aa:cc::1"]
    );
}

fn tracked_clients(metrics: &str, limiter: &str) -> usize {
    let prefix = format!("xdr_rate_limit_tracked_clients{{limiter=\"{limiter}\"}} ");
    metrics.lines().find_map(|l| l.strip_prefix(&prefix)?.parse().ok()).unwrap_or_else(|| panic!("{prefix}: {metrics}"))
}

#[tokio::test]
async fn a_flood_of_addresses_cannot_grow_the_limiter_store_past_its_bound_and_idle_clients_are_pruned() {
    let app = spawn_app_with(ServerConfig {
        refresh_rate_per_minute: 5,
        rate_limit_max_clients: 20,
        trust_forwarded_for: ForwardedFor::TrustedHops(1),
        ..unlimited()
    })
    .await;
    let refresh_from = |ip: String| {
        app.client
            .post(format!("{}/api/auth/refresh", app.address))
            .header("X-Forwarded-For", ip)
            .json(&json!({"refresh_token": "not-a-token"}))
            .send()
    };
    let mut refused = 0;
    for i in 0..100 {
        if refresh_from(format!("198.51.100.{i}")).await.unwrap().status() == StatusCode::TOO_MANY_REQUESTS {
            refused += 1;
        }
    }
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    assert_eq!(tracked_clients(&metrics, "refresh"), 20, "bounded");
    // The 80 clients past the bound shared one budget of five instead of getting 80.
    assert_eq!(refused, 75);
    // Once their buckets have refilled, the clients are forgotten.
    app.clock.advance(chrono::Duration::minutes(2));
    assert_eq!(refresh_from("192.0.2.1".into()).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    assert_eq!(tracked_clients(&metrics, "refresh"), 1, "pruned");
}

fn register_mutation(aliases: usize) -> String {
    let fields: String = (0..aliases)
        .map(|i| {
            format!(
                "r{i}: registerOrganization(input: {{organizationName: \"Flood {i}\", adminEmail: \"flood{i}@x.com\", \
                 adminPassword: \"{PASSWORD}\", adminName: \"F\"}}) {{ accessToken }} "
            )
        })
        .collect();
    format!("mutation {{ {fields}}}")
}

async fn count_of(app: &TestApp, event_type: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM event_log WHERE event_type = $1")
        .bind(event_type)
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn two_hundred_aliased_registrations_in_one_request_run_only_as_many_as_the_client_budget() {
    let app =
        spawn_app_with(ServerConfig { register_rate_per_minute: 3, refresh_rate_per_minute: 4, ..unlimited() }).await;
    let r: Value = app.post("/graphql", json!({"query": register_mutation(10)}), None).await.json().await.unwrap();
    let ran = (0..10).filter(|i| r["data"][format!("r{i}")]["accessToken"].is_string()).count();
    let errors = r["errors"].as_array().expect("errors");
    assert_eq!((ran, errors.len()), (3, 7), "{r}");
    assert!(errors.iter().all(|e| e["extensions"]["code"] == "RATE_LIMITED"), "{r}");
    // Two hundred aliases: none runs (refused by the limiter, or whole by a cap on aliases).
    let r: Value = app.post("/graphql", json!({"query": register_mutation(200)}), None).await.json().await.unwrap();
    let ran = (0..200).filter(|i| r["data"][format!("r{i}")]["accessToken"].is_string()).count();
    assert_eq!(ran, 0, "{r}");
    assert_eq!(count_of(&app, "OrganizationRegistered").await, 3);
    // REST spends from the same budget.
    let rest = app
        .post(
            "/api/auth/register",
            json!({"organization_name": "Rest", "admin_email": "rest@x.com", "admin_password": PASSWORD, "admin_name": "R"}),
            None,
        )
        .await;
    assert_eq!(rest.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(rest.headers().contains_key("retry-after"));
    // Invitations are accepted from the same budget (each is an argon2 hash too).
    let accept = app.post("/api/auth/accept-invite", json!({"token": "x.y", "password": PASSWORD}), None).await;
    assert_eq!(accept.status(), StatusCode::TOO_MANY_REQUESTS);
    let gql: Value = app
        .post(
            "/graphql",
            json!({"query": "mutation { a: acceptInvite(token: \"x.y\", password: \"p\") { id } }"}),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(gql["errors"][0]["extensions"]["code"], "RATE_LIMITED", "{gql}");

    // Refresh, aliased: four run (and fail on the bogus token), the rest are refused unrun.
    let fields: String =
        (0..10).map(|i| format!("f{i}: refreshToken(refreshToken: \"bogus\") {{ accessToken }} ")).collect();
    let r: Value =
        app.post("/graphql", json!({"query": format!("mutation {{ {fields}}}")}), None).await.json().await.unwrap();
    let codes: Vec<&str> =
        r["errors"].as_array().unwrap().iter().filter_map(|e| e["extensions"]["code"].as_str()).collect();
    assert_eq!(codes.iter().filter(|c| **c == "UNAUTHENTICATED").count(), 4, "{r}");
    assert_eq!(codes.iter().filter(|c| **c == "RATE_LIMITED").count(), 6, "{r}");
    let rest = app.post("/api/auth/refresh", json!({"refresh_token": "bogus"}), None).await;
    assert_eq!(rest.status(), StatusCode::TOO_MANY_REQUESTS);
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    assert!(metrics.contains("xdr_refreshes_rate_limited_total 7"), "{metrics}");
}

#[tokio::test]
async fn probing_register_for_taken_addresses_learns_no_more_than_a_refused_login_and_is_rate_limited() {
    let app = spawn_app_with(ServerConfig { register_rate_per_minute: 4, ..unlimited() }).await;
    app.register("Acme", "admin@acme.com").await;
    let probe = |org: &'static str, email: &'static str| {
        app.post(
            "/api/auth/register",
            json!({"organization_name": org, "admin_email": email, "admin_password": PASSWORD, "admin_name": "P"}),
            None,
        )
    };
    let taken = probe("Probe One", "ADMIN@acme.com").await;
    let headers = taken.headers().clone();
    let (status, message) = detail(taken).await;
    // The seed's shape (400, `detail`), but nothing that names the address or says it is taken.
    assert_eq!((status, message.as_str()), (StatusCode::BAD_REQUEST, "Registration failed"));
    assert!(!headers.contains_key("set-cookie"));
    assert_eq!(detail(probe("Probe Two", "admin@acme.com").await).await.1, "Registration failed");
    assert_eq!(detail(probe("Probe Three", "admin@acme.com").await).await.1, "Registration failed");
    // The budget is spent (Acme's registration counted): probing stops.
    assert_eq!(probe("Probe Four", "someone@else.com").await.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(count_of(&app, "OrganizationRegistered").await, 1);
}
