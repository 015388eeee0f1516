//! Per-org baseline of normal source behaviour: a standard scaler plus k-means (linfa) over
//! the org's own feature vectors, and an anomaly score relative to how far its own training
//! windows lie from their nearest centroid.
//!
//! The fitted parameters are plain numbers (`BaselineParams`, serde JSON) so they can be stored
//! as a `BaselineTrained` event in the org's log and rebuilt on replay without refitting.

use linfa::traits::Fit;
use linfa::DatasetBase;
use linfa_clustering::KMeans;
use ndarray::Array2;
use rand_xoshiro::rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256Plus;
use serde::{Deserialize, Serialize};

use crate::features::vector::{FEATURE_NAMES, FEATURE_VERSION};
use crate::features::{FeatureVector, N_FEATURES};

/// Fewer windows than this say too little about an org to call anything unusual.
pub const MIN_SAMPLES: usize = 30;
/// Upper bound on clusters: normal behaviour is a handful of habits, not dozens.
pub const MAX_CLUSTERS: usize = 4;
/// Training distance quantile that maps to score 1.0.
pub const THRESHOLD_QUANTILE: f64 = 0.95;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BaselineError {
    #[error("a baseline needs at least {needed} windows, got {got}")]
    TooFewSamples { needed: usize, got: usize },
    #[error("baseline parameters are for feature version {found}, this build computes version {expected}")]
    FeatureVersion { expected: u32, found: u32 },
    #[error("malformed baseline parameters: {0}")]
    Malformed(String),
    #[error("k-means failed: {0}")]
    Fit(String),
}

/// Everything needed to score, as stored in `BaselineTrained.params`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineParams {
    pub feature_version: u32,
    /// Features are `log1p`-transformed before scaling (as in the classifier).
    pub transform: String,
    pub means: Vec<f64>,
    pub stds: Vec<f64>,
    /// `k` centroids in scaled space, each `N_FEATURES` long.
    pub centroids: Vec<Vec<f64>>,
    /// The `THRESHOLD_QUANTILE` of the training windows' nearest-centroid distances.
    pub threshold: f64,
    pub trained_on: u64,
    pub seed: u64,
}

/// A fitted baseline. `score` ≈ 1 at the edge of normal, ≫ 1 for behaviour the org never shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Baseline {
    params: BaselineParams,
}

impl Baseline {
    /// Fit on an org's windows. Deterministic for a given `(vectors, seed)`.
    pub fn fit(vectors: &[FeatureVector], seed: u64) -> Result<Baseline, BaselineError> {
        if vectors.len() < MIN_SAMPLES {
            return Err(BaselineError::TooFewSamples { needed: MIN_SAMPLES, got: vectors.len() });
        }
        let n = vectors.len();
        let raw: Vec<[f64; N_FEATURES]> = vectors.iter().map(transform).collect();
        let mut means = vec![0.0; N_FEATURES];
        let mut stds = vec![0.0; N_FEATURES];
        for j in 0..N_FEATURES {
            let mean = raw.iter().map(|r| r[j]).sum::<f64>() / n as f64;
            let var = raw.iter().map(|r| (r[j] - mean).powi(2)).sum::<f64>() / n as f64;
            means[j] = mean;
            // A feature the org never varies must not divide by zero; any change in it is then
            // measured in raw log units.
            stds[j] = if var.sqrt() > 1e-6 { var.sqrt() } else { 1.0 };
        }
        let scaled = Array2::from_shape_fn((n, N_FEATURES), |(i, j)| (raw[i][j] - means[j]) / stds[j]);
        let k = (n / 10).clamp(1, MAX_CLUSTERS);
        let model = KMeans::params_with_rng(k, Xoshiro256Plus::seed_from_u64(seed))
            .n_runs(4)
            .max_n_iterations(200)
            .tolerance(1e-6)
            .fit(&DatasetBase::from(scaled.clone()))
            .map_err(|e| BaselineError::Fit(e.to_string()))?;
        let centroids: Vec<Vec<f64>> = model.centroids().outer_iter().map(|c| c.to_vec()).collect();
        let mut distances: Vec<f64> = scaled.outer_iter().map(|row| nearest(&centroids, row.iter().copied())).collect();
        distances.sort_by(f64::total_cmp);
        let rank = ((THRESHOLD_QUANTILE * n as f64).ceil() as usize).clamp(1, n) - 1;
        // An org whose windows are all alike still needs a finite scale for "unusual".
        let threshold = distances[rank].max(1e-3);
        Ok(Baseline {
            params: BaselineParams {
                feature_version: FEATURE_VERSION,
                transform: "log1p".into(),
                means,
                stds,
                centroids,
                threshold,
                trained_on: n as u64,
                seed,
            },
        })
    }

