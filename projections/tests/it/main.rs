//! Integration tests of the read side against the real PostgreSQL, one fresh database each.

mod chain_roundtrip;
mod crash;
mod helpers;
mod legacy_chain;
mod projection;
mod quarantine;
mod rebuild;
mod rls;
mod wait;
