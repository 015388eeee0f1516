//! `mini-xdr agent`: the reference enforcement agent.
//!
//! On start it re-syncs its backend from the server's blocks in force (the server's read
//! model is the truth: what is not there goes, what is comes, with the time each has left).
//! Then it long-polls its orders, carries out each one that is still fresh, and reports every
//! result. It speaks only HTTP(S) to the server's agent gateway, with its agent key; it never
//! holds NATS or database credentials. A refused key (401) stops it with a non-zero exit.

#![forbid(unsafe_code)]

pub mod backend;
pub mod client;

use anyhow::Context;
use chrono::Utc;
use secrecy::SecretString;
use std::collections::HashMap;
use std::net::IpAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use xdr_domain::response::action::ActionKind;
use xdr_domain::response::order::{ActionOrder, ActiveBlock};
use xdr_graphql::agent_api::{AgentResultItem, PulledOrder, MAX_PULL};

use self::backend::{Backend, Desired, Runner};
use self::client::{Gateway, GatewayError};

/// `mini-xdr agent`'s arguments.
#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    /// Base URL of the Mini-XDR server, e.g. https://xdr.example.com.
    #[arg(long, env = "XDR_AGENT_SERVER", value_name = "URL", required_unless_present = "cleanup")]
    pub server: Option<String>,
    /// The agent key (`xdra_…`, from `createAgentKey`). Prefer the environment variable, so
    /// the key does not show in the process list; it is never logged.
    #[arg(
        long,
        env = "XDR_AGENT_KEY",
        value_name = "KEY",
        hide_env_values = true,
        required_unless_present = "cleanup"
    )]
    pub key: Option<SecretArg>,
    /// Where blocks are enforced: `nftables` (table `inet mini_xdr`), `iptables` (chain
    /// `MINI_XDR`) or `dry-run` (log only).
    #[arg(long, value_name = "nftables|iptables|dry-run")]
    pub backend: BackendKind,
    /// Long-poll time of one order pull, in milliseconds (at most 30000).
    #[arg(long, default_value_t = 20_000, value_name = "MS",
          value_parser = clap::value_parser!(u64).range(0..=30_000))]
    pub poll_wait_ms: u64,
    /// Also trust this PEM CA certificate for the server's HTTPS (a private CA or a
    /// self-signed server certificate); public CAs are always trusted.
    #[arg(long, env = "XDR_AGENT_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<std::path::PathBuf>,
    /// Apply the firewall inside this network namespace (`ip netns exec NAME nft …`) instead
    /// of the agent's own; the agent itself still talks to the server from its own namespace.
    #[arg(long, value_name = "NAME")]
    pub netns: Option<String>,
    /// Remove everything the backend owns (nftables table `inet mini_xdr`, iptables chain
    /// `MINI_XDR` and its jump) and exit, without contacting the server.
    #[arg(long)]
    pub cleanup: bool,
}

/// `--backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Nftables,
    Iptables,
    DryRun,
}

impl std::str::FromStr for BackendKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "nftables" => Ok(BackendKind::Nftables),
            "iptables" => Ok(BackendKind::Iptables),
            "dry-run" => Ok(BackendKind::DryRun),
            other => Err(format!("unknown backend {other:?}: use nftables, iptables or dry-run")),
        }
    }
}

impl BackendKind {
    pub fn build(self, netns: Option<String>) -> Backend {
        let runner = Runner::new(netns);
        match self {
            BackendKind::DryRun => Backend::DryRun(Default::default()),
            BackendKind::Nftables => Backend::Nftables(backend::nftables::Nftables::new(runner)),
            BackendKind::Iptables => Backend::Iptables(backend::iptables::Iptables::new(runner)),
        }
    }
}

/// A secret on the command line: never printed by `Debug`.
#[derive(Clone)]
pub struct SecretArg(pub SecretString);

impl std::str::FromStr for SecretArg {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(SecretArg(SecretString::from(s.trim().to_owned())))
    }
}

impl std::fmt::Debug for SecretArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Longest pause between attempts while the server is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

