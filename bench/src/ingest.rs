//! `mini-xdr bench ingest`: a backlog of Cowrie records in NATS drained by the ingestor into
//! the event log, against raw COPY of the same normalized rows in the same run, with the
//! ingestor's peak RSS. Numbers go to docs/BENCHMARKS.md.

use anyhow::Context;
use async_nats::jetstream::{self, context::Publish};
use serde_json::Value;
use sqlx::{Connection, Executor, PgConnection};
use std::collections::VecDeque;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;
use xdr_commands::ingest::commit::MAX_APPEND_BATCH;
use xdr_commands::ingest::nats_ingestor::{ensure_ingest_streams, HEADER_INGEST_KEY};
use xdr_commands::ingest::prepare::prepare_records;
use xdr_commands::ingest::{run_ingestor, IngestConfig};
use xdr_commands::ingest_keys::{create_ingest_key, IngestKeyResolver};
use xdr_commands::EventStore;
use xdr_domain::telemetry::parsers::SshdPidTracker;
use xdr_domain::telemetry::SourceType;
use xdr_domain::EventMetadata;

use crate::BenchIngestArgs;
use crate::Env;
use xdr_commands::testing::TestDb;

/// The real Cowrie capture: its record shapes are replayed with varied ips and times.
const COWRIE: &str = include_str!("../../domain/tests/fixtures/cowrie.json");

/// Record `i` of the synthetic backlog: shape `i mod 234` of the real file, its own source
/// address, session and timestamp.
fn record(templates: &[Value], i: usize) -> String {
    let mut v = templates[i % templates.len()].clone();
    if let Some(obj) = v.as_object_mut() {
        let ip = format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        obj.insert("src_ip".into(), Value::String(ip));
        obj.insert("session".into(), Value::String(format!("{:012x}", i / 5)));
        let at = chrono::DateTime::from_timestamp(1_764_190_800, 0).unwrap_or_default()
            + chrono::Duration::microseconds(i as i64 * 1_000);
        obj.insert("timestamp".into(), Value::String(at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()));
    }
    v.to_string()
}

/// Peak resident set of this process since the last reset, in MiB (Linux).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Start measuring the peak afresh (writing 5 to clear_refs resets VmHWM to the current RSS,
/// which is returned so the report can show the baseline).
fn reset_peak_rss() -> Option<f64> {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    peak_rss_mib()
}

pub async fn ingest(env: &Env, args: BenchIngestArgs) -> anyhow::Result<ExitCode> {
    let scratch = crate::scratch_db(env).await?;
    let config = IngestConfig::with_prefix(&format!("bench{}.", Uuid::new_v4().simple()));
    let client = async_nats::connect(&env.nats_url).await.context("Failed to connect to NATS")?;
    let result = run(&scratch, &client, &config, &args).await;
    let js = jetstream::new(client);
    for name in [&config.stream_name, &config.dlq_stream_name, &config.events_stream_name] {
        let _ = js.delete_stream(name).await;
    }
    drop(scratch);
    let r = result?;
    println!("records: {}  records/message: {}", args.records, args.batch);
    println!("publish to NATS:      {:>10.0} records/s (backlog built before the ingestor starts)", r.publish_rate);
    println!(
        "ingestor → event log: {:>10.0} events/s  (peak RSS while draining: {:.0} MiB; {:.0} MiB before)",
        r.ingest_rate, r.peak_rss, r.rss_before
    );
    println!("raw COPY, same rows:  {:>10.0} rows/s", r.copy_rate);
    println!("ratio:                {:>10.2} (target >= 0.60; RSS target < 300 MiB)", r.ingest_rate / r.copy_rate);
    Ok(ExitCode::SUCCESS)
}

struct Rates {
    publish_rate: f64,
    ingest_rate: f64,
    copy_rate: f64,
    peak_rss: f64,
    rss_before: f64,
}

