//! `rm_security_events`: normalized telemetry (`SecurityEventObserved`), one row per event
//! with the original record in `raw`.
//!
//! Telemetry is the bulk of every log, so this projection reads it where it lies: one
//! `INSERT … SELECT` over the org's `event_log` range per batch (the payload is already
//! `jsonb`, so nothing is serialized, shipped to the client, parsed and sent back). The
//! column mapping is the `SecurityEvent` payload's field names, nothing more;
//! `ON CONFLICT (org_id, org_seq) DO NOTHING` makes redelivery harmless.

use futures::future::BoxFuture;
use sqlx::PgConnection;
use xdr_domain::ids::OrgId;

use crate::runner::{EventTypes, Projection, ProjectionError, ReadModelTable, Source};

pub struct SecurityEvents;

const NAME: &str = "security_events";

impl Projection for SecurityEvents {
    fn name(&self) -> &'static str {
        NAME
    }

    fn tables(&self) -> &'static [ReadModelTable] {
        &[ReadModelTable { name: "rm_security_events", order_by: "org_id, org_seq" }]
    }

    fn event_types(&self) -> EventTypes {
        EventTypes::Only(&["SecurityEventObserved"])
    }

    fn source(&self) -> Source {
        Source::Sql
    }

    fn apply_range<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        org: OrgId,
        after: i64,
        until: i64,
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO rm_security_events (org_id, org_seq, event_id, \"timestamp\", recorded_at, \
                   source_type, event_type, src_ip, src_port, dst_ip, dst_port, protocol, username, command, \
                   url, file_hash, session_id, hostname, message, raw) \
                 SELECT org_id, org_seq, event_id, (payload->>'timestamp')::timestamptz, recorded_at, \
                   payload->>'source_type', payload->>'event_type', (payload->>'src_ip')::inet, \
                   (payload->>'src_port')::int4, (payload->>'dst_ip')::inet, (payload->>'dst_port')::int4, \
                   payload->>'protocol', payload->>'username', payload->>'command', payload->>'url', \
                   payload->>'file_hash', payload->>'session_id', payload->>'hostname', payload->>'message', \
                   COALESCE(payload->'raw', 'null'::jsonb) \
                 FROM event_log \
                 WHERE org_id = $1 AND org_seq > $2 AND org_seq <= $3 AND event_type = 'SecurityEventObserved' \
                 ON CONFLICT (org_id, org_seq) DO NOTHING",
            )
            .bind(org.0)
            .bind(after)
            .bind(until)
            .execute(&mut *conn)
            .await
            .map_err(|source| ProjectionError::Query {
                projection: NAME,
                org: org.0,
                after,
                until,
                source,
            })?;
            Ok(())
        })
    }
}
