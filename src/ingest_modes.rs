//! Subcommands of the ingest pipeline: the `ingestor` and `relay` roles, `ingest` (push a
//! file through NATS with a progress bar) and `ingest-key create|revoke`.

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use secrecy::ExposeSecret;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use xdr_commands::ingest::publisher::file_digest;
use xdr_commands::ingest::{publish_file, run_ingestor, IngestConfig};
use xdr_commands::ingest_keys::{create_ingest_key, revoke_ingest_key, IngestKeyResolver};
use xdr_commands::relay::run_relay;
use xdr_commands::EventStore;
use xdr_domain::ids::IngestKeyId;
use xdr_domain::telemetry::SourceType;
use xdr_domain::EventMetadata;

use crate::cli::{IngestArgs, IngestKeyCommand};
use crate::config::Settings;

async fn worker_store(settings: &Settings, connections: u32) -> anyhow::Result<EventStore> {
    Ok(EventStore::new(crate::database::worker_pool(settings, connections).await?))
}

/// The NATS identity a role connects as: user `<role>` of `deploy/nats/accounts.conf`, whose
/// subject permissions are that role's and nothing more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NatsRole {
    /// `mini-xdr ingest`: publishes telemetry only.
    Producer,
    Ingestor,
    /// The relay and the anchorer.
    Relay,
    Detector,
    /// The HTTP API: order dispatcher and agent gateway.
    Api,
    Scheduler,
}

impl NatsRole {
    pub(crate) fn user(self) -> &'static str {
        match self {
            NatsRole::Producer => "producer",
            NatsRole::Ingestor => "ingestor",
            NatsRole::Relay => "relay",
            NatsRole::Detector => "detector",
            NatsRole::Api => "api",
            NatsRole::Scheduler => "scheduler",
        }
    }

    /// `XDR_NATS_<ROLE>_PASSWORD`: the same name on the server (accounts.conf) and the client.
    pub(crate) fn password_var(self) -> String {
        format!("XDR_NATS_{}_PASSWORD", self.user().to_ascii_uppercase())
    }
}

/// Connect to NATS as `role`, with the transport security the environment asks for:
/// `XDR_NATS_<ROLE>_PASSWORD` (user `<role>`, inbox prefix `_INBOX.<role>`),
/// `XDR_NATS_CA` (PEM roots; implies TLS), `XDR_NATS_CLIENT_CERT` + `XDR_NATS_CLIENT_KEY`
/// (mutual TLS), `XDR_NATS_CREDS` (a `.creds` file: JWT + NKey). Without a role password
/// the connection is anonymous (the development NATS) or carries what `NATS_URL` or the
/// `.creds` file say.
pub(crate) async fn nats(settings: &Settings, role: NatsRole) -> anyhow::Result<async_nats::Client> {
    nats_options(|k| std::env::var(k).ok().filter(|v| !v.is_empty()), role)
        .await?
        .connect(xdr_commands::cluster::nats_servers(&settings.nats_url))
        .await
        .with_context(|| format!("Failed to connect to NATS at {} as {}", settings.nats_url, role.user()))
        .inspect(xdr_commands::readiness::watch_nats)
}

pub(crate) async fn nats_options(
    env: impl Fn(&str) -> Option<String>,
    role: NatsRole,
) -> anyhow::Result<async_nats::ConnectOptions> {
    let mut options = async_nats::ConnectOptions::new();
    if let Some(password) = env(&role.password_var()) {
        // The role may subscribe to its own inbox only (accounts.conf), so its replies are
        // private to it.
        options = options
            .user_and_password(role.user().to_owned(), password)
            .custom_inbox_prefix(format!("_INBOX.{}", role.user()));
    }
    if let Some(ca) = env("XDR_NATS_CA") {
        anyhow::ensure!(std::path::Path::new(&ca).is_file(), "XDR_NATS_CA: {ca} is not a readable file");
        options = options.add_root_certificates(ca.into()).require_tls(true);
    }
    match (env("XDR_NATS_CLIENT_CERT"), env("XDR_NATS_CLIENT_KEY")) {
        (Some(cert), Some(key)) => options = options.add_client_certificate(cert.into(), key.into()),
        (None, None) => {}
        _ => anyhow::bail!("XDR_NATS_CLIENT_CERT and XDR_NATS_CLIENT_KEY go together"),
    }
    if let Some(creds) = env("XDR_NATS_CREDS") {
        options = options
            .credentials_file(&creds)
            .await
            .with_context(|| format!("XDR_NATS_CREDS: cannot use credentials file {creds}"))?;
    }
    Ok(options)
}

/// Production names, or every subject and stream under `XDR_NATS_PREFIX` (tests, or several
/// deployments sharing one NATS).
pub(crate) fn ingest_config() -> IngestConfig {
    match std::env::var("XDR_NATS_PREFIX") {
        Ok(prefix) if !prefix.is_empty() => IngestConfig::with_prefix(&prefix),
        _ => IngestConfig::default(),
    }
}

