use serde_json::json;
use std::process::ExitCode;
use std::time::Instant;
use uuid::Uuid;
use xdr_commands::testing::TestDb;
use xdr_commands::{db, EventStore, NewEvent};
use xdr_domain::ids::OrgId;

use crate::{telemetry_payload, BenchRebuildArgs, Env};

/// `mini-xdr bench rebuild`: seed a log, then time a raw sequential scan of it (read and
/// decode every row, the floor of any replay), `rebuild` of every read model, the live
/// projector's catch-up as the app role, and the digest.
pub async fn rebuild(env: &Env, args: BenchRebuildArgs) -> anyhow::Result<ExitCode> {
    let scratch = crate::scratch_db(env).await?;
    let result = run_rebuild(&scratch, &args).await;
    drop(scratch);
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

async fn run_rebuild(scratch: &TestDb, args: &BenchRebuildArgs) -> anyhow::Result<RebuildTimes> {
    use futures::TryStreamExt;
    let app = scratch.worker_pool(4).await?;
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
    xdr_commands::store::vacuum_analyze(&owner).await?;
    let events = xdr_projections::rebuild::log_length(&owner).await?;

    // Baseline: read and decode every row in log order, nothing else.
    let started = Instant::now();
    let mut rows = xdr_commands::store::scan_all(&owner);
    let mut scanned = 0u64;
    while let Some(row) = rows.try_next().await? {
        let e = row.event()?;
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
