//! Detection for Mini-XDR: per-(org, source ip) event-time windows ([`windows`]), named
//! features ([`features`]), rules with ATT&CK ids ([`rules`]), the pure detector core that
//! turns stored events into idempotent incident commands ([`detector`]), the JetStream
//! worker that runs it ([`worker`]), and the models ([`model`]: the ONNX classifier run with
//! tract, per-org baselines fitted with linfa) that score what the rules found.
#![forbid(unsafe_code)]

pub mod baseline_training;
pub mod baselines;
pub mod coalesce;
pub mod detector;
pub mod features;
pub mod model;
pub mod partition;
pub mod response;
pub mod rules;
pub mod scoring;
pub mod verify;
pub mod windows;
pub mod worker;

pub use baselines::BaselineCache;
pub use detector::{BaselineInput, Detector, DetectorSettings, DetectorStats, IssuedCommand, Scorer};
pub use partition::Partition;
pub use response::{Responder, ResponseSettings};
pub use worker::{execute_commands, rebuild_org, run_detector, DetectorConfig, WorkerError};
