//! `rm_security_events`: normalized telemetry (`SecurityEventObserved`), one row per event
//! with the original record in `raw`.
//!
//! Telemetry is the bulk of every log, so this projection reads it where it lies: one
//! `INSERT … SELECT` over the org's log range (`xdr_commands::org_log_range!`) per batch (the payload is already
//! `jsonb`, so nothing is serialized, shipped to the client, parsed and sent back). The
//! column mapping is the `SecurityEvent` payload's field names, nothing more;
//! `ON CONFLICT (org_id, org_seq) DO NOTHING` makes redelivery harmless.

use xdr_domain::EventType;

use crate::runner::{Apply, Projection, ReadModelTable, Reads};

pub const SECURITY_EVENTS: Projection = Projection {
    name: "security_events",
    tables: &[ReadModelTable { name: "rm_security_events", order_by: "org_id, org_seq" }],
    reads: Reads::Only(&[EventType::SecurityEventObserved]),
    // $1 the org, ($2, $3] the org_seq range.
    apply: Apply::Sql(concat!(
        "INSERT INTO rm_security_events (org_id, org_seq, event_id, \"timestamp\", recorded_at, \
           source_type, event_type, src_ip, src_port, dst_ip, dst_port, protocol, username, command, \
           url, file_hash, session_id, hostname, message, raw) \
         SELECT org_id, org_seq, event_id, (payload->>'timestamp')::timestamptz, recorded_at, \
           payload->>'source_type', payload->>'event_type', (payload->>'src_ip')::inet, \
           (payload->>'src_port')::int4, (payload->>'dst_ip')::inet, (payload->>'dst_port')::int4, \
           payload->>'protocol', payload->>'username', payload->>'command', payload->>'url', \
           payload->>'file_hash', payload->>'session_id', payload->>'hostname', payload->>'message', \
           COALESCE(payload->'raw', 'null'::jsonb) \
         FROM ",
        xdr_commands::org_log_range!(),
        " AND event_type = 'SecurityEventObserved' \
         ON CONFLICT (org_id, org_seq) DO NOTHING"
    )),
};
