//! Password reset by e-mail, and the password change of a signed-in user.
//!
//! A reset lives in its own stream, `pwreset-<user uuid>` (the [`PasswordReset`] aggregate):
//! every request issues a new link and supersedes the one before; a link works once, for
//! [`RESET_TTL`]. Only the digest of a link's token is recorded (the token is in the mail
//! alone). The new password itself lands in the user's stream as [`PasswordChanged`], which
//! also clears an automatic lock when it came from a reset: whoever holds the mailbox has
//! proven who they are better than the lock's failed guesses have disproven it. An admin's
//! lock stays: it is a decision, not a counter.
//!
//! Pure like the rest: `now` and the reset id arrive in the command; hashing and token
//! derivation happen in the handler.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::IdentityError;
use crate::aggregate::Aggregate;
use crate::ids::UserId;
use crate::Event;

/// How long a reset link works.
pub const RESET_TTL: Duration = Duration::minutes(30);

/// Event (`pwreset-<user uuid>`): a reset link was issued; it supersedes every earlier one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PasswordResetRequested {
    pub reset_id: Uuid,
    pub user_id: UserId,
    /// Digest of the link's token (never the token).
    pub token_hash: String,
    pub expires_at: DateTime<Utc>,
    pub at: DateTime<Utc>,
}

/// Event (`pwreset-<user uuid>`): the link was used; it never works again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PasswordResetCompleted {
    pub reset_id: Uuid,
    pub at: DateTime<Utc>,
}

/// How a password was replaced by its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PasswordChangeKind {
    /// Through a mailed reset link: clears an automatic lock too.
    Reset,
    /// Signed in, with the current password.
    Change,
}

/// Event (`user-<uuid>`): the owner replaced the password.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PasswordChanged {
    /// Opaque PHC string.
    pub password_hash: String,
    pub kind: PasswordChangeKind,
    /// The change lifts the automatic lock and resets the failure counter (a reset of a user
    /// no admin has locked). Decided here, so every reader folds the same answer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub clears_lock: bool,
    pub at: DateTime<Utc>,
}

/// Why a reset link was refused. The user hears one message for all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ResetRefusal {
    /// No such link (wrong token, unknown user).
    Invalid,
    Expired,
    /// Already used.
    Spent,
    /// A newer link was requested since.
    Superseded,
}

/// Everything that can be asked of a user's reset stream.
#[derive(Debug, Clone, PartialEq)]
pub enum PasswordResetCommand {
    /// Issue a link (the handler derived its token and passes the digest).
    Request { reset_id: Uuid, user_id: UserId, token_hash: String, now: DateTime<Utc> },
    /// Use the link `reset_id` whose token digests to `token_hash`.
    Complete { reset_id: Uuid, token_hash: String, now: DateTime<Utc> },
}

/// The link in force.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutstandingReset {
    pub reset_id: Uuid,
    pub token_hash: String,
    pub expires_at: DateTime<Utc>,
    pub spent: bool,
}

/// State of one `pwreset-<user uuid>` stream.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PasswordReset {
    pub current: Option<OutstandingReset>,
    /// Ids of the links issued before the current one.
    pub superseded: Vec<Uuid>,
}

