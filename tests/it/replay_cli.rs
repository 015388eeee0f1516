//! `mini-xdr replay` as an auditor uses it: filters, a table for people, and the state of an
//! aggregate at a chosen instant of a scripted history.

use secrecy::SecretString;
use serde_json::Value;
use std::process::Output;
use xdr_commands::auth::identity::RequestContext;
use xdr_commands::auth::{Clock, IdentityService, PasswordHasher, TokenService};
use xdr_commands::testing::TestDb;
use xdr_commands::EventStore;

const PASSWORD: &str = "SecurePass123!@#";

fn mini_xdr(db: &TestDb, args: &[&str]) -> Output {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mini-xdr"))
        .args(args)
        .envs(db.env())
        .env_remove("XDR_CONFIG")
        .output()
        .expect("run mini-xdr");
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

struct History {
    db: TestDb,
    admin_id: String,
    analyst_id: String,
    /// Recorded between the lock and the unlock.
    while_locked: chrono::DateTime<chrono::Utc>,
}

/// Register, invite an analyst, lock the analyst, unlock them again.
async fn scripted_history() -> History {
    let db = TestDb::new().await;
    let identity = IdentityService::new(
        EventStore::new(db.api.clone()),
        PasswordHasher::owasp().unwrap(),
        TokenService::new(&SecretString::from("replay-test-secret-0123456789abcdef")),
        Clock::system(),
    );
    let ctx = RequestContext { ip: Some("10.9.8.7".into()), user_agent: None, operator: false };
    let reg = identity.register("Audit Corp", "admin@audit.test", PASSWORD.into(), "Admin", &ctx).await.unwrap();
    let admin = identity.authenticate(&reg.tokens.access_token).await.unwrap();
    let invited = identity.invite(&admin, "analyst@audit.test", "Ann Analyst", "analyst", &ctx).await.unwrap();
    identity.accept_invite(&invited.invitation_token, PASSWORD.into(), &ctx).await.unwrap();
    let analyst = xdr_domain::ids::UserId(invited.user.id);
    identity.lock_user(&admin, analyst, None, &ctx).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let while_locked = chrono::Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    identity.unlock_user(&admin, analyst, &ctx).await.unwrap();
    History { db, admin_id: admin.user_id.to_string(), analyst_id: invited.user.id.to_string(), while_locked }
}

#[tokio::test]
async fn filters_select_exactly_the_matching_events() {
    let h = scripted_history().await;
    let all = lines(&mini_xdr(&h.db, &["replay", "--org", "audit-corp"]));
    let seqs: Vec<i64> = all.iter().map(|e| e["org_seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=all.len() as i64).collect::<Vec<_>>(), "org by slug, every event in order");

    let by_type = lines(&mini_xdr(&h.db, &["replay", "--org", "audit-corp", "--type", "AccountLocked"]));
    assert_eq!(by_type.len(), 1);
    assert_eq!(by_type[0]["stream_id"], format!("user-{}", h.analyst_id));

    let by_actor = lines(&mini_xdr(&h.db, &["replay", "--org", "audit-corp", "--actor", &h.admin_id]));
    let expected: Vec<&Value> = all.iter().filter(|e| e["metadata"]["actor_user_id"] == h.admin_id.as_str()).collect();
    assert_eq!(by_actor.len(), expected.len());
    assert!(by_actor.iter().any(|e| e["event_type"] == "AccountUnlocked"));

    let window = lines(&mini_xdr(&h.db, &["replay", "--org", "audit-corp", "--since", "2", "--until", "4"]));
    assert_eq!(window.iter().map(|e| e["org_seq"].as_i64().unwrap()).collect::<Vec<_>>(), vec![3, 4]);

    let until = h.while_locked.to_rfc3339();
    let before = lines(&mini_xdr(&h.db, &["replay", "--org", "audit-corp", "--until", &until]));
    assert!(before.iter().all(|e| e["event_type"] != "AccountUnlocked"));
    let after = lines(&mini_xdr(&h.db, &["replay", "--org", "audit-corp", "--since", &until]));
    assert_eq!(after.len() + before.len(), all.len());
    assert_eq!(after[0]["event_type"], "AccountUnlocked");

    let table = mini_xdr(&h.db, &["replay", "--org", "audit-corp", "--format", "table"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.starts_with(" ORG_SEQ"), "{text}");
    assert_eq!(text.lines().count(), all.len() + 1);
    assert!(text.contains("AccountLocked"));
}

#[tokio::test]
async fn state_shows_the_lock_at_an_instant_and_who_lifted_it() {
    let h = scripted_history().await;
    let stream = format!("user-{}", h.analyst_id);
    let until = h.while_locked.to_rfc3339();
    let locked: Value = serde_json::from_slice(
        &mini_xdr(&h.db, &["replay", "--org", "audit-corp", "--until", &until, "--state", &stream]).stdout,
    )
    .unwrap();
    assert!(locked["state"]["locked_until"].is_string(), "{locked}");
    assert_eq!(locked["state"]["email"], "analyst@audit.test");
    assert!(locked["state"].get("password_hash").is_none(), "hashes never leave the log");

    let now: Value =
        serde_json::from_slice(&mini_xdr(&h.db, &["replay", "--org", "audit-corp", "--state", &stream]).stdout)
            .unwrap();
    assert!(now["state"]["locked_until"].is_null(), "{now}");
    let unlock = now["history"].as_array().unwrap().iter().find(|e| e["event_type"] == "AccountUnlocked").unwrap();
    assert_eq!(unlock["actor_user_id"], h.admin_id.as_str());
    assert_eq!(unlock["request_ip"], "10.9.8.7");
}

#[tokio::test]
async fn state_shows_an_incidents_status_at_chosen_instants() {
    use xdr_domain::incident::{Incident, IncidentCommand, IncidentStatus, UpdateIncidentStatus};
    let h = scripted_history().await;
    let store = EventStore::new(h.db.pool.clone());
    let org: xdr_domain::ids::OrgId = xdr_domain::ids::OrgId(
        sqlx::query_scalar("SELECT org_id FROM org_slugs WHERE slug = 'audit-corp'")
            .fetch_one(&mut h.db.owner_conn().await)
            .await
            .unwrap(),
    );
    // Real telemetry through detection opens incidents in the org.
    // The key is issued by the API (as its login), the records ingested by the workers.
    let api = EventStore::new(h.db.api.clone());
    let key = xdr_commands::ingest_keys::create_ingest_key(&api, org, "hp", &xdr_domain::EventMetadata::system("t"))
        .await
        .unwrap();
    let body =
        std::fs::read_to_string(format!("{}/domain/tests/fixtures/cowrie.json", env!("CARGO_MANIFEST_DIR"))).unwrap();
    xdr_commands::ingest::ingest_body(
        &store,
        chrono::Utc::now(),
        org,
        key.key_id,
        xdr_domain::telemetry::SourceType::Cowrie,
        None,
        &body,
        "b",
    )
    .await
    .unwrap();
    let mut detector = xdr_inference::Detector::default();
    let commands: Vec<_> =
        store.read_org(org, 0, 10_000).await.unwrap().iter().flat_map(|e| detector.process(e)).collect();
    xdr_inference::execute_commands(&store, &commands).await.unwrap();
    let incident = commands[0].incident_id;
    let stream = incident.stream_id();

    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let while_open = chrono::Utc::now().to_rfc3339();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let contain = IncidentCommand::UpdateStatus(UpdateIncidentStatus {
        incident_id: incident,
        status: IncidentStatus::Contained,
        note: Some("blocked at the edge".into()),
        by_user: None,
        now: chrono::Utc::now(),
    });
    xdr_commands::handler::execute::<Incident>(
        &store,
        org,
        &stream,
        &contain,
        &xdr_domain::EventMetadata::system("operator"),
        None,
    )
    .await
    .unwrap();

    let then: Value = serde_json::from_slice(
        &mini_xdr(&h.db, &["replay", "--org", "audit-corp", "--until", &while_open, "--state", &stream]).stdout,
    )
    .unwrap();
    assert_eq!(then["state"]["status"], "open", "{then}");
    let now: Value =
        serde_json::from_slice(&mini_xdr(&h.db, &["replay", "--org", "audit-corp", "--state", &stream]).stdout)
            .unwrap();
    assert_eq!(now["state"]["status"], "contained", "{now}");
    let last = now["history"].as_array().unwrap().last().unwrap();
    assert_eq!(
        (last["event_type"].as_str(), last["actor"].as_str()),
        (Some("IncidentStatusChanged"), Some("operator"))
    );
}

#[tokio::test]
async fn jsonl_lines_are_exactly_the_stored_events_serialized() {
    // Replay renders lines straight from the rows; they must equal serializing the stored
    // event (escapes, non-ASCII, numbers jsonb prints differently, nesting, key order).
    let db = TestDb::new().await;
    let store = EventStore::new(db.api.clone());
    let org = xdr_domain::ids::OrgId(uuid::Uuid::new_v4());
    let payloads = [
        serde_json::json!({"b": 1, "a": [1, 2.5, -3, {"z": null, "y": true}], "aa": "x", "B": "upper"}),
        serde_json::json!({"msg": "quote \" backslash \\ tab \t nl \n ctl \u{1} é ☃ 😀", "k\u{e9}y": {}}),
        serde_json::json!({"tiny": 1e-7, "huge": 1e300, "min": i64::MIN, "max": u64::MAX, "half": 0.5}),
        serde_json::json!([{"b": 2, "a": 1}, "s", 3, false, null]),
    ];
    let events = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| xdr_commands::NewEvent {
            event_id: uuid::Uuid::now_v7(),
            stream_id: format!("odd-{i}"),
            event_type: "Oddity".into(),
            schema_version: 1,
            payload: p.clone(),
            metadata: serde_json::json!({"actor": "test", "request_ip": "2001:db8::1"}),
        })
        .collect();
    store.append_batch(org, events).await.unwrap();
    let expected: Vec<String> =
        store.read_org(org, 0, 100).await.unwrap().iter().map(|e| serde_json::to_string(e).unwrap()).collect();
    let out = mini_xdr(&db, &["replay", "--org", &org.0.to_string()]);
    let got: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect();
    assert_eq!(got, expected);
}
