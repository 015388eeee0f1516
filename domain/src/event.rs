//! The one event enum of the system and the metadata every event carries.
//!
//! Stored form: `event_type` is the variant name and `payload` its fields, so the log reads
//! naturally in SQL and a reader never needs this crate to understand it.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::detection::BaselineTrained;
use crate::identity::password_reset::{PasswordChanged, PasswordResetCompleted, PasswordResetRequested};
use crate::identity::totp::{
    SecondFactorChallenged, SecondFactorEnrolled, SecondFactorEnrolmentStarted, SecondFactorFailed,
    SecondFactorPolicySet, SecondFactorReset, SecondFactorVerified,
};
use crate::identity::{
    AccountLocked, AccountUnderAttack, AccountUnlocked, InvitationAccepted, KnownDeviceForgotten, LoginFailed,
    LoginSucceeded, OrganizationRegistered, PasswordSet, RefreshTokenReuseDetected, RefreshTokenRotated,
    SessionRevoked, SessionStarted, UserCreated, UserDeactivated, UserInvited, UserReactivated, UserRoleChanged,
    UserSessionsRevoked,
};
use crate::incident::{EvidenceAttached, IncidentEscalated, IncidentOpened, IncidentStatusChanged};
use crate::ingest_key::{IngestKeyCreated, IngestKeyRevoked};
use crate::mail::{EmailFailed, EmailSent};
use crate::response::action::{
    ActionApproved, ActionDelivered, ActionDispatched, ActionExpired, ActionFailed, ActionRejected, ActionRequested,
    ActionSucceeded, PolicyMatched,
};
use crate::response::agent_key::{AgentKeyCreated, AgentKeyRevoked};
use crate::response::policy::{
    AutoContainmentSet, ContainmentPolicyCreated, ContainmentPolicyDeleted, ContainmentPolicyUpdated,
    ContainmentSettingsChanged, SelfApprovalSet,
};
use crate::telemetry::SecurityEvent;

/// Who caused an event and from where: the audit trail that comes for free.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventMetadata {
    /// The acting user, `None` for the system itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor_user_id: Option<Uuid>,
    /// Free-form actor label: `system`, `operator`, `ingest-key:<id>`, `detector`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
}

impl EventMetadata {
    pub fn system(actor: &str) -> Self {
        EventMetadata { actor: Some(actor.to_owned()), ..Default::default() }
    }
}

/// Every fact the system records. Variants are grouped by the stream category they live in.
// Telemetry records dwarf the other payloads; they are built and dropped one at a time on the
// ingest path, where a box per record would cost more than the extra bytes.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event_type", content = "payload")]
pub enum Event {
    /// Telemetry: one normalized record from a producer.
    SecurityEventObserved(SecurityEvent),
    /// Identity (`org-<uuid>`): a tenant was registered.
    OrganizationRegistered(OrganizationRegistered),
    /// Identity (`user-<uuid>`): membership, invitation, credentials and login lockout.
    UserCreated(UserCreated),
    UserInvited(UserInvited),
    InvitationAccepted(InvitationAccepted),
    PasswordSet(PasswordSet),
    LoginSucceeded(LoginSucceeded),
    LoginFailed(LoginFailed),
    AccountLocked(AccountLocked),
    AccountUnlocked(AccountUnlocked),
    KnownDeviceForgotten(KnownDeviceForgotten),
    AccountUnderAttack(AccountUnderAttack),
    /// Identity (`session-<uuid>`): one login's family of refresh tokens.
    SessionStarted(SessionStarted),
    RefreshTokenRotated(RefreshTokenRotated),
    RefreshTokenReuseDetected(RefreshTokenReuseDetected),
    SessionRevoked(SessionRevoked),
    /// Ingest (`ingestkey-<uuid>`): a producer credential was issued or revoked.
    IngestKeyCreated(IngestKeyCreated),
    IngestKeyRevoked(IngestKeyRevoked),
    /// Incident (`incident-<uuid>`): detection findings and their lifecycle.
    IncidentOpened(IncidentOpened),
    EvidenceAttached(EvidenceAttached),
    IncidentEscalated(IncidentEscalated),
    IncidentStatusChanged(IncidentStatusChanged),
    /// Detection (`baseline-<org uuid>`): a per-org baseline of normal behaviour was fitted.
    BaselineTrained(BaselineTrained),
    /// Response (`action-<uuid>`): one containment action from request to result.
    PolicyMatched(PolicyMatched),
    ActionRequested(ActionRequested),
    ActionApproved(ActionApproved),
    ActionRejected(ActionRejected),
    ActionDispatched(ActionDispatched),
    ActionDelivered(ActionDelivered),
    ActionSucceeded(ActionSucceeded),
    ActionFailed(ActionFailed),
    ActionExpired(ActionExpired),
    /// Response (`containment-<org uuid>`): the org's policies, switch and safety rails.
    ContainmentPolicyCreated(ContainmentPolicyCreated),
    ContainmentPolicyUpdated(ContainmentPolicyUpdated),
    ContainmentPolicyDeleted(ContainmentPolicyDeleted),
    AutoContainmentSet(AutoContainmentSet),
    ContainmentSettingsChanged(ContainmentSettingsChanged),
    SelfApprovalSet(SelfApprovalSet),
    /// Response (`agentkey-<uuid>`): an enforcement agent's credential.
    AgentKeyCreated(AgentKeyCreated),
    AgentKeyRevoked(AgentKeyRevoked),
    /// Identity (`pwreset-<user uuid>`): reset links by e-mail; (`user-<uuid>`) the owner's
    /// new password.
    PasswordResetRequested(PasswordResetRequested),
    PasswordResetCompleted(PasswordResetCompleted),
    PasswordChanged(PasswordChanged),
    /// Mail (`mail-<source event id>`): what became of a message an event asked for.
    EmailSent(EmailSent),
    EmailFailed(EmailFailed),
    /// Identity (`user-<uuid>`): membership after the invitation (`identity::membership`).
    UserRoleChanged(UserRoleChanged),
    UserDeactivated(UserDeactivated),
    UserReactivated(UserReactivated),
    UserSessionsRevoked(UserSessionsRevoked),
    /// Identity (`user-<uuid>`): the TOTP second factor (`identity::totp`).
    SecondFactorEnrolmentStarted(SecondFactorEnrolmentStarted),
    SecondFactorEnrolled(SecondFactorEnrolled),
    SecondFactorChallenged(SecondFactorChallenged),
    SecondFactorVerified(SecondFactorVerified),
    SecondFactorFailed(SecondFactorFailed),
    SecondFactorReset(SecondFactorReset),
    /// Identity (`mfapolicy-<org uuid>`): who must use a second factor.
    SecondFactorPolicySet(SecondFactorPolicySet),
}

