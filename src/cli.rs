//! Command-line interface. The doc comments are the `--help` text.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use xdr_audit::replay::{Format, Position};

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
    /// Run every role in one process: migrate, HTTP API, ingestor, relay, projector, detector,
    /// scheduler.
    Serve(ServeArgs),
    /// Run only the HTTP API (GraphQL + REST).
    Api,
    /// Run only the NATS ingestor.
    Ingestor,
    /// Run only the relay that publishes committed events to NATS (xdr.events.*).
    Relay,
    /// Run only the projection runner.
    Projector,
    /// Run only the detection worker (optionally one partition of it, see --partitions); it also
    /// evaluates containment policies.
    Detector(DetectorArgs),
    /// Run only the response scheduler: dispatches approved actions, retries unanswered
    /// orders, lifts expired blocks (every XDR_SCHEDULER_INTERVAL_MS, default 1000), and
    /// records agents' results.
    Scheduler,
    /// Apply database migrations and exit.
    Migrate,
    /// Print an organization's events in order, as JSON lines (the audit trail).
    Replay(ReplayArgs),
    /// Check every hash chain; exit 0 when intact, 1 naming the first broken link otherwise.
    Verify(VerifyArgs),
    /// Break-glass organization management (events carry actor `operator`).
    #[command(subcommand)]
    Org(OrgCommand),
    /// Break-glass user management inside one organization (events carry actor `operator`).
    #[command(subcommand)]
    User(UserCommand),
    /// Audit bundles: export an org's log for auditors, import it elsewhere.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Rebuild read models from the log and print their digest; with --into, build one org's
    /// read models as of a point in time into a separate schema instead.
    Rebuild(RebuildArgs),
    /// Print the digest of the read models (SHA-256 over every row, in a fixed order).
    Digest(DigestArgs),
    /// Events a read model could not apply (quarantined, the rest went on): list them, or
    /// project them again after a fix.
    #[command(subcommand)]
    Quarantine(QuarantineCommand),
    /// Publish a log file through NATS with a progress bar.
    Ingest(IngestArgs),
    /// Print the GraphQL schema (SDL).
    Schema,
    /// Issue and revoke the keys log producers authenticate with.
    #[command(subcommand, name = "ingest-key")]
    IngestKey(IngestKeyCommand),
    /// Inspect the detection models.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Measure performance against a baseline in the same run (see docs/BENCHMARKS.md).
    #[command(subcommand)]
    Bench(xdr_bench::BenchCommand),
    /// Enforcement agent: re-syncs its firewall from the server's active blocks, then carries
    /// out the org's containment orders and reports the results (HTTPS to the server only).
    Agent(xdr_agent::AgentArgs),
    /// Run only the mail sender: delivers the invitations and reset links the log asks for
    /// (SMTP via XDR_SMTP_URL, else .eml files in XDR_MAIL_DIR), retrying with backoff.
    Mailer,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Organization id or slug.
    #[arg(long, value_name = "ORG")]
    pub org: String,
    /// Only events after this org_seq, or recorded at or after this RFC 3339 time.
    #[arg(long, value_name = "RFC3339|SEQ")]
    pub since: Option<Position>,
    /// Last event to include: an org_seq number or an RFC 3339 timestamp.
    #[arg(long, value_name = "RFC3339|SEQ")]
    pub until: Option<Position>,
    /// Only events of this stream (e.g. `user-<uuid>`).
    #[arg(long, value_name = "ID")]
    pub stream: Option<String>,
    /// Only events of this type (e.g. `AccountLocked`).
    #[arg(long = "type", value_name = "EVENT_TYPE")]
    pub event_type: Option<String>,
    /// Only events caused by this user id or actor label (`operator`, `detector`, …).
    #[arg(long, value_name = "USER")]
    pub actor: Option<String>,
    /// Output: `jsonl` for programs, `table` for people.
    #[arg(long, default_value = "jsonl", value_name = "jsonl|table")]
    pub format: Format,
    /// Instead of events, print the state of this aggregate (user-…, session-…, org-…,
    /// incident-…, action-…, containment-…) as of --until, with the history that led there.
    #[arg(long, value_name = "STREAM_ID", conflicts_with_all = ["since", "stream", "event_type", "actor"])]
    pub state: Option<String>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Only this organization (id or slug); all organizations by default.
    #[arg(long, value_name = "ORG")]
    pub org: Option<String>,
    /// Verify an audit bundle offline instead of the database (no DATABASE_URL needed).
    #[arg(long, value_name = "FILE", conflicts_with = "org")]
    pub bundle: Option<PathBuf>,
    /// Also check the log against the newest anchors published to NATS (NATS_URL).
    #[arg(long)]
    pub anchors: bool,
    /// Also check the log against the newest anchors in this append-only anchor file.
    #[arg(long, value_name = "FILE")]
    pub anchor_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Register an organization and its first admin; the admin's password is read from stdin.
    Create(OrgCreateArgs),
    /// List organizations with their slug and log length.
    List,
}

