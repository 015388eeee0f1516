//! `mini-xdr bench agent-resync`: how long a starting agent takes to re-sync N active blocks
//! (fetch from the gateway + apply to its backend), next to the raw SELECT of the same rows
//! in the same run. The server runs in-process over a scratch database with a real NATS
//! dispatcher; nftables is measured inside a throwaway network namespace when the machine
//! allows it, so the host's firewall is never touched.

use anyhow::Context;
use sqlx::Row;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use uuid::Uuid;
use xdr_commands::{db, EventStore};
use xdr_domain::ids::OrgId;
use xdr_domain::EventMetadata;

use crate::BenchAgentResyncArgs;
use crate::Env;
use xdr_agent::backend::Backend;
use xdr_agent::client::Gateway;
use xdr_agent::{resync, AgentFailure, BackendKind};
use xdr_commands::testing::TestDb;

pub async fn agent_resync(env: &Env, args: BenchAgentResyncArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.runs >= 1, "--runs must be at least 1");
    let scratch = crate::scratch_db(env).await?;
    let nats = (env.nats_api)().await?;
    let js = async_nats::jetstream::new(nats);
    let config = xdr_commands::response::ResponseConfig::with_prefix(&format!("bench{}.", Uuid::new_v4().simple()));
    let result = run(&scratch, &js, &config, &args).await;
    for stream in [&config.actions_stream, &config.results_stream] {
        let _ = js.delete_stream(stream).await;
    }
    drop(scratch);
    result?;
    Ok(ExitCode::SUCCESS)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn run(
    scratch: &TestDb,
    js: &async_nats::jetstream::Context,
    config: &xdr_commands::response::ResponseConfig,
    args: &BenchAgentResyncArgs,
) -> anyhow::Result<()> {
    let pool = scratch.api_pool(8).await?;
    let owner = db::owner_pool(&scratch.options, 2).await?;
    let org = OrgId(Uuid::new_v4());
    let store = EventStore::new(pool.clone());
    let key =
        xdr_commands::response::agent_keys::create_agent_key(&store, org, "bench", &EventMetadata::system("bench"))
            .await
            .context("creating the agent key")?;
    // Half permanent, half timed, as a policy-driven org would have them.
    sqlx::query(
        "INSERT INTO rm_active_blocks (org_id, action_id, ip, since, expires_at) \
         SELECT $1, gen_random_uuid(), \
                '45.' || (i / 65536) % 256 || '.' || (i / 256) % 256 || '.' || i % 256, now(), \
                CASE WHEN i % 2 = 0 THEN now() + interval '1 hour' END \
         FROM generate_series(0, $2 - 1) AS i",
    )
    .bind(org.0)
    .bind(args.blocks as i64)
    .execute(&owner)
    .await?;

    let dispatcher = xdr_commands::response::Dispatcher::new(js.clone(), config.clone()).await?;
    let server_config =
        xdr_graphql::ServerConfig { bind: "127.0.0.1:0".into(), dispatcher: Some(dispatcher), ..Default::default() };
    let app = xdr_graphql::Application::build(server_config, crate::bench_identity(&pool)?, pool.clone())?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let server = tokio::spawn(app.run_until_stopped());

    // Baseline: the rows straight from PostgreSQL, under the org's RLS scope like the gateway.
    let mut select = Vec::new();
    for _ in 0..args.runs {
        let started = Instant::now();
        let mut tx = xdr_projections::begin_org_tx(&pool, org).await?;
        let rows = sqlx::query("SELECT action_id, ip, expires_at FROM rm_active_blocks WHERE org_id = $1")
            .bind(org.0)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        anyhow::ensure!(rows.len() == args.blocks && rows[0].try_get::<String, _>("ip").is_ok());
        select.push(started.elapsed());
    }
    let select = median(select);
    println!("active blocks: {}  runs: {} (median reported)", args.blocks, args.runs);
    println!("raw SELECT of the rows:        {:>8.3} s", select.as_secs_f64());

    let gateway = Gateway::new(&base, key.key, None)?;
    let measure = |kind: BackendKind, netns: Option<String>| {
        let gateway = &gateway;
        async move {
            let mut times = Vec::new();
            for _ in 0..args.runs {
                // A starting agent: a fresh backend each run.
                let mut backend: Backend = kind.build(netns.clone());
                let started = Instant::now();
                match resync(gateway, &mut backend).await {
                    Ok(_) => times.push(started.elapsed()),
                    Err(AgentFailure::Stop(e) | AgentFailure::Retry(e)) => return Err(e),
                }
            }
            Ok::<_, anyhow::Error>(median(times))
        }
    };
    let dry = measure(BackendKind::DryRun, None).await?;
    println!(
        "agent re-sync, dry-run:        {:>8.3} s  ({:.1}x the SELECT)",
        dry.as_secs_f64(),
        dry.as_secs_f64() / select.as_secs_f64()
    );
    match scratch_netns().await {
        Ok(ns) => {
            let nft = measure(BackendKind::Nftables, Some(ns.clone())).await;
            let count = count_nft_elements(&ns).await;
            let _ = std::process::Command::new("ip").args(["netns", "del", &ns]).status();
            let nft = nft?;
            println!(
                "agent re-sync, nftables:       {:>8.3} s  ({:.1}x the SELECT; {} elements in the set)",
                nft.as_secs_f64(),
                nft.as_secs_f64() / select.as_secs_f64(),
                count.map_or_else(|e| format!("? ({e})"), |n| n.to_string())
            );
        }
        Err(reason) => println!("agent re-sync, nftables:       skipped ({reason})"),
    }
    server.abort();
    Ok(())
}

/// A fresh network namespace where `nft` works, or why there is none.
async fn scratch_netns() -> Result<String, String> {
    let ns = format!("xdrbench{}", &Uuid::new_v4().simple().to_string()[..8]);
    let ok = |args: &[&str]| {
        std::process::Command::new(args[0]).args(&args[1..]).output().map_err(|e| format!("{}: {e}", args[0])).and_then(
            |o| if o.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&o.stderr).trim().to_owned()) },
        )
    };
    ok(&["ip", "netns", "add", &ns]).map_err(|e| format!("no network namespace: {e}"))?;
    if let Err(e) = ok(&["ip", "netns", "exec", &ns, "nft", "list", "tables"]) {
        let _ = ok(&["ip", "netns", "del", &ns]);
        return Err(format!("nft unusable: {e}"));
    }
    Ok(ns)
}

async fn count_nft_elements(ns: &str) -> Result<usize, String> {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-j", "list", "table", "inet", "mini_xdr"])
        .output()
        .map_err(|e| e.to_string())?;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    Ok(json["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["set"]["elem"].as_array())
        .map(Vec::len)
        .sum())
}
