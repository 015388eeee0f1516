//! End-to-end tests of the `mini-xdr` binary against the real services.

mod models_cli;
mod verify_cli;
