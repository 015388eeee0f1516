//! What the audit commands print: one place for the verdict lines scripts and auditors read
//! (`ok: …`, `BROKEN: …`) and the summaries on stderr, so the binary only wires.

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::path::Path;

use crate::anchors::Anchor;
use crate::bundle::{BundleError, Manifest};
use crate::point_in_time::PointInTimeReport;
use crate::verify::VerifyReport;
use xdr_domain::ids::OrgId;

/// The first bytes of a hash as hex, enough to compare by eye.
pub fn hex_prefix(bytes: &[u8]) -> String {
    bytes.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Print the verdict of `verify`; returns whether every chain is intact (exit 0, else 1).
pub fn write_verify(report: &VerifyReport, out: &mut impl Write) -> io::Result<bool> {
    if report.intact() {
        writeln!(out, "ok: {} orgs, {} events, every hash chain intact", report.orgs, report.events)?;
        return Ok(true);
    }
    for broken in &report.broken {
        writeln!(out, "BROKEN: {broken}")?;
    }
    let orgs: BTreeSet<_> = report.broken.iter().map(|b| b.org_id).collect();
    writeln!(
        out,
        "{} problem(s) in {} of {} orgs ({} events verified before the first break)",
        report.broken.len(),
        orgs.len(),
        report.orgs,
        report.events
    )?;
    Ok(false)
}

/// Print the verdict of an offline bundle check; `Ok(false)` for a broken bundle, the error
/// for one that cannot be read at all.
pub fn write_bundle_verdict(verdict: Result<Manifest, BundleError>, out: &mut impl Write) -> Result<bool, BundleError> {
    match verdict {
        Ok(m) => {
            writeln!(
                out,
                "ok: bundle of org {} intact: {} events, org_seq {}..={}, head {}",
                m.org_id,
                m.event_count,
                m.first_seq,
                m.last_seq,
                hex_prefix(&m.head_hash)
            )?;
            Ok(true)
        }
        Err(e @ BundleError::Broken { .. }) => {
            writeln!(out, "BROKEN: {e}")?;
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// One line on what `audit export` wrote.
pub fn export_summary(m: &Manifest, path: &Path) -> String {
    format!(
        "exported {} events of org {} (org_seq 1..={}, head {}) to {}",
        m.event_count,
        m.org_id,
        m.last_seq,
        hex_prefix(&m.head_hash),
        path.display()
    )
}

/// One line on what `audit import` restored.
pub fn import_summary(m: &Manifest) -> String {
    format!(
        "imported {} events of org {} (org_seq 1..={}); run `mini-xdr rebuild` for read models",
        m.event_count, m.org_id, m.last_seq
    )
}

/// One line on a point-in-time rebuild (the digest goes to stdout on its own).
pub fn rebuild_into_summary(report: &PointInTimeReport) -> String {
    format!(
        "rebuilt org {} into schema {} up to org_seq {} of {} (recorded at {}) from {} events in {:.2?} ({:.0} events/s); \
         live read models untouched",
        report.org.0,
        report.schema,
        report.cut.seq,
        report.cut.head,
        report.cut.recorded_at.format("%Y-%m-%dT%H:%M:%S%.6fZ"),
        report.events,
        report.elapsed,
        report.events as f64 / report.elapsed.as_secs_f64().max(1e-9)
    )
}

/// The anchors to judge: only `org`'s when one is named, each distinct anchor once (NATS and
/// the anchor file usually witness the same one).
pub fn distinct_anchors(mut anchors: Vec<Anchor>, org: Option<OrgId>) -> Vec<Anchor> {
    if let Some(o) = org {
        anchors.retain(|a| a.org_id == o.0);
    }
    anchors.sort_by(|a, b| (a.org_id, a.org_seq, &a.head_hash).cmp(&(b.org_id, b.org_seq, &b.head_hash)));
    anchors.dedup_by(|a, b| a.org_id == b.org_id && a.org_seq == b.org_seq && a.head_hash == b.head_hash);
    anchors
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::BrokenLink;
    use uuid::Uuid;

    #[test]
    fn verify_prints_ok_or_each_broken_link_with_a_summary() {
        let mut out = Vec::new();
        let intact = VerifyReport { orgs: 2, events: 7, broken: vec![] };
        assert!(write_verify(&intact, &mut out).unwrap());
        assert_eq!(String::from_utf8(out).unwrap(), "ok: 2 orgs, 7 events, every hash chain intact\n");

        let org = Uuid::from_u128(1);
        let broken = VerifyReport {
            orgs: 2,
            events: 3,
            broken: vec![BrokenLink { org_id: org, org_seq: 4, reason: "hash mismatch".into() }],
        };
        let mut out = Vec::new();
        assert!(!write_verify(&broken, &mut out).unwrap());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!(
                "BROKEN: org {org} org_seq 4: hash mismatch\n1 problem(s) in 1 of 2 orgs (3 events verified before the first break)\n"
            )
        );
    }

    #[test]
    fn anchors_are_judged_once_and_only_for_the_named_org() {
        let at = chrono::DateTime::from_timestamp(0, 0).unwrap();
        let anchor = |org: u128, seq: i64| Anchor {
            org_id: Uuid::from_u128(org),
            org_seq: seq,
            head_hash: format!("{seq:064x}"),
            anchored_at: at,
        };
        let all = vec![anchor(2, 5), anchor(1, 3), anchor(2, 5), anchor(1, 9)];
        assert_eq!(distinct_anchors(all.clone(), None), vec![anchor(1, 3), anchor(1, 9), anchor(2, 5)]);
        assert_eq!(distinct_anchors(all, Some(OrgId(Uuid::from_u128(2)))), vec![anchor(2, 5)]);
    }
}
