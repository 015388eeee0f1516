//! What the scale-out tests (`scale_out.rs`) run on: a 3-node JetStream cluster of real
//! `nats-server` processes with the shipped per-role identities, a PostgreSQL primary with a
//! streaming standby, and the whole pipeline (every role its own process) with the fault
//! suite's load and checks.
//!
//! The load and the checks are those of `faults.rs` (brute-force sources, copies of the real
//! Cowrie log, one event per record, one incident per source, one dispatch per attempt,
//! verify, rebuild digest), copied here and generalised to a deployment that is not a
//! `TestDb` (the failover test's database lives on a private primary/standby pair), rather
//! than reshaping `faults.rs` while its own fault tests are being extended.

use serde_json::{json, Value};
use sqlx::{Connection, PgConnection, Row};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use xdr_commands::test_nats::{password_var, shipped_config, ShippedNats, ROLES as NATS_USERS};

use crate::load::{brute_force_records, digest, incidents_per_copy, real_log_copy};
pub use crate::load::{brute_force_sources, BRUTE_FORCE_SOURCES};
use crate::support::{free_port, wait_until, Process, Role, JWT_SECRET};

pub const REAL_LOG_COPIES: usize = 4;
const ROLES: &[(&str, &[&str])] = &[
    ("api", &["api"]),
    ("ingestor", &["ingestor"]),
    ("relay", &["relay"]),
    ("projector", &["projector"]),
    ("detector-0", &["detector", "--partitions", "2", "--partition", "0"]),
    ("detector-1", &["detector", "--partitions", "2", "--partition", "1"]),
    ("scheduler", &["scheduler"]),
];

/// Every role's NATS password, as the servers were given them.
pub fn nats_passwords() -> Vec<(String, String)> {
    NATS_USERS.iter().map(|role| (password_var(role), ShippedNats::password_of(role))).collect()
}

// ---------------------------------------------------------------------------------------
// NATS cluster

