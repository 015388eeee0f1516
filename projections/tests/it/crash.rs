//! Crashes at any point lose nothing and apply nothing twice: a projection that fails in
//! the middle of a batch or after writing its rows (before the commit), and a runner future
//! dropped mid-batch, leave read models exactly at a committed checkpoint; restarting
//! converges to the same digest as a clean rebuild. Concurrent appenders while the runner
//! runs: nothing is skipped.

use sqlx::PgPool;
use std::time::Duration;
use xdr_commands::testing::TestDb;
use xdr_commands::EventStore;
use xdr_domain::ids::OrgId;
use xdr_projections::models;
use xdr_projections::runner::catch_up_with;
use xdr_projections::{catch_up_once, digest, rebuild, run_projector, wait_for_projections};

use crate::helpers::*;

/// When the injected fault strikes. Faults are injected where a real one happens, in the
/// database: a trigger on a projection's table (installed by the owner, removed by [`heal`])
/// that counts the rows written through it, across transactions, and strikes from the
/// `fail_at`-th on.
#[derive(Clone, Copy)]
enum Fault {
    /// Fail the statement that writes the N-th row: a crash in the middle of a batch.
    MidBatch,
    /// Let the whole batch that contains the N-th row be written, then fail its commit: a
    /// crash between the read-model write and the commit.
    AfterWrite,
    /// Stall on the N-th row: the runner future gets dropped while the transaction is open.
    Stall,
}

async fn inject(db: &TestDb, table: &str, fail_at: usize, fault: Fault) {
    let mut owner = db.owner_conn().await;
    // A crash, not bad data (SQLSTATE 08006, connection failure): the batch rolls back and
    // nothing is quarantined.
    let strike = match fault {
        Fault::MidBatch | Fault::AfterWrite => {
            "RAISE EXCEPTION 'injected fault at %/%', NEW.org_id, NEW.org_seq USING ERRCODE = '08006';"
        }
        Fault::Stall => "PERFORM pg_sleep(3600);",
    };
    let when = match fault {
        Fault::MidBatch | Fault::Stall => "BEFORE INSERT",
        Fault::AfterWrite => "AFTER INSERT",
    };
    let kind = match fault {
        Fault::AfterWrite => "CONSTRAINT TRIGGER",
        Fault::MidBatch | Fault::Stall => "TRIGGER",
    };
    let deferred = match fault {
        Fault::AfterWrite => "DEFERRABLE INITIALLY DEFERRED",
        Fault::MidBatch | Fault::Stall => "",
    };
    for statement in [
        "CREATE SEQUENCE xdr_test_fault_seen".to_owned(),
        // SECURITY DEFINER: the runtime login the runner uses has no right to the sequence.
        format!(
            "CREATE FUNCTION xdr_test_fault() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$ \
             BEGIN IF nextval('xdr_test_fault_seen') >= {fail_at} THEN {strike} END IF; RETURN NEW; END $$"
        ),
        format!(
            "CREATE {kind} xdr_test_fault {when} ON {table} {deferred} FOR EACH ROW EXECUTE FUNCTION xdr_test_fault()"
        ),
    ] {
        sqlx::query(&statement).execute(&mut owner).await.unwrap();
    }
}

/// Remove the fault, and end any transaction still stalled on it (what the database does
/// when the crashed runner's connection goes away).
async fn heal(db: &TestDb, table: &str) {
    let mut owner = db.owner_conn().await;
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event = 'PgSleep'",
    )
    .execute(&mut owner)
    .await
    .unwrap();
    sqlx::query(&format!("DROP TRIGGER xdr_test_fault ON {table}")).execute(&mut owner).await.unwrap();
}

