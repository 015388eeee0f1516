//! Detection model facts that live in an org's log: a fitted per-org baseline.
//!
//! The parameters are opaque JSON here (the domain does not know k-means); `xdr-inference`'s
//! `Baseline::from_json` rebuilds the scorer from them, so a replay scores exactly as the
//! detector did at the time.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::OrgId;

/// Stream of an org's baselines: `baseline-<org uuid>`; the latest event wins.
pub fn baseline_stream_id(org_id: OrgId) -> String {
    format!("baseline-{}", org_id.as_uuid())
}

/// Event: a baseline of the org's normal source behaviour was fitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineTrained {
    pub org_id: OrgId,
    /// Feature layout the parameters were fitted on (`FEATURE_VERSION` of xdr-inference).
    pub feature_version: u32,
    /// Scaler means/stds, centroids and score threshold, as `xdr_inference::model::baseline::BaselineParams`.
    pub params: serde_json::Value,
    /// Number of windows the baseline was fitted on.
    pub trained_on: u64,
    pub at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Event;
    use chrono::TimeZone;

    #[test]
    fn baseline_trained_round_trips_through_the_stored_parts() {
        let event = Event::BaselineTrained(BaselineTrained {
            org_id: OrgId(uuid::Uuid::from_u128(7)),
            feature_version: 1,
            params: serde_json::json!({ "threshold": 1.5, "centroids": [[0.0, 1.0]] }),
            trained_on: 120,
            at: Utc.with_ymd_and_hms(2026, 11, 26, 21, 0, 0).unwrap(),
        });
        let (kind, payload) = event.to_parts();
        assert_eq!(kind, "BaselineTrained");
        assert_eq!(payload["trained_on"], 120);
        assert_eq!(Event::from_parts(kind, &payload).unwrap(), event);
        assert_eq!(
            baseline_stream_id(OrgId(uuid::Uuid::from_u128(7))),
            "baseline-00000000-0000-0000-0000-000000000007"
        );
    }
}
