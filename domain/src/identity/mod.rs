//! Identity: organizations (tenants), users with roles, the login lockout policy, invitations
//! and refresh-token sessions.
//!
//! Everything here is pure. Password hashing and verification, token generation and digests,
//! and the clock live in the command handlers; they pass results in (`password_ok`, PHC
//! strings, token hashes, `now`). Payloads never hold a plaintext password or token.

pub mod email;
pub mod error;
pub mod membership;
pub mod organization;
pub mod password;
pub mod password_reset;
pub mod role;
pub mod session;
pub mod slug;
pub mod totp;
pub mod user;

pub use email::Email;
pub use error::IdentityError;
pub use membership::{
    MembershipCommand, SessionCutoff, UserDeactivated, UserReactivated, UserRoleChanged, UserSessionsRevoked,
};
pub use organization::{Organization, OrganizationRegistered, OrganizationStatus, RegisterOrganization};
pub use password::{check_password_policy, PasswordPolicyViolation};
pub use role::{minimum_role, Permission, Role};
pub use session::{
    rotation_outcome, RefreshTokenReuseDetected, RefreshTokenRotated, RevokeReason, RotationOutcome, Session,
    SessionCommand, SessionRevoked, SessionStarted,
};
pub use slug::{OrgName, Slug};
pub use totp::{
    SecondFactor, SecondFactorChallenged, SecondFactorCommand, SecondFactorEnrolled, SecondFactorEnrolmentStarted,
    SecondFactorFailed, SecondFactorFailure, SecondFactorPolicy, SecondFactorPolicySet, SecondFactorProof,
    SecondFactorRequirement, SecondFactorReset, SecondFactorVerified, SetSecondFactorPolicy,
};
pub use user::{
    login_outcome, AccountLocked, AccountUnderAttack, AccountUnlocked, Invitation, InvitationAccepted, KnownDevice,
    KnownDeviceForgotten, LockoutPolicy, LoginAttempt, LoginFailed, LoginFailureReason, LoginOutcome, LoginSucceeded,
    PasswordSet, User, UserCommand, UserCreated, UserInvited, KNOWN_DEVICE_LIFETIME, LOCKOUT, MAX_DEVICE_FAILURES,
    MAX_FAILED_ATTEMPTS, MAX_KNOWN_DEVICES,
};

/// Given/when/then for aggregate tests: `given::<User>(history).when(cmd).then(events)`.
#[cfg(test)]
pub(crate) mod spec {
    use chrono::{DateTime, Duration, TimeZone, Utc};
    use std::fmt::Debug;

    use crate::aggregate::Aggregate;
    use crate::Event;

    /// A fixed instant `seconds` after 2024-01-01T00:00:00Z.
    pub fn at(seconds: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap() + Duration::seconds(seconds)
    }

    pub struct Given<A>(A);

    pub fn given<A: Aggregate>(history: Vec<Event>) -> Given<A> {
        Given(A::from_history(&history))
    }

    impl<A: Aggregate> Given<A> {
        pub fn when(self, command: A::Command) -> Then<A::Error> {
            Then(self.0.decide(&command))
        }
    }

    pub struct Then<E>(Result<Vec<Event>, E>);

    impl<E: Debug + PartialEq> Then<E> {
        /// Assert the decided events and hand them back for further checks.
        #[track_caller]
        pub fn then(self, expected: Vec<Event>) -> Vec<Event> {
            let events = self.events();
            assert_eq!(events, expected);
            events
        }

        #[track_caller]
        pub fn then_err(self, expected: E) {
            assert_eq!(self.err(), expected);
        }

        #[track_caller]
        pub fn events(self) -> Vec<Event> {
            match self.0 {
                Ok(events) => events,
                Err(e) => panic!("expected events, got error {e:?}"),
            }
        }

