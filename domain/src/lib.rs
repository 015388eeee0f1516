//! Pure domain model of Mini-XDR.
//!
//! Business rules are `decide(state, command) -> events` and `evolve(state, event) -> state`.
//! Nothing here does IO, reads a clock or draws random numbers: time and fresh ids arrive
//! inside commands, so every rule is a plain function tested without a database.
#![forbid(unsafe_code)]

pub mod aggregate;
pub mod detection;
pub mod event;
pub mod identity;
pub mod ids;
pub mod incident;
pub mod ingest_key;
pub mod json;
pub mod mail;
pub mod response;
pub mod telemetry;

pub use event::{Event, EventMetadata, EventType};
