//! Verify, don't trust, what arrives on NATS: an event message is only a pointer to
//! `(org, org_seq)`, and the detector acts on the event the log holds there, never on the
//! message's payload. The relay's messages always match (it publishes committed rows); a
//! message that does not — forged by a client of an unauthenticated NATS or a leaked
//! credential, left over from an earlier database, or another deployment's on a shared NATS —
//! is refused.
//!
//! Checking against the log (rather than an HMAC the relay would add) needs no shared key,
//! so a leaked NATS credential or key file gives nothing to forge with, and it catches
//! messages about an org this database does not know, which a valid signature would not.
//! Its cost is one indexed read per message, batched: one query per org per batch of
//! deliveries (`bench e2e`, `docs/BENCHMARKS.md`).

use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;
use xdr_commands::store::read_org_seqs;
use xdr_commands::{EventStore, StoreError, StoredEvent};
use xdr_domain::ids::OrgId;

/// What a message claims; the rest of its payload is ignored.
#[derive(Debug, Clone, Deserialize)]
pub struct Claim {
    pub org_id: Uuid,
    pub org_seq: i64,
    pub event_id: Uuid,
    pub event_type: String,
}

/// Why a message was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not a stored event at all.
    Undecodable(String),
    /// The subject is not `<prefix>events.<org>.<Type>`, or names another org than the payload.
    SubjectMismatch,
    /// The database has no such org.
    UnknownOrg,
    /// The org exists but holds no event at that `org_seq`, or another one.
    NotInLog,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Undecodable(e) => write!(f, "not a stored event: {e}"),
            Refusal::SubjectMismatch => f.write_str("subject and payload disagree on the org or the event type"),
            Refusal::UnknownOrg => f.write_str("org unknown to this database"),
            Refusal::NotInLog => f.write_str("the log holds no such event"),
        }
    }
}

/// The verdict on one message.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// The event as the log holds it.
    Accepted(StoredEvent),
    /// `org` is the org the subject names, when it names one.
    Refused { org: Option<Uuid>, reason: Refusal },
}

/// The org a subject `<subject_prefix>events.<org>.<Type>` names, and the type.
pub fn subject_parts<'a>(subject_prefix: &str, subject: &'a str) -> Option<(Uuid, &'a str)> {
    let rest = subject.strip_prefix(subject_prefix)?.strip_prefix("events.")?;
    let (org, event_type) = rest.split_once('.')?;
    Some((org.parse().ok()?, event_type))
}

/// Check a batch of messages `(subject, payload)` against the log, in order.
pub async fn verify_batch(
    store: &EventStore,
    subject_prefix: &str,
    messages: &[(&str, &[u8])],
) -> Result<Vec<Verdict>, StoreError> {
    let mut verdicts: Vec<Option<Verdict>> = vec![None; messages.len()];
    let mut wanted: BTreeMap<Uuid, Vec<(usize, Claim)>> = BTreeMap::new();
    for (i, (subject, payload)) in messages.iter().enumerate() {
        let subject_org = subject_parts(subject_prefix, subject);
        let claim: Claim = match serde_json::from_slice(payload) {
            Ok(c) => c,
            Err(e) => {
                let reason = Refusal::Undecodable(e.to_string());
                verdicts[i] = Some(Verdict::Refused { org: subject_org.map(|s| s.0), reason });
                continue;
            }
        };
        match subject_org {
            Some((org, event_type)) if org == claim.org_id && event_type == claim.event_type => {
                wanted.entry(org).or_default().push((i, claim));
            }
            _ => {
                let org = subject_org.map(|s| s.0);
                verdicts[i] = Some(Verdict::Refused { org, reason: Refusal::SubjectMismatch });
            }
        }
    }
    for (org, claims) in wanted {
        let seqs: Vec<i64> = claims.iter().map(|(_, c)| c.org_seq).collect();
        let found: HashMap<i64, StoredEvent> =
            read_org_seqs(store.pool(), OrgId(org), &seqs).await?.into_iter().map(|e| (e.org_seq, e)).collect();
        let org_known = !found.is_empty() || store.head(OrgId(org)).await?.is_some();
        for (i, claim) in claims {
            let logged =
                found.get(&claim.org_seq).filter(|e| e.event_id == claim.event_id && e.event_type == claim.event_type);
            verdicts[i] = Some(match logged {
                _ if !org_known => Verdict::Refused { org: Some(org), reason: Refusal::UnknownOrg },
                // A batch may hold the same seq twice (redelivery): each gets its copy.
                Some(e) => Verdict::Accepted(e.clone()),
                None => Verdict::Refused { org: Some(org), reason: Refusal::NotInLog },
            });
        }
    }
    Ok(verdicts.into_iter().map(|v| v.expect("every message judged")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subject_names_org_and_type_after_the_prefix() {
        let org = Uuid::from_u128(7);
        let subject = format!("t1.xdr.events.{org}.SecurityEventObserved");
        assert_eq!(subject_parts("t1.xdr.", &subject), Some((org, "SecurityEventObserved")));
        assert_eq!(subject_parts("xdr.", &subject), None);
        assert_eq!(subject_parts("t1.xdr.", "t1.xdr.events.not-a-uuid.X"), None);
    }
}
