//! `mini-xdr ingest-key create`, `mini-xdr ingestor` and `mini-xdr ingest` as an operator
//! uses them: the key printed once lets the file through NATS into the org's log, and
//! `ingest-key revoke` shuts the producer out.

use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;
use uuid::Uuid;
use xdr_commands::testing::TestDb;

struct Env {
    db: TestDb,
    prefix: String,
}

impl Env {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_mini-xdr"));
        c.args(args)
            .envs(self.db.env())
            .env("XDR_NATS_PREFIX", &self.prefix)
            .env("XDR_BIND", "127.0.0.1:0")
            .env_remove("XDR_CONFIG")
            .env("RUST_LOG", "warn");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = self.cmd(args).output().expect("run mini-xdr");
        assert!(
            out.status.success(),
            "mini-xdr {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

/// A child process we started; killed by its own handle when the test ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let prefix = self.prefix.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
                if let Ok(client) = async_nats::connect(url).await {
                    let js = async_nats::jetstream::new(client);
                    let c = xdr_commands::ingest::IngestConfig::with_prefix(&prefix);
                    for name in [c.stream_name, c.dlq_stream_name, c.events_stream_name] {
                        let _ = js.delete_stream(name).await;
                    }
                }
            });
        })
        .join();
    }
}

async fn telemetry(db: &TestDb, org: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM event_log WHERE org_id = $1 AND event_type = 'SecurityEventObserved'")
        .bind(org)
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_operator_issues_a_key_ingests_a_file_and_revokes_the_key() {
    let env = Env { db: TestDb::new().await, prefix: format!("t{}.", Uuid::new_v4().simple()) };
    let org = Uuid::new_v4();
    let org_text = org.to_string();
    let created = env.run(&["ingest-key", "create", "--org", &org_text, "--name", "honeypot"]);
    let key = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    assert!(key.starts_with("xdr_") && key.len() == 44, "{key}");
    let stderr = String::from_utf8_lossy(&created.stderr).into_owned();
    let key_id = stderr.split_whitespace().nth(2).expect("key id on stderr").to_owned();
    assert!(Uuid::parse_str(&key_id).is_ok(), "{stderr}");

    let _ingestor = Running(env.cmd(&["ingestor"]).stdout(Stdio::null()).spawn().expect("start ingestor"));
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/domain/tests/fixtures/cowrie.json");
    let out = env.run(&["ingest", "--key", &key, "--source", "cowrie", "--batch", "100", fixture]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("published 234 records in 3 messages"), "{text}");
    assert!(text.contains("dead-lettered: none"), "{text}");

    let mut n = 0;
    for _ in 0..300 {
        n = telemetry(&env.db, org).await;
        if n >= 234 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(n, 234);

    let revoked = env.run(&["ingest-key", "revoke", "--org", &org_text, "--id", &key_id]);
    assert!(String::from_utf8_lossy(&revoked.stdout).contains("revoked ingest key"));
    let again = env.run(&["ingest-key", "revoke", "--org", &org_text, "--id", &key_id]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("already revoked"));
    let types: Vec<String> = sqlx::query_scalar(
        "SELECT event_type FROM event_log WHERE org_id = $1 AND stream_id LIKE 'ingestkey-%' ORDER BY org_seq",
    )
    .bind(org)
    .fetch_all(&env.db.pool)
    .await
    .unwrap();
    assert_eq!(types, ["IngestKeyCreated", "IngestKeyRevoked"]);
}
