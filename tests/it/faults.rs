//! The fault suite, reduced to fit CI (issue #18): every role runs as its own process, a load
//! of real and brute-force records runs, and one fault strikes mid-load: a role killed with
//! `kill -9` at a random moment and restarted, PostgreSQL restarted (fast) or down for a
//! while, NATS restarted or unreachable for a while (private servers started by the test).
//! While a dependency is down the roles that need it answer `/readyz` with 503 and none
//! exits; afterwards every role is ready again without a restart. Afterwards nothing is lost and nothing counted twice: every record is
//! exactly one committed event, `verify` passes, the read models equal a rebuild from the log,
//! each brute-force source has exactly one incident (high), each of its blocks was dispatched
//! once per attempt and confirmed by the agent, and every copy of the real log produced the
//! same incidents.

use serde_json::{json, Value};
use sqlx::Row;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use xdr_commands::testing::TestDb;

use crate::load::{
    brute_force_records, brute_force_sources, digest, incidents_per_copy, real_log_copy, BRUTE_FORCE_SOURCES,
    FAILURES_PER_SOURCE,
};
use crate::servers::{PrivateNats, PrivatePostgres};
use crate::support::{nats_prefix, wait_until, Process, Role, JWT_SECRET};

/// Copies of the real Cowrie log, each under its own source addresses (`10.<copy>.0.<n>`);
/// the full form (`XDR_FAULTS_FULL=1`) runs a load three times as long.
const REAL_LOG_COPIES: usize = 4;
const REAL_LOG_COPIES_FULL: usize = 12;

/// `XDR_FAULTS_FULL=1`: longer load and 30 s outages (docs/OPERATIONS.md, "Failure behaviour").
fn full_form() -> bool {
    std::env::var_os("XDR_FAULTS_FULL").is_some_and(|v| !v.is_empty() && v != "0")
}

fn real_log_copies() -> usize {
    if full_form() {
        REAL_LOG_COPIES_FULL
    } else {
        REAL_LOG_COPIES
    }
}

/// How long a dependency stays down in the outage faults.
fn outage() -> Duration {
    Duration::from_secs(if full_form() { 30 } else { 5 })
}
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

/// Where the roles' PostgreSQL and NATS are: the shared servers (a scratch database, a
/// prefix), or private ones the test restarts.
struct Backends {
    env: Vec<(&'static str, String)>,
    owner_url: String,
    nats_url: Option<String>,
    _db: Option<TestDb>,
}

impl Backends {
    async fn shared_postgres(nats: Option<&PrivateNats>) -> Backends {
        let db = TestDb::new().await;
        Backends { env: db.env(), owner_url: db.url(), nats_url: nats.map(PrivateNats::url), _db: Some(db) }
    }

    fn private_postgres(pg: &PrivatePostgres, nats: Option<&PrivateNats>) -> Backends {
        Backends { env: pg.env(), owner_url: pg.owner_url(), nats_url: nats.map(PrivateNats::url), _db: None }
    }

