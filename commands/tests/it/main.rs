//! Integration tests of the write side against the real PostgreSQL, one fresh database each.

mod helpers;
mod store;
mod subscription;
