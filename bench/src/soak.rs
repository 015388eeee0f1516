//! `mini-xdr bench soak`: the whole pipeline at a steady rate for a long time, watching for
//! memory that grows and lag that does not stay bounded.
//!
//! Every role runs as its own process of this binary (`api`, `ingestor`, `relay`,
//! `projector`, `detector`, `scheduler`), as the Kubernetes manifests run them: that is what
//! makes each role's resident memory readable on its own (`/proc/<pid>/status`), and a leak in
//! one role cannot hide behind another's allocations. The load is the shared real logs (the
//! Cowrie JSON log and the RFC 3339 sshd log), replayed copy after copy with each copy's
//! addresses moved to a block of its own (`10.<b>.<b>.x`, 4 096 blocks cycled, ≈ 30 000
//! sources) and stamped with the time of publishing, published to JetStream at `--rate`
//! records per second with an ingest key, as producers send it.

use anyhow::Context;
use async_nats::jetstream::{self, context::Publish};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitCode, Stdio};
use std::time::{Duration, Instant};
use uuid::Uuid;
use xdr_commands::ingest::nats_ingestor::{ensure_ingest_streams, HEADER_INGEST_KEY};
use xdr_commands::ingest::IngestConfig;
use xdr_commands::testing::TestDb;

use crate::{BenchSoakArgs, Env};

/// The roles, each a process of its own.
const ROLES: &[&str] = &["api", "ingestor", "relay", "projector", "detector", "scheduler"];
/// Address blocks the copies of the logs cycle through (each holds the logs' 8 sources).
const ADDRESS_BLOCKS: usize = 4_096;
/// Records per NATS message at most (consecutive records of one source type share one).
const RECORDS_PER_MESSAGE: usize = 100;
/// Memory bound: a role's RSS at the end may exceed its RSS after warm-up (the sample at a
/// quarter of the run) by this factor plus [`RSS_SLACK_MIB`], no more.
const RSS_GROWTH_FACTOR: f64 = 1.25;
const RSS_SLACK_MIB: f64 = 32.0;
/// Lag bound: at the end, every stage may be at most this many seconds of input behind.
const LAG_BOUND_SECS: f64 = 10.0;

