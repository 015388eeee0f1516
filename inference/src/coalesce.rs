//! Fewer, larger evidence attachments: the detector attaches every new signal of a tracked
//! source as its own command, so a batch of deliveries from a busy attacker would append one
//! `EvidenceAttached` per event — the incident stream and its read model would grow as fast
//! as the telemetry. Within one batch, a run of attachments to one incident (no other command
//! for that incident in between) becomes one attachment of all their `org_seq`s.
//!
//! Idempotence does not rest on the merged command's id: the incident only attaches `org_seq`s
//! it does not hold yet, so a redelivered batch cut differently appends nothing new.

use std::collections::HashMap;
use xdr_domain::ids::IncidentId;
use xdr_domain::incident::IncidentCommand;

use crate::detector::IssuedCommand;

/// Merge each run of `AttachEvidence` commands to one incident into the first of the run
/// (its command and causation ids, the union of the `org_seq`s, the latest `last_seen` and
/// `now`). Other commands, and the order of commands per incident, are kept.
pub fn coalesce_attachments(commands: Vec<IssuedCommand>) -> Vec<IssuedCommand> {
    let mut out: Vec<IssuedCommand> = Vec::with_capacity(commands.len());
    // Per incident, where in `out` its run of attachments open for merging is.
    let mut open_run: HashMap<IncidentId, usize> = HashMap::new();
    for c in commands {
        let IncidentCommand::AttachEvidence(attach) = &c.command else {
            open_run.remove(&c.incident_id);
            out.push(c);
            continue;
        };
        if let Some(IncidentCommand::AttachEvidence(run)) = open_run.get(&c.incident_id).map(|i| &mut out[*i].command) {
            for seq in &attach.org_seqs {
                if !run.org_seqs.contains(seq) {
                    run.org_seqs.push(*seq);
                }
            }
            run.last_seen = run.last_seen.max(attach.last_seen);
            run.now = run.now.max(attach.now);
            continue;
        }
        open_run.insert(c.incident_id, out.len());
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};
    use uuid::Uuid;
    use xdr_domain::ids::OrgId;
    use xdr_domain::incident::{AttachEvidence, UpdateIncidentStatus};

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn attach(incident: u128, seqs: &[i64], t: i64) -> IssuedCommand {
        let incident_id = IncidentId(Uuid::from_u128(incident));
        IssuedCommand {
            org_id: OrgId(Uuid::from_u128(1)),
            incident_id,
            command_id: Uuid::from_u128(1000 + seqs[0] as u128),
            causation_id: Uuid::from_u128(2000 + seqs[0] as u128),
            command: IncidentCommand::AttachEvidence(AttachEvidence {
                incident_id,
                org_seqs: seqs.to_vec(),
                last_seen: at(t),
                now: at(t + 1),
            }),
            baseline_input: None,
        }
    }

    fn seqs(c: &IssuedCommand) -> Vec<i64> {
        match &c.command {
            IncidentCommand::AttachEvidence(a) => a.org_seqs.clone(),
            other => panic!("not an attachment: {other:?}"),
        }
    }

    #[test]
    fn a_run_of_attachments_to_one_incident_becomes_one_keeping_the_first_ids() {
        let merged = coalesce_attachments(vec![attach(7, &[1], 10), attach(8, &[2], 11), attach(7, &[3, 1], 12)]);
        assert_eq!(merged.len(), 2);
        assert_eq!(seqs(&merged[0]), vec![1, 3]);
        assert_eq!(merged[0].command_id, Uuid::from_u128(1001));
        let IncidentCommand::AttachEvidence(a) = &merged[0].command else { unreachable!() };
        assert_eq!((a.last_seen, a.now), (at(12), at(13)));
        assert_eq!(seqs(&merged[1]), vec![2]);
    }

    #[test]
    fn another_command_for_the_incident_ends_the_run() {
        let incident_id = IncidentId(Uuid::from_u128(7));
        let status = IssuedCommand {
            command: IncidentCommand::UpdateStatus(UpdateIncidentStatus {
                incident_id,
                status: xdr_domain::incident::IncidentStatus::Contained,
                note: None,
                by_user: None,
                now: at(20),
            }),
            ..attach(7, &[9], 20)
        };
        let merged = coalesce_attachments(vec![attach(7, &[1], 10), status, attach(7, &[2], 21)]);
        assert_eq!(merged.len(), 3, "the attachment after the status change stays after it");
        assert_eq!(seqs(&merged[2]), vec![2]);
    }
}
