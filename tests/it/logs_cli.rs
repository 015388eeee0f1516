//! What an operator's log collector receives: JSON lines by default when stderr is a file,
//! plain text on request, never colour escapes, and none of the secrets the run handled.

use std::process::Stdio;
use std::time::{Duration, Instant};
use xdr_commands::testing::TestDb;

use crate::support::{free_port, nats_prefix, Process};

const JWT_SECRET_KEY: &str = "logs-test-jwt-secret-4f1c9a7e2b6d8f0a3c5e";
const ENCRYPTION_KEY: &str = "9d2f6b1e8a4c7f3e0b5d9a2c6e1f8b4d7a3c0e5f9b2d6a1c8e4f7b3d0a5c9e2f";
const PASSWORD: &str = "Logs-Test-Pass-7731!";
const WRONG_PASSWORD: &str = "Not-The-Password-5519!";

/// `serve` with stderr to `log`, the environment `extra` on top.
fn serve(db: &TestDb, port: u16, prefix: &str, log: &std::path::Path, extra: &[(&str, &str)]) -> Process {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_mini-xdr"));
    command
        .arg("serve")
        .envs(db.env())
        .env("XDR_BIND", format!("127.0.0.1:{port}"))
        .env("JWT_SECRET_KEY", JWT_SECRET_KEY)
        .env("ENCRYPTION_KEY", ENCRYPTION_KEY)
        // Debug for our own crates: the secrets check covers the chattiest level we ship.
        .env("RUST_LOG", "info,sqlx=warn,xdr_graphql=debug,xdr_commands=debug,xdr_projections=debug,mini_xdr=debug")
        .env("XDR_NATS_PREFIX", prefix)
        .env_remove("XDR_CONFIG")
        .env_remove("XDR_LOG_FORMAT")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    for (k, v) in extra {
        command.env(k, v);
    }
    Process(command.spawn().expect("start mini-xdr serve"))
}

