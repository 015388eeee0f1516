//! Password spray: at least 15 failed logins with at least 10 distinct passwords over at
//! most 5 user names within 30 min (T1110.003).

use super::{score, RuleContext, RuleHit};
use crate::windows::{Kind, WINDOW_30M};
use xdr_domain::incident::{IncidentCategory, Severity};

pub const ID: &str = "password_spray";
pub const TECHNIQUES: &[&str] = &["T1110.003"];
/// Failed logins in 30 min.
pub const DEFAULT_THRESHOLD: u32 = 15;

pub fn evaluate(ctx: &RuleContext<'_>) -> Option<RuleHit> {
    let f = ctx.features;
    let c = ctx.config;
    let n = f.failed_logins_30m;
    if n < f64::from(c.spray_failures)
        || f.distinct_passwords_30m < f64::from(c.spray_distinct_passwords)
        || f.distinct_usernames_30m > f64::from(c.spray_max_usernames)
        || f.distinct_usernames_30m < 1.0
    {
        return None;
    }
    Some(RuleHit {
        rule_id: ID,
        category: IncidentCategory::BruteForce,
        severity: Severity::High,
        risk_score: score((0.7 + n / 200.0).min(0.95)),
        confidence: 0.85,
        techniques: TECHNIQUES.to_vec(),
        reason: format!(
            "{n} failed logins with {} distinct passwords over {} user names within 30 min",
            f.distinct_passwords_30m, f.distinct_usernames_30m
        ),
        features: vec!["failed_logins_30m", "distinct_passwords_30m", "distinct_usernames_30m"],
        evidence: ctx.evidence(WINDOW_30M, |o| o.kind == Kind::LoginFailed),
    })
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;

    #[test]
    fn it_should_fire_on_many_passwords_against_few_users() {
        let h: Vec<_> =
            (0..15).map(|i| failed(i * 100, ["alice", "bob"][i as usize % 2], &format!("Pass{i}"))).collect();
        let hit = hit(&h, ID).expect("fires");
        assert_eq!(hit.techniques, vec!["T1110.003"]);
        assert_eq!(hit.severity, Severity::High);
    }

    #[test]
    fn it_should_not_fire_over_many_users_or_few_passwords() {
        let many_users: Vec<_> = (0..15).map(|i| failed(i * 100, &format!("u{i}"), &format!("p{i}"))).collect();
        assert!(hit(&many_users, ID).is_none());
        let few_passwords: Vec<_> = (0..15).map(|i| failed(i * 100, "alice", &format!("p{}", i % 3))).collect();
        assert!(hit(&few_passwords, ID).is_none());
        let fourteen: Vec<_> = (0..14).map(|i| failed(i * 100, "alice", &format!("p{i}"))).collect();
        assert!(hit(&fourteen, ID).is_none());
    }
}
