//! Integration tests of the read side against the real PostgreSQL, one fresh database each.

mod action_queue;
mod crash;
mod helpers;
mod projection;
mod quarantine;
mod rebuild;
mod rls;
mod wait;
