//! Read-your-writes: `wait_for_projections` returns once the runner has caught up to the
//! caller's `org_seq`, and fails with a clear error when nobody projects.

use std::time::{Duration, Instant};
use xdr_commands::testing::TestDb;
use xdr_commands::EventStore;
use xdr_projections::{run_projector, wait_for_projections, ProjectionLag};

use crate::helpers::*;

#[tokio::test]
async fn waiting_times_out_clearly_without_a_runner_and_returns_once_it_catches_up() {
    let db = TestDb::new().await;
    let store = EventStore::new(db.pool.clone());
    let org = seed_identity(&store, "Waiting Co").await;
    let head = seed_telemetry(&store, org.id, 20, "w").await;

    let start = Instant::now();
    let err = wait_for_projections(&db.pool, org.id, head, Duration::from_millis(300)).await.unwrap_err();
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(300) && waited < Duration::from_secs(3), "{waited:?}");
    let ProjectionLag::TimedOut { seq, ref behind, .. } = err else { panic!("{err}") };
    assert_eq!(seq, head);
    assert_eq!(behind.len(), xdr_projections::models::all().len(), "every projection is behind: {behind:?}");
    let message = err.to_string();
    assert!(message.contains(&format!("did not reach org_seq {head}")), "{message}");
    assert!(message.contains("is the projector running?"), "{message}");

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runner = tokio::spawn(run_projector(db.pool.clone(), async move {
        let _ = stopped.await;
    }));
    wait_for_projections(&db.pool, org.id, head, Duration::from_secs(10)).await.unwrap();
    assert_eq!(count(&db.pool, org.id, "rm_security_events").await, 20, "the caller reads its own write");

    // A write after the runner went idle is picked up by its notification, quickly.
    let head = seed_telemetry(&store, org.id, 5, "w2").await;
    let start = Instant::now();
    wait_for_projections(&db.pool, org.id, head, Duration::from_secs(10)).await.unwrap();
    assert!(start.elapsed() < Duration::from_millis(450), "woken by NOTIFY, not the poll: {:?}", start.elapsed());
    assert_eq!(count(&db.pool, org.id, "rm_security_events").await, 25);
    stop.send(()).unwrap();
    runner.await.unwrap();
}
