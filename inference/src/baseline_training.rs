//! Training an org's baseline from its own history: one feature vector per source (its last
//! hour of activity), a linfa model of what is normal for this org, stored as the event
//! `BaselineTrained` in the org's log so it is replayable and auditable.

use std::collections::HashMap;
use xdr_commands::store::{EventStore, ExpectedVersion, NewEvent};
use xdr_domain::detection::{baseline_stream_id, BaselineTrained};
use xdr_domain::ids::OrgId;
use xdr_domain::{Event, EventMetadata};

use crate::features::{extract, observe};
use crate::model::{Baseline, BaselineError};
use crate::scoring::ModelScorer;
use crate::windows::SourceWindow;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Store(#[from] xdr_commands::StoreError),
    #[error("cannot train a baseline for this org: {0}")]
    Baseline(#[from] BaselineError),
}

/// Fit and store the org's baseline; returns it with the number of source windows used.
pub async fn train_baseline(
    store: &EventStore,
    org: OrgId,
    seed: u64,
    metadata: &EventMetadata,
) -> Result<(Baseline, usize), TrainError> {
    let mut windows: HashMap<String, SourceWindow> = HashMap::new();
    let mut after = 0;
    loop {
        let page = store.read_org(org, after, 5_000).await?;
        let Some(last) = page.last() else { break };
        after = last.org_seq;
        for stored in &page {
            let Ok(Event::SecurityEventObserved(ev)) = stored.event() else { continue };
            let Some(ip) = ev.src_ip else { continue };
            let obs = observe(stored.org_seq, stored.event_id, &ev);
            // History, not a live stream: accept any order, keep what the windows need.
            let _ = windows.entry(ip.to_string()).or_default().insert(obs, i64::MAX / 4, 100_000);
        }
    }
    let vectors: Vec<_> = windows.values().map(|w| ModelScorer::vector_of(&extract(w, w.watermark()))).collect();
    let baseline = Baseline::fit(&vectors, seed)?;
    let event = Event::BaselineTrained(BaselineTrained {
        org_id: org,
        feature_version: crate::features::vector::FEATURE_VERSION,
        params: baseline.to_json(),
        trained_on: vectors.len() as u64,
        at: chrono::Utc::now(),
    });
    let stream = baseline_stream_id(org);
    store
        .append(
            org,
            &stream,
            ExpectedVersion::Any,
            vec![NewEvent::from_event(uuid::Uuid::now_v7(), &stream, &event, metadata)],
        )
        .await?;
    Ok((baseline, vectors.len()))
}
