//! `rm_incidents` and `rm_incident_timeline`: the analyst's view of incidents and of how each
//! one unfolded. Values are taken from the events as they are (severity only ever rises in
//! the domain; the view copies, it does not decide).

use futures::future::BoxFuture;
use serde_json::json;
use sqlx::PgConnection;
use xdr_commands::StoredEvent;
use xdr_domain::{Event, EventType};

use super::decode;
use super::organizations::enum_str;
use crate::runner::{Apply, Projection, ProjectionError, ReadModelTable, Reads};

const NAME: &str = "incidents";

fn severity_rank(s: &str) -> i32 {
    match s {
        "low" => 1,
        "medium" => 2,
        "high" => 3,
        "critical" => 4,
        _ => 0,
    }
}

async fn timeline(
    conn: &mut PgConnection,
    e: &StoredEvent,
    incident: uuid::Uuid,
    kind: &str,
    detail: serde_json::Value,
) -> Result<(), ProjectionError> {
    let meta = e.metadata();
    let actor = meta.actor_user_id.map(|u| format!("user:{u}")).or(meta.actor);
    sqlx::query(
        "INSERT INTO rm_incident_timeline (org_id, org_seq, incident_id, at, kind, actor, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (org_id, org_seq) DO NOTHING",
    )
    .bind(e.org_id)
    .bind(e.org_seq)
    .bind(incident)
    .bind(e.recorded_at)
    .bind(kind)
    .bind(actor)
    .bind(detail)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A later step of an action (approval, dispatch, result, expiry) on its incident's timeline.
async fn action_step(conn: &mut PgConnection, e: &StoredEvent, event: &Event) -> Result<(), ProjectionError> {
    let (kind, action_id, detail) = match event {
        Event::ActionApproved(a) => ("action_approved", a.action_id, json!({})),
        Event::ActionRejected(r) => ("action_rejected", r.action_id, json!({"reason": r.reason})),
        Event::ActionDispatched(d) => {
            ("action_dispatched", d.action_id, json!({"attempt": d.attempt, "deadline": d.deadline}))
        }
        Event::ActionSucceeded(s) => (
            "action_succeeded",
            s.action_id,
            json!({"attempt": s.attempt, "agent": s.agent, "detail": s.detail, "expires_at": s.expires_at}),
        ),
        Event::ActionFailed(f) => {
            ("action_failed", f.action_id, json!({"attempt": f.attempt, "agent": f.agent, "detail": f.detail}))
        }
        Event::ActionExpired(x) => ("action_expired", x.action_id, json!({})),
        _ => return Ok(()),
    };
    // The actions projection runs first (see `models::all`), so the action's row is there.
    let incident: Option<Option<uuid::Uuid>> =
        sqlx::query_scalar("SELECT incident_id FROM rm_actions WHERE org_id = $1 AND action_id = $2")
            .bind(e.org_id)
            .bind(action_id.0)
            .fetch_optional(&mut *conn)
            .await?;
    if let Some(Some(incident)) = incident {
        let mut detail = detail;
        detail["action_id"] = json!(action_id);
        timeline(conn, e, incident, kind, detail).await?;
    }
    Ok(())
}

pub const INCIDENTS: Projection = Projection {
    name: NAME,
    tables: &[
        ReadModelTable { name: "rm_incidents", order_by: "org_id, incident_id" },
        ReadModelTable { name: "rm_incident_timeline", order_by: "org_id, org_seq" },
    ],
    reads: Reads::Only(&[
        EventType::IncidentOpened,
        EventType::EvidenceAttached,
        EventType::IncidentEscalated,
        EventType::IncidentStatusChanged,
        // Response steps, shown on the timeline of the incident they act on.
        EventType::PolicyMatched,
        EventType::ActionRequested,
        EventType::ActionApproved,
        EventType::ActionRejected,
        EventType::ActionDispatched,
        EventType::ActionSucceeded,
        EventType::ActionFailed,
        EventType::ActionExpired,
    ]),
    apply: Apply::Rows(apply),
};

fn apply<'a>(conn: &'a mut PgConnection, events: &'a [&'a StoredEvent]) -> BoxFuture<'a, Result<(), ProjectionError>> {
    Box::pin(async move {
        for e in events {
            match decode(NAME, e)? {
                Event::IncidentOpened(o) => {
                    let severity = enum_str(&o.severity);
                    sqlx::query(
                        "INSERT INTO rm_incidents (org_id, incident_id, src_ip, status, severity, severity_rank, \
                           category, risk_score, confidence, first_seen, last_seen, event_count, evidence, reason, \
                           rule_ids, techniques, top_features, model, opened_at, updated_at, last_seq) \
                         VALUES ($1, $2, $3, 'open', $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
                           $18, $18, $19) ON CONFLICT (org_id, incident_id) DO NOTHING",
                    )
                    .bind(e.org_id)
                    .bind(o.incident_id.0)
                    .bind(&o.src_ip)
                    .bind(&severity)
                    .bind(severity_rank(&severity))
                    .bind(enum_str(&o.category))
                    .bind(o.risk_score)
                    .bind(o.confidence)
                    .bind(o.first_seen)
                    .bind(o.last_seen)
                    .bind(o.evidence.len() as i32)
                    .bind(&o.evidence)
                    .bind(&o.reason)
                    .bind(&o.rule_ids)
                    .bind(&o.techniques)
                    .bind(serde_json::to_value(&o.top_features).unwrap_or_default())
                    .bind(o.model.as_ref().and_then(|m| serde_json::to_value(m).ok()))
                    .bind(o.opened_at)
                    .bind(e.org_seq)
                    .execute(&mut *conn)
                    .await?;
                    let detail = json!({"severity": severity, "category": enum_str(&o.category), "rules": o.rule_ids,
                                        "techniques": o.techniques, "reason": o.reason, "evidence": o.evidence});
                    timeline(conn, e, o.incident_id.0, "detected", detail).await?;
                }
                Event::EvidenceAttached(a) => {
                    sqlx::query(
                        "UPDATE rm_incidents SET evidence = evidence || $3, event_count = event_count + $4, \
                           last_seen = GREATEST(last_seen, $5), updated_at = $6, last_seq = $7 \
                         WHERE org_id = $1 AND incident_id = $2 AND last_seq < $7",
                    )
                    .bind(e.org_id)
                    .bind(a.incident_id.0)
                    .bind(&a.org_seqs)
                    .bind(a.org_seqs.len() as i32)
                    .bind(a.last_seen)
                    .bind(a.attached_at)
                    .bind(e.org_seq)
                    .execute(&mut *conn)
                    .await?;
                    timeline(conn, e, a.incident_id.0, "evidence", json!({"evidence": a.org_seqs})).await?;
                }
                Event::IncidentEscalated(x) => {
                    let severity = enum_str(&x.severity);
                    sqlx::query(
                        "UPDATE rm_incidents SET severity = $3, severity_rank = $4, category = $5, risk_score = $6, \
                           confidence = $7, rule_ids = rule_ids || $8, techniques = techniques || $9, reason = $10, \
                           top_features = $11, model = COALESCE($12, model), updated_at = $13, last_seq = $14 \
                         WHERE org_id = $1 AND incident_id = $2 AND last_seq < $14",
                    )
                    .bind(e.org_id)
                    .bind(x.incident_id.0)
                    .bind(&severity)
                    .bind(severity_rank(&severity))
                    .bind(enum_str(&x.category))
                    .bind(x.risk_score)
                    .bind(x.confidence)
                    .bind(&x.new_rule_ids)
                    .bind(&x.new_techniques)
                    .bind(&x.reason)
                    .bind(serde_json::to_value(&x.top_features).unwrap_or_default())
                    .bind(x.model.as_ref().and_then(|m| serde_json::to_value(m).ok()))
                    .bind(x.escalated_at)
                    .bind(e.org_seq)
                    .execute(&mut *conn)
                    .await?;
                    let detail = json!({"from": enum_str(&x.previous_severity), "to": severity,
                                        "rules": x.new_rule_ids, "techniques": x.new_techniques, "reason": x.reason});
                    timeline(conn, e, x.incident_id.0, "escalated", detail).await?;
                }
                Event::IncidentStatusChanged(c) => {
                    sqlx::query(
                        "UPDATE rm_incidents SET status = $3, updated_at = $4, last_seq = $5 \
                         WHERE org_id = $1 AND incident_id = $2 AND last_seq < $5",
                    )
                    .bind(e.org_id)
                    .bind(c.incident_id.0)
                    .bind(enum_str(&c.to))
                    .bind(c.changed_at)
                    .bind(e.org_seq)
                    .execute(&mut *conn)
                    .await?;
                    let detail = json!({"from": enum_str(&c.from), "to": enum_str(&c.to), "note": c.note});
                    timeline(conn, e, c.incident_id.0, "status_changed", detail).await?;
                }
                Event::PolicyMatched(p) => {
                    let detail = json!({"action_id": p.action_id, "policy_id": p.policy_id, "policy": p.policy_name,
                                        "priority": p.priority, "matched": p.matched, "mode": p.mode,
                                        "held_for_approval": p.held_for_approval});
                    timeline(conn, e, p.incident_id.0, "policy_matched", detail).await?;
                }
                Event::ActionRequested(r) => {
                    if let Some(incident) = r.incident_id {
                        let detail = json!({"action_id": r.action_id, "kind": r.kind.as_str(), "target": r.target,
                                            "duration_secs": r.duration_secs, "needs_approval": r.needs_approval,
                                            "automatic": r.automatic, "policy": r.policy_name, "note": r.note});
                        timeline(conn, e, incident.0, "action_requested", detail).await?;
                    }
                }
                other => action_step(conn, e, &other).await?,
            }
        }
        Ok(())
    })
}
