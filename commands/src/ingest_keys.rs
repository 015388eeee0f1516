//! Ingest keys: issuing and revoking them (event + global lookup row in one transaction) and
//! resolving a key a producer presents to its org, cached briefly.
//!
//! The plaintext key exists only in the caller's hands: it is generated here, returned once,
//! and only its SHA-256 is stored (in the event and in `ingest_key_lookup`).

use chrono::{DateTime, Utc};
use rand::Rng;
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use sqlx::{PgPool, Row};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use uuid::Uuid;
use xdr_domain::aggregate::Aggregate;
use xdr_domain::ids::{IngestKeyId, OrgId};
use xdr_domain::ingest_key::{CreateIngestKey, IngestKey, IngestKeyCommand, IngestKeyError};
use xdr_domain::{Event, EventMetadata};

use crate::handler::{load, retry_on_conflict, CommandError, MAX_ATTEMPTS};
use crate::store::{EventStore, ExpectedVersion, NewEvent, StoreError};

/// Every key starts with this, so a leaked key is recognisable (secret scanners, logs).
pub const KEY_PREFIX: &str = "xdr_";
/// Random characters after the prefix (url-safe alphabet: 6 bits each, 240 bits in all).
pub const KEY_RANDOM_CHARS: usize = 40;
const URL_SAFE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// A freshly issued key. `key` is shown to the operator once and never stored.
#[derive(Debug)]
pub struct IssuedIngestKey {
    pub key_id: IngestKeyId,
    pub org_id: OrgId,
    pub name: String,
    /// First 8 characters of the key, kept for display.
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub key: SecretString,
}

pub type IngestKeyCommandError = CommandError<IngestKeyError>;

/// A new random key: `xdr_` + 40 url-safe characters from the OS-seeded CSPRNG.
pub fn generate_key() -> String {
    generate_key_with_prefix(KEY_PREFIX)
}

/// `prefix` + 40 url-safe random characters (shared with agent keys, which use `xdra_`).
pub fn generate_key_with_prefix(prefix: &str) -> String {
    let mut rng = rand::thread_rng();
    let random: String = (0..KEY_RANDOM_CHARS).map(|_| URL_SAFE[rng.gen_range(0..URL_SAFE.len())] as char).collect();
    format!("{prefix}{random}")
}

/// SHA-256 of a key. A key carries 240 random bits, so a fast hash is enough (no password
/// stretching needed) and the lookup can be an index probe.
pub fn key_digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Issue a key for `org`: append `IngestKeyCreated` and insert the lookup row together.
pub async fn create_ingest_key(
    store: &EventStore,
    org: OrgId,
    name: &str,
    metadata: &EventMetadata,
) -> Result<IssuedIngestKey, IngestKeyCommandError> {
    let key = generate_key();
    let digest = key_digest(&key);
    let key_id = IngestKeyId(Uuid::now_v7());
    let now = Utc::now();
    let command = IngestKeyCommand::Create(CreateIngestKey {
        key_id,
        org_id: org,
        name: name.to_owned(),
        key_hash: hex::encode(digest),
        prefix: key.chars().take(8).collect(),
        now,
    });
    let events = IngestKey::default().decide(&command).map_err(CommandError::Domain)?;
    let Some(Event::IngestKeyCreated(created)) = events.first().cloned() else {
        return Err(CommandError::Corrupt("IngestKey::decide(Create) did not create".into()));
    };
    let stream = key_id.stream_id();
    let new_events = to_new_events(&stream, &events, metadata);
    let mut tx = store.pool().begin().await.map_err(StoreError::from)?;
    store.append_in_tx(&mut tx, org, &stream, ExpectedVersion::NoStream, new_events).await?;
    sqlx::query("INSERT INTO ingest_key_lookup (key_hash, org_id, key_id) VALUES ($1, $2, $3)")
        .bind(&digest[..])
        .bind(org.0)
        .bind(key_id.0)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(IssuedIngestKey {
        key_id,
        org_id: org,
        name: created.name,
        prefix: created.prefix,
        created_at: created.created_at,
        key: SecretString::from(key),
    })
}

/// Revoke a key of `org`. Returns `false` when it was already revoked (a no-op).
pub async fn revoke_ingest_key(
    store: &EventStore,
    org: OrgId,
    key_id: IngestKeyId,
    metadata: &EventMetadata,
) -> Result<bool, IngestKeyCommandError> {
    let key = CredentialRow { stream: key_id.stream_id(), key_id: key_id.0, lookup_table: "ingest_key_lookup" };
    revoke_credential::<IngestKey>(store, org, &key, || IngestKeyCommand::Revoke { now: Utc::now() }, metadata).await
}

/// Where a credential lives: its stream and its row in a global lookup table.
pub(crate) struct CredentialRow {
    pub stream: String,
    pub key_id: Uuid,
    /// `ingest_key_lookup` or `agent_key_lookup` (same columns).
    pub lookup_table: &'static str,
}

