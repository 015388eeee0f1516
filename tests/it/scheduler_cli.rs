//! `mini-xdr scheduler`: the role sends an approved action nobody dispatched (after the
//! grace period), records the agent's answer from the results subject, and stops cleanly on
//! SIGTERM. The agent is emulated in the test, publishing its result as the gateway would.

use chrono::Utc;
use futures::StreamExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use uuid::Uuid;
use xdr_commands::handler::load;
use xdr_commands::response::actions::{request_action, NewAction};
use xdr_commands::response::ResponseConfig;
use xdr_commands::testing::TestDb;
use xdr_commands::EventStore;
use xdr_domain::ids::{ActionId, OrgId};
use xdr_domain::response::action::{Action, ActionKind, ActionStatus};
use xdr_domain::response::order::{ActionOrder, ActionResult};
use xdr_domain::EventMetadata;

#[tokio::test]
async fn the_scheduler_role_dispatches_records_results_and_stops_on_sigterm() {
    let db = TestDb::new().await;
    let store = EventStore::new(db.pool.clone());
    let prefix = format!("t{}.", Uuid::new_v4().simple());
    let config = ResponseConfig::with_prefix(&prefix);
    let client = async_nats::connect(std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into()))
        .await
        .expect("NATS");
    let js = async_nats::jetstream::new(client);
    xdr_commands::response::dispatch::ensure_streams(&js, &config).await.unwrap();

    // An approved block the API never sent (no dispatcher at hand): the scheduler's job.
    let org = OrgId(Uuid::new_v4());
    let action = ActionId(Uuid::new_v4());
    let new = NewAction {
        action_id: action,
        incident_id: None,
        kind: ActionKind::BlockIp,
        target: "203.0.113.9".into(),
        duration_secs: Some(600),
        note: None,
        requested_by: None,
        follows: None,
        policy: None,
        automatic: false,
        needs_approval: false,
    };
    // Requested in the past, so the dispatch grace has passed when the role starts.
    let requested_at = Utc::now() - chrono::Duration::seconds(10);
    request_action(&store, org, new, &EventMetadata::system("test"), requested_at).await.unwrap();
    xdr_projections::catch_up_once(&db.pool).await.unwrap();

    // The emulated agent.
    let stream = js.get_stream(&config.actions_stream).await.unwrap();
    let consumer: async_nats::jetstream::consumer::PullConsumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some("agent".into()),
            filter_subject: config.actions_subject(org.0),
            ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .unwrap();
    let agent = tokio::spawn({
        let (js, subject) = (js.clone(), config.results_subject(org.0));
        async move {
            let mut messages = consumer.messages().await.unwrap();
            while let Some(Ok(m)) = messages.next().await {
                let order: ActionOrder = serde_json::from_slice(&m.payload).unwrap();
                let result = ActionResult {
                    action_id: order.action_id,
                    org_id: order.org_id,
                    attempt: order.attempt,
                    agent: "agentkey:test".into(),
                    ok: true,
                    detail: "dry-run".into(),
                    at: Utc::now(),
                };
                js.publish(subject.clone(), serde_json::to_vec(&result).unwrap().into()).await.unwrap().await.unwrap();
                m.ack().await.unwrap();
            }
        }
    });

    let mut role = Command::new(env!("CARGO_BIN_EXE_mini-xdr"))
        .arg("scheduler")
        .envs(db.env())
        .env("XDR_BIND", "127.0.0.1:0")
        .env("XDR_NATS_PREFIX", &prefix)
        .env("XDR_SCHEDULER_INTERVAL_MS", "100")
        .env_remove("XDR_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn mini-xdr scheduler");

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (state, _) = load::<Action>(&store, org, &action.stream_id()).await.unwrap();
        if state.status == ActionStatus::Succeeded {
            assert_eq!(state.attempts, 1);
            break;
        }
        assert!(Instant::now() < deadline, "the scheduler role never got the block done: {:?}", state.status);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let pid = role.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let stop_deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = role.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < stop_deadline, "scheduler did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");
    agent.abort();
    let _ = js.delete_stream(&config.actions_stream).await;
    let _ = js.delete_stream(&config.results_stream).await;
}
