//! `mini-xdr serve` as the README starts it: migrations, the HTTP API and the projector in one
//! process, answering real requests.

use std::time::{Duration, Instant};
use xdr_commands::testing::TestDb;

use crate::support::{free_port, Process};

#[tokio::test]
async fn serve_migrates_serves_the_api_and_projects_what_it_writes() {
    let db = TestDb::new().await;
    let port = free_port();
    let nats_prefix = format!("t{}.", uuid::Uuid::new_v4().simple());
    let _server = Process(
        std::process::Command::new(env!("CARGO_BIN_EXE_mini-xdr"))
            .arg("serve")
            .envs(db.env())
            .env("XDR_BIND", format!("127.0.0.1:{port}"))
            .env("JWT_SECRET_KEY", "serve-test-secret-0123456789abcdef0123")
            .env("RUST_LOG", "warn")
            .env("XDR_NATS_PREFIX", &nats_prefix)
            .env_remove("XDR_CONFIG")
            .spawn()
            .expect("start mini-xdr serve"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let started = Instant::now();
    while !client.get(format!("{base}/readyz")).send().await.map(|r| r.status().is_success()).unwrap_or(false) {
        assert!(started.elapsed() < Duration::from_secs(30), "serve did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reg: serde_json::Value = client
        .post(format!("{base}/api/auth/register"))
        .json(&serde_json::json!({"organization_name": "Test Corp", "admin_email": "admin@test.com",
                                  "admin_password": "SecurePass123!@#", "admin_name": "Test Admin"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = reg["access_token"].as_str().expect("registered");
    let me: serde_json::Value =
        client.get(format!("{base}/api/auth/me")).bearer_auth(token).send().await.unwrap().json().await.unwrap();
    assert_eq!(me["organization"]["slug"], "test-corp");

    // An ingest key over GraphQL, records over HTTP, visible through GraphQL once projected.
    let gql = |query: &'static str| {
        client.post(format!("{base}/graphql")).bearer_auth(token).json(&serde_json::json!({"query": query})).send()
    };
    let created: serde_json::Value =
        gql("mutation { createIngestKey(name: \"hp\") { key } }").await.unwrap().json().await.unwrap();
    let key = created["data"]["createIngestKey"]["key"].as_str().expect("key issued").to_owned();
    let records: Vec<serde_json::Value> = (0..3)
        .map(|i| {
            serde_json::json!({"eventid": "cowrie.login.failed", "timestamp": "2026-11-26T21:00:00Z",
                                     "src_ip": "10.0.0.9", "username": "root", "password": format!("p{i}")})
        })
        .collect();
    let stored: serde_json::Value = client
        .post(format!("{base}/ingest/cowrie"))
        .header("X-Ingest-Key", &key)
        .json(&records)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stored["stored"], 3);
    let started = Instant::now();
    loop {
        let events: serde_json::Value =
            gql("{ events { edges { node { srcIp } } } }").await.unwrap().json().await.unwrap();
        if events["data"]["events"]["edges"].as_array().map(Vec::len) == Some(3) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "events not projected: {events}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The projector inside serve brings the read model up to date.
    let started = Instant::now();
    loop {
        let n: i64 =
            sqlx::query_scalar("SELECT count(*) FROM rm_users").fetch_one(&mut db.owner_conn().await).await.unwrap();
        if n == 1 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "projector did not project the new user");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    drop(_server);
    // Leave nothing behind in NATS: the streams this run created under its prefix.
    let nats = async_nats::connect("nats://127.0.0.1:4222").await.unwrap();
    let js = async_nats::jetstream::new(nats);
    let config = xdr_commands::ingest::IngestConfig::with_prefix(&nats_prefix);
    for stream in [config.stream_name, config.dlq_stream_name, config.events_stream_name] {
        let _ = js.delete_stream(&stream).await;
    }
}

#[tokio::test]
async fn roles_without_an_api_still_answer_the_probes() {
    let db = TestDb::new().await;
    let port = free_port();
    let _projector = Process(
        std::process::Command::new(env!("CARGO_BIN_EXE_mini-xdr"))
            .arg("projector")
            .envs(db.env())
            .env("XDR_BIND", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn")
            .env_remove("XDR_CONFIG")
            .spawn()
            .expect("start mini-xdr projector"),
    );
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        if let Ok(r) = client.get(format!("http://127.0.0.1:{port}/readyz")).send().await {
            assert!(r.status().is_success());
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "projector probes never answered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let health = client.get(format!("http://127.0.0.1:{port}/healthz")).send().await.unwrap();
    assert!(health.status().is_success());
    assert_eq!(client.get(format!("http://127.0.0.1:{port}/graphql")).send().await.unwrap().status(), 404);
}
