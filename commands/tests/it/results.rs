//! The results consumer (agents' answers into the log) on a real JetStream and PostgreSQL:
//! a result the log cannot take is dead-lettered with its reason and acknowledged, so it is
//! neither lost nor redelivered forever, and the results after it are still consumed.

use std::time::{Duration, Instant};
use uuid::Uuid;
use xdr_commands::ingest::nats_ingestor::ensure_ingest_streams;
use xdr_commands::response::results::{run_results_consumer, RESULTS_CONSUMER};
use xdr_commands::response::ResponseConfig;
use xdr_commands::testing::TestDb;
use xdr_commands::EventStore;
use xdr_domain::ids::{ActionId, OrgId};
use xdr_domain::response::order::ActionResult;

use crate::nats_support::NatsEnv;

#[tokio::test]
async fn results_the_log_cannot_take_are_dead_lettered_with_their_reason() {
    let env = NatsEnv::new().await;
    // The dead-letter stream (`<prefix>xdr.dlq.>`) the ingestor owns.
    ensure_ingest_streams(&env.js, &env.config).await.unwrap();
    let db = TestDb::new().await;
    let store = EventStore::new(db.pool.clone());
    let config = ResponseConfig::with_prefix(&env.config.subject_prefix);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let consumer = tokio::spawn(run_results_consumer(store, env.js.clone(), config.clone(), async {
        let _ = stopped.await;
    }));
    let started = Instant::now();
    while env.js.get_stream(&config.results_stream).await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(10), "results stream not created");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let org = Uuid::new_v4();
    let unknown_action = ActionResult {
        action_id: ActionId(Uuid::new_v4()),
        org_id: OrgId(org),
        attempt: 1,
        agent: "agentkey:test".into(),
        ok: true,
        detail: "blocked".into(),
        at: chrono::Utc::now(),
    };
    let other_org = ActionResult { org_id: OrgId(Uuid::new_v4()), ..unknown_action.clone() };
    let publish = |body: Vec<u8>| {
        let (js, subject) = (env.js.clone(), config.results_subject(org));
        async move { js.publish(subject, body.into()).await.unwrap().await.unwrap() }
    };
    publish(b"not a result".to_vec()).await;
    publish(serde_json::to_vec(&other_org).unwrap()).await;
    publish(serde_json::to_vec(&unknown_action).unwrap()).await;

    let started = Instant::now();
    let letters = loop {
        let letters = env.dead_letters().await;
        if letters.len() >= 3 {
            break letters;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "dead letters so far: {letters:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let reasons: Vec<&str> = letters.iter().map(|(reason, ..)| reason.as_str()).collect();
    assert!(reasons[0].starts_with("unreadable result"), "{reasons:?}");
    assert!(reasons[1].contains("on org") && reasons[1].contains(&org.to_string()), "{reasons:?}");
    assert!(reasons[2].contains(&unknown_action.action_id.0.to_string()), "{reasons:?}");
    assert!(letters.iter().all(|(_, subject, ..)| subject == &config.results_subject(org)));
    assert_eq!(letters[0].3, "not a result", "the original body is kept");

    // Acknowledged once dead-lettered: nothing left for the consumer, nothing dead-lettered twice.
    let mut results: async_nats::jetstream::consumer::PullConsumer =
        env.js.get_stream(&config.results_stream).await.unwrap().get_consumer(RESULTS_CONSUMER).await.unwrap();
    let info = results.info().await.unwrap();
    assert_eq!((info.num_pending, info.num_ack_pending), (0, 0), "{info:?}");
    assert_eq!(env.dead_letters().await.len(), 3);
    stop.send(()).unwrap();
    consumer.await.unwrap().expect("the consumer ends cleanly");
    for stream in [&config.results_stream, &config.actions_stream, &env.config.dlq_stream_name, &env.config.stream_name]
    {
        let _ = env.js.delete_stream(stream).await;
    }
}
