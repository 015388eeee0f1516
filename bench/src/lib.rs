//! `mini-xdr bench …`: performance measured against a baseline in the same run, each in a
//! scratch database (`xdr_commands::testing::TestDb`, with the runtime logins) that is dropped
//! afterwards. Numbers go to docs/BENCHMARKS.md. The root binary embeds [`BenchCommand`] and
//! hands it to [`run`].
#![forbid(unsafe_code)]

mod agent_resync;
mod append;
mod auth;
mod detect;
mod e2e;
mod graphql;
mod ingest;
mod mail;
mod rebuild;
mod replay;
mod response;
mod second_factor;
mod soak;

use clap::{Args, Subcommand};
use serde_json::json;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::ExitCode;
use std::time::Instant;
use uuid::Uuid;
use xdr_commands::testing::TestDb;
use xdr_commands::EventStore;

/// What the benchmarks take from the process's settings.
pub struct Env {
    /// The owner's URL (`XDR_MIGRATE_DATABASE_URL` or `DATABASE_URL`): scratch databases are
    /// made on its server. `None` when neither is set (the benchmarks without a database run).
    pub owner_database_url: Option<String>,
    /// `NATS_URL`: producers and in-process roles connect there anonymously, as in development.
    pub nats_url: String,
    /// A connection as the API's NATS identity (the order dispatcher's).
    pub nats_api: NatsConnect,
    /// `XDR_MODELS_DIR`: the detector's models.
    pub models_dir: PathBuf,
}

/// Opens a NATS connection with the identity the caller chose.
pub type NatsConnect =
    Box<dyn Fn() -> Pin<Box<dyn Future<Output = anyhow::Result<async_nats::Client>> + Send>> + Send + Sync>;

impl Env {
    fn owner_database_url(&self) -> anyhow::Result<&str> {
        self.owner_database_url.as_deref().ok_or_else(|| {
            anyhow::anyhow!("this benchmark needs a database: set DATABASE_URL (or XDR_MIGRATE_DATABASE_URL)")
        })
    }
}

/// Runs one benchmark; its report goes to stdout.
pub async fn run(command: BenchCommand, env: Env) -> anyhow::Result<ExitCode> {
    match command {
        BenchCommand::Append(args) => append::append(&env, args).await,
        BenchCommand::Auth(args) => auth::auth(&env, args).await,
        BenchCommand::Rebuild(args) => rebuild::rebuild(&env, args).await,
        BenchCommand::Ingest(args) => ingest::ingest(&env, args).await,
        BenchCommand::Detect(args) => detect::detect(args),
        BenchCommand::Inference(args) => detect::inference(args).await,
        BenchCommand::Graphql(args) => graphql::graphql(&env, args).await,
        BenchCommand::E2e(args) => e2e::e2e(&env, args).await,
        BenchCommand::Replay(args) => replay::replay(&env, args).await,
        BenchCommand::ReplayRawCopy(args) => replay::raw_copy(&env, args).await,
        BenchCommand::AgentResync(args) => agent_resync::agent_resync(&env, args).await,
        BenchCommand::Response(args) => response::response(&env, args).await,
        BenchCommand::Soak(args) => soak::soak(&env, args).await,
        BenchCommand::Mail(args) => mail::mail(&env, args).await,
        BenchCommand::SecondFactor(args) => second_factor::second_factor(args).await,
    }
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Batch append to the event log vs raw COPY into a plain table, in a scratch database.
    Append(BenchAppendArgs),
    /// Login throughput and latency, and GraphQL `me` latency with and without a login flood.
    Auth(BenchAuthArgs),
    /// Rebuild of all read models vs a raw sequential scan of the same log, in a scratch database.
    Rebuild(BenchRebuildArgs),
    /// A Cowrie backlog in NATS drained by the ingestor vs raw COPY of the same rows, with peak RSS.
    Ingest(BenchIngestArgs),
    /// Detector core throughput on one core over synthetic events (no database, no NATS).
    Detect(BenchDetectArgs),
    /// Classifier latency with tract: p50/p99 per single window and per batch of 64.
    Inference(BenchInferenceArgs),
    /// GraphQL `incidents(first: 50)` latency and throughput vs the same SQL run directly.
    Graphql(BenchGraphqlArgs),
    /// The whole pipeline under load: attack records published to NATS until their incident
    /// is visible in GraphQL (p50/p99), next to the poll's own floor.
    E2e(BenchE2eArgs),
    /// `replay --format jsonl` and `audit export` of one org vs raw COPY TO STDOUT of the same
    /// rows, each phase a child process with its peak RSS, in a scratch database.
    Replay(BenchReplayArgs),
    /// Internal: the raw COPY baseline of `bench replay`, run as its child process.
    #[command(hide = true)]
    ReplayRawCopy(ReplayRawCopyArgs),
    /// A starting agent re-syncing N active blocks (dry-run, and nftables when usable) vs the
    /// raw SELECT of the same rows.
    #[command(name = "agent-resync")]
    AgentResync(BenchAgentResyncArgs),
    /// Incident opened → block confirmed by an in-process dry-run agent (p50/p99) vs a NATS
    /// request/reply round trip, in a scratch database under a unique NATS prefix.
    Response(BenchResponseArgs),
    /// Every role as its own process, fed the real logs at a steady rate: RSS per role and
    /// lag per stage once a minute, then a CSV and a PNG; fails when memory grows past the
    /// bound or lag is unbounded (see docs/BENCHMARKS.md).
    Soak(BenchSoakArgs),
    /// `forgot-password` until the SMTP server accepted the mail (p50/p99) vs the bare SMTP
    /// round trip, with the real mailer and an SMTP server in process.
    Mail(BenchMailArgs),
    /// What the TOTP second factor adds to a sign-in: the code check (open the sealed secret,
    /// compute the drift window's codes) vs the argon2id verification, in the same run.
    #[command(name = "second-factor")]
    SecondFactor(BenchSecondFactorArgs),
}

