//! End-to-end tests of the `mini-xdr` binary against the real services.

mod ingest_cli;
mod verify_cli;
