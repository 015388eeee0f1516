//! One function per subcommand; each returns the process exit code.

use anyhow::Context;
use std::io::Write;
use std::process::ExitCode;
use xdr_commands::db;
use xdr_inference::baseline_training::BaselineTrainer;

use crate::cli::{
    AuditCommand, Cli, Command, DigestArgs, ModelsCommand, ModelsVerifyArgs, QuarantineCommand, QuarantineListArgs,
    QuarantineRetryArgs, RebuildArgs, ReplayArgs, VerifyArgs,
};
use crate::config::Settings;

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let settings = Settings::from_env(cli.config.as_deref())?;
    match cli.command {
        Command::Migrate => migrate(&settings).await,
        Command::Schema => {
            print!("{}", xdr_graphql::schema::sdl());
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify(args) => verify(&settings, args).await,
        Command::Audit(AuditCommand::Export(args)) => audit_export(&settings, args).await,
        Command::Audit(AuditCommand::Import(args)) => audit_import(&settings, args).await,
        Command::Audit(AuditCommand::Anchor) => audit_anchor(&settings).await,
        Command::Org(command) => crate::operator::org(&settings, command).await,
        Command::User(command) => crate::operator::user(&settings, command).await,
        Command::Replay(args) => replay(&settings, args).await,
        Command::Projector => with_health(&settings, projector(&settings)).await,
        Command::Rebuild(args) => rebuild(&settings, args).await,
        Command::Digest(args) => digest(&settings, args).await,
        Command::Quarantine(QuarantineCommand::List(args)) => quarantine_list(&settings, args).await,
        Command::Quarantine(QuarantineCommand::Retry(args)) => quarantine_retry(&settings, args).await,
        Command::Serve(args) => serve(&settings, args).await,
        Command::Bench(command) => xdr_bench::run(command, bench_env(&settings)).await,
        Command::Agent(args) => xdr_agent::run(args).await,
        Command::Api => api(&settings).await,
        Command::Ingestor => with_health(&settings, crate::ingest_modes::ingestor(&settings)).await,
        Command::Relay => with_health(&settings, crate::ingest_modes::relay(&settings)).await,
        Command::Ingest(args) => crate::ingest_modes::ingest(&settings, args).await,
        Command::IngestKey(command) => crate::ingest_modes::ingest_key(&settings, command).await,
        Command::Detector(args) => with_health(&settings, detector(&settings, args)).await,
        Command::Scheduler => with_health(&settings, crate::response_modes::scheduler(&settings)).await,
        Command::Models(ModelsCommand::Verify(args)) => models_verify(args).await,
        Command::Models(ModelsCommand::TrainBaseline(args)) => train_baseline(&settings, args).await,
        Command::Mailer => with_health(&settings, crate::mail_modes::mailer(&settings)).await,
    }
}

/// Run a role that serves no API beside a probe-only server on `XDR_BIND`, so Kubernetes can
/// check every role the same way.
async fn with_health(
    settings: &Settings,
    role: impl std::future::Future<Output = anyhow::Result<ExitCode>>,
) -> anyhow::Result<ExitCode> {
    let pool = crate::database::worker_pool(settings, 2).await?;
    let (port, server) = xdr_graphql::health_server(&settings.bind, pool)
        .with_context(|| format!("Failed to bind the health server to {}", settings.bind))?;
    tracing::info!(port, "health probes on /healthz and /readyz");
    tokio::select! {
        r = role => r,
        r = server => { r.context("health server stopped")?; Ok(ExitCode::SUCCESS) }
    }
}

