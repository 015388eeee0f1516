//! Models over feature vectors: the ONNX window classifier (tract) and per-org baselines (linfa).

pub mod baseline;
pub mod classifier;
pub mod verify;

pub use baseline::{Baseline, BaselineError};
pub use classifier::{ClassProbabilities, Classifier};

use std::path::PathBuf;

/// Why a model could not be loaded or run. Messages name the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("bad model metadata in {path}: {reason}")]
    Metadata { path: PathBuf, reason: String },
    #[error("{path} does not match its metadata: sha256 {actual}, expected {expected} (corrupted or replaced; re-run inference/train/train.py or restore it)")]
    HashMismatch { path: PathBuf, expected: String, actual: String },
    #[error("the model was trained on feature version {found_version}, this build computes version {expected_version} (retrain)")]
    FeatureMismatch { expected_version: u32, found_version: u32 },
    #[error("cannot load the ONNX graph {path}: {reason}")]
    Unloadable { path: PathBuf, reason: String },
    #[error("wrong tensor shape: {0}")]
    Shape(String),
    #[error("inference failed: {0}")]
    Inference(String),
    #[error("golden vectors differ from the training runtime by {max_diff:e} (tolerance {tolerance:e})")]
    GoldenMismatch { max_diff: f64, tolerance: f64 },
}
