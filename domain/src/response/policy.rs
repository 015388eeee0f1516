//! Containment policies and settings of one org (`containment-<org uuid>`): which incidents
//! are contained automatically or queued for approval, the org's auto-containment switch, its
//! protected ranges and its cap on automatic blocks.
//!
//! One stream per org, because the policies are evaluated together in priority order and
//! their settings change rarely: one consistency boundary keeps "priority 1 is unique" and
//! "the switch and the list agree" simple.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::aggregate::Aggregate;
use crate::ids::{OrgId, PolicyId};
use crate::incident::{IncidentCategory, Severity};
use crate::response::action::{ActionKind, MAX_BLOCK_SECS};
use crate::response::rails::{parse_range, parse_ranges, SafetyRails, DEFAULT_PROTECTED};
use crate::Event;

/// Default cap on automatic blocks per org per minute; beyond it, actions wait for approval.
pub const DEFAULT_MAX_AUTO_BLOCKS_PER_MINUTE: u32 = 10;
pub const MAX_POLICY_NAME_CHARS: usize = 100;

/// Stream of an org's containment policies and settings.
pub fn containment_stream_id(org: OrgId) -> String {
    format!("containment-{}", org.as_uuid())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyMode {
    /// Act at once (when the org's switch is on and the cap allows).
    Auto,
    /// Queue the action for a `soc_lead` or admin.
    Approval,
}

impl PolicyMode {
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyMode::Auto => "auto",
            PolicyMode::Approval => "approval",
        }
    }
}

/// When a policy applies. Every condition that is set must hold; unset ones always hold.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PolicyConditions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_severity: Option<Severity>,
    /// Category in this list (empty: any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<IncidentCategory>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_risk: Option<f64>,
    /// Any of these ATT&CK techniques (a parent id like `T1110` matches `T1110.001`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub techniques: Vec<String>,
    /// Source inside one of these CIDRs (empty: anywhere).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_in: Vec<String>,
    /// Source outside all of these CIDRs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_not_in: Vec<String>,
}

/// The action a policy requests, with its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyAction {
    pub kind: ActionKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_secs: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainmentPolicy {
    pub policy_id: PolicyId,
    pub name: String,
    /// Lower runs first; the first matching enabled policy wins.
    pub priority: i32,
    pub enabled: bool,
    pub conditions: PolicyConditions,
    pub action: PolicyAction,
    pub mode: PolicyMode,
}

/// What policies are evaluated against: an incident as it stands after opening or escalating.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentFacts<'a> {
    pub severity: Severity,
    pub category: IncidentCategory,
    pub risk_score: f64,
    pub techniques: &'a [String],
    pub src_ip: &'a str,
}

impl ContainmentPolicy {
    /// The conditions that held, in words, or `None` if one did not.
    pub fn matches(&self, facts: &IncidentFacts<'_>) -> Option<Vec<String>> {
        let c = &self.conditions;
        let mut why = Vec::new();
        if let Some(min) = c.min_severity {
            if facts.severity < min {
                return None;
            }
            why.push(format!("severity {} >= {}", facts.severity.as_str(), min.as_str()));
        }
        if !c.categories.is_empty() {
            if !c.categories.contains(&facts.category) {
                return None;
            }
            why.push(format!("category {} in policy list", facts.category.as_str()));
        }
        if let Some(min) = c.min_risk {
            if facts.risk_score < min {
                return None;
            }
            why.push(format!("risk {:.2} >= {min:.2}", facts.risk_score));
        }
        if !c.techniques.is_empty() {
            let hit = facts.techniques.iter().find(|t| {
                c.techniques
                    .iter()
                    .any(|want| *t == want || t.strip_prefix(want.as_str()).is_some_and(|r| r.starts_with('.')))
            })?;
            why.push(format!("technique {hit}"));
        }
        if !c.source_in.is_empty() || !c.source_not_in.is_empty() {
            let ip: IpAddr = facts.src_ip.parse().ok()?;
            // `::ffff:10.0.0.1` is in `10.0.0.0/8` for a condition as it is for the rails.
            let forms: Vec<IpAddr> =
                std::iter::once(ip).chain(super::rails::embedded_ipv4(ip).map(IpAddr::V4)).collect();
            let inside = |ranges: &[String]| {
                parse_ranges(ranges).map(|nets| nets.iter().any(|n| forms.iter().any(|f| n.contains(f))))
            };
            if !c.source_in.is_empty() {
                if !inside(&c.source_in).ok()? {
                    return None;
                }
                why.push(format!("source {ip} in {}", c.source_in.join(", ")));
            }
            if !c.source_not_in.is_empty() {
                if inside(&c.source_not_in).ok()? {
                    return None;
                }
                why.push(format!("source {ip} not in {}", c.source_not_in.join(", ")));
            }
        }
        Some(why)
    }
}

