//! Compromise after brute force: a successful login from a source with at least 5 failed
//! logins in the hour before it (T1078). Critical.

use super::{score, RuleContext, RuleHit};
use crate::windows::{Kind, WINDOW_1H};
use xdr_domain::incident::{IncidentCategory, Severity};

pub const ID: &str = "compromise_after_brute_force";
pub const TECHNIQUES: &[&str] = &["T1078"];
/// Failures in the hour before the success.
pub const DEFAULT_THRESHOLD: u32 = 5;

pub fn evaluate(ctx: &RuleContext<'_>) -> Option<RuleHit> {
    let f = ctx.features;
    if f.successful_logins_1h < 1.0 || f.failed_before_success_1h < f64::from(ctx.config.compromise_min_failures) {
        return None;
    }
    Some(RuleHit {
        rule_id: ID,
        category: IncidentCategory::Compromise,
        severity: Severity::Critical,
        risk_score: score(0.97),
        confidence: 0.9,
        techniques: TECHNIQUES.to_vec(),
        reason: format!("successful login after {} failed logins in the previous hour", f.failed_before_success_1h),
        features: vec!["successful_logins_1h", "failed_before_success_1h", "distinct_passwords_1h"],
        evidence: ctx.evidence(WINDOW_1H, |o| matches!(o.kind, Kind::LoginSuccess | Kind::LoginFailed)),
    })
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;

    #[test]
    fn it_should_rate_a_login_after_five_failures_critical() {
        let mut h: Vec<_> = (0..5).map(|i| failed(i * 30, "root", &format!("p{i}"))).collect();
        h.push(success(200, "root", "1qaz@WSX"));
        let hit = hit(&h, ID).expect("fires");
        assert_eq!(hit.severity, Severity::Critical);
        assert_eq!(hit.techniques, vec!["T1078"]);
        assert_eq!(hit.evidence.len(), 6);
    }

    #[test]
    fn it_should_not_fire_after_four_failures_or_failures_older_than_an_hour() {
        let mut h: Vec<_> = (0..4).map(|i| failed(i, "root", "x")).collect();
        h.push(success(10, "root", "y"));
        assert!(hit(&h, ID).is_none());
        let mut old: Vec<_> = (0..5).map(|i| failed(i, "root", "x")).collect();
        old.push(success(3700, "root", "y"));
        assert!(hit(&old, ID).is_none());
        // Failures after the success do not make it a compromise.
        let mut after = vec![success(0, "root", "y")];
        after.extend((1..6).map(|i| failed(i, "root", "x")));
        assert!(hit(&after, ID).is_none());
    }
}
