//! Shared support for ingest and relay tests: a unique NATS prefix (streams deleted when the
//! test ends, also on panic), an org with a fresh ingest key, a running ingestor, and
//! counting helpers over the event log and the dead-letter stream.

use async_nats::jetstream;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;
use xdr_commands::ingest::nats_ingestor::{ingest_consumer, IngestorStats};
use xdr_commands::ingest::{run_ingestor, IngestConfig};
use xdr_commands::ingest_keys::{create_ingest_key, IngestKeyResolver};
use xdr_commands::testing::TestDb;
use xdr_commands::EventStore;
use xdr_domain::ids::{IngestKeyId, OrgId};
use xdr_domain::EventMetadata;

pub fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

pub fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../domain/tests/fixtures").join(name)
}

/// A test's own corner of NATS.
pub struct NatsEnv {
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub config: IngestConfig,
}

impl NatsEnv {
    pub async fn new() -> NatsEnv {
        let client = async_nats::connect(nats_url()).await.expect("connect to NATS");
        let mut config = IngestConfig::with_prefix(&format!("t{}.", Uuid::new_v4().simple()));
        config.batch_wait = Duration::from_millis(100);
        let js = jetstream::new(client.clone());
        NatsEnv { client, js, config }
    }

    /// Every dead letter in the DLQ stream: (reason, source subject, record index, body).
    pub async fn dead_letters(&self) -> Vec<(String, String, Option<usize>, String)> {
        let Ok(mut stream) = self.js.get_stream(&self.config.dlq_stream_name).await else { return vec![] };
        let last = stream.info().await.expect("dlq info").state.last_sequence;
        let mut out = Vec::new();
        for seq in 1..=last {
            let m = stream.get_raw_message(seq).await.expect("dlq message");
            let h = |name: &str| m.headers.get(name).map(|v| v.as_str().to_owned());
            out.push((
                h("Xdr-Dlq-Reason").unwrap_or_default(),
                h("Xdr-Source-Subject").unwrap_or_default(),
                h("Xdr-Record-Index").map(|i| i.parse().expect("index")),
                String::from_utf8(m.payload.to_vec()).expect("utf-8 body"),
            ));
        }
        out
    }

    /// Wait until the ingest consumer has nothing pending or unacked.
    pub async fn wait_drained(&self) {
        let consumer = ingest_consumer(&self.js, &self.config).await.expect("consumer");
        let mut consumer = consumer;
        for _ in 0..300 {
            let info = consumer.info().await.expect("consumer info");
            if info.num_pending == 0 && info.num_ack_pending == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("ingest consumer did not drain in 30 s");
    }
}

impl Drop for NatsEnv {
    fn drop(&mut self) {
        let url = nats_url();
        let names = [
            self.config.stream_name.clone(),
            self.config.dlq_stream_name.clone(),
            self.config.events_stream_name.clone(),
            xdr_commands::cluster::undeliverable_stream_name(&self.config.stream_name),
        ];
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                if let Ok(client) = async_nats::connect(url).await {
                    let js = jetstream::new(client);
                    for n in names {
                        let _ = js.delete_stream(&n).await;
                    }
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// An org with one fresh ingest key.
pub struct Tenant {
    pub org: OrgId,
    pub key: String,
    pub key_id: IngestKeyId,
}

/// Keys are issued by the API (an admin's `createIngestKey`), so as the API's login.
pub async fn tenant(db: &TestDb) -> Tenant {
    use secrecy::ExposeSecret;
    let org = OrgId(Uuid::new_v4());
    let store = EventStore::new(db.api.clone());
    let issued =
        create_ingest_key(&store, org, "test producer", &EventMetadata::system("operator")).await.expect("key");
    Tenant { org, key: issued.key.expose_secret().to_owned(), key_id: issued.key_id }
}

/// A running ingestor replica.
pub struct RunningIngestor {
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<Arc<IngestorStats>>,
}

impl RunningIngestor {
    pub fn start(env: &NatsEnv, db: &TestDb, config: IngestConfig) -> RunningIngestor {
        let (stop, stopped) = oneshot::channel::<()>();
        let store = EventStore::new(db.pool.clone());
        let resolver = Arc::new(IngestKeyResolver::new(db.pool.clone(), Duration::from_millis(500)));
        let client = env.client.clone();
        let handle = tokio::spawn(async move {
            run_ingestor(config, client, store, resolver, async {
                stopped.await.ok();
            })
            .await
            .expect("ingestor")
        });
        RunningIngestor { stop: Some(stop), handle }
    }

    pub async fn stop(mut self) -> Arc<IngestorStats> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.handle.await.expect("ingestor task")
    }
}

/// Telemetry events of `org`: count per `(payload field a, payload field b)`.
pub async fn count_by(db: &TestDb, org: OrgId, a: &str, b: &str) -> BTreeMap<(String, String), i64> {
    let rows: Vec<(Option<String>, Option<String>, i64)> = sqlx::query_as(
        "SELECT payload->>$2, payload->>$3, count(*) FROM event_log \
         WHERE org_id = $1 AND event_type = 'SecurityEventObserved' GROUP BY 1, 2",
    )
    .bind(org.0)
    .bind(a)
    .bind(b)
    .fetch_all(&db.pool)
    .await
    .expect("count");
    rows.into_iter()
        .map(|(x, y, n)| ((x.unwrap_or_else(|| "(none)".into()), y.unwrap_or_else(|| "(none)".into())), n))
        .collect()
}

/// Telemetry events in the whole database (every org).
pub async fn telemetry_count(db: &TestDb) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM event_log WHERE event_type = 'SecurityEventObserved'")
        .fetch_one(&db.pool)
        .await
        .expect("count")
}

/// Poll until the database holds `want` telemetry events (or fail after 30 s).
pub async fn wait_for_events(db: &TestDb, want: i64) {
    for _ in 0..300 {
        if telemetry_count(db).await >= want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("expected {want} events, have {}", telemetry_count(db).await);
}

/// Sum counts over the second key: per first-key totals.
pub fn totals_by_first(counts: &BTreeMap<(String, String), i64>) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for ((a, _), n) in counts {
        *out.entry(a.clone()).or_default() += n;
    }
    out
}
