//! Issue #13 on the whole path a user runs: `serve` with its defaults (the committed
//! classifier loaded) ingests the real logs, opens incidents with model scores, contains one
//! through a policy carried out by the real dry-run agent, and `verify` passes while the
//! server runs, after it stops and after a `kill -9` mid-ingest — and still names an edited,
//! a deleted and a reordered row of that same log.

use serde_json::{json, Value};
use sqlx::{Executor, PgConnection};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use xdr_commands::testing::TestDb;

use crate::support::{free_port, repo, Process};

const SECRET: &str = "audit-e2e-secret-0123456789abcdef0123";

/// `mini-xdr serve` on one database and NATS prefix, restartable.
struct Server {
    url: String,
    port: u16,
    db_env: Vec<(&'static str, String)>,
    prefix: String,
    log: PathBuf,
    process: Option<Process>,
    client: reqwest::Client,
}

impl Server {
    async fn start(db: &TestDb, dir: &Path) -> Server {
        let port = free_port();
        let mut server = Server {
            url: format!("http://127.0.0.1:{port}"),
            port,
            db_env: db.env(),
            prefix: format!("t{}.", uuid::Uuid::new_v4().simple()),
            log: dir.join("serve.log"),
            process: None,
            client: reqwest::Client::new(),
        };
        server.restart().await;
        server
    }

