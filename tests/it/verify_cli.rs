//! `mini-xdr verify` finds tampering done behind the application's back, and `replay`
//! prints the audit trail.

use serde_json::json;
use sqlx::{Executor, PgConnection};
use std::process::Output;
use uuid::Uuid;
use xdr_commands::testing::TestDb;
use xdr_commands::{EventStore, NewEvent};
use xdr_domain::ids::OrgId;

fn mini_xdr(db: &TestDb, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_mini-xdr"))
        .args(args)
        .envs(db.env())
        .env_remove("XDR_CONFIG")
        .output()
        .expect("run mini-xdr")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Two orgs with 6 events each.
async fn seeded() -> (TestDb, OrgId, OrgId) {
    let db = TestDb::new().await;
    let store = EventStore::new(db.pool.clone());
    let (a, b) = (OrgId(Uuid::new_v4()), OrgId(Uuid::new_v4()));
    for org in [a, b] {
        let events = (1..=6)
            .map(|i| NewEvent {
                event_id: Uuid::new_v4(),
                stream_id: format!("telemetry-{}", i % 2),
                event_type: "SecurityEventObserved".into(),
                schema_version: 1,
                payload: json!({"n": i, "src_ip": format!("10.0.0.{i}")}),
                metadata: json!({"actor": "test"}),
            })
            .collect();
        store.append_batch(org, events).await.unwrap();
    }
    (db, a, b)
}

/// A superuser session with the append-only trigger switched off, as an attacker with
/// database access would do it.
async fn tamper(db: &TestDb, sql: &[String]) {
    let mut conn: PgConnection = db.owner_conn().await;
    conn.execute("SET session_replication_role = replica").await.unwrap();
    for s in sql {
        conn.execute(s.as_str()).await.unwrap();
    }
}

fn assert_broken_at(out: &Output, org: OrgId, seq: i64) {
    assert_eq!(out.status.code(), Some(1), "stdout: {}\nstderr: {}", stdout(out), String::from_utf8_lossy(&out.stderr));
    let text = stdout(out);
    assert!(text.contains(&format!("org {org} org_seq {seq}:")), "{text}");
    assert_eq!(text.matches("BROKEN").count(), 1, "only the tampered org is reported: {text}");
}

#[tokio::test]
async fn an_untouched_log_verifies() {
    let (db, _, _) = seeded().await;
    let out = mini_xdr(&db, &["verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout(&out).contains("2 orgs, 12 events"), "{}", stdout(&out));
}

#[tokio::test]
async fn an_edited_payload_is_named() {
    let (db, a, _) = seeded().await;
    tamper(&db, &[format!("UPDATE event_log SET payload = '{{\"n\": 33}}' WHERE org_id = '{a}' AND org_seq = 3")])
        .await;
    assert_broken_at(&mini_xdr(&db, &["verify"]), a, 3);
}

#[tokio::test]
async fn a_deleted_row_is_named() {
    let (db, _, b) = seeded().await;
    tamper(&db, &[format!("DELETE FROM event_log WHERE org_id = '{b}' AND org_seq = 4")]).await;
    assert_broken_at(&mini_xdr(&db, &["verify"]), b, 4);
    // Scoped to the other org, the chain is intact.
    let other = mini_xdr(&db, &["verify", "--org", &b.to_string()]);
    assert_eq!(other.status.code(), Some(1));
}

#[tokio::test]
async fn swapped_payloads_are_named_at_the_first_of_the_two() {
    let (db, a, _) = seeded().await;
    tamper(
        &db,
        &[format!(
            "UPDATE event_log e SET payload = o.payload FROM event_log o \
             WHERE e.org_id = '{a}' AND o.org_id = '{a}' AND \
             ((e.org_seq = 2 AND o.org_seq = 5) OR (e.org_seq = 5 AND o.org_seq = 2))"
        )],
    )
    .await;
    assert_broken_at(&mini_xdr(&db, &["verify"]), a, 2);
}

#[tokio::test]
async fn a_removed_tail_that_left_the_head_is_named() {
    let (db, a, _) = seeded().await;
    tamper(&db, &[format!("DELETE FROM event_log WHERE org_id = '{a}' AND org_seq >= 5")]).await;
    assert_broken_at(&mini_xdr(&db, &["verify"]), a, 5);
}

#[tokio::test]
async fn replay_prints_the_org_events_in_order_with_filters() {
    let (db, a, _) = seeded().await;
    let out = mini_xdr(&db, &["replay", "--org", &a.to_string()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> = stdout(&out).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let seqs: Vec<i64> = lines.iter().map(|l| l["org_seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5, 6]);
    assert!(lines.iter().all(|l| l["org_id"] == json!(a.to_string())));

    let out = mini_xdr(&db, &["replay", "--org", &a.to_string(), "--until", "4", "--stream", "telemetry-0"]);
    let seqs: Vec<i64> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["org_seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, vec![2, 4]);

    let out = mini_xdr(&db, &["replay", "--org", "no-such-org"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no organization with slug or id"));
}

#[tokio::test]
async fn a_missing_database_url_is_a_clear_error() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mini-xdr"))
        .args(["verify"])
        .env_remove("DATABASE_URL")
        .env_remove("XDR_MIGRATE_DATABASE_URL")
        .env_remove("XDR_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("DATABASE_URL is required"));
}
