//! Features of one source's windows: classification of records into observations
//! ([`extract::observe`]) and the named numeric features computed over the windows
//! ([`extract::extract`]). Every feature is documented in `docs/DETECTION.md`.

pub mod extract;

pub use extract::{extract, observe, Features, FEATURE_NAMES, FEATURE_VERSION, MIRAI_CREDENTIALS};
