//! Stream snapshots: a user stream flooded with failed logins is read from its snapshot plus
//! a short tail, gives exactly the state a full fold gives, survives a broken snapshot, and
//! stays inside its org (row-level security).

use chrono::{TimeZone, Utc};
use sqlx::Executor;
use uuid::Uuid;
use xdr_commands::handler::{self, SNAPSHOT_AFTER_EVENTS};
use xdr_commands::testing::TestDb;
use xdr_commands::{EventStore, ExpectedVersion, NewEvent};
use xdr_domain::aggregate::Aggregate;
use xdr_domain::identity::{Email, LoginFailed, LoginFailureReason, Role, User, UserCreated};
use xdr_domain::ids::{OrgId, UserId};
use xdr_domain::{Event, EventMetadata};

fn new_event(stream: &str, event: &Event) -> NewEvent {
    NewEvent::from_event(Uuid::now_v7(), stream, event, &EventMetadata::system("test"))
}

/// A user whose stream holds `failures` failed logins after its creation, appended in batches.
async fn flooded_user(store: &EventStore, org: OrgId, failures: usize) -> (String, Vec<Event>) {
    let user = UserId(Uuid::new_v4());
    let stream = user.stream_id();
    let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let created = Event::UserCreated(UserCreated {
        user_id: user,
        org_id: org,
        email: Email::parse("flooded@example.com").unwrap(),
        full_name: "Flooded".into(),
        role: Role::Analyst,
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
        created_at: t0,
    });
    store.append(org, &stream, ExpectedVersion::NoStream, vec![new_event(&stream, &created)]).await.unwrap();
    let mut history = vec![created];
    let failed: Vec<Event> = (0..failures)
        .map(|i| {
            Event::LoginFailed(LoginFailed {
                at: t0 + chrono::Duration::seconds(i as i64),
                reason: LoginFailureReason::AccountLocked,
                consecutive_failures: 5,
                locked_until: Some(t0 + chrono::Duration::days(1)),
                device_hash: None,
                device_failures: None,
            })
        })
        .collect();
    for chunk in failed.chunks(1000) {
        store.append_batch(org, chunk.iter().map(|e| new_event(&stream, e)).collect()).await.unwrap();
    }
    history.extend(failed);
    (stream, history)
}

async fn snapshot_version(db: &TestDb, org: OrgId, stream: &str) -> Option<i64> {
    let mut owner = db.owner_conn().await;
    sqlx::query_scalar("SELECT version FROM stream_snapshots WHERE org_id = $1 AND stream_id = $2")
        .bind(org.0)
        .bind(stream)
        .fetch_optional(&mut owner)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_flooded_user_stream_is_read_from_its_snapshot_with_the_same_state_as_a_full_fold() {
    let db = TestDb::new().await;
    let store = EventStore::new(db.api.clone());
    let org = OrgId(Uuid::new_v4());
    let (stream, history) = flooded_user(&store, org, 5_000).await;
    let full = User::from_history(&history);

    // The first read folds everything once and leaves a snapshot at the stream's head.
    let (first, version) = handler::load::<User>(&store, org, &stream).await.unwrap();
    assert_eq!((first.clone(), version), (full.clone(), 5_001));
    assert_eq!(snapshot_version(&db, org, &stream).await, Some(5_001));

    // Later events land in the tail; the snapshot moves only once the tail is long enough.
    let tail: Vec<Event> = history[1..=SNAPSHOT_AFTER_EVENTS].to_vec();
    store
        .append_batch(org, tail[..SNAPSHOT_AFTER_EVENTS - 1].iter().map(|e| new_event(&stream, e)).collect())
        .await
        .unwrap();
    let (state, version) = handler::load::<User>(&store, org, &stream).await.unwrap();
    let mut expected_history = history.clone();
    expected_history.extend(tail[..SNAPSHOT_AFTER_EVENTS - 1].iter().cloned());
    assert_eq!(state, User::from_history(&expected_history));
    assert_eq!(version, 5_001 + SNAPSHOT_AFTER_EVENTS as i64 - 1);
    assert_eq!(snapshot_version(&db, org, &stream).await, Some(5_001), "a short tail is not worth a snapshot");
    store.append_batch(org, vec![new_event(&stream, &tail[SNAPSHOT_AFTER_EVENTS - 1])]).await.unwrap();
    handler::load::<User>(&store, org, &stream).await.unwrap();
    assert_eq!(snapshot_version(&db, org, &stream).await, Some(5_001 + SNAPSHOT_AFTER_EVENTS as i64));
}

#[tokio::test]
async fn a_snapshot_that_no_longer_decodes_is_ignored_and_replaced() {
    let db = TestDb::new().await;
    let store = EventStore::new(db.api.clone());
    let org = OrgId(Uuid::new_v4());
    let (stream, history) = flooded_user(&store, org, 200).await;
    handler::load::<User>(&store, org, &stream).await.unwrap();
    let mut owner = db.owner_conn().await;
    owner.execute("UPDATE stream_snapshots SET state = '{\"not\": \"a user\"}'").await.unwrap();
    let (state, _) = handler::load::<User>(&store, org, &stream).await.unwrap();
    assert_eq!(state, User::from_history(&history));
    let repaired: serde_json::Value = sqlx::query_scalar("SELECT state FROM stream_snapshots WHERE stream_id = $1")
        .bind(&stream)
        .fetch_one(&mut owner)
        .await
        .unwrap();
    assert_eq!(User::from_snapshot(&repaired), Some(state));
}

#[tokio::test]
async fn snapshots_are_visible_only_inside_their_org() {
    let db = TestDb::new().await;
    let store = EventStore::new(db.api.clone());
    let org = OrgId(Uuid::new_v4());
    let (stream, _) = flooded_user(&store, org, 100).await;
    handler::load::<User>(&store, org, &stream).await.unwrap();
    // The application role sees nothing without the org's scope, and nothing of another org.
    let unscoped: i64 = sqlx::query_scalar("SELECT count(*) FROM stream_snapshots").fetch_one(&db.api).await.unwrap();
    assert_eq!(unscoped, 0);
    let mut tx = db.api.begin().await.unwrap();
    sqlx::query("SELECT set_config('app.org_id', $1, true)")
        .bind(Uuid::new_v4().to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    let other: i64 = sqlx::query_scalar("SELECT count(*) FROM stream_snapshots").fetch_one(&mut *tx).await.unwrap();
    assert_eq!(other, 0);
    sqlx::query("SELECT set_config('app.org_id', $1, true)").bind(org.0.to_string()).execute(&mut *tx).await.unwrap();
    let own: i64 = sqlx::query_scalar("SELECT count(*) FROM stream_snapshots").fetch_one(&mut *tx).await.unwrap();
    assert_eq!(own, 1);
}
