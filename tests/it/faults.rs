//! The fault suite, reduced to fit CI (issue #18): every role runs as its own process, a load
//! of real and brute-force records runs, and one role is killed with `kill -9` at a random
//! moment and restarted. Afterwards nothing is lost and nothing counted twice: every record is
//! exactly one committed event, `verify` passes, the read models equal a rebuild from the log,
//! each brute-force source has exactly one incident (high), each of its blocks was dispatched
//! once per attempt and confirmed by the agent, and every copy of the real log produced the
//! same incidents.

use serde_json::{json, Value};
use sqlx::Row;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;
use xdr_commands::testing::TestDb;

use crate::support::{mini_xdr, nats_prefix, repo, wait_until, Process, Role, JWT_SECRET};

/// Brute-force sources generated for the load: each must open exactly one incident.
const BRUTE_FORCE_SOURCES: usize = 6;
/// Failed logins per brute-force source, within 40 s: above the rule's "high" bound of 12.
const FAILURES_PER_SOURCE: usize = 20;
/// Copies of the real Cowrie log, each under its own source addresses (`10.<copy>.0.<n>`).
const REAL_LOG_COPIES: usize = 4;
/// Every role runs separately; the detector in two partitions.
const ROLES: &[(&str, &[&str])] = &[
    ("api", &["api"]),
    ("ingestor", &["ingestor"]),
    ("relay", &["relay"]),
    ("projector", &["projector"]),
    ("detector-0", &["detector", "--partitions", "2", "--partition", "0"]),
    ("detector-1", &["detector", "--partitions", "2", "--partition", "1"]),
    ("scheduler", &["scheduler"]),
];

struct Pipeline {
    db: TestDb,
    prefix: String,
    roles: BTreeMap<&'static str, Role>,
    client: reqwest::Client,
    token: String,
    org: String,
    ingest_key: String,
    _agent: Option<Process>,
    agent_log: std::path::PathBuf,
}

impl Pipeline {
    async fn start(dir: &Path) -> Pipeline {
        let db = TestDb::new().await;
        let prefix = nats_prefix();
        let mut env_owned = db.env();
        env_owned.push(("XDR_NATS_PREFIX", prefix.clone()));
        env_owned.push(("JWT_SECRET_KEY", JWT_SECRET.to_owned()));
        let env: Vec<(&str, &str)> = env_owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut roles = BTreeMap::new();
        for (name, args) in ROLES {
            let mut role = Role::new(name, args, &env, dir);
            role.start();
            roles.insert(*name, role);
        }
        for role in roles.values() {
            role.ready().await;
        }
        let mut pipeline = Pipeline {
            db,
            prefix,
            roles,
            client: reqwest::Client::new(),
            token: String::new(),
            org: String::new(),
            ingest_key: String::new(),
            _agent: None,
            agent_log: dir.join("agent.log"),
        };
        pipeline.set_up_org().await;
        pipeline
    }

    fn api(&self) -> String {
        self.roles["api"].url()
    }

    /// Every role's log, for a failure message.
    fn logs(&self) -> String {
        let mut out = String::new();
        for role in self.roles.values() {
            let log = role.log();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            out.push_str(&format!("--- {} (last lines)\n", role.name));
            for line in tail.into_iter().rev() {
                out.push_str(line);
                out.push('\n');
            }
        }
        out.push_str("--- agent\n");
        out.push_str(&std::fs::read_to_string(&self.agent_log).unwrap_or_default());
        out
    }

    async fn gql(&self, query: &str) -> Value {
        let request = self.client.post(format!("{}/graphql", self.api())).bearer_auth(&self.token);
        let out: Value = request.json(&json!({ "query": query })).send().await.unwrap().json().await.unwrap();
        assert!(out.get("errors").is_none(), "{query}: {out}");
        out["data"].clone()
    }