/// Everything in one process: migrations, then every role that has landed as a task;
/// whichever stops first stops the process.
async fn serve(settings: &Settings, args: crate::cli::ServeArgs) -> anyhow::Result<ExitCode> {
    use std::sync::Arc;
    use xdr_commands::ingest_keys::IngestKeyResolver;
    crate::database::migrate_if_owner(settings).await?;
    // One process, two logins: the API's (one org per transaction) and the workers'.
    let api_pool = crate::database::api_pool(settings, 20).await?;
    let pool = crate::database::worker_pool(settings, 30).await?;
    // One connection per role, each with its own identity when the role passwords are set
    // (deploy/nats/accounts.conf): one process, but every role keeps its own permissions.
    use crate::ingest_modes::{nats, NatsRole};
    let ingestor_nats = nats(settings, NatsRole::Ingestor).await?;
    let relay_nats = nats(settings, NatsRole::Relay).await?;
    let detector_nats = nats(settings, NatsRole::Detector).await?;
    let scheduler_nats = nats(settings, NatsRole::Scheduler).await?;
    let api_nats = nats(settings, NatsRole::Api).await?;
    let store = xdr_commands::EventStore::new(pool.clone());
    let dispatcher = dispatcher(Some(api_nats)).await;
    let app = build_api(settings, api_pool, dispatcher)?;
    tracing::info!(bind = %settings.bind, port = app.port(), "serve: HTTP API, ingestor, relay, projector, detector, scheduler, anchorer");
    let resolver = Arc::new(IngestKeyResolver::new(pool.clone(), IngestKeyResolver::DEFAULT_TTL));
    let config = crate::ingest_modes::ingest_config();
    let ingestor = tokio::spawn(xdr_commands::ingest::run_ingestor(
        config.clone(),
        ingestor_nats,
        store.clone(),
        resolver,
        shutdown_signal(),
    ));
    let relay = tokio::spawn(xdr_commands::relay::run_relay(
        config,
        relay_nats.clone(),
        store,
        std::time::Duration::from_millis(500),
        shutdown_signal(),
    ));
    if args.baseline.auto {
        let trainer = BaselineTrainer::new(args.baseline.auto_train_config(), Default::default());
        tokio::spawn(trainer.run(xdr_commands::EventStore::new(pool.clone()), shutdown_signal()));
    }
    let response = tokio::spawn(crate::response_modes::run_response_roles(
        xdr_commands::EventStore::new(pool.clone()),
        async_nats::jetstream::new(scheduler_nats),
        shutdown_signal(),
    ));
    let detector = tokio::spawn(xdr_inference::run_detector(
        detector_config()?,
        xdr_commands::EventStore::new(pool.clone()),
        async_nats::jetstream::new(detector_nats),
        xdr_inference::scoring::detector_with_models(&models_dir(), detector_settings(settings)),
        shutdown_signal(),
    ));
    let anchorer = tokio::spawn(xdr_audit::anchors::run_anchorer(
        relay_nats,
        xdr_commands::EventStore::new(pool.clone()),
        anchor_config(),
        shutdown_signal(),
    ));
    let mailer = tokio::spawn(crate::mail_modes::run_mailer(settings, pool.clone())?);
    let projector = tokio::spawn(xdr_projections::run_projector(pool, shutdown_signal()));
    tokio::select! {
        r = app.run_until_stopped() => r.context("HTTP server stopped")?,
        r = projector => r.context("projector stopped")?,
        r = ingestor => { r.context("ingestor panicked")?.context("ingestor stopped")?; }
        r = relay => r.context("relay panicked")?.context("relay stopped")?,
        r = anchorer => r.context("anchorer panicked")?.context("anchorer stopped")?,
        r = detector => { r.context("detector panicked")?.context("detector stopped")?; }
        r = response => r.context("scheduler panicked")?.context("scheduler stopped")?,
        r = mailer => r.context("mailer panicked")?.context("mailer stopped")?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The HTTP API: REST compatibility routes, GraphQL, health, metrics.
async fn api(settings: &Settings) -> anyhow::Result<ExitCode> {
    let pool = crate::database::api_pool(settings, 20).await?;
    // The API runs without NATS too (actions then wait for the scheduler), so a connection
    // failure is logged, not fatal.
    let nats = match crate::ingest_modes::nats(settings, crate::ingest_modes::NatsRole::Api).await {
        Ok(client) => Some(client),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "NATS unreachable: containment actions will not be sent at once");
            None
        }
    };
    let app = build_api(settings, pool, dispatcher(nats).await)?;
    tracing::info!(bind = %settings.bind, port = app.port(), probe_port = ?app.probe_port(), "HTTP API listening");
    app.run_until_stopped().await?;
    Ok(ExitCode::SUCCESS)
}

