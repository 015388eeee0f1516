//! `rm_ingest_keys`: each ingest key's name, display prefix and lifecycle — never the key.

use futures::future::BoxFuture;
use sqlx::PgConnection;
use xdr_commands::StoredEvent;
use xdr_domain::Event;

use super::{decode, stream_uuid};
use crate::runner::{EventTypes, Projection, ProjectionError, ReadModelTable};

pub struct IngestKeys;

const NAME: &str = "ingest_keys";

impl Projection for IngestKeys {
    fn name(&self) -> &'static str {
        NAME
    }

    fn tables(&self) -> &'static [ReadModelTable] {
        &[ReadModelTable { name: "rm_ingest_keys", order_by: "org_id, key_id" }]
    }

    fn event_types(&self) -> EventTypes {
        EventTypes::Only(&["IngestKeyCreated", "IngestKeyRevoked"])
    }

    fn apply<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        events: &'a [&'a StoredEvent],
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        Box::pin(async move {
            for e in events {
                let key_id = stream_uuid(NAME, e, "ingestkey")?;
                match decode(NAME, e)? {
                    Event::IngestKeyCreated(c) => {
                        sqlx::query(
                            "INSERT INTO rm_ingest_keys (org_id, key_id, name, prefix, created_at, last_seq) \
                             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (org_id, key_id) DO NOTHING",
                        )
                        .bind(e.org_id)
                        .bind(key_id)
                        .bind(&c.name)
                        .bind(&c.prefix)
                        .bind(c.created_at)
                        .bind(e.org_seq)
                        .execute(&mut *conn)
                        .await?;
                    }
                    Event::IngestKeyRevoked(r) => {
                        sqlx::query(
                            "UPDATE rm_ingest_keys SET revoked_at = $3, last_seq = $4 \
                             WHERE org_id = $1 AND key_id = $2 AND last_seq < $4",
                        )
                        .bind(e.org_id)
                        .bind(key_id)
                        .bind(r.revoked_at)
                        .bind(e.org_seq)
                        .execute(&mut *conn)
                        .await?;
                    }
                    _ => {}
                }
            }
            Ok(())
        })
    }
}
