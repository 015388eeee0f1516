//! What the binary's tests share: free ports, child processes killed with `kill -9` when
//! dropped, roles that can be started, killed and restarted, and waiting for a condition.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use xdr_commands::testing::TestDb;

/// The JWT secret every spawned API of these tests signs with.
pub const JWT_SECRET: &str = "it-secret-0123456789abcdef0123456789";

/// A path inside the repository.
pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A unique NATS subject and stream prefix, so tests share the server without sharing streams.
pub fn nats_prefix() -> String {
    format!("t{}.", uuid::Uuid::new_v4().simple())
}

/// `mini-xdr ARGS` against a test database, to completion.
#[allow(dead_code)] // the suites that used it run against servers of their own now
pub fn mini_xdr(db: &TestDb, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mini-xdr"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .envs(db.env())
        .env_remove("XDR_CONFIG")
        .output()
        .expect("run mini-xdr")
}

/// A child process killed (SIGKILL, no shutdown hook runs) when dropped.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One `mini-xdr` role: its arguments and environment, its own probe port, a log file that
/// survives restarts.
pub struct Role {
    pub name: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    pub port: u16,
    log: PathBuf,
    process: Option<Process>,
}

impl Role {
    pub fn new(name: &str, args: &[&str], env: &[(&str, &str)], dir: &Path) -> Role {
        Role {
            name: name.to_owned(),
            args: args.iter().map(|a| a.to_string()).collect(),
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            port: free_port(),
            log: dir.join(format!("{name}.log")),
            process: None,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Start the process (again), appending to its log.
    pub fn start(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_mini-xdr"));
        command
            .args(&self.args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("XDR_BIND", format!("127.0.0.1:{}", self.port))
            .env("RUST_LOG", "info,sqlx=warn")
            .env_remove("XDR_CONFIG")
            .env_remove("XDR_MODELS_DIR")
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in &self.env {
            command.env(k, v);
        }
        self.process = Some(Process(command.spawn().unwrap_or_else(|e| panic!("start {}: {e}", self.name))));
    }

    /// Wait until `/readyz` answers 200.
    pub async fn ready(&self) {
        let client = reqwest::Client::new();
        let started = Instant::now();
        loop {
            let ready = client.get(format!("{}/readyz", self.url())).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "{} not ready:\n{}", self.name, self.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// How the process ended, if it has (a role that exits on a dependency failure).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.process.as_mut().and_then(|p| p.0.try_wait().ok().flatten())
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        self.process.take();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Poll `done` every 200 ms until it holds; after `limit`, fail with `what` and `context()`.
pub async fn wait_until<F, Fut>(what: &str, limit: Duration, context: impl Fn() -> String, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !done().await {
        assert!(started.elapsed() < limit, "{what}: timed out after {limit:?}\n{}", context());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One whole pipeline under fault at a time (fault suite, scale-out): each starts eight
/// processes (some a server of their own), and two at once on a 2-core runner exhaust
/// PostgreSQL's connections and blur the recovery numbers.
pub static ONE_PIPELINE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
