//! Integration tests of detection against the real PostgreSQL and NATS, on the real logs.

mod baselines;
mod classifier;
mod nats_worker;
mod partitions;
mod real_logs;
mod response;
mod restart;
mod support;
