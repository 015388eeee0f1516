//! Per-org baselines in the detector: the automatic trainer (threshold, one baseline under
//! concurrent trainers) and the baseline score on incidents, chosen by log position.

use chrono::{DateTime, Utc};
use xdr_commands::testing::TestDb;
use xdr_commands::{EventStore, NewEvent, StoredEvent};
use xdr_domain::ids::OrgId;
use xdr_domain::incident::IncidentCommand;
use xdr_domain::telemetry::{telemetry_event_id, SecurityEvent, SourceType};
use xdr_domain::{Event, EventMetadata};
use xdr_inference::baseline_training::{commit, prepare, AutoTrainConfig, BaselineTrainer, TrainOutcome};
use xdr_inference::{execute_commands, BaselineCache, Detector, IssuedCommand, Partition};

use crate::support::*;

/// Ordinary sources number `sources`: each connects, logs in (maybe after a typo), runs a
/// few commands and leaves.
pub fn benign_history(sources: std::ops::Range<usize>) -> Vec<NewEvent> {
    let base = DateTime::from_timestamp(1_795_000_000, 0).unwrap();
    let mut out = Vec::new();
    for i in sources {
        let ip = format!("10.20.{}.{}", i / 200, i % 200 + 1);
        let t0 = (i as i64) * 900;
        let mut steps: Vec<(i64, &str, Option<&str>)> = vec![(0, "cowrie.session.connect", None)];
        if i % 3 == 0 {
            steps.push((3, "cowrie.login.failed", None));
        }
        steps.push((6, "cowrie.login.success", None));
        let commands = ["ls -la", "pwd", "df -h", "uptime", "cat notes.txt"];
        for (k, c) in commands.iter().take(1 + i % commands.len()).enumerate() {
            steps.push((20 + 15 * k as i64 + (i % 7) as i64, "cowrie.command.input", Some(c)));
        }
        steps.push((200 + (i % 11) as i64 * 30, "cowrie.session.closed", None));
        for (k, (dt, kind, command)) in steps.into_iter().enumerate() {
            let mut e = SecurityEvent::new(
                base + chrono::Duration::seconds(t0 + dt),
                SourceType::Cowrie,
                kind,
                serde_json::Value::Null,
            );
            e.src_ip = Some(ip.parse().unwrap());
            e.session_id = Some(format!("benign-{i}"));
            e.dst_port = Some(2222);
            if kind.starts_with("cowrie.login") {
                e.username = Some(format!("user{}", i % 5));
                e.password = Some(if kind.ends_with("failed") { "typo".into() } else { format!("Good-{i}!") });
            }
            e.command = command.map(str::to_owned);
            if kind == "cowrie.session.closed" {
                e.duration_secs = Some(200.0 + (i % 11) as f64 * 30.0);
            }
            let id = telemetry_event_id(e.timestamp, format!("benign/{i}/{k}").as_bytes());
            out.push(NewEvent::from_event(
                id,
                "telemetry-cowrie",
                &Event::SecurityEventObserved(e),
                &EventMetadata::system("ingest-key:test"),
            ));
        }
    }
    out
}

pub fn test_config() -> AutoTrainConfig {
    AutoTrainConfig { min_sources: 30, min_events: 100, retrain_after: std::time::Duration::ZERO, ..Default::default() }
}

pub async fn baselines_of(store: &EventStore, org: OrgId) -> Vec<StoredEvent> {
    read_all(store, org).await.into_iter().filter(|e| e.event_type == "BaselineTrained").collect()
}

/// Process the org's events after `after` as the worker does: detect, add baseline scores,
/// execute. Returns the commands.
pub async fn detect_scored(
    detector: &mut Detector,
    cache: &mut BaselineCache,
    store: &EventStore,
    org: OrgId,
    after: i64,
) -> Vec<IssuedCommand> {
    let events: Vec<StoredEvent> = read_all(store, org).await.into_iter().filter(|e| e.org_seq > after).collect();
    let mut all = Vec::new();
    for e in &events {
        let mut commands = detector.process(e);
        cache.score_commands(store, &mut commands).await.expect("baseline scores");
        execute_commands(store, &commands).await.expect("execute");
        all.extend(commands);
    }
    all
}