// ---------------------------------------------------------------------------- events

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainmentPolicyCreated {
    pub org_id: OrgId,
    pub policy: ContainmentPolicy,
    pub at: DateTime<Utc>,
}

/// The whole policy as it is now (not a patch), so the log reads without folding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainmentPolicyUpdated {
    pub org_id: OrgId,
    pub policy: ContainmentPolicy,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainmentPolicyDeleted {
    pub org_id: OrgId,
    pub policy_id: PolicyId,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutoContainmentSet {
    pub org_id: OrgId,
    pub enabled: bool,
    pub at: DateTime<Utc>,
}

/// The org's safety rails, as a whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainmentSettingsChanged {
    pub org_id: OrgId,
    pub protected_ranges: Vec<String>,
    pub allow_private_targets: bool,
    pub max_auto_blocks_per_minute: u32,
    pub at: DateTime<Utc>,
}

/// The org's four-eyes setting: whether whoever requested an action may also approve it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelfApprovalSet {
    pub org_id: OrgId,
    pub allowed: bool,
    pub at: DateTime<Utc>,
}

// -------------------------------------------------------------------------- commands

#[derive(Debug, Clone, PartialEq)]
pub enum ContainmentCommand {
    Create {
        org_id: OrgId,
        policy: ContainmentPolicy,
        now: DateTime<Utc>,
    },
    Update {
        org_id: OrgId,
        policy: ContainmentPolicy,
        now: DateTime<Utc>,
    },
    Delete {
        org_id: OrgId,
        policy_id: PolicyId,
        now: DateTime<Utc>,
    },
    SetAutoContainment {
        org_id: OrgId,
        enabled: bool,
        now: DateTime<Utc>,
    },
    ChangeSettings {
        org_id: OrgId,
        protected_ranges: Vec<String>,
        allow_private_targets: bool,
        max_auto_blocks_per_minute: u32,
        now: DateTime<Utc>,
    },
    /// Four-eyes off (`allowed: true`) or on again (the default).
    SetSelfApproval {
        org_id: OrgId,
        allowed: bool,
        now: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContainmentError {
    #[error("policy already exists")]
    AlreadyExists,
    #[error("no such policy")]
    NotFound,
    #[error("policy name must be 1 to {MAX_POLICY_NAME_CHARS} characters")]
    InvalidName,
    #[error("another policy already has priority {0}")]
    DuplicatePriority(i32),
    #[error("invalid condition: {0}")]
    InvalidCondition(String),
    #[error("a policy can request block_ip or notify, not {0}")]
    UnsupportedAction(&'static str),
    #[error("block duration must be between 1 second and {MAX_BLOCK_SECS} seconds")]
    InvalidDuration,
    #[error("invalid protected range: {0}")]
    InvalidRange(String),
    #[error("the automatic block cap must be between 0 and 10000 per minute")]
    InvalidCap,
}

// ------------------------------------------------------------------------- aggregate

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainmentPolicies {
    pub policies: BTreeMap<PolicyId, ContainmentPolicy>,
    pub auto_containment: bool,
    pub protected_ranges: Vec<String>,
    pub allow_private_targets: bool,
    pub max_auto_blocks_per_minute: u32,
    /// Four-eyes is on unless an admin allows requesters to approve their own actions.
    pub allow_self_approval: bool,
}

impl Default for ContainmentPolicies {
    /// Auto-containment starts off: an org turns it on deliberately, after writing policies.
    fn default() -> Self {
        ContainmentPolicies {
            policies: BTreeMap::new(),
            auto_containment: false,
            protected_ranges: DEFAULT_PROTECTED.iter().map(|s| s.to_string()).collect(),
            allow_private_targets: false,
            max_auto_blocks_per_minute: DEFAULT_MAX_AUTO_BLOCKS_PER_MINUTE,
            allow_self_approval: false,
        }
    }
}

impl ContainmentPolicies {
    /// Policies in evaluation order: priority, then id for a stable tie-break.
    pub fn ordered(&self) -> Vec<&ContainmentPolicy> {
        let mut list: Vec<_> = self.policies.values().collect();
        list.sort_by_key(|p| (p.priority, p.policy_id));
        list
    }

    /// The first enabled policy that matches, with the conditions that held.
    pub fn evaluate(&self, facts: &IncidentFacts<'_>) -> Option<(&ContainmentPolicy, Vec<String>)> {
        self.ordered().into_iter().filter(|p| p.enabled).find_map(|p| p.matches(facts).map(|why| (p, why)))
    }

    pub fn rails(&self) -> SafetyRails {
        SafetyRails {
            // Validated on the way in; an unparsable stored range would be a corrupt log.
            protected: parse_ranges(&self.protected_ranges).unwrap_or_default(),
            allow_private: self.allow_private_targets,
        }
    }

    fn validate(
        &self,
        policy: &ContainmentPolicy,
        replacing: Option<PolicyId>,
    ) -> Result<ContainmentPolicy, ContainmentError> {
        let name = policy.name.trim();
        if name.is_empty() || name.chars().count() > MAX_POLICY_NAME_CHARS {
            return Err(ContainmentError::InvalidName);
        }
        let clash = self.policies.values().any(|p| p.priority == policy.priority && Some(p.policy_id) != replacing);
        if clash {
            return Err(ContainmentError::DuplicatePriority(policy.priority));
        }
        let c = &policy.conditions;
        if c.min_risk.is_some_and(|r| !(0.0..=1.0).contains(&r)) {
            return Err(ContainmentError::InvalidCondition("min_risk must be within 0..=1".into()));
        }
        if c.techniques.iter().any(|t| !t.starts_with('T') || t.len() < 5) {
            return Err(ContainmentError::InvalidCondition("techniques are ATT&CK ids like T1110.001".into()));
        }
        for range in c.source_in.iter().chain(&c.source_not_in) {
            parse_range(range).map_err(ContainmentError::InvalidCondition)?;
        }
        match policy.action.kind {
            ActionKind::BlockIp | ActionKind::Notify => {}
            other => return Err(ContainmentError::UnsupportedAction(other.as_str())),
        }
        match (policy.action.kind, policy.action.duration_secs) {
            (ActionKind::BlockIp, Some(d)) if d == 0 || d > MAX_BLOCK_SECS => {
                return Err(ContainmentError::InvalidDuration)
            }
            (ActionKind::Notify, Some(_)) => return Err(ContainmentError::InvalidDuration),
            _ => {}
        }
        Ok(ContainmentPolicy { name: name.to_owned(), ..policy.clone() })
    }
}

impl Aggregate for ContainmentPolicies {
    type Command = ContainmentCommand;
    type Error = ContainmentError;

    fn apply(&mut self, event: &Event) {
        match event {
            Event::ContainmentPolicyCreated(e) => {
                self.policies.insert(e.policy.policy_id, e.policy.clone());
            }
            Event::ContainmentPolicyUpdated(e) => {
                self.policies.insert(e.policy.policy_id, e.policy.clone());
            }
            Event::ContainmentPolicyDeleted(e) => {
                self.policies.remove(&e.policy_id);
            }
            Event::AutoContainmentSet(e) => self.auto_containment = e.enabled,
            Event::SelfApprovalSet(e) => self.allow_self_approval = e.allowed,
            Event::ContainmentSettingsChanged(e) => {
                self.protected_ranges = e.protected_ranges.clone();
                self.allow_private_targets = e.allow_private_targets;
                self.max_auto_blocks_per_minute = e.max_auto_blocks_per_minute;
            }
            _ => {}
        }
    }

    fn decide(&self, command: &ContainmentCommand) -> Result<Vec<Event>, ContainmentError> {
        match command {
            ContainmentCommand::Create { org_id, policy, now } => {
                if self.policies.contains_key(&policy.policy_id) {
                    return Err(ContainmentError::AlreadyExists);
                }
                let policy = self.validate(policy, None)?;
                Ok(vec![Event::ContainmentPolicyCreated(ContainmentPolicyCreated {
                    org_id: *org_id,
                    policy,
                    at: *now,
                })])
            }
            ContainmentCommand::Update { org_id, policy, now } => {
                let Some(current) = self.policies.get(&policy.policy_id) else {
                    return Err(ContainmentError::NotFound);
                };
                let policy = self.validate(policy, Some(policy.policy_id))?;
                if &policy == current {
                    return Ok(vec![]);
                }
                Ok(vec![Event::ContainmentPolicyUpdated(ContainmentPolicyUpdated {
                    org_id: *org_id,
                    policy,
                    at: *now,
                })])
            }
            ContainmentCommand::Delete { org_id, policy_id, now } => {
                if !self.policies.contains_key(policy_id) {
                    return Err(ContainmentError::NotFound);
                }
                Ok(vec![Event::ContainmentPolicyDeleted(ContainmentPolicyDeleted {
                    org_id: *org_id,
                    policy_id: *policy_id,
                    at: *now,
                })])
            }
            ContainmentCommand::SetSelfApproval { org_id, allowed, now } => {
                if self.allow_self_approval == *allowed {
                    return Ok(vec![]);
                }
                Ok(vec![Event::SelfApprovalSet(SelfApprovalSet { org_id: *org_id, allowed: *allowed, at: *now })])
            }
            ContainmentCommand::SetAutoContainment { org_id, enabled, now } => {
                if self.auto_containment == *enabled {
                    return Ok(vec![]);
                }
                Ok(vec![Event::AutoContainmentSet(AutoContainmentSet { org_id: *org_id, enabled: *enabled, at: *now })])
            }
            ContainmentCommand::ChangeSettings {
                org_id,
                protected_ranges,
                allow_private_targets,
                max_auto_blocks_per_minute,
                now,
            } => {
                let nets = parse_ranges(protected_ranges).map_err(ContainmentError::InvalidRange)?;
                if *max_auto_blocks_per_minute > 10_000 {
                    return Err(ContainmentError::InvalidCap);
                }
                let protected_ranges: Vec<String> = nets.iter().map(|n| n.to_string()).collect();
                let unchanged = protected_ranges == self.protected_ranges
                    && *allow_private_targets == self.allow_private_targets
                    && *max_auto_blocks_per_minute == self.max_auto_blocks_per_minute;
                if unchanged {
                    return Ok(vec![]);
                }
                Ok(vec![Event::ContainmentSettingsChanged(ContainmentSettingsChanged {
                    org_id: *org_id,
                    protected_ranges,
                    allow_private_targets: *allow_private_targets,
                    max_auto_blocks_per_minute: *max_auto_blocks_per_minute,
                    at: *now,
                })])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::spec::{at, given};
    use uuid::Uuid;

    fn org() -> OrgId {
        OrgId(Uuid::from_u128(1))
    }

    fn policy(n: u128, priority: i32, conditions: PolicyConditions, mode: PolicyMode) -> ContainmentPolicy {
        ContainmentPolicy {
            policy_id: PolicyId(Uuid::from_u128(n)),
            name: format!("policy {n}"),
            priority,
            enabled: true,
            conditions,
            action: PolicyAction { kind: ActionKind::BlockIp, duration_secs: Some(600) },
            mode,
        }
    }

    fn created(p: ContainmentPolicy) -> Event {
        Event::ContainmentPolicyCreated(ContainmentPolicyCreated { org_id: org(), policy: p, at: at(0) })
    }

    fn facts<'a>(severity: Severity, techniques: &'a [String], src_ip: &'a str) -> IncidentFacts<'a> {
        IncidentFacts { severity, category: IncidentCategory::BruteForce, risk_score: 0.7, techniques, src_ip }
    }

    #[test]
    fn the_first_matching_policy_by_priority_wins_and_says_why() {
        let high = PolicyConditions { min_severity: Some(Severity::High), ..Default::default() };
        let spray = PolicyConditions { techniques: vec!["T1110".into()], ..Default::default() };
        let state = ContainmentPolicies::from_history(&[
            created(policy(1, 20, high, PolicyMode::Auto)),
            created(policy(2, 10, spray, PolicyMode::Approval)),
        ]);
        let techniques = vec!["T1110.003".to_string()];
        let (p, why) = state.evaluate(&facts(Severity::Critical, &techniques, "203.0.113.9")).unwrap();
        assert_eq!(p.priority, 10);
        assert_eq!(why, vec!["technique T1110.003"]);
        let none: Vec<String> = vec![];
        let (p, why) = state.evaluate(&facts(Severity::High, &none, "203.0.113.9")).unwrap();
        assert_eq!(p.priority, 20);
        assert_eq!(why, vec!["severity high >= high"]);
        assert!(state.evaluate(&facts(Severity::Medium, &none, "203.0.113.9")).is_none());
    }

    #[test]
    fn source_lists_category_and_risk_conditions_hold_together() {
        let conditions = PolicyConditions {
            categories: vec![IncidentCategory::BruteForce, IncidentCategory::Compromise],
            min_risk: Some(0.6),
            source_in: vec!["203.0.113.0/24".into()],
            source_not_in: vec!["203.0.113.128/25".into()],
            ..Default::default()
        };
        let p = policy(1, 1, conditions, PolicyMode::Auto);
        let none: Vec<String> = vec![];
        assert!(p.matches(&facts(Severity::Low, &none, "203.0.113.9")).is_some());
        assert!(p.matches(&facts(Severity::Low, &none, "203.0.113.200")).is_none());
        assert!(p.matches(&facts(Severity::Low, &none, "198.51.100.1")).is_none());
        // The IPv4-mapped form of an excluded address stays excluded.
        assert!(p.matches(&facts(Severity::Low, &none, "::ffff:203.0.113.200")).is_none());
        assert!(p.matches(&facts(Severity::Low, &none, "::ffff:203.0.113.9")).is_some());
        let mut low_risk = facts(Severity::Low, &none, "203.0.113.9");
        low_risk.risk_score = 0.5;
        assert!(p.matches(&low_risk).is_none());
        let mut recon = facts(Severity::Low, &none, "203.0.113.9");
        recon.category = IncidentCategory::Recon;
        assert!(p.matches(&recon).is_none());
    }

    #[test]
    fn disabled_policies_are_skipped() {
        let mut p = policy(1, 1, PolicyConditions::default(), PolicyMode::Auto);
        p.enabled = false;
        let state = ContainmentPolicies::from_history(&[created(p)]);
        let none: Vec<String> = vec![];
        assert!(state.evaluate(&facts(Severity::Critical, &none, "203.0.113.9")).is_none());
    }

    #[test]
    fn policies_are_validated() {
        let state =
            ContainmentPolicies::from_history(&[created(policy(1, 5, PolicyConditions::default(), PolicyMode::Auto))]);
        let clash = policy(2, 5, PolicyConditions::default(), PolicyMode::Auto);
        given::<ContainmentPolicies>(vec![created(policy(1, 5, PolicyConditions::default(), PolicyMode::Auto))])
            .when(ContainmentCommand::Create { org_id: org(), policy: clash, now: at(1) })
            .then_err(ContainmentError::DuplicatePriority(5));
        let mut isolate = policy(3, 6, PolicyConditions::default(), PolicyMode::Auto);
        isolate.action.kind = ActionKind::IsolateHost;
        assert_eq!(state.validate(&isolate, None), Err(ContainmentError::UnsupportedAction("isolate_host")));
        let bad_cidr = PolicyConditions { source_in: vec!["10.0.0.0/99".into()], ..Default::default() };
        assert!(matches!(
            state.validate(&policy(4, 7, bad_cidr, PolicyMode::Auto), None),
            Err(ContainmentError::InvalidCondition(_))
        ));
        // Updating a policy may keep its own priority.
        let mut renamed = policy(1, 5, PolicyConditions::default(), PolicyMode::Approval);
        renamed.name = "  renamed ".into();
        let events =
            given::<ContainmentPolicies>(vec![created(policy(1, 5, PolicyConditions::default(), PolicyMode::Auto))])
                .when(ContainmentCommand::Update { org_id: org(), policy: renamed, now: at(2) })
                .events();
        assert!(matches!(&events[0], Event::ContainmentPolicyUpdated(u) if u.policy.name == "renamed"));
    }

    #[test]
    fn settings_start_safe_and_change_as_a_whole() {
        let state = ContainmentPolicies::default();
        assert!(!state.auto_containment);
        assert!(state.rails().check("127.0.0.1".parse().unwrap()).is_err());
        given::<ContainmentPolicies>(vec![])
            .when(ContainmentCommand::SetAutoContainment { org_id: org(), enabled: false, now: at(1) })
            .then(vec![]);
        let events = given::<ContainmentPolicies>(vec![])
            .when(ContainmentCommand::ChangeSettings {
                org_id: org(),
                protected_ranges: vec!["127.0.0.1".into(), "192.0.2.0/24".into()],
                allow_private_targets: true,
                max_auto_blocks_per_minute: 3,
                now: at(1),
            })
            .events();
        let state = ContainmentPolicies::from_history(&events);
        assert_eq!(state.protected_ranges, vec!["127.0.0.1/32", "192.0.2.0/24"]);
        assert!(state.rails().check("127.0.0.2".parse().unwrap()).is_ok());
        assert!(state.rails().check("192.0.2.77".parse().unwrap()).is_err());
        given::<ContainmentPolicies>(vec![])
            .when(ContainmentCommand::ChangeSettings {
                org_id: org(),
                protected_ranges: vec!["nope".into()],
                allow_private_targets: false,
                max_auto_blocks_per_minute: 3,
                now: at(1),
            })
            .then_err(ContainmentError::InvalidRange("\"nope\" is not an IP address or CIDR range".into()));
    }

    #[test]
    fn four_eyes_is_on_until_an_admin_allows_self_approval() {
        assert!(!ContainmentPolicies::default().allow_self_approval);
        let allow = ContainmentCommand::SetSelfApproval { org_id: org(), allowed: true, now: at(1) };
        let events = given::<ContainmentPolicies>(vec![]).when(allow.clone()).events();
        assert_eq!(events, vec![Event::SelfApprovalSet(SelfApprovalSet { org_id: org(), allowed: true, at: at(1) })]);
        assert!(ContainmentPolicies::from_history(&events).allow_self_approval);
        // Setting what is already set records nothing.
        given::<ContainmentPolicies>(events).when(allow).then(vec![]);
    }
}
