//! `rm_actions`, `rm_active_blocks` and `action_schedule`: each containment action as it
//! stands, the blocks in force (the truth agents re-sync from) and when the scheduler must
//! next look at an action. Copies what events say; the `Action` aggregate decides.

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use sqlx::PgConnection;
use uuid::Uuid;
use xdr_commands::StoredEvent;
use xdr_domain::response::action::ActionKind;
use xdr_domain::{Event, EventType};

use super::{decode, stream_uuid};
use crate::runner::{Apply, Projection, ProjectionError, ReadModelTable, Reads};

const NAME: &str = "actions";

pub const EVENT_TYPES: &[EventType] = &[
    EventType::ActionRequested,
    EventType::ActionApproved,
    EventType::ActionRejected,
    EventType::ActionDispatched,
    EventType::ActionSucceeded,
    EventType::ActionFailed,
    EventType::ActionExpired,
    EventType::PolicyMatched,
];

async fn set_status(
    conn: &mut PgConnection,
    e: &StoredEvent,
    action: Uuid,
    status: &str,
    at: DateTime<Utc>,
) -> Result<(), ProjectionError> {
    sqlx::query(
        "UPDATE rm_actions SET status = $3, updated_at = $4, last_seq = $5 \
         WHERE org_id = $1 AND action_id = $2 AND last_seq < $5",
    )
    .bind(e.org_id)
    .bind(action)
    .bind(status)
    .bind(at)
    .bind(e.org_seq)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn schedule(
    conn: &mut PgConnection,
    e: &StoredEvent,
    action: Uuid,
    due: Option<(DateTime<Utc>, &str)>,
) -> Result<(), ProjectionError> {
    match due {
        Some((due_at, reason)) => {
            sqlx::query(
                "INSERT INTO action_schedule (org_id, action_id, due_at, reason) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (org_id, action_id) DO UPDATE SET due_at = EXCLUDED.due_at, reason = EXCLUDED.reason",
            )
            .bind(e.org_id)
            .bind(action)
            .bind(due_at)
            .bind(reason)
            .execute(&mut *conn)
            .await?;
        }
        None => {
            sqlx::query("DELETE FROM action_schedule WHERE org_id = $1 AND action_id = $2")
                .bind(e.org_id)
                .bind(action)
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

pub const ACTIONS: Projection = Projection {
    name: NAME,
    tables: &[
        ReadModelTable { name: "rm_actions", order_by: "org_id, action_id" },
        ReadModelTable { name: "rm_active_blocks", order_by: "org_id, action_id" },
        ReadModelTable { name: "action_schedule", order_by: "org_id, action_id" },
    ],
    reads: Reads::Only(EVENT_TYPES),
    apply: Apply::Rows(apply),
};

fn apply<'a>(conn: &'a mut PgConnection, events: &'a [&'a StoredEvent]) -> BoxFuture<'a, Result<(), ProjectionError>> {
    Box::pin(async move {
        for e in events {
            let action = stream_uuid(NAME, e, "action")?;
            match decode(NAME, e)? {
                // Shown on the incident's timeline; the request that follows carries the rest.
                Event::PolicyMatched(_) => {}
                Event::ActionRequested(r) => {
                    let status = if r.needs_approval { "pending_approval" } else { "approved" };
                    sqlx::query(
                        "INSERT INTO rm_actions (org_id, action_id, incident_id, kind, target, duration_secs, \
                           status, automatic, needs_approval, policy_id, policy_name, follows, requested_by, \
                           requested_at, updated_at, last_seq) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
                           $11, $12, $13, $14, $14, $15) \
                         ON CONFLICT (org_id, action_id) DO NOTHING",
                    )
                    .bind(e.org_id)
                    .bind(action)
                    .bind(r.incident_id.map(|i| i.0))
                    .bind(r.kind.as_str())
                    .bind(&r.target)
                    .bind(r.duration_secs.map(|d| d as i64))
                    .bind(status)
                    .bind(r.automatic)
                    .bind(r.needs_approval)
                    .bind(r.policy_id.map(|p| p.0))
                    .bind(&r.policy_name)
                    .bind(r.follows.map(|f| f.0))
                    .bind(r.requested_by.map(|u| u.0))
                    .bind(r.requested_at)
                    .bind(e.org_seq)
                    .execute(&mut *conn)
                    .await?;
                    schedule(conn, e, action, r.dispatch_due().map(|due| (due, "dispatch"))).await?;
                }
                Event::ActionApproved(a) => {
                    sqlx::query(
                        "UPDATE rm_actions SET status = 'approved', decided_by = $3, updated_at = $4, last_seq = $5 \
                         WHERE org_id = $1 AND action_id = $2 AND last_seq < $5",
                    )
                    .bind(e.org_id)
                    .bind(action)
                    .bind(a.by_user.0)
                    .bind(a.approved_at)
                    .bind(e.org_seq)
                    .execute(&mut *conn)
                    .await?;
                    schedule(conn, e, action, Some((a.dispatch_due(), "dispatch"))).await?;
                }
                Event::ActionRejected(r) => {
                    sqlx::query(
                        "UPDATE rm_actions SET status = 'rejected', decided_by = $3, detail = $4, updated_at = $5, \
                           last_seq = $6 WHERE org_id = $1 AND action_id = $2 AND last_seq < $6",
                    )
                    .bind(e.org_id)
                    .bind(action)
                    .bind(r.by_user.0)
                    .bind(&r.reason)
                    .bind(r.rejected_at)
                    .bind(e.org_seq)
                    .execute(&mut *conn)
                    .await?;
                    schedule(conn, e, action, None).await?;
                }
                Event::ActionDispatched(d) => {
                    sqlx::query(
                        "UPDATE rm_actions SET status = 'dispatched', attempts = $3, deadline = $4, updated_at = $5, \
                           last_seq = $6 WHERE org_id = $1 AND action_id = $2 AND last_seq < $6",
                    )
                    .bind(e.org_id)
                    .bind(action)
                    .bind(d.attempt as i32)
                    .bind(d.deadline)
                    .bind(d.dispatched_at)
                    .bind(e.org_seq)
                    .execute(&mut *conn)
                    .await?;
                    schedule(conn, e, action, Some((d.deadline, "deadline"))).await?;
                }
                Event::ActionSucceeded(s) => {
                    sqlx::query(
                        "UPDATE rm_actions SET status = 'succeeded', detail = $3, expires_at = $4, updated_at = $5, \
                           last_seq = $6 WHERE org_id = $1 AND action_id = $2 AND last_seq < $6",
                    )
                    .bind(e.org_id)
                    .bind(action)
                    .bind(&s.detail)
                    .bind(s.expires_at)
                    .bind(s.succeeded_at)
                    .bind(e.org_seq)
                    .execute(&mut *conn)
                    .await?;
                    let (kind, target, incident): (String, String, Option<Uuid>) = sqlx::query_as(
                        "SELECT kind, target, incident_id FROM rm_actions WHERE org_id = $1 AND action_id = $2",
                    )
                    .bind(e.org_id)
                    .bind(action)
                    .fetch_one(&mut *conn)
                    .await?;
                    match ActionKind::parse(&kind) {
                        Some(ActionKind::BlockIp) => {
                            sqlx::query(
                                "INSERT INTO rm_active_blocks (org_id, action_id, ip, incident_id, since, expires_at) \
                                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (org_id, action_id) DO NOTHING",
                            )
                            .bind(e.org_id)
                            .bind(action)
                            .bind(&target)
                            .bind(incident)
                            .bind(s.succeeded_at)
                            .bind(s.expires_at)
                            .execute(&mut *conn)
                            .await?;
                        }
                        // Lifting a block lifts every block of that address.
                        Some(ActionKind::UnblockIp) => {
                            sqlx::query("DELETE FROM rm_active_blocks WHERE org_id = $1 AND ip = $2")
                                .bind(e.org_id)
                                .bind(&target)
                                .execute(&mut *conn)
                                .await?;
                        }
                        _ => {}
                    }
                    schedule(conn, e, action, s.expires_at.map(|t| (t, "expiry"))).await?;
                }
                Event::ActionFailed(f) => {
                    sqlx::query(
                        "UPDATE rm_actions SET status = 'failed', detail = $3, updated_at = $4, last_seq = $5 \
                         WHERE org_id = $1 AND action_id = $2 AND last_seq < $5",
                    )
                    .bind(e.org_id)
                    .bind(action)
                    .bind(&f.detail)
                    .bind(f.failed_at)
                    .bind(e.org_seq)
                    .execute(&mut *conn)
                    .await?;
                    schedule(conn, e, action, None).await?;
                }
                Event::ActionExpired(x) => {
                    set_status(conn, e, action, "expired", x.expired_at).await?;
                    sqlx::query("DELETE FROM rm_active_blocks WHERE org_id = $1 AND action_id = $2")
                        .bind(e.org_id)
                        .bind(action)
                        .execute(&mut *conn)
                        .await?;
                    schedule(conn, e, action, None).await?;
                }
                _ => {}
            }
        }
        Ok(())
    })
}