#[derive(Debug, Args)]
pub struct OrgCreateArgs {
    /// Organization name (the slug is derived from it).
    #[arg(long)]
    pub name: String,
    #[arg(long)]
    pub admin_email: String,
    #[arg(long)]
    pub admin_name: String,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Invite a user; prints the one-time invitation token.
    Invite(UserInviteArgs),
    /// Lock a user's account (until a time, or for a year).
    Lock(UserLockArgs),
    /// Unlock a user's account.
    Unlock(UserTargetArgs),
    /// List the organization's users.
    List(UserListArgs),
}

#[derive(Debug, Args)]
pub struct UserInviteArgs {
    /// Organization id or slug.
    #[arg(long)]
    pub org: String,
    #[arg(long)]
    pub email: String,
    #[arg(long)]
    pub name: String,
    /// viewer, analyst, soc_lead or admin.
    #[arg(long, default_value = "analyst")]
    pub role: String,
}

#[derive(Debug, Args)]
pub struct UserTargetArgs {
    /// Organization id or slug.
    #[arg(long)]
    pub org: String,
    /// The user's e-mail address.
    #[arg(long)]
    pub email: String,
}

#[derive(Debug, Args)]
pub struct UserLockArgs {
    #[command(flatten)]
    pub target: UserTargetArgs,
    /// End of the lock (RFC 3339); a year from now by default.
    #[arg(long)]
    pub until: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Args)]
pub struct UserListArgs {
    /// Organization id or slug.
    #[arg(long)]
    pub org: String,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Write a portable, compressed, self-verifying bundle of an org's events.
    Export(AuditExportArgs),
    /// Restore a verified bundle into a database that has no events of that org.
    Import(AuditImportArgs),
    /// Publish every org's current (org_seq, head hash) as an anchor now (NATS, and the
    /// anchor file if XDR_ANCHOR_FILE is set).
    Anchor,
}

