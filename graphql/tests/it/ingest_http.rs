//! HTTP producers: ingest keys issued over GraphQL, records through `/ingest/*`, the key
//! alone deciding the org.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_with, TestApp, PASSWORD};

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/../domain/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

async fn gql(app: &TestApp, query: &str, variables: Value, token: &str) -> Value {
    app.post("/graphql", json!({"query": query, "variables": variables}), Some(token)).await.json().await.unwrap()
}

const CREATE: &str = "mutation($name: String!) { createIngestKey(name: $name) { key ingestKey { id name prefix } } }";

async fn key_for(app: &TestApp, admin_token: &str) -> (String, String) {
    let r = gql(app, CREATE, json!({"name": "honeypot-1"}), admin_token).await;
    let created = &r["data"]["createIngestKey"];
    (created["key"].as_str().unwrap().to_owned(), created["ingestKey"]["id"].as_str().unwrap().to_owned())
}

async fn ingest(app: &TestApp, path: &str, key: &str, body: String) -> reqwest::Response {
    app.client
        .post(format!("{}{path}", app.address))
        .header("X-Ingest-Key", key)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn count(app: &TestApp, org: &str, event_type_filter: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM event_log WHERE org_id = $1::uuid AND event_type = 'SecurityEventObserved' \
         AND ($2 = '' OR payload->>'event_type' = $2)",
    )
    .bind(org)
    .bind(event_type_filter)
    .fetch_one(&app.db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn the_real_cowrie_log_lands_once_in_the_keys_org() {
    let app = spawn_app().await;
    let a = app.register("Org A", "admin@a.com").await;
    let b = app.register("Org B", "admin@b.com").await;
    let a_org = a["organization"]["id"].as_str().unwrap();
    let token = app.login_ok("admin@a.com", PASSWORD).await.access;
    let (key, _) = key_for(&app, &token).await;
    assert!(key.starts_with("xdr_"));

    let records: Vec<Value> = fixture("cowrie.json").lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let body = serde_json::to_string(&records).unwrap();
    let r = ingest(&app, "/ingest/cowrie", &key, body.clone()).await;
    assert_eq!(r.status(), StatusCode::OK);
    let outcome: Value = r.json().await.unwrap();
    assert_eq!(outcome, json!({"stored": 234, "rejected": []}));
    assert_eq!(count(&app, a_org, "").await, 234);
    assert_eq!(count(&app, a_org, "cowrie.login.failed").await, 51);
    assert_eq!(count(&app, b["organization"]["id"].as_str().unwrap(), "").await, 0);

    // A producer retrying the same request stores nothing twice.
    let again: Value = ingest(&app, "/ingest/cowrie", &key, body).await.json().await.unwrap();
    assert_eq!(again["stored"], 234);
    assert_eq!(count(&app, a_org, "").await, 234);

    // The same key with Authorization: Bearer, one object.
    let r = app
        .client
        .post(format!("{}/ingest/cowrie", app.address))
        .bearer_auth(&key)
        .json(&json!({"eventid": "cowrie.session.connect", "timestamp": "2026-11-26T22:00:00Z", "src_ip": "10.1.1.1", "session": "abc"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["stored"], 1);
}

#[tokio::test]
async fn malformed_records_are_reported_and_the_rest_is_stored() {
    let app = spawn_app().await;
    let a = app.register("Org A", "admin@a.com").await;
    let token = app.login_ok("admin@a.com", PASSWORD).await.access;
    let (key, _) = key_for(&app, &token).await;
    let lines = fixture("sshd-auth.log");
    let mut events: Vec<Value> = lines.lines().map(|l| json!(l)).collect();
    events.insert(3, json!("this is not a syslog line"));
    let body = json!({"source_type": "sshd", "hostname": "bastion-01", "events": events}).to_string();
    let outcome: Value = ingest(&app, "/ingest/multi", &key, body).await.json().await.unwrap();
    assert_eq!(outcome["stored"], 56);
    let rejected = outcome["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0]["index"], 3);
    assert!(!rejected[0]["reason"].as_str().unwrap().is_empty());
    assert_eq!(count(&app, a["organization"]["id"].as_str().unwrap(), "sshd.failed_password").await, 19);

    let r = ingest(&app, "/ingest/multi", &key, json!({"source_type": "syslog-ng", "events": []}).to_string()).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = ingest(&app, "/ingest/multi", &key, "{not json".into()).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

/// Times PostgreSQL cannot store (year 0, -1, 275759) or that lie in the future are refused
/// with a reason instead of entering the append-only log, where they would stop the org's
/// telemetry read model.
#[tokio::test]
async fn records_dated_outside_the_accepted_range_are_rejected_with_a_reason() {
    let app = spawn_app().await;
    let a = app.register("Org A", "admin@a.com").await;
    let token = app.login_ok("admin@a.com", PASSWORD).await.access;
    let (key, _) = key_for(&app, &token).await;
    let tomorrow_and_one = (chrono::Utc::now() + chrono::Duration::days(2)).to_rfc3339();
    let records: Vec<Value> = [
        "0000-01-01T00:00:00Z",
        "-0001-01-01T00:00:00Z",
        "+275759-01-01T00:00:00Z",
        &tomorrow_and_one,
        "2026-11-26T22:00:00Z",
    ]
    .iter()
    .map(|ts| json!({"eventid": "cowrie.session.connect", "timestamp": ts, "src_ip": "10.1.1.1"}))
    .collect();
    let outcome: Value =
        ingest(&app, "/ingest/cowrie", &key, serde_json::to_string(&records).unwrap()).await.json().await.unwrap();
    assert_eq!(outcome["stored"], 1, "{outcome}");
    let rejected = outcome["rejected"].as_array().unwrap();
    assert_eq!(rejected.iter().map(|r| r["index"].as_i64().unwrap()).collect::<Vec<_>>(), [0, 1, 2, 3]);
    for r in &rejected[..] {
        assert!(r["reason"].as_str().unwrap().contains("timestamp"), "{r}");
    }
    assert!(rejected[0]["reason"].as_str().unwrap().contains("out of range"), "{}", rejected[0]);
    assert!(rejected[3]["reason"].as_str().unwrap().contains("more than a day after receipt"), "{}", rejected[3]);

    // Epoch numbers too (the JSON format takes them).
    let body = json!({"source_type": "json", "events": [{"eventid": "x", "timestamp": -1}, {"eventid": "x", "timestamp": 8639977881599_i64}, {"eventid": "x", "timestamp": 1795727845}]}).to_string();
    let outcome: Value = ingest(&app, "/ingest/multi", &key, body).await.json().await.unwrap();
    assert_eq!(outcome["stored"], 1, "{outcome}");
    assert_eq!(outcome["rejected"].as_array().unwrap().len(), 2);
    assert_eq!(count(&app, a["organization"]["id"].as_str().unwrap(), "").await, 2);
}

#[tokio::test]
async fn bad_keys_oversized_bodies_and_other_orgs_are_refused() {
    let app = spawn_app_with(xdr_graphql::ServerConfig {
        body_limits: xdr_graphql::BodyLimits { ingest: 4096, ..Default::default() },
        ..crate::helpers::unlimited()
    })
    .await;
    app.register("Org A", "admin@a.com").await;
    app.register("Org B", "admin@b.com").await;
    let a = app.login_ok("admin@a.com", PASSWORD).await.access;
    let b = app.login_ok("admin@b.com", PASSWORD).await.access;
    let (key, key_id) = key_for(&app, &a).await;
    let one = json!({"eventid": "cowrie.session.connect", "timestamp": "2026-11-26T22:00:00Z", "src_ip": "10.1.1.1"})
        .to_string();

    assert_eq!(
        ingest(&app, "/ingest/cowrie", "xdr_not-a-real-key", one.clone()).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let r = app.client.post(format!("{}/ingest/cowrie", app.address)).body(one.clone()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let big = format!("[{}]", vec![one.clone(); 100].join(","));
    let r = ingest(&app, "/ingest/cowrie", &key, big).await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.json::<Value>().await.unwrap()["detail"], "Request body larger than 4096 bytes");

    // Org B can neither see nor revoke A's key; a viewer of A cannot manage keys.
    let r = gql(&app, "mutation($id: ID!) { revokeIngestKey(id: $id) }", json!({"id": key_id}), &b).await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "NOT_FOUND");
    let (_, viewer) = app.user_with_role(&a, "viewer@a.com", "viewer").await;
    let r = gql(&app, CREATE, json!({"name": "x"}), &viewer.access).await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "FORBIDDEN");

    // Listed for the admin (never with the key), revoked, refused within the cache TTL.
    xdr_projections::catch_up_once(&app.db.pool).await.unwrap();
    let r = gql(&app, "{ ingestKeys { id name prefix revokedAt } }", json!({}), &a).await;
    assert_eq!(r["data"]["ingestKeys"][0]["id"], key_id.as_str());
    assert!(!r.to_string().contains(&key));
    assert_eq!(gql(&app, "{ ingestKeys { id } }", json!({}), &b).await["data"]["ingestKeys"], json!([]));
    let r = gql(&app, "mutation($id: ID!) { revokeIngestKey(id: $id) }", json!({"id": key_id}), &a).await;
    assert_eq!(r["data"]["revokeIngestKey"], true);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(ingest(&app, "/ingest/cowrie", &key, one).await.status(), StatusCode::UNAUTHORIZED);
    xdr_projections::catch_up_once(&app.db.pool).await.unwrap();
    let r = gql(&app, "{ ingestKeys { revokedAt } }", json!({}), &a).await;
    assert!(r["data"]["ingestKeys"][0]["revokedAt"].is_string(), "{r}");
}
