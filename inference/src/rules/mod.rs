//! Detection rules: one module per rule, each a pure function of a source's features and
//! windows that returns a [`RuleHit`] (what, how bad, which ATT&CK techniques, why, and the
//! events behind it) or nothing. Thresholds default to the documented values and can be
//! overridden per org with a [`RuleConfig`].

use serde::{Deserialize, Serialize};
use xdr_domain::incident::{IncidentCategory, Severity};

use crate::features::Features;
use crate::windows::{Obs, SourceWindow};

pub mod compromise_after_brute_force;
pub mod discovery;
pub mod exec_downloaded_file;
pub mod ingress_tool_transfer;
pub mod iot_botnet;
pub mod low_and_slow;
pub mod password_spray;
pub mod persistence;
pub mod scanner;
pub mod ssh_brute_force;

/// Thresholds of every rule; per-org overrides deserialize over the defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RuleConfig {
    /// Failed logins in 60 s for SSH brute force.
    pub brute_force_failures: u32,
    /// Brute force is high severity above this many failures in 60 s, else medium.
    pub brute_force_high_above: u32,
    pub spray_failures: u32,
    pub spray_distinct_passwords: u32,
    pub spray_max_usernames: u32,
    /// Failures in the hour before a successful login that make it a compromise.
    pub compromise_min_failures: u32,
    pub discovery_min_commands: u32,
    /// Connects in 5 min without any login attempt.
    pub scanner_min_connects: u32,
    /// Distinct router-CLI escapes (enable/system/shell/sh) that mark an IoT bot.
    pub iot_min_cli_escapes: u32,
    pub low_slow_min_failures: u32,
    pub low_slow_min_usernames: u32,
    /// Rule ids switched off for this org.
    pub disabled: Vec<String>,
}

impl Default for RuleConfig {
    fn default() -> Self {
        RuleConfig {
            brute_force_failures: ssh_brute_force::DEFAULT_THRESHOLD,
            brute_force_high_above: 12,
            spray_failures: password_spray::DEFAULT_THRESHOLD,
            spray_distinct_passwords: 10,
            spray_max_usernames: 5,
            compromise_min_failures: compromise_after_brute_force::DEFAULT_THRESHOLD,
            discovery_min_commands: discovery::DEFAULT_THRESHOLD,
            scanner_min_connects: scanner::DEFAULT_THRESHOLD,
            iot_min_cli_escapes: iot_botnet::DEFAULT_THRESHOLD,
            low_slow_min_failures: low_and_slow::DEFAULT_THRESHOLD,
            low_slow_min_usernames: 3,
            disabled: Vec::new(),
        }
    }
}

/// One event behind a hit: its log position and event time (µs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Evidence {
    pub seq: i64,
    pub t: i64,
}

/// A rule fired.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleHit {
    pub rule_id: &'static str,
    pub category: IncidentCategory,
    pub severity: Severity,
    pub risk_score: f64,
    pub confidence: f64,
    pub techniques: Vec<&'static str>,
    pub reason: String,
    /// Names of the features that drove the decision (values are read from the features).
    pub features: Vec<&'static str>,
    pub evidence: Vec<Evidence>,
}

/// What a rule sees.
pub struct RuleContext<'a> {
    pub features: &'a Features,
    pub window: &'a SourceWindow,
    /// Event time the windows end at (µs).
    pub anchor: i64,
    pub config: &'a RuleConfig,
}

impl RuleContext<'_> {
    /// The events within `width` before the anchor that satisfy `pred`.
    pub fn evidence(&self, width: i64, pred: impl Fn(&Obs) -> bool) -> Vec<Evidence> {
        self.window.range(self.anchor, width).filter(|o| pred(o)).map(|o| Evidence { seq: o.seq, t: o.t }).collect()
    }
}

