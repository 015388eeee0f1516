//! Discovery after login: at least 2 system-discovery commands (`uname -a`,
//! `/proc/cpuinfo`, `nproc`, `cat /etc/passwd`, …) within an hour (T1082). One `uname` from
//! an admin is normal; a bot fingerprinting the box runs several.

use super::{score, RuleContext, RuleHit};
use crate::windows::{flags, Kind, WINDOW_1H};
use xdr_domain::incident::{IncidentCategory, Severity};

pub const ID: &str = "discovery";
pub const TECHNIQUES: &[&str] = &["T1082"];
/// Discovery commands in an hour.
pub const DEFAULT_THRESHOLD: u32 = 2;

pub fn evaluate(ctx: &RuleContext<'_>) -> Option<RuleHit> {
    let n = ctx.features.discovery_1h;
    if n < f64::from(ctx.config.discovery_min_commands) {
        return None;
    }
    Some(RuleHit {
        rule_id: ID,
        category: IncidentCategory::Recon,
        severity: Severity::Medium,
        risk_score: score(0.5),
        confidence: 0.7,
        techniques: TECHNIQUES.to_vec(),
        reason: format!("{n} system discovery commands after login"),
        features: vec!["discovery_1h", "commands_1h"],
        evidence: ctx.evidence(WINDOW_1H, |o| o.kind == Kind::Command && o.flags & flags::DISCOVERY != 0),
    })
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;

    #[test]
    fn it_should_fire_on_two_discovery_commands() {
        let hit = hit(&[cmd(0, "uname -a"), cmd(2, "cat /proc/cpuinfo")], ID).expect("fires");
        assert_eq!(hit.techniques, vec!["T1082"]);
        assert_eq!(hit.evidence.len(), 2);
    }

    #[test]
    fn it_should_not_fire_on_one() {
        assert!(hit(&[cmd(0, "uname -a"), cmd(2, "ls")], ID).is_none());
    }
}
