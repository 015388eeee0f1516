//! The `Session` aggregate: the family of refresh tokens issued from one login.
//!
//! Each refresh rotates the token: the presented `jti` must be the current one and becomes
//! spent. Presenting a spent `jti` means a token was stolen and replayed, so the whole family
//! is revoked (OAuth 2.0 refresh-token reuse detection).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::IdentityError;
use crate::aggregate::Aggregate;
use crate::ids::{SessionId, UserId};
use crate::Event;

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevokeReason {
    Logout,
    RefreshTokenReuse,
    /// The owner reset the password by e-mail: every session ends.
    PasswordReset,
    /// The owner changed the password: every other session ends.
    PasswordChanged,
    /// Ended from the session list, by its user or an admin of the org.
    Revoked,
}

/// Event: a login opened a session with its first refresh token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionStarted {
    pub session_id: SessionId,
    pub user_id: UserId,
    pub refresh_jti: Uuid,
    pub at: DateTime<Utc>,
    /// The client's `User-Agent`, shown in the session list (the address is in the metadata).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

/// Event: the current refresh token was exchanged for a new one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefreshTokenRotated {
    pub old_jti: Uuid,
    pub new_jti: Uuid,
    pub at: DateTime<Utc>,
}

/// Event: an already spent refresh token was presented again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefreshTokenReuseDetected {
    pub jti: Uuid,
    pub at: DateTime<Utc>,
}

/// Event: the session ended; none of its refresh tokens is accepted any more.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRevoked {
    pub reason: RevokeReason,
    pub at: DateTime<Utc>,
    /// The user who logged out; `None` when the system revoked the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_user: Option<UserId>,
}

/// Everything that can be asked of a session.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionCommand {
    Start {
        session_id: SessionId,
        user_id: UserId,
        refresh_jti: Uuid,
        user_agent: Option<String>,
        now: DateTime<Utc>,
    },
    /// Exchange the presented refresh token (`presented_jti`) for one with `new_jti`.
    Rotate {
        presented_jti: Uuid,
        new_jti: Uuid,
        now: DateTime<Utc>,
    },
    Logout {
        by_user: UserId,
        now: DateTime<Utc>,
    },
    /// End the session from the session list (its user, or an admin of the org).
    Revoke {
        by_user: UserId,
        now: DateTime<Utc>,
    },
}

/// State of one `session-<uuid>` stream. `started` is false until `SessionStarted`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Session {
    pub started: bool,
    pub session_id: SessionId,
    pub user_id: UserId,
    pub current_refresh_jti: Option<Uuid>,
    pub spent_jtis: Vec<Uuid>,
    pub revoked: Option<RevokeReason>,
    pub started_at: Option<DateTime<Utc>>,
}

impl Default for Session {
    fn default() -> Self {
        Session {
            started: false,
            session_id: SessionId(Uuid::nil()),
            user_id: UserId(Uuid::nil()),
            current_refresh_jti: None,
            spent_jtis: Vec::new(),
            revoked: None,
            started_at: None,
        }
    }
}

/// However often its refresh token rotates, a session ends this long after sign-in: a
/// stolen refresh token cannot be kept alive forever by refreshing it.
pub const SESSION_MAX_AGE: chrono::Duration = chrono::Duration::days(30);

impl Session {
    /// Started and not revoked: its current refresh token may be rotated.
    pub fn is_active(&self) -> bool {
        self.started && self.revoked.is_none()
    }
}

impl Session {
    fn decide_end(
        &self,
        reason: RevokeReason,
        by_user: UserId,
        now: DateTime<Utc>,
    ) -> Result<Vec<Event>, IdentityError> {
        if !self.started {
            return Err(IdentityError::NotFound);
        }
        if self.revoked.is_some() {
            return Ok(vec![]);
        }
        Ok(vec![Event::SessionRevoked(SessionRevoked { reason, at: now, by_user: Some(by_user) })])
    }
}

impl Aggregate for Session {
    type Command = SessionCommand;
    type Error = IdentityError;

