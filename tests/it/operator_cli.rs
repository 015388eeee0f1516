//! The operator CLI works against the real database through the same handlers, and every
//! event it causes says `operator`.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use xdr_commands::testing::TestDb;

fn op(db: &TestDb, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mini-xdr"))
        .args(args)
        .envs(db.env())
        .env_remove("XDR_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mini-xdr");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn actors(db: &TestDb, event_type: &str) -> Vec<serde_json::Value> {
    ok(op(db, &["replay", "--org", "acme", "--type", event_type], ""))
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["metadata"].clone())
        .collect()
}

#[tokio::test]
async fn operators_manage_orgs_and_users_and_are_named_as_the_actor() {
    let db = TestDb::new().await;
    let weak = op(
        &db,
        &["org", "create", "--name", "Acme", "--admin-email", "root@acme.test", "--admin-name", "Root"],
        "weak\n",
    );
    assert_eq!(weak.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&weak.stderr).contains("at least 12 characters"));

    let created = ok(op(
        &db,
        &["org", "create", "--name", "Acme", "--admin-email", "root@acme.test", "--admin-name", "Root"],
        "SecurePass123!@#\n",
    ));
    assert!(created.starts_with("organization acme ("), "{created}");
    assert!(ok(op(&db, &["org", "list"], "")).contains("acme"));

    let invited = ok(op(
        &db,
        &["user", "invite", "--org", "acme", "--email", "ann@acme.test", "--name", "Ann", "--role", "soc_lead"],
        "",
    ));
    assert!(invited.contains("invitation token"), "{invited}");
    ok(op(&db, &["user", "lock", "--org", "acme", "--email", "root@acme.test"], ""));
    ok(op(&db, &["user", "unlock", "--org", "acme", "--email", "root@acme.test"], ""));
    let missing = op(&db, &["user", "lock", "--org", "acme", "--email", "nobody@acme.test"], "");
    assert_eq!(missing.status.code(), Some(2));

    for event_type in ["OrganizationRegistered", "UserInvited", "AccountLocked", "AccountUnlocked"] {
        let metas = actors(&db, event_type);
        assert_eq!(metas.len(), 1, "{event_type}");
        assert_eq!(metas[0]["actor"], "operator", "{event_type}");
        assert!(metas[0].get("actor_user_id").is_none(), "{event_type}");
    }

    xdr_projections::catch_up_once(&db.pool).await.unwrap();
    let users = ok(op(&db, &["user", "list", "--org", "acme"], ""));
    assert!(users.contains("ann@acme.test") && users.contains("invited"), "{users}");
    assert!(users.contains("root@acme.test") && users.contains("active"), "{users}");
}
