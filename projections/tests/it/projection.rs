//! The runner turns identity and telemetry events into read-model rows that say what the
//! events said, never a credential, and applying an event twice changes nothing.

use chrono::{DateTime, Utc};
use sqlx::Row;
use uuid::Uuid;
use xdr_commands::testing::TestDb;
use xdr_commands::EventStore;
use xdr_projections::{catch_up_once, digest};

use crate::helpers::*;

#[tokio::test]
async fn identity_and_telemetry_events_become_read_model_rows() {
    let db = TestDb::new().await;
    let store = EventStore::new(db.pool.clone());
    let org = seed_identity(&store, "Acme Corp").await;
    let head = seed_telemetry(&store, org.id, 250, "a").await;
    assert_eq!(head, IDENTITY_EVENTS + 250);

    let done = catch_up_once(&db.pool).await.unwrap();
    assert_eq!((done.orgs, done.events), (1, head as u64));
    assert!(checkpoints(&db.pool, org.id).await.iter().all(|(_, seq)| *seq == head));

    let mut tx = xdr_projections::begin_org_tx(&db.pool, org.id).await.unwrap();
    let o = sqlx::query("SELECT name, slug, status, created_at FROM rm_organizations WHERE org_id = $1")
        .bind(org.id.0)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(o.get::<String, _>("name"), "Acme Corp");
    assert_eq!(o.get::<String, _>("slug"), "acme-corp");
    assert_eq!(o.get::<String, _>("status"), "active");
    assert_eq!(o.get::<DateTime<Utc>, _>("created_at"), at(0));

    let u = sqlx::query(
        "SELECT role, is_active, has_password, invitation_pending, failed_attempts, locked_until, last_login \
         FROM rm_users WHERE org_id = $1 AND user_id = $2",
    )
    .bind(org.id.0)
    .bind(org.analyst.0)
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert_eq!(u.get::<String, _>("role"), "analyst", "the invitation's role");
    assert!(u.get::<bool, _>("is_active"));
    assert!(u.get::<bool, _>("has_password"));
    assert!(!u.get::<bool, _>("invitation_pending"));
    assert_eq!(u.get::<i32, _>("failed_attempts"), 0, "unlock and login reset the counter");
    assert_eq!(u.get::<Option<DateTime<Utc>>, _>("locked_until"), None);
    assert_eq!(u.get::<Option<DateTime<Utc>>, _>("last_login"), Some(at(40)));
    let admin_role: String = sqlx::query_scalar("SELECT role FROM rm_users WHERE user_id = $1")
        .bind(org.admin.0)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(admin_role, "admin");

    let s =
        sqlx::query("SELECT user_id, rotations, revoked_at, revoke_reason FROM rm_user_sessions WHERE session_id = $1")
            .bind(org.session.0)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    assert_eq!(s.get::<Uuid, _>("user_id"), org.analyst.0);
    assert_eq!(s.get::<i32, _>("rotations"), 1);
    assert_eq!(s.get::<Option<DateTime<Utc>>, _>("revoked_at"), Some(at(60)));
    assert_eq!(s.get::<Option<String>, _>("revoke_reason").as_deref(), Some("logout"));

    let (n, distinct_src): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT src_ip) FROM rm_security_events")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    assert_eq!((n, distinct_src), (250, 200));
    let e = sqlx::query(
        "SELECT host(src_ip) AS src, src_port, dst_port, username, message, raw->>'salt' AS salt, \"timestamp\" \
         FROM rm_security_events WHERE org_seq = $1",
    )
    .bind(IDENTITY_EVENTS + 8)
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert_eq!(e.get::<String, _>("src"), "203.0.113.7");
    assert_eq!(e.get::<i32, _>("src_port"), 40_007);
    assert_eq!(e.get::<i32, _>("dst_port"), 22);
    assert_eq!(e.get::<String, _>("username"), "root");
    assert_eq!(e.get::<String, _>("message"), "login attempt 7 failed\ttab \"quoted\"");
    assert_eq!(e.get::<String, _>("salt"), "a");
    assert_eq!(e.get::<DateTime<Utc>, _>("timestamp"), at(1007));

    // The audit view: every non-telemetry event, with who did it and from where.
    let audit: Vec<(i64, String, Option<Uuid>, Option<String>)> =
        sqlx::query_as("SELECT org_seq, event_type, actor_user_id, request_ip FROM rm_audit_log ORDER BY org_seq")
            .fetch_all(&mut *tx)
            .await
            .unwrap();
    assert_eq!(audit.len() as i64, IDENTITY_EVENTS);
    assert_eq!(audit.iter().map(|a| a.0).collect::<Vec<_>>(), (1..=IDENTITY_EVENTS).collect::<Vec<_>>());
    let unlock = audit.iter().find(|a| a.1 == "AccountUnlocked").unwrap();
    assert_eq!(unlock.2, Some(org.admin.0));
    assert_eq!(unlock.3.as_deref(), Some("198.51.100.7"));

    // No credential anywhere: neither a column for it nor its value in any row.
    for table in TABLES {
        let text: String = sqlx::query_scalar(&format!("SELECT coalesce(string_agg(t::text, ''), '') FROM {table} t"))
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert!(!text.contains("NEVER-IN-A-READ-MODEL"), "{table} leaks a credential");
    }
    let cols: Vec<String> = sqlx::query_scalar(
        "SELECT table_name || '.' || column_name FROM information_schema.columns \
         WHERE table_name LIKE 'rm\\_%' AND (column_name LIKE '%password%' OR column_name LIKE '%token%') \
           AND column_name <> 'has_password'",
    )
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    assert_eq!(cols, Vec::<String>::new());
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn redelivering_every_event_changes_nothing() {
    let db = TestDb::new().await;
    let store = EventStore::new(db.pool.clone());
    let org = seed_identity(&store, "Redelivery Inc").await;
    seed_telemetry(&store, org.id, 120, "r").await;
    catch_up_once(&db.pool).await.unwrap();
    let before = digest(&db.pool).await.unwrap();

    // Forget the checkpoints (as if every commit had been lost after the rows were written)
    // and apply the whole log again over the existing rows.
    let mut owner = db.owner_conn().await;
    sqlx::query("UPDATE projection_checkpoints SET last_seq = 0").execute(&mut owner).await.unwrap();
    let again = catch_up_once(&db.pool).await.unwrap();
    assert_eq!(again.events, (IDENTITY_EVENTS + 120) as u64);
    assert_eq!(digest(&db.pool).await.unwrap(), before);
    assert_eq!(count(&db.pool, org.id, "rm_audit_log").await, IDENTITY_EVENTS);
    assert_eq!(count(&db.pool, org.id, "rm_security_events").await, 120);
}