#[derive(Debug, Args)]
pub struct AuditExportArgs {
    /// Organization id or slug.
    #[arg(long, value_name = "ORG")]
    pub org: String,
    /// Last event to include: an org_seq number or an RFC 3339 timestamp.
    #[arg(long, value_name = "RFC3339|SEQ")]
    pub until: Option<Position>,
    /// Bundle file to write.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct AuditImportArgs {
    /// Bundle file to restore.
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct RebuildArgs {
    /// Only this projection.
    #[arg(long, value_name = "NAME", conflicts_with = "into")]
    pub projection: Option<String>,
    /// Build the read models into this new PostgreSQL schema instead of the live ones, which
    /// stay untouched (needs --org). Lower-case letters, digits and _.
    #[arg(long, value_name = "SCHEMA", requires = "org")]
    pub into: Option<String>,
    /// With --into: the organization (id or slug) whose read models to build.
    #[arg(long, value_name = "ORG", requires = "into")]
    pub org: Option<String>,
    /// With --into: the last event to include, an org_seq or an RFC 3339 time (the longest
    /// prefix of the log recorded at or before it); the org's newest event by default.
    #[arg(long, value_name = "RFC3339|SEQ", requires = "into")]
    pub until: Option<Position>,
    /// With --into: drop and rebuild the schema if an earlier `rebuild --into` made it
    /// (any other existing, non-empty schema is always refused).
    #[arg(long, requires = "into")]
    pub replace: bool,
}

#[derive(Debug, Args)]
pub struct DigestArgs {
    /// Only this organization (id or slug); every organization by default.
    #[arg(long, value_name = "ORG")]
    pub org: Option<String>,
    /// Digest the read models in this schema (made by `rebuild --into`) instead of the live ones.
    #[arg(long, value_name = "SCHEMA", requires = "org")]
    pub schema: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum QuarantineCommand {
    /// List quarantined events (org, projection, org_seq, event type, error) as a table.
    List(QuarantineListArgs),
    /// Re-project each (org, projection) that has quarantined events: its rows of that org
    /// are cleared and the org's log replayed into it, as `rebuild` would; events that still
    /// fail stay quarantined. Exit 0 when none is left, 1 otherwise.
    Retry(QuarantineRetryArgs),
}

#[derive(Debug, Args)]
pub struct QuarantineListArgs {
    /// Only this organization (id or slug); every organization by default.
    #[arg(long, value_name = "ORG")]
    pub org: Option<String>,
}

#[derive(Debug, Args)]
pub struct QuarantineRetryArgs {
    /// Only this organization (id or slug); every organization by default.
    #[arg(long, value_name = "ORG")]
    pub org: Option<String>,
    /// Only this projection (e.g. `security_events`).
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
    /// Records per NATS message. Re-publishing a file is de-duplicated only with the same value.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch: u32,
}

#[derive(Debug, Subcommand)]
pub enum IngestKeyCommand {
    /// Issue a key for an organization; the key is printed once and never stored.
    Create(IngestKeyCreateArgs),
    /// Revoke a key; producers using it are refused within seconds.
    Revoke(IngestKeyRevokeArgs),
}

#[derive(Debug, Args)]
pub struct IngestKeyCreateArgs {
    /// Organization id or slug.
    #[arg(long, value_name = "ORG")]
    pub org: String,
    /// A name that says which producer holds the key.
    #[arg(long)]
    pub name: String,
}

#[derive(Debug, Args)]
pub struct IngestKeyRevokeArgs {
    /// Organization id or slug.
    #[arg(long, value_name = "ORG")]
    pub org: String,
    /// The key's id (printed by `ingest-key create`).
    #[arg(long, value_name = "KEY_ID")]
    pub id: uuid::Uuid,
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Check every model file is present and loads, and report its inference latency.
    Verify(ModelsVerifyArgs),
    /// Fit the org's baseline of normal source behaviour from its own history (linfa) and
    /// store it as a `BaselineTrained` event in the org's log.
    TrainBaseline(TrainBaselineArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub baseline: BaselineArgs,
}

#[derive(Debug, Args)]
pub struct DetectorArgs {
    /// This replica's partition, 0..PARTITIONS. Also accepts a name ending in `-<n>` (a
    /// StatefulSet pod name such as `mini-xdr-detector-2`), whose number is taken.
    #[arg(long, env = "XDR_DETECTOR_PARTITION", default_value = "0", value_parser = parse_partition_index, value_name = "I")]
    pub partition: u32,
    /// How many detector partitions run. Each (org, source ip) belongs to exactly one of them
    /// (stable hash mod PARTITIONS); each partition has its own durable NATS consumer. Every
    /// replica must be started with the same value; 1 is a single detector doing everything.
    #[arg(long, env = "XDR_DETECTOR_PARTITIONS", default_value_t = 1, value_name = "N")]
    pub partitions: u32,
    #[command(flatten)]
    pub baseline: BaselineArgs,
}

/// `3` or `anything-3` → 3.
fn parse_partition_index(value: &str) -> Result<u32, String> {
    let digits = value.rsplit('-').next().unwrap_or(value);
    digits.parse().map_err(|_| format!("{value:?} is neither a partition number nor a name ending in -<number>"))
}

/// Automatic per-org baseline training by the detector (see docs/DETECTION.md).
#[derive(Debug, Clone, Args)]
pub struct BaselineArgs {
    /// Train per-org baselines automatically (`false`: only `models train-baseline` does).
    #[arg(long = "baseline-auto", env = "XDR_BASELINE_AUTO", default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub auto: bool,
    /// An org qualifies when its security events since its last baseline come from at least
    /// this many distinct source ips (values below 30, the fit's minimum, count as 30).
    #[arg(long = "baseline-min-sources", env = "XDR_BASELINE_MIN_SOURCES", default_value_t = 50, value_name = "N")]
    pub min_sources: usize,
    /// …and number at least this many.
    #[arg(long = "baseline-min-events", env = "XDR_BASELINE_MIN_EVENTS", default_value_t = 1_000, value_name = "N")]
    pub min_events: u64,
    /// Seconds a baseline stays before the org may get the next one.
    #[arg(
        long = "baseline-retrain-secs",
        env = "XDR_BASELINE_RETRAIN_SECS",
        default_value_t = 86_400,
        value_name = "SECS"
    )]
    pub retrain_secs: u64,
    /// Seconds between two looks at the orgs.
    #[arg(long = "baseline-check-secs", env = "XDR_BASELINE_CHECK_SECS", default_value_t = 300, value_name = "SECS")]
    pub check_secs: u64,
    /// Train on (and count) at most the org's newest this many events.
    #[arg(long = "baseline-max-events", env = "XDR_BASELINE_MAX_EVENTS", default_value_t = 500_000, value_name = "N")]
    pub max_events: usize,
}

impl BaselineArgs {
    pub fn auto_train_config(&self) -> xdr_inference::baseline_training::AutoTrainConfig {
        xdr_inference::baseline_training::AutoTrainConfig {
            min_sources: self.min_sources,
            min_events: self.min_events,
            retrain_after: std::time::Duration::from_secs(self.retrain_secs),
            check_every: std::time::Duration::from_secs(self.check_secs.max(1)),
            max_events: self.max_events,
            ..Default::default()
        }
    }
}

#[derive(Debug, Args)]
pub struct TrainBaselineArgs {
    /// Organization id or slug.
    #[arg(long)]
    pub org: String,
    /// Seed for the clustering, so a retrain of the same history gives the same model.
    #[arg(long, default_value_t = 20_261_126)]
    pub seed: u64,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingest_takes_a_batch_size_and_ingest_key_revoke_needs_a_uuid() {
        let Command::Ingest(i) = parse(&["ingest", "--key", "k", "--source", "sshd", "a.log"]).unwrap().command else {
            panic!()
        };
        assert_eq!((i.batch, i.source.as_str()), (500, "sshd"));
        assert!(parse(&["ingest", "--key", "k", "--source", "sshd", "--batch", "0", "a.log"]).is_err());
        assert!(parse(&["ingest-key", "revoke", "--org", "acme", "--id", "not-a-uuid"]).is_err());
        assert!(parse(&["ingest-key", "create", "--org", "acme"]).is_err());
    }

