//! Integration tests of the audit tools against the real PostgreSQL, one fresh database each.

mod chain_roundtrip;
mod legacy_chain;
