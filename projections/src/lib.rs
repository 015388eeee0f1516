//! Read side of Mini-XDR: the projection runner and read models (with row-level security),
//! rebuild with a digest, and the audit tools over the log (verify, replay).
#![forbid(unsafe_code)]

pub mod action_queue;
pub mod bundle;
pub mod models;
pub mod orgs;
pub mod point_in_time;
pub mod quarantine;
pub mod rebuild;
pub mod replay;
pub mod runner;
pub mod tenant;
pub mod verify;

pub use rebuild::{digest, rebuild};
pub use runner::{catch_up_once, run_projector, wait_for_projections, Projection, ProjectionError, ProjectionLag};
pub use tenant::begin_org_tx;
