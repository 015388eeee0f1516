//! Execution of a downloaded file: `chmod +x` and then `./file` (same line or later)
//! (T1059.004).

use super::{score, RuleContext, RuleHit};
use crate::windows::{flags, Kind, WINDOW_1H};
use xdr_domain::incident::{IncidentCategory, Severity};

pub const ID: &str = "exec_downloaded_file";
pub const TECHNIQUES: &[&str] = &["T1059.004"];
pub const DEFAULT_THRESHOLD: u32 = 1;

pub fn evaluate(ctx: &RuleContext<'_>) -> Option<RuleHit> {
    if ctx.features.chmod_then_exec_1h < 1.0 {
        return None;
    }
    Some(RuleHit {
        rule_id: ID,
        category: IncidentCategory::MalwareBotnet,
        severity: Severity::High,
        risk_score: score(0.85),
        confidence: 0.85,
        techniques: TECHNIQUES.to_vec(),
        reason: "a file was made executable and then run".to_owned(),
        features: vec!["chmod_exec_1h", "exec_local_1h", "chmod_then_exec_1h"],
        evidence: ctx
            .evidence(WINDOW_1H, |o| o.kind == Kind::Command && o.flags & (flags::CHMOD_X | flags::EXEC_LOCAL) != 0),
    })
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;

    #[test]
    fn it_should_fire_on_chmod_then_run() {
        assert!(hit(&[cmd(0, "chmod +x bot.sh; ./bot.sh")], ID).is_some());
        assert!(hit(&[cmd(0, "chmod 777 x"), cmd(5, "./x")], ID).is_some());
    }

    #[test]
    fn it_should_not_fire_on_run_before_chmod_or_chmod_alone() {
        assert!(hit(&[cmd(0, "./x"), cmd(5, "chmod +x x")], ID).is_none());
        assert!(hit(&[cmd(0, "chmod +x x")], ID).is_none());
    }
}
