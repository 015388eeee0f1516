//! Quarantined events: what the projections could not apply in the caller's org, and why
//! (admin). The org's other events went on being projected; `mini-xdr quarantine retry`
//! projects these again after a fix.

use super::scope::org_tx;
use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use xdr_domain::identity::Permission;
use xdr_projections::quarantine::{list_org, QuarantinedEvent as Entry};

use super::context::{bad_input, caller, db_error, decode_cursor, encode_cursor, page_size};
use super::cost;
use super::errors::gql_error;

#[derive(SimpleObject, Clone, Debug)]
pub struct QuarantinedEvent {
    /// The read model that could not apply the event (`security_events`, `incidents`, …).
    pub projection: String,
    /// The event's position in the org's log (`auditLog`, `mini-xdr replay --since`).
    pub org_seq: i64,
    pub event_type: String,
    /// Why it could not be applied (e.g. the value PostgreSQL refused).
    pub error: String,
    pub quarantined_at: DateTime<Utc>,
}

impl From<Entry> for QuarantinedEvent {
    fn from(e: Entry) -> Self {
        QuarantinedEvent {
            projection: e.projection,
            org_seq: e.org_seq,
            event_type: e.event_type,
            error: e.error,
            quarantined_at: e.quarantined_at,
        }
    }
}

/// Cursor: `<org_seq>:<projection>` of the last entry of the previous page.
fn cursor_of(e: &QuarantinedEvent) -> String {
    encode_cursor(&format!("{}:{}", e.org_seq, e.projection))
}

fn decode(after: Option<&str>) -> Result<Option<(i64, String)>> {
    decode_cursor(after)?
        .map(|c| {
            let (seq, projection) = c.split_once(':').ok_or_else(|| bad_input("invalid cursor"))?;
            Ok((seq.parse().map_err(|_| bad_input("invalid cursor"))?, projection.to_owned()))
        })
        .transpose()
}

#[derive(Default)]
pub struct QuarantineQuery;

#[Object]
impl QuarantineQuery {
    /// Events of the caller's organization that a read model could not apply, newest first
    /// (admin). Each was skipped by that read model only; everything else went on.
    #[graphql(complexity = "cost::root_page(first, child_complexity)")]
    async fn quarantined_events(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, QuarantinedEvent>> {
        let p = caller(ctx).await?;
        p.require(Permission::ReadAuditLog).map_err(gql_error)?;
        let first = page_size(first)?;
        let after = decode(after.as_deref())?;
        let mut tx = org_tx(ctx, p.org_id).await?;
        let rows = list_org(&mut tx, p.org_id, after.as_ref().map(|(s, n)| (*s, n.as_str())), first as i64 + 1)
            .await
            .map_err(db_error)?;
        let mut connection = Connection::new(after.is_some(), rows.len() > first);
        for row in rows.into_iter().take(first) {
            let event = QuarantinedEvent::from(row);
            connection.edges.push(Edge::new(cursor_of(&event), event));
        }
        Ok(connection)
    }
}
