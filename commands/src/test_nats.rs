//! Test support: a real `nats-server` started with the shipped configuration
//! (`deploy/nats/nats-server.conf` and its `accounts.conf`, per-role users and subject
//! permissions) on a free port, with a store directory of its own; killed when dropped.
//! `XDR_NATS_SERVER` names the binary (default `/usr/sbin/nats-server`).

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The roles of `accounts.conf`, as user names.
pub const ROLES: [&str; 6] = ["producer", "ingestor", "relay", "detector", "api", "scheduler"];

pub struct ShippedNats {
    pub port: u16,
    child: Child,
    store_dir: PathBuf,
}

/// The repository's `deploy/nats/nats-server.conf`.
pub fn shipped_config() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/nats/nats-server.conf")
}

/// The variable a role's password is read from, by server and client alike.
pub fn password_var(role: &str) -> String {
    format!("XDR_NATS_{}_PASSWORD", role.to_ascii_uppercase())
}

impl ShippedNats {
    pub fn start() -> ShippedNats {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().unwrap().port();
        let store_dir = std::env::temp_dir().join(format!("xdr-nats-{}", uuid::Uuid::new_v4().simple()));
        let binary = std::env::var("XDR_NATS_SERVER").unwrap_or_else(|_| "/usr/sbin/nats-server".into());
        let mut command = Command::new(&binary);
        command
            .arg("-c")
            .arg(shipped_config())
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(&store_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for role in ROLES {
            command.env(password_var(role), Self::password_of(role));
        }
        let child = command.spawn().unwrap_or_else(|e| panic!("start {binary}: {e}"));
        let server = ShippedNats { port, child, store_dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server with the shipped config did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The test password of a role (the server got the same in its environment).
    pub fn password_of(role: &str) -> String {
        format!("test-{role}-password")
    }

    /// Connect as `role`, as `mini-xdr` does: user `<role>`, inbox prefix `_INBOX.<role>`.
    /// Server errors (permission violations) are sent to `errors`.
    pub async fn connect_as(
        &self,
        role: &str,
        errors: Option<tokio::sync::mpsc::UnboundedSender<String>>,
    ) -> async_nats::Client {
        let mut options = async_nats::ConnectOptions::new()
            .user_and_password(role.to_owned(), Self::password_of(role))
            .custom_inbox_prefix(format!("_INBOX.{role}"));
        if let Some(errors) = errors {
            options = options.event_callback(move |event| {
                let errors = errors.clone();
                async move {
                    if let async_nats::Event::ServerError(e) = event {
                        let _ = errors.send(e.to_string());
                    }
                }
            });
        }
        options.connect(self.url()).await.unwrap_or_else(|e| panic!("connect as {role}: {e}"))
    }
}

impl Drop for ShippedNats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.store_dir);
    }
}
