//! Incidents (`incident-<uuid>` streams): what detection found about one source in one
//! org during one hour, why it thinks so, and what analysts did about it.
//!
//! Owns the incident lifecycle (`open → contained | dismissed | resolved`, `contained →
//! open | resolved`), the rule that severity and risk only ever go up, and the deterministic
//! ids that make detection idempotent: the same source in the same hour always maps to the
//! same incident, so a redelivered event can never open a second one.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

use crate::aggregate::Aggregate;
use crate::ids::{IncidentId, OrgId, UserId};
use crate::Event;

/// Namespace of incident and detector-command ids (a fixed random UUID).
const INCIDENT_NAMESPACE: Uuid = Uuid::from_u128(0x3b8e_52a1_9c4f_4d07_b6e2_71a9_0c5d_e843);

/// Length of the incident bucket: one open incident per (org, source ip) per hour.
pub const INCIDENT_BUCKET_SECS: i64 = 3600;

/// Start (Unix seconds) of the hour bucket that `t` falls in.
pub fn hour_bucket(t: DateTime<Utc>) -> i64 {
    t.timestamp().div_euclid(INCIDENT_BUCKET_SECS) * INCIDENT_BUCKET_SECS
}

/// The incident of `src_ip` in `org` for the hour that `first_seen` falls in. Deterministic:
/// whoever computes it (a redelivery, a restarted detector, another replica) gets this id.
pub fn incident_id_for(org: OrgId, src_ip: &str, first_seen: DateTime<Utc>) -> IncidentId {
    let key = format!("{org}/{src_ip}/{}", hour_bucket(first_seen));
    IncidentId(Uuid::new_v5(&INCIDENT_NAMESPACE, key.as_bytes()))
}

/// Deterministic command id for a command `kind` on `incident` caused by the event
/// `trigger_event_id`, so re-processing that event appends nothing.
pub fn command_id_for(incident: IncidentId, kind: &str, trigger_event_id: Uuid) -> Uuid {
    let key = format!("{incident}/{kind}/{trigger_event_id}");
    Uuid::new_v5(&INCIDENT_NAMESPACE, key.as_bytes())
}

/// Ordered: `Low < Medium < High < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// What kind of activity an incident is. The first seven are the classifier's classes (as
/// the earlier service); `compromise` is a successful login that followed guessing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentCategory {
    Normal,
    Ddos,
    Recon,
    BruteForce,
    WebAttack,
    MalwareBotnet,
    Apt,
    Compromise,
}

impl IncidentCategory {
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentCategory::Normal => "normal",
            IncidentCategory::Ddos => "ddos",
            IncidentCategory::Recon => "recon",
            IncidentCategory::BruteForce => "brute_force",
            IncidentCategory::WebAttack => "web_attack",
            IncidentCategory::MalwareBotnet => "malware_botnet",
            IncidentCategory::Apt => "apt",
            IncidentCategory::Compromise => "compromise",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    #[default]
    Open,
    Contained,
    Dismissed,
    Resolved,
}

impl IncidentStatus {
    /// Allowed analyst transitions.
    pub fn can_become(self, to: IncidentStatus) -> bool {
        use IncidentStatus::*;
        matches!(
            (self, to),
            (Open, Contained) | (Open, Dismissed) | (Open, Resolved) | (Contained, Open) | (Contained, Resolved)
        )
    }

    /// Dismissed and resolved incidents take no more detector input.
    pub fn is_closed(self) -> bool {
        matches!(self, IncidentStatus::Dismissed | IncidentStatus::Resolved)
    }
}

/// One feature that drove a decision, with its value at that moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureValue {
    pub name: String,
    pub value: f64,
}

/// What models said about the source when the incident was opened or escalated. Optional:
/// rules work without it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ModelScores {
    /// Model name and version, e.g. `xdr-mlp-v1`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predicted_class: Option<String>,
    /// Class → probability.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub class_probabilities: BTreeMap<String, f64>,
    /// Per-org baseline anomaly score (higher = less like this org's normal sources).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_score: Option<f64>,
}