    fn nats_url(&self) -> String {
        self.nats_url.clone().unwrap_or_else(|| "nats://127.0.0.1:4222".into())
    }
}

struct Pipeline {
    backends: Backends,
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
    async fn start(dir: &Path, backends: Backends) -> Pipeline {
        let prefix = nats_prefix();
        let mut env_owned = backends.env.clone();
        env_owned.push(("NATS_URL", backends.nats_url()));
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
            backends,
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

    /// `mini-xdr ARGS` as an operator runs it against this pipeline's database, to completion.
    fn tool(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_mini-xdr"))
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .envs(self.backends.env.iter().map(|(k, v)| (*k, v.as_str())))
            .env_remove("XDR_CONFIG")
            .output()
            .expect("run mini-xdr")
    }

    async fn owner_conn(&self) -> sqlx::PgConnection {
        use sqlx::Connection;
        sqlx::PgConnection::connect(&self.backends.owner_url).await.unwrap_or_else(|e| panic!("owner connection: {e}"))
    }

    async fn scalar(&self, sql: &str) -> i64 {
        let mut conn = self.owner_conn().await;
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
        let mut conn = self.owner_conn().await;
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
        let copies = incidents_per_copy(&incidents, real_log_copies());
        confirmed >= BRUTE_FORCE_SOURCES as i64 && copies.iter().all(|c| c == &copies[0]) && self.projected().await
    }
}

/// One fault of the suite.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// `kill -9` of one role, restarted 0.5 s later.
    Kill9(&'static str),
    /// `pg_ctl -m fast restart` of the private PostgreSQL.
    PostgresRestart,
    /// `pg_ctl -m fast stop`, down for the outage, then started again.
    PostgresOutage,
    /// The private nats-server stopped (SIGTERM) and started again on the same store.
    NatsRestart,
    /// The private nats-server killed, unreachable for the outage, then started again; every
    /// HTTP batch (the brute force among them) is posted while it is down.
    NatsOutage,
    /// A poison message in each stream, published by a client of the NATS account (the
    /// development server is anonymous: anyone on it may publish anywhere, the worst case):
    /// an unparseable ingest body, an undecodable event, an order for an unknown action.
    Poison,
}

impl Fault {
    fn name(self) -> String {
        match self {
            Fault::Kill9(role) => format!("kill -9 {role}"),
            Fault::PostgresRestart => "PostgreSQL fast restart".into(),
            Fault::PostgresOutage => format!("PostgreSQL down {:?}", outage()),
            Fault::NatsRestart => "NATS restart".into(),
            Fault::NatsOutage => format!("NATS down {:?}", outage()),
            Fault::Poison => "poison message in each stream".into(),
        }
    }

    fn private_postgres(self) -> bool {
        matches!(self, Fault::PostgresRestart | Fault::PostgresOutage)
    }

