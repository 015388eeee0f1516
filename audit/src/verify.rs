//! `mini-xdr verify`: walk every org's hash chain and name the first broken link.
//!
//! A link is broken when a row's `org_seq` is not the next one (a row was deleted), when its
//! stored hash differs from `SHA-256(prev_hash ‖ row)` (a column was edited or rows were
//! swapped), or when the chain's end disagrees with `org_heads`.

use futures::TryStreamExt;
use sqlx::PgPool;
use uuid::Uuid;
use xdr_commands::store::chain::GENESIS_HASH;
use xdr_commands::store::{self, LogFilter};
use xdr_commands::StoreError;
use xdr_domain::ids::OrgId;

/// Where and why a chain is broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    pub org_id: Uuid,
    pub org_seq: i64,
    pub reason: String,
}

impl std::fmt::Display for BrokenLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "org {} org_seq {}: {}", self.org_id, self.org_seq, self.reason)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    pub orgs: usize,
    pub events: u64,
    /// The first broken link of each org that has one.
    pub broken: Vec<BrokenLink>,
}

impl VerifyReport {
    pub fn intact(&self) -> bool {
        self.broken.is_empty()
    }
}

/// Verify one org, or every org that has a head or any event.
pub async fn verify(pool: &PgPool, only: Option<OrgId>) -> Result<VerifyReport, StoreError> {
    let orgs: Vec<Uuid> = match only {
        Some(org) => vec![org.0],
        None => store::orgs_with_log(pool).await?,
    };
    let mut report = VerifyReport { orgs: orgs.len(), ..Default::default() };
    for org in orgs {
        let (events, broken) = verify_org(pool, org).await?;
        report.events += events;
        report.broken.extend(broken);
    }
    Ok(report)
}

/// Returns how many events were checked and the first broken link, if any.
///
/// The chain and the head are read in one REPEATABLE READ snapshot: an append committing
/// meanwhile moves both or neither, so a live system never shows a break that is a race.
pub async fn verify_org(pool: &PgPool, org: Uuid) -> Result<(u64, Option<BrokenLink>), StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
    let broken = |org_seq: i64, reason: String| BrokenLink { org_id: org, org_seq, reason };
    let whole_log = LogFilter::org(OrgId(org));
    let mut rows = store::scan(&mut *tx, &whole_log);
    let mut prev_hash = GENESIS_HASH.to_vec();
    let mut expected_seq = 1;
    let mut checked = 0;
    while let Some(row) = rows.try_next().await? {
        let event = row.event()?;
        if event.org_seq != expected_seq {
            return Ok((
                checked,
                Some(broken(expected_seq, format!("missing event (next stored is org_seq {})", event.org_seq))),
            ));
        }
        if event.expected_hash(&prev_hash)[..] != event.hash[..] {
            return Ok((
                checked,
                Some(broken(event.org_seq, "hash mismatch: row content or order was changed".into())),
            ));
        }
        prev_hash = event.hash;
        expected_seq += 1;
        checked += 1;
    }
    drop(rows);
    let head = store::head_of(&mut *tx, org).await?;
    tx.commit().await?;
    let last = expected_seq - 1;
    match head {
        None if last > 0 => Ok((checked, Some(broken(last, "org has events but no head row".into())))),
        Some((seq, _)) if seq != last => {
            Ok((checked, Some(broken(last + 1, format!("head says last org_seq is {seq}, chain ends at {last}")))))
        }
        Some((_, hash)) if hash != prev_hash => {
            Ok((checked, Some(broken(last, "head hash differs from the chain's last hash".into()))))
        }
        _ => Ok((checked, None)),
    }
}

/// Compare the log with anchors witnessed outside the database. A missing anchored event is
/// tail truncation; a different hash at the anchored position is a rewrite — either is
/// invisible to the chain alone when `org_heads` was rewound to match.
pub async fn check_anchors(pool: &PgPool, anchors: &[crate::anchors::Anchor]) -> Result<Vec<BrokenLink>, StoreError> {
    let mut broken = Vec::new();
    for a in anchors {
        let stored = store::hash_at(pool, a.org_id, a.org_seq).await?;
        let witnessed = format!(
            "anchor of {} (org_seq {}, head {})",
            a.anchored_at.to_rfc3339(),
            a.org_seq,
            &a.head_hash[..16.min(a.head_hash.len())]
        );
        match stored {
            None => {
                let head = store::head_of(pool, a.org_id).await?.map(|(seq, _)| seq);
                broken.push(BrokenLink {
                    org_id: a.org_id,
                    org_seq: a.org_seq,
                    reason: format!(
                        "log ends at org_seq {} but the {witnessed} says it reached {}: the tail was truncated",
                        head.unwrap_or(0),
                        a.org_seq
                    ),
                });
            }
            Some(hash) if hex::encode(&hash) != a.head_hash => broken.push(BrokenLink {
                org_id: a.org_id,
                org_seq: a.org_seq,
                reason: format!(
                    "stored hash {} contradicts the {witnessed}: history was rewritten",
                    &hex::encode(&hash)[..16]
                ),
            }),
            Some(_) => {}
        }
    }
    Ok(broken)
}