#[derive(Debug, Args)]
pub struct BenchMailArgs {
    /// Reset requests, one after another (and as many bare SMTP sends).
    #[arg(long, default_value_t = 200)]
    pub requests: usize,
}

#[derive(Debug, Args)]
pub struct BenchSecondFactorArgs {
    /// Measurements of each kind.
    #[arg(long, default_value_t = 200)]
    pub rounds: usize,
}

#[derive(Debug, Args)]
pub struct BenchSoakArgs {
    /// How long the load runs, in minutes.
    #[arg(long, default_value_t = 30)]
    pub minutes: u64,
    /// Records per second offered to the ingest subjects.
    #[arg(long, default_value_t = 2_000.0)]
    pub rate: f64,
    /// Run this many seconds instead of --minutes (short test runs).
    #[arg(long, hide = true)]
    pub seconds: Option<u64>,
    /// Seconds between samples (rows of the CSV); a line is printed once a minute.
    #[arg(long, default_value_t = 10)]
    pub sample_secs: u64,
    /// Directory with the real logs replayed (cowrie.json, sshd-auth-rfc3339.log); the
    /// default is the repository's byte-identical copy of the shared real logs.
    #[arg(long, default_value = "domain/tests/fixtures", value_name = "DIR")]
    pub logs: PathBuf,
    /// Where soak.csv, soak.png and the roles' logs (soak-logs/) are written.
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub out: PathBuf,
    /// The detector's memory bound (`XDR_DETECTOR_MAX_OBSERVATIONS`). The load brings new
    /// sources for over an hour, so the detector's windows grow until this bound; the default
    /// is reached within minutes at 2 000/s, before the quarter mark the memory verdict
    /// compares against (the production default, 1 000 000, is reached after ~8 minutes).
    #[arg(long, default_value_t = 400_000, value_name = "N")]
    pub detector_max_observations: usize,
}

#[derive(Debug, Args)]
pub struct BenchE2eArgs {
    /// Background events per second offered to the ingest subject.
    #[arg(long, default_value_t = 10_000.0)]
    pub rate: f64,
    /// How long the load runs, in seconds.
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// A new attacking source every this many milliseconds.
    #[arg(long, default_value_t = 200)]
    pub probe_interval_ms: u64,
}

#[derive(Debug, Args)]
pub struct BenchReplayArgs {
    /// Events seeded for the one org.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: usize,
    /// Measurements per phase; the fastest time and the highest peak RSS are reported.
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
}

#[derive(Debug, Args)]
pub struct ReplayRawCopyArgs {
    /// The org whose rows are copied out.
    #[arg(long)]
    pub org: uuid::Uuid,
}

#[derive(Debug, Args)]
pub struct BenchAgentResyncArgs {
    /// Active blocks seeded for the agent's org.
    #[arg(long, default_value_t = 10_000)]
    pub blocks: usize,
    /// Re-syncs measured per backend (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
}

#[derive(Debug, Args)]
pub struct BenchResponseArgs {
    /// Incidents opened (and blocked) one after another.
    #[arg(long, default_value_t = 1_000)]
    pub incidents: usize,
}

#[derive(Debug, Args)]
pub struct BenchGraphqlArgs {
    /// Security events seeded for the measured org.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: i64,
    /// Incidents seeded for the measured org.
    #[arg(long, default_value_t = 10_000)]
    pub incidents: i64,
    /// Requests per measurement.
    #[arg(long, default_value_t = 20_000)]
    pub requests: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
}

#[derive(Debug, Args)]
pub struct BenchDetectArgs {
    /// Number of synthetic security events.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: usize,
    /// Distinct source addresses they come from.
    #[arg(long, default_value_t = 10_000)]
    pub sources: usize,
}

#[derive(Debug, Args)]
pub struct BenchAuthArgs {
    /// Logins in the flood.
    #[arg(long, default_value_t = 400)]
    pub logins: usize,
    /// Concurrent login clients.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// GraphQL `me` requests per measurement.
    #[arg(long, default_value_t = 2_000)]
    pub me_requests: usize,
    /// Failed logins seeded into the long-history user's stream (the `me` cost-vs-history phase).
    #[arg(long, default_value_t = 100_000)]
    pub history_failures: usize,
}

