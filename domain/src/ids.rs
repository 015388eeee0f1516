//! Identifiers. Every id is a newtype over a UUID so an org id can never be passed where a
//! user id is expected.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $category:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// Stream category of the aggregate this id names (`<category>-<uuid>`).
            pub const CATEGORY: &'static str = $category;

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }

            /// The event-log stream that holds this aggregate's events.
            pub fn stream_id(&self) -> String {
                format!("{}-{}", $category, self.0)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                $name(u)
            }
        }
    };
}

uuid_id!(
    /// A tenant. Every event, read-model row and key starts with it.
    OrgId,
    "org"
);
uuid_id!(
    /// A user (analyst, admin, …) inside one organization.
    UserId,
    "user"
);
uuid_id!(
    /// A login session: the family of refresh tokens issued from one login.
    SessionId,
    "session"
);
uuid_id!(
    /// An incident opened by detection or by an analyst.
    IncidentId,
    "incident"
);
uuid_id!(
    /// An ingest key that authenticates a log producer.
    IngestKeyId,
    "ingestkey"
);
uuid_id!(
    /// A containment action (block, unblock, isolate, …) requested on an incident.
    ActionId,
    "action"
);
uuid_id!(
    /// A containment policy of one organization.
    PolicyId,
    "policy"
);
uuid_id!(
    /// An agent key that authenticates an enforcement agent.
    AgentKeyId,
    "agentkey"
);
