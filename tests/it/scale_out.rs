//! The distributed engines the roles scale out to, losing a node mid-ingest (issue #18):
//! a 3-node JetStream cluster (streams at R3) losing the server that leads the ingest
//! stream, and a PostgreSQL primary crashing, its streaming standby promoted. Every role runs
//! as its own process and comes back by itself; afterwards every record is exactly one
//! event, `verify` passes, the read models equal a rebuild, each brute-force source has one
//! high incident and each block was dispatched once per attempt (the fault suite's checks,
//! `scale_out_support.rs`).
//!
//! CI runs one leader loss and one failover; `XDR_SCALE_OUT_FULL=1` kills the leader of
//! every stream in turn.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::scale_out_support::{
    assert_nothing_lost_nothing_twice, nats_passwords, pg_tools_available, random_below, stream_placement, time_until,
    watch_lag, Deployment, Load, NatsCluster, PgPair, Pipeline,
};
use crate::support::nats_prefix;
use xdr_commands::testing::TestDb;

/// The streams the load goes through, as the roles name them (no prefix: a private cluster).
const STREAMS: [&str; 3] = ["XDR_INGEST", "XDR_EVENTS", "XDR_ACTIONS"];

async fn jetstream_cluster_loses_leaders(victims: &[&'static str]) {
    let _turn = crate::support::ONE_PIPELINE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = NatsCluster::start(dir.path(), 3).await;
    let db = TestDb::new().await;
    let mut env: Vec<(String, String)> = db.env().into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    env.push(("NATS_URL".into(), cluster.url()));
    env.push(("XDR_NATS_STREAM_REPLICAS".into(), "3".into()));
    env.extend(nats_passwords());
    let producer_env = vec![
        ("NATS_URL".to_owned(), cluster.url()),
        ("XDR_NATS_PRODUCER_PASSWORD".to_owned(), xdr_commands::test_nats::ShippedNats::password_of("producer")),
    ];
    let deployment = Deployment { env, owner_url: db.url().into(), producer_env };
    let pipeline = Pipeline::start(dir.path(), deployment).await;

    // The roles made every stream at R3.
    let relay = async_nats::jetstream::new(cluster.connect_as("relay").await);
    let ingestor = async_nats::jetstream::new(cluster.connect_as("ingestor").await);
    let api = async_nats::jetstream::new(cluster.connect_as("api").await);
    let placement = |stream: &'static str| {
        let js = match stream {
            "XDR_INGEST" => ingestor.clone(),
            "XDR_EVENTS" => relay.clone(),
            _ => api.clone(),
        };
        async move { stream_placement(&js, stream).await }
    };
    // A loaded machine may still be electing the streams' leaders: ask until they answer.
    let settled_placement = |stream: &'static str| async move {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(found) = placement(stream).await {
                return found;
            }
            assert!(Instant::now() < deadline, "{stream} has no cluster placement");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    for stream in STREAMS {
        let (_, replicas) = settled_placement(stream).await;
        assert_eq!(replicas, 3, "{stream} replicas");
    }

    let load = Load::new(dir.path());
    let split = random_below(load.http_batches());
    let stop_watch = AtomicBool::new(false);
    let mut report = Vec::new();
    let run = async {
        load.first_part(&pipeline, split).await;
        let mut rest_sent = false;
        for victim_stream in victims {
            let (leader, _) = settled_placement(victim_stream).await;
            let meta = cluster.meta_leader().await;
            let node = cluster.index_of(&leader);
            cluster.nodes[node].kill();
            let killed = Instant::now();
            // A new leader is elected among the two left.
            let elected = time_until(Duration::from_secs(60), || async {
                placement(victim_stream).await.is_some_and(|(l, _)| l != leader)
            })
            .await
            .unwrap_or_else(|| panic!("no new leader for {victim_stream}\n{}", cluster.logs()));
            // Ingest goes on while the node is down (the producer publishes to the two left),
            // then it comes back and catches up.
            if !rest_sent {
                load.rest(&pipeline, split).await;
                rest_sent = true;
            }
            let all_in = time_until(Duration::from_secs(120), || async { pipeline.telemetry().await >= load.expected })
                .await
                .map(|_| killed.elapsed());
            cluster.restart(node);
            cluster.wait_for_meta_leader().await;
            report.push(format!(
                "killed {leader} (leader of {victim_stream}, meta leader {meta:?}): new leader in {elected:?}, \
                 every record committed {all_in:?} after the kill, node restarted {:?} after the kill",
                killed.elapsed()
            ));
        }
        stop_watch.store(true, Ordering::Relaxed);
    };
    let ((), worst_lag) = tokio::join!(run, watch_lag(&pipeline, &stop_watch));
    let settle_started = Instant::now();
    assert_nothing_lost_nothing_twice(&pipeline, &load, "losing a JetStream leader", || cluster.logs()).await;

    // Every role stayed up (no restart by the test) and every stream is back at three replicas.
    for role in pipeline.roles.values() {
        role.ready().await;
        let log = role.log();
        assert!(!log.contains("dead-letterer of undeliverable ingest messages stopped"), "{}: {log}", role.name);
    }
    let mut ingest = ingestor.get_stream("XDR_INGEST").await.unwrap();
    let mut consumer: async_nats::jetstream::consumer::PullConsumer =
        ingest.get_consumer("xdr-ingestor").await.unwrap();
    let delivered = consumer.info().await.unwrap().delivered.consumer_sequence;
    let published = ingest.info().await.unwrap().state.last_sequence;
    // Every delivery beyond one per published message was a redelivery.
    let redelivered = delivered.saturating_sub(published);
    for line in &report {
        eprintln!("fault jetstream-cluster: {line}");
    }
    eprintln!(
        "fault jetstream-cluster: settled {:?} after the load; ingest messages redelivered {redelivered}, \
         duplicate records dropped {}, worst projection lag {worst_lag} events",
        settle_started.elapsed(),
        pipeline.duplicates_dropped()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jetstream_cluster_losing_the_ingest_streams_leader_mid_ingest_loses_and_doubles_nothing() {
    if std::env::var("XDR_SCALE_OUT_FULL").is_ok_and(|v| v == "1") {
        jetstream_cluster_loses_leaders(&STREAMS).await;
    } else {
        jetstream_cluster_loses_leaders(&["XDR_INGEST"]).await;
    }
}

/// The primary crashes (`pg_ctl stop -m immediate`) mid-ingest and its standby is
/// promoted; the roles, given both hosts with `target_session_attrs=read-write`, move to it
/// by themselves. Replication is synchronous here, so no acknowledged commit is lost; with
/// asynchronous replication the commits not yet streamed are (docs/OPERATIONS.md, "Scaling
/// out").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_primary_crashing_and_its_standby_promoted_mid_ingest_loses_and_doubles_nothing() {
    if !pg_tools_available() {
        eprintln!("the PostgreSQL server tools are not installed: skipping the failover test");
        return;
    }
    let _turn = crate::support::ONE_PIPELINE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut pair = PgPair::start(true);
    let database = "xdr";
    {
        use sqlx::{Connection, Executor};
        let mut conn = sqlx::PgConnection::connect(&pair.primary.owner_url("postgres")).await.unwrap();
        conn.execute(format!("CREATE DATABASE {database}").as_str()).await.unwrap();
    }
    let owner = pair.primary.owner_url(database);
    let migrated = std::process::Command::new(env!("CARGO_BIN_EXE_mini-xdr"))
        .arg("migrate")
        .env("XDR_MIGRATE_DATABASE_URL", &owner)
        .env("DATABASE_URL", &owner)
        .env_remove("XDR_CONFIG")
        .output()
        .unwrap();
    assert!(migrated.status.success(), "migrate: {}", String::from_utf8_lossy(&migrated.stderr));
    let logins = std::process::Command::new("psql")
        .arg(&owner)
        .args(["-q", "-v", "ON_ERROR_STOP=1", "-v", "api_login=xdr_fo_api", "-v", "api_password=api-secret"])
        .args(["-v", "worker_login=xdr_fo_worker", "-v", "worker_password=worker-secret", "-f"])
        .arg(crate::support::repo("deploy/db-logins.sql"))
        .output()
        .expect("psql");
    assert!(logins.status.success(), "db-logins.sql: {}", String::from_utf8_lossy(&logins.stderr));
    let hosts = format!("127.0.0.1:{},127.0.0.1:{}", pair.primary.port, pair.standby.port);
    let url = |login: &str, password: &str| {
        format!("postgres://{login}:{password}@{hosts}/{database}?target_session_attrs=read-write")
    };
    let prefix = nats_prefix();
    let env = vec![
        ("DATABASE_URL".to_owned(), url("xdr_fo_worker", "worker-secret")),
        ("XDR_API_DATABASE_URL".to_owned(), url("xdr_fo_api", "api-secret")),
        ("XDR_NATS_PREFIX".to_owned(), prefix.clone()),
    ];
    let deployment =
        Deployment { env, owner_url: owner.into(), producer_env: vec![("XDR_NATS_PREFIX".to_owned(), prefix)] };
    let pipeline = Pipeline::start(dir.path(), deployment).await;

    let load = Load::new(dir.path());
    let split = random_below(load.http_batches());
    let stop_watch = AtomicBool::new(false);
    let mut outage = Duration::ZERO;
    let mut recovered = None;
    let run = async {
        load.first_part(&pipeline, split).await;
        pair.primary.stop_immediately();
        let crashed = Instant::now();
        tokio::time::sleep(Duration::from_secs(2)).await;
        pair.standby.promote();
        outage = crashed.elapsed();
        pipeline.set_owner_url(pair.standby.owner_url(database));
        let before = pipeline.telemetry().await;
        load.rest(&pipeline, split).await;
        recovered = time_until(Duration::from_secs(120), || async { pipeline.telemetry().await > before })
            .await
            .map(|_| crashed.elapsed());
        stop_watch.store(true, Ordering::Relaxed);
    };
    let ((), worst_lag) = tokio::join!(run, watch_lag(&pipeline, &stop_watch));
    let settle_started = Instant::now();
    assert_nothing_lost_nothing_twice(&pipeline, &load, "a PostgreSQL failover", || pair.logs()).await;
    for role in pipeline.roles.values() {
        role.ready().await;
    }
    let switched = pipeline.roles.values().filter(|r| r.log().contains("database failover")).count();
    assert!(switched >= 1, "the roles' pools followed the promoted standby\n{}", pipeline.logs());
    eprintln!(
        "fault postgres-failover: primary down {outage:?} until the standby was promoted; events committed on the \
         new primary {recovered:?} after the crash; settled {:?} after the load; {switched} role(s) logged the \
         switch; duplicate records dropped {}; worst projection lag {worst_lag} events",
        settle_started.elapsed(),
        pipeline.duplicates_dropped()
    );
}
