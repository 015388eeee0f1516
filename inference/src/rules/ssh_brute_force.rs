//! SSH brute force: at least 6 failed logins from one source within 60 s (T1110.001).
//! Risk `min(0.6 + n/100, 0.95)`; high above 12 failures, else medium.

use super::{score, RuleContext, RuleHit};
use crate::windows::{Kind, WINDOW_1M};
use xdr_domain::incident::{IncidentCategory, Severity};

pub const ID: &str = "ssh_brute_force";
pub const TECHNIQUES: &[&str] = &["T1110.001"];
/// Failed logins in 60 s.
pub const DEFAULT_THRESHOLD: u32 = 6;

pub fn evaluate(ctx: &RuleContext<'_>) -> Option<RuleHit> {
    let n = ctx.features.failed_logins_1m;
    if n < f64::from(ctx.config.brute_force_failures) {
        return None;
    }
    let severity = if n > f64::from(ctx.config.brute_force_high_above) { Severity::High } else { Severity::Medium };
    Some(RuleHit {
        rule_id: ID,
        category: IncidentCategory::BruteForce,
        severity,
        risk_score: score((0.6 + n / 100.0).min(0.95)),
        confidence: 0.9,
        techniques: TECHNIQUES.to_vec(),
        reason: format!("{n} failed logins within 60 s (threshold {})", ctx.config.brute_force_failures),
        features: vec!["failed_logins_1m", "failed_logins_1h", "distinct_usernames_1h", "distinct_passwords_1h"],
        evidence: ctx.evidence(WINDOW_1M, |o| o.kind == Kind::LoginFailed),
    })
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;

    #[test]
    fn it_should_fire_at_six_failures_in_a_minute_as_medium() {
        let h: Vec<_> = (0..6).map(|i| failed(i * 9, "root", &format!("p{i}"))).collect();
        let hit = hit(&h, ID).expect("fires");
        assert_eq!(hit.severity, Severity::Medium);
        assert_eq!(hit.risk_score, 0.66);
        assert_eq!(hit.techniques, vec!["T1110.001"]);
        assert_eq!(hit.evidence.len(), 6);
    }

    #[test]
    fn it_should_not_fire_at_five_or_when_spread_over_more_than_a_minute() {
        let five: Vec<_> = (0..5).map(|i| failed(i, "root", "x")).collect();
        assert!(hit(&five, ID).is_none());
        let slow: Vec<_> = (0..6).map(|i| failed(i * 13, "root", "x")).collect();
        assert!(hit(&slow, ID).is_none());
    }

    #[test]
    fn it_should_be_high_above_twelve_and_cap_risk() {
        let h: Vec<_> = (0..13).map(|i| failed(i * 4, "root", "x")).collect();
        assert_eq!(hit(&h, ID).unwrap().severity, Severity::High);
        let h: Vec<_> = (0..59).map(|i| sshd_failed(i, "root")).collect();
        assert_eq!(hit(&h, ID).unwrap().risk_score, 0.95);
    }

    #[test]
    fn it_should_honour_a_per_org_threshold() {
        let h: Vec<_> = (0..6).map(|i| failed(i, "root", "x")).collect();
        let config = super::super::RuleConfig { brute_force_failures: 10, ..Default::default() };
        assert!(hits_with(&h, &config).iter().all(|h| h.rule_id != ID));
    }
}