pub async fn soak(env: &Env, args: BenchSoakArgs) -> anyhow::Result<ExitCode> {
    let duration = Duration::from_secs(args.seconds.unwrap_or(args.minutes * 60));
    anyhow::ensure!(duration >= Duration::from_secs(2), "the soak must run for at least 2 seconds");
    anyhow::ensure!(args.rate > 0.0, "--rate must be positive");
    let logs = RealLogs::load(&args.logs)?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let scratch = crate::scratch_db(env).await?;
    let prefix = format!("soak{}.", Uuid::new_v4().simple());
    let config = IngestConfig::with_prefix(&prefix);
    let client = async_nats::connect(&env.nats_url).await.context("Failed to connect to NATS")?;
    let js = jetstream::new(client);
    let result = run(env, &args, &scratch, &js, &config, &logs, duration).await;
    let response = xdr_commands::response::ResponseConfig::with_prefix(&prefix);
    for stream in [
        &config.stream_name,
        &config.dlq_stream_name,
        &config.events_stream_name,
        &response.actions_stream,
        &response.results_stream,
    ] {
        let _ = js.delete_stream(stream).await;
    }
    drop(scratch);
    let samples = result?;
    let csv = args.out.join("soak.csv");
    let png = args.out.join("soak.png");
    write_csv(&csv, &samples)?;
    plot(&png, &samples).context("drawing the PNG")?;
    println!("wrote {} and {}", csv.display(), png.display());
    match verdict(&samples, args.rate) {
        Ok(summary) => {
            println!("{summary}");
            Ok(ExitCode::SUCCESS)
        }
        Err(failure) => {
            eprintln!("soak FAILED: {failure}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// One sample of the running pipeline.
#[derive(Debug, Clone)]
struct Sample {
    secs: f64,
    published: u64,
    committed: i64,
    /// MiB, in [`ROLES`] order.
    rss: Vec<f64>,
    /// NATS messages the ingestor has not yet acknowledged.
    ingest_lag: u64,
    /// Events behind the org heads (summed over orgs).
    relay_lag: i64,
    projection_lag: i64,
    /// Committed security events the detector has not yet acknowledged.
    detector_lag: u64,
    dead_letters: u64,
    quarantined: i64,
}

#[allow(clippy::too_many_arguments)]
async fn run(
    env: &Env,
    args: &BenchSoakArgs,
    scratch: &TestDb,
    js: &jetstream::Context,
    config: &IngestConfig,
    logs: &RealLogs,
    duration: Duration,
) -> anyhow::Result<Vec<Sample>> {
    let log_dir = args.out.join("soak-logs");
    std::fs::create_dir_all(&log_dir)?;
    let mut roles = Vec::new();
    for role in ROLES {
        roles.push(RoleProcess::start(role, env, scratch, &config.subject_prefix, &log_dir, args)?);
    }
    for role in &roles {
        role.wait_ready().await?;
    }
    let api = format!("http://127.0.0.1:{}", roles[0].port);
    let key = set_up_org(&api).await?;
    ensure_ingest_streams(js, config).await?;
    let owner = xdr_commands::db::owner_pool(&scratch.options, 2).await?;

    println!(
        "soak: {:.0} records/s for {} s; roles {}; detector bound {} observations; logs in {}",
        args.rate,
        duration.as_secs(),
        ROLES.join(", "),
        args.detector_max_observations,
        log_dir.display()
    );
    let started = Instant::now();
    let mut publisher = Publisher::new(js.clone(), config, key, logs);
    let sample_every = Duration::from_secs(args.sample_secs.max(1));
    let mut next_sample = sample_every;
    let mut next_print = Duration::from_secs(60).min(duration);
    let mut samples = vec![sample(0.0, 0, &roles, &owner, js, config).await?];
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let elapsed = started.elapsed();
        if elapsed >= duration {
            break;
        }
        for role in &mut roles {
            role.check_alive()?;
        }
        publisher.publish_until((args.rate * elapsed.as_secs_f64()) as u64).await?;
        if elapsed >= next_sample {
            next_sample += sample_every;
            let s = sample(elapsed.as_secs_f64(), publisher.published, &roles, &owner, js, config).await?;
            if elapsed >= next_print {
                next_print += Duration::from_secs(60);
                print_sample(&s);
            }
            samples.push(s);
        }
    }
    publisher.flush().await?;
    let last = sample(started.elapsed().as_secs_f64(), publisher.published, &roles, &owner, js, config).await?;
    print_sample(&last);
    samples.push(last);
    owner.close().await;
    Ok(samples)
}

fn print_sample(s: &Sample) {
    let rss: Vec<String> = ROLES.iter().zip(&s.rss).map(|(r, m)| format!("{r} {m:.0}")).collect();
    println!(
        "{:>5.1} min  RSS MiB: {}  | lag: ingest {} msgs, relay {}, projection {}, detector {} events | \
         dead letters {} (quarantined {}) | published {} committed {}",
        s.secs / 60.0,
        rss.join(", "),
        s.ingest_lag,
        s.relay_lag,
        s.projection_lag,
        s.detector_lag,
        s.dead_letters,
        s.quarantined,
        s.published,
        s.committed
    );
}

async fn sample(
    secs: f64,
    published: u64,
    roles: &[RoleProcess],
    owner: &sqlx::PgPool,
    js: &jetstream::Context,
    config: &IngestConfig,
) -> anyhow::Result<Sample> {
    let rss = roles.iter().map(|r| rss_mib(r.child.id()).unwrap_or(0.0)).collect();
    let (committed, relay_lag, projection_lag): (i64, i64, i64) = sqlx::query_as(
        "SELECT coalesce(sum(h.last_seq), 0)::bigint, \
                coalesce(sum(h.last_seq - coalesce(r.last_seq, 0)), 0)::bigint, \
                coalesce(sum(h.last_seq - coalesce(p.slowest, 0)), 0)::bigint \
         FROM org_heads h \
         LEFT JOIN relay_checkpoints r USING (org_id) \
         LEFT JOIN (SELECT org_id, min(last_seq) AS slowest FROM projection_checkpoints GROUP BY org_id) p \
           USING (org_id)",
    )
    .fetch_one(owner)
    .await
    .context("reading heads and checkpoints")?;
    let quarantined: i64 = sqlx::query_scalar("SELECT count(*) FROM projection_quarantine").fetch_one(owner).await?;
    Ok(Sample {
        secs,
        published,
        committed,
        rss,
        ingest_lag: consumer_backlog(js, &config.stream_name, &config.consumer_name).await,
        relay_lag,
        projection_lag,
        detector_lag: consumer_backlog(js, &config.events_stream_name, "detector").await,
        dead_letters: match js.get_stream(&config.dlq_stream_name).await {
            Ok(mut s) => s.info().await.map_or(0, |i| i.state.messages),
            Err(_) => 0,
        },
        quarantined,
    })
}

/// Messages a durable consumer has not acknowledged yet (0 before it exists).
async fn consumer_backlog(js: &jetstream::Context, stream: &str, consumer: &str) -> u64 {
    let Ok(stream) = js.get_stream(stream).await else { return 0 };
    match stream.consumer_info(consumer).await {
        Ok(info) => info.num_pending + info.num_ack_pending as u64,
        Err(_) => 0,
    }
}

/// Resident memory of a process, from `/proc/<pid>/status`.
fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Pass or fail, with the reason. Memory: every role's last RSS within the documented bound
/// of its RSS at a quarter of the run. Lag: every stage at most [`LAG_BOUND_SECS`] of input
/// behind at the end.
fn verdict(samples: &[Sample], rate: f64) -> Result<String, String> {
    let last = samples.last().ok_or("no samples")?;
    let warm_at = last.secs / 4.0;
    let warm = samples.iter().find(|s| s.secs >= warm_at).unwrap_or(last);
    let mut failures = Vec::new();
    let mut growth = Vec::new();
    for (i, role) in ROLES.iter().enumerate() {
        let (before, after) = (warm.rss[i], last.rss[i]);
        let bound = before * RSS_GROWTH_FACTOR + RSS_SLACK_MIB;
        growth.push(format!("{role} {before:.0}→{after:.0}"));
        if after > bound {
            failures.push(format!(
                "{role}'s memory grew from {before:.0} MiB (at {:.1} min) to {after:.0} MiB, beyond the bound \
                 {bound:.0} MiB ({RSS_GROWTH_FACTOR}× + {RSS_SLACK_MIB} MiB)",
                warm.secs / 60.0
            ));
        }
    }
    let events_bound = (rate * LAG_BOUND_SECS).max(100.0);
    let messages_bound = (events_bound / RECORDS_PER_MESSAGE as f64).max(10.0);
    for (stage, lag, bound) in [
        ("ingest (NATS messages)", last.ingest_lag as f64, messages_bound),
        ("relay", last.relay_lag as f64, events_bound),
        ("projection", last.projection_lag as f64, events_bound),
        ("detector", last.detector_lag as f64, events_bound),
    ] {
        if lag > bound {
            failures.push(format!(
                "{stage} lag is {lag:.0} at the end, more than {LAG_BOUND_SECS} s of input ({bound:.0}): it is not keeping up"
            ));
        }
    }
    if failures.is_empty() {
        Ok(format!(
            "soak passed: RSS MiB (quarter → end) {}; final lag ingest {} msgs, relay {}, projection {}, detector {} \
             (bound {events_bound:.0} events); {} published, {} committed, {} dead letters",
            growth.join(", "),
            last.ingest_lag,
            last.relay_lag,
            last.projection_lag,
            last.detector_lag,
            last.published,
            last.committed,
            last.dead_letters
        ))
    } else {
        Err(failures.join("; "))
    }
}

fn write_csv(path: &Path, samples: &[Sample]) -> anyhow::Result<()> {
    let mut out = String::from("seconds,published,committed");
    for role in ROLES {
        out.push_str(&format!(",rss_{role}_mib"));
    }
    out.push_str(",ingest_lag_msgs,relay_lag,projection_lag,detector_lag,dead_letters,quarantined\n");
    for s in samples {
        out.push_str(&format!("{:.1},{},{}", s.secs, s.published, s.committed));
        for m in &s.rss {
            out.push_str(&format!(",{m:.1}"));
        }
        out.push_str(&format!(
            ",{},{},{},{},{},{}\n",
            s.ingest_lag, s.relay_lag, s.projection_lag, s.detector_lag, s.dead_letters, s.quarantined
        ));
    }
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}

/// Two panels over minutes: RSS per role, and lag per stage.
fn plot(path: &Path, samples: &[Sample]) -> anyhow::Result<()> {
    use plotters::prelude::*;
    let font = ["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/dejavu/DejaVuSans.ttf"]
        .iter()
        .find_map(|p| std::fs::read(p).ok())
        .context("the plot's labels need DejaVu Sans (Debian: fonts-dejavu-core)")?;
    // Registered once per process; the font lives as long as the process anyway.
    plotters::style::register_font("sans-serif", FontStyle::Normal, Box::leak(font.into_boxed_slice()))
        .map_err(|_| anyhow::anyhow!("DejaVu Sans is not a usable font"))?;
    let err = |e: &dyn std::fmt::Display| anyhow::anyhow!("{e}");
    let minutes = samples.last().map_or(1.0, |s| s.secs / 60.0).max(1.0 / 60.0);
    let (width, height) = (1200u32, 900u32);
    let mut pixels = vec![0u8; (width * height * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let (top, bottom) = root.split_vertically(450);

        let max_rss = samples.iter().flat_map(|s| s.rss.iter().copied()).fold(1.0f64, f64::max) * 1.1;
        let mut chart = ChartBuilder::on(&top)
            .caption("Resident memory per role (MiB)", ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..minutes, 0f64..max_rss)
            .map_err(|e| err(&e))?;
        chart.configure_mesh().x_desc("minutes").y_desc("MiB").draw().map_err(|e| err(&e))?;
        for (i, role) in ROLES.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(samples.iter().map(|s| (s.secs / 60.0, s.rss[i])), color.stroke_width(2)))
                .map_err(|e| err(&e))?
                .label(*role)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(&e))?;

        type Lag = fn(&Sample) -> f64;
        let stages: [(&str, Lag); 4] = [
            ("ingest (messages)", |s| s.ingest_lag as f64),
            ("relay (events)", |s| s.relay_lag as f64),
            ("projection (events)", |s| s.projection_lag as f64),
            ("detector (events)", |s| s.detector_lag as f64),
        ];
        let max_lag = samples.iter().flat_map(|s| stages.iter().map(move |(_, f)| f(s))).fold(10.0f64, f64::max) * 1.1;
        let mut chart = ChartBuilder::on(&bottom)
            .caption("Lag behind the org heads / the ingest stream", ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..minutes, 0f64..max_lag)
            .map_err(|e| err(&e))?;
        chart.configure_mesh().x_desc("minutes").y_desc("behind").draw().map_err(|e| err(&e))?;
        for (i, (name, value)) in stages.iter().enumerate() {
            let color = Palette99::pick(i + ROLES.len()).to_rgba();
            chart
                .draw_series(LineSeries::new(samples.iter().map(|s| (s.secs / 60.0, value(s))), color.stroke_width(2)))
                .map_err(|e| err(&e))?
                .label(*name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut encoder = png::Encoder::new(file, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&pixels)?;
    writer.finish()?;
    Ok(())
}

/// One role as a child process of this binary, killed when dropped.
struct RoleProcess {
    name: &'static str,
    child: Child,
    port: u16,
    log: PathBuf,
}

impl RoleProcess {
    fn start(
        name: &'static str,
        env: &Env,
        scratch: &TestDb,
        prefix: &str,
        log_dir: &Path,
        args: &BenchSoakArgs,
    ) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let log = log_dir.join(format!("{name}.log"));
        let exe = std::env::current_exe().context("Failed to find this executable")?;
        let models = std::path::absolute(&env.models_dir).unwrap_or_else(|_| env.models_dir.clone());
        let child = std::process::Command::new(exe)
            .arg(name)
            .envs(scratch.env())
            .env("NATS_URL", &env.nats_url)
            .env("XDR_NATS_PREFIX", prefix)
            .env("XDR_BIND", format!("127.0.0.1:{port}"))
            .env("XDR_MODELS_DIR", models)
            .env("JWT_SECRET_KEY", Uuid::new_v4().simple().to_string().repeat(2))
            .env("RUST_LOG", "warn")
            .env("XDR_DETECTOR_MAX_OBSERVATIONS", args.detector_max_observations.to_string())
            .env_remove("XDR_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("starting the {name} role"))?;
        Ok(RoleProcess { name, child, port, log })
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let client = reqwest::Client::new();
        let started = Instant::now();
        loop {
            let ready = client.get(format!("http://127.0.0.1:{}/readyz", self.port)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(60),
                "the {} role was not ready within 60 s; its log ({}):\n{}",
                self.name,
                self.log.display(),
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            anyhow::bail!(
                "the {} role exited ({status}) during the soak; its log ({}):\n{}",
                self.name,
                self.log.display(),
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
        Ok(())
    }
}

impl Drop for RoleProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An org with an ingest key, made through the API as an operator would; returns the key.
async fn set_up_org(api: &str) -> anyhow::Result<String> {
    let client = reqwest::Client::new();
    let reg: Value = client
        .post(format!("{api}/api/auth/register"))
        .json(&json!({"organization_name": "Soak Corp", "admin_email": "soak@bench.test",
                      "admin_password": "SecurePass123!@#", "admin_name": "Soak"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let token = reg["access_token"].as_str().context("no access token")?;
    let created: Value = client
        .post(format!("{api}/graphql"))
        .bearer_auth(token)
        .json(&json!({"query": r#"mutation { createIngestKey(name: "soak") { key } }"#}))
        .send()
        .await?
        .json()
        .await?;
    created["data"]["createIngestKey"]["key"].as_str().map(str::to_owned).with_context(|| format!("{created}"))
}

/// The real logs' lines, per source type.
struct RealLogs {
    cowrie: Vec<Value>,
    sshd: Vec<String>,
}

impl RealLogs {
    fn load(dir: &Path) -> anyhow::Result<RealLogs> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path)
                .with_context(|| format!("reading {} (the shared real logs; see --logs)", path.display()))
        };
        let cowrie = read("cowrie.json")?
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(serde_json::from_str)
            .collect::<Result<Vec<Value>, _>>()
            .context("cowrie.json is not JSON lines")?;
        let sshd = read("sshd-auth-rfc3339.log")?.lines().filter(|l| !l.trim().is_empty()).map(str::to_owned).collect();
        Ok(RealLogs { cowrie, sshd })
    }

    fn len(&self) -> usize {
        self.cowrie.len() + self.sshd.len()
    }

    /// Record `i` of the endless replay: which source type, and the line, moved to its copy's
    /// address block and stamped `now`.
    fn record(&self, i: u64, now: &str) -> (&'static str, String) {
        let copy = i / self.len() as u64;
        let line = (i % self.len() as u64) as usize;
        let block = copy as usize % ADDRESS_BLOCKS;
        let net = format!("10.{}.{}.", block / 256, block % 256);
        if line < self.cowrie.len() {
            let mut v = self.cowrie[line].clone();
            if let Some(obj) = v.as_object_mut() {
                for field in ["src_ip", "message"] {
                    if let Some(Value::String(s)) = obj.get_mut(field) {
                        *s = s.replace("127.0.0.", &net);
                    }
                }
                if let Some(Value::String(s)) = obj.get_mut("session") {
                    // Sessions are per copy, as they would be for new connections.
                    *s = format!("{:04x}{}", copy % 65_536, s.get(4..).unwrap_or_default());
                }
                obj.insert("timestamp".into(), Value::String(now.to_owned()));
            }
            ("cowrie", v.to_string())
        } else {
            let raw = &self.sshd[line - self.cowrie.len()];
            let rest = raw.split_once(' ').map_or(raw.as_str(), |(_, rest)| rest);
            ("sshd", format!("{} {}", now, rest.replace("127.0.0.", &net)))
        }
    }
}

/// Publishes the replay at a steady rate, with at most a bounded number of unacknowledged
/// messages in flight.
struct Publisher<'a> {
    js: jetstream::Context,
    config: &'a IngestConfig,
    key: String,
    logs: &'a RealLogs,
    published: u64,
    in_flight: VecDeque<jetstream::context::PublishAckFuture>,
}

impl<'a> Publisher<'a> {
    fn new(js: jetstream::Context, config: &'a IngestConfig, key: String, logs: &'a RealLogs) -> Self {
        Publisher { js, config, key, logs, published: 0, in_flight: VecDeque::new() }
    }

    async fn publish_until(&mut self, target: u64) -> anyhow::Result<()> {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        while self.published < target {
            let (source, first) = self.logs.record(self.published, &now);
            let mut body = first;
            let mut n = 1u64;
            while (n as usize) < RECORDS_PER_MESSAGE && self.published + n < target {
                let (next_source, line) = self.logs.record(self.published + n, &now);
                if next_source != source {
                    break;
                }
                body.push('\n');
                body.push_str(&line);
                n += 1;
            }
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(HEADER_INGEST_KEY, self.key.as_str());
            let publish = Publish::build().headers(headers).payload(body.into());
            self.in_flight.push_back(self.js.send_publish(self.config.ingest_subject(source), publish).await?);
            self.published += n;
            while self.in_flight.len() > 256 {
                if let Some(ack) = self.in_flight.pop_front() {
                    ack.await.context("JetStream did not store a soak message")?;
                }
            }
        }
        Ok(())
    }

    async fn flush(&mut self) -> anyhow::Result<()> {
        while let Some(ack) = self.in_flight.pop_front() {
            ack.await.context("JetStream did not store a soak message")?;
        }
        Ok(())
    }
}