    #[test]
    fn quarantine_lists_and_retries_optionally_by_org_and_projection() {
        let Command::Quarantine(QuarantineCommand::List(l)) = parse(&["quarantine", "list"]).unwrap().command else {
            panic!()
        };
        assert_eq!(l.org, None);
        let Command::Quarantine(QuarantineCommand::Retry(r)) =
            parse(&["quarantine", "retry", "--org", "acme", "--projection", "security_events"]).unwrap().command
        else {
            panic!()
        };
        assert_eq!((r.org.as_deref(), r.projection.as_deref()), (Some("acme"), Some("security_events")));
        assert!(parse(&["quarantine"]).is_err());
        assert!(parse(&["quarantine", "list", "--projection", "x"]).is_err());
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("mini-xdr").chain(args.iter().copied()))
    }

    #[test]
    fn agent_needs_a_server_and_key_unless_cleaning_up() {
        assert!(parse(&["agent", "--backend", "dry-run"]).is_err());
        assert!(parse(&["agent", "--server", "http://x", "--key", "k", "--backend", "pf"]).is_err());
        assert!(parse(&[
            "agent",
            "--server",
            "http://x",
            "--key",
            "k",
            "--backend",
            "dry-run",
            "--poll-wait-ms",
            "30001"
        ])
        .is_err());
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
        assert_eq!(r.until, Some(Position::Seq(42)));
        assert_eq!(r.stream.as_deref(), Some("user-1"));
        let cli = parse(&["replay", "--org", "acme", "--until", "2026-11-26T21:17:25Z"]).unwrap();
        let Command::Replay(r) = cli.command else { panic!("not replay") };
        assert!(matches!(r.until, Some(Position::Time(_))));
    }