impl PasswordReset {
    /// Whether `reset_id`/`token_hash` may be used at `now`, and why not.
    pub fn check(&self, reset_id: Uuid, token_hash: &str, now: DateTime<Utc>) -> Result<(), ResetRefusal> {
        let Some(current) = self.current.as_ref().filter(|c| c.reset_id == reset_id) else {
            return Err(if self.superseded.contains(&reset_id) {
                ResetRefusal::Superseded
            } else {
                ResetRefusal::Invalid
            });
        };
        if !constant_time_eq(current.token_hash.as_bytes(), token_hash.as_bytes()) {
            return Err(ResetRefusal::Invalid);
        }
        if current.spent {
            return Err(ResetRefusal::Spent);
        }
        if current.expires_at <= now {
            return Err(ResetRefusal::Expired);
        }
        Ok(())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Aggregate for PasswordReset {
    type Command = PasswordResetCommand;
    type Error = IdentityError;

    fn apply(&mut self, event: &Event) {
        match event {
            Event::PasswordResetRequested(e) => {
                if let Some(previous) = self.current.take() {
                    self.superseded.push(previous.reset_id);
                }
                self.current = Some(OutstandingReset {
                    reset_id: e.reset_id,
                    token_hash: e.token_hash.clone(),
                    expires_at: e.expires_at,
                    spent: false,
                });
            }
            Event::PasswordResetCompleted(e) => {
                if let Some(current) = self.current.as_mut().filter(|c| c.reset_id == e.reset_id) {
                    current.spent = true;
                }
            }
            _ => {}
        }
    }

    fn decide(&self, command: &PasswordResetCommand) -> Result<Vec<Event>, IdentityError> {
        match command {
            PasswordResetCommand::Request { reset_id, user_id, token_hash, now } => {
                Ok(vec![Event::PasswordResetRequested(PasswordResetRequested {
                    reset_id: *reset_id,
                    user_id: *user_id,
                    token_hash: token_hash.clone(),
                    expires_at: *now + RESET_TTL,
                    at: *now,
                })])
            }
            PasswordResetCommand::Complete { reset_id, token_hash, now } => {
                self.check(*reset_id, token_hash, *now).map_err(IdentityError::ResetRefused)?;
                Ok(vec![Event::PasswordResetCompleted(PasswordResetCompleted { reset_id: *reset_id, at: *now })])
            }
        }
    }
}

/// The user-stream event of a password change by its owner. Refused for a user that does not
/// exist or is deactivated (a deactivated account is not revived through its mailbox).
pub fn change_password(
    user: &super::User,
    password_hash: &str,
    kind: PasswordChangeKind,
    now: DateTime<Utc>,
) -> Result<Event, IdentityError> {
    if !user.created || !user.is_active {
        return Err(match kind {
            PasswordChangeKind::Reset => IdentityError::ResetRefused(ResetRefusal::Invalid),
            PasswordChangeKind::Change => IdentityError::NotFound,
        });
    }
    let clears_lock = kind == PasswordChangeKind::Reset && !user.locked_by_admin;
    Ok(Event::PasswordChanged(PasswordChanged { password_hash: password_hash.to_owned(), kind, clears_lock, at: now }))
}

/// The event that ends `session` because its owner's password changed; `None` when it already
/// ended (or is `keep`, the session that changed the password).
pub fn end_session_for_password(
    session: &super::Session,
    keep: Option<crate::ids::SessionId>,
    reason: super::RevokeReason,
    by_user: UserId,
    now: DateTime<Utc>,
) -> Option<Event> {
    if !session.is_active() || Some(session.session_id) == keep || session.user_id != by_user {
        return None;
    }
    Some(Event::SessionRevoked(super::SessionRevoked { reason, at: now, by_user: Some(by_user) }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::spec::{at, given};
    use crate::identity::{Email, Role, User, UserCreated};
    use crate::ids::OrgId;

    fn user() -> UserId {
        UserId(Uuid::from_u128(10))
    }

    fn requested(n: u128, t: i64) -> Event {
        Event::PasswordResetRequested(PasswordResetRequested {
            reset_id: Uuid::from_u128(n),
            user_id: user(),
            token_hash: format!("hash-{n}"),
            expires_at: at(t) + RESET_TTL,
            at: at(t),
        })
    }

    fn complete(n: u128, t: i64) -> PasswordResetCommand {
        PasswordResetCommand::Complete { reset_id: Uuid::from_u128(n), token_hash: format!("hash-{n}"), now: at(t) }
    }

    fn refused(r: ResetRefusal) -> IdentityError {
        IdentityError::ResetRefused(r)
    }

    #[test]
    fn it_should_issue_a_link_that_expires_in_thirty_minutes() {
        given::<PasswordReset>(vec![])
            .when(PasswordResetCommand::Request {
                reset_id: Uuid::from_u128(1),
                user_id: user(),
                token_hash: "hash-1".into(),
                now: at(0),
            })
            .then(vec![requested(1, 0)]);
    }

    #[test]
    fn it_should_accept_a_fresh_link_once() {
        let events = given::<PasswordReset>(vec![requested(1, 0)]).when(complete(1, 60)).events();
        assert_eq!(
            events,
            vec![Event::PasswordResetCompleted(PasswordResetCompleted { reset_id: Uuid::from_u128(1), at: at(60) })]
        );
        let mut history = vec![requested(1, 0)];
        history.extend(events);
        given::<PasswordReset>(history).when(complete(1, 61)).then_err(refused(ResetRefusal::Spent));
    }

    #[test]
    fn it_should_not_accept_an_expired_link() {
        let expiry = RESET_TTL.num_seconds();
        given::<PasswordReset>(vec![requested(1, 0)])
            .when(complete(1, expiry))
            .then_err(refused(ResetRefusal::Expired));
        given::<PasswordReset>(vec![requested(1, 0)]).when(complete(1, expiry - 1)).events();
    }

    #[test]
    fn it_should_not_accept_a_superseded_link() {
        let history = vec![requested(1, 0), requested(2, 10)];
        given::<PasswordReset>(history.clone()).when(complete(1, 20)).then_err(refused(ResetRefusal::Superseded));
        given::<PasswordReset>(history).when(complete(2, 20)).events();
    }

    #[test]
    fn it_should_not_accept_a_forged_token_or_an_unknown_link() {
        let forged =
            PasswordResetCommand::Complete { reset_id: Uuid::from_u128(1), token_hash: "hash-x".into(), now: at(1) };
        given::<PasswordReset>(vec![requested(1, 0)]).when(forged).then_err(refused(ResetRefusal::Invalid));
        given::<PasswordReset>(vec![requested(1, 0)]).when(complete(9, 1)).then_err(refused(ResetRefusal::Invalid));
        given::<PasswordReset>(vec![]).when(complete(1, 1)).then_err(refused(ResetRefusal::Invalid));
    }

    fn active_user() -> User {
        User::from_history(&[Event::UserCreated(UserCreated {
            user_id: user(),
            org_id: OrgId(Uuid::from_u128(1)),
            email: Email::parse("alice@example.com").unwrap(),
            full_name: "Alice".into(),
            role: Role::Analyst,
            password_hash: Some("old".into()),
            created_at: at(0),
        })])
    }

    #[test]
    fn it_should_clear_an_automatic_lock_on_reset_but_keep_an_admin_lock() {
        let mut locked = active_user();
        locked.failed_attempts = 5;
        locked.locked_until = Some(at(900));
        let reset = change_password(&locked, "new", PasswordChangeKind::Reset, at(10)).unwrap();
        let mut after = locked.clone();
        after.apply(&reset);
        assert_eq!((after.password_hash.as_deref(), after.failed_attempts, after.locked_until), (Some("new"), 0, None));

        locked.locked_by_admin = true;
        let reset = change_password(&locked, "new", PasswordChangeKind::Reset, at(10)).unwrap();
        let mut after = locked.clone();
        after.apply(&reset);
        assert_eq!(after.admin_lock_at(at(10)), Some(at(900)));

        let change = change_password(&active_user(), "new", PasswordChangeKind::Change, at(10)).unwrap();
        let mut changed = active_user();
        changed.failed_attempts = 3;
        changed.apply(&change);
        assert_eq!((changed.password_hash.as_deref(), changed.failed_attempts), (Some("new"), 3));
    }

    #[test]
    fn it_should_end_every_live_session_but_the_kept_one() {
        use crate::identity::{RevokeReason, Session, SessionStarted};
        use crate::ids::SessionId;
        let started = |n: u128| {
            Session::from_history(&[Event::SessionStarted(SessionStarted {
                session_id: SessionId(Uuid::from_u128(n)),
                user_id: user(),
                refresh_jti: Uuid::from_u128(100 + n),
                at: at(0),
                user_agent: None,
            })])
        };
        let keep = Some(SessionId(Uuid::from_u128(2)));
        let ended = end_session_for_password(&started(1), keep, RevokeReason::PasswordChanged, user(), at(5));
        assert_eq!(
            ended,
            Some(Event::SessionRevoked(crate::identity::SessionRevoked {
                reason: RevokeReason::PasswordChanged,
                at: at(5),
                by_user: Some(user()),
            }))
        );
        assert_eq!(end_session_for_password(&started(2), keep, RevokeReason::PasswordChanged, user(), at(5)), None);
        let mut revoked = started(3);
        revoked.apply(&ended.unwrap());
        assert_eq!(end_session_for_password(&revoked, None, RevokeReason::PasswordReset, user(), at(6)), None);
        let other = UserId(Uuid::from_u128(99));
        assert_eq!(end_session_for_password(&started(4), None, RevokeReason::PasswordReset, other, at(6)), None);
    }

    #[test]
    fn it_should_not_change_the_password_of_a_deactivated_or_unknown_user() {
        let mut inactive = active_user();
        inactive.is_active = false;
        assert_eq!(
            change_password(&inactive, "new", PasswordChangeKind::Reset, at(1)),
            Err(refused(ResetRefusal::Invalid))
        );
        assert_eq!(
            change_password(&User::default(), "new", PasswordChangeKind::Change, at(1)),
            Err(IdentityError::NotFound)
        );
    }
}
