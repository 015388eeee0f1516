//! Read side of Mini-XDR: the projection runner and read models (with row-level security),
//! rebuild with a digest, and the queries the response loop asks of the actions read model.
//! The audit tools over the log live in `xdr-audit`.
#![forbid(unsafe_code)]

pub mod action_queue;
pub mod models;
pub mod orgs;
pub mod quarantine;
pub mod rebuild;
pub mod runner;
pub mod tenant;

pub use rebuild::{digest, rebuild};
pub use runner::{catch_up_once, run_projector, wait_for_projections, Projection, ProjectionError, ProjectionLag};
pub use tenant::begin_org_tx;
