use sqlx::Executor;
use uuid::Uuid;
use xdr_commands::handler::retry_on_conflict;
use xdr_commands::testing::TestDb;
use xdr_commands::{EventStore, ExpectedVersion, StoreError};
use xdr_domain::ids::OrgId;

use crate::helpers::event;

fn org() -> OrgId {
    OrgId(Uuid::new_v4())
}

#[tokio::test]
async fn appends_number_events_per_org_and_version_streams() {
    let db = TestDb::new().await;
    let store = EventStore::new(db.pool.clone());
    let (a, b) = (org(), org());
    store.append(a, "user-1", ExpectedVersion::NoStream, vec![event("user-1", 1), event("user-1", 2)]).await.unwrap();
    store.append(b, "user-1", ExpectedVersion::NoStream, vec![event("user-1", 1)]).await.unwrap();
    let r = store.append(a, "user-2", ExpectedVersion::Any, vec![event("user-2", 3)]).await.unwrap();
    assert_eq!((r.last_seq, r.stream_version, r.written), (3, 1, 1));

    let log = store.read_org(a, 0, 100).await.unwrap();
    let seqs: Vec<i64> = log.iter().map(|e| e.org_seq).collect();
    assert_eq!(seqs, vec![1, 2, 3]);
    let stream = store.read_stream(a, "user-1").await.unwrap();
    assert_eq!(stream.iter().map(|e| e.stream_version).collect::<Vec<_>>(), vec![1, 2]);
    // Payloads (tabs, newlines, backslashes, quotes) survive the insert byte for byte.
    assert_eq!(stream[0].payload, event("user-1", 1).payload);
    assert_eq!(store.read_org(b, 0, 100).await.unwrap().len(), 1, "org b has its own sequence");
}

#[tokio::test]
async fn racing_appenders_with_the_same_expected_version_one_wins_one_conflicts() {
    let db = TestDb::new().await;
    let store = EventStore::new(db.pool.clone());
    let o = org();
    store.append(o, "incident-1", ExpectedVersion::NoStream, vec![event("incident-1", 0)]).await.unwrap();

    let (s1, s2) = (store.clone(), store.clone());
    let first = tokio::spawn(async move {
        s1.append(o, "incident-1", ExpectedVersion::Exact(1), vec![event("incident-1", 1)]).await
    });
    let second = tokio::spawn(async move {
        s2.append(o, "incident-1", ExpectedVersion::Exact(1), vec![event("incident-1", 2)]).await
    });
    let results = [first.await.unwrap(), second.await.unwrap()];
    let wins = results.iter().filter(|r| r.is_ok()).count();
    let conflicts = results
        .iter()
        .filter(|r| matches!(r, Err(StoreError::Conflict { actual: 2, expected: ExpectedVersion::Exact(1), .. })))
        .count();
    assert_eq!((wins, conflicts), (1, 1), "{results:?}");

    // The loser reloads and decides again through the shared retry helper.
    let mut attempts = 0;
    let appended = retry_on_conflict(5, || {
        attempts += 1;
        let store = store.clone();
        let stale_first = attempts == 1;
        async move {
            let version = if stale_first { 1 } else { store.read_stream(o, "incident-1").await?.len() as i64 };
            store.append(o, "incident-1", ExpectedVersion::Exact(version), vec![event("incident-1", 3)]).await
        }
    })
    .await
    .unwrap();
    assert_eq!(attempts, 2, "first attempt used the stale version and conflicted");
    assert_eq!(appended.stream_version, 3);
}

#[tokio::test]
async fn no_stream_expectation_fails_when_the_stream_exists() {
    let db = TestDb::new().await;
    let store = EventStore::new(db.pool.clone());
    let o = org();
    store.append(o, "org-x", ExpectedVersion::NoStream, vec![event("org-x", 0)]).await.unwrap();
    let err = store.append(o, "org-x", ExpectedVersion::NoStream, vec![event("org-x", 1)]).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { actual: 1, .. }), "{err:?}");
}

