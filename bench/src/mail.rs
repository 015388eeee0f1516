//! `mini-xdr bench mail`: `forgot-password` until the SMTP server accepted the mail (p50/p99),
//! next to the bare SMTP round trip of the same kind of message, in a scratch database, with
//! the real mailer and a real SMTP server (the test sink) in process.

use anyhow::Context;
use secrecy::SecretString;
use serde_json::json;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use xdr_commands::auth::{Clock, IdentityService, LinkTokens, PasswordHasher, TokenService};
use xdr_commands::mail::compose::MailIdentity;
use xdr_commands::mail::{MailConfig, MailTransport, Mailer, TransportConfig};
use xdr_commands::testing::TestDb;
use xdr_commands::testing_smtp::{SinkMode, SmtpSink};
use xdr_commands::EventStore;

use crate::{percentiles, BenchMailArgs, Env};

pub async fn mail(env: &Env, args: BenchMailArgs) -> anyhow::Result<ExitCode> {
    let scratch = crate::scratch_db(env).await?;
    let result = run_mail(&scratch, &args).await;
    drop(scratch);
    result?;
    Ok(ExitCode::SUCCESS)
}

async fn run_mail(scratch: &TestDb, args: &BenchMailArgs) -> anyhow::Result<()> {
    let secret = SecretString::from(uuid::Uuid::new_v4().simple().to_string().repeat(2));
    let pool = scratch.api_pool(20).await?;
    let identity = IdentityService::new(
        EventStore::new(pool.clone()),
        PasswordHasher::owasp()?,
        TokenService::new(&secret),
        Clock::system(),
    );
    let config = xdr_graphql::ServerConfig {
        bind: "127.0.0.1:0".into(),
        register_rate_per_minute: u32::MAX,
        password_reset_rate_per_minute: u32::MAX,
        ..Default::default()
    };
    let app = xdr_graphql::Application::build(config, identity, pool)?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let server = tokio::spawn(app.run_until_stopped());
    let sink = SmtpSink::start(SinkMode::Accept).await;
    let mail_config = MailConfig {
        transport: TransportConfig::Smtp(sink.url().into()),
        identity: MailIdentity { from: "XDR <xdr@bench.test>".parse()?, public_url: "https://xdr.bench.test".into() },
        retry: Default::default(),
        poll_interval: Duration::from_millis(500),
    };
    let transport = MailTransport::new(&mail_config.transport)?;
    let mailer = Mailer::new(
        EventStore::new(scratch.worker_pool(4).await?),
        mail_config,
        LinkTokens::new(&secret),
        Clock::system(),
    )?;
    let mailer = tokio::spawn(xdr_commands::mail::run_mailer(mailer, std::future::pending()));

    let client = reqwest::Client::new();
    client
        .post(format!("{base}/api/auth/register"))
        .json(&json!({"organization_name": "Mail Bench", "admin_email": "bench@mail.test",
                      "admin_password": "SecurePass123!@#", "admin_name": "Bench"}))
        .send()
        .await?
        .error_for_status()?;

    let mut to_accepted = Vec::new();
    for i in 0..args.requests {
        let started = Instant::now();
        client
            .post(format!("{base}/api/auth/forgot-password"))
            .json(&json!({"email": "bench@mail.test"}))
            .send()
            .await?
            .error_for_status()?;
        let got = sink.wait_for(i + 1, Duration::from_secs(30)).await;
        anyhow::ensure!(got.len() > i, "mail {} did not arrive within 30 s", i + 1);
        to_accepted.push(started.elapsed());
    }

    let mut bare = Vec::new();
    for i in 0..args.requests {
        let message = lettre::Message::builder()
            .from("XDR <xdr@bench.test>".parse()?)
            .to("Bench <bench@mail.test>".parse()?)
            .subject("Reset your Mini-XDR password")
            .message_id(Some(format!("<bare-{i}@bench.test>")))
            .body(String::from("Choose a new password: https://xdr.bench.test/reset-password?token=x\n"))
            .context("bare message")?;
        let started = Instant::now();
        transport.send(message, "bare").await.map_err(|e| anyhow::anyhow!("{e}"))?;
        bare.push(started.elapsed());
    }
    mailer.abort();
    server.abort();
    // Inside the answer's floor: from the request's commit to the recorded acceptance, as the
    // log itself timestamps them.
    let mut owner = scratch.owner_conn().await;
    let mut requested = std::collections::HashMap::new();
    let mut in_log: Vec<f64> = Vec::new();
    for org in xdr_commands::store::orgs_with_log(&scratch.pool).await? {
        let org = xdr_domain::ids::OrgId(org);
        let types = Some(vec!["PasswordResetRequested", "EmailSent"]);
        for e in xdr_commands::store::read_range_of_types(&mut owner, org, 0, i64::MAX, types).await? {
            if e.event_type == "PasswordResetRequested" {
                requested.insert(e.event_id.to_string(), e.recorded_at);
            } else if let Some(at) = e.payload["source_event_id"].as_str().and_then(|id| requested.get(id)) {
                in_log.push((e.recorded_at - *at).num_microseconds().unwrap_or(0) as f64 / 1000.0);
            }
        }
    }
    anyhow::ensure!(in_log.len() == args.requests, "{} of {} mails recorded as sent", in_log.len(), args.requests);
    let after_commit = in_log.iter().map(|ms| Duration::from_secs_f64(ms / 1000.0)).collect();

    let floor = xdr_commands::auth::password_reset::FORGOT_PASSWORD_FLOOR.as_millis();
    let (total_p50, total_p99) = percentiles(to_accepted);
    let (outbox_p50, outbox_p99) = percentiles(after_commit);
    let (bare_p50, bare_p99) = percentiles(bare);
    println!("{} reset requests, one after another; SMTP server in process (real TCP)", args.requests);
    println!(
        "forgot-password → mail accepted: p50 {total_p50:.1} ms  p99 {total_p99:.1} ms  (answer floor {floor} ms)"
    );
    println!("commit → EmailSent (from the log): p50 {outbox_p50:.1} ms  p99 {outbox_p99:.1} ms");
    println!("bare SMTP round trip:            p50 {bare_p50:.1} ms  p99 {bare_p99:.1} ms");
    println!("p50 ratio outbox/bare SMTP:      {:.2}", outbox_p50 / bare_p50.max(0.001));
    println!("p99 ratio outbox/bare SMTP:      {:.2}", outbox_p99 / bare_p99.max(0.001));
    Ok(())
}
