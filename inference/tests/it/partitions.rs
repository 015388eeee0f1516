//! Two detector partitions on one NATS prefix together open exactly the incidents (with the
//! same evidence and baseline scores) one detector opens, and nothing twice.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};
use uuid::Uuid;
use xdr_commands::testing::TestDb;
use xdr_commands::EventStore;
use xdr_domain::ids::OrgId;
use xdr_domain::incident::{IncidentCategory, ModelScores, Severity};
use xdr_inference::baseline_training::{BaselineTrainer, TrainOutcome};
use xdr_inference::partition::partition_of;
use xdr_inference::{run_detector, BaselineCache, Detector, DetectorConfig, Partition};

use crate::baselines::{benign_history, detect_scored, test_config};
use crate::support::*;

fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

type Comparable = (IncidentCategory, Severity, Vec<String>, Vec<String>, BTreeSet<Uuid>, Vec<Option<ModelScores>>);

/// Incidents by source ip with evidence as event ids (org_seqs differ between the two orgs
/// because the detectors' appends interleave with the telemetry differently).
async fn comparable(store: &EventStore, org: OrgId) -> BTreeMap<String, Comparable> {
    let ids: HashMap<i64, Uuid> = read_all(store, org).await.into_iter().map(|e| (e.org_seq, e.event_id)).collect();
    incidents(store, org)
        .await
        .into_iter()
        .map(|(ip, v)| {
            assert_eq!(v.opened_events, 1, "{ip} opened once");
            let (category, severity, rules, techniques, evidence) = summary(&v);
            let evidence = evidence.iter().map(|s| ids[s]).collect();
            // Not the number of `EvidenceAttached` events: a batch's attachments to one
            // incident are one event, so it depends on how deliveries were batched.
            (ip, (category, severity, rules, techniques, evidence, v.models.clone()))
        })
        .collect()
}

#[tokio::test]
async fn two_partitions_open_exactly_the_incidents_of_one_detector() {
    let db = TestDb::new().await;
    let store = EventStore::new(db.pool.clone());
    let events = real_log_events("sshd-auth-rfc3339.log");
    let ips: BTreeSet<IpAddr> = events.iter().filter_map(|e| e.payload["src_ip"].as_str()?.parse().ok()).collect();
    // An org for which the real logs' sources fall into both partitions (fixed, so the
    // split does not depend on a random id).
    let split = |org: OrgId| ips.iter().filter(|ip| partition_of(org, **ip, 2) == 0).count();
    let org = (1u128..).map(|n| OrgId(Uuid::from_u128(n))).find(|o| (2..=ips.len() - 2).contains(&split(*o))).unwrap();
    let reference = new_org();

    // Both orgs: ordinary history and a baseline trained on it, then the attacks.
    for o in [org, reference] {
        store.append_batch(o, benign_history(0..40)).await.unwrap();
    }
    let trained =
        BaselineTrainer::new(test_config(), Partition::default()).run_once(&store, chrono::Utc::now()).await.unwrap();
    assert_eq!(trained.iter().filter(|(_, t)| matches!(t, TrainOutcome::Trained { .. })).count(), 2);

    // Reference: one detector over the whole log.
    store.append_batch(reference, events.clone()).await.unwrap();
    detect_scored(&mut Detector::default(), &mut BaselineCache::new(), &store, reference, 0).await;
    let expected = comparable(&store, reference).await;
    assert_eq!(expected.len(), 6);

    // Two partitions on one prefix, then commit-and-publish as the relay does.
    let client = async_nats::connect(nats_url()).await.expect("connect to NATS");
    let js = async_nats::jetstream::new(client);
    let tag = Uuid::new_v4().simple().to_string();
    let base = DetectorConfig {
        subject_prefix: format!("t{tag}."),
        stream_name: format!("T{tag}_EVENTS"),
        durable: "detector".to_owned(),
        ..Default::default()
    };
    let mut stops = Vec::new();
    let mut workers = Vec::new();
    let mut configs = Vec::new();
    for i in 0..2 {
        let config = DetectorConfig { partition: Partition::new(i, 2).unwrap(), ..base.clone() };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        stops.push(tx);
        configs.push(config.clone());
        workers.push(tokio::spawn(run_detector(config, store.clone(), js.clone(), Detector::default(), async {
            let _ = rx.await;
        })));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while js.get_stream(&base.stream_name).await.is_err() {
        assert!(Instant::now() < deadline, "stream not created");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The org's history goes out first, then the attacks chunk by chunk.
    let subject = format!("{}events.{}.SecurityEventObserved", base.subject_prefix, org);
    let mut published = 0;
    let publish_after = |before: i64| {
        let store = store.clone();
        let js = js.clone();
        let subject = subject.clone();
        async move {
            let mut n = 0u64;
            for e in read_all(&store, org)
                .await
                .into_iter()
                .filter(|e| e.org_seq > before && e.event_type == "SecurityEventObserved")
            {
                js.publish(subject.clone(), serde_json::to_vec(&e).unwrap().into()).await.unwrap().await.unwrap();
                n += 1;
            }
            n
        }
    };
    published += publish_after(0).await;
    for chunk in events.chunks(20) {
        let before = store.head(org).await.unwrap().map_or(0, |h| h.0);
        store.append_batch(org, chunk.to_vec()).await.unwrap();
        published += publish_after(before).await;
    }

    // Wait until both consumers are drained.
    let deadline = Instant::now() + Duration::from_secs(60);
    for config in &configs {
        loop {
            let mut consumer: async_nats::jetstream::consumer::PullConsumer =
                match js.get_stream(&config.stream_name).await.unwrap().get_consumer(&config.consumer_name()).await {
                    Ok(c) => c,
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
            let info = consumer.info().await.unwrap();
            if info.num_pending == 0 && info.num_ack_pending == 0 && info.delivered.stream_sequence >= published {
                break;
            }
            assert!(Instant::now() < deadline, "consumer {} did not drain: {info:?}", config.consumer_name());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    for stop in stops {
        stop.send(()).unwrap();
    }
    let mut stats = Vec::new();
    for w in workers {
        stats.push(w.await.unwrap().expect("worker ends cleanly"));
    }

    assert_eq!(comparable(&store, org).await, expected, "two partitions = one detector");
    for v in incidents(&store, org).await.values() {
        assert!(v.models.iter().all(|m| m.as_ref().and_then(|m| m.baseline_score).is_some()), "{v:?}");
    }
    // Each partition saw every message and skipped the other's sources.
    for (i, s) in stats.iter().enumerate() {
        assert_eq!(s.messages, published, "partition {i} consumed every message");
        assert!(s.other_partition > 0 && s.events_appended > 0, "partition {i}: {s:?}");
    }
    assert_eq!(configs[0].consumer_name(), "detector-0-of-2");
    assert_eq!(DetectorConfig::default().consumer_name(), "detector", "one partition keeps the old consumer");
    js.delete_stream(&base.stream_name).await.unwrap();
}
