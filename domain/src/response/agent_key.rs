//! The `AgentKey` aggregate (`agentkey-<uuid>`): the credential an enforcement agent presents.
//! Like an ingest key, only its SHA-256 and a display prefix are recorded; unlike one, it
//! lets its holder receive the org's containment orders, so it is a separate credential that
//! a producer's key can never be used as.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::aggregate::Aggregate;
use crate::ids::{AgentKeyId, OrgId};
use crate::ingest_key::{credential_name, is_sha256_hex, MAX_NAME_CHARS};
use crate::Event;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentKeyCreated {
    pub key_id: AgentKeyId,
    pub org_id: OrgId,
    pub name: String,
    /// Hex SHA-256 of the plaintext key.
    pub key_hash: String,
    pub prefix: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentKeyRevoked {
    pub key_id: AgentKeyId,
    pub revoked_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AgentKeyCommand {
    Create { key_id: AgentKeyId, org_id: OrgId, name: String, key_hash: String, prefix: String, now: DateTime<Utc> },
    Revoke { now: DateTime<Utc> },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentKeyError {
    #[error("agent key already exists")]
    AlreadyExists,
    #[error("no such agent key")]
    NotFound,
    #[error("agent key name must be 1 to {MAX_NAME_CHARS} characters")]
    InvalidName,
    #[error("agent key hash must be 64 lower-case hex characters")]
    InvalidHash,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentKey {
    pub created: Option<AgentKeyCreated>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl AgentKey {
    pub fn is_active(&self) -> bool {
        self.created.is_some() && self.revoked_at.is_none()
    }
}

impl Aggregate for AgentKey {
    type Command = AgentKeyCommand;
    type Error = AgentKeyError;

    fn apply(&mut self, event: &Event) {
        match event {
            Event::AgentKeyCreated(e) => self.created = Some(e.clone()),
            Event::AgentKeyRevoked(e) => self.revoked_at = Some(e.revoked_at),
            _ => {}
        }
    }

    fn decide(&self, command: &AgentKeyCommand) -> Result<Vec<Event>, AgentKeyError> {
        match command {
            AgentKeyCommand::Create { key_id, org_id, name, key_hash, prefix, now } => {
                if self.created.is_some() {
                    return Err(AgentKeyError::AlreadyExists);
                }
                let name = credential_name(name).ok_or(AgentKeyError::InvalidName)?;
                if !is_sha256_hex(key_hash) {
                    return Err(AgentKeyError::InvalidHash);
                }
                Ok(vec![Event::AgentKeyCreated(AgentKeyCreated {
                    key_id: *key_id,
                    org_id: *org_id,
                    name: name.to_owned(),
                    key_hash: key_hash.clone(),
                    prefix: prefix.chars().take(8).collect(),
                    created_at: *now,
                })])
            }
            AgentKeyCommand::Revoke { now } => {
                let Some(created) = &self.created else {
                    return Err(AgentKeyError::NotFound);
                };
                if self.revoked_at.is_some() {
                    return Ok(vec![]);
                }
                Ok(vec![Event::AgentKeyRevoked(AgentKeyRevoked { key_id: created.key_id, revoked_at: *now })])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::spec::{at, given};
    use uuid::Uuid;

    const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn create(name: &str, hash: &str) -> AgentKeyCommand {
        AgentKeyCommand::Create {
            key_id: AgentKeyId(Uuid::from_u128(9)),
            org_id: OrgId(Uuid::from_u128(1)),
            name: name.into(),
            key_hash: hash.into(),
            prefix: "xdra_abcdefgh".into(),
            now: at(0),
        }
    }

    #[test]
    fn an_agent_key_is_created_validated_and_revoked_once() {
        let events = given::<AgentKey>(vec![]).when(create(" edge-fw ", HASH)).events();
        let Event::AgentKeyCreated(c) = &events[0] else { panic!() };
        assert_eq!((c.name.as_str(), c.prefix.as_str()), ("edge-fw", "xdra_abc"));
        given::<AgentKey>(events.clone()).when(create("x", HASH)).then_err(AgentKeyError::AlreadyExists);
        given::<AgentKey>(vec![]).when(create(" ", HASH)).then_err(AgentKeyError::InvalidName);
        given::<AgentKey>(vec![]).when(create("x", "plaintext")).then_err(AgentKeyError::InvalidHash);
        let revoked = given::<AgentKey>(events.clone()).when(AgentKeyCommand::Revoke { now: at(5) }).events();
        let mut history = events;
        history.extend(revoked);
        assert!(!AgentKey::from_history(&history).is_active());
        given::<AgentKey>(history).when(AgentKeyCommand::Revoke { now: at(6) }).then(vec![]);
        given::<AgentKey>(vec![]).when(AgentKeyCommand::Revoke { now: at(6) }).then_err(AgentKeyError::NotFound);
    }
}
