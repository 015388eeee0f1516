//! The `IngestKey` aggregate (`ingestkey-<uuid>`): a credential that lets a log producer write
//! telemetry into one organization. Only the key's SHA-256 and a short display prefix are
//! ever recorded; the plaintext is generated and shown once by the command handler.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::aggregate::Aggregate;
use crate::ids::{IngestKeyId, OrgId};
use crate::Event;

/// Longest accepted key name (after trimming).
pub const MAX_NAME_CHARS: usize = 100;

/// Event: an ingest key was issued.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IngestKeyCreated {
    pub key_id: IngestKeyId,
    pub org_id: OrgId,
    pub name: String,
    /// Hex SHA-256 of the plaintext key.
    pub key_hash: String,
    /// First characters of the key, so an operator can tell keys apart.
    pub prefix: String,
    pub created_at: DateTime<Utc>,
}

/// Event: an ingest key stopped being accepted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IngestKeyRevoked {
    pub revoked_at: DateTime<Utc>,
}

/// Commands on one ingest key.
#[derive(Debug, Clone, PartialEq)]
pub enum IngestKeyCommand {
    Create(CreateIngestKey),
    Revoke { now: DateTime<Utc> },
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreateIngestKey {
    pub key_id: IngestKeyId,
    pub org_id: OrgId,
    /// Raw name as typed; trimmed and checked by `decide`.
    pub name: String,
    pub key_hash: String,
    pub prefix: String,
    pub now: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestKeyError {
    #[error("ingest key already exists")]
    AlreadyExists,
    #[error("no such ingest key")]
    NotFound,
    #[error("ingest key name must be 1 to {MAX_NAME_CHARS} characters")]
    InvalidName,
    #[error("ingest key hash must be 64 lower-case hex characters")]
    InvalidHash,
}

/// A credential's display name, trimmed, if it is 1 to [`MAX_NAME_CHARS`] characters.
/// Shared by ingest keys and agent keys.
pub fn credential_name(raw: &str) -> Option<&str> {
    let name = raw.trim();
    (!name.is_empty() && name.chars().count() <= MAX_NAME_CHARS).then_some(name)
}

/// Whether `hash` is a lower-case hex SHA-256, the only form a key is ever stored in.
pub fn is_sha256_hex(hash: &str) -> bool {
    hash.len() == 64 && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// State of one `ingestkey-<uuid>` stream.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IngestKey {
    pub created: Option<IngestKeyCreated>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl IngestKey {
    pub fn is_active(&self) -> bool {
        self.created.is_some() && self.revoked_at.is_none()
    }
}

impl Aggregate for IngestKey {
    type Command = IngestKeyCommand;
    type Error = IngestKeyError;

    fn apply(&mut self, event: &Event) {
        match event {
            Event::IngestKeyCreated(e) => self.created = Some(e.clone()),
            Event::IngestKeyRevoked(e) => self.revoked_at = Some(e.revoked_at),
            _ => {}
        }
    }

    fn decide(&self, command: &IngestKeyCommand) -> Result<Vec<Event>, IngestKeyError> {
        match command {
            IngestKeyCommand::Create(c) => {
                if self.created.is_some() {
                    return Err(IngestKeyError::AlreadyExists);
                }
                let name = credential_name(&c.name).ok_or(IngestKeyError::InvalidName)?;
                if !is_sha256_hex(&c.key_hash) {
                    return Err(IngestKeyError::InvalidHash);
                }
                Ok(vec![Event::IngestKeyCreated(IngestKeyCreated {
                    key_id: c.key_id,
                    org_id: c.org_id,
                    name: name.to_owned(),
                    key_hash: c.key_hash.clone(),
                    prefix: c.prefix.chars().take(8).collect(),
                    created_at: c.now,
                })])
            }
            IngestKeyCommand::Revoke { now } => {
                if self.created.is_none() {
                    return Err(IngestKeyError::NotFound);
                }
                // Revoking twice changes nothing: the first revocation time stands.
                if self.revoked_at.is_some() {
                    return Ok(vec![]);
                }
                Ok(vec![Event::IngestKeyRevoked(IngestKeyRevoked { revoked_at: *now })])
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

    fn create(name: &str) -> IngestKeyCommand {
        IngestKeyCommand::Create(CreateIngestKey {
            key_id: IngestKeyId(Uuid::from_u128(7)),
            org_id: OrgId(Uuid::from_u128(1)),
            name: name.into(),
            key_hash: HASH.into(),
            prefix: "xdr_abcdefgh".into(),
            now: at(0),
        })
    }

    fn created() -> Event {
        Event::IngestKeyCreated(IngestKeyCreated {
            key_id: IngestKeyId(Uuid::from_u128(7)),
            org_id: OrgId(Uuid::from_u128(1)),
            name: "honeypot".into(),
            key_hash: HASH.into(),
            prefix: "xdr_abcd".into(),
            created_at: at(0),
        })
    }

    #[test]
    fn it_should_create_a_key_with_a_trimmed_name_and_short_prefix() {
        given::<IngestKey>(vec![]).when(create("  honeypot ")).then(vec![created()]);
    }

    #[test]
    fn it_should_not_create_twice() {
        given::<IngestKey>(vec![created()]).when(create("x")).then_err(IngestKeyError::AlreadyExists);
    }

    #[test]
    fn it_should_not_create_with_a_blank_or_long_name() {
        given::<IngestKey>(vec![]).when(create("  ")).then_err(IngestKeyError::InvalidName);
        given::<IngestKey>(vec![]).when(create(&"n".repeat(101))).then_err(IngestKeyError::InvalidName);
    }

    #[test]
    fn it_should_not_create_with_a_malformed_hash() {
        let IngestKeyCommand::Create(mut c) = create("x") else { unreachable!() };
        c.key_hash = "plaintext-key".into();
        given::<IngestKey>(vec![]).when(IngestKeyCommand::Create(c)).then_err(IngestKeyError::InvalidHash);
    }

    #[test]
    fn it_should_revoke_once_and_then_do_nothing() {
        let revoked = Event::IngestKeyRevoked(IngestKeyRevoked { revoked_at: at(5) });
        given::<IngestKey>(vec![created()]).when(IngestKeyCommand::Revoke { now: at(5) }).then(vec![revoked.clone()]);
        given::<IngestKey>(vec![created(), revoked]).when(IngestKeyCommand::Revoke { now: at(9) }).then(vec![]);
    }

    #[test]
    fn it_should_not_revoke_an_unknown_key() {
        given::<IngestKey>(vec![]).when(IngestKeyCommand::Revoke { now: at(1) }).then_err(IngestKeyError::NotFound);
    }

    #[test]
    fn it_should_remember_revocation() {
        let key = IngestKey::from_history(&[created()]);
        assert!(key.is_active());
        let key =
            IngestKey::from_history(&[created(), Event::IngestKeyRevoked(IngestKeyRevoked { revoked_at: at(5) })]);
        assert!(!key.is_active());
        assert_eq!(key.revoked_at, Some(at(5)));
    }
}
