//! `mini-xdr projector` survives being killed (SIGKILL) at an arbitrary point: restarted, it
//! converges to exactly what `mini-xdr rebuild` produces from the same log, and `rebuild`
//! prints the same digest every time.

use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;
use uuid::Uuid;
use xdr_commands::testing::TestDb;
use xdr_commands::{EventStore, NewEvent};
use xdr_domain::ids::OrgId;
use xdr_domain::telemetry::{telemetry_event_id, SecurityEvent, SourceType};
use xdr_domain::{Event, EventMetadata};

fn mini_xdr(db: &TestDb, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mini-xdr"))
        .args(args)
        .envs(db.env())
        .env_remove("XDR_CONFIG")
        .output()
        .expect("run mini-xdr")
}

fn spawn_projector(db: &TestDb) -> Child {
    Command::new(env!("CARGO_BIN_EXE_mini-xdr"))
        .arg("projector")
        .envs(db.env())
        // Each projector also serves its probes: a free port per test.
        .env("XDR_BIND", "127.0.0.1:0")
        .env_remove("XDR_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn mini-xdr projector")
}

async fn seed(store: &EventStore, org: OrgId, n: usize, batch: usize) {
    for start in (0..n).step_by(batch) {
        let events = (start..(start + batch).min(n))
            .map(|i| {
                let ts = chrono::DateTime::from_timestamp(1_764_000_000 + i as i64, 0).unwrap();
                let mut e = SecurityEvent::new(
                    ts,
                    SourceType::Sshd,
                    "sshd.failed_password",
                    serde_json::json!(format!("line {i}")),
                );
                e.src_ip = Some(format!("192.0.2.{}", i % 250).parse().unwrap());
                e.username = Some("admin".into());
                let id = telemetry_event_id(ts, format!("{org}/{i}").as_bytes());
                NewEvent::from_event(
                    id,
                    "telemetry-sshd",
                    &Event::SecurityEventObserved(e),
                    &EventMetadata::system("test"),
                )
            })
            .collect();
        store.append_batch(org, events).await.unwrap();
    }
}

fn digest_of(out: &Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let digest = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(digest.len(), 64, "{digest:?}");
    assert!(digest.chars().all(|c| c.is_ascii_hexdigit()));
    digest
}

#[tokio::test]
async fn a_killed_projector_restarts_to_the_same_read_models_as_a_rebuild() {
    let db = TestDb::new().await;
    let store = EventStore::new(db.pool.clone());
    let orgs = [OrgId(Uuid::new_v4()), OrgId(Uuid::new_v4())];
    for org in orgs {
        seed(&store, org, 6_000, 500).await;
    }
    let mut projector = spawn_projector(&db);
    // More events arrive while it runs; kill it without warning somewhere in the middle.
    seed(&store, orgs[0], 2_000, 100).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    projector.kill().unwrap();
    projector.wait().unwrap();
    let partial: i64 = sqlx::query_scalar("SELECT coalesce(sum(last_seq), 0)::bigint FROM projection_checkpoints")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    eprintln!("checkpoints at kill: {partial} (of {} events x 5 projections)", 14_000);

    let mut projector = spawn_projector(&db);
    for org in orgs {
        let head = store.head(org).await.unwrap().unwrap().0;
        xdr_projections::wait_for_projections(&db.pool, org, head, Duration::from_secs(60)).await.unwrap();
    }
    projector.kill().unwrap();
    projector.wait().unwrap();
    let live = xdr_projections::digest(&db.pool).await.unwrap();

    let first = digest_of(&mini_xdr(&db, &["rebuild"]));
    assert_eq!(first, live);
    assert_eq!(digest_of(&mini_xdr(&db, &["rebuild"])), first);
    assert_eq!(digest_of(&mini_xdr(&db, &["rebuild", "--projection", "security_events"])), first);
}

#[tokio::test]
async fn rebuild_rejects_an_unknown_projection_by_name() {
    let db = TestDb::new().await;
    let out = mini_xdr(&db, &["rebuild", "--projection", "incidentz"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no projection named \"incidentz\"") && err.contains("security_events"), "{err}");
}