pub async fn run(args: AgentArgs) -> anyhow::Result<ExitCode> {
    let mut backend = args.backend.build(args.netns.clone());
    if args.cleanup {
        backend.cleanup().await.with_context(|| format!("cleanup of the {} backend failed", backend.name()))?;
        eprintln!("{}: removed everything the agent owns", backend.name());
        return Ok(ExitCode::SUCCESS);
    }
    let server = args.server.context("--server is required")?;
    let key = args.key.context("--key (or XDR_AGENT_KEY) is required")?;
    let gateway = Gateway::new(&server, key.0, args.ca_cert.as_deref())?;
    tracing::info!(server = %server, backend = backend.name(), "agent starting");
    let shutdown = xdr_commands::shutdown_signal();
    tokio::pin!(shutdown);

    // Re-sync first, retrying while the server is unreachable.
    let mut backoff = Backoff::default();
    loop {
        tokio::select! {
            _ = &mut shutdown => return Ok(ExitCode::SUCCESS),
            r = resync(&gateway, &mut backend) => match r {
                Ok(summary) => { tracing::info!("{summary}"); break }
                Err(AgentFailure::Stop(e)) => return Err(e),
                Err(AgentFailure::Retry(e)) => {
                    tracing::warn!(error = %e, "re-sync failed; retrying");
                    tokio::select! { _ = &mut shutdown => return Ok(ExitCode::SUCCESS), _ = backoff.wait() => {} }
                }
            }
        }
    }
    tracing::info!("re-synced; waiting for orders");

    loop {
        backend.expire(Instant::now()).await;
        let pulled = tokio::select! {
            _ = &mut shutdown => break,
            r = gateway.pull(MAX_PULL, args.poll_wait_ms) => r,
        };
        let orders = match pulled {
            Ok(o) => {
                backoff.reset();
                o
            }
            Err(GatewayError::Refused(d)) => anyhow::bail!("the server refused the agent key: {d}"),
            Err(e) => {
                tracing::warn!(error = %e, "pulling orders failed; retrying");
                tokio::select! { _ = &mut shutdown => break, _ = backoff.wait() => {} }
                continue;
            }
        };
        if orders.is_empty() {
            continue;
        }
        // Carry out the whole batch before Ctrl-C is honoured: an applied order whose result
        // is lost would only be delivered and applied again, but a half-applied batch is
        // harder to reason about in the logs.
        let mut results = Vec::with_capacity(orders.len());
        for pulled in orders {
            results.push(execute(&mut backend, pulled).await);
        }
        report(&gateway, &results).await?;
    }
    tracing::info!("agent stopped");
    Ok(ExitCode::SUCCESS)
}

pub enum AgentFailure {
    Stop(anyhow::Error),
    Retry(anyhow::Error),
}

impl From<GatewayError> for AgentFailure {
    fn from(e: GatewayError) -> Self {
        match e {
            GatewayError::Transient(_) => AgentFailure::Retry(e.into()),
            _ => AgentFailure::Stop(e.into()),
        }
    }
}

pub async fn resync(gateway: &Gateway, backend: &mut Backend) -> Result<String, AgentFailure> {
    let blocks = gateway.blocks().await?;
    let desired = desired_blocks(&blocks, Utc::now());
    backend.sync(&desired).await.map_err(|e| AgentFailure::Stop(e.context("applying the re-sync failed")))
}

/// One entry per address: a block without an end wins over a timed one, else the latest end.
/// Blocks whose time is already up are left out (the server's scheduler is about to lift them).
pub fn desired_blocks(blocks: &[ActiveBlock], now: chrono::DateTime<Utc>) -> Vec<Desired> {
    let mut by_ip: HashMap<IpAddr, Option<u64>> = HashMap::new();
    for b in blocks {
        let Ok(ip) = b.ip.parse::<IpAddr>() else {
            tracing::warn!(ip = %b.ip, action_id = %b.action_id, "active block with an unreadable address; skipped");
            continue;
        };
        let left = match b.expires_at {
            None => None,
            Some(t) => {
                let ms = (t - now).num_milliseconds();
                if ms <= 0 {
                    continue;
                }
                Some((ms as u64).div_ceil(1000))
            }
        };
        by_ip
            .entry(ip)
            .and_modify(|cur| {
                *cur = match (*cur, left) {
                    (None, _) | (_, None) => None,
                    (Some(a), Some(b)) => Some(a.max(b)),
                }
            })
            .or_insert(left);
    }
    let mut out: Vec<Desired> = by_ip.into_iter().map(|(ip, timeout_secs)| Desired { ip, timeout_secs }).collect();
    out.sort_by_key(|d| d.ip);
    out
}

