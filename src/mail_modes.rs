//! The `mailer` role: delivers the mail the log asks for (`xdr_commands::mail`).

use anyhow::Context;
use std::process::ExitCode;
use xdr_commands::auth::{Clock, LinkTokens};
use xdr_commands::mail::Mailer;
use xdr_commands::EventStore;

use crate::config::Settings;

/// The mailer of `serve` and of the `mailer` role, ready to spawn.
pub fn run_mailer(
    settings: &Settings,
    pool: sqlx::PgPool,
) -> anyhow::Result<impl std::future::Future<Output = Result<(), xdr_commands::mail::outbox::MailError>>> {
    let config = settings.mail.mail_config()?;
    let links = LinkTokens::new(settings.jwt_secret_key()?);
    let mailer = Mailer::new(EventStore::new(pool), config, links, Clock::system()).context("mail transport")?;
    Ok(xdr_commands::mail::run_mailer(mailer, crate::modes::shutdown_signal()))
}

/// The mailer alone, as the workers' login, until Ctrl-C / SIGTERM.
pub async fn mailer(settings: &Settings) -> anyhow::Result<ExitCode> {
    let pool = crate::database::worker_pool(settings, 4).await?;
    run_mailer(settings, pool)?.await.context("mailer stopped")?;
    tracing::info!("mailer stopped");
    Ok(ExitCode::SUCCESS)
}
