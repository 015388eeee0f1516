//! The read models, one module each. Adding a model = one module + one line in [`all`].

use uuid::Uuid;
use xdr_commands::StoredEvent;
use xdr_domain::Event;

use crate::runner::{Projection, ProjectionError};

pub mod actions;
pub mod audit_log;
pub mod containment;
pub mod credential_keys;
pub mod incidents;
pub mod organizations;
pub mod security_events;
pub mod user_sessions;
pub mod users;

/// Every projection the runner maintains, in apply order.
pub fn all() -> Vec<Box<dyn Projection>> {
    vec![
        Box::new(organizations::Organizations),
        Box::new(users::Users),
        Box::new(user_sessions::UserSessions),
        Box::new(security_events::SecurityEvents),
        Box::new(audit_log::AuditLog),
        Box::new(credential_keys::INGEST_KEYS),
        Box::new(credential_keys::AGENT_KEYS),
        Box::new(actions::Actions),
        Box::new(containment::Containment),
        Box::new(incidents::Incidents),
    ]
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