/// The order dispatcher the API sends requested and approved actions with. `None` (logged
/// loudly) when NATS is unreachable or its streams cannot be set up: the API still serves,
/// and approved actions are sent by the scheduler's sweep instead of at once.
async fn dispatcher(nats: Option<async_nats::Client>) -> Option<xdr_commands::response::Dispatcher> {
    let nats = nats?;
    let config = match crate::response_modes::response_config() {
        Ok(config) => config,
        Err(e) => {
            tracing::error!(error = %e, "invalid response settings: actions will wait for the scheduler");
            return None;
        }
    };
    match xdr_commands::response::Dispatcher::new(async_nats::jetstream::new(nats), config).await {
        Ok(d) => {
            tracing::info!(stream = %d.config().actions_stream, "containment orders are sent at once");
            Some(d)
        }
        Err(e) => {
            tracing::error!(error = %e, "containment order streams unavailable: actions will wait for the scheduler");
            None
        }
    }
}

fn build_api(
    settings: &Settings,
    pool: sqlx::PgPool,
    dispatcher: Option<xdr_commands::response::Dispatcher>,
) -> anyhow::Result<xdr_graphql::Application> {
    use xdr_commands::auth::{Clock, IdentityService, PasswordHasher, TokenService};
    let identity = IdentityService::new(
        xdr_commands::EventStore::new(pool.clone()),
        PasswordHasher::owasp()?,
        TokenService::new(settings.jwt_secret_key()?).with_access_ttl(settings.access_token_ttl),
        Clock::system(),
    )
    .with_lockout_policy(settings.lockout);
    let identity = match &settings.encryption_key {
        Some(key) => identity
            .with_secret_sealer(xdr_commands::auth::totp::SecretSealer::new(key, &settings.encryption_key_previous)),
        None => identity,
    };
    let config = xdr_graphql::ServerConfig {
        bind: settings.bind.clone(),
        login_rate_per_minute: settings.login_rate_per_minute,
        register_rate_per_minute: settings.register_rate_per_minute,
        refresh_rate_per_minute: settings.refresh_rate_per_minute,
        rate_limit_max_clients: settings.rate_limit_max_clients,
        password_reset_rate_per_minute: settings.password_reset_rate_per_minute,
        trust_forwarded_for: xdr_graphql::ForwardedFor::from_hops(settings.trusted_proxy_hops),
        body_limits: settings.body_limits,
        cors_allowed_origins: settings.cors_allowed_origins.clone(),
        probe_bind: settings.probe_bind.clone(),
        read_your_writes: Some(std::time::Duration::from_secs(5)),
        tls: settings.tls.clone(),
        introspection: settings.graphql_introspection,
        dashboard_dir: Some(settings.dashboard_dir.clone()),
        dispatcher,
        graphql: settings.graphql_limits.clone(),
        ..Default::default()
    };
    xdr_graphql::Application::build(config, identity, pool)
        .with_context(|| format!("Failed to bind the HTTP server to {}", settings.bind))
}

async fn migrate(settings: &Settings) -> anyhow::Result<ExitCode> {
    db::migrate(&crate::database::owner_options(settings)?).await?;
    eprintln!("migrations applied");
    Ok(ExitCode::SUCCESS)
}