/// One `nats-server` of the cluster; restartable with the same name, ports and store.
pub struct NatsNode {
    pub name: String,
    pub port: u16,
    pub monitor_port: u16,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

impl NatsNode {
    fn start(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let binary = std::env::var("XDR_NATS_SERVER").unwrap_or_else(|_| "/usr/sbin/nats-server".into());
        let mut command = Command::new(&binary);
        command.args(&self.args).stdout(Stdio::null()).stderr(log);
        for (var, password) in nats_passwords() {
            command.env(var, password);
        }
        self.child = Some(command.spawn().unwrap_or_else(|e| panic!("start {binary}: {e}")));
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for NatsNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Three `nats-server`s with the shipped config (`deploy/nats`, per-role users), clustered
/// over loopback routes, JetStream in a store directory each.
pub struct NatsCluster {
    pub nodes: Vec<NatsNode>,
}

impl NatsCluster {
    pub async fn start(dir: &Path, size: usize) -> NatsCluster {
        let cluster_ports: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let routes: Vec<String> = cluster_ports.iter().map(|p| format!("nats://127.0.0.1:{p}")).collect();
        let mut nodes = Vec::new();
        for (i, cluster_port) in cluster_ports.iter().enumerate() {
            let (port, monitor_port) = (free_port(), free_port());
            let name = format!("n{i}");
            let store = dir.join(format!("nats-{name}"));
            let args = vec![
                "-c".to_owned(),
                shipped_config().display().to_string(),
                "-a".to_owned(),
                "127.0.0.1".to_owned(),
                "-p".to_owned(),
                port.to_string(),
                "-m".to_owned(),
                monitor_port.to_string(),
                "-sd".to_owned(),
                store.display().to_string(),
                "--server_name".to_owned(),
                name.clone(),
                "--cluster_name".to_owned(),
                "xdr-test".to_owned(),
                "--cluster".to_owned(),
                format!("nats://127.0.0.1:{cluster_port}"),
                "--routes".to_owned(),
                routes.join(","),
            ];
            let log = dir.join(format!("nats-{name}.log"));
            let mut node = NatsNode { name, port, monitor_port, args, log, child: None };
            node.start();
            nodes.push(node);
        }
        let cluster = NatsCluster { nodes };
        cluster.wait_for_meta_leader().await;
        cluster
    }

    /// `nats://a,nats://b,nats://c`: what the roles get as `NATS_URL`.
    pub fn url(&self) -> String {
        self.nodes.iter().map(|n| format!("nats://127.0.0.1:{}", n.port)).collect::<Vec<_>>().join(",")
    }

    pub fn restart(&mut self, i: usize) {
        self.nodes[i].start();
    }

    pub fn logs(&self) -> String {
        self.nodes.iter().map(|n| format!("--- nats {}\n{}", n.name, tail(&n.log(), 10))).collect()
    }

    /// `/jsz` of a running node.
    async fn jsz(&self, node: &NatsNode) -> Option<Value> {
        let url = format!("http://127.0.0.1:{}/jsz", node.monitor_port);
        reqwest::get(url).await.ok()?.json().await.ok()
    }

    /// Every running node knows the JetStream meta leader and is healthy (JetStream current).
    pub async fn wait_for_meta_leader(&self) {
        wait_until(
            "the JetStream meta leader is elected",
            Duration::from_secs(60),
            || self.logs(),
            || async {
                for node in self.nodes.iter().filter(|n| n.is_running()) {
                    let health = reqwest::get(format!("http://127.0.0.1:{}/healthz", node.monitor_port)).await;
                    if !health.is_ok_and(|r| r.status().is_success()) {
                        return false;
                    }
                    let leader =
                        self.jsz(node).await.and_then(|j| j["meta_cluster"]["leader"].as_str().map(str::to_owned));
                    if leader.is_none_or(|l| l.is_empty()) {
                        return false;
                    }
                }
                true
            },
        )
        .await;
    }

    /// The meta leader's name, as a running node sees it.
    pub async fn meta_leader(&self) -> Option<String> {
        for node in self.nodes.iter().filter(|n| n.is_running()) {
            if let Some(leader) =
                self.jsz(node).await.and_then(|j| j["meta_cluster"]["leader"].as_str().map(str::to_owned))
            {
                return Some(leader);
            }
        }
        None
    }

    pub fn index_of(&self, name: &str) -> usize {
        self.nodes.iter().position(|n| n.name == name).unwrap_or_else(|| panic!("no node {name}"))
    }

    /// A client of a running node, as `role`.
    pub async fn connect_as(&self, role: &str) -> async_nats::Client {
        async_nats::ConnectOptions::new()
            .user_and_password(role.to_owned(), ShippedNats::password_of(role))
            .custom_inbox_prefix(format!("_INBOX.{role}"))
            // Short, so a request stuck on the killed server does not hide the election.
            .request_timeout(Some(Duration::from_secs(1)))
            .connect(self.url().split(',').map(str::to_owned).collect::<Vec<_>>())
            .await
            .unwrap_or_else(|e| panic!("connect to the cluster as {role}: {e}"))
    }
}

/// (leader, replicas) of `stream`, looked up as `role` (a role allowed its STREAM.INFO).
pub async fn stream_placement(js: &async_nats::jetstream::Context, stream: &str) -> Option<(String, usize)> {
    let mut stream = js.get_stream(stream).await.ok()?;
    let info = stream.info().await.ok()?;
    let cluster = info.cluster.clone()?;
    Some((cluster.leader.clone()?, info.config.num_replicas))
}

// ---------------------------------------------------------------------------------------
// PostgreSQL primary and standby

/// Whether the PostgreSQL server tools (`initdb`, `pg_ctl`, `pg_basebackup`) and `psql` are installed.
pub fn pg_tools_available() -> bool {
    ["initdb", "pg_ctl", "pg_basebackup"].iter().all(|t| pg_bin(t).is_absolute())
        && Command::new("psql").arg("--version").output().is_ok_and(|o| o.status.success())
}

fn pg_bin(tool: &str) -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path().join("bin").join(tool)).filter(|p| p.exists()).collect())
        .unwrap_or_default();
    versions.sort();
    versions.pop().unwrap_or_else(|| PathBuf::from(tool))
}

/// The uid and gid PostgreSQL runs as: ours, or `postgres`'s when we are root (the server
/// refuses to run as root).
fn pg_user() -> Option<(u32, u32)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid: u32 = status.lines().find(|l| l.starts_with("Uid:"))?.split_whitespace().nth(1)?.parse().ok()?;
    if uid != 0 {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let line = passwd.lines().find(|l| l.starts_with("postgres:"))?;
    let fields: Vec<&str> = line.split(':').collect();
    Some((fields[2].parse().ok()?, fields[3].parse().ok()?))
}

