//! Persistence: writes to `authorized_keys` (T1098.004) — commands, or Cowrie's record of
//! redirected output whose `destfile` is an `authorized_keys` — and crontab edits (T1053.003).

use super::{score, RuleContext, RuleHit};
use crate::windows::{flags, Kind, WINDOW_1H};
use xdr_domain::incident::{IncidentCategory, Severity};

pub const ID: &str = "persistence";
pub const TECHNIQUES: &[&str] = &["T1098.004", "T1053.003"];
pub const DEFAULT_THRESHOLD: u32 = 1;

pub fn evaluate(ctx: &RuleContext<'_>) -> Option<RuleHit> {
    if ctx.features.persistence_1h < f64::from(DEFAULT_THRESHOLD) {
        return None;
    }
    let evidence_pred = |o: &crate::windows::Obs| {
        matches!(o.kind, Kind::Command | Kind::FileDownload) && o.flags & flags::PERSISTENCE != 0
    };
    let all: u32 = ctx.window.range(ctx.anchor, WINDOW_1H).filter(|o| evidence_pred(o)).fold(0, |a, o| a | o.flags);
    let mut techniques = Vec::new();
    if all & flags::PERSIST_KEYS != 0 {
        techniques.push(TECHNIQUES[0]);
    }
    if all & flags::PERSIST_CRON != 0 {
        techniques.push(TECHNIQUES[1]);
    }
    Some(RuleHit {
        rule_id: ID,
        category: IncidentCategory::Apt,
        severity: Severity::High,
        risk_score: score(0.85),
        confidence: 0.85,
        techniques,
        reason: "persistence: SSH authorized_keys or crontab written".to_owned(),
        features: vec!["persistence_1h"],
        evidence: ctx.evidence(WINDOW_1H, evidence_pred),
    })
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;

    #[test]
    fn it_should_fire_on_authorized_keys_writes_and_crontab() {
        let h = [download(0, None, "/root/.ssh/authorized_keys")];
        assert_eq!(hit(&h, ID).unwrap().techniques, vec!["T1098.004"]);
        let h = [cmd(0, "echo ssh-rsa AAA >> ~/.ssh/authorized_keys")];
        assert_eq!(hit(&h, ID).unwrap().techniques, vec!["T1098.004"]);
        let h = [cmd(0, "echo '* * * * * /tmp/x' | crontab -")];
        assert_eq!(hit(&h, ID).unwrap().techniques, vec!["T1053.003"]);
    }

    #[test]
    fn it_should_not_fire_on_reading_keys_or_listing_crontab() {
        assert!(
            hit(&[cmd(0, "cat ~/.ssh/authorized_keys"), cmd(1, "crontab -l"), cmd(2, "mkdir -p ~/.ssh")], ID).is_none()
        );
    }
}
