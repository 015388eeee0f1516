//! Anchors against tail truncation. A hash chain cannot see an administrator who deletes the
//! newest rows and rewinds `org_heads` to match. So each org's `(org_seq, head hash)` is
//! published *outside* the database — to JetStream (`xdr.audit.anchors.<org_id>`, long
//! retention) and, if configured, to an append-only file — periodically and on demand.
//! `verify` then checks the log against the newest anchors.

use async_nats::jetstream::{self, stream};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;
use uuid::Uuid;

use xdr_commands::ingest::NatsError;
use xdr_commands::store::{EventStore, StoreError};

/// Where anchors go and how often.
#[derive(Debug, Clone)]
pub struct AnchorConfig {
    pub subject_prefix: String,
    pub stream_name: String,
    /// Append-only JSON-lines file of anchors, if any.
    pub file: Option<PathBuf>,
    /// Anchor an org once it has this many new events…
    pub every_events: i64,
    /// …or this much time has passed with any new event.
    pub every: Duration,
}

impl Default for AnchorConfig {
    fn default() -> Self {
        AnchorConfig {
            subject_prefix: String::new(),
            stream_name: "XDR_ANCHORS".into(),
            file: None,
            every_events: 1_000,
            every: Duration::from_secs(300),
        }
    }
}

impl AnchorConfig {
    /// Names unique to `prefix` (tests, or several deployments on one NATS).
    pub fn with_prefix(prefix: &str) -> Self {
        let tag: String = prefix.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
        AnchorConfig {
            subject_prefix: prefix.to_owned(),
            stream_name: format!("XDR_ANCHORS_{tag}"),
            ..AnchorConfig::default()
        }
    }

    pub fn subject(&self, org: Uuid) -> String {
        format!("{}xdr.audit.anchors.{org}", self.subject_prefix)
    }

    fn wildcard(&self) -> String {
        format!("{}xdr.audit.anchors.>", self.subject_prefix)
    }
}

/// One org's chain head, witnessed at a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    pub org_id: Uuid,
    pub org_seq: i64,
    /// Hex SHA-256 of the event at `org_seq`.
    pub head_hash: String,
    pub anchored_at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    #[error(transparent)]
    Nats(#[from] NatsError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("anchor file: {0}")]
    File(#[from] std::io::Error),
}

/// Publishes anchors; remembers what it anchored last so idle orgs are not re-anchored.
pub struct Anchorer {
    js: jetstream::Context,
    store: EventStore,
    config: AnchorConfig,
    last: HashMap<Uuid, (i64, std::time::Instant)>,
}

impl Anchorer {
    pub async fn new(client: async_nats::Client, store: EventStore, config: AnchorConfig) -> Result<Self, AnchorError> {
        let js = jetstream::new(client);
        xdr_commands::cluster::ensure_stream(
            &js,
            stream::Config {
                name: config.stream_name.clone(),
                subjects: vec![config.wildcard()],
                // Anchors are tiny and are the evidence: keep them (per subject, the newest many).
                max_messages_per_subject: 10_000,
                ..Default::default()
            },
        )
        .await?;
        Ok(Anchorer { js, store, config, last: HashMap::new() })
    }

    /// Anchor every org whose head moved enough (or, with `force`, at all) since its last anchor.
    pub async fn anchor_due(&mut self, force: bool) -> Result<Vec<Anchor>, AnchorError> {
        let mut written = Vec::new();
        for (org, last_seq) in self.store.org_heads().await? {
            let due = match self.last.get(&org.0) {
                None => last_seq > 0,
                Some((seq, at)) => {
                    last_seq > *seq
                        && (force || last_seq - seq >= self.config.every_events || at.elapsed() >= self.config.every)
                }
            };
            if !due {
                continue;
            }
            let Some((seq, hash)) = self.store.head(org).await? else { continue };
            let anchor = Anchor { org_id: org.0, org_seq: seq, head_hash: hex::encode(hash), anchored_at: Utc::now() };
            let body = serde_json::to_vec(&anchor).expect("anchors serialize");
            self.js
                .publish(self.config.subject(org.0), body.into())
                .await
                .map_err(NatsError::from_display)?
                .await
                .map_err(NatsError::from_display)?;
            if let Some(path) = &self.config.file {
                let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
                writeln!(f, "{}", serde_json::to_string(&anchor).expect("anchors serialize"))?;
            }
            self.last.insert(org.0, (seq, std::time::Instant::now()));
            written.push(anchor);
        }
        Ok(written)
    }

    /// The newest anchor of each org that has one, from JetStream.
    pub async fn newest(&self, orgs: &[Uuid]) -> Result<Vec<Anchor>, AnchorError> {
        newest_from_nats(&self.js, &self.config, orgs).await
    }
}

/// The newest anchor per org from JetStream (orgs without one are skipped).
pub async fn newest_from_nats(
    js: &jetstream::Context,
    config: &AnchorConfig,
    orgs: &[Uuid],
) -> Result<Vec<Anchor>, AnchorError> {
    let stream = js.get_stream(&config.stream_name).await.map_err(NatsError::from_display)?;
    let mut anchors = Vec::new();
    for org in orgs {
        if let Ok(msg) = stream.get_last_raw_message_by_subject(&config.subject(*org)).await {
            if let Ok(a) = serde_json::from_slice::<Anchor>(&msg.payload) {
                anchors.push(a);
            }
        }
    }
    Ok(anchors)
}

/// The newest anchor per org from an anchor file.
pub fn newest_from_file(path: &std::path::Path) -> Result<Vec<Anchor>, AnchorError> {
    let text = std::fs::read_to_string(path)?;
    let mut newest: HashMap<Uuid, Anchor> = HashMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Ok(a) = serde_json::from_str::<Anchor>(line) {
            let keep = newest.get(&a.org_id).is_none_or(|old| a.org_seq >= old.org_seq);
            if keep {
                newest.insert(a.org_id, a);
            }
        }
    }
    Ok(newest.into_values().collect())
}

/// Anchor periodically until `shutdown`.
pub async fn run_anchorer(
    client: async_nats::Client,
    store: EventStore,
    config: AnchorConfig,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), AnchorError> {
    let mut anchorer = Anchorer::new(client, store, config).await?;
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            _ = tick.tick() => {
                if let Err(e) = anchorer.anchor_due(false).await {
                    tracing::warn!(error = %e, "anchoring failed; will retry");
                }
            }
        }
    }
}
