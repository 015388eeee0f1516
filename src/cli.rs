//! Command-line interface. The doc comments are the `--help` text.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use xdr_projections::replay::Until;

/// Mini-XDR: multi-tenant, event-sourced threat detection and response.
///
/// Configuration comes from the environment (DATABASE_URL, NATS_URL, XDR_BIND,
/// JWT_SECRET_KEY, ENCRYPTION_KEY), optionally preceded by a TOML file (--config).
#[derive(Debug, Parser)]
#[command(name = "mini-xdr", version, propagate_version = true)]
pub struct Cli {
    /// TOML configuration file; environment variables override its values.
    #[arg(long, global = true, env = "XDR_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every role in one process: migrate, HTTP API, ingestor, relay, projector, detector.
    Serve,
    /// Run only the HTTP API (GraphQL + REST).
    Api,
    /// Run only the NATS ingestor.
    Ingestor,
    /// Run only the projection runner.
    Projector,
    /// Run only the detection worker.
    Detector,
    /// Apply database migrations and exit.
    Migrate,
    /// Print an organization's events in order, as JSON lines (the audit trail).
    Replay(ReplayArgs),
    /// Check every hash chain; exit 0 when intact, 1 naming the first broken link otherwise.
    Verify(VerifyArgs),
    /// Rebuild read models from the log and print their digest.
    Rebuild(RebuildArgs),
    /// Publish a log file through NATS with a progress bar.
    Ingest(IngestArgs),
    /// Print the GraphQL schema (SDL).
    Schema,
    /// Inspect the detection models.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Measure performance against a baseline in the same run (see docs/BENCHMARKS.md).
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Organization id or slug.
    #[arg(long, value_name = "ORG")]
    pub org: String,
    /// Last event to include: an org_seq number or an RFC 3339 timestamp.
    #[arg(long, value_name = "RFC3339|SEQ")]
    pub until: Option<Until>,
    /// Only events of this stream (e.g. `user-<uuid>`).
    #[arg(long, value_name = "ID")]
    pub stream: Option<String>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Only this organization (id or slug); all organizations by default.
    #[arg(long, value_name = "ORG")]
    pub org: Option<String>,
}

#[derive(Debug, Args)]
pub struct RebuildArgs {
    /// Only this projection.
    #[arg(long, value_name = "NAME")]
    pub projection: Option<String>,
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Ingest key that identifies the organization.
    #[arg(long)]
    pub key: String,
    /// Log format: cowrie, sshd, suricata, cef or json.
    #[arg(long)]
    pub source: String,
    /// The log file.
    pub file: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Check every model file is present and loads, and report its inference latency.
    Verify(ModelsVerifyArgs),
}

#[derive(Debug, Args)]
pub struct ModelsVerifyArgs {
    /// Directory holding classifier.json, its .onnx and golden vectors.
    #[arg(long, env = "XDR_MODELS_DIR", default_value = "inference/models", value_name = "DIR")]
    pub dir: PathBuf,
    /// Timed runs per latency measurement (batches of 64 get a quarter of them).
    #[arg(long, default_value_t = 1_000)]
    pub iterations: usize,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Batch append to the event log vs raw COPY into a plain table, in a scratch database.
    Append(BenchAppendArgs),
    /// Login throughput and latency, and GraphQL `me` latency with and without a login flood.
    Auth(BenchAuthArgs),
    /// Classifier latency with tract: p50/p99 per single window and per batch of 64.
    Inference(ModelsVerifyArgs),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("mini-xdr").chain(args.iter().copied()))
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn replay_accepts_seq_or_timestamp_and_stream() {
        let cli = parse(&["replay", "--org", "acme", "--until", "42", "--stream", "user-1"]).unwrap();
        let Command::Replay(r) = cli.command else { panic!("not replay") };
        assert_eq!(r.org, "acme");
        assert_eq!(r.until, Some(Until::Seq(42)));
        assert_eq!(r.stream.as_deref(), Some("user-1"));
        let cli = parse(&["replay", "--org", "acme", "--until", "2026-11-26T21:17:25Z"]).unwrap();
        let Command::Replay(r) = cli.command else { panic!("not replay") };
        assert!(matches!(r.until, Some(Until::Time(_))));
    }

    #[test]
    fn replay_rejects_a_malformed_until_and_requires_org() {
        assert!(parse(&["replay", "--org", "acme", "--until", "yesterday"]).is_err());
        assert!(parse(&["replay"]).is_err());
    }

    #[test]
    fn verify_org_is_optional() {
        let Command::Verify(v) = parse(&["verify"]).unwrap().command else { panic!() };
        assert_eq!(v.org, None);
        let Command::Verify(v) = parse(&["verify", "--org", "x"]).unwrap().command else { panic!() };
        assert_eq!(v.org.as_deref(), Some("x"));
    }

    #[test]
    fn every_role_and_tool_subcommand_parses() {
        for args in [
            &["serve"][..],
            &["api"],
            &["ingestor"],
            &["projector"],
            &["detector"],
            &["migrate"],
            &["rebuild", "--projection", "incidents"],
            &["ingest", "--key", "k", "--source", "cowrie", "f.json"],
            &["models", "verify"],
            &["models", "verify", "--dir", "/tmp/m", "--iterations", "10"],
            &["bench", "inference", "--iterations", "10"],
            &["schema"],
            &["bench", "append", "--events", "10"],
            &["bench", "auth", "--logins", "10"],
        ] {
            assert!(parse(args).is_ok(), "{args:?}");
        }
    }
}
