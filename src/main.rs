//! `mini-xdr`: parses the command line, loads settings, and hands each subcommand to one
//! function of a library crate. Errors print with their cause chain and set the exit code.
#![forbid(unsafe_code)]

mod cli;
mod config;
mod database;
mod ingest_modes;
mod logging;
mod mail_modes;
mod mail_settings;
mod modes;
mod operator;
mod response_modes;

use clap::{CommandFactory, FromArgMatches};
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let matches = cli::Cli::command().get_matches();
    let role = matches.subcommand_name().unwrap_or("mini-xdr").to_owned();
    let cli = cli::Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match logging::LogFormat::from_env() {
        Ok(format) => logging::init(format, &role),
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    }
    match modes::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
