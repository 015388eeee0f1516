//! Builders for identity and telemetry histories, appended through the real `EventStore`.

use chrono::{DateTime, Duration, TimeZone, Utc};
use sqlx::PgPool;
use uuid::Uuid;
use xdr_commands::testing::TestDb;
use xdr_commands::{db, EventStore, ExpectedVersion, NewEvent};
use xdr_domain::identity::RevokeReason;
use xdr_domain::identity::{
    AccountLocked, AccountUnlocked, Email, InvitationAccepted, LoginFailed, LoginFailureReason, LoginSucceeded,
    OrganizationRegistered, OrganizationStatus, PasswordSet, RefreshTokenRotated, Role, SessionRevoked, SessionStarted,
    Slug, UserCreated, UserInvited,
};
use xdr_domain::ids::{OrgId, SessionId, UserId};
use xdr_domain::telemetry::{telemetry_event_id, SecurityEvent, SourceType};
use xdr_domain::{Event, EventMetadata};

/// A PHC string that must never appear in any read model.
pub const PASSWORD_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$NEVER-IN-A-READ-MODEL";
pub const INVITE_TOKEN_HASH: &str = "invite-digest-NEVER-IN-A-READ-MODEL";

pub fn at(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + Duration::seconds(seconds)
}

/// A pool that keeps the (superuser) owner role: rebuild truncates as the owner.
pub async fn owner_pool(db: &TestDb) -> PgPool {
    db::owner_pool(&db.options, 4).await.expect("owner pool")
}

/// What an org's identity history created.
#[derive(Debug, Clone, Copy)]
pub struct Org {
    pub id: OrgId,
    pub admin: UserId,
    pub analyst: UserId,
    pub session: SessionId,
}

async fn append(store: &EventStore, org: OrgId, stream: &str, events: Vec<Event>, actor: Option<UserId>) -> i64 {
    let metadata = EventMetadata {
        actor_user_id: actor.map(|u| u.0),
        actor: Some(if actor.is_some() { "user".into() } else { "system".into() }),
        request_ip: Some("198.51.100.7".into()),
        ..Default::default()
    };
    let new = events.iter().map(|e| NewEvent::from_event(Uuid::now_v7(), stream, e, &metadata)).collect();
    store.append(org, stream, ExpectedVersion::Any, new).await.expect("append").last_seq
}

/// Register an org with an admin, an invited analyst who accepted, a lockout and unlock,
/// a login, and a session that was refreshed and revoked. 17 events.
pub async fn seed_identity(store: &EventStore, name: &str) -> Org {
    let org = Org {
        id: OrgId(Uuid::new_v4()),
        admin: UserId(Uuid::new_v4()),
        analyst: UserId(Uuid::new_v4()),
        session: SessionId(Uuid::new_v4()),
    };
    let slug = Slug::from_name(name).unwrap();
    append(
        store,
        org.id,
        &org.id.stream_id(),
        vec![Event::OrganizationRegistered(OrganizationRegistered {
            org_id: org.id,
            name: name.into(),
            slug,
            status: OrganizationStatus::Active,
            created_at: at(0),
        })],
        None,
    )
    .await;
    let user = |id: UserId, email: &str, role: Role, hash: Option<&str>| {
        Event::UserCreated(UserCreated {
            user_id: id,
            org_id: org.id,
            email: Email::parse(email).unwrap(),
            full_name: format!("{email} name"),
            role,
            password_hash: hash.map(str::to_owned),
            created_at: at(1),
        })
    };
    let admin_email = format!("admin@{}.example", org.id.0.simple());
    append(
        store,
        org.id,
        &org.admin.stream_id(),
        vec![user(org.admin, &admin_email, Role::Admin, Some(PASSWORD_HASH))],
        None,
    )
    .await;
    let analyst_email = format!("analyst@{}.example", org.id.0.simple());
    append(
        store,
        org.id,
        &org.analyst.stream_id(),
        vec![
            user(org.analyst, &analyst_email, Role::Viewer, None),
            Event::UserInvited(UserInvited {
                token_hash: INVITE_TOKEN_HASH.into(),
                role: Role::Analyst,
                expires_at: at(3600),
            }),
        ],
        Some(org.admin),
    )
    .await;
    append(
        store,
        org.id,
        &org.analyst.stream_id(),
        vec![
            Event::InvitationAccepted(InvitationAccepted { at: at(10) }),
            Event::PasswordSet(PasswordSet { password_hash: PASSWORD_HASH.into(), at: at(10) }),
        ],
        Some(org.analyst),
    )
    .await;
    let mut failures: Vec<Event> = (1..=5)
        .map(|n| {
            Event::LoginFailed(LoginFailed {
                at: at(20 + n),
                reason: LoginFailureReason::BadPassword,
                consecutive_failures: n as u32,
                locked_until: None,
                device_hash: None,
                device_failures: None,
            })
        })
        .collect();
    failures.push(Event::AccountLocked(AccountLocked {
        until: at(25 + 900),
        reason: "too many failed logins".into(),
        by_user: None,
        at: at(25),
    }));
    append(store, org.id, &org.analyst.stream_id(), failures, None).await;
    append(
        store,
        org.id,
        &org.analyst.stream_id(),
        vec![Event::AccountUnlocked(AccountUnlocked { by_user: org.admin, at: at(30) })],
        Some(org.admin),
    )
    .await;
    append(
        store,
        org.id,
        &org.analyst.stream_id(),
        vec![Event::LoginSucceeded(LoginSucceeded { at: at(40), device_hash: None, recognised: false })],
        None,
    )
    .await;
    let jti = Uuid::new_v4();
    append(
        store,
        org.id,
        &org.session.stream_id(),
        vec![
            Event::SessionStarted(SessionStarted {
                session_id: org.session,
                user_id: org.analyst,
                refresh_jti: jti,
                at: at(40),
                user_agent: None,
            }),
            Event::RefreshTokenRotated(RefreshTokenRotated { old_jti: jti, new_jti: Uuid::new_v4(), at: at(50) }),
            Event::SessionRevoked(SessionRevoked {
                reason: RevokeReason::Logout,
                at: at(60),
                by_user: Some(org.analyst),
            }),
        ],
        Some(org.analyst),
    )
    .await;
    org
}

