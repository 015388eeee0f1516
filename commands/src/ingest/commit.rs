//! Committing prepared telemetry: `append_batch` in bounded chunks, and [`ingest_body`], the
//! one call the HTTP routes make (parse, commit, report what was stored and rejected).

use serde::Serialize;
use xdr_domain::ids::{IngestKeyId, OrgId};
use xdr_domain::telemetry::parsers::SshdPidTracker;
use xdr_domain::telemetry::SourceType;

use super::prepare::prepare_records;
use crate::store::{EventStore, NewEvent, StoreError};

/// Events per `append_batch` call: one head lock and one COPY each; big enough to amortize
/// the transaction, small enough to keep the org's lock short and memory bounded.
pub const MAX_APPEND_BATCH: usize = 5_000;

/// A record that was not stored, and why. `index` counts the body's records from 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    pub index: usize,
    pub reason: String,
}

/// What happened to one body. Serializes as the REST response `{stored, rejected}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IngestOutcome {
    /// Records that are now in the log (including ones a retry had already stored).
    pub stored: usize,
    /// Records newly written by this call (`stored` minus duplicates).
    #[serde(skip)]
    pub written: usize,
    pub rejected: Vec<Rejection>,
}

/// The body of `POST /ingest/multi`'s `events` array: one record per line, JSON values
/// serialized (newlines inside strings are escaped, so each stays one line), strings (log
/// lines of line formats such as sshd or CEF) as they are.
pub fn body_from_values(events: &[serde_json::Value]) -> String {
    let mut body = String::new();
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            body.push('\n');
        }
        match e {
            serde_json::Value::String(line) => body.push_str(line),
            other => body.push_str(&other.to_string()),
        }
    }
    body
}

/// Append `events` to `org`'s log in chunks; returns how many were newly written.
pub async fn commit_events(store: &EventStore, org: OrgId, events: Vec<NewEvent>) -> Result<usize, StoreError> {
    let mut written = 0;
    let mut events = events.into_iter().peekable();
    while events.peek().is_some() {
        let chunk: Vec<NewEvent> = events.by_ref().take(MAX_APPEND_BATCH).collect();
        written += store.append_batch(org, chunk).await?.written;
    }
    Ok(written)
}

/// Parse `body` (one record, a JSON array, or newline-delimited records) of `source` and
/// commit the good records to `org`'s log; bad records are reported, not stored.
///
/// `dedupe_base` names the body (see [`super::dedupe_base_of`]): calling again with the same
/// body and base writes nothing new. `hostname_override` is `/ingest/multi`'s `hostname`;
/// `received_at` is when the request arrived (records dated more than a day later are
/// rejected).
#[allow(clippy::too_many_arguments)]
pub async fn ingest_body(
    store: &EventStore,
    received_at: chrono::DateTime<chrono::Utc>,
    org: OrgId,
    key_id: IngestKeyId,
    source: SourceType,
    hostname_override: Option<&str>,
    body: &str,
    dedupe_base: &str,
) -> Result<IngestOutcome, StoreError> {
    let prepared =
        prepare_records(received_at, key_id, source, hostname_override, body, dedupe_base, &mut SshdPidTracker::new());
    let stored = prepared.events.len();
    let written = commit_events(store, org, prepared.events).await?;
    let rejected = prepared.rejected.into_iter().map(|r| Rejection { index: r.index, reason: r.reason }).collect();
    Ok(IngestOutcome { stored, written, rejected })
}

#[cfg(test)]
mod tests {
    use super::body_from_values;
    use serde_json::json;
    use xdr_domain::telemetry::parsers::split_records;
    use xdr_domain::telemetry::SourceType;

    #[test]
    fn multi_events_become_one_record_each() {
        let events = vec![json!({"eventid": "a\nb"}), json!({"eventid": "c"})];
        assert_eq!(split_records(SourceType::Json, &body_from_values(&events)).len(), 2);
        let lines = vec![json!("Nov 26 21:17:22 h sshd[1]: x"), json!("Nov 26 21:17:23 h sshd[1]: y")];
        assert_eq!(
            split_records(SourceType::Sshd, &body_from_values(&lines)),
            ["Nov 26 21:17:22 h sshd[1]: x", "Nov 26 21:17:23 h sshd[1]: y"]
        );
        assert_eq!(body_from_values(&[]), "");
    }
}
