//! The shipped Prometheus alert rules (`deploy/observability/`) are valid and fire as their
//! unit tests say, and what a running `serve` exposes on `/metrics` passes `promtool check
//! metrics` — including a dead letter it just made.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use xdr_commands::testing::TestDb;

use crate::support::{free_port, nats_prefix, repo, Process};

/// `promtool ARGS` in `dir`; a missing promtool fails the test with how to get it.
fn promtool(args: &[&str], stdin: Option<&str>) -> std::process::Output {
    let mut child = Command::new("promtool")
        .args(args)
        .current_dir(repo("deploy/observability"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("promtool not runnable ({e}): install Debian's `prometheus` package (deploy/test.sh does when root)")
        });
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn assert_success(what: &str, out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_shipped_alert_rules_are_valid_and_their_unit_tests_pass() {
    let checked = promtool(&["check", "rules", "alerts.yml"], None);
    assert_success("promtool check rules", &checked);
    assert!(String::from_utf8_lossy(&checked.stdout).contains("SUCCESS: 8 rules found"));
    assert_success("promtool check config", &promtool(&["check", "config", "prometheus.example.yml"], None));
    let tested = promtool(&["test", "rules", "alerts.test.yml"], None);
    assert_success("promtool test rules", &tested);
    // Every alert has a unit test.
    let rules = std::fs::read_to_string(repo("deploy/observability/alerts.yml")).unwrap();
    let tests = std::fs::read_to_string(repo("deploy/observability/alerts.test.yml")).unwrap();
    for alert in rules.lines().filter_map(|l| l.trim().strip_prefix("- alert: ")) {
        assert!(tests.contains(&format!("alertname: {alert}")), "alert {alert} has no unit test");
    }
}

#[test]
fn a_rule_that_does_not_fire_as_its_test_says_is_caught() {
    // The harness itself: a wrong expectation must fail (so a passing run means something).
    let tests = std::fs::read_to_string(repo("deploy/observability/alerts.test.yml")).unwrap();
    let broken = tests.replacen(
        "eval_time: 5m\n        alertname: XdrRoleDown",
        "eval_time: 2m\n        alertname: XdrRoleDown",
        1,
    );
    assert_ne!(broken, tests);
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(repo("deploy/observability/alerts.yml"), dir.path().join("alerts.yml")).unwrap();
    std::fs::write(dir.path().join("alerts.test.yml"), broken).unwrap();
    let out = Command::new("promtool")
        .args(["test", "rules", "alerts.test.yml"])
        .current_dir(dir.path())
        .output()
        .expect("promtool not runnable: install Debian's `prometheus` package");
    assert!(!out.status.success(), "promtool accepted an alert that fires 3 minutes late");
}

#[tokio::test]
async fn a_running_serve_exposes_metrics_promtool_accepts_with_its_dead_letters() {
    let db = TestDb::new().await;
    let (port, prefix) = (free_port(), nats_prefix());
    let server = Process(
        Command::new(env!("CARGO_BIN_EXE_mini-xdr"))
            .arg("serve")
            .envs(db.env())
            .env("XDR_BIND", format!("127.0.0.1:{port}"))
            .env("JWT_SECRET_KEY", "alert-rules-test-secret-0123456789abcdef")
            .env("RUST_LOG", "warn")
            .env("XDR_NATS_PREFIX", &prefix)
            .env_remove("XDR_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mini-xdr serve"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let started = Instant::now();
    while !client.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
        assert!(started.elapsed() < Duration::from_secs(60), "serve not ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A batch on NATS without an ingest key: the ingestor dead-letters it.
    let js = async_nats::jetstream::new(async_nats::connect("nats://127.0.0.1:4222").await.unwrap());
    let config = xdr_commands::ingest::IngestConfig::with_prefix(&prefix);
    js.publish(config.ingest_subject("cowrie"), r#"[{"eventid":"cowrie.login.failed"}]"#.into())
        .await
        .unwrap()
        .await
        .unwrap();
    let mut metrics = String::new();
    let started = Instant::now();
    while !metrics.contains("xdr_dead_letters_total{queue=\"ingest\"} 1\n") {
        assert!(started.elapsed() < Duration::from_secs(20), "no dead letter counted:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        metrics = client.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    }
    drop(server);
    for stream in [config.stream_name, config.dlq_stream_name, config.events_stream_name] {
        let _ = js.delete_stream(&stream).await;
    }
    for name in ["xdr_logins_refused_total", "xdr_redelivered_messages_total", "xdr_nats_events_refused_total"] {
        assert!(metrics.contains(&format!("# TYPE {name} counter")), "{name} missing:\n{metrics}");
    }
    let checked = promtool(&["check", "metrics"], Some(&metrics));
    assert_success(&format!("promtool check metrics of\n{metrics}\n"), &checked);
}