/// Identity events `seed_identity` appends.
pub const IDENTITY_EVENTS: i64 = 17;

/// `n` Cowrie-like failed logins, appended as one batch; returns the org's head.
pub async fn seed_telemetry(store: &EventStore, org: OrgId, n: usize, salt: &str) -> i64 {
    let events = (0..n)
        .map(|i| {
            let ts = at(1000 + i as i64);
            let mut e = SecurityEvent::new(
                ts,
                SourceType::Cowrie,
                "cowrie.login.failed",
                serde_json::json!({"eventid": "cowrie.login.failed", "n": i, "salt": salt, "password": "123456"}),
            );
            e.src_ip = Some(format!("203.0.113.{}", i % 200).parse().unwrap());
            e.src_port = Some(40_000 + (i % 1000) as u16);
            e.dst_ip = Some("10.0.0.5".parse().unwrap());
            e.dst_port = Some(22);
            e.protocol = Some("ssh".into());
            e.username = Some("root".into());
            e.password = Some("123456".into());
            e.session_id = Some(format!("s{i}"));
            e.hostname = Some("sensor-1".into());
            e.message = Some(format!("login attempt {i} failed\ttab \"quoted\""));
            let id = telemetry_event_id(ts, format!("{salt}/{i}").as_bytes());
            NewEvent::from_event(
                id,
                format!("telemetry-cowrie-{}", i % 3),
                &Event::SecurityEventObserved(e),
                &EventMetadata::system("ingest-key:test"),
            )
        })
        .collect();
    store.append_batch(org, events).await.expect("append telemetry").last_seq
}

/// Rows of a read-model table for one org, read through the org-scoped transaction.
pub async fn count(pool: &PgPool, org: OrgId, table: &str) -> i64 {
    let mut tx = xdr_projections::begin_org_tx(pool, org).await.unwrap();
    let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}")).fetch_one(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    n
}

/// Every read-model table.
pub const TABLES: [&str; 5] =
    ["rm_organizations", "rm_users", "rm_user_sessions", "rm_security_events", "rm_audit_log"];

/// Checkpoints of one org, by projection.
pub async fn checkpoints(pool: &PgPool, org: OrgId) -> Vec<(String, i64)> {
    sqlx::query_as("SELECT projection, last_seq FROM projection_checkpoints WHERE org_id = $1 ORDER BY projection")
        .bind(org.0)
        .fetch_all(pool)
        .await
        .unwrap()
}
