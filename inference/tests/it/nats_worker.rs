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

/// The log's events as someone without write access to the log would forge them: every
/// field plausible, numbered after the org's head.
fn forged(org: uuid::Uuid, after_seq: i64) -> Vec<xdr_commands::StoredEvent> {
    real_log_events("sshd-auth-rfc3339.log")
        .into_iter()
        .enumerate()
        .map(|(i, e)| xdr_commands::StoredEvent {
            org_id: org,
            org_seq: after_seq + 1 + i as i64,
            stream_id: e.stream_id,
            stream_version: 1 + i as i64,
            event_id: e.event_id,
            event_type: e.event_type,
            schema_version: e.schema_version,
            payload: e.payload,
            metadata: e.metadata,
            recorded_at: chrono::Utc::now(),
            hash: vec![0; 32],
        })
        .collect()
}

/// Forged event messages, published by anyone who can reach an unauthenticated NATS (here
/// the development one, under a prefix of the test's own): the whole real attack log for a
/// known org, numbered past its head; a known event with another id; a subject naming
/// another org than the payload; and the attack for an org the database does not know.
/// None opens an incident or writes anything; each is refused, counted and dead-lettered
/// with its org.
#[tokio::test]
async fn forged_and_foreign_event_messages_change_nothing_in_any_org() {
    use async_nats::jetstream::stream;
    let db = TestDb::new().await;
    let store = EventStore::new(db.pool.clone());
    let client = async_nats::connect(nats_url()).await.expect("connect to NATS");
    let js = async_nats::jetstream::new(client);
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let config = DetectorConfig {
        subject_prefix: format!("t{tag}.xdr."),
        stream_name: format!("T{tag}_EVENTS"),
        ..Default::default()
    };
    let dlq = format!("T{tag}_DLQ");
    js.get_or_create_stream(stream::Config {
        name: dlq.clone(),
        subjects: vec![format!("t{tag}.xdr.dlq.>")],
        ..Default::default()
    })
    .await
    .unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(run_detector(config.clone(), store.clone(), js.clone(), Detector::default(), async {
        let _ = stop_rx.await;
    }));
    let deadline = Instant::now() + Duration::from_secs(10);
    while js.get_stream(&config.stream_name).await.is_err() {
        assert!(Instant::now() < deadline, "stream not created");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A known org with one real (benign) event in its log.
    let known = new_org();
    store.append_batch(known, real_log_events("sshd-auth-rfc3339.log")[..1].to_vec()).await.unwrap();
    let logged = read_all(&store, known).await.remove(0);
    let unknown = new_org();
    let subject = |org: uuid::Uuid| format!("{}events.{org}.SecurityEventObserved", config.subject_prefix);
    let publish = |subject: String, e: &xdr_commands::StoredEvent| {
        let (js, body) = (js.clone(), serde_json::to_vec(e).unwrap());
        async move { js.publish(subject, body.into()).await.unwrap().await.unwrap() }
    };
    let attack = forged(known.0, 1);
    for e in &attack {
        publish(subject(known.0), e).await;
    }
    let impostor = xdr_commands::StoredEvent { event_id: uuid::Uuid::new_v4(), ..logged.clone() };
    publish(subject(known.0), &impostor).await;
    publish(subject(unknown.0), &logged).await;
    let foreign = forged(unknown.0, 0);
    for e in &foreign {
        publish(subject(unknown.0), e).await;
    }

    let drained = Instant::now() + Duration::from_secs(60);
    loop {
        let mut consumer: async_nats::jetstream::consumer::PullConsumer =
            js.get_stream(&config.stream_name).await.unwrap().get_consumer("detector").await.unwrap();
        let info = consumer.info().await.unwrap();
        if info.num_pending == 0 && info.num_ack_pending == 0 {
            break;
        }
        assert!(Instant::now() < drained, "consumer did not drain: {info:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop_tx.send(()).unwrap();
    let stats = worker.await.unwrap().expect("worker ends cleanly");

    assert_eq!(store.head(known).await.unwrap().map(|h| h.0), Some(1), "nothing appended to the known org");
    assert!(incidents(&store, known).await.is_empty());
    assert_eq!(store.head(unknown).await.unwrap(), None, "no event written for an org this database lacks");
    // The known org's forged attack and impostor, and the event whose subject names another org.
    assert_eq!(stats.refused, attack.len() as u64 + 2);
    assert_eq!(stats.unknown_org, foreign.len() as u64);
    assert_eq!(stats.events_appended, 0);

    let mut dead = js.get_stream(&dlq).await.unwrap();
    let count = dead.info().await.unwrap().state.messages;
    assert_eq!(count, stats.refused + stats.unknown_org, "every refusal dead-lettered");
    let mut orgs = std::collections::BTreeMap::<String, u64>::new();
    for seq in 1..=count {
        let m = dead.get_raw_message(seq).await.unwrap();
        *orgs.entry(m.headers.get("Xdr-Org-Id").expect("org header").as_str().to_owned()).or_default() += 1;
        assert!(m.headers.get("Xdr-Dlq-Reason").is_some());
    }
    assert_eq!(orgs[&unknown.0.to_string()], foreign.len() as u64 + 1);
    assert_eq!(orgs[&known.0.to_string()], attack.len() as u64 + 1);
    js.delete_stream(&config.stream_name).await.unwrap();
    js.delete_stream(&dlq).await.unwrap();
}

/// The shipped NATS configuration lets each role do its job with its own identity and
/// nothing more: on a `nats-server` started with `deploy/nats`, a producer's real sshd log
/// goes producer → ingestor → log → relay → detector (with containment evaluation) and
/// becomes incidents. A permission missing from `accounts.conf` fails this test.
#[tokio::test]
async fn the_pipeline_runs_on_the_shipped_nats_config_with_one_identity_per_role() {
    use std::sync::Arc;
    use xdr_commands::ingest::{publish_file, run_ingestor, IngestConfig};
    use xdr_commands::ingest_keys::{create_ingest_key, IngestKeyResolver};
    use xdr_commands::test_nats::ShippedNats;
    use xdr_domain::telemetry::SourceType;
    let nats = ShippedNats::start();
    let db = TestDb::new().await;
    let store = EventStore::new(db.pool.clone());
    let org = new_org();
    // Issued by the API (an admin's mutation), as the API's login.
    let key =
        create_ingest_key(&EventStore::new(db.api.clone()), org, "shipper", &xdr_domain::EventMetadata::system("test"))
            .await
            .unwrap();
    let ingest = IngestConfig { batch_wait: Duration::from_millis(100), ..IngestConfig::default() };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let ingestor_client = nats.connect_as("ingestor", None).await;
    let resolver = Arc::new(IngestKeyResolver::new(db.pool.clone(), Duration::from_secs(30)));
    let ingestor = tokio::spawn(run_ingestor(
        ingest.clone(),
        ingestor_client.clone(),
        store.clone(),
        resolver,
        stopped(stop_rx.clone()),
    ));
    let relay = tokio::spawn(xdr_commands::relay::run_relay(
        ingest.clone(),
        nats.connect_as("relay", None).await,
        store.clone(),
        Duration::from_millis(100),
        stopped(stop_rx.clone()),
    ));
    let config = DetectorConfig { response: Some(xdr_inference::ResponseSettings::default()), ..Default::default() };
    let detector = tokio::spawn(run_detector(
        config,
        store.clone(),
        async_nats::jetstream::new(nats.connect_as("detector", None).await),
        Detector::default(),
        stopped(stop_rx.clone()),
    ));
    // The producer may only look the ingest stream up, so the ingestor creates it first.
    let ingestor_js = async_nats::jetstream::new(ingestor_client);
    let deadline = Instant::now() + Duration::from_secs(20);
    while ingestor_js.get_stream(&ingest.stream_name).await.is_err() {
        assert!(Instant::now() < deadline, "the ingestor did not create its stream");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../domain/tests/fixtures/sshd-auth-rfc3339.log");
    use secrecy::ExposeSecret;
    let summary = publish_file(
        nats.connect_as("producer", None).await,
        &ingest,
        key.key.expose_secret(),
        SourceType::Sshd,
        &file,
        50,
        |_| {},
    )
    .await
    .expect("a producer publishes a log file");
    assert!(summary.messages > 0);

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = incidents(&store, org).await;
        if found.contains_key("127.0.0.6") {
            break;
        }
        assert!(Instant::now() < deadline, "no incident from the pipeline: {:?}", found.keys());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Under its own identity the detector set up the dead-letterer of what JetStream gives
    // up on (the advisory stream and its work-queue consumer) …
    let detector_js = async_nats::jetstream::new(nats.connect_as("detector", None).await);
    let advisories = detector_js.get_stream("XDR_EVENTS_UNDELIVERABLE").await.expect("the advisory stream");
    let deadline = Instant::now() + Duration::from_secs(10);
    while advisories.get_info().await.expect("advisory stream info").state.consumer_count != 1 {
        assert!(Instant::now() < deadline, "the detector's dead-letterer has no consumer");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // … and dead-letters a poison event message on the subject its identity may publish to.
    let relay_js = async_nats::jetstream::new(nats.connect_as("relay", None).await);
    let poison_subject = ingest.event_subject(org.0, "SecurityEventObserved");
    relay_js.publish(poison_subject, "not a stored event".into()).await.unwrap().await.unwrap();
    let dlq = ingestor_js.get_stream(&ingest.dlq_stream_name).await.expect("the dead-letter stream");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        use futures::TryStreamExt;
        let counts: Vec<(String, usize)> =
            dlq.info_with_subjects("xdr.dlq.events").await.expect("info").try_collect().await.expect("subjects");
        if counts.iter().any(|(subject, n)| subject == "xdr.dlq.events" && *n == 1) {
            break;
        }
        assert!(Instant::now() < deadline, "the poison event was not dead-lettered: {counts:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop_tx.send(true).unwrap();
    ingestor.await.unwrap().expect("ingestor ran with its identity");
    relay.await.unwrap().expect("relay ran with its identity");
    let stats = detector.await.unwrap().expect("detector ran with its identity");
    assert_eq!((stats.refused, stats.unknown_org, stats.poison), (0, 0, 1), "{stats:?}");
}

/// One attacker's detection cannot be committed (the log refuses its `IncidentOpened`: a
/// trigger stands in for an event the store rejects), in an org whose other attackers'
/// detections land in the same batches. The other five incidents are still opened, exactly
/// once; the events behind the poisoned one are dead-lettered with the store's reason and
/// terminated, not redelivered forever with their batch; and the worker keeps running.
#[tokio::test]
async fn a_detection_the_log_refuses_is_dead_lettered_and_the_rest_of_its_org_detected() {
    // Found by the rebuild that the org's first delivery starts (the log was written before
    // the worker ran), and found in live batches (the worker runs while the log is written).
    poisoned_detection(Start::AfterTheLog).await;
    poisoned_detection(Start::BeforeTheLog).await;
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Start {
    AfterTheLog,
    BeforeTheLog,
}

async fn poisoned_detection(start: Start) {
    use async_nats::jetstream::stream;
    use sqlx::Executor;
    const POISONED: &str = "127.0.0.5";
    let db = TestDb::new().await;
    let store = EventStore::new(db.pool.clone());
    let mut owner = db.owner_conn().await;
    owner
        .execute(
            "CREATE FUNCTION xdr_test_refuse_open() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
               IF NEW.event_type = 'IncidentOpened' AND NEW.payload->>'src_ip' = '127.0.0.5' THEN \
                 RAISE EXCEPTION 'injected: this incident cannot be stored'; \
               END IF; RETURN NEW; END $$; \
             CREATE TRIGGER xdr_test_refuse_open BEFORE INSERT ON event_log \
               FOR EACH ROW EXECUTE FUNCTION xdr_test_refuse_open();",
        )
        .await
        .expect("install the fault");
    let client = async_nats::connect(nats_url()).await.expect("connect to NATS");
    let js = async_nats::jetstream::new(client);
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let config = DetectorConfig {
        subject_prefix: format!("t{tag}.xdr."),
        stream_name: format!("T{tag}_EVENTS"),
        ..Default::default()
    };
    let dlq = format!("T{tag}_DLQ");
    js.get_or_create_stream(stream::Config {
        name: dlq.clone(),
        subjects: vec![format!("t{tag}.xdr.dlq.>")],
        ..Default::default()
    })
    .await
    .unwrap();

    js.get_or_create_stream(stream::Config {
        name: config.stream_name.clone(),
        subjects: config.stream_subjects(),
        ..Default::default()
    })
    .await
    .unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let run = || {
        let mut stop = stop_rx.clone();
        tokio::spawn(run_detector(config.clone(), store.clone(), js.clone(), Detector::default(), async move {
            let _ = stop.wait_for(|s| *s).await;
        }))
    };
    let mut worker = (start == Start::BeforeTheLog).then(run);
    if worker.is_some() {
        let stream = js.get_stream(&config.stream_name).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while stream.get_consumer::<async_nats::jetstream::consumer::pull::Config>("detector").await.is_err() {
            assert!(Instant::now() < deadline, "the worker did not start consuming");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Committed in chunks and published as the relay does, after each commit; the worker
    // sees batches that mix the poisoned attacker with the others.
    let org = new_org();
    let subject = format!("{}events.{}.SecurityEventObserved", config.subject_prefix, org);
    let mut telemetry = Vec::new();
    for chunk in real_log_events("sshd-auth-rfc3339.log").chunks(200) {
        let before = store.head(org).await.unwrap().map_or(0, |h| h.0);
        store.append_batch(org, chunk.to_vec()).await.unwrap();
        for e in read_all(&store, org)
            .await
            .into_iter()
            .filter(|e| e.org_seq > before && e.event_type == "SecurityEventObserved")
        {
            js.publish(subject.clone(), serde_json::to_vec(&e).unwrap().into()).await.unwrap().await.unwrap();
            telemetry.push(e);
        }
        if worker.is_some() {
            // Each chunk is detected live, not by the rebuild of the org's first delivery.
            drained(&js, &config).await;
        }
    }
    let worker = worker.take().unwrap_or_else(run);

    drained(&js, &config).await;
    stop_tx.send(true).unwrap();
    let stats = worker.await.unwrap().expect("the worker keeps running and ends cleanly");

    let found = incidents(&store, org).await;
    println!("{start:?}: {stats:?}");
    let ips: Vec<&str> = found.keys().map(String::as_str).collect();
    assert_eq!(ips, vec!["127.0.0.2", "127.0.0.3", "127.0.0.6", "127.0.0.7", "127.0.0.8"], "all but the poisoned");
    assert!(found.values().all(|i| i.opened_events == 1), "each opened exactly once");
    assert!(stats.uncommitted >= 1, "{stats:?}");
    assert_eq!(stats.messages, telemetry.len() as u64, "nothing redelivered: {stats:?}");

    let mut dead = js.get_stream(&dlq).await.unwrap();
    let count = dead.info().await.unwrap().state.messages;
    assert_eq!(count, stats.uncommitted, "every uncommitted detection dead-lettered once");
    for seq in 1..=count {
        let m = dead.get_raw_message(seq).await.unwrap();
        let reason = m.headers.get("Xdr-Dlq-Reason").expect("reason").as_str().to_owned();
        assert!(reason.contains("could not be committed") && reason.contains("injected"), "{reason}");
        assert_eq!(m.headers.get("Xdr-Org-Id").map(|v| v.as_str().to_owned()), Some(org.0.to_string()));
        let event: xdr_commands::StoredEvent = serde_json::from_slice(&m.payload).expect("the original message");
        assert_eq!(event.payload["src_ip"], POISONED, "only the poisoned attacker's events");
    }
    js.delete_stream(&config.stream_name).await.unwrap();
    js.delete_stream(&dlq).await.unwrap();
}

/// Wait until the worker's consumer has been delivered something and holds nothing unacked.
async fn drained(js: &async_nats::jetstream::Context, config: &DetectorConfig) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let consumer: Result<async_nats::jetstream::consumer::PullConsumer, _> =
            js.get_stream(&config.stream_name).await.unwrap().get_consumer("detector").await;
        if let Ok(mut consumer) = consumer {
            let info = consumer.info().await.unwrap();
            if info.num_pending == 0 && info.num_ack_pending == 0 && info.delivered.stream_sequence > 0 {
                return;
            }
        }
        assert!(Instant::now() < deadline, "consumer did not drain");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
