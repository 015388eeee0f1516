//! `rm_audit_log`: who did what when — one row per non-telemetry event, with the actor and
//! request address from the event's metadata and the payload minus its secrets
//! (`xdr_redact`, see the migration: keys naming a password, token, secret or hash are
//! dropped at every depth). Projected in SQL over the org's log range (`xdr_commands::org_log_range!`).

use xdr_domain::EventType;

use crate::runner::{Apply, Projection, ReadModelTable, Reads};

pub const AUDIT_LOG: Projection = Projection {
    name: "audit_log",
    tables: &[ReadModelTable { name: "rm_audit_log", order_by: "org_id, org_seq" }],
    reads: Reads::AllExcept(&[EventType::SecurityEventObserved]),
    // $1 the org, ($2, $3] the org_seq range.
    apply: Apply::Sql(concat!(
        "INSERT INTO rm_audit_log (org_id, org_seq, event_id, recorded_at, stream_id, event_type, \
           actor_user_id, actor, request_ip, details) \
         SELECT org_id, org_seq, event_id, recorded_at, stream_id, event_type, \
           (metadata->>'actor_user_id')::uuid, metadata->>'actor', metadata->>'request_ip', \
           xdr_redact(payload) \
         FROM ",
        xdr_commands::org_log_range!(),
        " AND event_type <> 'SecurityEventObserved' \
         ON CONFLICT (org_id, org_seq) DO NOTHING"
    )),
};
