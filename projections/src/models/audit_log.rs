//! `rm_audit_log`: who did what when — one row per non-telemetry event, with the actor and
//! request address from the event's metadata and the payload minus its secrets.

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;
use xdr_commands::StoredEvent;

use crate::runner::{Projection, ProjectionError, ReadModelTable};

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
    fn handles(&self, event_type: &str) -> bool {
        event_type != "SecurityEventObserved"
    }

    fn apply<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        events: &'a [&'a StoredEvent],
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        Box::pin(async move {
            let Some(first) = events.first() else { return Ok(()) };
            let n = events.len();
            let (mut seq, mut id, mut at, mut stream, mut kind) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::<DateTime<Utc>>::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            let (mut actor_user, mut actor, mut ip, mut details) = (
                Vec::<Option<Uuid>>::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            for e in events {
                let m = e.metadata();
                seq.push(e.org_seq);
                id.push(e.event_id);
                at.push(e.recorded_at);
                stream.push(e.stream_id.as_str());
                kind.push(e.event_type.as_str());
                actor_user.push(m.actor_user_id);
                actor.push(m.actor);
                ip.push(m.request_ip);
                details.push(redact(&e.payload));
            }
            sqlx::query(
                "INSERT INTO rm_audit_log (org_id, org_seq, event_id, recorded_at, stream_id, event_type, \
                   actor_user_id, actor, request_ip, details) \
                 SELECT $1, u.* FROM UNNEST($2::bigint[], $3::uuid[], $4::timestamptz[], $5::text[], $6::text[], \
                   $7::uuid[], $8::text[], $9::text[], $10::jsonb[]) AS u \
                 ON CONFLICT (org_id, org_seq) DO NOTHING",
            )
            .bind(first.org_id)
            .bind(&seq)
            .bind(&id)
            .bind(&at)
            .bind(&stream)
            .bind(&kind)
            .bind(&actor_user)
            .bind(&actor)
            .bind(&ip)
            .bind(&details)
            .execute(&mut *conn)
            .await?;
            Ok(())
        })
    }
}

/// The payload without secrets: any key that names a password, token, secret or a hash
/// (`password_hash`, `token_hash`, …) is dropped, at every depth.
pub fn redact(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            Value::Object(map.iter().filter(|(k, _)| !is_secret_key(k)).map(|(k, v)| (k.clone(), redact(v))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        other => other.clone(),
    }
}

fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.ends_with("hash") || k.contains("password") || k.contains("token") || k.contains("secret")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redact_drops_credentials_at_every_depth_and_keeps_the_rest() {
        let payload = json!({
            "email": "a@example.com", "role": "admin", "password_hash": "$argon2id$x",
            "invite": {"token_hash": "abc", "expires_at": "2026-01-01T00:00:00Z"},
            "list": [{"secret": 1, "ok": 2}]
        });
        assert_eq!(
            redact(&payload),
            json!({"email": "a@example.com", "role": "admin", "invite": {"expires_at": "2026-01-01T00:00:00Z"}, "list": [{"ok": 2}]})
        );
    }
}