async fn verify(settings: &Settings, args: VerifyArgs) -> anyhow::Result<ExitCode> {
    if let Some(path) = &args.bundle {
        return verify_bundle(path);
    }
    let options = crate::database::owner_options(settings)?;
    // The auditor's tool reads as the connecting role: it must work on a database whose
    // application role was tampered with too.
    let pool = db::owner_pool(&options, 2).await?;
    let org = match &args.org {
        Some(org) => Some(xdr_projections::orgs::resolve_org(&pool, org).await?),
        None => None,
    };
    let mut report = xdr_audit::verify::verify(&pool, org).await.context("Failed to read the event log")?;
    let mut anchors = Vec::new();
    if args.anchors {
        // Anchors are the relay's: its identity may read them back.
        let nats = crate::ingest_modes::nats(settings, crate::ingest_modes::NatsRole::Relay).await?;
        let orgs: Vec<uuid::Uuid> = match org {
            Some(o) => vec![o.0],
            None => sqlx::query_scalar("SELECT org_id FROM org_heads").fetch_all(&pool).await?,
        };
        let js = async_nats::jetstream::new(nats);
        anchors.extend(xdr_audit::anchors::newest_from_nats(&js, &anchor_config(), &orgs).await?);
    }
    if let Some(file) = &args.anchor_file {
        anchors.extend(xdr_audit::anchors::newest_from_file(file)?);
    }
    let anchors = xdr_audit::report::distinct_anchors(anchors, org);
    let contradicted = xdr_audit::verify::check_anchors(&pool, &anchors).await?;
    report.broken.extend(contradicted);
    if args.anchors || args.anchor_file.is_some() {
        eprintln!("checked {} anchors", anchors.len());
    }
    let intact = xdr_audit::report::write_verify(&report, &mut std::io::stdout().lock())?;
    Ok(if intact { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

async fn replay(settings: &Settings, args: ReplayArgs) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal;
    use xdr_audit::replay::{self as r, ReplayError, ReplayFilter};
    let options = crate::database::owner_options(settings)?;
    let pool = db::owner_pool(&options, 2).await?;
    let org = xdr_projections::orgs::resolve_org(&pool, &args.org).await?;
    if let Some(stream) = &args.state {
        let state = r::state_at(&pool, org, stream, args.until).await?;
        println!("{}", serde_json::to_string_pretty(&state)?);
        return Ok(ExitCode::SUCCESS);
    }
    let filter = ReplayFilter {
        since: args.since,
        until: args.until,
        stream: args.stream,
        event_type: args.event_type,
        actor: args.actor,
    };
    let stdout = std::io::stdout();
    // A bar on stderr when the events go to a file or a pipe, not over them on a terminal;
    // and only when someone watches stderr (the count it needs is a scan of its own).
    let bar = if stdout.is_terminal() || !std::io::stderr().is_terminal() {
        indicatif::ProgressBar::hidden()
    } else {
        let bar = indicatif::ProgressBar::new(r::count(&pool, org, &filter).await?);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} events {per_sec} eta {eta}")
                .expect("valid template"),
        );
        bar
    };
    let mut out = std::io::BufWriter::new(stdout.lock());
    let tick = |n: u64| {
        if n.is_multiple_of(1024) {
            bar.set_position(n)
        }
    };
    match r::replay(&pool, org, &filter, args.format, &mut out, &tick).await {
        Ok(n) => {
            out.flush().ok();
            bar.finish_and_clear();
            eprintln!("{n} events");
            Ok(ExitCode::SUCCESS)
        }
        // `mini-xdr replay … | head` is normal use, not an error.
        Err(ReplayError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e.into()),
    }
}

/// The projection runner alone, as the workers' login, until Ctrl-C / SIGTERM.
async fn projector(settings: &Settings) -> anyhow::Result<ExitCode> {
    let pool = crate::database::worker_pool(settings, 6).await?;
    xdr_projections::run_projector(pool, shutdown_signal()).await;
    Ok(ExitCode::SUCCESS)
}

pub use xdr_commands::shutdown_signal;

/// What `mini-xdr bench` takes from the settings.
fn bench_env(settings: &Settings) -> xdr_bench::Env {
    let api = settings.clone();
    xdr_bench::Env {
        owner_database_url: settings.migrate_database_url().ok().map(str::to_owned),
        nats_url: settings.nats_url.clone(),
        nats_api: Box::new(move || {
            let settings = api.clone();
            Box::pin(async move { crate::ingest_modes::nats(&settings, crate::ingest_modes::NatsRole::Api).await })
        }),
        models_dir: models_dir(),
    }
}

