//! Issue #13: the hash chain is computed over bytes that `jsonb` gives back, for every JSON
//! value a payload can hold. Arbitrary payloads are appended through the real store, read
//! back from PostgreSQL and verified; then exported as a bundle and verified offline.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Number, Value};
use uuid::Uuid;
use xdr_audit::{bundle, verify};
use xdr_commands::store::chain::MAX_JSON_DEPTH;
use xdr_commands::testing::TestDb;
use xdr_commands::{EventStore, NewEvent, StoreError};
use xdr_domain::ids::OrgId;

/// Number texts as producers write them: long decimals, integers past 2^53, u64 and i64,
/// exponents near the edges of a double. Parsed as the ingest path parses them.
fn number_from_text() -> impl Strategy<Value = Value> {
    "-?(0|[1-9][0-9]{0,45})(\\.[0-9]{1,40})?([eE][-+]?[0-9]{1,3})?"
        .prop_filter_map("a number serde_json accepts (finite)", |t| serde_json::from_str::<Value>(&t).ok())
}

fn edge_float() -> impl Strategy<Value = Value> {
    prop::sample::select(vec![
        -0.0,
        0.0,
        1e16,
        -1e16,
        1.5e17,
        9.223372036854776e18,
        -9.223372036854776e18,
        1.8446744073709552e19,
        1e300,
        f64::MAX,
        f64::MIN,
        f64::MIN_POSITIVE,
        5e-324,
        6.005022035182606e-10,
        0.1 + 0.2,
    ])
    .prop_map(Value::from)
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop::sample::select(vec![i64::MIN, i64::MAX, (1 << 53) + 1, -(1 << 53) - 1]).prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |x| Number::from_f64(x).map(Value::Number)),
        edge_float(),
        number_from_text(),
        any::<String>().prop_map(Value::String),
        // Escapes, controls, NUL, separators jsonb and JSON treat specially.
        "[\\x00-\\x1f\"\\\\/\u{7f}\u{2028}\u{2029}\u{fffd}\u{feff}é😀]{0,16}".prop_map(Value::String),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(6, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((any::<String>(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A raw producer record with a repeated key, parsed as the ingest path parses it.
fn record_with_duplicate_keys() -> impl Strategy<Value = Value> {
    (leaf(), leaf()).prop_map(|(a, b)| {
        let text = format!(r#"{{"eventid":"x","k":{a},"k":{b},"nested":{{"k":{b},"k":{a}}}}}"#);
        serde_json::from_str(&text).expect("a record of valid values")
    })
}

fn payload() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => value(),
        1 => record_with_duplicate_keys(),
        1 => (leaf(), 1usize..=MAX_JSON_DEPTH).prop_map(|(v, depth)| nested(v, depth)),
    ]
}

/// `v` inside `depth` levels of alternating objects and arrays.
fn nested(mut v: Value, depth: usize) -> Value {
    for level in 0..depth {
        v = if level % 2 == 0 { serde_json::json!({ "d": v }) } else { Value::Array(vec![v]) };
    }
    v
}

fn event(payload: Value, metadata: Value) -> NewEvent {
    NewEvent {
        event_id: Uuid::new_v4(),
        stream_id: "telemetry-prop".into(),
        event_type: "SecurityEventObserved".into(),
        schema_version: 1,
        payload,
        metadata,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arbitrary_payloads_verify_from_the_database_and_from_a_bundle() {
    let db = TestDb::new().await;
    let store = EventStore::new(db.pool.clone());
    let owner = sqlx::PgPool::connect_with(db.options.clone()).await.unwrap();
    let handle = tokio::runtime::Handle::current();
    let mut runner = TestRunner::new(Config { cases: 96, failure_persistence: None, ..Config::default() });
    let strategy = prop::collection::vec((payload(), value()), 1..8);
    let result = tokio::task::block_in_place(|| {
        runner.run(&strategy, |batch| {
            handle.block_on(async {
                let org = OrgId(Uuid::new_v4());
                let events: Vec<NewEvent> = batch.iter().cloned().map(|(p, m)| event(p, m)).collect();
                // Half the batches through the telemetry path (COPY), half one by one.
                if batch.len() % 2 == 0 {
                    store.append_batch(org, events).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
                } else {
                    for e in events {
                        store
                            .append(org, "telemetry-prop", xdr_commands::ExpectedVersion::Any, vec![e])
                            .await
                            .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    }
                }
                let (checked, broken) = verify::verify_org(&owner, org.0).await.unwrap();
                prop_assert_eq!(broken, None, "payloads {:?}", batch);
                prop_assert_eq!(checked, batch.len() as u64);
                // Every row's stored hash equals the one recomputed from what jsonb gives back.
                for stored in store.read_org(org, 0, i64::MAX).await.unwrap() {
                    let prev = if stored.org_seq == 1 {
                        xdr_commands::store::chain::GENESIS_HASH.to_vec()
                    } else {
                        store.read_org(org, stored.org_seq - 2, 1).await.unwrap()[0].hash.clone()
                    };
                    prop_assert_eq!(&stored.expected_hash(&prev)[..], &stored.hash[..]);
                }
                let mut file = Vec::new();
                bundle::export(&owner, org, None, &mut file).await.unwrap();
                let manifest = bundle::verify(&file[..], |_| Ok(()))
                    .map_err(|e| TestCaseError::fail(format!("bundle of {batch:?}: {e}")))?;
                prop_assert_eq!(manifest.event_count, batch.len() as u64);
                Ok(())
            })
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[tokio::test]
async fn a_payload_nested_past_the_bound_is_refused_and_nothing_is_written() {
    let db = TestDb::new().await;
    let store = EventStore::new(db.pool.clone());
    let org = OrgId(Uuid::new_v4());
    let deepest = event(nested(Value::from(1), MAX_JSON_DEPTH), serde_json::json!({}));
    store.append_batch(org, vec![deepest]).await.expect("the bound itself is accepted");
    let too_deep = event(nested(Value::from(1), MAX_JSON_DEPTH + 1), serde_json::json!({}));
    let err = store.append_batch(org, vec![too_deep]).await.expect_err("one level more is refused");
    assert!(matches!(&err, StoreError::Invalid(m) if m.contains("deeper than")), "{err}");
    let owner = sqlx::PgPool::connect_with(db.options.clone()).await.unwrap();
    assert_eq!(verify::verify_org(&owner, org.0).await.unwrap(), (1, None));
}

/// `verify` beside a busy writer: the chain and the head come from one snapshot, so an
/// append committing between the two reads is never reported as a break.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_during_appends_never_reports_a_race_as_a_break() {
    let db = TestDb::new().await;
    let store = EventStore::new(db.pool.clone());
    let org = OrgId(Uuid::new_v4());
    store
        .append_batch(org, (0..200).map(|i| event(serde_json::json!({ "n": i }), serde_json::json!({}))).collect())
        .await
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (store, stop) = (store.clone(), stop.clone());
        tokio::spawn(async move {
            let mut batches = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let events = (0..5).map(|i| event(serde_json::json!({ "i": i }), serde_json::json!({}))).collect();
                store.append_batch(org, events).await.unwrap();
                batches += 1;
            }
            batches
        })
    };
    let owner = sqlx::PgPool::connect_with(db.options.clone()).await.unwrap();
    for _ in 0..40 {
        let (checked, broken) = verify::verify_org(&owner, org.0).await.unwrap();
        assert_eq!(broken, None, "after {checked} events");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(writer.await.unwrap() > 0, "the writer appended while verify ran");
}
