//! The relay: fans committed events out to NATS. For each org it reads the log after its
//! checkpoint (`relay_checkpoints`), publishes every event to
//! `<prefix>xdr.events.<org_id>.<EventType>` (stream `XDR_EVENTS`) with
//! `Nats-Msg-Id = <org_id>/<event_id>`, waits for JetStream's acks, and only then advances the
//! checkpoint. The id is scoped by org because event ids are unique per org only, and a
//! producer chooses the message ids its telemetry's event ids derive from: an unscoped id
//! would let one org's event de-duplicate (suppress) another's.
//!
//! Secrets stay in the database: every payload but telemetry goes out through
//! [`crate::trust::fan_out_payload`] (no password hashes, invitation or key hashes). The
//! message is a notification, not evidence: consumers that act (the detector) read the event
//! back from the log by its `(org_id, org_seq)`. A crash between ack and checkpoint re-publishes a tail of events, which
//! JetStream drops as duplicates inside its de-duplication window: at-least-once delivery,
//! exactly-once in the stream, in `org_seq` order per org.
//!
//! Reads are gap-safe for the reason `subscription` gives: only events up to the org's
//! committed head are read. Run one relay per database (replicas would only add duplicates
//! for JetStream to drop).

use async_nats::jetstream::{self, context::Publish, stream};
use async_nats::HeaderMap;
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use std::future::Future;
use std::time::Duration;
use xdr_domain::ids::OrgId;

use crate::ingest::{IngestConfig, NatsError};
use crate::store::{read_org_with, EventStore, StoreError, StoredEvent, NOTIFY_CHANNEL};

/// Events read and published per org per round.
pub const RELAY_BATCH: i64 = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Nats(#[from] NatsError),
    #[error("relay store error: {0}")]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for RelayError {
    fn from(e: sqlx::Error) -> Self {
        RelayError::Store(StoreError::Database(e))
    }
}

/// Create (or keep) the `XDR_EVENTS` stream.
pub async fn ensure_events_stream(js: &jetstream::Context, config: &IngestConfig) -> Result<(), NatsError> {
    crate::cluster::ensure_stream(
        js,
        stream::Config {
            name: config.events_stream_name.clone(),
            subjects: vec![config.events_wildcard()],
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        },
    )
    .await?;
    Ok(())
}

/// The relay's position in one org's log.
pub async fn checkpoint(pool: &PgPool, org: OrgId) -> Result<i64, sqlx::Error> {
    let seq: Option<i64> = sqlx::query_scalar("SELECT last_seq FROM relay_checkpoints WHERE org_id = $1")
        .bind(org.0)
        .fetch_optional(pool)
        .await?;
    Ok(seq.unwrap_or(0))
}

async fn save_checkpoint(pool: &PgPool, org: OrgId, seq: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO relay_checkpoints (org_id, last_seq) VALUES ($1, $2) \
         ON CONFLICT (org_id) DO UPDATE SET last_seq = GREATEST(relay_checkpoints.last_seq, EXCLUDED.last_seq)",
    )
    .bind(org.0)
    .bind(seq)
    .execute(pool)
    .await?;
    Ok(())
}

/// The de-duplication id of an event's message: unique across orgs.
pub fn message_id(e: &StoredEvent) -> String {
    format!("{}/{}", e.org_id, e.event_id)
}

/// The event as it is published: secrets redacted.
fn fanned_out(e: &StoredEvent) -> StoredEvent {
    StoredEvent { payload: crate::trust::fan_out_payload(&e.event_type, &e.payload), ..e.clone() }
}

/// One relay process: publishes what is behind each org's checkpoint.
pub struct Relay {
    js: jetstream::Context,
    config: IngestConfig,
    store: EventStore,
}

impl Relay {
    pub async fn new(client: async_nats::Client, config: IngestConfig, store: EventStore) -> Result<Relay, RelayError> {
        let js = jetstream::new(client);
        ensure_events_stream(&js, &config).await?;
        Ok(Relay { js, config, store })
    }

    /// Publish everything committed so far (up to `RELAY_BATCH` per org); returns the number
    /// of events published.
    pub async fn round(&self) -> Result<usize, RelayError> {
        let mut published = 0;
        let pool = self.store.pool();
        // One query finds the orgs that are behind, so an idle round costs one round trip.
        let behind: Vec<(uuid::Uuid, i64, i64)> = sqlx::query_as(
            "SELECT h.org_id, h.last_seq, COALESCE(c.last_seq, 0) FROM org_heads h \
             LEFT JOIN relay_checkpoints c ON c.org_id = h.org_id \
             WHERE h.last_seq > COALESCE(c.last_seq, 0) ORDER BY h.org_id",
        )
        .fetch_all(pool)
        .await?;
        for (org, head, after) in behind {
            let org = OrgId(org);
            let events = read_org_with(pool, org, after, head, RELAY_BATCH).await?;
            let mut acks = Vec::with_capacity(events.len());
            for e in &events {
                let mut headers = HeaderMap::new();
                headers.insert("Xdr-Org-Id", e.org_id.to_string().as_str());
                headers.insert("Xdr-Org-Seq", e.org_seq.to_string().as_str());
                headers.insert("Xdr-Event-Type", e.event_type.as_str());
                let body = serde_json::to_vec(&fanned_out(e)).expect("stored events serialize");
                let publish = Publish::build().headers(headers).payload(body.into()).message_id(message_id(e));
                let subject = self.config.event_subject(e.org_id, &e.event_type);
                acks.push(self.js.send_publish(subject, publish).await.map_err(NatsError::from_display)?);
            }
            // Checkpoint only what JetStream has acknowledged, in order.
            let mut acked_to = after;
            let mut failure = None;
            for (ack, e) in acks.into_iter().zip(&events) {
                match ack.await {
                    Ok(_) => acked_to = e.org_seq,
                    Err(err) => {
                        failure = Some(NatsError::from_display(err));
                        break;
                    }
                }
            }
            if acked_to > after {
                save_checkpoint(pool, org, acked_to).await?;
                published += (acked_to - after) as usize;
            }
            if let Some(e) = failure {
                return Err(e.into());
            }
        }
        Ok(published)
    }
}

/// Run the relay until `shutdown` resolves. Wakes on the log's NOTIFY, polls every
/// `poll_interval` otherwise; failures are logged and retried.
pub async fn run_relay(
    config: IngestConfig,
    client: async_nats::Client,
    store: EventStore,
    poll_interval: Duration,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), RelayError> {
    let relay = Relay::new(client, config, store.clone()).await?;
    let mut listener = PgListener::connect_with(store.pool()).await?;
    listener.listen(NOTIFY_CHANNEL).await?;
    tokio::pin!(shutdown);
    loop {
        let idle = match relay.round().await {
            Ok(n) => n == 0,
            Err(e) => {
                tracing::error!(error = %e, "relay round failed; retrying");
                true
            }
        };
        if !idle {
            continue;
        }
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            _ = listener.recv() => {}
            _ = tokio::time::sleep(poll_interval) => {}
        }
    }
}
