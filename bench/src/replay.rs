//! `mini-xdr bench replay`: how fast the audit tools read an org's log, against the raw
//! `COPY … TO STDOUT` of the same rows, with the peak RSS of each.
//!
//! Every phase runs as a child process of this same binary, so each peak RSS is the
//! phase's own (VmHWM of a fresh process, sampled from /proc every few milliseconds until it
//! exits) and each time includes what a user waits for (start, connect, query, output):
//! (a) the hidden `bench replay-raw-copy` (COPY TO STDOUT, bytes consumed and dropped),
//! (b) `replay --org ORG --format jsonl` with stdout on /dev/null, (c) `audit export --org
//! ORG --out /dev/null`.

use anyhow::Context;
use serde_json::json;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};
use uuid::Uuid;
use xdr_commands::{db, EventStore, NewEvent};
use xdr_domain::ids::OrgId;

use crate::Env;
use crate::{BenchReplayArgs, ReplayRawCopyArgs};
use xdr_commands::testing::TestDb;

pub async fn replay(env: &Env, args: BenchReplayArgs) -> anyhow::Result<ExitCode> {
    let scratch = crate::scratch_db(env).await?;
    let url = scratch.url();
    let result = run(&scratch, &url, &args).await;
    drop(scratch);
    let r = result?;
    println!("events: {}  (one org, ≈{} bytes of COPY text per event)", r.events, r.copy_bytes / r.events.max(1));
    let line = |name: &str, p: &Phase| {
        let rate = r.events as f64 / p.secs;
        let ratio = r.raw.secs / p.secs;
        println!("{name:<24} {rate:>10.0} events/s  {ratio:>5.2} x raw  peak RSS {:>5.0} MiB", p.peak_rss_mib);
    };
    line("raw COPY TO STDOUT:", &r.raw);
    line("replay --format jsonl:", &r.replay);
    line("audit export:", &r.export);
    println!("targets: replay and export >= 0.50 x raw, peak RSS < 200 MiB");
    Ok(ExitCode::SUCCESS)
}

struct Results {
    events: u64,
    copy_bytes: u64,
    raw: Phase,
    replay: Phase,
    export: Phase,
}

#[derive(Debug, Clone, Copy)]
struct Phase {
    secs: f64,
    peak_rss_mib: f64,
}

async fn run(scratch: &TestDb, url: &str, args: &BenchReplayArgs) -> anyhow::Result<Results> {
    let owner = db::owner_pool(&scratch.options, 2).await?;
    let store = EventStore::new(owner.clone());
    let org = OrgId(Uuid::new_v4());
    eprintln!("seeding {} events for org {}…", args.events, org.0);
    let batch = 10_000;
    let started = Instant::now();
    for start in (0..args.events).step_by(batch) {
        let events = (start..(start + batch).min(args.events))
            .map(|i| NewEvent {
                event_id: xdr_domain::telemetry::telemetry_event_id(
                    chrono::DateTime::from_timestamp(1_764_190_800 + (i / 100) as i64, 0).unwrap_or_default(),
                    format!("bench/{i}").as_bytes(),
                ),
                stream_id: format!("telemetry-sensor-{}", i % 4),
                event_type: "SecurityEventObserved".into(),
                schema_version: 1,
                payload: crate::telemetry_payload(i),
                metadata: json!({"actor": "ingest-key:bench"}),
            })
            .collect();
        store.append_batch(org, events).await?;
    }
    eprintln!("seeded in {:.1?}", started.elapsed());
    xdr_commands::store::vacuum_analyze(&owner).await?;
    owner.close().await;

    let exe = std::env::current_exe().context("Failed to find this executable")?;
    let org_arg = org.0.to_string();
    let raw_args = ["bench", "replay-raw-copy", "--org", &org_arg];
    let replay_args = ["replay", "--org", &org_arg, "--format", "jsonl"];
    let export_args = ["audit", "export", "--org", &org_arg, "--out", "/dev/null"];
    // Once unmeasured, so every measured phase reads a warm page cache.
    child(&exe, url, &raw_args).await?;
    // Per phase: the fastest round's time and output, the highest peak RSS of any round.
    let mut best = [(f64::MAX, 0.0f64, String::new()), (f64::MAX, 0.0, String::new()), (f64::MAX, 0.0, String::new())];
    for round in 0..args.rounds.max(1) {
        for (slot, argv) in [&raw_args[..], &replay_args[..], &export_args[..]].into_iter().enumerate() {
            let (phase, output) = child(&exe, url, argv).await?;
            eprintln!("round {round}: {} → {:.2} s, {:.0} MiB", argv[..2].join(" "), phase.secs, phase.peak_rss_mib);
            let b = &mut best[slot];
            if phase.secs < b.0 {
                (b.0, b.2) = (phase.secs, output);
            }
            b.1 = b.1.max(phase.peak_rss_mib);
        }
    }
    let [(raw_s, raw_m, raw_out), (replay_s, replay_m, replay_out), (export_s, export_m, export_out)] = best;
    let raw = Phase { secs: raw_s, peak_rss_mib: raw_m };
    let replay = Phase { secs: replay_s, peak_rss_mib: replay_m };
    let export = Phase { secs: export_s, peak_rss_mib: export_m };
    // Every phase must have read every event, or its rate means nothing.
    let events = args.events as u64;
    let copy_bytes: u64 = raw_out
        .split_whitespace()
        .skip_while(|w| *w != "bytes")
        .nth(1)
        .and_then(|b| b.parse().ok())
        .context("raw copy printed no byte count")?;
    anyhow::ensure!(raw_out.starts_with(&format!("rows {events} ")), "raw copy: {raw_out}");
    anyhow::ensure!(replay_out.contains(&format!("{events} events")), "replay: {replay_out}");
    anyhow::ensure!(export_out.contains(&format!("exported {events} events")), "export: {export_out}");
    Ok(Results { events, copy_bytes, raw, replay, export })
}

