//! End-to-end tests of the `mini-xdr` binary against the real services.

mod verify_cli;
