//! Write side of Mini-XDR: the event store on PostgreSQL, the hash chain, catch-up
//! subscriptions, the command pipeline (load → decide → append, retried on conflict), ingest
//! keys, the ingest pipeline (NATS and HTTP producers → the log) and the relay (log → NATS).
#![forbid(unsafe_code)]

pub mod auth;
pub mod cluster;
pub mod db;
pub mod handler;
pub mod ingest;
pub mod ingest_keys;
pub mod mail;
pub mod readiness;
pub mod relay;
pub mod response;
pub mod shutdown;
pub mod store;
pub mod subscription;
#[cfg(feature = "testing")]
pub mod test_nats;
#[cfg(feature = "testing")]
pub mod testing;
#[cfg(feature = "testing")]
pub mod testing_smtp;
pub mod trust;

pub use shutdown::shutdown_signal;
pub use store::{EventStore, ExpectedVersion, NewEvent, StoreError, StoredEvent};
