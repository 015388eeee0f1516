//! The feature-vector contract between window state and the models: a fixed-order,
//! versioned `[f32; N]` per (org, source ip) window.
//!
//! The order here is the order the classifier was trained on (`inference/train/features.py`
//! mirrors it name for name, and `classifier.json` records it). Changing a name, its meaning
//! or the order means bumping [`FEATURE_VERSION`] and retraining; `Classifier::load` refuses a
//! model whose metadata names other features. Definitions: `docs/DETECTION.md`, "Features".

use serde::{Deserialize, Serialize};

/// Version of the feature layout below.
pub const FEATURE_VERSION: u32 = 1;

/// Number of features.
pub const N_FEATURES: usize = 21;

/// Feature names, in vector order.
pub const FEATURE_NAMES: [&str; N_FEATURES] = [
    "events",
    "events_per_min",
    "connects",
    "connects_per_min",
    "failed_logins",
    "failed_logins_per_min",
    "successful_logins",
    "distinct_usernames",
    "distinct_passwords",
    "default_credential_hits",
    "commands",
    "download_commands",
    "chmod_exec_commands",
    "persistence_commands",
    "discovery_commands",
    "distinct_dst_ports",
    "sessions",
    "mean_inter_event_s",
    "std_inter_event_s",
    "mean_session_duration_s",
    "window_span_s",
];

/// Index of each feature, so fillers write `v[F::FailedLogins]`-style code without magic numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum Feature {
    Events = 0,
    EventsPerMin,
    Connects,
    ConnectsPerMin,
    FailedLogins,
    FailedLoginsPerMin,
    SuccessfulLogins,
    DistinctUsernames,
    DistinctPasswords,
    DefaultCredentialHits,
    Commands,
    DownloadCommands,
    ChmodExecCommands,
    PersistenceCommands,
    DiscoveryCommands,
    DistinctDstPorts,
    Sessions,
    MeanInterEventS,
    StdInterEventS,
    MeanSessionDurationS,
    WindowSpanS,
}

impl Feature {
    /// Every feature, in vector order.
    pub const ALL: [Feature; N_FEATURES] = [
        Feature::Events,
        Feature::EventsPerMin,
        Feature::Connects,
        Feature::ConnectsPerMin,
        Feature::FailedLogins,
        Feature::FailedLoginsPerMin,
        Feature::SuccessfulLogins,
        Feature::DistinctUsernames,
        Feature::DistinctPasswords,
        Feature::DefaultCredentialHits,
        Feature::Commands,
        Feature::DownloadCommands,
        Feature::ChmodExecCommands,
        Feature::PersistenceCommands,
        Feature::DiscoveryCommands,
        Feature::DistinctDstPorts,
        Feature::Sessions,
        Feature::MeanInterEventS,
        Feature::StdInterEventS,
        Feature::MeanSessionDurationS,
        Feature::WindowSpanS,
    ];

    pub fn name(self) -> &'static str {
        FEATURE_NAMES[self as usize]
    }
}

/// Per-minute rate used by the `*_per_min` features: `60 · count / max(span_s, 60)`.
///
/// The floor of one minute keeps a burst of three events in half a second from reading as a
/// flood of 360/min; within the first minute the rate is simply the count.
pub fn rate_per_min(count: f32, window_span_s: f32) -> f32 {
    60.0 * count / window_span_s.max(60.0)
}

/// One window's features. All values are finite and ≥ 0 (the classifier takes `log1p`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FeatureVector(pub [f32; N_FEATURES]);

impl Default for FeatureVector {
    fn default() -> Self {
        FeatureVector([0.0; N_FEATURES])
    }
}

impl FeatureVector {
    pub fn get(&self, f: Feature) -> f32 {
        self.0[f as usize]
    }

    pub fn set(&mut self, f: Feature, value: f32) {
        self.0[f as usize] = value;
    }

    pub fn as_slice(&self) -> &[f32] {
        &self.0
    }

    /// `(name, value)` pairs in vector order, e.g. for an incident's evidence.
    pub fn named(&self) -> impl Iterator<Item = (&'static str, f32)> + '_ {
        FEATURE_NAMES.iter().copied().zip(self.0.iter().copied())
    }

    /// Replace non-finite or negative values by 0, so one bad timestamp cannot poison a model.
    pub fn sanitized(mut self) -> Self {
        for v in &mut self.0 {
            if !v.is_finite() || *v < 0.0 {
                *v = 0.0;
            }
        }
        self
    }
}

impl From<[f32; N_FEATURES]> for FeatureVector {
    fn from(v: [f32; N_FEATURES]) -> Self {
        FeatureVector(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_indices_agree() {
        for (i, f) in Feature::ALL.iter().enumerate() {
            assert_eq!(*f as usize, i);
        }
        let mut seen = std::collections::HashSet::new();
        assert!(FEATURE_NAMES.iter().all(|n| seen.insert(*n)), "duplicate feature name");
    }

    #[test]
    fn rate_has_a_one_minute_floor() {
        assert_eq!(rate_per_min(3.0, 0.5), 3.0);
        assert_eq!(rate_per_min(30.0, 300.0), 6.0);
    }

    #[test]
    fn sanitized_zeroes_bad_values() {
        let mut v = FeatureVector::default();
        v.set(Feature::MeanInterEventS, f32::NAN);
        v.set(Feature::Events, -1.0);
        v.set(Feature::Connects, 4.0);
        let v = v.sanitized();
        assert_eq!(v.get(Feature::MeanInterEventS), 0.0);
        assert_eq!(v.get(Feature::Events), 0.0);
        assert_eq!(v.get(Feature::Connects), 4.0);
    }
}
