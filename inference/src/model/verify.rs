//! Checks of a models directory for `mini-xdr models verify`: every file present and
//! referenced, hashes match, the graph loads, golden vectors reproduce, and latency.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::classifier::Classifier;
use super::ModelError;
use crate::features::FeatureVector;

/// Latency percentiles of repeated `predict` calls on one batch size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    pub batch: usize,
    pub iterations: usize,
    pub p50: Duration,
    pub p99: Duration,
}

/// What `verify` found in a healthy directory.
#[derive(Debug)]
pub struct VerifyReport {
    pub dir: PathBuf,
    /// Every regular file in the directory with its size, sorted by name.
    pub files: Vec<(String, u64)>,
    pub model_file: String,
    pub sha256: String,
    pub golden_vectors: usize,
    pub golden_max_diff: f64,
    pub golden_runtime: String,
    pub latencies: Vec<Latency>,
}

/// Run every check; the first failure is the error. `iterations` sizes the latency runs.
pub fn verify(dir: &Path, iterations: usize) -> Result<VerifyReport, ModelError> {
    let mut files = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|source| ModelError::Io { path: dir.to_owned(), source })?;
    for entry in entries {
        let entry = entry.map_err(|source| ModelError::Io { path: dir.to_owned(), source })?;
        let meta = entry.metadata().map_err(|source| ModelError::Io { path: entry.path(), source })?;
        if meta.is_file() {
            files.push((entry.file_name().to_string_lossy().into_owned(), meta.len()));
        }
    }
    files.sort();
    let classifier = Classifier::load(dir)?;
    let golden_max_diff = classifier.check_golden()?;
    let golden = classifier.golden()?;
    let sample = golden
        .inputs
        .first()
        .map(|row| FeatureVector(std::array::from_fn(|i| row.get(i).copied().unwrap_or(0.0) as f32)))
        .unwrap_or_default();
    let latencies = vec![
        measure(&classifier, &[sample], iterations)?,
        measure(&classifier, &vec![sample; 64], iterations.div_ceil(4).max(1))?,
    ];
    let meta = classifier.metadata();
    Ok(VerifyReport {
        dir: dir.to_owned(),
        files,
        model_file: meta.model_file.clone(),
        sha256: meta.sha256.clone(),
        golden_vectors: golden.inputs.len(),
        golden_max_diff,
        golden_runtime: golden.runtime,
        latencies,
    })
}

/// p50/p99 wall time of `predict` on `batch`, after a short warm-up.
pub fn measure(classifier: &Classifier, batch: &[FeatureVector], iterations: usize) -> Result<Latency, ModelError> {
    for _ in 0..iterations.min(20) {
        classifier.predict_raw(batch)?;
    }
    let mut times = Vec::with_capacity(iterations);
    for _ in 0..iterations.max(1) {
        let start = Instant::now();
        std::hint::black_box(classifier.predict_raw(batch)?);
        times.push(start.elapsed());
    }
    times.sort();
    let pct = |q: f64| times[((q * times.len() as f64).ceil() as usize).clamp(1, times.len()) - 1];
    Ok(Latency { batch: batch.len(), iterations: times.len(), p50: pct(0.50), p99: pct(0.99) })
}
