//! The response roles' wiring: order/result names and timeouts from the environment, the
//! scheduler role (`mini-xdr scheduler`, also inside `serve`) and the detector's response
//! settings.

use anyhow::Context;
use std::process::ExitCode;
use std::time::Duration;
use xdr_commands::response::results::run_results_consumer;
use xdr_commands::response::scheduler::run_scheduler;
use xdr_commands::response::{Dispatcher, ResponseConfig};
use xdr_commands::EventStore;

use crate::config::Settings;

/// A positive integer from the environment, or `default` when unset.
fn env_u64(name: &str, default: u64) -> anyhow::Result<u64> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => {
            let n: u64 = v.trim().parse().with_context(|| format!("{name}={v:?} is not a whole number"))?;
            anyhow::ensure!(n > 0, "{name} must be greater than 0");
            Ok(n)
        }
        _ => Ok(default),
    }
}

/// Names follow `XDR_NATS_PREFIX` like every other subject; `XDR_ACTION_ACK_TIMEOUT_SECS`
/// (default 30) and `XDR_ACTION_MAX_ATTEMPTS` (default 3) bound how long an order waits for
/// its agent.
pub(crate) fn response_config() -> anyhow::Result<ResponseConfig> {
    let mut config = match std::env::var("XDR_NATS_PREFIX") {
        Ok(prefix) if !prefix.is_empty() => ResponseConfig::with_prefix(&prefix),
        _ => ResponseConfig::default(),
    };
    config.ack_timeout = Duration::from_secs(env_u64("XDR_ACTION_ACK_TIMEOUT_SECS", config.ack_timeout.as_secs())?);
    let attempts = env_u64("XDR_ACTION_MAX_ATTEMPTS", u64::from(config.max_attempts))?;
    config.max_attempts = u32::try_from(attempts).context("XDR_ACTION_MAX_ATTEMPTS is too large")?;
    Ok(config)
}

/// What the detector needs to evaluate containment policies; `XDR_POLICY_CACHE_MS`
/// (default 2000, 0 = always reload) is how long an org's policies are cached.
pub(crate) fn detector_response() -> anyhow::Result<xdr_inference::ResponseSettings> {
    let ttl = match std::env::var("XDR_POLICY_CACHE_MS") {
        Ok(v) if !v.trim().is_empty() => {
            v.trim().parse::<u64>().with_context(|| format!("XDR_POLICY_CACHE_MS={v:?} is not a whole number"))?
        }
        _ => 2000,
    };
    Ok(xdr_inference::ResponseSettings { config: response_config()?, policy_cache_ttl: Duration::from_millis(ttl) })
}

/// `XDR_SCHEDULER_INTERVAL_MS` (default 1000): how often the scheduler looks for due actions.
pub(crate) fn scheduler_interval() -> anyhow::Result<Duration> {
    Ok(Duration::from_millis(env_u64("XDR_SCHEDULER_INTERVAL_MS", 1000)?))
}

/// The scheduler role's two loops on one connection set: the sweep over due actions (late
/// dispatches, unanswered orders, expired blocks) and the consumer of agents' results.
/// Returns when `shutdown` resolves (both loops stop) or either loop fails.
pub(crate) async fn run_response_roles(
    store: EventStore,
    jetstream: async_nats::jetstream::Context,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let config = response_config()?;
    let interval = scheduler_interval()?;
    let dispatcher = Dispatcher::new(jetstream.clone(), config.clone())
        .await
        .context("Failed to create the order and result streams")?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    tracing::info!(interval_ms = interval.as_millis() as u64, orders = %config.actions_wildcard(),
        results = %config.results_wildcard(), "scheduler sweeping; results consumer running");
    let queue = xdr_projections::action_queue::ActionSchedule::new(store.pool().clone());
    let mut scheduler =
        tokio::spawn(run_scheduler(store.clone(), dispatcher, queue, interval, stopped(stop_rx.clone())));
    let mut results = tokio::spawn(run_results_consumer(store, jetstream, config, stopped(stop_rx)));
    tokio::pin!(shutdown);
    let (mut scheduler_done, mut results_done) = (false, false);
    let outcome = tokio::select! {
        _ = &mut shutdown => Ok(()),
        r = &mut scheduler => {
            scheduler_done = true;
            Err(r.err().map_or_else(|| anyhow::anyhow!("scheduler loop ended"), anyhow::Error::from))
        }
        r = &mut results => {
            results_done = true;
            match r {
                Ok(Ok(())) => Err(anyhow::anyhow!("results consumer ended")),
                Ok(Err(e)) => Err(anyhow::Error::from(e).context("results consumer stopped")),
                Err(e) => Err(anyhow::Error::from(e).context("results consumer panicked")),
            }
        }
    };
    // Graceful: both loops finish what they are doing (a sweep, a result) and return.
    let _ = stop_tx.send(true);
    if !scheduler_done {
        let _ = scheduler.await;
    }
    if !results_done {
        let _ = results.await;
    }
    outcome
}

/// `mini-xdr scheduler`: the scheduler role alone, until Ctrl-C / SIGTERM.
pub async fn scheduler(settings: &Settings) -> anyhow::Result<ExitCode> {
    let pool = crate::database::worker_pool(settings, 4).await?;
    let client = crate::ingest_modes::nats(settings, crate::ingest_modes::NatsRole::Scheduler).await?;
    let jetstream = async_nats::jetstream::new(client);
    run_response_roles(EventStore::new(pool), jetstream, crate::modes::shutdown_signal()).await?;
    tracing::info!("scheduler stopped");
    Ok(ExitCode::SUCCESS)
}