    fn private_nats(self) -> bool {
        matches!(self, Fault::NatsRestart | Fault::NatsOutage)
    }
}

/// The worst lag seen while the fault played out, sampled four times a second.
#[derive(Default)]
struct WorstLag {
    /// Committed events the relay had not yet published (sum over orgs).
    relay: AtomicI64,
    /// Events the slowest projection had not yet applied.
    projection: AtomicI64,
    /// Messages the pipeline's JetStream consumers had not yet acknowledged (pending plus
    /// delivered and unacknowledged).
    consumers: AtomicI64,
    stop: AtomicBool,
}

impl WorstLag {
    /// Sample until stopped. A dependency that is down is simply not sampled.
    fn watch(pipeline: &Pipeline) -> Arc<WorstLag> {
        let worst = Arc::new(WorstLag::default());
        let owner_url = pipeline.backends.owner_url.clone();
        let nats_url = pipeline.backends.nats_url();
        let config = xdr_commands::ingest::IngestConfig::with_prefix(&pipeline.prefix);
        let streams = [config.stream_name, config.events_stream_name];
        let w = worst.clone();
        tokio::spawn(async move {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .acquire_timeout(Duration::from_secs(1))
                .connect_lazy(&owner_url)
                .expect("owner URL");
            let nats = async_nats::connect(&nats_url).await.ok().map(async_nats::jetstream::new);
            while !w.stop.load(Ordering::Relaxed) {
                let relay = sqlx::query_scalar::<_, i64>(
                    "SELECT COALESCE(sum(h.last_seq - COALESCE(c.last_seq, 0)), 0)::bigint
                       FROM org_heads h LEFT JOIN relay_checkpoints c USING (org_id)",
                )
                .fetch_one(&pool)
                .await;
                if let Ok(n) = relay {
                    w.relay.fetch_max(n, Ordering::Relaxed);
                }
                let projection = sqlx::query_scalar::<_, i64>(
                    "SELECT COALESCE(max(h.last_seq - c.last_seq), 0)::bigint
                       FROM org_heads h JOIN projection_checkpoints c USING (org_id)",
                )
                .fetch_one(&pool)
                .await;
                if let Ok(n) = projection {
                    w.projection.fetch_max(n, Ordering::Relaxed);
                }
                if let Some(js) = &nats {
                    if let Some(n) = consumer_lag(js, &streams).await {
                        w.consumers.fetch_max(n, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
        worst
    }
}

/// Σ (pending + unacknowledged) over the consumers of `streams`; `None` while NATS is away.
async fn consumer_lag(js: &async_nats::jetstream::Context, streams: &[String]) -> Option<i64> {
    use futures::TryStreamExt;
    let mut total = 0i64;
    for name in streams {
        let stream = tokio::time::timeout(Duration::from_secs(1), js.get_stream(name)).await.ok()?.ok()?;
        let consumers: Vec<_> =
            tokio::time::timeout(Duration::from_secs(1), stream.consumers().try_collect()).await.ok()?.ok()?;
        for info in consumers {
            total += (info.num_pending + info.num_ack_pending as u64) as i64;
        }
    }
    Some(total)
}

/// Σ of one counter over the `/metrics` of every role (the roles' delivery counters).
async fn counter_total(pipeline: &Pipeline, name: &str) -> u64 {
    let mut total = 0u64;
    for role in pipeline.roles.values() {
        let Ok(response) = pipeline.client.get(format!("{}/metrics", role.url())).send().await else { continue };
        let body = response.text().await.unwrap_or_default();
        for line in body.lines().filter(|l| l.starts_with(name)) {
            total += line.rsplit(' ').next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        }
    }
    total
}

impl Pipeline {
    /// `/readyz` of `name`: its status and body, or `None` when nothing answers.
    async fn readiness(&self, name: &str) -> Option<(u16, Value)> {
        let url = format!("{}/readyz", self.roles[name].url());
        let response = self.client.get(url).timeout(Duration::from_secs(5)).send().await.ok()?;
        let status = response.status().as_u16();
        Some((status, response.json().await.unwrap_or(Value::Null)))
    }

    /// Every role in `names` answers `/readyz` with 503 (alive, and saying it cannot work).
    async fn wait_unready(&self, names: &[&str], why: &str) {
        for name in names {
            wait_until(
                &format!("{name} reports not ready while {why}"),
                Duration::from_secs(30),
                || self.logs(),
                || async { self.readiness(name).await.is_some_and(|(status, _)| status == 503) },
            )
            .await;
        }
    }

    /// No role exited: every one recovers by itself.
    fn assert_none_exited(&mut self, fault: Fault) {
        let exited: Vec<String> = self
            .roles
            .values_mut()
            .filter_map(|role| role.exited().map(|status| format!("{} ({status})", role.name)))
            .collect();
        assert!(exited.is_empty(), "roles exited after {}: {exited:?}\n{}", fault.name(), self.logs());
    }

    async fn all_ready(&self) {
        for role in self.roles.values() {
            role.ready().await;
        }
    }
}

/// Every role but the API and the projector needs NATS to do anything.
const NEEDS_NATS: &[&str] = &["ingestor", "relay", "detector-0", "detector-1", "scheduler"];

/// Strike `fault` at a random moment of the load, and check the whole promise.
async fn survives(fault: Fault) {
    let _turn = crate::support::ONE_PIPELINE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut nats = fault.private_nats().then(|| tokio::task::block_in_place(PrivateNats::start));
    let pg = fault.private_postgres().then(|| tokio::task::block_in_place(PrivatePostgres::start));
    let backends = match &pg {
        Some(pg) => Backends::private_postgres(pg, nats.as_ref()),
        None => Backends::shared_postgres(nats.as_ref()).await,
    };
    let mut pipeline = Pipeline::start(dir.path(), backends).await;

    // Half the real-log copies go through NATS (`mini-xdr ingest` → ingestor), half and the
    // brute force over HTTP (→ api).
    let copies = real_log_copies();
    let mut expected = 0usize;
    let mut nats_files = Vec::new();
    for copy in 0..copies / 2 {
        let records = real_log_copy(copy);
        expected += records.len();
        let path = dir.path().join(format!("copy-{copy}.json"));
        let lines: Vec<String> = records.iter().map(Value::to_string).collect();
        std::fs::write(&path, lines.join("\n")).unwrap();
        nats_files.push(path);
    }
    let mut http_batches: Vec<Vec<Value>> = Vec::new();
    for copy in copies / 2..copies {
        let records = real_log_copy(copy);
        expected += records.len();
        http_batches.extend(records.chunks(25).map(<[Value]>::to_vec));
    }
    let brute = brute_force_records();
    expected += brute.len();
    http_batches.extend(brute.chunks(20).map(<[Value]>::to_vec));

    // A random moment within the first second of the load; the NATS outage covers all of
    // the HTTP ingest, so the brute force is committed while NATS is away.
    let delay = match fault {
        Fault::NatsOutage => Duration::ZERO,
        _ => Duration::from_millis((uuid::Uuid::new_v4().as_u128() % 1_000) as u64),
    };
    let worst = WorstLag::watch(&pipeline);
    let fault_at = Instant::now() + delay;
    let mut restored: Option<Instant> = None;

    for path in &nats_files {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mini-xdr"))
            .args(["ingest", "--key", &pipeline.ingest_key, "--source", "cowrie", "--batch", "40"])
            .arg(path)
            .env("XDR_NATS_PREFIX", &pipeline.prefix)
            .env("NATS_URL", pipeline.backends.nats_url())
            .env_remove("XDR_CONFIG")
            .output()
            .unwrap();
        assert!(out.status.success(), "ingest: {}", String::from_utf8_lossy(&out.stderr));
    }
    let mut next = 0;
    while next < http_batches.len() {
        if restored.is_none() && Instant::now() >= fault_at {
            restored = Some(strike(fault, &mut pipeline, pg.as_ref(), nats.as_mut(), &http_batches[next..]).await);
            if matches!(fault, Fault::NatsOutage) {
                break; // every batch was posted during the outage
            }
        }
        pipeline.post_until_accepted("cowrie", &http_batches[next]).await;
        next += 1;
    }
    let restored = match restored {
        Some(at) => at,
        None => strike(fault, &mut pipeline, pg.as_ref(), nats.as_mut(), &[]).await,
    };

    // Back by themselves: no role exited, every one is ready again.
    pipeline.all_ready().await;
    let ready_after = restored.elapsed();
    pipeline.assert_none_exited(fault);

    let expected = expected as i64;
    // Redelivery after a kill waits for the consumer's ack deadline (30 s ingest, 60 s detector).
    wait_until("the pipeline settles", Duration::from_secs(180), || pipeline.logs(), || pipeline.settled(expected))
        .await;
    let recovered_after = restored.elapsed();
    worst.stop.store(true, Ordering::Relaxed);
    pipeline.assert_none_exited(fault);
    let redelivered = counter_total(&pipeline, "xdr_redelivered_messages_total").await;
    let duplicates_ingest = counter_total(&pipeline, "xdr_duplicates_dropped_total{stage=\"ingestor\"}").await;
    let duplicates_detect = counter_total(&pipeline, "xdr_duplicates_dropped_total{stage=\"detector\"}").await;
    eprintln!(
        "FAULT-REPORT | {} | {delay:?} into the load | ready {:.1} s | recovered {:.1} s | redelivered {redelivered} | \
         duplicates dropped: ingestor {duplicates_ingest}, detector {duplicates_detect} | worst lag: relay {}, projection {}, consumers {} |",
        fault.name(),
        ready_after.as_secs_f64(),
        recovered_after.as_secs_f64(),
        worst.relay.load(Ordering::Relaxed),
        worst.projection.load(Ordering::Relaxed),
        worst.consumers.load(Ordering::Relaxed),
    );
    assert_promise_kept(&pipeline, expected, &fault.name()).await;
    if matches!(fault, Fault::Poison) {
        assert_poison_refused(&pipeline).await;
    }
}

/// Each poison message was dead-lettered or refused with its reason, and (the promise kept
/// above) no consumer stopped or stalled behind it.
async fn assert_poison_refused(pipeline: &Pipeline) {
    let letters = dead_letters(pipeline).await;
    let ingest_subject = format!("{}xdr.ingest.cowrie", pipeline.prefix);
    let ingest: Vec<_> = letters.iter().filter(|(subject, _)| subject == &ingest_subject).collect();
    assert_eq!(ingest.len(), POISON_RECORDS, "one dead letter per unparseable record: {letters:?}");
    assert!(ingest.iter().all(|(_, reason)| reason.starts_with("parse error")), "{ingest:?}");
    let event_subject = format!("{}xdr.events.{}.SecurityEventObserved", pipeline.prefix, pipeline.org);
    let events: Vec<_> = letters.iter().filter(|(subject, _)| subject == &event_subject).collect();
    assert!(!events.is_empty(), "the undecodable event is dead-lettered: {letters:?}");
    assert!(events.iter().all(|(_, reason)| !reason.is_empty()), "{events:?}");
    let api_log = pipeline.roles["api"].log();
    assert!(api_log.contains("unreadable order; dropped"), "the API refuses the unknown action:\n{api_log}");
    let unknown = pipeline
        .scalar(
            "SELECT count(*) FROM event_log WHERE org_id = $1::uuid AND event_type LIKE 'Action%'
                AND payload::text LIKE '%format_disk%'",
        )
        .await;
    assert_eq!(unknown, 0, "the unknown action left no trace in the log");
}

/// Inflict `fault`; returns when it is over (the role restarted, the server back).
async fn strike(
    fault: Fault,
    pipeline: &mut Pipeline,
    pg: Option<&PrivatePostgres>,
    nats: Option<&mut PrivateNats>,
    batches_during_outage: &[Vec<Value>],
) -> Instant {
    match fault {
        Fault::Kill9(victim) => {
            pipeline.roles.get_mut(victim).unwrap().kill();
            tokio::time::sleep(Duration::from_millis(500)).await;
            pipeline.roles.get_mut(victim).unwrap().start();
        }
        Fault::PostgresRestart => tokio::task::block_in_place(|| pg.unwrap().restart_fast()),
        Fault::PostgresOutage => {
            let pg = pg.unwrap();
            let down = Instant::now();
            tokio::task::block_in_place(|| pg.stop());
            let all: Vec<&str> = pipeline.roles.keys().copied().collect();
            pipeline.wait_unready(&all, "PostgreSQL is down").await;
            pipeline.assert_none_exited(fault);
            tokio::time::sleep(outage().saturating_sub(down.elapsed())).await;
            pipeline.assert_none_exited(fault);
            tokio::task::block_in_place(|| pg.start_again());
        }
        Fault::NatsRestart => tokio::task::block_in_place(|| nats.unwrap().restart()),
        Fault::NatsOutage => {
            let nats = nats.unwrap();
            let down = Instant::now();
            nats.stop();
            pipeline.wait_unready(NEEDS_NATS, "NATS is down").await;
            // The API keeps accepting: HTTP ingest commits to the log, the relay publishes later.
            let (status, body) = pipeline.readiness("api").await.expect("the API answers");
            assert_eq!((status, &body["nats"]), (200, &json!("disconnected")), "API readiness: {body}");
            for batch in batches_during_outage {
                pipeline.post_until_accepted("cowrie", batch).await;
            }
            // Committed while NATS was away, not yet seen by detection.
            let brute_committed = pipeline
                .scalar(
                    "SELECT count(*) FROM event_log WHERE org_id = $1::uuid AND event_type = 'SecurityEventObserved'
                        AND payload::text LIKE '%203.0.113.%'",
                )
                .await;
            assert_eq!(
                brute_committed,
                (BRUTE_FORCE_SOURCES * FAILURES_PER_SOURCE) as i64,
                "committed during the outage"
            );
            let brute_incidents = pipeline
                .scalar("SELECT count(*) FROM rm_incidents WHERE org_id = $1::uuid AND src_ip LIKE '203.0.113.%'")
                .await;
            assert_eq!(brute_incidents, 0, "detection cannot have seen them while NATS was down");
            tokio::time::sleep(outage().saturating_sub(down.elapsed())).await;
            for name in NEEDS_NATS {
                let (status, _) = pipeline.readiness(name).await.unwrap_or_else(|| panic!("{name} answers"));
                assert_eq!(status, 503, "{name} still not ready at the end of the outage");
            }
            pipeline.assert_none_exited(fault);
            tokio::task::block_in_place(|| nats.start_again());
        }
        Fault::Poison => publish_poison(pipeline).await,
    }
    Instant::now()
}

/// Poison records in the ingest body (each must become one dead letter).
const POISON_RECORDS: usize = 2;

async fn publish_poison(pipeline: &Pipeline) {
    let client = async_nats::connect(pipeline.backends.nats_url()).await.expect("connect to NATS");
    let js = async_nats::jetstream::new(client.clone());
    let ingest = xdr_commands::ingest::IngestConfig::with_prefix(&pipeline.prefix);
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(xdr_commands::ingest::nats_ingestor::HEADER_INGEST_KEY, pipeline.ingest_key.as_str());
    let body = "{this is not json\n[1, 2\n";
    let publish = async_nats::jetstream::context::Publish::build().headers(headers).payload(body.into());
    js.send_publish(ingest.ingest_subject("cowrie"), publish).await.unwrap().await.expect("ingest poison stored");
    let event_subject = format!("{}xdr.events.{}.SecurityEventObserved", pipeline.prefix, pipeline.org);
    js.publish(event_subject, "\u{0}\u{1} not an event".into()).await.unwrap().await.expect("event poison stored");
    let orders = xdr_commands::response::ResponseConfig::with_prefix(&pipeline.prefix);
    let order = json!({"action_id": uuid::Uuid::new_v4(), "org_id": pipeline.org, "attempt": 1,
                       "kind": "format_disk", "target": "192.0.2.10",
                       "issued_at": chrono::Utc::now(), "deadline": chrono::Utc::now() + chrono::Duration::hours(1)});
    let org: uuid::Uuid = pipeline.org.parse().unwrap();
    js.publish(orders.actions_subject(org), order.to_string().into())
        .await
        .unwrap()
        .await
        .expect("order poison stored");
}

/// The (source subject, reason) of every dead letter of the pipeline's DLQ stream.
async fn dead_letters(pipeline: &Pipeline) -> Vec<(String, String)> {
    use futures::StreamExt;
    let client = async_nats::connect(pipeline.backends.nats_url()).await.expect("connect to NATS");
    let js = async_nats::jetstream::new(client);
    let config = xdr_commands::ingest::IngestConfig::with_prefix(&pipeline.prefix);
    let Ok(mut stream) = js.get_stream(&config.dlq_stream_name).await else { return Vec::new() };
    let count = stream.info().await.unwrap().state.messages as usize;
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig::default())
        .await
        .expect("ordered consumer on the DLQ");
    let mut messages = consumer.messages().await.unwrap().take(count);
    let mut out = Vec::new();
    while let Some(Ok(m)) = messages.next().await {
        let header = |name: &str| {
            m.headers.as_ref().and_then(|h| h.get(name)).map(|v| v.as_str().to_owned()).unwrap_or_default()
        };
        out.push((
            header(xdr_commands::ingest::dlq::HEADER_SOURCE_SUBJECT),
            header(xdr_commands::ingest::dlq::HEADER_REASON),
        ));
    }
    out
}

/// Nothing lost, nothing twice, every read model rebuildable, containment once per attempt.
async fn assert_promise_kept(pipeline: &Pipeline, expected: i64, fault: &str) {
    // Nothing lost, nothing twice: one event per record.
    let telemetry = pipeline
        .scalar("SELECT count(*) FROM event_log WHERE org_id = $1::uuid AND event_type = 'SecurityEventObserved'")
        .await;
    assert_eq!(telemetry, expected, "one committed event per record after {fault}");

    // Exactly one incident, high, per brute-force source.
    let incidents = pipeline.incidents().await;
    for ip in brute_force_sources() {
        let list = &incidents[&ip];
        assert_eq!(list.len(), 1, "{ip} after {fault}: {list:?}");
        assert_eq!(list[0].1, "high", "{ip}: {list:?}");
    }
    // Every copy of the real log saw the same incidents.
    let per_copy = incidents_per_copy(&incidents, real_log_copies());
    assert!(!per_copy[0].is_empty(), "the real log opens incidents");
    for (copy, seen) in per_copy.iter().enumerate() {
        assert_eq!(seen, &per_copy[0], "copy {copy} of the real log after {fault}");
    }

    // Containment: one dispatch per (action, attempt), every brute-force block confirmed once.
    let mut conn = pipeline.owner_conn().await;
    let twice: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT payload->>'action_id', payload->>'attempt' FROM event_log
                                 WHERE org_id = $1::uuid AND event_type = 'ActionDispatched'
                                 GROUP BY 1, 2 HAVING count(*) > 1) d",
    )
    .bind(&pipeline.org)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(twice, 0, "an order dispatched twice for one attempt after {fault}");
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
    let verify = pipeline.tool(&["verify", "--org", &pipeline.org]);
    assert!(verify.status.success(), "verify after {fault}: {}", String::from_utf8_lossy(&verify.stdout));
    let live = digest(&pipeline.tool(&["digest", "--org", &pipeline.org]));
    let rebuilt = pipeline.tool(&["rebuild", "--into", "faults_rebuilt", "--org", &pipeline.org]);
    assert!(rebuilt.status.success(), "rebuild --into: {}", String::from_utf8_lossy(&rebuilt.stderr));
    let rebuilt = digest(&pipeline.tool(&["digest", "--org", &pipeline.org, "--schema", "faults_rebuilt"]));
    assert_eq!(live, rebuilt, "read models after {fault} equal a rebuild");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_ingestor_loses_and_doubles_nothing() {
    survives(Fault::Kill9("ingestor")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_relay_loses_and_doubles_nothing() {
    survives(Fault::Kill9("relay")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_projector_loses_and_doubles_nothing() {
    survives(Fault::Kill9("projector")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_one_detector_partition_loses_and_doubles_nothing() {
    survives(Fault::Kill9("detector-1")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_scheduler_loses_and_doubles_nothing() {
    survives(Fault::Kill9("scheduler")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_api_during_http_ingest_loses_and_doubles_nothing() {
    survives(Fault::Kill9("api")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_in_each_stream_is_refused_and_stalls_nothing() {
    survives(Fault::Poison).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_restart_of_postgresql_mid_ingest_loses_and_doubles_nothing() {
    survives(Fault::PostgresRestart).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_down_mid_ingest_makes_every_role_unready_and_none_exits() {
    survives(Fault::PostgresOutage).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_restart_mid_ingest_loses_and_doubles_nothing() {
    survives(Fault::NatsRestart).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_ingest_while_nats_is_down_is_committed_and_detected_once_nats_is_back() {
    survives(Fault::NatsOutage).await;
}