        #[track_caller]
        pub fn err(self) -> E {
            match self.0 {
                Ok(events) => panic!("expected an error, got events {events:?}"),
                Err(e) => e,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::spec::at;
    use super::*;
    use crate::ids::{OrgId, SessionId, UserId};
    use crate::Event;
    use uuid::Uuid;

    const PLAINTEXT_PASSWORD: &str = "SecurePass123!@#";

    fn one_of_each() -> Vec<Event> {
        let org = OrgId(Uuid::from_u128(1));
        let user = UserId(Uuid::from_u128(2));
        let admin = UserId(Uuid::from_u128(3));
        let jti = Uuid::from_u128(4);
        vec![
            Event::OrganizationRegistered(OrganizationRegistered {
                org_id: org,
                name: "Test Corp".into(),
                slug: Slug::from_name("Test Corp").unwrap(),
                status: OrganizationStatus::Active,
                created_at: at(0),
            }),
            Event::UserCreated(UserCreated {
                user_id: user,
                org_id: org,
                email: Email::parse("alice@example.com").unwrap(),
                full_name: "Alice".into(),
                role: Role::SocLead,
                password_hash: None,
                created_at: at(0),
            }),
            Event::UserInvited(UserInvited { token_hash: "abc123".into(), role: Role::SocLead, expires_at: at(60) }),
            Event::InvitationAccepted(InvitationAccepted { at: at(1) }),
            Event::PasswordSet(PasswordSet { password_hash: "$argon2id$v=19$m=19456,t=2,p=1$x$y".into(), at: at(1) }),
            Event::LoginSucceeded(LoginSucceeded { at: at(2), device_hash: Some("d1".into()), recognised: false }),
            Event::LoginFailed(LoginFailed {
                at: at(3),
                reason: LoginFailureReason::BadPassword,
                consecutive_failures: 1,
                locked_until: None,
                device_hash: None,
                device_failures: None,
            }),
            Event::LoginFailed(LoginFailed {
                at: at(3),
                reason: LoginFailureReason::AccountLocked,
                consecutive_failures: 5,
                locked_until: Some(at(900)),
                device_hash: None,
                device_failures: None,
            }),
            Event::AccountLocked(AccountLocked {
                until: at(900),
                reason: "too many failed logins".into(),
                by_user: None,
                at: at(4),
            }),
            Event::AccountUnlocked(AccountUnlocked { by_user: admin, at: at(5) }),
            Event::KnownDeviceForgotten(KnownDeviceForgotten { device_hash: "d1".into(), at: at(5) }),
            Event::AccountUnderAttack(AccountUnderAttack { consecutive_failures: 5, locked_until: at(900), at: at(5) }),
            Event::SessionStarted(SessionStarted {
                session_id: SessionId(Uuid::from_u128(6)),
                user_id: user,
                refresh_jti: jti,
                at: at(6),
                user_agent: Some("curl/8".into()),
            }),
            Event::RefreshTokenRotated(RefreshTokenRotated { old_jti: jti, new_jti: Uuid::from_u128(7), at: at(7) }),
            Event::RefreshTokenReuseDetected(RefreshTokenReuseDetected { jti, at: at(8) }),
            Event::SessionRevoked(SessionRevoked { reason: RevokeReason::RefreshTokenReuse, at: at(8), by_user: None }),
        ]
    }

    #[test]
    fn it_should_roundtrip_every_identity_event_through_stored_parts() {
        let events = one_of_each();
        let mut names: Vec<&str> = events.iter().map(Event::event_type).collect();
        names.dedup();
        assert_eq!(
            names,
            [
                "OrganizationRegistered",
                "UserCreated",
                "UserInvited",
                "InvitationAccepted",
                "PasswordSet",
                "LoginSucceeded",
                "LoginFailed",
                "AccountLocked",
                "AccountUnlocked",
                "KnownDeviceForgotten",
                "AccountUnderAttack",
                "SessionStarted",
                "RefreshTokenRotated",
                "RefreshTokenReuseDetected",
                "SessionRevoked",
            ]
        );
        for event in events {
            let (event_type, payload) = event.to_parts();
            assert_eq!(event.schema_version(), 1);
            assert_eq!(Event::from_parts(event_type, &payload), Ok(event.clone()), "{event_type}");
        }
    }

    #[test]
    fn it_should_store_roles_and_reasons_in_snake_case() {
        let events = one_of_each();
        let (_, created) = events[1].to_parts();
        assert_eq!(created["role"], "soc_lead");
        assert_eq!(created["email"], "alice@example.com");
        let (_, failed) = events[7].to_parts();
        assert_eq!(failed["reason"], "account_locked");
        let (_, revoked) = events[15].to_parts();
        assert_eq!(revoked["reason"], "refresh_token_reuse");
    }

    #[test]
    fn it_should_never_put_a_plaintext_password_in_a_payload() {
        for event in one_of_each() {
            let (_, payload) = event.to_parts();
            assert!(!payload.to_string().contains(PLAINTEXT_PASSWORD));
            let keys: Vec<String> = payload.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
            assert!(keys.iter().all(|k| k != "password" && k != "token"), "{keys:?}");
        }
    }
}