    fn apply(&mut self, event: &Event) {
        match event {
            Event::SessionStarted(e) => {
                self.started = true;
                self.session_id = e.session_id;
                self.user_id = e.user_id;
                self.current_refresh_jti = Some(e.refresh_jti);
                self.started_at = Some(e.at);
            }
            Event::RefreshTokenRotated(e) => {
                self.spent_jtis.push(e.old_jti);
                self.current_refresh_jti = Some(e.new_jti);
            }
            Event::SessionRevoked(e) => {
                self.revoked.get_or_insert(e.reason);
            }
            _ => {}
        }
    }

    fn decide(&self, command: &SessionCommand) -> Result<Vec<Event>, IdentityError> {
        match command {
            SessionCommand::Start { session_id, user_id, refresh_jti, user_agent, now } => {
                if self.started {
                    return Err(IdentityError::AlreadyExists);
                }
                Ok(vec![Event::SessionStarted(SessionStarted {
                    session_id: *session_id,
                    user_id: *user_id,
                    refresh_jti: *refresh_jti,
                    at: *now,
                    user_agent: user_agent.clone(),
                })])
            }
            SessionCommand::Rotate { presented_jti, new_jti, now } => {
                if !self.started {
                    return Err(IdentityError::InvalidToken);
                }
                if self.revoked.is_some() {
                    return Err(IdentityError::SessionRevoked);
                }
                if self.started_at.is_some_and(|start| *now >= start + SESSION_MAX_AGE) {
                    return Err(IdentityError::SessionExpired);
                }
                if self.current_refresh_jti == Some(*presented_jti) {
                    return Ok(vec![Event::RefreshTokenRotated(RefreshTokenRotated {
                        old_jti: *presented_jti,
                        new_jti: *new_jti,
                        at: *now,
                    })]);
                }
                if self.spent_jtis.contains(presented_jti) {
                    return Ok(vec![
                        Event::RefreshTokenReuseDetected(RefreshTokenReuseDetected { jti: *presented_jti, at: *now }),
                        Event::SessionRevoked(SessionRevoked {
                            reason: RevokeReason::RefreshTokenReuse,
                            at: *now,
                            by_user: None,
                        }),
                    ]);
                }
                Err(IdentityError::InvalidToken)
            }
            SessionCommand::Logout { by_user, now } => self.decide_end(RevokeReason::Logout, *by_user, *now),
            SessionCommand::Revoke { by_user, now } => self.decide_end(RevokeReason::Revoked, *by_user, *now),
        }
    }
}

/// What the refresh handler should answer, read from the events `Rotate` produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationOutcome {
    /// Issue a refresh token carrying `new_jti` (and a fresh access token).
    Rotated { new_jti: Uuid },
    /// Reuse was detected and the session revoked: append the events, then answer 401.
    Revoked,
}

