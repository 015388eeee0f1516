//! `mini-xdr bench append`: the event log's batch append vs raw COPY of the same rows into a
//! plain table with the same primary key.

use serde_json::json;
use sqlx::{Connection, Executor, PgConnection};
use std::process::ExitCode;
use std::time::Instant;
use uuid::Uuid;
use xdr_commands::testing::TestDb;
use xdr_commands::{EventStore, NewEvent};
use xdr_domain::ids::OrgId;

use crate::{telemetry_payload, BenchAppendArgs, Env};

pub async fn append(env: &Env, args: BenchAppendArgs) -> anyhow::Result<ExitCode> {
    let scratch = crate::scratch_db(env).await?;
    let result = run_append(&scratch, &args).await;
    drop(scratch);
    let (append_rate, copy_rate, payload_bytes) = result?;
    println!("events: {}  batch: {}  mean payload: {payload_bytes} bytes", args.events, args.batch);
    println!("append_batch: {append_rate:>10.0} events/s");
    println!("raw COPY:     {copy_rate:>10.0} rows/s");
    println!("ratio:        {:>10.2} (target >= 0.60)", append_rate / copy_rate);
    Ok(ExitCode::SUCCESS)
}

async fn run_append(scratch: &TestDb, args: &BenchAppendArgs) -> anyhow::Result<(f64, f64, usize)> {
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

    let pool = scratch.worker_pool(2).await?;
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