fn baseline_scores(commands: &[IssuedCommand]) -> Vec<Option<f64>> {
    commands
        .iter()
        .filter_map(|c| match &c.command {
            IncidentCommand::Open(o) => Some(o.model.as_ref().and_then(|m| m.baseline_score)),
            IncidentCommand::Escalate(e) => Some(e.model.as_ref().and_then(|m| m.baseline_score)),
            _ => None,
        })
        .collect()
}

fn now() -> DateTime<Utc> {
    Utc::now()
}

#[tokio::test]
async fn an_org_below_the_threshold_gets_no_baseline() {
    let db = TestDb::new().await;
    let store = EventStore::new(db.pool.clone());
    let org = new_org();
    // 20 sources (well over 100 events) is below the 30 distinct sources the config asks.
    store.append_batch(org, benign_history(0..20)).await.unwrap();
    let mut trainer = BaselineTrainer::new(test_config(), Partition::default());
    let outcomes = trainer.run_once(&store, now()).await.unwrap();
    assert_eq!(outcomes, vec![(org, TrainOutcome::TooFewSources { found: 20, needed: 30 })]);
    assert!(baselines_of(&store, org).await.is_empty());
    // Too few events, enough sources: also nothing.
    let strict = AutoTrainConfig { min_events: 10_000, ..test_config() };
    let org2 = new_org();
    store.append_batch(org2, benign_history(0..40)).await.unwrap();
    let outcomes = BaselineTrainer::new(strict, Partition::default()).run_once(&store, now()).await.unwrap();
    assert!(outcomes.iter().any(|(o, r)| *o == org2 && matches!(r, TrainOutcome::TooFewEvents { needed: 10_000, .. })));
    assert!(baselines_of(&store, org2).await.is_empty());
}

#[tokio::test]
async fn concurrent_trainers_append_exactly_one_baseline() {
    let db = TestDb::new().await;
    let store = EventStore::new(db.pool.clone());
    let org = new_org();
    store.append_batch(org, benign_history(0..40)).await.unwrap();
    // Two detector replicas' trainers at once, each on its own pool connection.
    let mut a = BaselineTrainer::new(test_config(), Partition::default());
    let mut b = BaselineTrainer::new(test_config(), Partition::default());
    let (sa, sb) = (store.clone(), store.clone());
    let (ra, rb) = tokio::join!(
        tokio::spawn(async move { a.run_once(&sa, now()).await.unwrap() }),
        tokio::spawn(async move { b.run_once(&sb, now()).await.unwrap() })
    );
    let outcomes: Vec<TrainOutcome> = ra.unwrap().into_iter().chain(rb.unwrap()).map(|(_, o)| o).collect();
    let trained = outcomes.iter().filter(|o| matches!(o, TrainOutcome::Trained { version: 1, windows: 40 })).count();
    assert_eq!(trained, 1, "{outcomes:?}");
    assert_eq!(baselines_of(&store, org).await.len(), 1);
    // The worst interleaving, forced: both trainers decide and fit before either appends.
    let raced = new_org();
    store.append_batch(raced, benign_history(0..40)).await.unwrap();
    let head = store.head(raced).await.unwrap().unwrap().0;
    let first = prepare(&store, raced, head, &test_config(), now()).await.unwrap().expect("qualifies");
    let second = prepare(&store, raced, head, &test_config(), now()).await.unwrap().expect("qualifies");
    assert_eq!(commit(&store, first).await.unwrap(), TrainOutcome::Trained { version: 1, windows: 40 });
    assert_eq!(commit(&store, second).await.unwrap(), TrainOutcome::LostRace { version: 1 });
    assert_eq!(baselines_of(&store, raced).await.len(), 1);

    // A third pass: no new history since the baseline, so no retrain (even with no minimum age).
    let again = BaselineTrainer::new(test_config(), Partition::default()).run_once(&store, now()).await.unwrap();
    assert!(again.iter().all(|(_, o)| matches!(o, TrainOutcome::TooFewEvents { found: 0, .. })), "{again:?}");
    // The minimum age holds a retrain back even when there is new history.
    store.append_batch(org, benign_history(40..60)).await.unwrap();
    let aged = AutoTrainConfig { retrain_after: std::time::Duration::from_secs(3600), ..test_config() };
    let held = BaselineTrainer::new(aged, Partition::default()).run_once(&store, now()).await.unwrap();
    assert!(held.contains(&(org, TrainOutcome::TooRecent)), "{held:?}");
    assert_eq!(baselines_of(&store, org).await.len(), 1);
    // The same trainer data and seed give the same parameters (training is deterministic).
    let stored = baselines_of(&store, org).await;
    let Ok(Event::BaselineTrained(b)) = stored[0].event() else { panic!() };
    let other = new_org();
    store.append_batch(other, benign_history(0..40)).await.unwrap();
    BaselineTrainer::new(test_config(), Partition::default()).run_once(&store, now()).await.unwrap();
    let Ok(Event::BaselineTrained(b2)) = baselines_of(&store, other).await[0].event() else { panic!() };
    assert_eq!(b.params, b2.params);
}