/// Clear and replay read models with a progress bar on stderr; the digest on stdout.
async fn rebuild(settings: &Settings, args: RebuildArgs) -> anyhow::Result<ExitCode> {
    let options = crate::database::owner_options(settings)?;
    if let (Some(schema), Some(org)) = (&args.into, &args.org) {
        return rebuild_into(&options, org, args.until, schema, args.replace).await;
    }
    // Rebuild TRUNCATEs read models, which the app role may not do: run as the owner.
    let pool = db::owner_pool(&options, 4).await?;
    xdr_projections::rebuild::select(args.projection.as_deref())?;
    let total = xdr_projections::rebuild::log_length(&pool).await.context("Failed to read the log heads")?;
    let bar = progress_bar(total, "rebuild");
    let report = xdr_projections::rebuild(&pool, args.projection.as_deref(), |n| bar.inc(n)).await?;
    bar.finish_and_clear();
    eprintln!(
        "rebuilt {} from {} events in {:.2?} ({:.0} events/s)",
        report.projections.join(", "),
        report.events,
        report.elapsed,
        report.events as f64 / report.elapsed.as_secs_f64().max(1e-9)
    );
    println!("{}", report.digest);
    Ok(ExitCode::SUCCESS)
}

fn progress_bar(total: u64, label: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(Some(total), indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{spinner}} {label} [{{bar:40}}] {{pos}}/{{len}} events ({{per_sec}}, eta {{eta}})"
        ))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}

/// One org's read models as of `--until`, into a schema of their own; the live read models
/// and checkpoints are not touched. Summary on stderr, the schema's digest on stdout.
async fn rebuild_into(
    options: &sqlx::postgres::PgConnectOptions,
    org: &str,
    until: Option<xdr_audit::replay::Position>,
    schema: &str,
    replace: bool,
) -> anyhow::Result<ExitCode> {
    use xdr_audit::point_in_time as pit;
    let pool = db::owner_pool(options, 1).await?;
    let org = xdr_projections::orgs::resolve_org(&pool, org).await?;
    // Resolved once here for the bar's length; rebuild_into resolves it again (same answer:
    // the log below the cut never changes).
    let cut = pit::resolve_cut(&pool, org, until).await?;
    pool.close().await;
    let bar = progress_bar(cut.seq as u64, &format!("rebuild into {schema}"));
    let report = pit::rebuild_into(options, org, until, schema, replace, |n| bar.inc(n)).await?;
    bar.finish_and_clear();
    eprintln!("{}", xdr_audit::report::rebuild_into_summary(&report));
    println!("{}", report.digest);
    Ok(ExitCode::SUCCESS)
}

/// Quarantined events as a table on stdout (a count on stderr).
async fn quarantine_list(settings: &Settings, args: QuarantineListArgs) -> anyhow::Result<ExitCode> {
    let options = crate::database::owner_options(settings)?;
    let pool = db::owner_pool(&options, 1).await?;
    let org = match &args.org {
        Some(org) => Some(xdr_projections::orgs::resolve_org(&pool, org).await?),
        None => None,
    };
    let entries =
        xdr_projections::quarantine::list(&pool, org).await.context("Failed to read the quarantined events")?;
    if !entries.is_empty() {
        println!(
            "{:<36}  {:<16}  {:>10}  {:<24}  {:<27}  error",
            "org", "projection", "org_seq", "event_type", "quarantined_at"
        );
    }
    for e in &entries {
        println!(
            "{:<36}  {:<16}  {:>10}  {:<24}  {:<27}  {}",
            e.org_id,
            e.projection,
            e.org_seq,
            e.event_type,
            e.quarantined_at.format("%Y-%m-%dT%H:%M:%S%.6fZ"),
            e.error.replace('\n', " ")
        );
    }
    eprintln!("{} quarantined event(s)", entries.len());
    Ok(ExitCode::SUCCESS)
}

