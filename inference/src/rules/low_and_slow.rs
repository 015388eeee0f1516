//! Low-and-slow guessing: at least 4 failed logins over at least 3 distinct user names
//! within an hour, while never reaching the brute-force rate (fewer than the brute-force
//! threshold in any 60 s) (T1110.001). Low severity.

use super::{score, RuleContext, RuleHit};
use crate::windows::{Kind, WINDOW_1H};
use xdr_domain::incident::{IncidentCategory, Severity};

pub const ID: &str = "low_and_slow";
pub const TECHNIQUES: &[&str] = &["T1110.001"];
/// Failed logins in an hour.
pub const DEFAULT_THRESHOLD: u32 = 4;

pub fn evaluate(ctx: &RuleContext<'_>) -> Option<RuleHit> {
    let f = ctx.features;
    let c = ctx.config;
    let n = f.failed_logins_1h;
    if n < f64::from(c.low_slow_min_failures)
        || f.distinct_usernames_1h < f64::from(c.low_slow_min_usernames)
        || f.max_failed_logins_per_60s_1h >= f64::from(c.brute_force_failures)
    {
        return None;
    }
    Some(RuleHit {
        rule_id: ID,
        category: IncidentCategory::BruteForce,
        severity: Severity::Low,
        risk_score: score((0.3 + n / 50.0).min(0.5)),
        confidence: 0.6,
        techniques: TECHNIQUES.to_vec(),
        reason: format!(
            "{n} failed logins over {} user names within 1 h, below the brute-force rate",
            f.distinct_usernames_1h
        ),
        features: vec!["failed_logins_1h", "distinct_usernames_1h", "max_failed_logins_per_60s_1h", "invalid_users_1h"],
        evidence: ctx.evidence(WINDOW_1H, |o| matches!(o.kind, Kind::LoginFailed | Kind::InvalidUser)),
    })
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;

    #[test]
    fn it_should_fire_on_four_slow_failures_over_three_users() {
        let h =
            [sshd_failed(0, "ubuntu"), sshd_failed(600, "root"), sshd_failed(1200, "daemon"), sshd_failed(1800, "git")];
        let hit = hit(&h, ID).expect("fires");
        assert_eq!(hit.severity, Severity::Low);
        assert_eq!(hit.techniques, vec!["T1110.001"]);
    }

    #[test]
    fn it_should_not_fire_for_two_users_or_at_brute_force_rate() {
        let two = [sshd_failed(0, "a"), sshd_failed(600, "b"), sshd_failed(1200, "a"), sshd_failed(1800, "b")];
        assert!(hit(&two, ID).is_none());
        let fast: Vec<_> = (0..6).map(|i| sshd_failed(i, &format!("u{i}"))).chain([sshd_failed(900, "z")]).collect();
        assert!(hit(&fast, ID).is_none());
    }
}