#[tokio::test]
async fn incidents_after_a_baseline_carry_its_score_and_others_none() {
    let db = TestDb::new().await;
    let store = EventStore::new(db.pool.clone());
    let with = new_org();
    let without = new_org();
    store.append_batch(with, benign_history(0..40)).await.unwrap();
    let outcomes = BaselineTrainer::new(test_config(), Partition::default()).run_once(&store, now()).await.unwrap();
    assert!(outcomes.contains(&(with, TrainOutcome::Trained { version: 1, windows: 40 })), "{outcomes:?}");
    store.append_batch(with, real_log_events("sshd-auth.log")).await.unwrap();
    store.append_batch(without, real_log_events("sshd-auth.log")).await.unwrap();

    let mut cache = BaselineCache::new();
    let scored = detect_scored(&mut Detector::default(), &mut cache, &store, with, 0).await;
    let plain = detect_scored(&mut Detector::default(), &mut cache, &store, without, 0).await;
    let scores = baseline_scores(&scored);
    assert!(!scores.is_empty());
    assert!(scores.iter().all(Option::is_some), "{scores:?}");
    assert!(baseline_scores(&plain).iter().all(Option::is_none));
    // On the stored incidents too, and the attacks lie far outside this org's normal.
    let found = incidents(&store, with).await;
    assert_eq!(found.len(), 6);
    for (ip, v) in &found {
        let score = v.models[0].as_ref().and_then(|m| m.baseline_score);
        assert!(score.is_some_and(|s| s > 1.0), "{ip}: {score:?}");
        assert!(v.models.iter().all(|m| m.as_ref().is_some_and(|m| m.baseline_score.is_some())), "{ip}");
    }
    assert!(incidents(&store, without).await.values().all(|v| v.models.iter().all(Option::is_none)));

    // A newer baseline committed afterwards does not change what reprocessing the same
    // events yields: the baseline is the one in force at each event's log position.
    store.append_batch(with, benign_history(40..80)).await.unwrap();
    let outcomes = BaselineTrainer::new(test_config(), Partition::default()).run_once(&store, now()).await.unwrap();
    assert!(outcomes.iter().any(|(o, r)| *o == with && matches!(r, TrainOutcome::Trained { version: 2, .. })));
    let head = store.head(with).await.unwrap().unwrap().0;
    let again = {
        let events: Vec<StoredEvent> = read_all(&store, with).await;
        let mut d = Detector::default();
        let mut fresh_cache = BaselineCache::new();
        let mut all = Vec::new();
        for e in events.iter().filter(|e| e.event_type == "SecurityEventObserved") {
            let mut c = d.process(e);
            fresh_cache.score_commands(&store, &mut c).await.unwrap();
            all.extend(c);
        }
        all
    };
    assert_eq!(again, scored, "same events, same commands, same baseline scores");
    assert_eq!(execute_commands(&store, &again).await.unwrap(), 0);
    assert_eq!(store.head(with).await.unwrap().unwrap().0, head);
}
