//! Shared helpers: parse the real logs, append them, run the detector, read incidents back.

use std::collections::BTreeMap;
use std::path::PathBuf;
use uuid::Uuid;
use xdr_commands::{EventStore, NewEvent, StoredEvent};
use xdr_domain::aggregate::Aggregate;
use xdr_domain::ids::OrgId;
use xdr_domain::incident::{Incident, IncidentCategory, ModelScores, Severity};
use xdr_domain::telemetry::parsers::{parse_record, split_records, ParseContext, SshdPidTracker};
use xdr_domain::telemetry::{telemetry_event_id, SecurityEvent, SourceType};
use xdr_domain::{Event, EventMetadata};
use xdr_inference::{execute_commands, Detector};

/// The real logs (copies of `shared/data/real-logs` kept in the domain crate).
pub fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../domain/tests/fixtures").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Parse a log file as the ingestor would (sshd lines attributed through their PID).
pub fn parse_file(source: SourceType, name: &str) -> Vec<SecurityEvent> {
    let ctx = ParseContext::received_at(chrono::DateTime::parse_from_rfc3339("2026-12-31T23:59:59Z").unwrap().to_utc());
    let mut pids = SshdPidTracker::new();
    split_records(source, &fixture(name))
        .iter()
        .map(|r| {
            let mut ev = parse_record(source, r, &ctx).unwrap_or_else(|e| panic!("{name}: {e}: {r}"));
            if source == SourceType::Sshd {
                pids.attribute(&mut ev);
            }
            ev
        })
        .collect()
}

/// The stored form of a file's records (deterministic ids, one telemetry stream per source).
pub fn new_events(source: SourceType, name: &str) -> Vec<NewEvent> {
    parse_file(source, name)
        .into_iter()
        .enumerate()
        .map(|(i, ev)| {
            let id = telemetry_event_id(ev.timestamp, format!("{name}/{i}").as_bytes());
            let metadata = EventMetadata::system("ingest-key:test");
            NewEvent::from_event(id, format!("telemetry-{source}"), &Event::SecurityEventObserved(ev), &metadata)
        })
        .collect()
}

/// Cowrie plus one of the two sshd files (they hold the same messages, so never both).
pub fn real_log_events(sshd_file: &str) -> Vec<NewEvent> {
    let mut all = new_events(SourceType::Cowrie, "cowrie.json");
    all.extend(new_events(SourceType::Sshd, sshd_file));
    all
}

pub async fn read_all(store: &EventStore, org: OrgId) -> Vec<StoredEvent> {
    store.read_org(org, 0, i64::MAX).await.expect("read org")
}

/// Run a fresh detector over the org's events with `org_seq > after` and append what it
/// decides. Returns the number of events appended.
pub async fn detect(detector: &mut Detector, store: &EventStore, org: OrgId, after: i64) -> usize {
    let events: Vec<StoredEvent> = read_all(store, org).await.into_iter().filter(|e| e.org_seq > after).collect();
    let mut appended = 0;
    for e in &events {
        let commands = detector.process(e);
        appended += execute_commands(store, &commands).await.expect("execute");
    }
    appended
}

/// One incident as read back from the log.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentView {
    pub stream_id: String,
    pub state: Incident,
    pub opened_events: usize,
    pub events: usize,
    /// `model` of the `IncidentOpened` and each `IncidentEscalated`, in order.
    pub models: Vec<Option<ModelScores>>,
}

/// Incidents of the org keyed by source ip.
pub async fn incidents(store: &EventStore, org: OrgId) -> BTreeMap<String, IncidentView> {
    let mut streams: BTreeMap<String, Vec<Event>> = BTreeMap::new();
    for e in read_all(store, org).await {
        if e.stream_id.starts_with("incident-") {
            streams.entry(e.stream_id.clone()).or_default().push(e.event().expect("decode"));
        }
    }
    let mut out = BTreeMap::new();
    for (stream_id, events) in streams {
        let state = Incident::from_history(&events);
        let opened_events = events.iter().filter(|e| matches!(e, Event::IncidentOpened(_))).count();
        let models = events
            .iter()
            .filter_map(|e| match e {
                Event::IncidentOpened(o) => Some(o.model.clone()),
                Event::IncidentEscalated(x) => Some(x.model.clone()),
                _ => None,
            })
            .collect();
        let view = IncidentView { stream_id, opened_events, events: events.len(), state: state.clone(), models };
        assert!(out.insert(state.src_ip.clone(), view).is_none(), "two incidents for {}", state.src_ip);
    }
    out
}

/// Comparable summary of an incident, independent of org and time.
pub fn summary(v: &IncidentView) -> (IncidentCategory, Severity, Vec<String>, Vec<String>, Vec<i64>) {
    let s = &v.state;
    (
        s.category.unwrap(),
        s.severity.unwrap(),
        s.rule_ids.iter().cloned().collect(),
        s.techniques.iter().cloned().collect(),
        s.evidence.iter().copied().collect(),
    )
}

