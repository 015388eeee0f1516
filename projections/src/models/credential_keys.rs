//! `rm_ingest_keys` and `rm_agent_keys`: each producer or agent credential's name, display
//! prefix and lifecycle — never the key. One projection shape, two instances, because both
//! credentials have the same lifecycle events.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use xdr_commands::StoredEvent;
use xdr_domain::{Event, EventType};

use super::{decode, stream_uuid};
use crate::runner::{Apply, Projection, ProjectionError, ReadModelTable, Reads};

/// The key aggregate's stream category and table, per kind of credential.
struct Keys {
    name: &'static str,
    /// Stream category of the key aggregate (`ingestkey`, `agentkey`).
    category: &'static str,
    table: &'static str,
}

const INGEST: Keys = Keys { name: "ingest_keys", category: "ingestkey", table: "rm_ingest_keys" };
const AGENT: Keys = Keys { name: "agent_keys", category: "agentkey", table: "rm_agent_keys" };

pub const INGEST_KEYS: Projection = Projection {
    name: INGEST.name,
    tables: &[ReadModelTable { name: INGEST.table, order_by: "org_id, key_id" }],
    reads: Reads::Only(&[EventType::IngestKeyCreated, EventType::IngestKeyRevoked]),
    apply: Apply::Rows(|conn, events| Box::pin(apply(&INGEST, conn, events))),
};

pub const AGENT_KEYS: Projection = Projection {
    name: AGENT.name,
    tables: &[ReadModelTable { name: AGENT.table, order_by: "org_id, key_id" }],
    reads: Reads::Only(&[EventType::AgentKeyCreated, EventType::AgentKeyRevoked]),
    apply: Apply::Rows(|conn, events| Box::pin(apply(&AGENT, conn, events))),
};

enum Step {
    Created { name: String, prefix: String, at: DateTime<Utc> },
    Revoked { at: DateTime<Utc> },
}

async fn apply(keys: &Keys, conn: &mut PgConnection, events: &[&StoredEvent]) -> Result<(), ProjectionError> {
    let table = keys.table;
    for e in events {
        let key_id = stream_uuid(keys.name, e, keys.category)?;
        let step = match decode(keys.name, e)? {
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
}