    /// Rebuild from stored parameters (e.g. a `BaselineTrained` event's payload).
    pub fn from_params(params: BaselineParams) -> Result<Baseline, BaselineError> {
        if params.feature_version != FEATURE_VERSION {
            return Err(BaselineError::FeatureVersion { expected: FEATURE_VERSION, found: params.feature_version });
        }
        let ok = params.means.len() == N_FEATURES
            && params.stds.len() == N_FEATURES
            && !params.centroids.is_empty()
            && params.centroids.iter().all(|c| c.len() == N_FEATURES)
            && params.threshold > 0.0;
        if !ok {
            return Err(BaselineError::Malformed("wrong lengths or non-positive threshold".into()));
        }
        Ok(Baseline { params })
    }

    pub fn from_json(value: &serde_json::Value) -> Result<Baseline, BaselineError> {
        let params = serde_json::from_value(value.clone()).map_err(|e| BaselineError::Malformed(e.to_string()))?;
        Baseline::from_params(params)
    }

    pub fn params(&self) -> &BaselineParams {
        &self.params
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).expect("baseline parameters always serialize")
    }

    /// Distance to the nearest centroid in scaled space divided by the training p95 distance.
    pub fn score(&self, v: &FeatureVector) -> f32 {
        let p = &self.params;
        let x = transform(v);
        let scaled = (0..N_FEATURES).map(|j| (x[j] - p.means[j]) / p.stds[j]);
        (nearest(&p.centroids, scaled) / p.threshold) as f32
    }
}

impl Baseline {
    /// The features that drive `score`, largest first: each feature's absolute deviation from
    /// the nearest centroid in scaled space (its share of the distance). For incident evidence.
    pub fn top_features(&self, v: &FeatureVector, n: usize) -> Vec<(&'static str, f32)> {
        let p = &self.params;
        let x = transform(v);
        let scaled: Vec<f64> = (0..N_FEATURES).map(|j| (x[j] - p.means[j]) / p.stds[j]).collect();
        let Some(centroid) = p.centroids.iter().min_by(|a, b| {
            let d = |c: &Vec<f64>| c.iter().zip(&scaled).map(|(a, b)| (a - b).powi(2)).sum::<f64>();
            d(a).total_cmp(&d(b))
        }) else {
            return Vec::new();
        };
        let mut out: Vec<(&'static str, f32)> = FEATURE_NAMES
            .iter()
            .zip(centroid.iter().zip(&scaled))
            .map(|(name, (c, s))| (*name, (s - c).abs() as f32))
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1));
        out.truncate(n);
        out
    }
}

fn transform(v: &FeatureVector) -> [f64; N_FEATURES] {
    let v = v.sanitized();
    let mut out = [0.0; N_FEATURES];
    for (o, x) in out.iter_mut().zip(v.0) {
        *o = (x as f64).ln_1p();
    }
    out
}