#[tokio::test]
async fn a_duplicate_event_id_is_a_no_op_in_single_and_batch_appends() {
    let db = TestDb::new().await;
    let store = EventStore::new(db.pool.clone());
    let o = org();
    let e = event("user-1", 1);
    store.append(o, "user-1", ExpectedVersion::NoStream, vec![e.clone()]).await.unwrap();
    // A retried command with the same ids (even with a now-stale expectation) writes nothing.
    let again = store.append(o, "user-1", ExpectedVersion::NoStream, vec![e.clone()]).await.unwrap();
    assert_eq!(again.written, 0);
    let batch = store.append_batch(o, vec![e.clone(), event("telemetry-a", 2), e.clone()]).await.unwrap();
    assert_eq!(batch.written, 1, "only the new event is written, repeated ids inside the batch too");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM event_log WHERE org_id = $1 AND event_id = $2")
        .bind(o.0)
        .bind(e.event_id)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(count, 1);
    assert_eq!(store.head(o).await.unwrap().unwrap().0, 2);
}

#[tokio::test]
async fn concurrent_batches_with_the_same_ids_store_them_once() {
    let db = TestDb::new().await;
    let store = EventStore::new(db.pool.clone());
    let o = org();
    let events: Vec<_> = (0..200).map(|i| event("telemetry-s", i)).collect();
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (store, events) = (store.clone(), events.clone());
            tokio::spawn(async move { store.append_batch(o, events).await.unwrap().written })
        })
        .collect();
    let mut written = 0;
    for t in tasks {
        written += t.await.unwrap();
    }
    assert_eq!(written, 200);
    assert_eq!(store.read_org(o, 0, 1000).await.unwrap().len(), 200);
}

#[tokio::test]
async fn the_worker_login_cannot_update_delete_or_truncate_the_log() {
    let db = TestDb::new().await;
    let store = EventStore::new(db.pool.clone());
    let o = org();
    store.append_batch(o, vec![event("telemetry-a", 1)]).await.unwrap();
    let role: String = sqlx::query_scalar("SELECT current_user::text").fetch_one(&db.pool).await.unwrap();
    assert_eq!(role, xdr_commands::testing::WORKER_LOGIN);
    for sql in [
        "UPDATE event_log SET payload = '{}'::jsonb",
        "DELETE FROM event_log",
        "TRUNCATE event_log",
        "UPDATE event_log_p0 SET payload = '{}'::jsonb",
    ] {
        let err = db.pool.execute(sql).await.expect_err(sql);
        assert!(
            err.to_string().contains("permission denied") || err.to_string().contains("append-only"),
            "{sql}: {err}"
        );
    }
    assert_eq!(store.read_org(o, 0, 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn even_the_owner_is_stopped_by_the_append_only_trigger() {
    let db = TestDb::new().await;
    let store = EventStore::new(db.pool.clone());
    store.append_batch(org(), vec![event("telemetry-a", 1)]).await.unwrap();
    let mut owner = db.owner_conn().await;
    for sql in ["UPDATE event_log SET event_type = 'x'", "DELETE FROM event_log", "TRUNCATE event_log"] {
        let err = owner.execute(sql).await.expect_err(sql);
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
}

#[tokio::test]
async fn stored_hashes_chain_from_genesis_and_recompute_from_the_row() {
    let db = TestDb::new().await;
    let store = EventStore::new(db.pool.clone());
    let o = org();
    store.append_batch(o, (0..5).map(|i| event("telemetry-a", i)).collect()).await.unwrap();
    store.append(o, "user-1", ExpectedVersion::NoStream, vec![event("user-1", 9)]).await.unwrap();
    let log = store.read_org(o, 0, 100).await.unwrap();
    let mut prev = xdr_commands::store::chain::GENESIS_HASH.to_vec();
    for e in &log {
        assert_eq!(e.expected_hash(&prev).to_vec(), e.hash, "org_seq {}", e.org_seq);
        prev = e.hash.clone();
    }
    assert_eq!(store.head(o).await.unwrap().unwrap(), (6, prev));
}
