//! End-to-end tests of the `mini-xdr` binary against the real services.

mod deploy;
mod verify_cli;