#[derive(Debug, Args)]
pub struct BenchRebuildArgs {
    /// Telemetry events in the log (plus a small identity history per org).
    #[arg(long, default_value_t = 200_000)]
    pub events: usize,
    /// Organizations the events are spread over.
    #[arg(long, default_value_t = 4)]
    pub orgs: usize,
}

#[derive(Debug, Args)]
pub struct BenchIngestArgs {
    /// Records in the backlog.
    #[arg(long, default_value_t = 1_000_000)]
    pub records: usize,
    /// Records per NATS message.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch: u32,
}

#[derive(Debug, Args)]
pub struct BenchAppendArgs {
    /// Number of telemetry events to append.
    #[arg(long, default_value_t = 200_000)]
    pub events: usize,
    /// Events per append_batch call.
    #[arg(long, default_value_t = 5_000)]
    pub batch: usize,
}

#[derive(Debug, Args)]
pub struct BenchInferenceArgs {
    /// Directory holding classifier.json, its .onnx and golden vectors.
    #[arg(long, env = "XDR_MODELS_DIR", default_value = "inference/models", value_name = "DIR")]
    pub dir: PathBuf,
    /// Timed runs per latency measurement (batches of 64 get a quarter of them).
    #[arg(long, default_value_t = 1_000)]
    pub iterations: usize,
}

/// A fresh scratch database on the owner's server, dropped when the value is.
async fn scratch_db(env: &Env) -> anyhow::Result<TestDb> {
    Ok(TestDb::create(env.owner_database_url()?).await?)
}

/// A Cowrie-like telemetry payload of about 360 bytes, varied per index.
pub(crate) fn telemetry_payload(i: usize) -> serde_json::Value {
    json!({
        "timestamp": format!("2026-11-26T21:{:02}:{:02}.{:06}Z", (i / 60) % 60, i % 60, i % 1_000_000),
        "source_type": "cowrie",
        "event_type": "cowrie.login.failed",
        "src_ip": format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255),
        "src_port": 40000 + (i % 20000),
        "dst_ip": "172.16.0.10",
        "dst_port": 2222,
        "protocol": "ssh",
        "username": "root",
        "password": format!("pass{}", i % 997),
        "session_id": format!("{:012x}", i),
        "hostname": "cowrie-sensor-01",
        "message": format!("login attempt [root/pass{}] failed", i % 997),
    })
}

/// p50 and p99 of a set of latencies, in milliseconds.
pub(crate) fn percentiles(mut samples: Vec<std::time::Duration>) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| {
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    (at(0.50), at(0.99))
}

/// Run `total` requests from `concurrency` clients; returns each request's latency.
pub(crate) async fn load<F, Fut>(
    total: usize,
    concurrency: usize,
    request: F,
) -> anyhow::Result<Vec<std::time::Duration>>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (next, request) = (next.clone(), request.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < total {
                    let started = Instant::now();
                    request().await?;
                    latencies.push(started.elapsed());
                }
                anyhow::Ok(latencies)
            })
        })
        .collect();
    let mut all = Vec::with_capacity(total);
    for w in workers {
        all.extend(w.await??);
    }
    Ok(all)
}

/// The real identity handlers over a scratch database, with a throwaway signing key.
pub(crate) fn bench_identity(pool: &sqlx::PgPool) -> anyhow::Result<xdr_commands::auth::IdentityService> {
    use xdr_commands::auth::{Clock, IdentityService, PasswordHasher, TokenService};
    Ok(IdentityService::new(
        EventStore::new(pool.clone()),
        PasswordHasher::owasp()?,
        TokenService::new(&secrecy::SecretString::from(Uuid::new_v4().simple().to_string().repeat(2))),
        Clock::system(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        bench: BenchCommand,
    }

    #[test]
    fn every_bench_subcommand_parses() {
        Cli::command().debug_assert();
        for args in [
            &["inference", "--iterations", "10"][..],
            &["append", "--events", "10"],
            &["auth", "--logins", "10"],
            &["graphql", "--events", "10", "--incidents", "5", "--requests", "10"],
            &["rebuild", "--events", "10", "--orgs", "2"],
            &["ingest", "--records", "10", "--batch", "5"],
            &["detect", "--events", "10", "--sources", "2"],
            &["agent-resync", "--blocks", "10", "--runs", "1"],
            &["e2e", "--rate", "100", "--seconds", "2"],
            &["replay", "--events", "10"],
            &["response", "--incidents", "3"],
            &["soak", "--minutes", "5", "--rate", "2000"],
            &["soak", "--seconds", "5", "--rate", "20", "--sample-secs", "1", "--out", "/tmp/x"],
        ] {
            let argv = std::iter::once(&"bench").chain(args);
            assert!(Cli::try_parse_from(argv).is_ok(), "{args:?}");
        }
        assert!(Cli::try_parse_from(["bench", "ingest", "--batch", "0"]).is_err());
    }
}
