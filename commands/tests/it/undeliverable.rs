//! A message that keeps failing is given up on after `max_deliver` deliveries and becomes a
//! dead letter with its reason and body: not lost, not redelivered forever (the
//! MAX_DELIVERIES advisory path of `xdr_commands::cluster`), against a real JetStream.

use async_nats::jetstream::AckKind;
use futures::StreamExt;
use std::time::{Duration, Instant};
use xdr_commands::cluster::{ensure_consumer, run_undeliverable_dead_letterer, JetStreamSettings, Undeliverable};
use xdr_commands::ingest::nats_ingestor::ensure_ingest_streams;

use crate::nats_support::NatsEnv;

#[tokio::test]
async fn a_message_naked_until_max_deliver_is_dead_lettered_once_with_its_reason() {
    let env = NatsEnv::new().await;
    ensure_ingest_streams(&env.js, &env.config).await.unwrap();
    let stream = env.js.get_stream(&env.config.stream_name).await.unwrap();
    let settings = JetStreamSettings { max_deliver: 3, ..JetStreamSettings::default() };
    let consumer = ensure_consumer(&stream, settings.consumer(&env.config.consumer_name, Duration::from_secs(1), 10))
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let watch = Undeliverable {
        stream: env.config.stream_name.clone(),
        consumer: env.config.consumer_name.clone(),
        dlq_subject: env.config.dlq_subject(),
    };
    let dead_letterer = tokio::spawn(run_undeliverable_dead_letterer(env.js.clone(), watch, async {
        let _ = stopped.await;
    }));
    // The advisory stream exists before the message fails for the last time.
    let advisories = xdr_commands::cluster::undeliverable_stream_name(&env.config.stream_name);
    let started = Instant::now();
    while env.js.get_stream(&advisories).await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(10), "no advisory stream {advisories}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let subject = env.config.ingest_subject("cowrie");
    env.js.publish(subject.clone(), "a body every round fails on".into()).await.unwrap().await.unwrap();

    // A consumer that fails every delivery (nak): JetStream stops after three.
    let mut messages = consumer.messages().await.unwrap();
    let mut deliveries = 0;
    loop {
        match tokio::time::timeout(Duration::from_secs(4), messages.next()).await {
            Ok(Some(Ok(m))) => {
                deliveries += 1;
                m.ack_with(AckKind::Nak(None)).await.unwrap();
            }
            Ok(other) => panic!("pull failed: {other:?}"),
            Err(_) => break,
        }
        assert!(deliveries <= 3, "delivered again after max_deliver");
    }
    assert_eq!(deliveries, 3, "delivered max_deliver times");

    let started = Instant::now();
    let letters = loop {
        let letters = env.dead_letters().await;
        if !letters.is_empty() || started.elapsed() > Duration::from_secs(15) {
            break letters;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(letters.len(), 1, "one dead letter: {letters:?}");
    let (reason, source, index, body) = &letters[0];
    assert!(reason.contains("delivered 3 times") && reason.contains("max_deliver"), "{reason}");
    assert_eq!(source, &subject);
    assert_eq!(*index, None);
    assert_eq!(body, "a body every round fails on");
    // The advisory was acked: nothing waits to be dead-lettered again.
    let mut advisory_stream = env.js.get_stream(&advisories).await.unwrap();
    let started = Instant::now();
    while advisory_stream.info().await.unwrap().state.messages > 0 {
        assert!(started.elapsed() < Duration::from_secs(10), "the advisory was never acked");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop.send(());
    dead_letterer.await.unwrap().unwrap();
}
