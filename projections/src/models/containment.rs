//! `rm_containment_policies` and `rm_containment_settings`: an org's containment policies and
//! its auto-containment switch and safety rails, as the `containment-<org>` stream says.
//! The settings row appears with the org's first containment event, starting from the
//! domain's defaults (`ContainmentPolicies::default()`), so the row and the aggregate agree.

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use sqlx::PgConnection;
use xdr_commands::StoredEvent;
use xdr_domain::response::policy::{ContainmentPolicies, ContainmentPolicy};
use xdr_domain::{Event, EventType};

use super::{apply_error, decode};
use crate::runner::{Apply, Projection, ProjectionError, ReadModelTable, Reads};

const NAME: &str = "containment";

pub const EVENT_TYPES: &[EventType] = &[
    EventType::ContainmentPolicyCreated,
    EventType::ContainmentPolicyUpdated,
    EventType::ContainmentPolicyDeleted,
    EventType::AutoContainmentSet,
    EventType::ContainmentSettingsChanged,
    EventType::SelfApprovalSet,
];

/// The org's settings row with the domain defaults, if it has none yet.
async fn ensure_settings(conn: &mut PgConnection, e: &StoredEvent) -> Result<(), ProjectionError> {
    let d = ContainmentPolicies::default();
    sqlx::query(
        "INSERT INTO rm_containment_settings (org_id, auto_containment, protected_ranges, allow_private_targets, \
           max_auto_blocks_per_minute, last_seq) VALUES ($1, $2, $3, $4, $5, 0) ON CONFLICT (org_id) DO NOTHING",
    )
    .bind(e.org_id)
    .bind(d.auto_containment)
    .bind(&d.protected_ranges)
    .bind(d.allow_private_targets)
    .bind(d.max_auto_blocks_per_minute as i32)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn upsert_policy(
    conn: &mut PgConnection,
    e: &StoredEvent,
    p: &ContainmentPolicy,
    at: DateTime<Utc>,
) -> Result<(), ProjectionError> {
    let json = |v: serde_json::Result<serde_json::Value>| v.map_err(|err| apply_error(NAME, e, err.to_string()));
    let conditions = json(serde_json::to_value(&p.conditions))?;
    let action = json(serde_json::to_value(&p.action))?;
    sqlx::query(
        "INSERT INTO rm_containment_policies (org_id, policy_id, name, priority, enabled, mode, conditions, action, \
           created_at, updated_at, last_seq) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10) \
         ON CONFLICT (org_id, policy_id) DO UPDATE SET name = EXCLUDED.name, priority = EXCLUDED.priority, \
           enabled = EXCLUDED.enabled, mode = EXCLUDED.mode, conditions = EXCLUDED.conditions, \
           action = EXCLUDED.action, updated_at = EXCLUDED.updated_at, last_seq = EXCLUDED.last_seq \
         WHERE rm_containment_policies.last_seq < EXCLUDED.last_seq",
    )
    .bind(e.org_id)
    .bind(p.policy_id.0)
    .bind(&p.name)
    .bind(p.priority)
    .bind(p.enabled)
    .bind(p.mode.as_str())
    .bind(conditions)
    .bind(action)
    .bind(at)
    .bind(e.org_seq)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub const CONTAINMENT: Projection = Projection {
    name: NAME,
    tables: &[
        ReadModelTable { name: "rm_containment_policies", order_by: "org_id, policy_id" },
        ReadModelTable { name: "rm_containment_settings", order_by: "org_id" },
    ],
    reads: Reads::Only(EVENT_TYPES),
    apply: Apply::Rows(apply),
};

fn apply<'a>(conn: &'a mut PgConnection, events: &'a [&'a StoredEvent]) -> BoxFuture<'a, Result<(), ProjectionError>> {
    Box::pin(async move {
        for e in events {
            let event = decode(NAME, e)?;
            ensure_settings(conn, e).await?;
            match event {
                Event::ContainmentPolicyCreated(c) => upsert_policy(conn, e, &c.policy, c.at).await?,
                Event::ContainmentPolicyUpdated(u) => upsert_policy(conn, e, &u.policy, u.at).await?,
                Event::ContainmentPolicyDeleted(d) => {
                    sqlx::query("DELETE FROM rm_containment_policies WHERE org_id = $1 AND policy_id = $2")
                        .bind(e.org_id)
                        .bind(d.policy_id.0)
                        .execute(&mut *conn)
                        .await?;
                }
                Event::AutoContainmentSet(s) => {
                    sqlx::query(
                        "UPDATE rm_containment_settings SET auto_containment = $2, last_seq = $3 \
                         WHERE org_id = $1 AND last_seq < $3",
                    )
                    .bind(e.org_id)
                    .bind(s.enabled)
                    .bind(e.org_seq)
                    .execute(&mut *conn)
                    .await?;
                }
                Event::SelfApprovalSet(s) => {
                    sqlx::query(
                        "UPDATE rm_containment_settings SET allow_self_approval = $2, last_seq = $3 \
                         WHERE org_id = $1 AND last_seq < $3",
                    )
                    .bind(e.org_id)
                    .bind(s.allowed)
                    .bind(e.org_seq)
                    .execute(&mut *conn)
                    .await?;
                }
                Event::ContainmentSettingsChanged(s) => {
                    sqlx::query(
                        "UPDATE rm_containment_settings SET protected_ranges = $2, allow_private_targets = $3, \
                           max_auto_blocks_per_minute = $4, last_seq = $5 WHERE org_id = $1 AND last_seq < $5",
                    )
                    .bind(e.org_id)
                    .bind(&s.protected_ranges)
                    .bind(s.allow_private_targets)
                    .bind(s.max_auto_blocks_per_minute as i32)
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