/// Revoke a credential (ingest or agent key): decide on its stream and, when that revokes,
/// append the event and mark its lookup row revoked in one transaction, so the key stops
/// resolving exactly when the log says it was revoked. `false` when it already was.
pub(crate) async fn revoke_credential<A: Aggregate>(
    store: &EventStore,
    org: OrgId,
    key: &CredentialRow,
    revoke: impl Fn() -> A::Command,
    metadata: &EventMetadata,
) -> Result<bool, CommandError<A::Error>> {
    retry_on_conflict(MAX_ATTEMPTS, || async {
        let (state, version) = load::<A>(store, org, &key.stream).await?;
        let events = state.decide(&revoke()).map_err(CommandError::Domain)?;
        let revoked_at = match events.first() {
            Some(Event::IngestKeyRevoked(r)) => r.revoked_at,
            Some(Event::AgentKeyRevoked(r)) => r.revoked_at,
            _ => return Ok(false),
        };
        let mut tx = store.pool().begin().await.map_err(StoreError::from)?;
        let new_events = to_new_events(&key.stream, &events, metadata);
        store.append_in_tx(&mut tx, org, &key.stream, ExpectedVersion::Exact(version), new_events).await?;
        sqlx::query(&format!("UPDATE {} SET revoked_at = $3 WHERE key_id = $1 AND org_id = $2", key.lookup_table))
            .bind(key.key_id)
            .bind(org.0)
            .bind(revoked_at)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(true)
    })
    .await
}

pub(crate) fn to_new_events(stream: &str, events: &[Event], metadata: &EventMetadata) -> Vec<NewEvent> {
    events.iter().map(|e| NewEvent::from_event(Uuid::now_v7(), stream, e, metadata)).collect()
}

/// Who a presented key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolvedKey {
    pub org_id: OrgId,
    pub key_id: IngestKeyId,
}

/// What a presented key turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    Valid(ResolvedKey),
    Revoked,
    Unknown,
}

impl KeyStatus {
    /// The reason a message is refused, for dead-letter headers and HTTP errors.
    pub fn refusal(&self) -> Option<&'static str> {
        match self {
            KeyStatus::Valid(_) => None,
            KeyStatus::Revoked => Some("revoked ingest key"),
            KeyStatus::Unknown => Some("unknown ingest key"),
        }
    }
}

/// Maps a presented key to its org. Results (also "unknown") are cached for at most `ttl`,
/// so a revoked key stops working within `ttl` and a flood of bad keys costs one query per
/// key per `ttl`.
pub struct IngestKeyResolver {
    pool: PgPool,
    ttl: Duration,
    cache: Mutex<HashMap<[u8; 32], (Instant, KeyStatus)>>,
}

/// Cache entries kept at most; past it the cache starts over (cheap, and bounded).
const MAX_CACHED_KEYS: usize = 10_000;

impl IngestKeyResolver {
    /// Default time a resolution is trusted.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(2);

    pub fn new(pool: PgPool, ttl: Duration) -> Self {
        IngestKeyResolver { pool, ttl, cache: Mutex::new(HashMap::new()) }
    }

    pub async fn resolve(&self, presented: &str) -> Result<KeyStatus, sqlx::Error> {
        // Anything that cannot be one of our keys is refused without touching the database.
        let plausible = presented.starts_with(KEY_PREFIX) && presented.len() <= 128;
        if !plausible {
            return Ok(KeyStatus::Unknown);
        }
        let digest = key_digest(presented);
        if let Some((at, status)) = self.cache.lock().expect("resolver cache").get(&digest) {
            if at.elapsed() < self.ttl {
                return Ok(*status);
            }
        }
        // The key decides the org, so the lookup crosses orgs: a SECURITY DEFINER function
        // that returns only the row of this digest (no role can list the table).
        let row = sqlx::query("SELECT key_hash, org_id, key_id, revoked FROM xdr_find_ingest_key($1)")
            .bind(&digest[..])
            .fetch_optional(&self.pool)
            .await?;
        let status = match row {
            Some(r) => {
                let stored: Vec<u8> = r.try_get("key_hash")?;
                if !constant_time_eq(&stored, &digest) {
                    KeyStatus::Unknown
                } else if r.try_get::<bool, _>("revoked")? {
                    KeyStatus::Revoked
                } else {
                    KeyStatus::Valid(ResolvedKey {
                        org_id: OrgId(r.try_get("org_id")?),
                        key_id: IngestKeyId(r.try_get("key_id")?),
                    })
                }
            }
            None => KeyStatus::Unknown,
        };
        let mut cache = self.cache.lock().expect("resolver cache");
        if cache.len() >= MAX_CACHED_KEYS {
            cache.clear();
        }
        cache.insert(digest, (Instant::now(), status));
        Ok(status)
    }
}

/// Compare without an early exit, so timing does not reveal how much of a digest matched.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_prefix_and_url_safe_randomness() {
        let a = generate_key();
        let b = generate_key();
        assert_ne!(a, b);
        assert_eq!(a.len(), KEY_PREFIX.len() + KEY_RANDOM_CHARS);
        assert!(a.starts_with("xdr_"));
        assert!(a[4..].bytes().all(|c| URL_SAFE.contains(&c)));
    }

    #[test]
    fn constant_time_eq_compares_whole_slices() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