pub fn new_org() -> OrgId {
    OrgId(Uuid::new_v4())
}

/// The ground truth of `shared/data/real-logs/README.md`, asserted on the incidents.
pub fn assert_ground_truth(incidents: &BTreeMap<String, IncidentView>, all: &[StoredEvent]) {
    let ips: Vec<&str> = incidents.keys().map(String::as_str).collect();
    assert_eq!(
        ips,
        vec!["127.0.0.2", "127.0.0.3", "127.0.0.5", "127.0.0.6", "127.0.0.7", "127.0.0.8"],
        "attacking sources detected, benign 127.0.0.4 not"
    );
    for (ip, v) in incidents {
        assert_eq!(v.opened_events, 1, "{ip}: exactly one IncidentOpened");
        assert!(!v.state.evidence.is_empty(), "{ip}: evidence");
    }
    let has = |ip: &str, rules: &[&str], techniques: &[&str]| {
        let s = &incidents[ip].state;
        for r in rules {
            assert!(s.rule_ids.contains(*r), "{ip}: rule {r} missing in {:?}", s.rule_ids);
        }
        for t in techniques {
            assert!(s.techniques.contains(*t), "{ip}: technique {t} missing in {:?}", s.techniques);
        }
    };
    let sev = |ip: &str| incidents[ip].state.severity.unwrap();
    let cat = |ip: &str| incidents[ip].state.category.unwrap();

    // A: paramiko brute force against Cowrie, 40 failures.
    has("127.0.0.2", &["ssh_brute_force"], &["T1110.001"]);
    assert_eq!((cat("127.0.0.2"), sev("127.0.0.2")), (IncidentCategory::BruteForce, Severity::High));
    // S1: OpenSSH client against the real sshd, 15 failures in 52 s.
    has("127.0.0.6", &["ssh_brute_force"], &["T1110.001"]);
    assert_eq!((cat("127.0.0.6"), sev("127.0.0.6")), (IncidentCategory::BruteForce, Severity::High));
    // B: brute force, login, dropper, persistence, discovery.
    has(
        "127.0.0.3",
        &[
            "ssh_brute_force",
            "compromise_after_brute_force",
            "ingress_tool_transfer",
            "exec_downloaded_file",
            "persistence",
            "discovery",
        ],
        &["T1110.001", "T1078", "T1105", "T1059.004", "T1098.004", "T1082"],
    );
    assert_eq!((cat("127.0.0.3"), sev("127.0.0.3")), (IncidentCategory::Compromise, Severity::Critical));
    let b_evidence = &incidents["127.0.0.3"].state.evidence;
    let seq_of = |pred: &dyn Fn(&SecurityEvent) -> bool| -> Vec<i64> {
        all.iter()
            .filter(|e| e.event_type == "SecurityEventObserved")
            .filter(|e| pred(&serde_json::from_value(e.payload.clone()).unwrap()))
            .map(|e| e.org_seq)
            .collect()
    };
    let b = |e: &SecurityEvent| e.src_ip == Some("127.0.0.3".parse().unwrap());
    for (what, seqs) in [
        ("authorized_keys write", seq_of(&|e| b(e) && e.event_type == "cowrie.session.file_download")),
        ("wget", seq_of(&|e| b(e) && e.command.as_deref().is_some_and(|c| c.starts_with("wget")))),
        ("uname", seq_of(&|e| b(e) && e.command.as_deref() == Some("uname -a"))),
        ("login", seq_of(&|e| b(e) && e.event_type == "cowrie.login.success")),
    ] {
        assert_eq!(seqs.len(), 1, "{what}");
        assert!(b_evidence.contains(&seqs[0]), "127.0.0.3 evidence lacks the {what} event");
    }
    // S2: four slow failures over four users.
    assert_eq!(incidents["127.0.0.7"].state.rule_ids.iter().collect::<Vec<_>>(), vec!["low_and_slow"]);
    has("127.0.0.7", &[], &["T1110.001"]);
    assert_eq!((cat("127.0.0.7"), sev("127.0.0.7")), (IncidentCategory::BruteForce, Severity::Low));
    // D: scanner, never authenticates.
    assert_eq!(incidents["127.0.0.5"].state.rule_ids.iter().collect::<Vec<_>>(), vec!["scanner"]);
    has("127.0.0.5", &[], &["T1595", "T1046"]);
    assert_eq!(cat("127.0.0.5"), IncidentCategory::Recon);
    // E: Mirai-like telnet bot.
    has("127.0.0.8", &["iot_botnet"], &["T1078.001", "T1059.004"]);
    assert_eq!((cat("127.0.0.8"), sev("127.0.0.8")), (IncidentCategory::MalwareBotnet, Severity::High));
}
