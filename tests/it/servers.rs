//! Private PostgreSQL and NATS servers for the fault suite: started by the test on free
//! ports, stopped, restarted and paused by it, and removed when dropped. The shared servers
//! of the other tests are never touched.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{free_port, repo, Process};

/// The login that owns the cluster files (PostgreSQL refuses to run as root).
const CLUSTER_USER: &str = "postgres";
/// The runtime logins, made by `deploy/db-logins.sql` as an operator makes them.
const API_LOGIN: &str = "mini_xdr_api";
const WORKER_LOGIN: &str = "mini_xdr_worker";

/// A PostgreSQL cluster of its own (`initdb`, trust authentication on 127.0.0.1, socket in
/// its own directory), migrated by `mini-xdr migrate`, with the runtime logins of
/// `deploy/db-logins.sql`.
pub struct PrivatePostgres {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
}

impl PrivatePostgres {
    pub fn start() -> PrivatePostgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries in /usr/lib/postgresql")
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin"))
            .filter(|p| p.join("initdb").is_file())
            .max()
            .expect("an initdb in /usr/lib/postgresql/*/bin");
        let dir = std::env::temp_dir().join(format!("xdr-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(dir.join("socket")).unwrap();
        let chown = Command::new("chown").args(["-R", CLUSTER_USER]).arg(&dir).status().unwrap();
        assert!(chown.success(), "chown {}", dir.display());
        let server = PrivatePostgres { port: free_port(), dir, bin };
        server.as_cluster_user(
            "initdb",
            &["-A", "trust", "-U", "postgres", "--no-sync", "-D", &server.data_dir(), "--encoding", "UTF8"],
        );
        // Fast shutdowns and restarts are what the suite measures, not fsync.
        std::fs::write(
            server.dir.join("data/postgresql.auto.conf"),
            format!(
                "port = {}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nfsync = off\n\
                 max_connections = 200\n",
                server.port,
                server.dir.join("socket").display()
            ),
        )
        .unwrap();
        server.start_again();
        server.psql("postgres", &["-c", "CREATE DATABASE xdr"]);
        let migrate = Command::new(env!("CARGO_BIN_EXE_mini-xdr"))
            .arg("migrate")
            .current_dir(repo(""))
            .env("XDR_MIGRATE_DATABASE_URL", server.owner_url())
            .env("DATABASE_URL", server.owner_url())
            .env_remove("XDR_CONFIG")
            .output()
            .unwrap();
        assert!(migrate.status.success(), "migrate: {}", String::from_utf8_lossy(&migrate.stderr));
        let logins = repo("deploy/db-logins.sql");
        server.psql(
            "xdr",
            &[
                "-v",
                &format!("api_login={API_LOGIN}"),
                "-v",
                "api_password=fault-api-password",
                "-v",
                &format!("worker_login={WORKER_LOGIN}"),
                "-v",
                "worker_password=fault-worker-password",
                "-f",
                logins.to_str().unwrap(),
            ],
        );
        server
    }

    fn data_dir(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn as_cluster_user(&self, tool: &str, args: &[&str]) {
        let out = Command::new("runuser")
            .args(["-u", CLUSTER_USER, "--"])
            .arg(self.bin.join(tool))
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn pg_ctl(&self, args: &[&str]) {
        let (data, log) = (self.data_dir(), self.dir.join("server.log").display().to_string());
        let mut all = vec!["-D", data.as_str(), "-l", log.as_str()];
        all.extend_from_slice(args);
        self.as_cluster_user("pg_ctl", &all);
    }

    fn psql(&self, database: &str, args: &[&str]) {
        let out = Command::new("psql")
            .arg(format!("postgres://postgres@127.0.0.1:{}/{database}", self.port))
            .args(["-q", "-v", "ON_ERROR_STOP=1"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "psql {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// The owner's URL (migrations, the operator's tools, inspection by the test).
    pub fn owner_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/xdr", self.port)
    }

    /// The environment of a `mini-xdr` role, as production sets it (docs/OPERATIONS.md).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let at = format!("127.0.0.1:{}/xdr", self.port);
        vec![
            ("DATABASE_URL", format!("postgres://{WORKER_LOGIN}:fault-worker-password@{at}")),
            ("XDR_API_DATABASE_URL", format!("postgres://{API_LOGIN}:fault-api-password@{at}")),
            ("XDR_MIGRATE_DATABASE_URL", self.owner_url()),
        ]
    }

    /// `pg_ctl -m fast restart`: every session is ended, the server is back when this returns.
    pub fn restart_fast(&self) {
        self.pg_ctl(&["-m", "fast", "-w", "restart"]);
    }

    /// `pg_ctl -m fast stop`: the server is down (connections refused) until `start_again`.
    pub fn stop(&self) {
        self.pg_ctl(&["-m", "fast", "-w", "stop"]);
    }

    pub fn start_again(&self) {
        self.pg_ctl(&["-w", "-t", "60", "start"]);
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", CLUSTER_USER, "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", &self.data_dir(), "-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A `nats-server -js` of its own, whose store directory survives restarts (the streams and
/// consumers persist, as in production).
pub struct PrivateNats {
    pub port: u16,
    store_dir: PathBuf,
    log: PathBuf,
    process: Option<Process>,
}

impl PrivateNats {
    pub fn start() -> PrivateNats {
        let store_dir = std::env::temp_dir().join(format!("xdr-nats-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&store_dir).unwrap();
        let log = store_dir.join("server.log");
        let mut server = PrivateNats { port: free_port(), store_dir, log, process: None };
        server.start_again();
        server
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Start the server (again) on the same port and store.
    pub fn start_again(&mut self) {
        let binary = std::env::var("XDR_NATS_SERVER").unwrap_or_else(|_| "/usr/sbin/nats-server".into());
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let child = Command::new(&binary)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-js", "-sd"])
            .arg(self.store_dir.join("js"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {binary}: {e}"));
        self.process = Some(Process(child));
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not listen on {}", self.port);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stop the server the hard way (`kill -9`): clients see the connection drop.
    pub fn stop(&mut self) {
        self.process.take();
    }

    /// Stop the server as an operator does (SIGTERM, it flushes and closes its clients), then
    /// start it again.
    pub fn restart(&mut self) {
        if let Some(mut process) = self.process.take() {
            let pid = process.0.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let _ = process.0.wait();
        }
        self.start_again();
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        self.process.take();
        let _ = std::fs::remove_dir_all(&self.store_dir);
    }
}
