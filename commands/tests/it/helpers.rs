//! Shared builders for store tests.

use serde_json::json;
use uuid::Uuid;
use xdr_commands::NewEvent;

pub fn event(stream: &str, n: usize) -> NewEvent {
    NewEvent {
        event_id: Uuid::new_v4(),
        stream_id: stream.to_owned(),
        event_type: "TestHappened".into(),
        schema_version: 1,
        payload: json!({"n": n, "text": "tab\there, newline\nthere, backslash \\ and quote \""}),
        metadata: json!({"actor": "test"}),
    }
}