    #[test]
    fn replay_takes_type_actor_format_and_state() {
        let cli =
            parse(&["replay", "--org", "a", "--type", "AccountLocked", "--actor", "operator", "--format", "table"])
                .unwrap();
        let Command::Replay(r) = cli.command else { panic!("not replay") };
        assert_eq!(
            (r.event_type.as_deref(), r.actor.as_deref(), r.format),
            (Some("AccountLocked"), Some("operator"), Format::Table)
        );
        let cli = parse(&["replay", "--org", "a", "--until", "7", "--state", "user-x"]).unwrap();
        let Command::Replay(r) = cli.command else { panic!("not replay") };
        assert_eq!(r.state.as_deref(), Some("user-x"));
        assert!(parse(&["replay", "--org", "a", "--format", "xml"]).is_err());
        assert!(parse(&["replay", "--org", "a", "--state", "user-x", "--type", "X"]).is_err());
    }

    #[test]
    fn replay_rejects_a_malformed_until_and_requires_org() {
        assert!(parse(&["replay", "--org", "acme", "--until", "yesterday"]).is_err());
        assert!(parse(&["replay"]).is_err());
    }

    #[test]
    fn the_detector_partition_is_a_number_or_a_pod_name_ending_in_one() {
        let Command::Detector(d) =
            parse(&["detector", "--partition", "xdr-detector-2", "--partitions", "3"]).unwrap().command
        else {
            panic!()
        };
        assert_eq!((d.partition, d.partitions, d.baseline.auto), (2, 3, true));
        let Command::Detector(d) =
            parse(&["detector", "--partition", "1", "--baseline-auto", "false"]).unwrap().command
        else {
            panic!()
        };
        assert_eq!((d.partition, d.partitions, d.baseline.auto), (1, 1, false));
        assert!(parse(&["detector", "--partition", "xdr-detector"]).is_err());
        let config = d.baseline.auto_train_config();
        assert_eq!((config.min_sources, config.min_events, config.retrain_after.as_secs()), (50, 1_000, 86_400));
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
            &["detector", "--partition", "mini-xdr-detector-2", "--partitions", "3", "--baseline-auto", "false"],
            &["serve", "--baseline-min-sources", "40", "--baseline-retrain-secs", "3600"],
            &["migrate"],
            &["rebuild", "--projection", "incidents"],
            &["ingest", "--key", "k", "--source", "cowrie", "f.json"],
            &["relay"],
            &["ingest-key", "create", "--org", "acme", "--name", "honeypot"],
            &["ingest-key", "revoke", "--org", "acme", "--id", "5f0c2b1e-8d0a-4c57-9a0e-2b7f3c1d9e42"],
            &["models", "verify"],
            &["models", "train-baseline", "--org", "acme"],
            &["models", "verify", "--dir", "/tmp/m", "--iterations", "10"],
            &["schema"],
            &["audit", "export", "--org", "a", "--out", "b.gz"],
            &["audit", "import", "b.gz"],
            &["verify", "--bundle", "b.gz"],
            &["verify", "--anchors", "--anchor-file", "a.jsonl"],
            &["audit", "anchor"],
            &["org", "create", "--name", "Acme", "--admin-email", "a@b.c", "--admin-name", "A"],
            &["org", "list"],
            &["user", "invite", "--org", "acme", "--email", "x@y.z", "--name", "X", "--role", "viewer"],
            &["user", "lock", "--org", "acme", "--email", "x@y.z", "--until", "2030-01-01T00:00:00Z"],
            &["user", "unlock", "--org", "acme", "--email", "x@y.z"],
            &["user", "list", "--org", "acme"],
            &["rebuild"],
            &["agent", "--server", "https://x", "--key", "xdra_k", "--backend", "dry-run", "--ca-cert", "ca.pem"],
            &["agent", "--backend", "nftables", "--cleanup"],
            &[
                "agent",
                "--server",
                "http://x",
                "--key",
                "k",
                "--backend",
                "iptables",
                "--netns",
                "n",
                "--poll-wait-ms",
                "0",
            ],
        ] {
            assert!(parse(args).is_ok(), "{args:?}");
        }
    }

    #[test]
    fn mailer_is_a_role_of_its_own() {
        assert!(matches!(parse(&["mailer"]).unwrap().command, Command::Mailer));
        assert!(parse(&["mailer", "--extra"]).is_err());
    }
}
