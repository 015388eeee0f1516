//! Write side of Mini-XDR: the event store on PostgreSQL, the hash chain, catch-up
//! subscriptions, and the command pipeline (load → decide → append, retried on conflict).
#![forbid(unsafe_code)]

pub mod auth;
pub mod chain;
pub mod db;
pub mod handler;
pub mod store;
pub mod subscription;
#[cfg(feature = "testing")]
pub mod testing;

pub use store::{EventStore, ExpectedVersion, NewEvent, StoreError, StoredEvent};
