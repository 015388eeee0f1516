//! One record cannot freeze an org: a Cowrie record dated year 0 (which an older version
//! accepted and wrote to the append-only log, and today's parsers refuse) is quarantined by
//! the running `mini-xdr projector`, the org's telemetry and incident read models keep
//! advancing past it, `mini-xdr quarantine list` names it with its reason, and
//! `mini-xdr rebuild` gives the same digest as the live projection, quarantine included.

use chrono::{TimeZone, Utc};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;
use uuid::Uuid;
use xdr_commands::testing::TestDb;
use xdr_commands::{EventStore, NewEvent};
use xdr_domain::ids::OrgId;
use xdr_domain::telemetry::parsers::{parse_record, split_records, ParseContext};
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
        .env("XDR_BIND", "127.0.0.1:0")
        .env_remove("XDR_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn mini-xdr projector")
}

fn stdout_of(out: &Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const POISON: &str =
    r#"{"eventid":"cowrie.session.connect","timestamp":"0000-01-01T00:00:00Z","src_ip":"203.0.113.66","session":"p0"}"#;

/// What a version without the time range stored for [`POISON`].
fn poison_as_an_older_version_stored_it() -> NewEvent {
    let year_0 = Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).unwrap();
    let mut e =
        SecurityEvent::new(year_0, SourceType::Cowrie, "cowrie.session.connect", serde_json::from_str(POISON).unwrap());
    e.src_ip = Some("203.0.113.66".parse().unwrap());
    e.session_id = Some("p0".into());
    NewEvent::from_event(
        telemetry_event_id(year_0, b"poison"),
        "source-cowrie-old",
        &Event::SecurityEventObserved(e),
        &EventMetadata::system("ingest-key:older-version"),
    )
}

async fn count(db: &TestDb, org: OrgId, table: &str) -> i64 {
    let mut tx = xdr_projections::begin_org_tx(&db.pool, org).await.unwrap();
    let n = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}")).fetch_one(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    n
}

#[tokio::test]
async fn a_poison_record_is_quarantined_and_the_org_keeps_advancing_and_rebuild_agrees() {
    let db = TestDb::new().await;
    let store = EventStore::new(db.pool.clone());
    let org = OrgId(Uuid::new_v4());
    let meta = EventMetadata::system("test");

    // Today's parsers refuse the record; the log still holds what an older version wrote.
    let refused = parse_record(SourceType::Cowrie, POISON, &ParseContext::received_at(Utc::now())).unwrap_err();
    assert!(refused.0.contains("timestamp out of range"), "{refused}");
    let poison_seq = store.append_batch(org, vec![poison_as_an_older_version_stored_it()]).await.unwrap().last_seq;

    let mut projector = spawn_projector(&db);
    // Then the org's normal traffic: a real Cowrie log, and the incidents it opens.
    let log =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/domain/tests/fixtures/cowrie.json")).unwrap();
    let ctx = ParseContext::received_at(Utc.with_ymd_and_hms(2026, 12, 31, 23, 59, 59).unwrap());
    let telemetry: Vec<NewEvent> = split_records(SourceType::Cowrie, &log)
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let ev = parse_record(SourceType::Cowrie, r, &ctx).unwrap();
            let id = telemetry_event_id(ev.timestamp, format!("cowrie/{i}").as_bytes());
            NewEvent::from_event(id, "source-cowrie-honeypot", &Event::SecurityEventObserved(ev), &meta)
        })
        .collect();
    let records = telemetry.len() as i64;
    store.append_batch(org, telemetry).await.unwrap();
    let mut detector = xdr_inference::Detector::default();
    for e in store.read_org(org, poison_seq, i64::MAX).await.unwrap() {
        let commands = detector.process(&e);
        xdr_inference::execute_commands(&store, &commands).await.unwrap();
    }

    let head = store.head(org).await.unwrap().unwrap().0;
    assert!(head > poison_seq + records, "the detector opened incidents");
    xdr_projections::wait_for_projections(&db.pool, org, head, Duration::from_secs(60))
        .await
        .expect("every read model of the org goes past the poison");
    assert_eq!(count(&db, org, "rm_security_events").await, records);
    assert!(count(&db, org, "rm_incidents").await > 0);
    assert!(count(&db, org, "rm_audit_log").await > 0);

    let listed = stdout_of(&mini_xdr(&db, &["quarantine", "list", "--org", &org.0.to_string()]));
    let rows: Vec<&str> = listed.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{listed}");
    let row = rows[0];
    assert!(row.starts_with(&org.0.to_string()), "{row}");
    assert!(row.contains("security_events") && row.contains("SecurityEventObserved"), "{row}");
    assert!(row.split_whitespace().any(|w| w == poison_seq.to_string()), "{row}");
    assert!(row.contains("0000-01-01T00:00:00Z") && row.contains("out of range"), "{row}");

    projector.kill().unwrap();
    projector.wait().unwrap();
    let live = stdout_of(&mini_xdr(&db, &["digest"])).trim().to_owned();
    let rebuilt = stdout_of(&mini_xdr(&db, &["rebuild"])).trim().to_owned();
    assert_eq!(rebuilt, live, "rebuild quarantines the same event and yields the same read models");
    assert_eq!(stdout_of(&mini_xdr(&db, &["quarantine", "list"])).lines().count(), 2);
    // Nothing to fix in the data: retry quarantines it again and says so (exit 1).
    let retried = mini_xdr(&db, &["quarantine", "retry", "--org", &org.0.to_string()]);
    assert_eq!(retried.status.code(), Some(1), "{}", String::from_utf8_lossy(&retried.stderr));
    assert!(String::from_utf8_lossy(&retried.stderr).contains("1 still quarantined"));
    assert_eq!(stdout_of(&mini_xdr(&db, &["digest"])).trim(), live);
}
