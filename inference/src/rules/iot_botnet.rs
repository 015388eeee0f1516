//! IoT botnet: a successful login with a Mirai default credential (T1078.001), or busybox
//! applet probing (`/bin/busybox <RANDOM-WORD>`) or at least 2 router-CLI escapes
//! (`enable`, `system`, `shell`, `sh`) (T1059.004). Category malware/botnet.

use super::{score, RuleContext, RuleHit};
use crate::windows::{flags, Kind, WINDOW_1H};
use xdr_domain::incident::{IncidentCategory, Severity};

pub const ID: &str = "iot_botnet";
pub const TECHNIQUES: &[&str] = &["T1078.001", "T1059.004"];
/// Distinct router-CLI escapes.
pub const DEFAULT_THRESHOLD: u32 = 2;

pub fn evaluate(ctx: &RuleContext<'_>) -> Option<RuleHit> {
    let f = ctx.features;
    let default_cred = f.default_credential_successes_1h >= 1.0;
    let shell_probe = f.busybox_probes_1h >= 1.0 || f.cli_escapes_1h >= f64::from(ctx.config.iot_min_cli_escapes);
    if !default_cred && !shell_probe {
        return None;
    }
    let mut techniques = Vec::new();
    let mut why = Vec::new();
    if default_cred {
        techniques.push(TECHNIQUES[0]);
        why.push("login with a Mirai default credential".to_owned());
    }
    if shell_probe {
        techniques.push(TECHNIQUES[1]);
        why.push(format!("{} busybox probes, {} router-CLI escapes", f.busybox_probes_1h, f.cli_escapes_1h));
    }
    Some(RuleHit {
        rule_id: ID,
        category: IncidentCategory::MalwareBotnet,
        severity: Severity::High,
        risk_score: score(if default_cred && shell_probe { 0.9 } else { 0.85 }),
        confidence: 0.85,
        techniques,
        reason: format!("IoT bot: {}", why.join("; ")),
        features: vec!["default_credential_successes_1h", "busybox_probes_1h", "cli_escapes_1h"],
        evidence: ctx.evidence(WINDOW_1H, |o| match o.kind {
            Kind::LoginSuccess => o.flags & flags::DEFAULT_CREDENTIAL != 0,
            Kind::Command => o.flags & (flags::BUSYBOX_PROBE | flags::ESCAPES) != 0,
            _ => false,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;

    #[test]
    fn it_should_fire_on_a_mirai_login() {
        let hit = hit(&[failed(0, "admin", "x"), success(1, "root", "xc3511")], ID).expect("fires");
        assert_eq!(hit.techniques, vec!["T1078.001"]);
        assert_eq!(hit.category, IncidentCategory::MalwareBotnet);
    }

    #[test]
    fn it_should_fire_on_busybox_probes_and_cli_escapes() {
        assert_eq!(hit(&[cmd(0, "/bin/busybox ECCHI")], ID).unwrap().techniques, vec!["T1059.004"]);
        assert!(hit(&[cmd(0, "enable"), cmd(1, "shell")], ID).is_some());
    }

    #[test]
    fn it_should_not_fire_on_failed_default_credentials_or_one_escape() {
        assert!(hit(&[failed(0, "root", "xc3511"), cmd(1, "sh")], ID).is_none());
        assert!(hit(&[success(0, "deploy", "Tr4in-Sched#2026")], ID).is_none());
    }
}
