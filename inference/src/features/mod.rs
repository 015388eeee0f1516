//! Features of one source's windows. [`extract`] classifies records into observations and
//! computes the named rule features; [`vector`] is the fixed-order, versioned vector the models
//! take. Every feature is documented in `docs/DETECTION.md`.

pub mod extract;
pub mod vector;

pub use extract::{extract, observe, Features, FEATURE_NAMES, FEATURE_VERSION, MIRAI_CREDENTIALS};
pub use vector::{Feature, FeatureVector, N_FEATURES};