impl Event {
    /// Stable name stored in `event_log.event_type`.
    pub fn event_type(&self) -> &'static str {
        self.kind().as_str()
    }

    /// Version of the payload's shape, bumped when a variant's fields change incompatibly.
    pub fn schema_version(&self) -> i32 {
        1
    }

    /// Split into the stored `(event_type, payload)` pair.
    pub fn to_parts(&self) -> (&'static str, serde_json::Value) {
        let mut v = serde_json::to_value(self).expect("events always serialize");
        let payload = v.get_mut("payload").map(serde_json::Value::take).unwrap_or(serde_json::Value::Null);
        (self.event_type(), payload)
    }

    /// Rebuild from the stored pair; unknown types are an error, not a panic.
    pub fn from_parts(event_type: &str, payload: &serde_json::Value) -> Result<Event, String> {
        serde_json::from_value(serde_json::json!({ "event_type": event_type, "payload": payload }))
            .map_err(|e| format!("cannot decode {event_type}: {e}"))
    }
}

/// Declares [`EventType`] from the list of [`Event`] variants: `Event::kind` matches every
/// variant, so a variant missing from the list does not compile.
macro_rules! event_types {
    ($($name:ident),* $(,)?) => {
        /// The type of an [`Event`] without its payload: what `event_log.event_type` stores,
        /// and what a projection or consumer names when it says which events it reads (a
        /// misspelt type does not compile).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventType {
            $($name),*
        }

        impl EventType {
            /// Every type, in declaration order.
            pub const ALL: &'static [EventType] = &[$(EventType::$name),*];

            /// The stored name.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(EventType::$name => stringify!($name)),*
                }
            }

            /// The type a stored name denotes, if any.
            pub fn parse(name: &str) -> Option<EventType> {
                match name {
                    $(stringify!($name) => Some(EventType::$name),)*
                    _ => None,
                }
            }
        }

        impl Event {
            /// This event's type.
            pub fn kind(&self) -> EventType {
                match self {
                    $(Event::$name(_) => EventType::$name),*
                }
            }
        }
    };
}

event_types!(
    SecurityEventObserved,
    OrganizationRegistered,
    UserCreated,
    UserInvited,
    InvitationAccepted,
    PasswordSet,
    LoginSucceeded,
    LoginFailed,
    AccountLocked,
    AccountUnlocked,
    KnownDeviceForgotten,
    AccountUnderAttack,
    SessionStarted,
    RefreshTokenRotated,
    RefreshTokenReuseDetected,
    SessionRevoked,
    IngestKeyCreated,
    IngestKeyRevoked,
    IncidentOpened,
    EvidenceAttached,
    IncidentEscalated,
    IncidentStatusChanged,
    BaselineTrained,
    PolicyMatched,
    ActionRequested,
    ActionApproved,
    ActionRejected,
    ActionDispatched,
    ActionDelivered,
    ActionSucceeded,
    ActionFailed,
    ActionExpired,
    ContainmentPolicyCreated,
    ContainmentPolicyUpdated,
    ContainmentPolicyDeleted,
    AutoContainmentSet,
    ContainmentSettingsChanged,
    SelfApprovalSet,
    AgentKeyCreated,
    AgentKeyRevoked,
    PasswordResetRequested,
    PasswordResetCompleted,
    PasswordChanged,
    EmailSent,
    EmailFailed,
    UserRoleChanged,
    UserDeactivated,
    UserReactivated,
    UserSessionsRevoked,
    SecondFactorEnrolmentStarted,
    SecondFactorEnrolled,
    SecondFactorChallenged,
    SecondFactorVerified,
    SecondFactorFailed,
    SecondFactorReset,
    SecondFactorPolicySet,
);

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod event_type_tests {
    use super::*;

    #[test]
    fn every_event_type_round_trips_through_its_stored_name() {
        for &t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
        let mut names: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), EventType::ALL.len());
        assert_eq!(EventType::parse("PasswordReset"), None);
    }

    #[test]
    fn an_event_stores_the_name_of_its_type() {
        let event = Event::AccountUnlocked(AccountUnlocked {
            by_user: crate::ids::UserId(uuid::Uuid::nil()),
            at: chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
        });
        assert_eq!(event.kind(), EventType::AccountUnlocked);
        assert_eq!(event.to_parts().0, "AccountUnlocked");
    }
}