    /// Start (again) with the README's defaults: the committed models, every role in one process.
    async fn restart(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_mini-xdr"))
            .arg("serve")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .envs(self.db_env.clone())
            .env("XDR_BIND", format!("127.0.0.1:{}", self.port))
            .env("JWT_SECRET_KEY", SECRET)
            .env("XDR_NATS_PREFIX", &self.prefix)
            .env("RUST_LOG", "info,sqlx=warn")
            .env_remove("XDR_CONFIG")
            .env_remove("XDR_MODELS_DIR")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start mini-xdr serve");
        self.process = Some(Process(child));
        let started = Instant::now();
        loop {
            let ready = self.client.get(format!("{}/readyz", self.url)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "serve not ready: {}", self.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `kill -9`: no shutdown hook runs.
    fn kill(&mut self) {
        self.process.take();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Send a request and read its JSON answer.
    async fn json(request: reqwest::RequestBuilder) -> Value {
        request.send().await.unwrap().json().await.unwrap()
    }

    async fn register(&self, org: &str, email: &str) -> String {
        let body = json!({"organization_name": org, "admin_email": email,
                          "admin_password": "SecurePass123!@#", "admin_name": "Admin"});
        let reg = Self::json(self.client.post(format!("{}/api/auth/register", self.url)).json(&body)).await;
        reg["access_token"].as_str().unwrap_or_else(|| panic!("registered: {reg}")).to_owned()
    }

    async fn gql(&self, token: &str, query: &str) -> Value {
        let request = self.client.post(format!("{}/graphql", self.url)).bearer_auth(token);
        let out = Self::json(request.json(&json!({ "query": query }))).await;
        assert!(out.get("errors").is_none(), "{query}: {out}");
        out["data"].clone()
    }

    /// Records over HTTP, a few per request, as a producer would send them.
    async fn ingest(&self, key: &str, source: &str, records: &[Value]) {
        let body = json!({"source_type": source, "hostname": "lab", "events": records});
        let request = self.client.post(format!("{}/ingest/multi", self.url)).header("X-Ingest-Key", key);
        let out = Self::json(request.json(&body)).await;
        assert_eq!(out["rejected"], json!([]), "{out}");
    }
}

fn cowrie_records() -> Vec<Value> {
    let log = std::fs::read_to_string(repo("domain/tests/fixtures/cowrie.json")).unwrap();
    log.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn sshd_records() -> Vec<Value> {
    let log = std::fs::read_to_string(repo("domain/tests/fixtures/sshd-auth.log")).unwrap();
    log.lines().filter(|l| !l.trim().is_empty()).map(|l| Value::String(l.to_owned())).collect()
}

fn verify(db: &TestDb, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mini-xdr"))
        .arg("verify")
        .args(args)
        .envs(db.env())
        .env_remove("XDR_CONFIG")
        .output()
        .expect("run mini-xdr verify")
}

fn assert_intact(out: &Output) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn assert_broken_at(out: &Output, org: &str, seq: i64) {
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains(&format!("org {org} org_seq {seq}:")), "{text}");
}

async fn owner(db: &TestDb) -> PgConnection {
    let mut conn = db.owner_conn().await;
    // As an attacker with the owner's login would: past the append-only trigger.
    conn.execute("SET session_replication_role = replica").await.unwrap();
    conn
}

/// The org's first `IncidentOpened` that carries the classifier's class probabilities.
async fn first_scored_incident(db: &TestDb, org: &str) -> Option<i64> {
    sqlx::query_scalar(
        "SELECT min(org_seq) FROM event_log WHERE org_id = $1::uuid AND event_type = 'IncidentOpened' \
           AND payload::text LIKE '%class_probabilities%'",
    )
    .bind(org)
    .fetch_one(&mut db.owner_conn().await)
    .await
    .unwrap()
}

async fn wait_until<F, Fut>(what: &str, server: &Server, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !done().await {
        assert!(started.elapsed() < Duration::from_secs(90), "{what}: timed out\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_logs_with_model_scores_and_a_containment_verify_live_and_after_stop() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&db, dir.path()).await;
    let token = server.register("Audit E2E", "admin@audit-e2e.test").await;
    let me = Server::json(server.client.get(format!("{}/api/auth/me", server.url)).bearer_auth(&token)).await;
    let org = me["organization"]["id"].as_str().unwrap().to_owned();

    // Containment first (README, "First five minutes"): rails, a policy, the switch, an agent.
    let agent_key = server.gql(&token, r#"mutation { createAgentKey(name: "edge-fw") { key } }"#).await
        ["createAgentKey"]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    server
        .gql(&token, r#"mutation { updateContainmentSettings(protectedRanges: ["127.0.0.1/32"]) { protectedRanges } }"#)
        .await;
    server
        .gql(
            &token,
            r#"mutation { createContainmentPolicy(input: {name: "block high", priority: 1, mode: AUTO,
                 conditions: {minSeverity: HIGH}, action: {kind: BLOCK_IP, durationSeconds: 600}}) { id } }"#,
        )
        .await;
    server.gql(&token, "mutation { setAutoContainment(enabled: true) { autoContainment } }").await;
    let agent_log = dir.path().join("agent.log");
    let _agent = Process(
        Command::new(env!("CARGO_BIN_EXE_mini-xdr"))
            .args(["agent", "--server", &server.url, "--backend", "dry-run"])
            .env("XDR_AGENT_KEY", &agent_key)
            .env_remove("XDR_CONFIG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&agent_log).unwrap())
            .spawn()
            .unwrap(),
    );

    let key = server.gql(&token, r#"mutation { createIngestKey(name: "lab") { key } }"#).await["createIngestKey"]
        ["key"]
        .as_str()
        .unwrap()
        .to_owned();
    for chunk in cowrie_records().chunks(40) {
        server.ingest(&key, "cowrie", chunk).await;
    }
    server.ingest(&key, "sshd", &sshd_records()).await;

    // Incidents open with model scores, and the policy contains at least one.
    let contained = || async {
        let data = server.gql(&token, "{ incidents(first: 20) { edges { node { srcIp status } } } }").await;
        data["incidents"]["edges"].as_array().unwrap().iter().any(|e| e["node"]["status"] == "CONTAINED")
    };
    wait_until("an incident contained by the policy", &server, contained).await;
    let scored = first_scored_incident(&db, &org).await.expect("an incident with the classifier's probabilities");

    // Live: verify runs beside the server (the detector and projector still write).
    assert_intact(&verify(&db, &[]));
    server.ingest(&key, "cowrie", &cowrie_records()[..20]).await;
    assert_intact(&verify(&db, &["--org", &org]));

    // Stopped: still intact.
    server.kill();
    let out = verify(&db, &[]);
    assert_intact(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 orgs"), "{}", String::from_utf8_lossy(&out.stdout));

    // An edited score in the first scored incident is named; restoring it makes the log whole.
    let mut conn = owner(&db).await;
    conn.execute(
        format!("CREATE TEMP TABLE saved AS SELECT * FROM event_log WHERE org_id = '{org}' AND org_seq = {scored}")
            .as_str(),
    )
    .await
    .unwrap();
    let edited = conn
        .execute(
            format!(
                "UPDATE event_log SET payload = jsonb_set(payload, '{{model,class_probabilities,apt}}', '0.5') \
                 WHERE org_id = '{org}' AND org_seq = {scored}"
            )
            .as_str(),
        )
        .await
        .unwrap();
    assert_eq!(edited.rows_affected(), 1);
    assert_broken_at(&verify(&db, &[]), &org, scored);
    conn.execute(
        "UPDATE event_log e SET payload = s.payload FROM saved s WHERE e.org_id = s.org_id AND e.org_seq = s.org_seq",
    )
    .await
    .unwrap();
    assert_intact(&verify(&db, &[]));

    // A deleted row is named, and so is a swap of two rows' order.
    conn.execute(format!("DELETE FROM event_log WHERE org_id = '{org}' AND org_seq = {scored}").as_str())
        .await
        .unwrap();
    assert_broken_at(&verify(&db, &[]), &org, scored);
    conn.execute("INSERT INTO event_log SELECT * FROM saved").await.unwrap();
    assert_intact(&verify(&db, &[]));
    let before = scored - 1;
    // The primary key is checked row by row, so the swap goes through a free number.
    for (from, to) in [(scored, i64::MAX), (before, scored), (i64::MAX, before)] {
        conn.execute(
            format!("UPDATE event_log SET org_seq = {to} WHERE org_id = '{org}' AND org_seq = {from}").as_str(),
        )
        .await
        .unwrap();
    }
    assert_broken_at(&verify(&db, &[]), &org, before);
    cleanup_nats(&server.prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_mid_ingest_and_a_restart_leave_a_log_that_verifies() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&db, dir.path()).await;
    let token = server.register("Crash Corp", "admin@crash.test").await;
    let key = server.gql(&token, r#"mutation { createIngestKey(name: "lab") { key } }"#).await["createIngestKey"]
        ["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let records = cowrie_records();
    let (first, rest) = records.split_at(records.len() / 2);
    for chunk in first.chunks(10) {
        server.ingest(&key, "cowrie", chunk).await;
    }
    // Killed while the detector, relay and projector are still working through the first half.
    server.kill();
    server.restart().await;
    for chunk in rest.chunks(10) {
        server.ingest(&key, "cowrie", chunk).await;
    }
    server.ingest(&key, "sshd", &sshd_records()).await;
    let scored = || async {
        let data = server.gql(&token, "{ incidents(first: 20) { edges { node { srcIp model } } } }").await;
        let edges = data["incidents"]["edges"].as_array().unwrap().clone();
        edges.len() >= 3 && edges.iter().any(|e| e["node"]["model"]["class_probabilities"].is_object())
    };
    wait_until("incidents with model scores after the restart", &server, scored).await;
    assert_intact(&verify(&db, &[]));
    server.kill();
    assert_intact(&verify(&db, &[]));
    cleanup_nats(&server.prefix).await;
}

async fn cleanup_nats(prefix: &str) {
    let nats = async_nats::connect("nats://127.0.0.1:4222").await.unwrap();
    let js = async_nats::jetstream::new(nats);
    let config = xdr_commands::ingest::IngestConfig::with_prefix(prefix);
    for stream in [config.stream_name, config.dlq_stream_name, config.events_stream_name] {
        let _ = js.delete_stream(&stream).await;
    }
}