/// `mini-xdr ingestor`: one replica of the NATS ingestor, until Ctrl-C / SIGTERM.
pub async fn ingestor(settings: &Settings) -> anyhow::Result<ExitCode> {
    let store = worker_store(settings, 8).await?;
    let resolver = Arc::new(IngestKeyResolver::new(store.pool().clone(), IngestKeyResolver::DEFAULT_TTL));
    let client = nats(settings, NatsRole::Ingestor).await?;
    tracing::info!("ingestor consuming xdr.ingest.>");
    let stats = run_ingestor(ingest_config(), client, store, resolver, crate::modes::shutdown_signal()).await?;
    tracing::info!(
        messages = stats.messages.load(std::sync::atomic::Ordering::Relaxed),
        written = stats.events_written.load(std::sync::atomic::Ordering::Relaxed),
        dead_letters = stats.dead_letters.load(std::sync::atomic::Ordering::Relaxed),
        "ingestor stopped"
    );
    Ok(ExitCode::SUCCESS)
}

/// `mini-xdr relay`: publish committed events to `xdr.events.*` and anchor each org's chain
/// head outside the database, until Ctrl-C / SIGTERM. One replica.
pub async fn relay(settings: &Settings) -> anyhow::Result<ExitCode> {
    let store = worker_store(settings, 4).await?;
    let client = nats(settings, NatsRole::Relay).await?;
    tracing::info!("relay publishing to xdr.events.> and anchoring heads");
    let anchorer = xdr_audit::anchors::run_anchorer(
        client.clone(),
        store.clone(),
        crate::modes::anchor_config(),
        crate::modes::shutdown_signal(),
    );
    let relay = run_relay(ingest_config(), client, store, Duration::from_millis(500), crate::modes::shutdown_signal());
    tokio::try_join!(async { relay.await.map_err(anyhow::Error::from) }, async {
        anchorer.await.map_err(anyhow::Error::from)
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `mini-xdr ingest --key KEY --source TYPE FILE`.
pub async fn ingest(settings: &Settings, args: IngestArgs) -> anyhow::Result<ExitCode> {
    let source = SourceType::parse(&args.source)
        .with_context(|| format!("unknown source {:?}: expected cowrie, sshd, suricata, cef or json", args.source))?;
    let (_, lines) = file_digest(&args.file).with_context(|| format!("Failed to read {}", args.file.display()))?;
    let client = nats(settings, NatsRole::Producer).await?;
    let bar = ProgressBar::new(lines.max(1));
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} records  {per_sec}  ETA {eta}  {msg}")
            .expect("valid template"),
    );
    let started = Instant::now();
    let summary = publish_file(client, &ingest_config(), &args.key, source, &args.file, args.batch as usize, |n| {
        bar.set_position(n)
    })
    .await?;
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "published {} records in {} messages in {secs:.1} s ({:.0} records/s); {} messages were already published (de-duplicated)",
        summary.records,
        summary.messages,
        summary.records as f64 / secs.max(1e-9),
        summary.duplicate_messages
    );
    let dead: u64 = summary.will_dead_letter.values().sum();
    if dead == 0 {
        println!("dead-lettered: none (every record parses)");
    } else {
        println!("dead-lettered: {dead} records will go to xdr.dlq.ingest:");
        for (reason, n) in &summary.will_dead_letter {
            println!("  {n:>8}  {reason}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `mini-xdr ingest-key create|revoke`.
pub async fn ingest_key(settings: &Settings, command: IngestKeyCommand) -> anyhow::Result<ExitCode> {
    // An operator tool: as the schema owner (the key lookup is the API's to write).
    let store = EventStore::new(crate::database::owner_pool(settings, 2).await?);
    let operator = EventMetadata::system("operator");
    match command {
        IngestKeyCommand::Create(args) => {
            let org = xdr_projections::orgs::resolve_org(store.pool(), &args.org).await?;
            let issued = create_ingest_key(&store, org, &args.name, &operator).await?;
            eprintln!("ingest key {} ({}) for org {}; shown once, store it now:", issued.key_id, issued.name, org);
            println!("{}", issued.key.expose_secret());
            Ok(ExitCode::SUCCESS)
        }
        IngestKeyCommand::Revoke(args) => {
            let org = xdr_projections::orgs::resolve_org(store.pool(), &args.org).await?;
            if revoke_ingest_key(&store, org, IngestKeyId(args.id), &operator).await? {
                println!("revoked ingest key {}", args.id);
            } else {
                println!("ingest key {} was already revoked", args.id);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{nats_options, NatsRole};
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    #[tokio::test]
    async fn nats_security_settings_are_checked_before_connecting() {
        let role = NatsRole::Relay;
        assert!(nats_options(env(&[]), role).await.is_ok());
        assert!(nats_options(env(&[("XDR_NATS_RELAY_PASSWORD", "pw")]), role).await.is_ok());
        assert_eq!(NatsRole::Producer.password_var(), "XDR_NATS_PRODUCER_PASSWORD");
        let err = nats_options(env(&[("XDR_NATS_CA", "/nonexistent/ca.pem")]), role).await.unwrap_err();
        assert!(err.to_string().contains("XDR_NATS_CA"), "{err}");
        let err = nats_options(env(&[("XDR_NATS_CLIENT_CERT", "c.pem")]), role).await.unwrap_err();
        assert!(err.to_string().contains("go together"), "{err}");
        let err = nats_options(env(&[("XDR_NATS_CREDS", "/nonexistent/x.creds")]), role).await.unwrap_err();
        assert!(err.to_string().contains("XDR_NATS_CREDS"), "{err}");
    }
}
