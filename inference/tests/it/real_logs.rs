//! The real logs through the detector core: the incidents are the ground truth, and
//! processing the same events again changes nothing.

use xdr_commands::testing::TestDb;
use xdr_commands::EventStore;
use xdr_inference::Detector;

use crate::support::*;

#[tokio::test]
async fn real_logs_produce_exactly_the_ground_truth_incidents_for_both_sshd_formats() {
    let db = TestDb::new().await;
    let store = EventStore::new(db.pool.clone());
    for sshd in ["sshd-auth.log", "sshd-auth-rfc3339.log"] {
        let org = new_org();
        store.append_batch(org, real_log_events(sshd)).await.expect("append");
        let appended = detect(&mut Detector::default(), &store, org, 0).await;
        assert!(appended > 0);
        let all = read_all(&store, org).await;
        let found = incidents(&store, org).await;
        assert_ground_truth(&found, &all);
        // Every incident says why: reason, top features with values, evidence of this org.
        for v in found.values() {
            let opened = all
                .iter()
                .find(|e| e.stream_id == v.stream_id && e.event_type == "IncidentOpened")
                .expect("opened event");
            assert!(!opened.payload["reason"].as_str().unwrap().is_empty());
            assert!(!opened.payload["top_features"].as_array().unwrap().is_empty());
            assert_eq!(opened.metadata["actor"], "detector");
            let head = all.len() as i64;
            assert!(v.state.evidence.iter().all(|s| *s >= 1 && *s <= head));
        }
    }
}

#[tokio::test]
async fn reprocessing_the_same_events_gives_the_same_incidents_and_appends_nothing() {
    let db = TestDb::new().await;
    let store = EventStore::new(db.pool.clone());
    let org = new_org();
    store.append_batch(org, real_log_events("sshd-auth-rfc3339.log")).await.expect("append");
    let telemetry_head = read_all(&store, org).await.len() as i64;
    let mut detector = Detector::default();
    detect(&mut detector, &store, org, 0).await;
    let before = incidents(&store, org).await;
    let head_before = store.head(org).await.unwrap().unwrap().0;

    // Redelivery to the same detector: recognised, no commands at all.
    let again = detect(&mut detector, &store, org, 0).await;
    assert_eq!(again, 0);
    // A fresh detector (another replica, a restart without state) over the same telemetry:
    // the same deterministic commands, all already applied.
    let mut fresh = Detector::default();
    let mut issued = 0;
    for e in read_all(&store, org).await.iter().filter(|e| e.org_seq <= telemetry_head) {
        let commands = fresh.process(e);
        issued += commands.len();
        assert_eq!(xdr_inference::execute_commands(&store, &commands).await.unwrap(), 0, "seq {}", e.org_seq);
    }
    assert!(issued > 0, "the fresh detector did decide again");
    assert_eq!(store.head(org).await.unwrap().unwrap().0, head_before, "no new events");
    let after = incidents(&store, org).await;
    assert_eq!(after, before, "same incidents, same ids, same evidence");
    // Incident payloads (floats included) hash the same when read back: the chain is intact.
    let (_, broken) = xdr_audit::verify::verify_org(&db.pool, org.0).await.unwrap();
    assert_eq!(broken, None);
}

#[tokio::test]
async fn real_logs_delivered_out_of_order_are_judged_on_event_time() {
    let db = TestDb::new().await;
    let store = EventStore::new(db.pool.clone());
    let org = new_org();
    // A fixed pseudo-random permutation of all records: the log order (org_seq) no longer
    // follows event time, as when several sensors ship with different delays. The whole
    // capture spans 3 minutes, inside the default 10-minute lateness.
    let mut events = real_log_events("sshd-auth.log");
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    for i in (1..events.len()).rev() {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        events.swap(i, (state >> 33) as usize % (i + 1));
    }
    store.append_batch(org, events).await.expect("append");
    detect(&mut Detector::default(), &store, org, 0).await;
    assert_ground_truth(&incidents(&store, org).await, &read_all(&store, org).await);
}
