//! `rm_audit_log`: who did what when — one row per non-telemetry event, with the actor and
//! request address from the event's metadata and the payload minus its secrets
//! (`xdr_redact`, see the migration: keys naming a password, token, secret or hash are
//! dropped at every depth). Projected in SQL over the org's `event_log` range.

use futures::future::BoxFuture;
use sqlx::PgConnection;
use xdr_domain::ids::OrgId;

use crate::runner::{EventTypes, Projection, ProjectionError, ReadModelTable, Source};

pub struct AuditLog;

const NAME: &str = "audit_log";

impl Projection for AuditLog {
    fn name(&self) -> &'static str {
        NAME
    }

    fn tables(&self) -> &'static [ReadModelTable] {
        &[ReadModelTable { name: "rm_audit_log", order_by: "org_id, org_seq" }]
    }

    /// Everything but telemetry, including event types added later.
    fn event_types(&self) -> EventTypes {
        EventTypes::AllExcept(&["SecurityEventObserved"])
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
                "INSERT INTO rm_audit_log (org_id, org_seq, event_id, recorded_at, stream_id, event_type, \
                   actor_user_id, actor, request_ip, details) \
                 SELECT org_id, org_seq, event_id, recorded_at, stream_id, event_type, \
                   (metadata->>'actor_user_id')::uuid, metadata->>'actor', metadata->>'request_ip', \
                   xdr_redact(payload) \
                 FROM event_log \
                 WHERE org_id = $1 AND org_seq > $2 AND org_seq <= $3 AND event_type <> 'SecurityEventObserved' \
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
