//! The read models, one module each: a [`Projection`] value (name, tables, the event types it
//! reads, and how it applies them). Adding a model = one module + one line in [`ALL`].

use uuid::Uuid;
use xdr_commands::StoredEvent;
use xdr_domain::Event;

use crate::runner::{Projection, ProjectionError};

/// The `Apply::Rows` of a projection that applies its rows one at a time with
/// `$one(conn, &StoredEvent)`.
macro_rules! one_by_one {
    ($one:path) => {
        crate::runner::Apply::Rows(|conn, events| {
            Box::pin(async move {
                for e in events {
                    $one(conn, e).await?;
                }
                Ok(())
            })
        })
    };
}

pub mod actions;
pub mod audit_log;
pub mod containment;
pub mod credential_keys;
pub mod incidents;
pub mod organizations;
pub mod security_events;
pub mod user_sessions;
pub mod users;

/// Every projection the runner maintains, in apply order (incidents after actions: an
/// action's steps land on its incident's timeline).
pub const ALL: &[Projection] = &[
    organizations::ORGANIZATIONS,
    users::USERS,
    user_sessions::USER_SESSIONS,
    security_events::SECURITY_EVENTS,
    audit_log::AUDIT_LOG,
    credential_keys::INGEST_KEYS,
    credential_keys::AGENT_KEYS,
    actions::ACTIONS,
    containment::CONTAINMENT,
    incidents::INCIDENTS,
];

/// [`ALL`], as a slice the runner takes.
pub fn all() -> &'static [Projection] {
    ALL
}

/// Decode a stored event into the domain enum, or say which row could not be read.
pub(crate) fn decode(projection: &'static str, e: &StoredEvent) -> Result<Event, ProjectionError> {
    e.event().map_err(|reason| apply_error(projection, e, reason))
}

/// The aggregate id of a `<category>-<uuid>` stream.
pub(crate) fn stream_uuid(projection: &'static str, e: &StoredEvent, category: &str) -> Result<Uuid, ProjectionError> {
    e.stream_id
        .strip_prefix(category)
        .and_then(|rest| rest.strip_prefix('-'))
        .and_then(|id| Uuid::parse_str(id).ok())
        .ok_or_else(|| apply_error(projection, e, format!("stream {:?} is not a {category} stream", e.stream_id)))
}

pub(crate) fn apply_error(projection: &'static str, e: &StoredEvent, reason: String) -> ProjectionError {
    ProjectionError::Apply { projection, org: e.org_id, org_seq: e.org_seq, reason }
}
