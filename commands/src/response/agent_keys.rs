//! Agent keys: issuing and revoking them (event + global lookup row in one transaction) and
//! resolving the key an enforcement agent presents to its org.
//!
//! Resolution is not cached: agents call rarely (a long poll every few seconds), and a
//! revoked key must stop receiving orders at once.

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use sqlx::{PgPool, Row};
use uuid::Uuid;
use xdr_domain::aggregate::Aggregate;
use xdr_domain::ids::{AgentKeyId, OrgId};
use xdr_domain::response::agent_key::{AgentKey, AgentKeyCommand, AgentKeyError};
use xdr_domain::{Event, EventMetadata};

use crate::handler::CommandError;
use crate::ingest_keys::{
    constant_time_eq, generate_key_with_prefix, key_digest, revoke_credential, to_new_events, CredentialRow,
};
use crate::store::{EventStore, ExpectedVersion, StoreError};

/// Agent keys start with this, so they are told apart from ingest keys (`xdr_`) at a glance.
pub const AGENT_KEY_PREFIX: &str = "xdra_";

pub type AgentKeyCommandError = CommandError<AgentKeyError>;

/// A freshly issued agent key. `key` is shown once and never stored.
#[derive(Debug)]
pub struct IssuedAgentKey {
    pub key_id: AgentKeyId,
    pub org_id: OrgId,
    pub name: String,
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub key: SecretString,
}

pub async fn create_agent_key(
    store: &EventStore,
    org: OrgId,
    name: &str,
    metadata: &EventMetadata,
) -> Result<IssuedAgentKey, AgentKeyCommandError> {
    let key = generate_key_with_prefix(AGENT_KEY_PREFIX);
    let digest = key_digest(&key);
    let key_id = AgentKeyId(Uuid::now_v7());
    let command = AgentKeyCommand::Create {
        key_id,
        org_id: org,
        name: name.to_owned(),
        key_hash: hex::encode(digest),
        prefix: key.chars().take(8).collect(),
        now: Utc::now(),
    };
    let events = AgentKey::default().decide(&command).map_err(CommandError::Domain)?;
    let Some(Event::AgentKeyCreated(created)) = events.first().cloned() else {
        return Err(CommandError::Corrupt("AgentKey::decide(Create) did not create".into()));
    };
    let stream = key_id.stream_id();
    let mut tx = store.pool().begin().await.map_err(StoreError::from)?;
    store
        .append_in_tx(&mut tx, org, &stream, ExpectedVersion::NoStream, to_new_events(&stream, &events, metadata))
        .await?;
    sqlx::query("INSERT INTO agent_key_lookup (key_hash, org_id, key_id) VALUES ($1, $2, $3)")
        .bind(&digest[..])
        .bind(org.0)
        .bind(key_id.0)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(IssuedAgentKey {
        key_id,
        org_id: org,
        name: created.name,
        prefix: created.prefix,
        created_at: created.created_at,
        key: SecretString::from(key),
    })
}

/// Revoke an agent key of `org`. Returns `false` when it was already revoked.
pub async fn revoke_agent_key(
    store: &EventStore,
    org: OrgId,
    key_id: AgentKeyId,
    metadata: &EventMetadata,
) -> Result<bool, AgentKeyCommandError> {
    let key = CredentialRow { stream: key_id.stream_id(), key_id: key_id.0, lookup_table: "agent_key_lookup" };
    revoke_credential::<AgentKey>(store, org, &key, || AgentKeyCommand::Revoke { now: Utc::now() }, metadata).await
}

/// What a presented agent key turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentKeyStatus {
    Valid { org_id: OrgId, key_id: AgentKeyId },
    Revoked,
    Unknown,
}

impl AgentKeyStatus {
    /// `agentkey:<id>`: how an agent appears as an actor in events.
    pub fn actor(&self) -> Option<String> {
        match self {
            AgentKeyStatus::Valid { key_id, .. } => Some(format!("agentkey:{key_id}")),
            _ => None,
        }
    }
}

/// Map a presented key to its org, straight from the lookup table.
pub async fn resolve_agent_key(pool: &PgPool, presented: &str) -> Result<AgentKeyStatus, sqlx::Error> {
    if !presented.starts_with(AGENT_KEY_PREFIX) || presented.len() > 128 {
        return Ok(AgentKeyStatus::Unknown);
    }
    let digest = key_digest(presented);
    // Cross-org by nature (the key decides the org): only the row of this digest, through a
    // SECURITY DEFINER function.
    let row = sqlx::query("SELECT key_hash, org_id, key_id, revoked FROM xdr_find_agent_key($1)")
        .bind(&digest[..])
        .fetch_optional(pool)
        .await?;
    let Some(r) = row else { return Ok(AgentKeyStatus::Unknown) };
    let stored: Vec<u8> = r.try_get("key_hash")?;
    if !constant_time_eq(&stored, &digest) {
        return Ok(AgentKeyStatus::Unknown);
    }
    if r.try_get::<bool, _>("revoked")? {
        return Ok(AgentKeyStatus::Revoked);
    }
    Ok(AgentKeyStatus::Valid { org_id: OrgId(r.try_get("org_id")?), key_id: AgentKeyId(r.try_get("key_id")?) })
}
