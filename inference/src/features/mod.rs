//! Features computed from per-(org, source ip) windows. `vector` is the contract with the
//! models; window state and extraction live beside it.

pub mod vector;

pub use vector::{Feature, FeatureVector, FEATURE_NAMES, FEATURE_VERSION, N_FEATURES};