#[tokio::test]
async fn many_orgs_are_projected_by_one_runner_each_into_its_own_rows() {
    let db = TestDb::new().await;
    let store = EventStore::new(db.pool.clone());
    let mut orgs = Vec::new();
    for i in 0..5 {
        let org = seed_identity(&store, &format!("Tenant {i}")).await;
        seed_telemetry(&store, org.id, 10 * (i + 1), &format!("t{i}")).await;
        orgs.push(org);
    }
    let done = catch_up_once(&db.pool).await.unwrap();
    assert_eq!(done.orgs, 5);
    for (i, org) in orgs.iter().enumerate() {
        assert_eq!(count(&db.pool, org.id, "rm_security_events").await, 10 * (i as i64 + 1));
        assert_eq!(count(&db.pool, org.id, "rm_users").await, 2);
        assert_eq!(count(&db.pool, org.id, "rm_organizations").await, 1);
    }
    // Nothing left to do: a second pass finds no org behind.
    assert_eq!(catch_up_once(&db.pool).await.unwrap().orgs, 0);
}

#[tokio::test]
async fn the_audit_copy_of_a_payload_drops_secrets_at_every_depth() {
    let db = TestDb::new().await;
    let redacted: serde_json::Value = sqlx::query_scalar("SELECT xdr_redact($1)")
        .bind(serde_json::json!({
            "email": "a@example.com", "role": "admin", "password_hash": "$argon2id$x", "Refresh_Token": "t",
            "invite": {"token_hash": "abc", "expires_at": "2026-01-01T00:00:00Z"},
            "list": [{"client_secret": 1, "ok": 2}, 3]
        }))
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        redacted,
        serde_json::json!({
            "email": "a@example.com", "role": "admin",
            "invite": {"expires_at": "2026-01-01T00:00:00Z"}, "list": [{"ok": 2}, 3]
        })
    );
}

#[tokio::test]
async fn a_password_reset_that_clears_the_lock_clears_it_in_rm_users_too() {
    use xdr_commands::{ExpectedVersion, NewEvent};
    use xdr_domain::identity::password_reset::{PasswordChangeKind, PasswordChanged};
    use xdr_domain::identity::{AccountLocked, LoginFailed, LoginFailureReason};
    use xdr_domain::{Event, EventMetadata};
    let db = TestDb::new().await;
    let store = EventStore::new(db.pool.clone());
    let org = seed_identity(&store, "Reset Projection").await;
    let stream = org.analyst.stream_id();
    let append = |events: Vec<Event>| {
        let store = store.clone();
        let stream = stream.clone();
        async move {
            let meta = EventMetadata::system("test");
            let new = events.iter().map(|e| NewEvent::from_event(Uuid::now_v7(), &stream, e, &meta)).collect();
            store.append(org.id, &stream, ExpectedVersion::Any, new).await.unwrap();
        }
    };
    let failed = LoginFailed {
        at: at(100),
        reason: LoginFailureReason::BadPassword,
        consecutive_failures: 5,
        locked_until: None,
        device_hash: None,
        device_failures: None,
    };
    let lock = AccountLocked { until: at(10_000), reason: "too many failed logins".into(), by_user: None, at: at(100) };
    append(vec![Event::LoginFailed(failed), Event::AccountLocked(lock)]).await;
    let row = |pool: sqlx::PgPool| async move {
        let mut tx = xdr_projections::begin_org_tx(&pool, org.id).await.unwrap();
        let r = sqlx::query("SELECT failed_attempts, locked_until FROM rm_users WHERE org_id = $1 AND user_id = $2")
            .bind(org.id.0)
            .bind(org.analyst.0)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        (r.get::<i32, _>("failed_attempts"), r.get::<Option<DateTime<Utc>>, _>("locked_until"))
    };
    catch_up_once(&db.pool).await.unwrap();
    assert_eq!(row(db.pool.clone()).await, (5, Some(at(10_000))));
    let reset = PasswordChanged {
        password_hash: PASSWORD_HASH.into(),
        kind: PasswordChangeKind::Reset,
        clears_lock: true,
        at: at(200),
    };
    append(vec![Event::PasswordChanged(reset)]).await;
    catch_up_once(&db.pool).await.unwrap();
    assert_eq!(row(db.pool.clone()).await, (0, None));
}
