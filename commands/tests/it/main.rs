//! Integration tests of the write side against the real PostgreSQL (one fresh database
//! each) and, for ingest and relay, the real NATS JetStream (one subject prefix each).

mod db_roles;
mod distributable;
mod helpers;
mod ingest;
mod ingest_keys;
mod nats_permissions;
mod nats_support;
mod relay;
mod results;
mod snapshots;
mod store;
mod subscription;
mod undeliverable;
