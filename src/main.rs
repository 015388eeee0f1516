//! `mini-xdr`: parses the command line, loads settings, and hands each subcommand to one
//! function of a library crate. Errors print with their cause chain and set the exit code.
#![forbid(unsafe_code)]

mod cli;
mod config;
mod database;
mod ingest_modes;
mod mail_modes;
mod mail_settings;
mod modes;
mod operator;
mod response_modes;

use clap::Parser;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,tract_linalg=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match modes::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