/// Re-project what is quarantined (as the owner: it deletes read-model rows, like rebuild).
async fn quarantine_retry(settings: &Settings, args: QuarantineRetryArgs) -> anyhow::Result<ExitCode> {
    let options = crate::database::owner_options(settings)?;
    let pool = db::owner_pool(&options, 2).await?;
    let org = match &args.org {
        Some(org) => Some(xdr_projections::orgs::resolve_org(&pool, org).await?),
        None => None,
    };
    let report = xdr_projections::quarantine::retry(&pool, org, args.projection.as_deref()).await?;
    for (org, projection) in &report.reprojected {
        eprintln!("re-projected {projection} of org {}", org.0);
    }
    eprintln!(
        "{} quarantined event(s) before, {} still quarantined; {} events replayed",
        report.before, report.after, report.events
    );
    Ok(if report.after == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// The digest alone: of the live read models, of one org, or of a `rebuild --into` schema.
async fn digest(settings: &Settings, args: DigestArgs) -> anyhow::Result<ExitCode> {
    let options = crate::database::owner_options(settings)?;
    let pool = db::owner_pool(&options, 1).await?;
    let org = match &args.org {
        Some(org) => Some(xdr_projections::orgs::resolve_org(&pool, org).await?),
        None => None,
    };
    if let Some(schema) = &args.schema {
        let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(schema)
            .fetch_one(&pool)
            .await?;
        anyhow::ensure!(exists, "no schema named {schema:?} (make one with `mini-xdr rebuild --into`)");
    }
    let digest = xdr_projections::rebuild::digest_scoped(&pool, args.schema.as_deref(), org)
        .await
        .context("Failed to read the read models")?;
    println!("{digest}");
    Ok(ExitCode::SUCCESS)
}

/// Offline: no database, only the file.
fn verify_bundle(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    let file = std::fs::File::open(path).with_context(|| format!("Failed to open {}", path.display()))?;
    let verdict = xdr_audit::bundle::verify(file, |_| Ok(()));
    let intact = xdr_audit::report::write_bundle_verdict(verdict, &mut std::io::stdout().lock())?;
    Ok(if intact { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

async fn audit_export(settings: &Settings, args: crate::cli::AuditExportArgs) -> anyhow::Result<ExitCode> {
    let options = crate::database::owner_options(settings)?;
    let pool = db::owner_pool(&options, 2).await?;
    let org = xdr_projections::orgs::resolve_org(&pool, &args.org).await?;
    let file = std::fs::File::create(&args.out).with_context(|| format!("Failed to create {}", args.out.display()))?;
    let m = xdr_audit::bundle::export(&pool, org, args.until, std::io::BufWriter::new(file)).await?;
    eprintln!("{}", xdr_audit::report::export_summary(&m, &args.out));
    Ok(ExitCode::SUCCESS)
}

async fn audit_import(settings: &Settings, args: crate::cli::AuditImportArgs) -> anyhow::Result<ExitCode> {
    let options = crate::database::owner_options(settings)?;
    db::migrate(&options).await?;
    let pool = db::owner_pool(&options, 2).await?;
    let file = std::fs::File::open(&args.file).with_context(|| format!("Failed to open {}", args.file.display()))?;
    let m = xdr_audit::bundle::import(&pool, std::io::BufReader::new(file)).await?;
    eprintln!("{}", xdr_audit::report::import_summary(&m));
    Ok(ExitCode::SUCCESS)
}

/// Anchor names follow `XDR_NATS_PREFIX` like the ingest subjects; `XDR_ANCHOR_FILE` adds a file.
pub(crate) fn anchor_config() -> xdr_audit::anchors::AnchorConfig {
    let mut config = match std::env::var("XDR_NATS_PREFIX") {
        Ok(prefix) if !prefix.is_empty() => xdr_audit::anchors::AnchorConfig::with_prefix(&prefix),
        _ => xdr_audit::anchors::AnchorConfig::default(),
    };
    config.file = std::env::var_os("XDR_ANCHOR_FILE").map(std::path::PathBuf::from);
    config
}

async fn audit_anchor(settings: &Settings) -> anyhow::Result<ExitCode> {
    let options = crate::database::owner_options(settings)?;
    let pool = db::owner_pool(&options, 2).await?;
    let nats = crate::ingest_modes::nats(settings, crate::ingest_modes::NatsRole::Relay).await?;
    let mut anchorer =
        xdr_audit::anchors::Anchorer::new(nats, xdr_commands::EventStore::new(pool), anchor_config()).await?;
    for a in anchorer.anchor_due(true).await? {
        println!("{}", serde_json::to_string(&a)?);
    }
    Ok(ExitCode::SUCCESS)
}

/// Where the committed models live: `XDR_MODELS_DIR`, else `inference/models`.
pub(crate) fn models_dir() -> std::path::PathBuf {
    std::env::var_os("XDR_MODELS_DIR").map_or_else(|| "inference/models".into(), std::path::PathBuf::from)
}

/// The detector core's tunables from the settings.
fn detector_settings(settings: &Settings) -> xdr_inference::DetectorSettings {
    xdr_inference::DetectorSettings { max_observations: settings.detector_max_observations, ..Default::default() }
}

/// The detector reads what the relay writes: same prefix, same events stream; and it
/// evaluates containment policies, sending orders on the response subjects.
pub(crate) fn detector_config() -> anyhow::Result<xdr_inference::DetectorConfig> {
    let ingest = crate::ingest_modes::ingest_config();
    Ok(xdr_inference::DetectorConfig {
        subject_prefix: format!("{}xdr.", ingest.subject_prefix),
        stream_name: ingest.events_stream_name,
        response: Some(crate::response_modes::detector_response()?),
        ..Default::default()
    })
}

/// The detection worker: JetStream consumer of committed security events → incidents, and
/// (unless switched off) the periodic per-org baseline trainer of its partition.
async fn detector(settings: &Settings, args: crate::cli::DetectorArgs) -> anyhow::Result<ExitCode> {
    use xdr_inference::run_detector;
    let partition = xdr_inference::Partition::new(args.partition, args.partitions)
        .context("Invalid XDR_DETECTOR_PARTITION / XDR_DETECTOR_PARTITIONS")?;
    let pool = crate::database::worker_pool(settings, 10).await?;
    let client = crate::ingest_modes::nats(settings, crate::ingest_modes::NatsRole::Detector).await?;
    let jetstream = async_nats::jetstream::new(client);
    let shutdown = shutdown_signal();
    let store = xdr_commands::EventStore::new(pool);
    if args.baseline.auto {
        let trainer = BaselineTrainer::new(args.baseline.auto_train_config(), partition);
        tokio::spawn(trainer.run(store.clone(), shutdown_signal()));
    }
    let detector = xdr_inference::scoring::detector_with_models(&models_dir(), detector_settings(settings));
    let config = xdr_inference::DetectorConfig { partition, ..detector_config()? };
    let stats = run_detector(config, store, jetstream, detector, shutdown).await.context("Detector stopped")?;
    tracing::info!(?stats, "detector stopped");
    Ok(ExitCode::SUCCESS)
}
/// Every model file present, hash-checked, loaded, golden vectors reproduced, latency printed.
async fn models_verify(args: ModelsVerifyArgs) -> anyhow::Result<ExitCode> {
    let dir = args.dir.clone();
    // Loading and timing the graph is CPU-bound: keep it off the async workers.
    let report =
        tokio::task::spawn_blocking(move || xdr_inference::model::verify::verify(&args.dir, args.iterations)).await?;
    let report = match report {
        Ok(report) => report,
        Err(e) => {
            println!("FAILED: models in {}: {e}", dir.display());
            return Ok(ExitCode::from(1));
        }
    };
    println!("models in {}:", report.dir.display());
    for (name, bytes) in &report.files {
        println!("  {name:<28} {bytes:>8} bytes");
    }
    println!("ok: {} sha256 {} matches its metadata, graph loads", report.model_file, report.sha256);
    println!(
        "ok: {} golden vectors reproduce {} within {:.1e}",
        report.golden_vectors, report.golden_runtime, report.golden_max_diff
    );
    for l in &report.latencies {
        println!(
            "latency batch {:>3}: p50 {:>8.1} µs  p99 {:>8.1} µs  ({} runs)",
            l.batch,
            l.p50.as_secs_f64() * 1e6,
            l.p99.as_secs_f64() * 1e6,
            l.iterations
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn train_baseline(settings: &Settings, args: crate::cli::TrainBaselineArgs) -> anyhow::Result<ExitCode> {
    let pool = crate::database::worker_pool(settings, 2).await?;
    let org = xdr_projections::orgs::resolve_org(&pool, &args.org).await?;
    let store = xdr_commands::EventStore::new(pool);
    let (_, windows) = xdr_inference::baseline_training::train_baseline(
        &store,
        org,
        args.seed,
        &xdr_domain::EventMetadata::system("operator"),
    )
    .await?;
    println!("baseline of org {org} trained on {windows} source windows; stored as BaselineTrained");
    Ok(ExitCode::SUCCESS)
}
