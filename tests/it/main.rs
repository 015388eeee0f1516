//! End-to-end tests of the `mini-xdr` binary against the real services.

mod agent_cli;
mod audit_cli;
mod audit_e2e;
mod bench_cli;
mod db_logins;
mod deploy;
mod faults;
mod http_limits_cli;
mod ingest_cli;
mod layering;
mod load;
mod mail_outbox;
mod models_cli;
mod operator_cli;
mod projector_cli;
mod quarantine_cli;
mod rebuild_into_cli;
mod replay_cli;
mod scale_out;
mod scale_out_support;
mod scheduler_cli;
mod serve_cli;
mod servers;
mod store_tls;
mod support;
mod verify_cli;
