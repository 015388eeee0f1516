//! Per-org baselines for the detector: which `BaselineTrained` applies to an incident
//! command, and its anomaly score of the source's window.
//!
//! The baseline applied to a command is the newest `BaselineTrained` of the org whose
//! `org_seq` is *below the triggering event's* `org_seq` — chosen by log position, not by
//! what this process happens to have loaded or by the wall clock. So processing the same
//! events again (a redelivery, a restart rebuilding from the log, another replica) scores
//! with the same baseline and yields byte-identical commands, even when a newer baseline
//! was committed in between: the newer one applies only to events committed after it.
//!
//! Loading is lazy and cheap: only `Open`/`Escalate` commands need a baseline, and the
//! cache asks the log for the org's baselines only when the triggering event lies beyond
//! what it has checked. That is complete because appends are serialized per org (see
//! `xdr_commands::store`): once event `S` is visible, every event below `S` is too.

use std::collections::HashMap;
use std::sync::Arc;
use xdr_commands::store::read_stream_between;
use xdr_commands::{EventStore, StoreError, StoredEvent};
use xdr_domain::detection::baseline_stream_id;
use xdr_domain::ids::OrgId;
use xdr_domain::incident::{IncidentCommand, ModelScores};
use xdr_domain::Event;

use crate::detector::IssuedCommand;
use crate::model::Baseline;

/// How many of an org's newest baselines stay in memory; older ones are read again from
/// the log in the rare case an old event needs one (a restart rebuilding across a retrain).
const KEEP_PER_ORG: usize = 4;

#[derive(Default)]
struct OrgBaselines {
    /// Every baseline with `org_seq <= checked_through` is known (or was pruned).
    checked_through: i64,
    /// `(org_seq, baseline)`, ascending; unusable ones are left out.
    newest: Vec<(i64, Arc<Baseline>)>,
    /// Some older baselines were dropped from `newest`.
    pruned: bool,
}

/// Baselines per org, loaded from the log on demand.
#[derive(Default)]
pub struct BaselineCache {
    orgs: HashMap<OrgId, OrgBaselines>,
    loads: u64,
}

impl BaselineCache {
    pub fn new() -> Self {
        BaselineCache::default()
    }

    /// How many times the log was asked for baselines (for tests and metrics).
    pub fn loads(&self) -> u64 {
        self.loads
    }

    /// Forget an org (its state is rebuilt from the log on next use).
    pub fn forget_org(&mut self, org: OrgId) {
        self.orgs.remove(&org);
    }

    /// The baseline in force for an event at `seq`: the newest usable `BaselineTrained`
    /// of the org with `org_seq < seq`.
    pub async fn baseline_before(
        &mut self,
        store: &EventStore,
        org: OrgId,
        seq: i64,
    ) -> Result<Option<Arc<Baseline>>, StoreError> {
        let entry = self.orgs.entry(org).or_default();
        if entry.checked_through < seq - 1 {
            let fresh = read_baselines(store, org, entry.checked_through, None).await?;
            self.loads += 1;
            for (s, b) in fresh {
                entry.checked_through = entry.checked_through.max(s);
                entry.newest.push((s, b));
            }
            // The event at `seq` is committed, so everything below it was visible to the read.
            entry.checked_through = entry.checked_through.max(seq - 1);
            if entry.newest.len() > KEEP_PER_ORG {
                let drop = entry.newest.len() - KEEP_PER_ORG;
                entry.newest.drain(..drop);
                entry.pruned = true;
            }
        }
        if let Some((_, b)) = entry.newest.iter().rev().find(|(s, _)| *s < seq) {
            return Ok(Some(b.clone()));
        }
        if !entry.pruned {
            return Ok(None);
        }
        // Older than everything kept: ask the log for the one baseline before `seq`.
        self.loads += 1;
        Ok(read_baselines(store, org, 0, Some(seq)).await?.pop().map(|(_, b)| b))
    }

    /// Fill `model.baseline_score` of every `Open`/`Escalate` in `commands` from the org's
    /// baseline in force at its triggering event; commands of orgs without one are left as
    /// they are (`None`).
    pub async fn score_commands(
        &mut self,
        store: &EventStore,
        commands: &mut [IssuedCommand],
    ) -> Result<(), StoreError> {
        for c in commands.iter_mut() {
            let Some(input) = c.baseline_input else { continue };
            let model = match &mut c.command {
                IncidentCommand::Open(o) => &mut o.model,
                IncidentCommand::Escalate(e) => &mut e.model,
                _ => continue,
            };
            let Some(baseline) = self.baseline_before(store, c.org_id, input.seq).await? else { continue };
            let score = f64::from(baseline.score(&input.vector));
            model.get_or_insert_with(ModelScores::default).baseline_score = Some(score);
        }
        Ok(())
    }
}

/// Usable baselines of the org with `after < org_seq` (and `org_seq < before`, then only the
/// newest one), ascending. A baseline that does not decode or was fitted on another feature
/// layout is skipped (logged): the one before it stays in force.
async fn read_baselines(
    store: &EventStore,
    org: OrgId,
    after: i64,
    before: Option<i64>,
) -> Result<Vec<(i64, Arc<Baseline>)>, StoreError> {
    let events: Vec<StoredEvent> =
        read_stream_between(store.pool(), org, &baseline_stream_id(org), after, before.unwrap_or(i64::MAX)).await?;
    let mut out: Vec<(i64, Arc<Baseline>)> = events.iter().filter_map(usable).collect();
    if before.is_some() {
        out = out.pop().into_iter().collect();
    }
    Ok(out)
}

fn usable(stored: &StoredEvent) -> Option<(i64, Arc<Baseline>)> {
    let Ok(Event::BaselineTrained(b)) = stored.event() else {
        tracing::warn!(org_seq = stored.org_seq, "undecodable event on a baseline stream ignored");
        return None;
    };
    match Baseline::from_json(&b.params) {
        Ok(baseline) => Some((stored.org_seq, Arc::new(baseline))),
        Err(e) => {
            tracing::warn!(org_id = %b.org_id, org_seq = stored.org_seq, error = %e, "unusable baseline ignored");
            None
        }
    }
}
