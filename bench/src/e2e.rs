//! `mini-xdr bench e2e`: the whole pipeline in one process — ingestor, relay, detector,
//! projector and the GraphQL API on a scratch database and a private NATS prefix — under a
//! steady background load, with attack probes whose latency is measured from the moment
//! their records are stored by JetStream to the moment the incident is visible through
//! GraphQL (`incidents(filter: {srcIp})`).
//!
//! Baseline in the same run: the same GraphQL query for an incident that is already
//! visible, i.e. the floor the poller itself adds.

use anyhow::Context;
use async_nats::jetstream::{self, context::Publish};
use serde_json::json;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;
use xdr_commands::ingest::nats_ingestor::{ensure_ingest_streams, HEADER_INGEST_KEY};
use xdr_commands::ingest::IngestConfig;
use xdr_commands::ingest_keys::{create_ingest_key, IngestKeyResolver};
use xdr_commands::EventStore;
use xdr_domain::EventMetadata;

use crate::BenchE2eArgs;
use crate::Env;
use crate::{bench_identity, percentiles};
use xdr_commands::testing::TestDb;

pub async fn e2e(env: &Env, args: BenchE2eArgs) -> anyhow::Result<ExitCode> {
    let scratch = crate::scratch_db(env).await?;
    let client = async_nats::connect(&env.nats_url).await.context("Failed to connect to NATS")?;
    let prefix = format!("bench{}.", Uuid::new_v4().simple());
    let config = IngestConfig::with_prefix(&prefix);
    let result = run(&scratch, env, &client, &config, &args).await;
    let js = jetstream::new(client.clone());
    for stream in [&config.stream_name, &config.dlq_stream_name, &config.events_stream_name] {
        let _ = js.delete_stream(stream).await;
    }
    drop(scratch);
    let report = result?;
    println!(
        "background load: {:.0} events/s offered, {:.0} events/s committed, {} probes ({} seen)",
        args.rate, report.committed_rate, report.probes, report.seen
    );
    println!("publish → incident visible in GraphQL: p50 {:.1} ms  p99 {:.1} ms", report.p50, report.p99);
    println!(
        "GraphQL poll of a visible incident (floor): p50 {:.1} ms  p99 {:.1} ms",
        report.floor_p50, report.floor_p99
    );
    println!("target: p99 <= 250 ms at 10 000 events/s");
    Ok(ExitCode::SUCCESS)
}

struct Report {
    committed_rate: f64,
    probes: usize,
    seen: usize,
    p50: f64,
    p99: f64,
    floor_p50: f64,
    floor_p99: f64,
}

fn now_ts() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// A connect from one of 60 000 background sources: each source connects a few times per
/// run, below every rule's threshold, so the load is all work and no incidents.
fn background(i: u64) -> String {
    let n = i % 60_000;
    json!({
        "eventid": "cowrie.session.connect", "session": format!("{i:012x}"), "protocol": "ssh",
        "src_ip": format!("100.{}.{}.{}", 64 + (n >> 16), (n >> 8) & 255, n & 255), "src_port": 40000 + (i % 20000),
        "dst_ip": "10.0.0.5", "dst_port": 2222, "sensor": "bench", "timestamp": now_ts(),
        "message": "New connection",
    })
    .to_string()
}