async fn ready(base: &str, log: &std::path::Path) {
    let client = reqwest::Client::new();
    let started = Instant::now();
    while !client.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        assert!(started.elapsed() < Duration::from_secs(60), "serve not ready:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn drop_streams(prefix: &str) {
    let js = async_nats::jetstream::new(async_nats::connect("nats://127.0.0.1:4222").await.unwrap());
    let config = xdr_commands::ingest::IngestConfig::with_prefix(prefix);
    for stream in [config.stream_name, config.dlq_stream_name, config.events_stream_name] {
        let _ = js.delete_stream(&stream).await;
    }
}

/// Register, fail a login, log in, issue an ingest key, ingest, read back: every secret of
/// the run, in the order they appeared.
async fn exercise(base: &str) -> Vec<String> {
    let client = reqwest::Client::new();
    let reg: serde_json::Value = client
        .post(format!("{base}/api/auth/register"))
        .json(&serde_json::json!({"organization_name": "Logs Corp", "admin_email": "admin@logs.test",
                                  "admin_password": PASSWORD, "admin_name": "Logs Admin"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let first_token = reg["access_token"].as_str().expect("registered").to_owned();
    let refused = client
        .post(format!("{base}/api/auth/login"))
        .json(&serde_json::json!({"email": "admin@logs.test", "password": WRONG_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let login = client
        .post(format!("{base}/api/auth/login"))
        .json(&serde_json::json!({"email": "admin@logs.test", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    assert!(login.headers().contains_key("x-request-id"), "every answer names its request");
    let refresh = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|c| c.to_str().ok()?.split(';').next()?.split_once('=').map(|(_, v)| v.to_owned()))
        .find(|v| v.len() > 16);
    let login: serde_json::Value = login.json().await.unwrap();
    let token = login["access_token"].as_str().expect("logged in").to_owned();
    let created: serde_json::Value = client
        .post(format!("{base}/graphql"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"query": "mutation { createIngestKey(name: \"logs\") { key } }"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
    // A forged key: the refusal is logged, the key is not.
    let forged = format!("{key}x");
    let refused = client.post(format!("{base}/ingest/cowrie")).header("X-Ingest-Key", &forged).json(&records).send();
    assert_eq!(refused.await.unwrap().status(), 401);
    let started = Instant::now();
    loop {
        let events: serde_json::Value = client
            .post(format!("{base}/graphql"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"query": "{ events { edges { node { srcIp } } } }"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if events["data"]["events"]["edges"].as_array().map(Vec::len) == Some(3) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "events not projected: {events}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut secrets = vec![JWT_SECRET_KEY.to_owned(), ENCRYPTION_KEY.to_owned(), PASSWORD.to_owned()];
    secrets.extend([WRONG_PASSWORD.to_owned(), first_token, token, key, forged]);
    secrets.extend(refresh);
    secrets
}

#[tokio::test]
async fn logs_to_a_file_are_json_lines_without_escapes_or_secrets() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serve.log");
    let (port, prefix) = (free_port(), nats_prefix());
    let server = serve(&db, port, &prefix, &log, &[]);
    let base = format!("http://127.0.0.1:{port}");
    ready(&base, &log).await;
    let secrets = exercise(&base).await;
    // Let the pipeline's background tasks log what they did with the records.
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(server);
    drop_streams(&prefix).await;

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("\x1b["), "colour escapes in a log file:\n{text}");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    assert!(lines.len() > 5, "too few log lines to judge:\n{text}");
    for line in &lines {
        assert_eq!(line["role"], "serve", "{line}");
        assert!(line["level"].is_string() && line["target"].is_string() && line["timestamp"].is_string(), "{line}");
        assert!(line["message"].is_string(), "{line}");
    }
    // The ingest request's line carries its span: request id, route, and the org the key named.
    let answered: Vec<&serde_json::Value> = lines.iter().filter(|l| l["target"] == "xdr_http").collect();
    let request =
        |l: &serde_json::Value| l["spans"].as_array().and_then(|s| s.iter().find(|s| s["name"] == "request")).cloned();
    let login = answered
        .iter()
        .filter_map(|l| request(l).map(|span| (l, span)))
        .find(|(l, span)| span["path"] == "/api/auth/login" && l["status"] == 200)
        .unwrap_or_else(|| panic!("no answered login with its span:\n{text}"));
    assert!(login.1["request_id"].as_str().is_some_and(|id| uuid::Uuid::parse_str(id).is_ok()), "{}", login.0);
    assert_eq!(login.1["method"], "POST");
    let authenticated = answered
        .iter()
        .filter_map(|l| request(l))
        .find(|span| span["path"] == "/graphql" && span["org_id"].is_string());
    assert!(authenticated.is_some(), "no GraphQL request line names the caller's org:\n{text}");
    let ingested = answered
        .iter()
        .filter_map(|l| request(l).map(|span| (l, span)))
        .find(|(l, span)| span["path"] == "/ingest/cowrie" && l["status"] == 200);
    assert!(ingested.is_some_and(|(_, span)| span["org_id"].is_string()), "the ingest line names no org:\n{text}");

    for secret in &secrets {
        assert!(!text.contains(secret.as_str()), "a secret is in the log: {secret}\n{text}");
    }
}

#[tokio::test]
async fn text_logs_to_a_file_have_no_colour() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serve.log");
    let (port, prefix) = (free_port(), nats_prefix());
    let server = serve(&db, port, &prefix, &log, &[("XDR_LOG_FORMAT", "text")]);
    let base = format!("http://127.0.0.1:{port}");
    ready(&base, &log).await;
    drop(server);
    drop_streams(&prefix).await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.lines().count() > 2, "too few log lines:\n{text}");
    assert!(!text.contains("\x1b["), "colour escapes in a log file:\n{text}");
    assert!(text.lines().all(|l| !l.starts_with('{')), "text was asked for:\n{text}");
    assert!(text.contains(" INFO "), "{text}");
}

#[tokio::test]
async fn an_unknown_log_format_is_refused_before_anything_runs() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mini-xdr"))
        .arg("schema")
        .env("XDR_LOG_FORMAT", "yaml")
        .env_remove("XDR_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("XDR_LOG_FORMAT must be json or text"));
    assert!(out.stdout.is_empty(), "schema printed despite the refusal");
}