type RuleFn = fn(&RuleContext<'_>) -> Option<RuleHit>;

/// Every rule, in the order hits are reported.
pub const RULES: &[(&str, RuleFn)] = &[
    (compromise_after_brute_force::ID, compromise_after_brute_force::evaluate),
    (ssh_brute_force::ID, ssh_brute_force::evaluate),
    (password_spray::ID, password_spray::evaluate),
    (low_and_slow::ID, low_and_slow::evaluate),
    (iot_botnet::ID, iot_botnet::evaluate),
    (ingress_tool_transfer::ID, ingress_tool_transfer::evaluate),
    (exec_downloaded_file::ID, exec_downloaded_file::evaluate),
    (persistence::ID, persistence::evaluate),
    (discovery::ID, discovery::evaluate),
    (scanner::ID, scanner::evaluate),
];

/// Run every enabled rule.
pub fn evaluate_all(ctx: &RuleContext<'_>) -> Vec<RuleHit> {
    RULES
        .iter()
        .filter(|(id, _)| !ctx.config.disabled.iter().any(|d| d == id))
        .filter_map(|(_, rule)| rule(ctx))
        .collect()
}

/// Round a score to 4 decimals so stored values read cleanly.
pub fn score(x: f64) -> f64 {
    (x.clamp(0.0, 1.0) * 10_000.0).round() / 10_000.0
}

#[cfg(test)]
pub(crate) mod testkit {
    //! Build a source's history from readable steps and run the rules at its last event.
    use super::*;
    use crate::features::{extract, observe};
    use crate::windows::MICROS;
    use chrono::DateTime;
    use uuid::Uuid;
    use xdr_domain::telemetry::{SecurityEvent, SourceType};

    pub fn ev(t: i64, event_type: &str) -> SecurityEvent {
        let mut e = SecurityEvent::new(
            DateTime::from_timestamp(1_795_000_000 + t, 0).unwrap(),
            SourceType::Cowrie,
            event_type,
            serde_json::Value::Null,
        );
        e.src_ip = Some("203.0.113.9".parse().unwrap());
        e.session_id = Some(format!("s{}", t / 10));
        e.dst_port = Some(2222);
        e
    }
    pub fn failed(t: i64, user: &str, pass: &str) -> SecurityEvent {
        let mut e = ev(t, "cowrie.login.failed");
        e.username = Some(user.into());
        e.password = Some(pass.into());
        e
    }
    pub fn sshd_failed(t: i64, user: &str) -> SecurityEvent {
        let mut e = ev(t, "sshd.failed_password");
        e.username = Some(user.into());
        e
    }
    pub fn success(t: i64, user: &str, pass: &str) -> SecurityEvent {
        let mut e = ev(t, "cowrie.login.success");
        e.username = Some(user.into());
        e.password = Some(pass.into());
        e
    }
    pub fn connect(t: i64) -> SecurityEvent {
        ev(t, "cowrie.session.connect")
    }
    pub fn cmd(t: i64, text: &str) -> SecurityEvent {
        let mut e = ev(t, "cowrie.command.input");
        e.command = Some(text.into());
        e
    }
    pub fn download(t: i64, url: Option<&str>, dest: &str) -> SecurityEvent {
        let mut e = ev(t, "cowrie.session.file_download");
        e.url = url.map(str::to_owned);
        e.raw = serde_json::json!({ "destfile": dest });
        e
    }

    /// Hits at the last event, with the given config.
    pub fn hits_with(history: &[SecurityEvent], config: &RuleConfig) -> Vec<RuleHit> {
        let mut w = SourceWindow::default();
        for (i, e) in history.iter().enumerate() {
            w.insert(observe(i as i64 + 1, Uuid::nil(), e), 600 * MICROS, 100_000).unwrap();
        }
        let anchor = w.watermark();
        let features = extract(&w, anchor);
        evaluate_all(&RuleContext { features: &features, window: &w, anchor, config })
    }

    pub fn hits(history: &[SecurityEvent]) -> Vec<RuleHit> {
        hits_with(history, &RuleConfig::default())
    }

    pub fn fired(history: &[SecurityEvent]) -> Vec<&'static str> {
        hits(history).iter().map(|h| h.rule_id).collect()
    }

    pub fn hit(history: &[SecurityEvent], id: &str) -> Option<RuleHit> {
        hits(history).into_iter().find(|h| h.rule_id == id)
    }

    #[test]
    fn a_benign_user_triggers_nothing() {
        let history = vec![
            connect(0),
            failed(2, "deploy", "Tr4in-Sched#2025"),
            success(3, "deploy", "Tr4in-Sched#2026"),
            cmd(10, "ls"),
            cmd(12, "pwd"),
            cmd(14, "uname -a"),
            cmd(15, "exit"),
        ];
        assert_eq!(fired(&history), Vec::<&str>::new());
    }

    #[test]
    fn disabled_rules_do_not_fire() {
        let history: Vec<_> = (0..8).map(|i| failed(i, "root", "x")).collect();
        let config = RuleConfig { disabled: vec![ssh_brute_force::ID.into()], ..Default::default() };
        assert!(hits_with(&history, &config).iter().all(|h| h.rule_id != ssh_brute_force::ID));
    }
}