/// Summarize `Rotate`'s events. Anything but a clean rotation is a revocation.
pub fn rotation_outcome(events: &[Event]) -> RotationOutcome {
    let revoked = events.iter().any(|e| matches!(e, Event::SessionRevoked(_) | Event::RefreshTokenReuseDetected(_)));
    match events.iter().find_map(|e| match e {
        Event::RefreshTokenRotated(r) => Some(r.new_jti),
        _ => None,
    }) {
        Some(new_jti) if !revoked => RotationOutcome::Rotated { new_jti },
        _ => RotationOutcome::Revoked,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::spec::{at, given};

    fn sid() -> SessionId {
        SessionId(Uuid::from_u128(20))
    }
    fn uid() -> UserId {
        UserId(Uuid::from_u128(10))
    }
    fn jti(n: u128) -> Uuid {
        Uuid::from_u128(100 + n)
    }

    fn started() -> Event {
        Event::SessionStarted(SessionStarted {
            session_id: sid(),
            user_id: uid(),
            refresh_jti: jti(1),
            at: at(0),
            user_agent: None,
        })
    }

    fn rotated(old: u128, new: u128, t: i64) -> Event {
        Event::RefreshTokenRotated(RefreshTokenRotated { old_jti: jti(old), new_jti: jti(new), at: at(t) })
    }

    fn rotate(presented: u128, new: u128, t: i64) -> SessionCommand {
        SessionCommand::Rotate { presented_jti: jti(presented), new_jti: jti(new), now: at(t) }
    }

    fn logged_out(t: i64) -> Event {
        Event::SessionRevoked(SessionRevoked { reason: RevokeReason::Logout, at: at(t), by_user: Some(uid()) })
    }

    #[test]
    fn it_should_start_a_session() {
        given::<Session>(vec![])
            .when(SessionCommand::Start {
                session_id: sid(),
                user_id: uid(),
                refresh_jti: jti(1),
                user_agent: None,
                now: at(0),
            })
            .then(vec![started()]);
    }

    #[test]
    fn it_should_not_start_twice() {
        given::<Session>(vec![started()])
            .when(SessionCommand::Start {
                session_id: sid(),
                user_id: uid(),
                refresh_jti: jti(9),
                user_agent: None,
                now: at(1),
            })
            .then_err(IdentityError::AlreadyExists);
    }

    #[test]
    fn it_should_rotate_the_current_token() {
        let events = given::<Session>(vec![started()]).when(rotate(1, 2, 10)).then(vec![rotated(1, 2, 10)]);
        assert_eq!(rotation_outcome(&events), RotationOutcome::Rotated { new_jti: jti(2) });
    }

    #[test]
    fn it_should_accept_only_the_newest_token_after_rotation() {
        given::<Session>(vec![started(), rotated(1, 2, 10)]).when(rotate(2, 3, 20)).then(vec![rotated(2, 3, 20)]);
    }

    #[test]
    fn it_should_revoke_the_family_when_a_spent_token_is_reused() {
        let events = given::<Session>(vec![started(), rotated(1, 2, 10)]).when(rotate(1, 3, 20)).then(vec![
            Event::RefreshTokenReuseDetected(RefreshTokenReuseDetected { jti: jti(1), at: at(20) }),
            Event::SessionRevoked(SessionRevoked {
                reason: RevokeReason::RefreshTokenReuse,
                at: at(20),
                by_user: None,
            }),
        ]);
        assert_eq!(rotation_outcome(&events), RotationOutcome::Revoked);
        let mut h = vec![started(), rotated(1, 2, 10)];
        h.extend(events);
        let session = Session::from_history(&h);
        assert!(!session.is_active());
        assert_eq!(session.revoked, Some(RevokeReason::RefreshTokenReuse));
    }

    #[test]
    fn it_should_end_a_session_at_its_absolute_lifetime_however_often_it_rotated() {
        let max = SESSION_MAX_AGE.num_seconds();
        let h = vec![started(), rotated(1, 2, max - 100)];
        given::<Session>(h.clone()).when(rotate(2, 3, max - 1)).then(vec![rotated(2, 3, max - 1)]);
        given::<Session>(h).when(rotate(2, 3, max)).then_err(IdentityError::SessionExpired);
    }

    #[test]
    fn it_should_not_rotate_a_revoked_session() {
        let h = vec![started(), rotated(1, 2, 10), logged_out(15)];
        given::<Session>(h.clone()).when(rotate(2, 3, 20)).then_err(IdentityError::SessionRevoked);
        given::<Session>(h).when(rotate(1, 3, 20)).then_err(IdentityError::SessionRevoked);
    }

    #[test]
    fn it_should_not_rotate_an_unknown_token() {
        given::<Session>(vec![started()]).when(rotate(7, 8, 10)).then_err(IdentityError::InvalidToken);
        given::<Session>(vec![]).when(rotate(1, 2, 10)).then_err(IdentityError::InvalidToken);
    }

    #[test]
    fn it_should_revoke_on_logout() {
        given::<Session>(vec![started()])
            .when(SessionCommand::Logout { by_user: uid(), now: at(15) })
            .then(vec![logged_out(15)]);
    }

    #[test]
    fn it_should_be_idempotent_on_a_second_logout() {
        given::<Session>(vec![started(), logged_out(15)])
            .when(SessionCommand::Logout { by_user: uid(), now: at(16) })
            .then(vec![]);
    }

    #[test]
    fn it_should_not_log_out_a_session_that_never_started() {
        given::<Session>(vec![])
            .when(SessionCommand::Logout { by_user: uid(), now: at(1) })
            .then_err(IdentityError::NotFound);
    }

    #[test]
    fn it_should_be_active_only_between_start_and_revocation() {
        assert!(!Session::default().is_active());
        assert!(Session::from_history(&[started()]).is_active());
        assert!(!Session::from_history(&[started(), logged_out(1)]).is_active());
    }
}
