//! A detector killed mid-attack and restarted rebuilds its windows from the log and still
//! opens the incidents when the thresholds are crossed.

use xdr_commands::testing::TestDb;
use xdr_commands::EventStore;
use xdr_inference::{execute_commands, rebuild_org, Detector, DetectorConfig};

use crate::support::*;

#[tokio::test]
async fn a_detector_restarted_mid_attack_still_opens_the_incidents() {
    let db = TestDb::new().await;
    let store = EventStore::new(db.pool.clone());
    let events = real_log_events("sshd-auth.log");
    // Split inside 127.0.0.2's brute force: the first half holds 3 of its failures, so the
    // sixth failure (the threshold) arrives after the restart.
    let third_failure = events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.payload["src_ip"] == "127.0.0.2" && e.payload["event_type"] == "cowrie.login.failed")
        .nth(2)
        .map(|(i, _)| i)
        .unwrap();
    let split = third_failure + 1;

    // Reference: an uninterrupted run.
    let reference_org = new_org();
    store.append_batch(reference_org, events.clone()).await.unwrap();
    detect(&mut Detector::default(), &store, reference_org, 0).await;
    let reference = incidents(&store, reference_org).await;

    // Interrupted run: first half, detector dies, the rest of the attack arrives later.
    let org = new_org();
    store.append_batch(org, events[..split].to_vec()).await.unwrap();
    let mut first = Detector::default();
    detect(&mut first, &store, org, 0).await;
    assert!(!incidents(&store, org).await.contains_key("127.0.0.2"), "threshold not crossed yet");
    drop(first);
    let head = store.head(org).await.unwrap().unwrap().0;

    let mut restarted = Detector::default();
    let commands = rebuild_org(&mut restarted, &store, org, &DetectorConfig::default()).await.unwrap();
    assert_eq!(execute_commands(&store, &commands).await.unwrap(), 0, "rebuild re-decides what is already applied");
    store.append_batch(org, events[split..].to_vec()).await.unwrap();
    detect(&mut restarted, &store, org, head).await;
    let after_restart = incidents(&store, org).await;
    assert_ground_truth(&after_restart, &read_all(&store, org).await);

    // The restarted detector's incidents equal the uninterrupted run's, evidence included
    // (both orgs got the telemetry in the same order, so org_seqs line up).
    let ours: Vec<_> = after_restart.values().map(summary).collect();
    let theirs: Vec<_> = reference.values().map(summary).collect();
    assert_eq!(ours, theirs);

    // Control: without the rebuild, the second half alone misses 127.0.0.2's early failures.
    let control_org = new_org();
    store.append_batch(control_org, events[..split].to_vec()).await.unwrap();
    detect(&mut Detector::default(), &store, control_org, 0).await;
    store.append_batch(control_org, events[split..].to_vec()).await.unwrap();
    detect(&mut Detector::default(), &store, control_org, head).await;
    let control = incidents(&store, control_org).await;
    assert_ne!(summary(&control["127.0.0.2"]), summary(&reference["127.0.0.2"]));
}
