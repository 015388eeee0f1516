//! `rm_ingest_keys` and `rm_agent_keys`: each producer or agent credential's name, display
//! prefix and lifecycle — never the key. One projection shape, two instances, because both
//! credentials have the same lifecycle events.

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use sqlx::PgConnection;
use xdr_commands::StoredEvent;
use xdr_domain::Event;

use super::{decode, stream_uuid};
use crate::runner::{EventTypes, Projection, ProjectionError, ReadModelTable};

pub struct CredentialKeys {
    name: &'static str,
    /// Stream category of the key aggregate (`ingestkey`, `agentkey`).
    category: &'static str,
    table: &'static [ReadModelTable],
    event_types: &'static [&'static str],
}

pub const INGEST_KEYS: CredentialKeys = CredentialKeys {
    name: "ingest_keys",
    category: "ingestkey",
    table: &[ReadModelTable { name: "rm_ingest_keys", order_by: "org_id, key_id" }],
    event_types: &["IngestKeyCreated", "IngestKeyRevoked"],
};

pub const AGENT_KEYS: CredentialKeys = CredentialKeys {
    name: "agent_keys",
    category: "agentkey",
    table: &[ReadModelTable { name: "rm_agent_keys", order_by: "org_id, key_id" }],
    event_types: &["AgentKeyCreated", "AgentKeyRevoked"],
};

enum Step {
    Created { name: String, prefix: String, at: DateTime<Utc> },
    Revoked { at: DateTime<Utc> },
}

impl Projection for CredentialKeys {
    fn name(&self) -> &'static str {
        self.name
    }

    fn tables(&self) -> &'static [ReadModelTable] {
        self.table
    }

    fn event_types(&self) -> EventTypes {
        EventTypes::Only(self.event_types)
    }

    fn apply<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        events: &'a [&'a StoredEvent],
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        Box::pin(async move {
            let table = self.table[0].name;
            for e in events {
                let key_id = stream_uuid(self.name, e, self.category)?;
                let step = match decode(self.name, e)? {
                    Event::IngestKeyCreated(c) => Step::Created { name: c.name, prefix: c.prefix, at: c.created_at },
                    Event::AgentKeyCreated(c) => Step::Created { name: c.name, prefix: c.prefix, at: c.created_at },
                    Event::IngestKeyRevoked(r) => Step::Revoked { at: r.revoked_at },
                    Event::AgentKeyRevoked(r) => Step::Revoked { at: r.revoked_at },
                    _ => continue,
                };
                match step {
                    Step::Created { name, prefix, at } => {
                        sqlx::query(&format!(
                            "INSERT INTO {table} (org_id, key_id, name, prefix, created_at, last_seq) \
                             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (org_id, key_id) DO NOTHING"
                        ))
                        .bind(e.org_id)
                        .bind(key_id)
                        .bind(name)
                        .bind(prefix)
                        .bind(at)
                        .bind(e.org_seq)
                        .execute(&mut *conn)
                        .await?;
                    }
                    Step::Revoked { at } => {
                        sqlx::query(&format!(
                            "UPDATE {table} SET revoked_at = $3, last_seq = $4 \
                             WHERE org_id = $1 AND key_id = $2 AND last_seq < $4"
                        ))
                        .bind(e.org_id)
                        .bind(key_id)
                        .bind(at)
                        .bind(e.org_seq)
                        .execute(&mut *conn)
                        .await?;
                    }
                }
            }
            Ok(())
        })
    }
}