/// Run this binary with `args` against the scratch database; its time, peak RSS and what it
/// printed (stdout of the raw copy, stderr of the others; replay's stdout goes to /dev/null).
async fn child(exe: &std::path::Path, url: &str, args: &[&str]) -> anyhow::Result<(Phase, String)> {
    let exe = exe.to_owned();
    let url = url.to_owned();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || -> anyhow::Result<(Phase, String)> {
        let err_path = std::env::temp_dir().join(format!("xdr-bench-replay-{}.err", Uuid::new_v4().simple()));
        let out_path = err_path.with_extension("out");
        let raw = args.get(1).is_some_and(|a| a == "replay-raw-copy");
        let stdout = if raw { Stdio::from(std::fs::File::create(&out_path)?) } else { Stdio::null() };
        let started = Instant::now();
        let mut process = Command::new(&exe)
            .args(&args)
            .env("DATABASE_URL", &url)
            .env("XDR_MIGRATE_DATABASE_URL", &url)
            .env_remove("XDR_CONFIG")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(std::fs::File::create(&err_path)?)
            .spawn()
            .with_context(|| format!("Failed to start {}", exe.display()))?;
        let status_file = format!("/proc/{}/status", process.id());
        let mut peak_kib = 0u64;
        let status = loop {
            // Read before reaping: once it has exited, a zombie has no memory lines.
            if let Some(kib) = vm_hwm_kib(&status_file) {
                peak_kib = peak_kib.max(kib);
            }
            if let Some(status) = process.try_wait()? {
                break status;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let secs = started.elapsed().as_secs_f64();
        let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
        let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
        std::fs::remove_file(&err_path).ok();
        std::fs::remove_file(&out_path).ok();
        anyhow::ensure!(status.success(), "{} failed: {stderr}", args.join(" "));
        let output = if raw { stdout } else { stderr };
        Ok((Phase { secs, peak_rss_mib: peak_kib as f64 / 1024.0 }, output))
    })
    .await?
}

fn vm_hwm_kib(status_file: &str) -> Option<u64> {
    let status = std::fs::read_to_string(status_file).ok()?;
    status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()
}

/// The baseline, run as a child by `bench replay`: the org's rows as `COPY … TO STDOUT`
/// text, in `org_seq` order, every byte received and dropped. Prints `rows N bytes B`.
pub async fn raw_copy(env: &Env, args: ReplayRawCopyArgs) -> anyhow::Result<ExitCode> {
    let pool = db::owner_pool(&db::connect_options(env.owner_database_url()?)?, 1).await?;
    let mut conn = pool.acquire().await?;
    let (mut rows, mut bytes) = (0u64, 0u64);
    xdr_commands::store::copy_org_text(&mut conn, xdr_domain::ids::OrgId(args.org), |chunk| {
        bytes += chunk.len() as u64;
        rows += chunk.iter().filter(|b| **b == b'\n').count() as u64;
    })
    .await?;
    println!("rows {rows} bytes {bytes}");
    Ok(ExitCode::SUCCESS)
}
