//! The shipped NATS configuration (`deploy/nats`) on a real `nats-server` started by the
//! test: each role's identity can do its own job and nothing more. A producer's credential
//! publishes telemetry but can neither publish committed events or orders nor read any of
//! them, directly or through the JetStream API.

use async_nats::jetstream;
use std::time::Duration;
use uuid::Uuid;
use xdr_commands::ingest::nats_ingestor::ensure_ingest_streams;
use xdr_commands::ingest::IngestConfig;
use xdr_commands::relay::ensure_events_stream;
use xdr_commands::response::{Dispatcher, ResponseConfig};
use xdr_commands::test_nats::ShippedNats;

/// A JetStream context that gives up on an unanswered request soon: a request the server
/// refuses for lack of permission is never answered.
fn js(client: async_nats::Client) -> jetstream::Context {
    let mut js = jetstream::new(client);
    js.set_timeout(Duration::from_secs(1));
    js
}

async fn messages_in(js: &jetstream::Context, stream: &str) -> u64 {
    js.get_stream(stream).await.expect("stream").info().await.expect("info").state.messages
}

#[tokio::test]
async fn a_producer_credential_publishes_telemetry_only_and_reads_nothing() {
    let nats = ShippedNats::start();
    let ingest = IngestConfig::default();
    let response = ResponseConfig::default();
    // Each role sets up its own streams with its own identity.
    let ingestor = js(nats.connect_as("ingestor", None).await);
    ensure_ingest_streams(&ingestor, &ingest).await.expect("the ingestor creates its streams");
    let relay = js(nats.connect_as("relay", None).await);
    ensure_events_stream(&relay, &ingest).await.expect("the relay creates the events stream");
    let api = js(nats.connect_as("api", None).await);
    Dispatcher::new(api.clone(), response.clone()).await.expect("the API creates the order streams");
    let org = Uuid::new_v4();
    relay
        .publish(ingest.event_subject(org, "UserCreated"), "{}".into())
        .await
        .unwrap()
        .await
        .expect("the relay publishes committed events");

    let (errors_tx, mut errors) = tokio::sync::mpsc::unbounded_channel();
    let producer_client = nats.connect_as("producer", Some(errors_tx)).await;
    let producer = js(producer_client.clone());
    producer
        .publish(ingest.ingest_subject("cowrie"), "{}".into())
        .await
        .unwrap()
        .await
        .expect("a producer publishes telemetry");

    // Publishing where only the relay and the dispatchers may: refused by the server.
    for subject in [ingest.event_subject(org, "SecurityEventObserved"), response.actions_subject(org)] {
        let ack = producer.publish(subject.clone(), "{}".into()).await.unwrap();
        assert!(ack.await.is_err(), "a producer must not be able to publish on {subject}");
    }
    // Reading committed events: neither by subscription nor through the JetStream API.
    let mut sub = producer_client.subscribe(ingest.events_wildcard()).await.unwrap();
    producer_client.flush().await.unwrap();
    assert!(producer.get_stream(&ingest.events_stream_name).await.is_err(), "stream info of XDR_EVENTS");
    let reader = jetstream::consumer::pull::Config { durable_name: Some("snoop".into()), ..Default::default() };
    assert!(
        producer.create_consumer_on_stream(reader, ingest.events_stream_name.as_str()).await.is_err(),
        "a consumer on XDR_EVENTS"
    );
    relay.publish(ingest.event_subject(org, "UserCreated"), "{}".into()).await.unwrap().await.unwrap();
    let delivered = tokio::time::timeout(Duration::from_millis(500), futures::StreamExt::next(&mut sub)).await;
    assert!(!matches!(delivered, Ok(Some(_))), "a producer received a committed event");

    let mut refused = Vec::new();
    while let Ok(e) = errors.try_recv() {
        refused.push(e);
    }
    let joined = refused.join("\n").to_lowercase();
    assert!(joined.contains("permissions violation for publish"), "{joined}");
    assert!(joined.contains("permissions violation for subscription"), "{joined}");
    // Nothing the producer tried reached a stream.
    assert_eq!(messages_in(&relay, &ingest.events_stream_name).await, 2, "only the relay's two events");
    assert_eq!(messages_in(&api, &response.actions_stream).await, 0, "no order");
}

/// What the other identities may not do either: the relay cannot send orders, the API cannot
/// publish committed events, the detector cannot publish telemetry or results, and nobody
/// but the relay reads the anchors.
#[tokio::test]
async fn each_role_publishes_only_its_own_subjects() {
    let nats = ShippedNats::start();
    let ingest = IngestConfig::default();
    let response = ResponseConfig::default();
    let relay = js(nats.connect_as("relay", None).await);
    ensure_events_stream(&relay, &ingest).await.unwrap();
    let api = js(nats.connect_as("api", None).await);
    Dispatcher::new(api.clone(), response.clone()).await.unwrap();
    let ingestor = js(nats.connect_as("ingestor", None).await);
    ensure_ingest_streams(&ingestor, &ingest).await.unwrap();
    let org = Uuid::new_v4();
    let detector = js(nats.connect_as("detector", None).await);
    let scheduler = js(nats.connect_as("scheduler", None).await);
    for (who, js, subject) in [
        ("relay", &relay, response.actions_subject(org)),
        ("api", &api, ingest.event_subject(org, "SecurityEventObserved")),
        ("detector", &detector, ingest.ingest_subject("cowrie")),
        ("detector", &detector, response.results_subject(org)),
        ("scheduler", &scheduler, ingest.event_subject(org, "SecurityEventObserved")),
        ("ingestor", &ingestor, ingest.event_subject(org, "SecurityEventObserved")),
    ] {
        let ack = js.publish(subject.clone(), "{}".into()).await.unwrap();
        assert!(ack.await.is_err(), "{who} must not publish on {subject}");
    }
    for (who, js) in [("api", &api), ("detector", &detector), ("scheduler", &scheduler)] {
        js.publish(response.actions_subject(org), "{}".into()).await.unwrap().await.unwrap_or_else(|e| {
            panic!("{who} dispatches orders: {e}");
        });
    }
    assert_eq!(messages_in(&relay, &ingest.events_stream_name).await, 0);
    assert_eq!(messages_in(&ingestor, &ingest.stream_name).await, 0);
    assert_eq!(messages_in(&api, &response.actions_stream).await, 3);
}