/// Six failed logins from `ip`: the SSH brute-force rule fires on the sixth.
fn attack(ip: &str, probe: usize) -> String {
    (0..6)
        .map(|k| {
            json!({
                "eventid": "cowrie.login.failed", "session": format!("p{probe:06}{k}"), "protocol": "ssh",
                "src_ip": ip, "src_port": 50000 + k, "dst_ip": "10.0.0.5", "dst_port": 2222,
                "username": "root", "password": format!("guess{k}"), "sensor": "bench", "timestamp": now_ts(),
                "message": "login attempt failed",
            })
            .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

async fn publish(js: &jetstream::Context, subject: &str, key: &str, body: String) -> anyhow::Result<()> {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(HEADER_INGEST_KEY, key);
    js.send_publish(subject.to_owned(), Publish::build().headers(headers).payload(body.into())).await?.await?;
    Ok(())
}

async fn incident_visible(client: &reqwest::Client, url: &str, token: &str, ip: &str) -> anyhow::Result<bool> {
    let body: serde_json::Value = client
        .post(url)
        .bearer_auth(token)
        .json(&json!({
            "query": "query($ip: String!) { incidents(filter: {srcIp: $ip}, first: 1) { edges { node { id } } } }",
            "variables": { "ip": ip },
        }))
        .send()
        .await?
        .json()
        .await?;
    anyhow::ensure!(body.get("errors").is_none(), "GraphQL error: {body}");
    Ok(body["data"]["incidents"]["edges"].as_array().is_some_and(|e| !e.is_empty()))
}

async fn run(
    scratch: &TestDb,
    env: &Env,
    client: &async_nats::Client,
    config: &IngestConfig,
    args: &BenchE2eArgs,
) -> anyhow::Result<Report> {
    use secrecy::ExposeSecret;
    // The API's and the workers' pools, as `serve` holds them (the runtime logins).
    let api_pool = scratch.api_pool(20).await?;
    let pool = scratch.worker_pool(30).await?;
    let store = EventStore::new(pool.clone());
    let identity = bench_identity(&api_pool)?;
    let reg = identity
        .register("Bench Corp", "bench@bench.test", "SecurePass123!@#".into(), "Bench", &Default::default())
        .await?;
    let org = xdr_domain::ids::OrgId(reg.organization.id);
    let token = reg.tokens.access_token.clone();
    let issued =
        create_ingest_key(&EventStore::new(api_pool.clone()), org, "bench", &EventMetadata::system("operator")).await?;
    let key = issued.key.expose_secret().to_owned();
    let js = jetstream::new(client.clone());
    ensure_ingest_streams(&js, config).await?;
    // The producers have connections of their own, as real ones would (not the pipeline's).
    let producer = jetstream::new(async_nats::connect(&env.nats_url).await.context("Failed to connect to NATS")?);

    // The pipeline, as `serve` runs it.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let shutdown = move || {
        let mut rx = stopped.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let resolver = Arc::new(IngestKeyResolver::new(pool.clone(), IngestKeyResolver::DEFAULT_TTL));
    let mut tasks = Vec::new();
    tasks.push(tokio::spawn({
        let f = xdr_commands::ingest::run_ingestor(config.clone(), client.clone(), store.clone(), resolver, shutdown());
        async move { f.await.map(|_| ()).map_err(anyhow::Error::from) }
    }));
    tasks.push(tokio::spawn({
        let f = xdr_commands::relay::run_relay(
            config.clone(),
            client.clone(),
            store.clone(),
            Duration::from_millis(500),
            shutdown(),
        );
        async move { f.await.map_err(anyhow::Error::from) }
    }));
    let detector_config = xdr_inference::DetectorConfig {
        subject_prefix: format!("{}xdr.", config.subject_prefix),
        stream_name: config.events_stream_name.clone(),
        ..Default::default()
    };
    tasks.push(tokio::spawn({
        let f = xdr_inference::run_detector(
            detector_config,
            store.clone(),
            js.clone(),
            xdr_inference::scoring::detector_with_models(&env.models_dir, Default::default()),
            shutdown(),
        );
        async move { f.await.map(|_| ()).map_err(anyhow::Error::from) }
    }));
    tasks.push(tokio::spawn({
        let f = xdr_projections::run_projector(pool.clone(), shutdown());
        async move {
            f.await;
            Ok(())
        }
    }));
    let app = xdr_graphql::Application::build(
        xdr_graphql::ServerConfig { bind: "127.0.0.1:0".into(), ..Default::default() },
        identity,
        api_pool.clone(),
    )?;
    let url = format!("http://127.0.0.1:{}/graphql", app.port());
    let server = tokio::spawn(app.run_until_stopped());
    let http = reqwest::Client::builder().pool_max_idle_per_host(32).build()?;

    // Background load: one message of `rate / 100` records every 10 ms.
    let subject = config.ingest_subject("cowrie");
    let per_tick = ((args.rate / 100.0).round() as u64).max(1);
    let load = tokio::spawn({
        let (js, subject, key) = (producer.clone(), subject.clone(), key.clone());
        let duration = Duration::from_secs(args.seconds);
        async move {
            let started = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut i = 0u64;
            while started.elapsed() < duration {
                tick.tick().await;
                let body: Vec<String> = (i..i + per_tick).map(background).collect();
                i += per_tick;
                publish(&js, &subject, &key, body.join("\n")).await?;
            }
            anyhow::Ok(())
        }
    });

    // Probes: a fresh attacker every `probe_interval_ms`, each polled until visible.
    tokio::time::sleep(Duration::from_secs(2)).await; // let the pipeline reach steady state
    let mut probes = Vec::new();
    let probe_count = ((args.seconds.saturating_sub(4)) * 1000 / args.probe_interval_ms).max(1) as usize;
    for p in 0..probe_count {
        let ip = format!("198.51.{}.{}", 100 + p / 250, 1 + p % 250);
        publish(&producer, &subject, &key, attack(&ip, p)).await?;
        let published = Instant::now();
        let (http, url, token) = (http.clone(), url.clone(), token.clone());
        probes.push(tokio::spawn(async move {
            let deadline = published + Duration::from_secs(30);
            while Instant::now() < deadline {
                if incident_visible(&http, &url, &token, &ip).await? {
                    return anyhow::Ok(Some(published.elapsed()));
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Ok(None)
        }));
        tokio::time::sleep(Duration::from_millis(args.probe_interval_ms)).await;
    }
    let mut latencies = Vec::new();
    for p in probes {
        if let Some(l) = p.await?? {
            latencies.push(l);
        }
    }
    load.await??;
    let head_before = store.head(org).await?.map_or(0, |h| h.0);

    // The floor: polling an incident that is already visible.
    let first_ip = "198.51.100.1".to_owned();
    let mut floor = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        incident_visible(&http, &url, &token, &first_ip).await?;
        floor.push(t.elapsed());
    }

    let _ = stop.send(true);
    server.abort();
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
    let seen = latencies.len();
    anyhow::ensure!(seen > 0, "no probe's incident became visible within 30 s");
    let (p50, p99) = percentiles(latencies);
    let (floor_p50, floor_p99) = percentiles(floor);
    let committed_rate = head_before as f64 / args.seconds as f64;
    Ok(Report { committed_rate, probes: probe_count, seen, p50, p99, floor_p50, floor_p99 })
}