/// Read models hold exactly the effects of events ≤ each org's (common) checkpoint: no
/// partial batch anywhere. Returns the checkpoints; at least one org is left behind.
async fn assert_at_committed_checkpoints(db: &TestDb, orgs: &[(OrgId, i64)]) -> Vec<i64> {
    let mut owner = db.owner_conn().await;
    let mut result = Vec::new();
    for &(org, head) in orgs {
        let cps = checkpoints(&db.pool, org).await;
        assert!(cps.is_empty() || cps.len() == models::ALL.len(), "{cps:?}");
        let c = cps.first().map_or(0, |cp| cp.1);
        assert!(cps.iter().all(|(_, s)| *s == c), "checkpoints move together: {cps:?}");
        let (telemetry, other): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE event_type = 'SecurityEventObserved'), \
                    count(*) FILTER (WHERE event_type <> 'SecurityEventObserved') \
             FROM event_log WHERE org_id = $1 AND org_seq <= $2",
        )
        .bind(org.0)
        .bind(c)
        .fetch_one(&mut owner)
        .await
        .unwrap();
        assert_eq!(count(&db.pool, org, "rm_security_events").await, telemetry);
        assert_eq!(count(&db.pool, org, "rm_audit_log").await, other);
        assert!(c <= head);
        result.push(c);
    }
    assert!(orgs.iter().zip(&result).any(|((_, head), c)| c < head), "the fault stopped the runner: {result:?}");
    result
}

/// Restart with the real projections and compare with a clean rebuild of the same log.
async fn assert_restart_equals_rebuild(db: &TestDb, pool: &PgPool, orgs: &[(OrgId, i64)]) {
    catch_up_once(pool).await.unwrap();
    for &(org, head) in orgs {
        assert!(checkpoints(pool, org).await.iter().all(|(_, s)| *s == head));
        assert_eq!(count(pool, org, "rm_security_events").await, head - IDENTITY_EVENTS);
        assert_eq!(count(pool, org, "rm_audit_log").await, IDENTITY_EVENTS);
    }
    let live = digest(pool).await.unwrap();
    let rebuilt = rebuild(&owner_pool(db).await, None, |_| {}).await.unwrap();
    assert_eq!(live, rebuilt.digest);
}

async fn seeded() -> (TestDb, Vec<(OrgId, i64)>) {
    let db = TestDb::new().await;
    let store = EventStore::new(db.pool.clone());
    let org = seed_identity(&store, "Crashy Corp").await;
    seed_telemetry(&store, org.id, 300, "c1").await;
    let org2 = seed_identity(&store, "Second Corp").await;
    let head2 = seed_telemetry(&store, org2.id, 30, "c2").await;
    let head = seed_telemetry(&store, org.id, 100, "c3").await;
    (db, vec![(org.id, head), (org2.id, head2)])
}

#[tokio::test]
async fn a_fault_in_the_middle_of_a_batch_rolls_the_whole_batch_back() {
    let (db, orgs) = seeded().await;
    inject(&db, "rm_security_events", 137, Fault::MidBatch).await;
    let err = catch_up_with(&db.pool, models::ALL, 50, |_| {}).await.unwrap_err();
    assert!(err.to_string().contains("injected fault"), "{err}");
    heal(&db, "rm_security_events").await;
    let c = assert_at_committed_checkpoints(&db, &orgs).await;
    assert!(c.iter().sum::<i64>() > 0, "earlier batches stayed committed");
    assert_restart_equals_rebuild(&db, &db.pool, &orgs).await;
}

#[tokio::test]
async fn a_fault_after_the_read_model_write_and_before_the_commit_leaves_no_trace() {
    let (db, orgs) = seeded().await;
    inject(&db, "rm_audit_log", 10, Fault::AfterWrite).await;
    let err = catch_up_with(&db.pool, models::ALL, 7, |_| {}).await.unwrap_err();
    assert!(err.to_string().contains("injected fault"), "{err}");
    heal(&db, "rm_audit_log").await;
    assert_at_committed_checkpoints(&db, &orgs).await;
    assert_restart_equals_rebuild(&db, &db.pool, &orgs).await;
}

#[tokio::test]
async fn a_runner_dropped_mid_batch_restarts_where_it_committed() {
    let (db, orgs) = seeded().await;
    inject(&db, "rm_security_events", 120, Fault::Stall).await;
    let run = catch_up_with(&db.pool, models::ALL, 40, |_| {});
    assert!(tokio::time::timeout(Duration::from_secs(3), run).await.is_err(), "the runner stalled and was dropped");
    // The dropped transaction is rolled back when its backend ends.
    heal(&db, "rm_security_events").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_at_committed_checkpoints(&db, &orgs).await;
    assert_restart_equals_rebuild(&db, &db.pool, &orgs).await;
}

