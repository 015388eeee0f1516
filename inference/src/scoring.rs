//! The model side of an incident: the ONNX classifier's class probabilities over the source's
//! window, attached to the incident's evidence when a rule opens or escalates it.
//!
//! The rules' windowed features ([`crate::features::extract`]) and the classifier's fixed
//! vector ([`crate::features::vector`]) were built apart; [`SOURCES`] maps each vector
//! feature to the rule feature that measures it (1-hour window), and what has no counterpart
//! stays 0 (logged once at start). Unifying the two extractions is the next step; until then
//! the probabilities are evidence on the incident, not a verdict.

use std::path::Path;
use std::sync::Arc;
use xdr_domain::ids::OrgId;
use xdr_domain::incident::ModelScores;

use crate::detector::Scorer;
use crate::features::{vector, FeatureVector, Features, N_FEATURES};
use crate::model::{Classifier, ModelError};

/// Scores windows with the committed classifier.
pub struct ModelScorer {
    classifier: Arc<Classifier>,
    model_name: String,
}

impl ModelScorer {
    /// Load and check the classifier (hash, shapes, golden vectors) from `dir`.
    pub fn load(dir: &Path) -> Result<ModelScorer, ModelError> {
        let classifier = Classifier::load(dir)?;
        classifier.check_golden()?;
        let model_name = classifier.metadata().name.clone();
        let missing: Vec<&str> =
            vector::FEATURE_NAMES.iter().copied().filter(|n| Features::default().get(n).is_none()).collect();
        if !missing.is_empty() {
            tracing::warn!(?missing, "classifier features the rule extraction does not compute are 0");
        }
        Ok(ModelScorer { classifier: Arc::new(classifier), model_name })
    }

    /// The classifier's input for a window: every vector feature the rules also compute.
    pub fn vector_of(features: &Features) -> FeatureVector {
        let mut values = [0f32; N_FEATURES];
        for (i, name) in vector::FEATURE_NAMES.iter().enumerate() {
            values[i] = source_of(name).and_then(|src| features.get(src)).unwrap_or(0.0) as f32;
        }
        FeatureVector::from(values).sanitized()
    }
}

/// Vector feature → the rule feature that measures the same thing over the last hour.
pub const SOURCES: &[(&str, &str)] = &[
    ("events", "events_1h"),
    ("connects", "connects_1h"),
    ("connects_per_min", "connects_1m"),
    ("failed_logins", "failed_logins_1h"),
    ("failed_logins_per_min", "max_failed_logins_per_60s_1h"),
    ("successful_logins", "successful_logins_1h"),
    ("distinct_usernames", "distinct_usernames_1h"),
    ("distinct_passwords", "distinct_passwords_1h"),
    ("default_credential_hits", "default_credential_attempts_1h"),
    ("commands", "commands_1h"),
    ("download_commands", "download_commands_1h"),
    ("chmod_exec_commands", "chmod_exec_1h"),
    ("persistence_commands", "persistence_1h"),
    ("discovery_commands", "discovery_1h"),
    ("distinct_dst_ports", "distinct_dst_ports_1h"),
    ("sessions", "sessions_1h"),
    ("mean_inter_event_s", "mean_gap_secs_1h"),
    ("mean_session_duration_s", "mean_session_secs_1h"),
];

fn source_of(vector_feature: &str) -> Option<&'static str> {
    SOURCES.iter().find(|(v, _)| *v == vector_feature).map(|(_, src)| *src)
}

impl Scorer for ModelScorer {
    fn score(&self, _org: OrgId, _src_ip: &str, features: &Features) -> Option<ModelScores> {
        let probabilities = match self.classifier.predict(&[Self::vector_of(features)]) {
            Ok(mut p) => p.pop()?,
            Err(e) => {
                tracing::warn!(error = %e, "classifier failed; incident keeps its rule evidence only");
                return None;
            }
        };
        let (top, _) = probabilities.top();
        Some(ModelScores {
            model: Some(self.model_name.clone()),
            predicted_class: Some(top.to_owned()),
            class_probabilities: probabilities.classes.iter().map(|(c, p)| (c.clone(), f64::from(*p))).collect(),
            baseline_score: None,
        })
    }
}

/// The detector for `serve`/`detector`: rules plus the classifier when it loads, rules only
/// (loudly) when it does not.
pub fn detector_with_models(dir: &Path, settings: crate::DetectorSettings) -> crate::Detector {
    match ModelScorer::load(dir) {
        Ok(scorer) => {
            tracing::info!(dir = %dir.display(), "classifier loaded; incidents carry class probabilities");
            crate::Detector::new(settings).with_scorer(Arc::new(scorer))
        }
        Err(e) => {
            tracing::error!(error = %e, dir = %dir.display(), "classifier unavailable: detecting with rules only");
            crate::Detector::new(settings)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn models_dir() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
    }

    #[test]
    fn every_mapped_feature_exists_on_both_sides() {
        for (v, src) in SOURCES {
            assert!(vector::FEATURE_NAMES.contains(v), "{v} is not a vector feature");
            assert!(Features::default().get(src).is_some(), "{src} is not a rule feature");
        }
        assert!(SOURCES.len() >= 15, "most of the vector is measured by the rules");
    }

    #[test]
    fn a_window_is_scored_with_the_committed_model() {
        let scorer = ModelScorer::load(&models_dir()).expect("committed model loads");
        let scores = scorer.score(OrgId(uuid::Uuid::nil()), "10.0.0.1", &Features::default()).expect("scores");
        let total: f64 = scores.class_probabilities.values().sum();
        assert!((total - 1.0).abs() < 1e-3, "probabilities sum to 1: {scores:?}");
        assert_eq!(scores.class_probabilities.len(), 7);
        assert!(scores.predicted_class.is_some());
    }

    #[test]
    fn a_missing_model_falls_back_to_rules_only() {
        let dir = std::env::temp_dir().join(format!("xdr-no-model-{}", std::process::id()));
        assert!(ModelScorer::load(&dir).is_err());
        let _rules_only = detector_with_models(&dir, crate::DetectorSettings::default());
    }
}