    /// An org with an ingest key, auto-containment of high incidents and a dry-run agent.
    async fn set_up_org(&mut self) {
        let body = json!({"organization_name": "Faults", "admin_email": "admin@faults.test",
                          "admin_password": "SecurePass123!@#", "admin_name": "Admin"});
        let reg: Value = self
            .client
            .post(format!("{}/api/auth/register", self.api()))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        self.token = reg["access_token"].as_str().unwrap_or_else(|| panic!("registered: {reg}")).to_owned();
        self.org = reg["user"]["organization_id"].as_str().unwrap_or_else(|| panic!("org id: {reg}")).to_owned();
        self.ingest_key = self.gql(r#"mutation { createIngestKey(name: "lab") { key } }"#).await["createIngestKey"]
            ["key"]
            .as_str()
            .unwrap()
            .to_owned();
        let agent_key = self.gql(r#"mutation { createAgentKey(name: "edge") { key } }"#).await["createAgentKey"]["key"]
            .as_str()
            .unwrap()
            .to_owned();
        self.gql(
            r#"mutation { createContainmentPolicy(input: {name: "block high", priority: 1, mode: AUTO,
                 conditions: {minSeverity: HIGH}, action: {kind: BLOCK_IP, durationSeconds: 3600}}) { id } }"#,
        )
        .await;
        self.gql("mutation { setAutoContainment(enabled: true) { autoContainment } }").await;
        let agent = std::process::Command::new(env!("CARGO_BIN_EXE_mini-xdr"))
            .args(["agent", "--server", &self.api(), "--backend", "dry-run"])
            .env("XDR_AGENT_KEY", &agent_key)
            .env_remove("XDR_CONFIG")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&self.agent_log).unwrap())
            .spawn()
            .expect("start the agent");
        self._agent = Some(Process(agent));
    }

    /// Records over HTTP, retried until the API answers (as a producer would while it restarts).
    async fn post_until_accepted(&self, source: &str, records: &[Value]) {
        let body = json!({"source_type": source, "hostname": "lab", "events": records});
        for _ in 0..600 {
            let sent = self
                .client
                .post(format!("{}/ingest/multi", self.api()))
                .header("X-Ingest-Key", &self.ingest_key)
                .json(&body)
                .timeout(Duration::from_secs(10))
                .send()
                .await;
            if let Ok(response) = sent {
                if response.status().is_success() {
                    let out: Value = response.json().await.unwrap();
                    assert_eq!(out["rejected"], json!([]), "{out}");
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("the API never accepted the records\n{}", self.logs());
    }

    async fn scalar(&self, sql: &str) -> i64 {
        let mut conn = self.db.owner_conn().await;
        sqlx::query_scalar(sql).bind(&self.org).fetch_one(&mut conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Projections have applied everything the log holds (all ten of them).
    async fn projected(&self) -> bool {
        let behind = self
            .scalar(
                "SELECT count(*) FILTER (WHERE c.last_seq < h.last_seq) + (10 - count(*))
                   FROM org_heads h JOIN projection_checkpoints c USING (org_id) WHERE h.org_id = $1::uuid",
            )
            .await;
        behind == 0
    }

    /// (source, severity) of every incident, with how many incidents each source has.
    async fn incidents(&self) -> BTreeMap<String, Vec<(String, String)>> {
        let mut conn = self.db.owner_conn().await;
        let rows = sqlx::query("SELECT src_ip, category, severity FROM rm_incidents WHERE org_id = $1::uuid")
            .bind(&self.org)
            .fetch_all(&mut conn)
            .await
            .unwrap();
        let mut by_source: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for row in rows {
            by_source.entry(row.get(0)).or_default().push((row.get(1), row.get(2)));
        }
        for list in by_source.values_mut() {
            list.sort();
        }
        by_source
    }

    /// Each brute-force source has its high incident and its block confirmed, and the read
    /// models hold the whole log.
    async fn settled(&self, expected_telemetry: i64) -> bool {
        let telemetry = self
            .scalar("SELECT count(*) FROM event_log WHERE org_id = $1::uuid AND event_type = 'SecurityEventObserved'")
            .await;
        if telemetry < expected_telemetry {
            return false;
        }
        let incidents = self.incidents().await;
        let all_high = brute_force_sources()
            .iter()
            .all(|ip| incidents.get(ip).is_some_and(|list| list.iter().any(|(_, severity)| severity == "high")));
        if !all_high {
            return false;
        }
        let confirmed = self
            .scalar("SELECT count(*) FROM rm_active_blocks b WHERE b.org_id = $1::uuid AND b.ip LIKE '203.0.113.%'")
            .await;
        // Detection runs behind the commit: the copies of the real log converge to the same
        // incidents once the detector has seen every record (a copy that never does fails).
        let copies = incidents_per_copy(&incidents);
        confirmed >= BRUTE_FORCE_SOURCES as i64 && copies.iter().all(|c| c == &copies[0]) && self.projected().await
    }
}

fn brute_force_sources() -> Vec<String> {
    (1..=BRUTE_FORCE_SOURCES).map(|n| format!("203.0.113.{n}")).collect()
}

/// Cowrie failed logins, 20 per source within 40 s, a few minutes ago.
fn brute_force_records() -> Vec<Value> {
    let start = chrono::Utc::now() - chrono::Duration::minutes(5);
    let mut records = Vec::new();
    for (s, ip) in brute_force_sources().iter().enumerate() {
        for i in 0..FAILURES_PER_SOURCE {
            let at = start + chrono::Duration::seconds(2 * i as i64);
            records.push(json!({
                "eventid": "cowrie.login.failed", "session": format!("bf{s:02}{i:02}"), "src_ip": ip,
                "src_port": 40000 + i, "dst_ip": "192.0.2.10", "dst_port": 22, "username": "root",
                "password": format!("guess-{i}"), "sensor": "lab", "protocol": "ssh",
                "timestamp": at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
                "message": format!("login attempt [root/guess-{i}] failed"),
            }));
        }
    }
    records
}

/// The real Cowrie log (shared/data/real-logs, copied into the domain's fixtures), copy
/// `copy` of it: its loopback attackers `127.0.0.n` become `10.<copy>.0.n`.
fn real_log_copy(copy: usize) -> Vec<Value> {
    let log = std::fs::read_to_string(repo("domain/tests/fixtures/cowrie.json")).unwrap();
    log.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let mut record: Value = serde_json::from_str(line).unwrap();
            if let Some(ip) = record["src_ip"].as_str() {
                record["src_ip"] = json!(ip.replace("127.0.", &format!("10.{copy}.")));
            }
            if let Some(session) = record["session"].as_str() {
                record["session"] = json!(format!("{session}-{copy}"));
            }
            if let Some(uuid) = record["uuid"].as_str() {
                record["uuid"] = json!(format!("{uuid}-{copy}"));
            }
            record
        })
        .collect()
}

/// (host in the real log, category, severity) of each copy's incidents.
fn incidents_per_copy(incidents: &BTreeMap<String, Vec<(String, String)>>) -> Vec<BTreeSet<(String, String, String)>> {
    let mut per_copy = vec![BTreeSet::new(); REAL_LOG_COPIES];
    for (ip, list) in incidents {
        if let Some((copy, host)) = source_in_log(ip) {
            for (category, severity) in list {
                per_copy[copy].insert((host.clone(), category.clone(), severity.clone()));
            }
        }
    }
    per_copy
}

/// `10.<copy>.0.n` → `n`: the source as the real log names it.
fn source_in_log(ip: &str) -> Option<(usize, String)> {
    let rest = ip.strip_prefix("10.")?;
    let (copy, host) = rest.split_once(".0.")?;
    Some((copy.parse().ok()?, host.to_owned()))
}

/// Kill `victim` at a random moment of the load, restart it, and check the whole promise.
async fn survives_kill_9_of(victim: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut pipeline = Pipeline::start(dir.path()).await;

    // Half the real-log copies go through NATS (`mini-xdr ingest` → ingestor), half and the
    // brute force over HTTP (→ api).
    let mut expected = 0usize;
    let mut nats_files = Vec::new();
    for copy in 0..REAL_LOG_COPIES / 2 {
        let records = real_log_copy(copy);
        expected += records.len();
        let path = dir.path().join(format!("copy-{copy}.json"));
        let lines: Vec<String> = records.iter().map(Value::to_string).collect();
        std::fs::write(&path, lines.join("\n")).unwrap();
        nats_files.push(path);
    }
    let mut http_batches: Vec<Vec<Value>> = Vec::new();
    for copy in REAL_LOG_COPIES / 2..REAL_LOG_COPIES {
        let records = real_log_copy(copy);
        expected += records.len();
        http_batches.extend(records.chunks(25).map(<[Value]>::to_vec));
    }
    let brute = brute_force_records();
    expected += brute.len();
    http_batches.extend(brute.chunks(20).map(<[Value]>::to_vec));

    // A random moment within the first second of the load.
    let delay = Duration::from_millis((uuid::Uuid::new_v4().as_u128() % 1_000) as u64);
    let kill_at = std::time::Instant::now() + delay;
    let mut killed = false;

    for path in &nats_files {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mini-xdr"))
            .args(["ingest", "--key", &pipeline.ingest_key, "--source", "cowrie", "--batch", "40"])
            .arg(path)
            .env("XDR_NATS_PREFIX", &pipeline.prefix)
            .env_remove("XDR_CONFIG")
            .output()
            .unwrap();
        assert!(out.status.success(), "ingest: {}", String::from_utf8_lossy(&out.stderr));
    }
    for batch in &http_batches {
        if !killed && std::time::Instant::now() >= kill_at {
            pipeline.roles.get_mut(victim).unwrap().kill();
            killed = true;
            tokio::time::sleep(Duration::from_millis(500)).await;
            pipeline.roles.get_mut(victim).unwrap().start();
        }
        pipeline.post_until_accepted("cowrie", batch).await;
    }
    if !killed {
        pipeline.roles.get_mut(victim).unwrap().kill();
        pipeline.roles.get_mut(victim).unwrap().start();
    }
    let restarted = std::time::Instant::now();
    pipeline.roles[victim].ready().await;
    let ready_after = restarted.elapsed();

    let expected = expected as i64;
    // Redelivery after a kill waits for the consumer's ack deadline (30 s ingest, 60 s detector).
    wait_until("the pipeline settles", Duration::from_secs(180), || pipeline.logs(), || pipeline.settled(expected))
        .await;
    eprintln!(
        "fault kill -9 {victim} (after {delay:?}): ready again in {ready_after:?}, everything settled {:?} after restart",
        restarted.elapsed()
    );

    // Nothing lost, nothing twice: one event per record.
    let telemetry = pipeline
        .scalar("SELECT count(*) FROM event_log WHERE org_id = $1::uuid AND event_type = 'SecurityEventObserved'")
        .await;
    assert_eq!(telemetry, expected, "one committed event per record after killing {victim}");

    // Exactly one incident, high, per brute-force source.
    let incidents = pipeline.incidents().await;
    for ip in brute_force_sources() {
        let list = &incidents[&ip];
        assert_eq!(list.len(), 1, "{ip} after killing {victim}: {list:?}");
        assert_eq!(list[0].1, "high", "{ip}: {list:?}");
    }
    // Every copy of the real log saw the same incidents.
    let per_copy = incidents_per_copy(&incidents);
    assert!(!per_copy[0].is_empty(), "the real log opens incidents");
    for (copy, seen) in per_copy.iter().enumerate() {
        assert_eq!(seen, &per_copy[0], "copy {copy} of the real log after killing {victim}");
    }

    // Containment: one dispatch per (action, attempt), every brute-force block confirmed once.
    let mut conn = pipeline.db.owner_conn().await;
    let twice: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT payload->>'action_id', payload->>'attempt' FROM event_log
                                 WHERE org_id = $1::uuid AND event_type = 'ActionDispatched'
                                 GROUP BY 1, 2 HAVING count(*) > 1) d",
    )
    .bind(&pipeline.org)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(twice, 0, "an order dispatched twice for one attempt after killing {victim}");
    let succeeded: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT payload->>'action_id') FROM event_log
          WHERE org_id = $1::uuid AND event_type = 'ActionSucceeded'",
    )
    .bind(&pipeline.org)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(succeeded >= BRUTE_FORCE_SOURCES as i64, "blocks confirmed: {succeeded}");

    // The log verifies, and the live read models equal a rebuild from it.
    let verify = mini_xdr(&pipeline.db, &["verify", "--org", &pipeline.org]);
    assert!(verify.status.success(), "verify after killing {victim}: {}", String::from_utf8_lossy(&verify.stdout));
    let live = digest(&mini_xdr(&pipeline.db, &["digest", "--org", &pipeline.org]));
    let rebuilt = mini_xdr(&pipeline.db, &["rebuild", "--into", "faults_rebuilt", "--org", &pipeline.org]);
    assert!(rebuilt.status.success(), "rebuild --into: {}", String::from_utf8_lossy(&rebuilt.stderr));
    let rebuilt = digest(&mini_xdr(&pipeline.db, &["digest", "--org", &pipeline.org, "--schema", "faults_rebuilt"]));
    assert_eq!(live, rebuilt, "read models after killing {victim} equal a rebuild");
}

fn digest(out: &std::process::Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().find(|w| w.len() == 64).unwrap_or_else(|| panic!("no digest in {text}")).to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_ingestor_loses_and_doubles_nothing() {
    survives_kill_9_of("ingestor").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_relay_loses_and_doubles_nothing() {
    survives_kill_9_of("relay").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_projector_loses_and_doubles_nothing() {
    survives_kill_9_of("projector").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_one_detector_partition_loses_and_doubles_nothing() {
    survives_kill_9_of("detector-1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_scheduler_loses_and_doubles_nothing() {
    survives_kill_9_of("scheduler").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_api_during_http_ingest_loses_and_doubles_nothing() {
    survives_kill_9_of("api").await;
}