// ---------------------------------------------------------------------------- events

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentOpened {
    pub incident_id: IncidentId,
    pub org_id: OrgId,
    pub src_ip: String,
    pub category: IncidentCategory,
    pub severity: Severity,
    pub risk_score: f64,
    pub confidence: f64,
    /// Detection rules (and models) that fired.
    pub rule_ids: Vec<String>,
    /// MITRE ATT&CK technique ids, e.g. `T1110.001`.
    pub techniques: Vec<String>,
    pub reason: String,
    pub top_features: Vec<FeatureValue>,
    /// `org_seq`s of the events behind the incident.
    pub evidence: Vec<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelScores>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub opened_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvidenceAttached {
    pub incident_id: IncidentId,
    pub org_seqs: Vec<i64>,
    pub last_seen: DateTime<Utc>,
    pub attached_at: DateTime<Utc>,
}

/// Severity/risk went up, or new rules or techniques joined. Severity and risk here are the
/// new values (never lower than before).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentEscalated {
    pub incident_id: IncidentId,
    pub previous_severity: Severity,
    pub severity: Severity,
    pub category: IncidentCategory,
    pub risk_score: f64,
    pub confidence: f64,
    pub new_rule_ids: Vec<String>,
    pub new_techniques: Vec<String>,
    pub reason: String,
    pub top_features: Vec<FeatureValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelScores>,
    pub escalated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentStatusChanged {
    pub incident_id: IncidentId,
    pub from: IncidentStatus,
    pub to: IncidentStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_user: Option<UserId>,
    pub changed_at: DateTime<Utc>,
}

// -------------------------------------------------------------------------- commands

#[derive(Debug, Clone, PartialEq)]
pub struct OpenIncident {
    pub incident_id: IncidentId,
    pub org_id: OrgId,
    pub src_ip: String,
    pub category: IncidentCategory,
    pub severity: Severity,
    pub risk_score: f64,
    pub confidence: f64,
    pub rule_ids: Vec<String>,
    pub techniques: Vec<String>,
    pub reason: String,
    pub top_features: Vec<FeatureValue>,
    pub evidence: Vec<i64>,
    pub model: Option<ModelScores>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub now: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AttachEvidence {
    pub incident_id: IncidentId,
    pub org_seqs: Vec<i64>,
    pub last_seen: DateTime<Utc>,
    pub now: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EscalateIncident {
    pub incident_id: IncidentId,
    pub severity: Severity,
    pub category: IncidentCategory,
    pub risk_score: f64,
    pub confidence: f64,
    pub rule_ids: Vec<String>,
    pub techniques: Vec<String>,
    pub reason: String,
    pub top_features: Vec<FeatureValue>,
    pub model: Option<ModelScores>,
    pub now: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UpdateIncidentStatus {
    pub incident_id: IncidentId,
    pub status: IncidentStatus,
    pub note: Option<String>,
    pub by_user: Option<UserId>,
    pub now: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum IncidentCommand {
    /// Open the incident; on an incident that is already open this merges (new evidence is
    /// attached, higher severity escalates), so the detector never needs to know whether
    /// another replica or an earlier run opened it first.
    Open(OpenIncident),
    AttachEvidence(AttachEvidence),
    Escalate(EscalateIncident),
    UpdateStatus(UpdateIncidentStatus),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IncidentError {
    #[error("incident not found")]
    NotFound,
    #[error("incident cannot go from {from:?} to {to:?}")]
    InvalidTransition { from: IncidentStatus, to: IncidentStatus },
    #[error("risk and confidence must be within 0..=1")]
    InvalidScore,
    #[error("an incident needs at least one rule or model")]
    NoReason,
}

// ------------------------------------------------------------------------- aggregate

/// State of one incident: a fold of its stream.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Incident {
    pub id: Option<IncidentId>,
    pub org_id: Option<OrgId>,
    pub src_ip: String,
    pub status: IncidentStatus,
    pub category: Option<IncidentCategory>,
    pub severity: Option<Severity>,
    pub risk_score: f64,
    pub confidence: f64,
    pub rule_ids: BTreeSet<String>,
    pub techniques: BTreeSet<String>,
    pub evidence: BTreeSet<i64>,
    pub first_seen: Option<DateTime<Utc>>,
    pub last_seen: Option<DateTime<Utc>>,
}

impl Incident {
    pub fn is_opened(&self) -> bool {
        self.id.is_some()
    }

    fn new_evidence(&self, seqs: &[i64]) -> Vec<i64> {
        let set: BTreeSet<i64> = seqs.iter().copied().filter(|s| !self.evidence.contains(s)).collect();
        set.into_iter().collect()
    }

    fn attach(&self, id: IncidentId, seqs: &[i64], last_seen: DateTime<Utc>, now: DateTime<Utc>) -> Option<Event> {
        let org_seqs = self.new_evidence(seqs);
        (!org_seqs.is_empty()).then(|| {
            let last_seen = self.last_seen.map_or(last_seen, |l| l.max(last_seen));
            Event::EvidenceAttached(EvidenceAttached { incident_id: id, org_seqs, last_seen, attached_at: now })
        })
    }

    fn escalate(&self, c: &EscalateIncident) -> Option<Event> {
        let current = self.severity.unwrap_or(Severity::Low);
        let severity_up = c.severity > current;
        let risk_up = c.risk_score > self.risk_score;
        let new_rule_ids: Vec<String> = c.rule_ids.iter().filter(|r| !self.rule_ids.contains(*r)).cloned().collect();
        let new_techniques: Vec<String> =
            c.techniques.iter().filter(|t| !self.techniques.contains(*t)).cloned().collect();
        if !severity_up && !risk_up && new_rule_ids.is_empty() && new_techniques.is_empty() {
            return None;
        }
        Some(Event::IncidentEscalated(IncidentEscalated {
            incident_id: c.incident_id,
            previous_severity: current,
            severity: current.max(c.severity),
            category: if severity_up { c.category } else { self.category.unwrap_or(c.category) },
            risk_score: self.risk_score.max(c.risk_score),
            confidence: self.confidence.max(c.confidence),
            new_rule_ids,
            new_techniques,
            reason: c.reason.clone(),
            top_features: c.top_features.clone(),
            model: c.model.clone(),
            escalated_at: c.now,
        }))
    }
}

fn valid_score(x: f64) -> bool {
    (0.0..=1.0).contains(&x)
}

impl Aggregate for Incident {
    type Command = IncidentCommand;
    type Error = IncidentError;

    fn apply(&mut self, event: &Event) {
        match event {
            Event::IncidentOpened(e) => {
                self.id = Some(e.incident_id);
                self.org_id = Some(e.org_id);
                self.src_ip = e.src_ip.clone();
                self.status = IncidentStatus::Open;
                self.category = Some(e.category);
                self.severity = Some(e.severity);
                self.risk_score = e.risk_score;
                self.confidence = e.confidence;
                self.rule_ids = e.rule_ids.iter().cloned().collect();
                self.techniques = e.techniques.iter().cloned().collect();
                self.evidence = e.evidence.iter().copied().collect();
                self.first_seen = Some(e.first_seen);
                self.last_seen = Some(e.last_seen);
            }
            Event::EvidenceAttached(e) => {
                self.evidence.extend(e.org_seqs.iter().copied());
                self.last_seen = Some(e.last_seen);
            }
            Event::IncidentEscalated(e) => {
                self.severity = Some(e.severity);
                self.category = Some(e.category);
                self.risk_score = e.risk_score;
                self.confidence = e.confidence;
                self.rule_ids.extend(e.new_rule_ids.iter().cloned());
                self.techniques.extend(e.new_techniques.iter().cloned());
            }
            Event::IncidentStatusChanged(e) => self.status = e.to,
            _ => {}
        }
    }

    fn decide(&self, command: &IncidentCommand) -> Result<Vec<Event>, IncidentError> {
        match command {
            IncidentCommand::Open(c) => {
                if !valid_score(c.risk_score) || !valid_score(c.confidence) {
                    return Err(IncidentError::InvalidScore);
                }
                if c.rule_ids.is_empty() && c.model.is_none() {
                    return Err(IncidentError::NoReason);
                }
                if !self.is_opened() {
                    let mut evidence = c.evidence.clone();
                    evidence.sort_unstable();
                    evidence.dedup();
                    return Ok(vec![Event::IncidentOpened(IncidentOpened {
                        incident_id: c.incident_id,
                        org_id: c.org_id,
                        src_ip: c.src_ip.clone(),
                        category: c.category,
                        severity: c.severity,
                        risk_score: c.risk_score,
                        confidence: c.confidence,
                        rule_ids: c.rule_ids.clone(),
                        techniques: c.techniques.clone(),
                        reason: c.reason.clone(),
                        top_features: c.top_features.clone(),
                        evidence,
                        model: c.model.clone(),
                        first_seen: c.first_seen,
                        last_seen: c.last_seen,
                        opened_at: c.now,
                    })]);
                }
                if self.status.is_closed() {
                    return Ok(vec![]);
                }
                // Already open (another replica, an earlier run): merge instead of failing.
                let escalate = EscalateIncident {
                    incident_id: c.incident_id,
                    severity: c.severity,
                    category: c.category,
                    risk_score: c.risk_score,
                    confidence: c.confidence,
                    rule_ids: c.rule_ids.clone(),
                    techniques: c.techniques.clone(),
                    reason: c.reason.clone(),
                    top_features: c.top_features.clone(),
                    model: c.model.clone(),
                    now: c.now,
                };
                Ok(self
                    .attach(c.incident_id, &c.evidence, c.last_seen, c.now)
                    .into_iter()
                    .chain(self.escalate(&escalate))
                    .collect())
            }
            IncidentCommand::AttachEvidence(c) => {
                if !self.is_opened() {
                    return Err(IncidentError::NotFound);
                }
                if self.status.is_closed() {
                    return Ok(vec![]);
                }
                Ok(self.attach(c.incident_id, &c.org_seqs, c.last_seen, c.now).into_iter().collect())
            }
            IncidentCommand::Escalate(c) => {
                if !self.is_opened() {
                    return Err(IncidentError::NotFound);
                }
                if !valid_score(c.risk_score) || !valid_score(c.confidence) {
                    return Err(IncidentError::InvalidScore);
                }
                if self.status.is_closed() {
                    return Ok(vec![]);
                }
                Ok(self.escalate(c).into_iter().collect())
            }
            IncidentCommand::UpdateStatus(c) => {
                if !self.is_opened() {
                    return Err(IncidentError::NotFound);
                }
                if c.status == self.status {
                    return Ok(vec![]);
                }
                if !self.status.can_become(c.status) {
                    return Err(IncidentError::InvalidTransition { from: self.status, to: c.status });
                }
                Ok(vec![Event::IncidentStatusChanged(IncidentStatusChanged {
                    incident_id: c.incident_id,
                    from: self.status,
                    to: c.status,
                    note: c.note.clone(),
                    by_user: c.by_user,
                    changed_at: c.now,
                })])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_000_000 + secs, 0).unwrap()
    }

    fn org() -> OrgId {
        OrgId(Uuid::from_u128(7))
    }

    fn id() -> IncidentId {
        incident_id_for(org(), "127.0.0.2", t(0))
    }

    fn open(severity: Severity, risk: f64, evidence: &[i64]) -> IncidentCommand {
        IncidentCommand::Open(OpenIncident {
            incident_id: id(),
            org_id: org(),
            src_ip: "127.0.0.2".into(),
            category: IncidentCategory::BruteForce,
            severity,
            risk_score: risk,
            confidence: 0.9,
            rule_ids: vec!["ssh_brute_force".into()],
            techniques: vec!["T1110.001".into()],
            reason: "6 failed logins in 60 s".into(),
            top_features: vec![FeatureValue { name: "failed_logins_1m".into(), value: 6.0 }],
            evidence: evidence.to_vec(),
            model: None,
            first_seen: t(0),
            last_seen: t(30),
            now: t(31),
        })
    }

    fn escalate(severity: Severity, risk: f64, rule: &str, technique: &str) -> IncidentCommand {
        IncidentCommand::Escalate(EscalateIncident {
            incident_id: id(),
            severity,
            category: IncidentCategory::Compromise,
            risk_score: risk,
            confidence: 0.9,
            rule_ids: vec![rule.into()],
            techniques: vec![technique.into()],
            reason: "why".into(),
            top_features: vec![],
            model: None,
            now: t(40),
        })
    }

    fn status(to: IncidentStatus) -> IncidentCommand {
        IncidentCommand::UpdateStatus(UpdateIncidentStatus {
            incident_id: id(),
            status: to,
            note: Some("checked".into()),
            by_user: Some(UserId(Uuid::from_u128(9))),
            now: t(50),
        })
    }

    /// given history, when command: the events decided (and the state after them).
    #[track_caller]
    fn given_when(
        history: &[IncidentCommand],
        when: &IncidentCommand,
    ) -> (Result<Vec<Event>, IncidentError>, Incident) {
        let mut state = Incident::default();
        for c in history {
            for e in state.decide(c).expect("history is valid") {
                state.apply(&e);
            }
        }
        let r = state.decide(when);
        if let Ok(events) = &r {
            for e in events {
                state.apply(e);
            }
        }
        (r, state)
    }

    #[test]
    fn ids_are_deterministic_per_org_source_and_hour() {
        assert_eq!(incident_id_for(org(), "1.2.3.4", t(0)), incident_id_for(org(), "1.2.3.4", t(0)));
        let hour_start = DateTime::from_timestamp(hour_bucket(t(0)), 0).unwrap();
        assert_eq!(
            incident_id_for(org(), "1.2.3.4", hour_start),
            incident_id_for(org(), "1.2.3.4", hour_start + chrono::Duration::seconds(3599))
        );
        assert_ne!(
            incident_id_for(org(), "1.2.3.4", hour_start),
            incident_id_for(org(), "1.2.3.4", hour_start + chrono::Duration::seconds(3600))
        );
        assert_ne!(incident_id_for(org(), "1.2.3.4", t(0)), incident_id_for(org(), "1.2.3.5", t(0)));
        assert_ne!(
            incident_id_for(org(), "1.2.3.4", t(0)),
            incident_id_for(OrgId(Uuid::from_u128(8)), "1.2.3.4", t(0))
        );
        let e = Uuid::from_u128(1);
        assert_eq!(command_id_for(id(), "open", e), command_id_for(id(), "open", e));
        assert_ne!(command_id_for(id(), "open", e), command_id_for(id(), "attach", e));
    }

    #[test]
    fn it_should_open_an_incident_with_sorted_unique_evidence() {
        let (r, s) = given_when(&[], &open(Severity::Medium, 0.66, &[5, 3, 5, 4]));
        let events = r.unwrap();
        assert!(matches!(&events[..], [Event::IncidentOpened(o)] if o.evidence == vec![3, 4, 5]));
        assert_eq!(s.severity, Some(Severity::Medium));
        assert_eq!(s.status, IncidentStatus::Open);
    }

    #[test]
    fn it_should_not_open_twice_but_merge_new_evidence_and_escalation() {
        let history = [open(Severity::Medium, 0.66, &[1, 2])];
        // Same command again (redelivery): nothing.
        let (r, _) = given_when(&history, &open(Severity::Medium, 0.66, &[1, 2]));
        assert_eq!(r.unwrap(), vec![]);
        // Open again with more: attach + escalate, never a second IncidentOpened.
        let (r, s) = given_when(&history, &open(Severity::High, 0.75, &[2, 3]));
        let events = r.unwrap();
        assert_eq!(events.len(), 2);
        assert!(matches!(&events[0], Event::EvidenceAttached(e) if e.org_seqs == vec![3]));
        assert!(matches!(&events[1], Event::IncidentEscalated(e) if e.severity == Severity::High));
        assert_eq!(s.evidence.len(), 3);
    }

    #[test]
    fn it_should_attach_only_new_evidence() {
        let history = [open(Severity::Medium, 0.66, &[1, 2])];
        let attach = |seqs: &[i64]| {
            IncidentCommand::AttachEvidence(AttachEvidence {
                incident_id: id(),
                org_seqs: seqs.to_vec(),
                last_seen: t(60),
                now: t(61),
            })
        };
        assert_eq!(given_when(&history, &attach(&[1, 2])).0.unwrap(), vec![]);
        let (r, s) = given_when(&history, &attach(&[2, 9]));
        assert!(matches!(&r.unwrap()[..], [Event::EvidenceAttached(e)] if e.org_seqs == vec![9]));
        assert_eq!(s.last_seen, Some(t(60)));
        assert_eq!(given_when(&[], &attach(&[1])).0, Err(IncidentError::NotFound));
    }

    #[test]
    fn it_should_escalate_severity_and_category_up() {
        let history = [open(Severity::Medium, 0.66, &[1])];
        let (r, s) = given_when(&history, &escalate(Severity::Critical, 0.97, "compromise_after_brute_force", "T1078"));
        let events = r.unwrap();
        assert!(matches!(&events[..], [Event::IncidentEscalated(e)]
            if e.previous_severity == Severity::Medium && e.severity == Severity::Critical
            && e.new_techniques == vec!["T1078".to_owned()]));
        assert_eq!(s.category, Some(IncidentCategory::Compromise));
        assert_eq!(s.risk_score, 0.97);
    }

    #[test]
    fn it_should_not_lower_severity_or_risk() {
        let history = [open(Severity::High, 0.9, &[1])];
        // Lower severity, lower risk, nothing new: no event.
        assert_eq!(
            given_when(&history, &escalate(Severity::Low, 0.3, "ssh_brute_force", "T1110.001")).0.unwrap(),
            vec![]
        );
        // Lower severity but a new rule: recorded, severity and risk kept.
        let (r, s) = given_when(&history, &escalate(Severity::Medium, 0.5, "discovery", "T1082"));
        assert!(
            matches!(&r.unwrap()[..], [Event::IncidentEscalated(e)] if e.severity == Severity::High && e.risk_score == 0.9)
        );
        assert_eq!(s.severity, Some(Severity::High));
        assert_eq!(s.category, Some(IncidentCategory::BruteForce));
        assert!(s.rule_ids.contains("discovery"));
    }

    #[test]
    fn it_should_reject_scores_out_of_range() {
        assert_eq!(given_when(&[], &open(Severity::Low, 1.5, &[1])).0, Err(IncidentError::InvalidScore));
    }

    #[test]
    fn it_should_follow_the_lifecycle() {
        use IncidentStatus::*;
        let opened = [open(Severity::High, 0.9, &[1])];
        let (r, s) = given_when(&opened, &status(Contained));
        assert!(matches!(&r.unwrap()[..], [Event::IncidentStatusChanged(e)] if e.from == Open && e.to == Contained));
        assert_eq!(s.status, Contained);
        let contained = [open(Severity::High, 0.9, &[1]), status(Contained)];
        assert_eq!(given_when(&contained, &status(Open)).1.status, Open);
        assert_eq!(
            given_when(&contained, &status(Dismissed)).0,
            Err(IncidentError::InvalidTransition { from: Contained, to: Dismissed })
        );
        let resolved = [open(Severity::High, 0.9, &[1]), status(Resolved)];
        assert_eq!(
            given_when(&resolved, &status(Open)).0,
            Err(IncidentError::InvalidTransition { from: Resolved, to: Open })
        );
        // Same status twice: idempotent, no event.
        assert_eq!(given_when(&resolved, &status(Resolved)).0.unwrap(), vec![]);
        assert_eq!(given_when(&[], &status(Resolved)).0, Err(IncidentError::NotFound));
    }

    #[test]
    fn it_should_ignore_detector_input_once_closed() {
        let dismissed = [open(Severity::Medium, 0.6, &[1]), status(IncidentStatus::Dismissed)];
        assert_eq!(given_when(&dismissed, &escalate(Severity::Critical, 0.99, "x", "T1")).0.unwrap(), vec![]);
        assert_eq!(given_when(&dismissed, &open(Severity::Critical, 0.99, &[2])).0.unwrap(), vec![]);
    }
}
