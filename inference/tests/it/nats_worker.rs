//! The worker on real NATS JetStream: committed events published as `StoredEvent` JSON on a
//! test-prefixed subject become the ground-truth incidents; redelivered messages change
//! nothing; a poison message is dropped without stopping the worker.

use std::time::{Duration, Instant};
use xdr_commands::testing::TestDb;
use xdr_commands::EventStore;
use xdr_inference::{run_detector, Detector, DetectorConfig};

use crate::support::*;

fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

#[tokio::test]
async fn the_worker_turns_published_events_into_the_ground_truth_incidents() {
    let db = TestDb::new().await;
    let store = EventStore::new(db.pool.clone());
    let client = async_nats::connect(nats_url()).await.expect("connect to NATS");
    let js = async_nats::jetstream::new(client);
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let config = DetectorConfig {
        subject_prefix: format!("t{tag}."),
        stream_name: format!("T{tag}_EVENTS"),
        durable: "detector".to_owned(),
        ..Default::default()
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(run_detector(config.clone(), store.clone(), js.clone(), Detector::default(), async {
        let _ = stop_rx.await;
    }));
    // Wait until the worker has created the stream.
    let deadline = Instant::now() + Duration::from_secs(10);
    while js.get_stream(&config.stream_name).await.is_err() {
        assert!(Instant::now() < deadline, "stream not created");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // As the relay does: commit, then publish what was committed, in log order.
    let org = new_org();
    let subject = format!("{}events.{}.SecurityEventObserved", config.subject_prefix, org);
    js.publish(subject.clone(), "not a stored event".into()).await.unwrap().await.unwrap();
    for chunk in real_log_events("sshd-auth-rfc3339.log").chunks(20) {
        let before = store.head(org).await.unwrap().map_or(0, |h| h.0);
        store.append_batch(org, chunk.to_vec()).await.unwrap();
        for e in read_all(&store, org)
            .await
            .into_iter()
            .filter(|e| e.org_seq > before && e.event_type == "SecurityEventObserved")
        {
            js.publish(subject.clone(), serde_json::to_vec(&e).unwrap().into()).await.unwrap().await.unwrap();
        }
    }
    let telemetry: Vec<_> =
        read_all(&store, org).await.into_iter().filter(|e| e.event_type == "SecurityEventObserved").collect();

    // Wait until all six incidents exist and the log stops growing.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = (0, Instant::now());
    loop {
        let head = store.head(org).await.unwrap().map_or(0, |h| h.0);
        if head != last.0 {
            last = (head, Instant::now());
        }
        let settled = last.1.elapsed() > Duration::from_millis(1500);
        if settled && incidents(&store, org).await.len() == 6 {
            break;
        }
        assert!(Instant::now() < deadline, "incidents not complete: {:?}", incidents(&store, org).await.keys());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let found = incidents(&store, org).await;
    assert_ground_truth(&found, &read_all(&store, org).await);

    // Redelivery: publish everything again (Nats-Msg-Id not set, so JetStream stores the
    // duplicates); the log must not grow.
    let head = store.head(org).await.unwrap().unwrap().0;
    for e in &telemetry {
        js.publish(subject.clone(), serde_json::to_vec(e).unwrap().into()).await.unwrap().await.unwrap();
    }
    let consumer_done = Instant::now() + Duration::from_secs(30);
    loop {
        let mut consumer: async_nats::jetstream::consumer::PullConsumer =
            js.get_stream(&config.stream_name).await.unwrap().get_consumer("detector").await.unwrap();
        let info = consumer.info().await.unwrap();
        if info.num_pending == 0 && info.num_ack_pending == 0 {
            break;
        }
        assert!(Instant::now() < consumer_done, "consumer did not drain: {info:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(store.head(org).await.unwrap().unwrap().0, head, "redelivered events appended nothing");
    assert_eq!(incidents(&store, org).await, found);

    stop_tx.send(()).unwrap();
    let stats = worker.await.unwrap().expect("worker ends cleanly");
    assert_eq!(stats.poison, 1);
    assert_eq!(stats.messages, 1 + 2 * telemetry.len() as u64);
    js.delete_stream(&config.stream_name).await.unwrap();
}
