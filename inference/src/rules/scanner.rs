//! Scanner / banner grabbing: at least 10 connections within 5 min without a single login
//! attempt (T1595, T1046). Category recon, low severity.

use super::{score, RuleContext, RuleHit};
use crate::windows::{Kind, WINDOW_5M};
use xdr_domain::incident::{IncidentCategory, Severity};

pub const ID: &str = "scanner";
pub const TECHNIQUES: &[&str] = &["T1595", "T1046"];
/// Connects in 5 min.
pub const DEFAULT_THRESHOLD: u32 = 10;

pub fn evaluate(ctx: &RuleContext<'_>) -> Option<RuleHit> {
    let f = ctx.features;
    let n = f.connects_5m;
    if n < f64::from(ctx.config.scanner_min_connects) || f.login_attempts_5m > 0.0 {
        return None;
    }
    Some(RuleHit {
        rule_id: ID,
        category: IncidentCategory::Recon,
        severity: Severity::Low,
        risk_score: score((0.3 + n / 100.0).min(0.5)),
        confidence: 0.75,
        techniques: TECHNIQUES.to_vec(),
        reason: format!("{n} connections within 5 min without a login attempt"),
        features: vec!["connects_5m", "login_attempts_5m", "distinct_dst_ports_1h", "mean_session_secs_1h"],
        evidence: ctx.evidence(WINDOW_5M, |o| o.kind == Kind::Connect),
    })
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;

    #[test]
    fn it_should_fire_on_ten_connects_without_logins() {
        let h: Vec<_> = (0..10).map(|i| connect(i * 20)).collect();
        let hit = hit(&h, ID).expect("fires");
        assert_eq!(hit.category, IncidentCategory::Recon);
        assert_eq!(hit.techniques, vec!["T1595", "T1046"]);
    }

    #[test]
    fn it_should_not_fire_with_a_login_attempt_or_slow_connects() {
        let mut h: Vec<_> = (0..10).map(|i| connect(i * 20)).collect();
        h.insert(3, failed(61, "root", "x"));
        assert!(hit(&h, ID).is_none());
        let slow: Vec<_> = (0..10).map(|i| connect(i * 40)).collect();
        assert!(hit(&slow, ID).is_none());
    }
}
