//! The relay against real NATS and PostgreSQL: every committed event lands in `XDR_EVENTS`
//! exactly once per event id, in `org_seq` order per org, also across a restart that
//! re-publishes a tail it had not checkpointed.

use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tokio::sync::oneshot;
use uuid::Uuid;
use xdr_commands::relay::{checkpoint, run_relay};
use xdr_commands::testing::TestDb;
use xdr_commands::{EventStore, ExpectedVersion, StoredEvent};
use xdr_domain::ids::OrgId;

use crate::helpers::event;
use crate::nats_support::NatsEnv;

fn start(env: &NatsEnv, store: &EventStore) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let (stop, stopped) = oneshot::channel::<()>();
    let (config, client, store) = (env.config.clone(), env.client.clone(), store.clone());
    let handle = tokio::spawn(async move {
        run_relay(config, client, store, Duration::from_millis(100), async {
            stopped.await.ok();
        })
        .await
        .expect("relay");
    });
    (stop, handle)
}

async fn wait_caught_up(store: &EventStore) {
    for _ in 0..300 {
        let mut behind = false;
        for (org, head) in store.org_heads().await.unwrap() {
            behind |= checkpoint(store.pool(), org).await.unwrap() < head;
        }
        if !behind {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("relay did not catch up in 30 s");
}

/// Every message of the events stream: (subject, Nats-Msg-Id, event).
async fn published(env: &NatsEnv) -> Vec<(String, String, StoredEvent)> {
    let mut stream = env.js.get_stream(&env.config.events_stream_name).await.unwrap();
    let last = stream.info().await.unwrap().state.last_sequence;
    let mut out = Vec::new();
    for seq in 1..=last {
        let m = stream.get_raw_message(seq).await.unwrap();
        let id = m.headers.get(async_nats::header::NATS_MESSAGE_ID).expect("Nats-Msg-Id").as_str().to_owned();
        out.push((m.subject.to_string(), id, serde_json::from_slice(&m.payload).unwrap()));
    }
    out
}

async fn append_some(store: &EventStore, org: OrgId, n: usize) {
    let batch = (0..n).map(|i| event(&format!("source-test-{}", i % 3), i)).collect();
    store.append_batch(org, batch).await.unwrap();
    let stream = format!("user-{}", Uuid::new_v4());
    store.append(org, &stream, ExpectedVersion::NoStream, vec![event(&stream, 0)]).await.unwrap();
}

fn assert_exactly_once_in_order(published: &[(String, String, StoredEvent)], env: &NatsEnv, heads: &[(OrgId, i64)]) {
    let mut ids = HashSet::new();
    let mut last_seq: HashMap<Uuid, i64> = HashMap::new();
    for (subject, msg_id, e) in published {
        assert!(ids.insert(e.event_id), "event {} published twice", e.event_id);
        assert_eq!(msg_id, &format!("{}/{}", e.org_id, e.event_id), "de-duplication ids are scoped by org");
        assert_eq!(subject, &env.config.event_subject(e.org_id, &e.event_type));
        let prev = last_seq.insert(e.org_id, e.org_seq).unwrap_or(0);
        assert_eq!(e.org_seq, prev + 1, "org {} out of order", e.org_id);
    }
    for (org, head) in heads {
        assert_eq!(last_seq.get(&org.0).copied(), Some(*head), "every event of org {org} published");
    }
}

#[tokio::test]
async fn the_relay_publishes_each_event_once_in_order_per_org_across_restarts() {
    let db = TestDb::new().await;
    let env = NatsEnv::new().await;
    let store = EventStore::new(db.pool.clone());
    let (a, b) = (OrgId(Uuid::new_v4()), OrgId(Uuid::new_v4()));
    append_some(&store, a, 40).await;
    append_some(&store, b, 25).await;

    let (stop, handle) = start(&env, &store);
    wait_caught_up(&store).await;
    // Events committed while the relay runs are published too (NOTIFY wakes it).
    append_some(&store, a, 7).await;
    wait_caught_up(&store).await;
    stop.send(()).unwrap();
    handle.await.unwrap();

    // Crash simulation: the relay published a tail but died before checkpointing it.
    sqlx::query("UPDATE relay_checkpoints SET last_seq = last_seq - 10 WHERE org_id = $1")
        .bind(a.0)
        .execute(&db.pool)
        .await
        .unwrap();
    append_some(&store, b, 12).await;
    let (stop, handle) = start(&env, &store);
    wait_caught_up(&store).await;
    stop.send(()).unwrap();
    handle.await.unwrap();

    let heads = store.org_heads().await.unwrap();
    assert_eq!(heads.iter().map(|h| h.1).sum::<i64>(), 40 + 1 + 25 + 1 + 7 + 1 + 12 + 1);
    let all = published(&env).await;
    assert_eq!(all.len() as i64, heads.iter().map(|h| h.1).sum::<i64>());
    assert_exactly_once_in_order(&all, &env, &heads);
    assert_eq!(
        all[0].2,
        store.read_org(all[0].2.org_id.into(), 0, 1).await.unwrap()[0],
        "the payload is the stored row"
    );
}

/// Secrets stay in PostgreSQL: what the relay fans out of identity and key events has no
/// password hash, invitation digest or key hash, while telemetry goes out as recorded.
#[tokio::test]
async fn the_relay_never_publishes_password_hashes_or_token_and_key_hashes() {
    let db = TestDb::new().await;
    let env = NatsEnv::new().await;
    let store = EventStore::new(db.pool.clone());
    let org = OrgId(Uuid::new_v4());
    let user = format!("user-{}", Uuid::new_v4());
    let secret_event = |event_type: &str, payload: serde_json::Value| xdr_commands::NewEvent {
        event_id: Uuid::new_v4(),
        stream_id: user.clone(),
        event_type: event_type.into(),
        schema_version: 1,
        payload,
        metadata: serde_json::json!({"actor": "test"}),
    };
    let phc = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";
    store
        .append(
            org,
            &user,
            ExpectedVersion::NoStream,
            vec![
                secret_event("UserCreated", serde_json::json!({"email": "a@example.com", "password_hash": phc})),
                secret_event("UserInvited", serde_json::json!({"token_hash": "invitation-digest", "role": "viewer"})),
                secret_event("PasswordSet", serde_json::json!({"password_hash": phc, "at": "2025-01-01T00:00:00Z"})),
                secret_event("IngestKeyCreated", serde_json::json!({"name": "k", "key_hash": "key-digest"})),
            ],
        )
        .await
        .unwrap();
    let (stop, handle) = start(&env, &store);
    wait_caught_up(&store).await;
    stop.send(()).unwrap();
    handle.await.unwrap();

    let all = published(&env).await;
    assert_eq!(all.len(), 4);
    let user_created = &all[0].2;
    assert_eq!(user_created.event_type, "UserCreated");
    assert_eq!(user_created.payload, serde_json::json!({"email": "a@example.com"}), "no password hash on NATS");
    for (_, _, e) in &all {
        let text = e.payload.to_string();
        for secret in [phc, "invitation-digest", "key-digest"] {
            assert!(!text.contains(secret), "{} fanned out a secret: {text}", e.event_type);
        }
    }
    // The log keeps them (login needs the hash): only the fan-out is redacted.
    let stored = store.read_org(org, 0, 1).await.unwrap();
    assert_eq!(stored[0].payload["password_hash"], phc);
}
