//! `rm_organizations`: one row per registered org (its registration facts).

use futures::future::BoxFuture;
use sqlx::PgConnection;
use xdr_commands::StoredEvent;
use xdr_domain::{Event, EventType};

use super::decode;
use crate::runner::{Apply, Projection, ProjectionError, ReadModelTable, Reads};

const NAME: &str = "organizations";

pub const ORGANIZATIONS: Projection = Projection {
    name: NAME,
    tables: &[ReadModelTable { name: "rm_organizations", order_by: "org_id" }],
    reads: Reads::Only(&[EventType::OrganizationRegistered]),
    apply: Apply::Rows(apply),
};

fn apply<'a>(conn: &'a mut PgConnection, events: &'a [&'a StoredEvent]) -> BoxFuture<'a, Result<(), ProjectionError>> {
    Box::pin(async move {
        for e in events {
            let Event::OrganizationRegistered(r) = decode(NAME, e)? else { continue };
            // Keyed by the log's org, never the payload's: a row can only land in its own tenant.
            sqlx::query(
                "INSERT INTO rm_organizations (org_id, name, slug, status, created_at, last_seq) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (org_id) DO NOTHING",
            )
            .bind(e.org_id)
            .bind(&r.name)
            .bind(r.slug.as_str())
            .bind(enum_str(&r.status))
            .bind(r.created_at)
            .bind(e.org_seq)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    })
}

/// The wire form of a unit enum (`"active"`, `"soc_lead"`), as stored in the payload.
pub(crate) fn enum_str<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        other => format!("{other:?}"),
    }
}
