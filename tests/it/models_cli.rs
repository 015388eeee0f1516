//! `mini-xdr models verify` through the real binary: a healthy models directory passes with
//! latency figures; a corrupted, missing or drifted model fails with exit 1 and says why.

use std::path::{Path, PathBuf};
use std::process::Output;

fn committed_models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("inference/models")
}

fn mini_xdr(args: &[&str], models_dir: Option<&Path>) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_mini-xdr"));
    cmd.args(args).env_remove("XDR_CONFIG").env_remove("XDR_MODELS_DIR");
    if let Some(dir) = models_dir {
        cmd.env("XDR_MODELS_DIR", dir);
    }
    cmd.output().expect("run mini-xdr")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn copy_models() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(committed_models()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    dir
}

#[test]
fn verify_passes_on_the_committed_models_and_prints_latency() {
    let dir = committed_models();
    let out = mini_xdr(&["models", "verify", "--dir", dir.to_str().unwrap(), "--iterations", "40"], None);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    for file in ["classifier.onnx", "classifier.json", "classifier.golden.json"] {
        assert!(text.contains(file), "{file} not listed:\n{text}");
    }
    assert!(text.contains("matches its metadata"), "{text}");
    assert!(text.contains("golden vectors reproduce onnxruntime"), "{text}");
    assert!(text.contains("latency batch   1: p50") && text.contains("latency batch  64: p50"), "{text}");
}

#[test]
fn verify_fails_on_a_corrupted_model_file() {
    let dir = copy_models();
    let path = dir.path().join("classifier.onnx");
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x80;
    std::fs::write(&path, bytes).unwrap();
    // The directory comes from the environment here, the documented override.
    let out = mini_xdr(&["models", "verify", "--iterations", "5"], Some(dir.path()));
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FAILED") && text.contains("sha256") && text.contains("classifier.onnx"), "{text}");
}

#[test]
fn verify_fails_on_a_missing_model_file() {
    let dir = copy_models();
    std::fs::remove_file(dir.path().join("classifier.onnx")).unwrap();
    let out = mini_xdr(&["models", "verify", "--dir", dir.path().to_str().unwrap()], None);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FAILED") && text.contains("cannot read") && text.contains("classifier.onnx"), "{text}");
}

#[test]
fn verify_fails_when_golden_outputs_no_longer_match() {
    let dir = copy_models();
    let path = dir.path().join("classifier.golden.json");
    let mut golden: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    golden["expected"][3][2] = serde_json::json!(0.5);
    std::fs::write(&path, serde_json::to_vec(&golden).unwrap()).unwrap();
    let out = mini_xdr(&["models", "verify", "--dir", dir.path().to_str().unwrap()], None);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("golden vectors differ"), "{text}");
}

#[test]
fn verify_fails_on_a_directory_that_does_not_exist() {
    let out = mini_xdr(&["models", "verify", "--dir", "/nonexistent/mini-xdr-models"], None);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("/nonexistent/mini-xdr-models"));
}

mod train_baseline {
    use serde_json::json;
    use xdr_commands::testing::TestDb;
    use xdr_commands::{EventStore, NewEvent};
    use xdr_domain::ids::OrgId;
    use xdr_domain::telemetry::{SecurityEvent, SourceType};
    use xdr_domain::{Event, EventMetadata};

    fn run(db: &TestDb, args: &[&str]) -> std::process::Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_mini-xdr"))
            .args(args)
            .envs(db.env())
            .env_remove("XDR_CONFIG")
            .output()
            .unwrap()
    }

    /// `sources` ordinary users: connect, one login, a couple of commands.
    async fn ordinary_history(db: &TestDb, org: OrgId, sources: u8) {
        let t0 = chrono::Utc::now() - chrono::Duration::hours(2);
        let mut events = Vec::new();
        for s in 0..sources {
            for (i, kind) in
                ["cowrie.session.connect", "cowrie.login.success", "cowrie.command.input", "cowrie.command.input"]
                    .iter()
                    .enumerate()
            {
                let mut e = SecurityEvent::new(
                    t0 + chrono::Duration::seconds(i64::from(s) * 60 + i as i64 * (2 + i64::from(s % 5))),
                    SourceType::Cowrie,
                    *kind,
                    json!({}),
                );
                e.src_ip = Some(format!("192.0.2.{}", s + 1).parse().unwrap());
                e.username = Some(format!("user{}", s % 7));
                e.command = (i >= 2).then(|| ["ls", "uptime", "df -h"][(s as usize + i) % 3].to_owned());
                e.session_id = Some(format!("s{s}"));
                events.push(NewEvent::from_event(
                    uuid::Uuid::now_v7(),
                    "source-cowrie-t",
                    &Event::SecurityEventObserved(e),
                    &EventMetadata::system("t"),
                ));
            }
        }
        EventStore::new(db.pool.clone()).append_batch(org, events).await.unwrap();
    }

    #[tokio::test]
    async fn an_org_with_enough_history_gets_a_baseline_event_and_a_small_one_a_clear_error() {
        let db = TestDb::new().await;
        let (big, small) = (OrgId(uuid::Uuid::new_v4()), OrgId(uuid::Uuid::new_v4()));
        ordinary_history(&db, big, 40).await;
        ordinary_history(&db, small, 7).await;

        let out = run(&db, &["models", "train-baseline", "--org", &big.to_string()]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("trained on 40 source windows"));
        let payload: serde_json::Value =
            sqlx::query_scalar("SELECT payload FROM event_log WHERE org_id = $1 AND event_type = 'BaselineTrained'")
                .bind(big.0)
                .fetch_one(&db.pool)
                .await
                .unwrap();
        assert_eq!(payload["trained_on"], 40);
        xdr_inference::model::Baseline::from_json(&payload["params"]).expect("stored parameters load");

        let out = run(&db, &["models", "train-baseline", "--org", &small.to_string()]);
        assert_eq!(out.status.code(), Some(2));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("cannot train a baseline"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