fn pg_command(tool: &str) -> Command {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(pg_bin(tool));
    if let Some((uid, gid)) = pg_user() {
        command.uid(uid).gid(gid);
    }
    command.env_remove("PGDATA").stdin(Stdio::null());
    command
}

fn run(mut command: Command, what: &str) {
    let out = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One PostgreSQL server of the pair (its own data directory, port and socket directory).
pub struct PgServer {
    pub port: u16,
    /// More `-c name=value` settings on the command line.
    settings: String,
    data: PathBuf,
    log: PathBuf,
    running: bool,
}

impl PgServer {
    fn pg_ctl(&self, args: &[&str]) -> Command {
        let mut command = pg_command("pg_ctl");
        command.arg("-D").arg(&self.data).args(args);
        command
    }

    fn start(&mut self) {
        let socket_dir = self.data.parent().unwrap().display().to_string();
        let options = format!("-p {} -k {socket_dir} -c listen_addresses=127.0.0.1 {}", self.port, self.settings);
        let mut command = self.pg_ctl(&["-w", "-t", "60", "-o", &options, "-l"]);
        command.arg(&self.log).arg("start");
        run(command, "pg_ctl start");
        self.running = true;
    }

    /// `pg_ctl stop -m immediate`: the server is gone at once, like a crashed host.
    pub fn stop_immediately(&mut self) {
        run(self.pg_ctl(&["-w", "-m", "immediate", "stop"]), "pg_ctl stop");
        self.running = false;
    }

    pub fn promote(&self) {
        run(self.pg_ctl(&["-w", "-t", "60", "promote"]), "pg_ctl promote");
    }

    pub fn owner_url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if self.running {
            let _ = self.pg_ctl(&["-w", "-m", "immediate", "stop"]).output();
        }
    }
}

/// A primary (`wal_level=replica`, replication allowed from loopback, trust auth) and a
/// standby streaming from it, made with `pg_basebackup -R`. With `synchronous`, a commit on
/// the primary returns once the standby has flushed it (`synchronous_standby_names = '*'`);
/// the standby itself waits for nobody, so once promoted it commits alone.
pub struct PgPair {
    pub primary: PgServer,
    pub standby: PgServer,
    _dir: tempfile::TempDir,
}

impl PgPair {
    pub fn start(synchronous: bool) -> PgPair {
        let dir = tempfile::tempdir().unwrap();
        if let Some((uid, gid)) = pg_user() {
            let out = Command::new("chown").arg(format!("{uid}:{gid}")).arg(dir.path()).output().unwrap();
            assert!(out.status.success(), "chown the PostgreSQL directory");
        }
        let mut primary = PgServer {
            port: free_port(),
            settings: if synchronous { "-c synchronous_standby_names=*".into() } else { String::new() },
            data: dir.path().join("primary"),
            log: dir.path().join("primary.log"),
            running: false,
        };
        let mut initdb = pg_command("initdb");
        initdb.arg("-D").arg(&primary.data).args(["-U", "postgres", "--auth=trust", "-N", "-E", "UTF8"]);
        run(initdb, "initdb");
        let conf = "\nwal_level = replica\nmax_wal_senders = 5\nwal_keep_size = '256MB'\nhot_standby = on\n\
                    fsync = off\nmax_connections = 200\n";
        append(&primary.data.join("postgresql.conf"), conf);
        append(&primary.data.join("pg_hba.conf"), "\nhost replication all 127.0.0.1/32 trust\n");
        primary.start();
        let standby = PgServer {
            port: free_port(),
            settings: "-c synchronous_standby_names=".into(),
            data: dir.path().join("standby"),
            log: dir.path().join("standby.log"),
            running: false,
        };
        let mut backup = pg_command("pg_basebackup");
        backup
            .args(["-h", "127.0.0.1", "-p", &primary.port.to_string(), "-U", "postgres", "-X", "stream", "-R", "-D"])
            .arg(&standby.data);
        run(backup, "pg_basebackup");
        let mut pair = PgPair { primary, standby, _dir: dir };
        pair.standby.start();
        pair
    }

