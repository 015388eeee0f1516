//! `mini-xdr bench auth`: logins under a flood, and `me` for a long-history user vs a fresh one.

use anyhow::Context;
use serde_json::json;
use std::process::ExitCode;
use std::time::Instant;
use uuid::Uuid;
use xdr_commands::testing::TestDb;
use xdr_commands::EventStore;

use crate::{bench_identity, load, percentiles, BenchAuthArgs, Env};

pub async fn auth(env: &Env, args: BenchAuthArgs) -> anyhow::Result<ExitCode> {
    let scratch = crate::scratch_db(env).await?;
    let result = run_auth(&scratch, &args).await;
    drop(scratch);
    result?;
    Ok(ExitCode::SUCCESS)
}

async fn run_auth(scratch: &TestDb, args: &BenchAuthArgs) -> anyhow::Result<()> {
    let pool = scratch.api_pool(20).await?;
    let identity = bench_identity(&pool)?;
    let config =
        xdr_graphql::ServerConfig { bind: "127.0.0.1:0".into(), login_rate_per_minute: u32::MAX, ..Default::default() };
    let app = xdr_graphql::Application::build(config, identity, pool.clone())?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let server = tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::new();
    let password = "SecurePass123!@#";
    let reg: serde_json::Value = client
        .post(format!("{base}/api/auth/register"))
        .json(&json!({"organization_name": "Bench Corp", "admin_email": "bench@bench.test",
                      "admin_password": password, "admin_name": "Bench"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let token = reg["access_token"].as_str().context("no access token")?.to_owned();

    let me = me_request(&client, &base, &token, "bench-corp");
    let login = {
        let (client, url) = (client.clone(), format!("{base}/api/auth/login"));
        move || {
            let (client, url) = (client.clone(), url.clone());
            async move {
                client
                    .post(url)
                    .json(&json!({"email": "bench@bench.test", "password": password}))
                    .send()
                    .await?
                    .error_for_status()?;
                Ok(())
            }
        }
    };

    load(50, 4, me.clone()).await?; // warm-up
    let (me_p50, me_p99) = percentiles(load(args.me_requests, 8, me.clone()).await?);

    let started = Instant::now();
    let flood = tokio::spawn(load(args.logins, args.concurrency, login.clone()));
    let me_under_flood = load(args.me_requests, 8, me).await?;
    let logins = flood.await??;
    let flood_secs = started.elapsed().as_secs_f64();
    let (login_p50, login_p99) = percentiles(logins);
    let (flood_p50, flood_p99) = percentiles(me_under_flood);
    let history = me_versus_history(&pool, &client, &base, args).await?;
    server.abort();

    println!(
        "argon2id m=19456 KiB t=2 p=1; {} hashing permits",
        std::thread::available_parallelism().map_or(2, |n| n.get()).saturating_sub(1).max(1)
    );
    println!(
        "login: {} at concurrency {}: {:.1}/s  p50 {login_p50:.1} ms  p99 {login_p99:.1} ms",
        args.logins,
        args.concurrency,
        args.logins as f64 / flood_secs
    );
    println!("GraphQL me alone:        p50 {me_p50:.2} ms  p99 {me_p99:.2} ms");
    println!("GraphQL me during flood: p50 {flood_p50:.2} ms  p99 {flood_p99:.2} ms");
    println!("p99 ratio flood/alone:   {:.2}", flood_p99 / me_p99.max(0.001));
    println!("GraphQL me, fresh user:  p50 {:.2} ms  p99 {:.2} ms", history.fresh.0, history.fresh.1);
    println!(
        "GraphQL me, user with {} failed logins: p50 {:.2} ms  p99 {:.2} ms  (first request, folding \
         the whole stream once: {:.1} ms; seeded in {:.1} s)",
        args.history_failures, history.long.0, history.long.1, history.first_ms, history.seed_secs
    );
    println!("p99 ratio long history/fresh: {:.2}", history.long.1 / history.fresh.1.max(0.001));
    Ok(())
}

/// A GraphQL `me` request as `token`, checked to answer for the org `slug`.
fn me_request(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    slug: &'static str,
) -> impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + Send>> + Clone + Send + 'static
{
    let (client, url, token) = (client.clone(), format!("{base}/graphql"), token.to_owned());
    move || {
        let (client, url, token) = (client.clone(), url.clone(), token.clone());
        Box::pin(async move {
            let body: serde_json::Value = client
                .post(url)
                .bearer_auth(token)
                .json(&json!({"query": "{ me { user { id email } organization { slug } } }"}))
                .send()
                .await?
                .json()
                .await?;
            anyhow::ensure!(body["data"]["me"]["organization"]["slug"] == slug, "me failed: {body}");
            Ok(())
        })
    }
}

struct HistoryPhase {
    /// (p50, p99) in ms.
    fresh: (f64, f64),
    long: (f64, f64),
    first_ms: f64,
    seed_secs: f64,
}

/// `me` for a user whose stream holds `history_failures` failed logins (appended with the
/// store's batch append, as a password-guessing flood would have left them) against a fresh
/// user, measured alternately in the same run.
async fn me_versus_history(
    pool: &sqlx::PgPool,
    client: &reqwest::Client,
    base: &str,
    args: &BenchAuthArgs,
) -> anyhow::Result<HistoryPhase> {
    use xdr_domain::identity::{LoginFailed, LoginFailureReason};
    let register = |org: &str, email: &str| {
        client.post(format!("{base}/api/auth/register")).json(&json!({"organization_name": org,
            "admin_email": email, "admin_password": "SecurePass123!@#", "admin_name": "Bench"}))
    };
    let fresh: serde_json::Value =
        register("Fresh Corp", "fresh@bench.test").send().await?.error_for_status()?.json().await?;
    let long: serde_json::Value =
        register("Long Corp", "long@bench.test").send().await?.error_for_status()?.json().await?;
    let token = |v: &serde_json::Value| v["access_token"].as_str().map(str::to_owned).context("no access token");
    let org = xdr_domain::ids::OrgId(long["organization"]["id"].as_str().context("org id")?.parse()?);
    let stream = format!("user-{}", long["user"]["id"].as_str().context("user id")?);

    let store = EventStore::new(pool.clone());
    let started = Instant::now();
    let at = chrono::Utc::now();
    let meta = xdr_domain::EventMetadata { actor: Some("anonymous".into()), ..Default::default() };
    let mut seeded = 0;
    while seeded < args.history_failures {
        let n = (args.history_failures - seeded).min(10_000);
        let batch = (0..n)
            .map(|_| {
                let failed = xdr_domain::Event::LoginFailed(LoginFailed {
                    at,
                    reason: LoginFailureReason::BadPassword,
                    consecutive_failures: 1,
                    locked_until: None,
                    device_hash: None,
                    device_failures: None,
                });
                xdr_commands::NewEvent::from_event(Uuid::now_v7(), stream.as_str(), &failed, &meta)
            })
            .collect();
        store.append_batch(org, batch).await?;
        seeded += n;
    }
    let seed_secs = started.elapsed().as_secs_f64();

    let me_fresh = me_request(client, base, &token(&fresh)?, "fresh-corp");
    let me_long = me_request(client, base, &token(&long)?, "long-corp");
    let first = Instant::now();
    me_long().await?;
    let first_ms = first.elapsed().as_secs_f64() * 1000.0;
    load(50, 4, me_fresh.clone()).await?;
    load(50, 4, me_long.clone()).await?;
    // Alternate rounds so drift in the machine's load falls on both sides alike.
    let (mut fresh_samples, mut long_samples) = (Vec::new(), Vec::new());
    let round = (args.me_requests / 4).max(1);
    for _ in 0..4 {
        fresh_samples.extend(load(round, 8, me_fresh.clone()).await?);
        long_samples.extend(load(round, 8, me_long.clone()).await?);
    }
    Ok(HistoryPhase { fresh: percentiles(fresh_samples), long: percentiles(long_samples), first_ms, seed_secs })
}