async fn run(
    scratch: &TestDb,
    client: &async_nats::Client,
    config: &IngestConfig,
    args: &BenchIngestArgs,
) -> anyhow::Result<Rates> {
    use secrecy::ExposeSecret;
    let batch = args.batch as usize;
    let templates: Vec<Value> = COWRIE.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let pool = scratch.worker_pool(8).await?;
    let store = EventStore::new(pool.clone());
    let org = xdr_domain::ids::OrgId(Uuid::new_v4());
    // Keys are made by the API (the workers may only read them), as in production.
    let issued =
        create_ingest_key(&EventStore::new(scratch.api.clone()), org, "bench", &EventMetadata::system("operator"))
            .await?;
    let key = issued.key.expose_secret().to_owned();

    // 1. The backlog.
    let js = jetstream::new(client.clone());
    ensure_ingest_streams(&js, config).await?;
    let subject = config.ingest_subject("cowrie");
    let started = Instant::now();
    let mut in_flight = VecDeque::new();
    for (m, first) in (0..args.records).step_by(batch).enumerate() {
        let body: Vec<String> = (first..(first + batch).min(args.records)).map(|i| record(&templates, i)).collect();
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(HEADER_INGEST_KEY, key.as_str());
        let publish =
            Publish::build().headers(headers).payload(body.join("\n").into()).message_id(format!("bench/{m}"));
        in_flight.push_back(js.send_publish(subject.clone(), publish).await?);
        if in_flight.len() >= 64 {
            if let Some(ack) = in_flight.pop_front() {
                ack.await?;
            }
        }
    }
    while let Some(ack) = in_flight.pop_front() {
        ack.await?;
    }
    let publish_rate = args.records as f64 / started.elapsed().as_secs_f64();

    // 2. The ingestor drains it.
    let rss_before = reset_peak_rss().unwrap_or(f64::NAN);
    let resolver = Arc::new(IngestKeyResolver::new(pool.clone(), IngestKeyResolver::DEFAULT_TTL));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let ingestor = tokio::spawn(run_ingestor(config.clone(), client.clone(), store.clone(), resolver, async {
        stopped.await.ok();
    }));
    let want = args.records as i64 + 1; // + the IngestKeyCreated event
    loop {
        let head = store.head(org).await?.map(|h| h.0).unwrap_or(0);
        if head >= want {
            break;
        }
        if ingestor.is_finished() {
            anyhow::bail!("the ingestor stopped early");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ingest_rate = args.records as f64 / started.elapsed().as_secs_f64();
    let peak_rss = peak_rss_mib().unwrap_or(f64::NAN);
    let _ = stop.send(());
    ingestor.await??;
    pool.close().await;

    // 3. Baseline: the same normalized rows (what the ingestor appended), COPYed into a plain
    // table with the same primary key, in the ingestor's append size; only the COPY is timed.
    let mut owner = PgConnection::connect_with(&scratch.options).await?;
    owner
        .execute(
            "CREATE TABLE bench_copy_baseline (org_id uuid, org_seq bigint, stream_id text, stream_version bigint, \
             event_id uuid, event_type text, schema_version int, payload jsonb, metadata jsonb, \
             recorded_at timestamptz, hash bytea, PRIMARY KEY (org_id, org_seq))",
        )
        .await?;
    let mut copy_time = Duration::ZERO;
    let mut seq = 0usize;
    let mut rows = 0usize;
    let mut buf = String::new();
    for (m, first) in (0..args.records).step_by(batch).enumerate() {
        let body: Vec<String> = (first..(first + batch).min(args.records)).map(|i| record(&templates, i)).collect();
        let prepared = prepare_records(
            chrono::Utc::now(),
            issued.key_id,
            SourceType::Cowrie,
            None,
            &body.join("\n"),
            &format!("msg:bench/{m}"),
            &mut SshdPidTracker::new(),
        );
        for e in &prepared.events {
            seq += 1;
            rows += 1;
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
        let last = first + batch >= args.records;
        if rows < MAX_APPEND_BATCH && !last {
            continue;
        }
        rows = 0;
        let t = Instant::now();
        let mut tx = owner.begin().await?;
        let mut copy = tx
            .copy_in_raw(
                "COPY bench_copy_baseline (org_id, org_seq, stream_id, stream_version, event_id, event_type, \
                 schema_version, payload, metadata, recorded_at, hash) FROM STDIN",
            )
            .await?;
        copy.send(std::mem::take(&mut buf).into_bytes()).await?;
        copy.finish().await?;
        tx.commit().await?;
        copy_time += t.elapsed();
    }
    let copy_rate = seq as f64 / copy_time.as_secs_f64();
    Ok(Rates { publish_rate, ingest_rate, copy_rate, peak_rss, rss_before })
}