    pub fn logs(&self) -> String {
        format!("--- primary\n{}--- standby\n{}", tail(&self.primary.log(), 10), tail(&self.standby.log(), 10))
    }
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    std::fs::OpenOptions::new().append(true).open(path).unwrap().write_all(text.as_bytes()).unwrap();
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().rev().take(n).collect();
    lines.into_iter().rev().map(|l| format!("{l}\n")).collect()
}

// ---------------------------------------------------------------------------------------
// The pipeline

/// Where the roles run: their environment, and the owner's URL of the database for the
/// checks and the operator's tools (`verify`, `digest`, `rebuild`).
pub struct Deployment {
    pub env: Vec<(String, String)>,
    /// Changed by a failover (the promoted standby's).
    pub owner_url: std::sync::RwLock<String>,
    /// `NATS_URL` for `mini-xdr ingest`, and the producer's password, if any.
    pub producer_env: Vec<(String, String)>,
}

pub struct Pipeline {
    pub deployment: Deployment,
    pub roles: BTreeMap<&'static str, Role>,
    client: reqwest::Client,
    token: String,
    pub org: String,
    pub ingest_key: String,
    _agent: Option<Process>,
    agent_log: PathBuf,
}

impl Pipeline {
    pub async fn start(dir: &Path, deployment: Deployment) -> Pipeline {
        let mut env_owned = deployment.env.clone();
        env_owned.push(("JWT_SECRET_KEY".into(), JWT_SECRET.to_owned()));
        let env: Vec<(&str, &str)> = env_owned.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
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
            deployment,
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

    pub fn logs(&self) -> String {
        let mut out = String::new();
        for role in self.roles.values() {
            out.push_str(&format!("--- {} (last lines)\n{}", role.name, tail(&role.log(), 15)));
        }
        out.push_str(&format!("--- agent\n{}", std::fs::read_to_string(&self.agent_log).unwrap_or_default()));
        out
    }

    async fn gql(&self, query: &str) -> Value {
        let request = self.client.post(format!("{}/graphql", self.api())).bearer_auth(&self.token);
        let out: Value = request.json(&json!({ "query": query })).send().await.unwrap().json().await.unwrap();
        assert!(out.get("errors").is_none(), "{query}: {out}");
        out["data"].clone()
    }

    async fn set_up_org(&mut self) {
        let body = json!({"organization_name": "Scale", "admin_email": "admin@scale.test",
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
        let agent = Command::new(env!("CARGO_BIN_EXE_mini-xdr"))
            .args(["agent", "--server", &self.api(), "--backend", "dry-run"])
            .env("XDR_AGENT_KEY", &agent_key)
            .env_remove("XDR_CONFIG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&self.agent_log).unwrap())
            .spawn()
            .expect("start the agent");
        self._agent = Some(Process(agent));
    }

    /// Records over HTTP, retried until the API answers.
    pub async fn post_until_accepted(&self, records: &[Value]) {
        let body = json!({"source_type": "cowrie", "hostname": "lab", "events": records});
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

    /// `mini-xdr ingest` of a file through NATS (the producer's side).
    pub fn publish_file(&self, path: &Path) {
        let out = Command::new(env!("CARGO_BIN_EXE_mini-xdr"))
            .args(["ingest", "--key", &self.ingest_key, "--source", "cowrie", "--batch", "40"])
            .arg(path)
            .envs(self.deployment.producer_env.iter().map(|(k, v)| (k, v)))
            .env_remove("XDR_CONFIG")
            .output()
            .unwrap();
        assert!(out.status.success(), "ingest: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn owner_url(&self) -> String {
        self.deployment.owner_url.read().unwrap().clone()
    }

    /// Point the checks and tools at another server (the promoted standby).
    pub fn set_owner_url(&self, url: String) {
        *self.deployment.owner_url.write().unwrap() = url;
    }

    async fn owner(&self) -> Option<PgConnection> {
        let url = self.owner_url();
        tokio::time::timeout(Duration::from_secs(3), PgConnection::connect(&url)).await.ok()?.ok()
    }

    /// A count for this org, or -1 while the database does not answer.
    pub async fn scalar(&self, sql: &str) -> i64 {
        let Some(mut conn) = self.owner().await else { return -1 };
        sqlx::query_scalar(sql).bind(&self.org).fetch_one(&mut conn).await.unwrap_or(-1)
    }

    pub async fn telemetry(&self) -> i64 {
        self.scalar("SELECT count(*) FROM event_log WHERE org_id = $1::uuid AND event_type = 'SecurityEventObserved'")
            .await
    }

    async fn projected(&self) -> bool {
        let behind = self
            .scalar(
                "SELECT count(*) FILTER (WHERE c.last_seq < h.last_seq) + (10 - count(*))
                   FROM org_heads h JOIN projection_checkpoints c USING (org_id) WHERE h.org_id = $1::uuid",
            )
            .await;
        behind == 0
    }

    /// Events the projections have still to apply (the worst of the ten), -1 if unknown.
    pub async fn projection_lag(&self) -> i64 {
        self.scalar(
            "SELECT COALESCE(max(h.last_seq - COALESCE(c.last_seq, 0)), -1)
               FROM org_heads h LEFT JOIN projection_checkpoints c USING (org_id) WHERE h.org_id = $1::uuid",
        )
        .await
    }

    pub async fn incidents(&self) -> BTreeMap<String, Vec<(String, String)>> {
        let mut by_source: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        let Some(mut conn) = self.owner().await else { return by_source };
        let rows = sqlx::query("SELECT src_ip, category, severity FROM rm_incidents WHERE org_id = $1::uuid")
            .bind(&self.org)
            .fetch_all(&mut conn)
            .await
            .unwrap_or_default();
        for row in rows {
            by_source.entry(row.get(0)).or_default().push((row.get(1), row.get(2)));
        }
        for list in by_source.values_mut() {
            list.sort();
        }
        by_source
    }

    async fn settled(&self, expected_telemetry: i64) -> bool {
        if self.telemetry().await < expected_telemetry {
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
        let copies = incidents_per_copy(&incidents, REAL_LOG_COPIES);
        confirmed >= BRUTE_FORCE_SOURCES as i64 && copies.iter().all(|c| c == &copies[0]) && self.projected().await
    }

    /// `mini-xdr ARGS` as the operator, against the owner's URL.
    pub fn tool(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_mini-xdr"))
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("XDR_MIGRATE_DATABASE_URL", self.owner_url())
            .env("DATABASE_URL", self.owner_url())
            .env_remove("XDR_CONFIG")
            .output()
            .expect("run mini-xdr")
    }

    /// "duplicate records dropped" lines of the ingestor's log, summed.
    pub fn duplicates_dropped(&self) -> u64 {
        self.roles["ingestor"]
            .log()
            .lines()
            .filter(|l| l.contains("duplicate records dropped"))
            .filter_map(|l| match serde_json::from_str::<serde_json::Value>(l) {
                // JSON lines (the default when stderr is a file), or text (`XDR_LOG_FORMAT=text`).
                Ok(line) => line["duplicates"].as_u64(),
                Err(_) => l.split("duplicates=").nth(1)?.split_whitespace().next()?.parse::<u64>().ok(),
            })
            .sum()
    }
}

/// The load of the fault suite, split so a fault can strike between the halves.
pub struct Load {
    pub expected: i64,
    nats_files: Vec<PathBuf>,
    http_batches: Vec<Vec<Value>>,
}

impl Load {
    pub fn new(dir: &Path) -> Load {
        let mut expected = 0usize;
        let mut nats_files = Vec::new();
        for copy in 0..REAL_LOG_COPIES / 2 {
            let records = real_log_copy(copy);
            expected += records.len();
            let path = dir.join(format!("copy-{copy}.json"));
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
        Load { expected: expected as i64, nats_files, http_batches }
    }

    /// Before the fault: the first copy through NATS (the ingestor works through it in the
    /// background) and the first `split` HTTP batches.
    pub async fn first_part(&self, pipeline: &Pipeline, split: usize) {
        pipeline.publish_file(&self.nats_files[0]);
        for batch in &self.http_batches[..split.min(self.http_batches.len())] {
            pipeline.post_until_accepted(batch).await;
        }
    }

    /// After the fault: the other copies through NATS, the rest over HTTP.
    pub async fn rest(&self, pipeline: &Pipeline, split: usize) {
        for path in &self.nats_files[1..] {
            pipeline.publish_file(path);
        }
        for batch in &self.http_batches[split.min(self.http_batches.len())..] {
            pipeline.post_until_accepted(batch).await;
        }
    }

    pub fn http_batches(&self) -> usize {
        self.http_batches.len()
    }
}

/// Wait for the pipeline to settle, then check the whole promise after `fault`.
pub async fn assert_nothing_lost_nothing_twice(
    pipeline: &Pipeline,
    load: &Load,
    fault: &str,
    context: impl Fn() -> String,
) {
    let started = Instant::now();
    while !pipeline.settled(load.expected).await {
        if started.elapsed() > Duration::from_secs(240) {
            let blocks =
                "SELECT count(*) FROM rm_active_blocks b WHERE b.org_id = $1::uuid AND b.ip LIKE '203.0.113.%'";
            let state = format!(
                "telemetry {} of {}, incidents {:?}, confirmed blocks {}, projection lag {}",
                pipeline.telemetry().await,
                load.expected,
                pipeline.incidents().await,
                pipeline.scalar(blocks).await,
                pipeline.projection_lag().await
            );
            panic!("the pipeline did not settle after {fault}: {state}\n{}{}", pipeline.logs(), context());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let telemetry = pipeline.telemetry().await;
    assert_eq!(telemetry, load.expected, "one committed event per record after {fault}");
    let incidents = pipeline.incidents().await;
    for ip in brute_force_sources() {
        let list = &incidents[&ip];
        assert_eq!(list.len(), 1, "{ip} after {fault}: {list:?}");
        assert_eq!(list[0].1, "high", "{ip}: {list:?}");
    }
    let per_copy = incidents_per_copy(&incidents, REAL_LOG_COPIES);
    assert!(!per_copy[0].is_empty(), "the real log opens incidents");
    for (copy, seen) in per_copy.iter().enumerate() {
        assert_eq!(seen, &per_copy[0], "copy {copy} of the real log after {fault}");
    }
    let twice = pipeline
        .scalar(
            "SELECT count(*) FROM (SELECT payload->>'action_id', payload->>'attempt' FROM event_log
                                     WHERE org_id = $1::uuid AND event_type = 'ActionDispatched'
                                     GROUP BY 1, 2 HAVING count(*) > 1) d",
        )
        .await;
    assert_eq!(twice, 0, "an order dispatched twice for one attempt after {fault}");
    let succeeded = pipeline
        .scalar(
            "SELECT count(DISTINCT payload->>'action_id') FROM event_log
              WHERE org_id = $1::uuid AND event_type = 'ActionSucceeded'",
        )
        .await;
    assert!(succeeded >= BRUTE_FORCE_SOURCES as i64, "blocks confirmed: {succeeded}");
    let verify = pipeline.tool(&["verify", "--org", &pipeline.org]);
    assert!(verify.status.success(), "verify after {fault}: {}", String::from_utf8_lossy(&verify.stdout));
    let live = digest(&pipeline.tool(&["digest", "--org", &pipeline.org]));
    let rebuilt = pipeline.tool(&["rebuild", "--into", "scale_rebuilt", "--org", &pipeline.org]);
    assert!(rebuilt.status.success(), "rebuild --into: {}", String::from_utf8_lossy(&rebuilt.stderr));
    let rebuilt = digest(&pipeline.tool(&["digest", "--org", &pipeline.org, "--schema", "scale_rebuilt"]));
    assert_eq!(live, rebuilt, "read models after {fault} equal a rebuild");
}

/// Sample the worst projection lag until `stop` is set.
pub async fn watch_lag(pipeline: &Pipeline, stop: &std::sync::atomic::AtomicBool) -> i64 {
    let mut worst = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        worst = worst.max(pipeline.projection_lag().await);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    worst
}

/// A random index in `0..n` (where in the load the fault strikes).
pub fn random_below(n: usize) -> usize {
    (uuid::Uuid::new_v4().as_u128() % n.max(1) as u128) as usize
}

/// How long `done` took to hold, polling.
pub async fn time_until<F, Fut>(limit: Duration, mut done: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < limit {
        if done().await {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}