/// Carry out one order, or skip it if its deadline has passed.
async fn execute(backend: &mut Backend, pulled: PulledOrder) -> AgentResultItem {
    let order: &ActionOrder = &pulled.order;
    let answer = |ok: bool, detail: String, stale: bool| AgentResultItem {
        ack_token: pulled.ack_token.clone(),
        action_id: order.action_id,
        attempt: order.attempt,
        ok,
        detail,
        stale,
    };
    if order.deadline <= Utc::now() {
        tracing::info!(action_id = %order.action_id, attempt = order.attempt, "stale order (deadline {}) skipped", order.deadline);
        return answer(false, format!("stale order: deadline {} passed", order.deadline), true);
    }
    let outcome = match order.kind {
        ActionKind::BlockIp | ActionKind::UnblockIp => match order.target.parse::<IpAddr>() {
            Err(_) => Err(format!("target {:?} is not an IP address", order.target)),
            Ok(ip) if order.kind == ActionKind::BlockIp => backend.block(ip, order.duration_secs).await,
            Ok(ip) => backend.unblock(ip).await,
        },
        other => backend.other(other, &order.target),
    };
    match outcome {
        Ok(detail) => {
            tracing::info!(action_id = %order.action_id, kind = order.kind.as_str(), target = %order.target, "{detail}");
            answer(true, detail, false)
        }
        Err(detail) => {
            tracing::warn!(action_id = %order.action_id, kind = order.kind.as_str(), target = %order.target, "failed: {detail}");
            answer(false, detail, false)
        }
    }
}

/// Post the batch's results, retrying briefly. Given up results are not lost: their orders
/// are delivered again, re-applied (every operation is idempotent) and answered again.
async fn report(gateway: &Gateway, results: &[AgentResultItem]) -> anyhow::Result<()> {
    let mut backoff = Backoff::default();
    for attempt in 1..=5 {
        match gateway.results(results).await {
            Ok(outcomes) => {
                tracing::debug!(?outcomes, "results accepted");
                return Ok(());
            }
            Err(GatewayError::Refused(d)) => anyhow::bail!("the server refused the agent key: {d}"),
            Err(GatewayError::Rejected(d)) => {
                tracing::error!(detail = %d, "results rejected by the server");
                return Ok(());
            }
            Err(GatewayError::Transient(d)) => {
                tracing::warn!(detail = %d, attempt, "posting results failed; retrying");
                backoff.wait().await;
            }
        }
    }
    tracing::error!("results not delivered; their orders will come again");
    Ok(())
}

/// Doubling pause, from 200 ms up to [`MAX_BACKOFF`].
#[derive(Default)]
struct Backoff {
    next: Option<Duration>,
}

impl Backoff {
    async fn wait(&mut self) {
        let d = self.next.unwrap_or(Duration::from_millis(200));
        self.next = Some((d * 2).min(MAX_BACKOFF));
        tokio::time::sleep(d).await;
    }

    fn reset(&mut self) {
        self.next = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xdr_domain::ids::ActionId;

    fn block(ip: &str, expires_in: Option<i64>, now: chrono::DateTime<Utc>) -> ActiveBlock {
        ActiveBlock {
            action_id: ActionId(uuid::Uuid::new_v4()),
            ip: ip.into(),
            expires_at: expires_in.map(|s| now + chrono::Duration::seconds(s)),
        }
    }

    #[test]
    fn desired_blocks_keep_the_longest_block_per_address_and_drop_expired_ones() {
        let now = Utc::now();
        let d = desired_blocks(
            &[
                block("203.0.113.1", Some(60), now),
                block("203.0.113.1", Some(600), now),
                block("203.0.113.2", Some(60), now),
                block("203.0.113.2", None, now),
                block("203.0.113.3", Some(-5), now),
                block("not-an-ip", None, now),
            ],
            now,
        );
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            d,
            vec![
                Desired { ip: ip("203.0.113.1"), timeout_secs: Some(600) },
                Desired { ip: ip("203.0.113.2"), timeout_secs: None },
            ]
        );
    }
}