#[tokio::test]
async fn concurrent_appenders_while_the_runner_runs_lose_nothing() {
    let db = TestDb::new().await;
    let store = EventStore::new(db.pool.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runner = tokio::spawn(run_projector(db.pool.clone(), async move {
        let _ = stopped.await;
    }));
    let a = seed_identity(&store, "Busy One").await;
    let b = seed_identity(&store, "Busy Two").await;
    let mut writers = Vec::new();
    for w in 0..4 {
        let store = store.clone();
        let org = if w % 2 == 0 { a.id } else { b.id };
        writers.push(tokio::spawn(async move {
            for round in 0..15 {
                seed_telemetry(&store, org, 1 + (round * 7 + w) % 23, &format!("w{w}r{round}")).await;
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    for org in [a.id, b.id] {
        let head = store.head(org).await.unwrap().unwrap().0;
        wait_for_projections(&db.pool, org, head, Duration::from_secs(30)).await.unwrap();
        assert_eq!(count(&db.pool, org, "rm_security_events").await, head - IDENTITY_EVENTS);
        assert_eq!(count(&db.pool, org, "rm_audit_log").await, IDENTITY_EVENTS);
    }
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), runner).await.expect("runner stops on shutdown").unwrap();
    let live = digest(&db.pool).await.unwrap();
    let rebuilt = rebuild(&owner_pool(&db).await, None, |_| {}).await.unwrap();
    assert_eq!(live, rebuilt.digest);
}

#[tokio::test]
async fn an_event_that_cannot_be_projected_is_quarantined_and_holds_up_nobody() {
    let db = TestDb::new().await;
    let store = EventStore::new(db.pool.clone());
    let healthy = seed_identity(&store, "Healthy Org").await;
    let poisoned = seed_identity(&store, "Poisoned Org").await;
    // A user event whose payload does not decode (written behind the domain's back).
    let bad = store
        .append(
            poisoned.id,
            &poisoned.analyst.stream_id(),
            xdr_commands::ExpectedVersion::Any,
            vec![xdr_commands::NewEvent {
                event_id: uuid::Uuid::new_v4(),
                stream_id: poisoned.analyst.stream_id(),
                event_type: "PasswordSet".into(),
                schema_version: 1,
                payload: serde_json::json!({"unexpected": true}),
                metadata: serde_json::json!({}),
            }],
        )
        .await
        .unwrap()
        .last_seq;
    let head = seed_telemetry(&store, healthy.id, 50, "h").await;
    let poisoned_head = seed_telemetry(&store, poisoned.id, 5, "p").await;
    catch_up_once(&db.pool).await.unwrap();
    assert!(checkpoints(&db.pool, healthy.id).await.iter().all(|(_, s)| *s == head), "the healthy org caught up");
    assert!(checkpoints(&db.pool, poisoned.id).await.iter().all(|(_, s)| *s == poisoned_head), "so did the other");
    assert_eq!(count(&db.pool, poisoned.id, "rm_security_events").await, 5);
    let quarantined = xdr_projections::quarantine::list(&db.pool, None).await.unwrap();
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    assert_eq!((quarantined[0].org_id, quarantined[0].projection.as_str()), (poisoned.id.0, "users"));
    assert_eq!(quarantined[0].org_seq, bad);
    assert!(quarantined[0].error.contains("cannot decode PasswordSet"), "{}", quarantined[0].error);
}

#[tokio::test]
async fn two_runners_on_the_same_orgs_apply_every_event_once() {
    let (db, orgs) = seeded().await;
    let (a, b) = tokio::join!(
        catch_up_with(&db.pool, models::ALL, 13, |_| {}),
        catch_up_with(&db.pool, models::ALL, 17, |_| {})
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let total: i64 = orgs.iter().map(|(_, head)| head).sum();
    // Each event was applied by exactly one of them: they serialize on the checkpoint rows.
    assert_eq!(a.events + b.events, total as u64);
    for &(org, head) in &orgs {
        assert_eq!(count(&db.pool, org, "rm_security_events").await, head - IDENTITY_EVENTS);
        assert_eq!(count(&db.pool, org, "rm_audit_log").await, IDENTITY_EVENTS);
    }
    let live = digest(&db.pool).await.unwrap();
    assert_eq!(live, rebuild(&owner_pool(&db).await, None, |_| {}).await.unwrap().digest);
}
