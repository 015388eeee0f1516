use serde_json::json;
use std::process::ExitCode;
use std::time::Instant;
use uuid::Uuid;
use xdr_commands::db;
use xdr_commands::testing::TestDb;
use xdr_domain::ids::OrgId;

use crate::{bench_identity, load, percentiles, BenchGraphqlArgs, Env};

/// `mini-xdr bench graphql`: seed read models (one measured org plus noise orgs), then the
/// `incidents(first: 50)` page through GraphQL and the same SQL page run directly, same
/// concurrency, same run; then the GraphQL page again beside another tenant's client that
/// sends the most expensive queries the cost limits allow, one after another (other tenants'
/// p99 must stay within 2× of alone).
pub async fn graphql(env: &Env, args: BenchGraphqlArgs) -> anyhow::Result<ExitCode> {
    let scratch = crate::scratch_db(env).await?;
    let result = run_graphql(&scratch, &args).await;
    drop(scratch);
    result?;
    Ok(ExitCode::SUCCESS)
}

async fn run_graphql(scratch: &TestDb, args: &BenchGraphqlArgs) -> anyhow::Result<()> {
    let owner = db::owner_pool(&scratch.options, 4).await?;
    let pool = scratch.api_pool(40).await?;
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