fn nearest(centroids: &[Vec<f64>], point: impl Iterator<Item = f64> + Clone) -> f64 {
    centroids
        .iter()
        .map(|c| c.iter().zip(point.clone()).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt())
        .fold(f64::INFINITY, f64::min)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::Feature;
    use rand_xoshiro::rand_core::RngCore;

    /// Interactive admin sessions with some jitter: the org's normal.
    fn normal_windows(n: usize, seed: u64) -> Vec<FeatureVector> {
        let mut rng = Xoshiro256Plus::seed_from_u64(seed);
        let mut jitter = move |lo: f32, hi: f32| lo + (hi - lo) * (rng.next_u32() as f32 / u32::MAX as f32);
        (0..n)
            .map(|_| {
                let mut v = FeatureVector::default();
                let events = jitter(5.0, 30.0).round();
                v.set(Feature::Events, events);
                v.set(Feature::EventsPerMin, events / 5.0);
                v.set(Feature::Connects, jitter(1.0, 3.0).round());
                v.set(Feature::SuccessfulLogins, jitter(1.0, 2.0).round());
                v.set(Feature::FailedLogins, jitter(0.0, 1.4).floor());
                v.set(Feature::DistinctUsernames, 1.0);
                v.set(Feature::DistinctPasswords, 1.0);
                v.set(Feature::Commands, jitter(2.0, 20.0).round());
                v.set(Feature::DistinctDstPorts, 1.0);
                v.set(Feature::Sessions, jitter(1.0, 3.0).round());
                v.set(Feature::MeanInterEventS, jitter(5.0, 60.0));
                v.set(Feature::StdInterEventS, jitter(2.0, 40.0));
                v.set(Feature::MeanSessionDurationS, jitter(60.0, 1200.0));
                v.set(Feature::WindowSpanS, jitter(60.0, 3000.0));
                v
            })
            .collect()
    }

    fn brute_force_window() -> FeatureVector {
        let mut v = FeatureVector::default();
        v.set(Feature::Events, 200.0);
        v.set(Feature::EventsPerMin, 200.0);
        v.set(Feature::Connects, 40.0);
        v.set(Feature::ConnectsPerMin, 40.0);
        v.set(Feature::FailedLogins, 120.0);
        v.set(Feature::FailedLoginsPerMin, 120.0);
        v.set(Feature::DistinctUsernames, 25.0);
        v.set(Feature::DistinctPasswords, 60.0);
        v.set(Feature::DefaultCredentialHits, 30.0);
        v.set(Feature::DistinctDstPorts, 1.0);
        v.set(Feature::Sessions, 40.0);
        v.set(Feature::MeanInterEventS, 0.3);
        v.set(Feature::StdInterEventS, 0.2);
        v.set(Feature::MeanSessionDurationS, 1.5);
        v.set(Feature::WindowSpanS, 59.0);
        v
    }

    #[test]
    fn an_outlier_scores_higher_than_every_inlier() {
        let train = normal_windows(200, 1);
        let baseline = Baseline::fit(&train, 7).unwrap();
        let inliers = normal_windows(50, 2);
        let worst_inlier = inliers.iter().map(|v| baseline.score(v)).fold(0.0, f32::max);
        let outlier = baseline.score(&brute_force_window());
        assert!(outlier > 3.0, "outlier score {outlier}");
        assert!(outlier > 2.0 * worst_inlier, "outlier {outlier} vs worst inlier {worst_inlier}");
        let typical = inliers.iter().filter(|v| baseline.score(v) <= 1.5).count();
        assert!(typical >= 40, "only {typical}/50 fresh normal windows look normal");
    }

    #[test]
    fn the_same_seed_gives_the_same_params_and_they_round_trip_through_json() {
        let train = normal_windows(120, 3);
        let a = Baseline::fit(&train, 42).unwrap();
        let b = Baseline::fit(&train, 42).unwrap();
        assert_eq!(a.params(), b.params());
        assert_eq!(a.to_json(), b.to_json());
        assert_eq!(a.params().centroids.len(), 4);
        let restored = Baseline::from_json(&a.to_json()).unwrap();
        let v = brute_force_window();
        assert_eq!(restored.score(&v), a.score(&v));
    }

    #[test]
    fn top_features_name_what_makes_a_window_unusual() {
        let baseline = Baseline::fit(&normal_windows(200, 1), 7).unwrap();
        let top: Vec<&str> = baseline.top_features(&brute_force_window(), 3).iter().map(|(n, _)| *n).collect();
        assert_eq!(top.len(), 3);
        for name in &top {
            assert!(
                [
                    "failed_logins",
                    "failed_logins_per_min",
                    "default_credential_hits",
                    "distinct_passwords",
                    "distinct_usernames",
                    "connects",
                    "connects_per_min",
                    "sessions",
                    "events_per_min"
                ]
                .contains(name),
                "{top:?}"
            );
        }
    }

    #[test]
    fn too_few_samples_is_a_typed_error() {
        let err = Baseline::fit(&normal_windows(MIN_SAMPLES - 1, 4), 1).unwrap_err();
        assert_eq!(err, BaselineError::TooFewSamples { needed: MIN_SAMPLES, got: MIN_SAMPLES - 1 });
    }

    #[test]
    fn params_for_another_feature_version_are_refused() {
        let mut params = Baseline::fit(&normal_windows(40, 5), 1).unwrap().params().clone();
        params.feature_version += 1;
        assert!(matches!(Baseline::from_params(params), Err(BaselineError::FeatureVersion { .. })));
    }

    #[test]
    fn identical_windows_still_give_a_finite_score() {
        let train = vec![normal_windows(1, 9)[0]; 40];
        let baseline = Baseline::fit(&train, 1).unwrap();
        assert_eq!(baseline.score(&train[0]), 0.0);
        assert!(baseline.score(&brute_force_window()).is_finite());
    }
}
