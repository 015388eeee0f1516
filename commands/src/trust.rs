//! What crosses the NATS trust boundary: secrets redacted before events leave the database,
//! and the process-wide counters of messages refused because the log does not back them
//! (rendered on `/metrics` by every role's HTTP server).

use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};

/// Messages refused at a trust boundary, by kind. Process-wide: the detector, the agent
/// gateway and the results consumer count here, the HTTP server of the same process renders.
#[derive(Debug, Default)]
pub struct Refusals {
    /// Event messages the detector refused: no such event in the log, or not the one the log
    /// holds at that `(org, org_seq)`, or the subject's org differs from the payload's.
    pub events_forged: AtomicU64,
    /// Event messages for an org this database does not know (another deployment's NATS
    /// traffic, a stream left over from an earlier database).
    pub events_unknown_org: AtomicU64,
    /// Orders the agent gateway refused: no matching `ActionDispatched` in the agent's org.
    pub orders_forged: AtomicU64,
    /// Results (acks) the agent gateway refused: the order was never delivered to that agent.
    pub results_not_delivered: AtomicU64,
}

pub static REFUSALS: Refusals = Refusals {
    events_forged: AtomicU64::new(0),
    events_unknown_org: AtomicU64::new(0),
    orders_forged: AtomicU64::new(0),
    results_not_delivered: AtomicU64::new(0),
};

impl Refusals {
    pub fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Whether a payload key names a secret: the rule of the audit log's `xdr_redact`
/// (`migrations/0004_read_models.sql`), so NATS and the audit log hide the same fields.
fn names_a_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key.ends_with("hash") || key.contains("password") || key.contains("token") || key.contains("secret")
}

/// `payload` without any key that names a password, token, secret or hash, at every depth.
pub fn redact(payload: &Value) -> Value {
    match payload {
        Value::Object(map) => {
            Value::Object(map.iter().filter(|(k, _)| !names_a_secret(k)).map(|(k, v)| (k.clone(), redact(v))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        other => other.clone(),
    }
}

/// What the relay publishes of an event's payload: telemetry as recorded (it is the data
/// consumers subscribe for, and it holds none of our secrets), everything else redacted.
pub fn fan_out_payload(event_type: &str, payload: &Value) -> Value {
    if event_type == "SecurityEventObserved" {
        payload.clone()
    } else {
        redact(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_are_dropped_at_every_depth_and_telemetry_is_kept() {
        let p = json!({"email": "a@b", "password_hash": "$argon2id$x", "nested": [{"token_hash": "t", "keep": 1}],
            "KeyHash": "k", "client_secret": "s", "hashes_seen": 3});
        assert_eq!(redact(&p), json!({"email": "a@b", "nested": [{"keep": 1}], "hashes_seen": 3}));
        let telemetry = json!({"raw": {"password": "tried"}});
        assert_eq!(fan_out_payload("SecurityEventObserved", &telemetry), telemetry);
        assert_eq!(fan_out_payload("UserCreated", &p)["password_hash"], Value::Null);
    }
}
