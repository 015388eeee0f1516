//! The `User` aggregate: membership, credentials, invitation and the login lockout policy.
//!
//! Password and token *verification* happen in the handler; this aggregate only sees opaque
//! hashes (a PHC password string, a token digest) and whether the password matched. It never
//! reads a clock: `now` comes with every command.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Email, IdentityError, Role};
use crate::aggregate::Aggregate;
use crate::ids::{OrgId, UserId};
use crate::Event;

/// Consecutive bad passwords that lock an account.
pub const MAX_FAILED_ATTEMPTS: u32 = 5;
/// How long an automatic lock lasts.
pub const LOCKOUT: Duration = Duration::minutes(15);
/// `AccountLocked.reason` of the automatic lock.
pub const LOCK_REASON_FAILED_LOGINS: &str = "too many failed logins";
/// `AccountLocked.reason` of a lock set by an admin.
pub const LOCK_REASON_ADMIN: &str = "locked by admin";

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

/// Event: a user joined an organization. `password_hash` is `None` for a pending invitation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserCreated {
    pub user_id: UserId,
    pub org_id: OrgId,
    pub email: Email,
    pub full_name: String,
    pub role: Role,
    /// Opaque PHC string (never a plaintext password).
    pub password_hash: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Event: the user was invited; the invitation token's digest is kept to verify acceptance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserInvited {
    /// Digest of the invitation token (never the token itself).
    pub token_hash: String,
    pub role: Role,
    pub expires_at: DateTime<Utc>,
}

/// Event: the invitation was accepted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvitationAccepted {
    pub at: DateTime<Utc>,
}

/// Event: the user's password (hash) was set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PasswordSet {
    /// Opaque PHC string.
    pub password_hash: String,
    pub at: DateTime<Utc>,
}

/// Event: a login succeeded; resets the failure counter and clears an expired lock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoginSucceeded {
    pub at: DateTime<Utc>,
}

/// Why a login attempt was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginFailureReason {
    BadPassword,
    AccountLocked,
    NotActive,
}

/// Event: a login attempt was refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoginFailed {
    pub at: DateTime<Utc>,
    pub reason: LoginFailureReason,
    /// Consecutive bad passwords after this attempt (unchanged unless `reason` is `bad_password`).
    pub consecutive_failures: u32,
    /// End of the lock in force, when `reason` is `account_locked`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked_until: Option<DateTime<Utc>>,
}

/// Event: the account was locked, automatically (`by_user: None`) or by an admin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountLocked {
    pub until: DateTime<Utc>,
    pub reason: String,
    pub by_user: Option<UserId>,
    pub at: DateTime<Utc>,
}

/// Event: an admin lifted the lock; the failure counter starts again from zero.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountUnlocked {
    pub by_user: UserId,
    pub at: DateTime<Utc>,
}

// ---------------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------------

/// Everything that can be asked of a user.
#[derive(Debug, Clone, PartialEq)]
pub enum UserCommand {
    /// Create the user, with a password (direct creation) and/or an invitation.
    Create {
        user_id: UserId,
        org_id: OrgId,
        email: Email,
        full_name: String,
        role: Role,
        password_hash: Option<String>,
        /// `(token_hash, expires_at)` of the invitation, if invited.
        invitation: Option<(String, DateTime<Utc>)>,
        now: DateTime<Utc>,
    },
    /// Record a login attempt; the handler already verified the password against the hash.
    RecordLogin { password_ok: bool, now: DateTime<Utc> },
    /// An admin locks the account until `until`.
    Lock { until: DateTime<Utc>, by_user: UserId, now: DateTime<Utc> },
    /// An admin lifts a lock in force.
    Unlock { by_user: UserId, now: DateTime<Utc> },
    /// The invitee presents the token (as its digest) and chooses a password (as its hash; the
    /// handler checks the password policy before hashing).
    AcceptInvitation { token_hash: String, password_hash: String, now: DateTime<Utc> },
}

// ---------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------

/// A pending or past invitation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Invitation {
    /// Never shown, not even in audit state dumps.
    #[serde(skip_serializing)]
    pub token_hash: String,
    pub expires_at: DateTime<Utc>,
    pub accepted: bool,
}

/// State of one `user-<uuid>` stream. `created` is false until `UserCreated`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct User {
    pub created: bool,
    pub user_id: UserId,
    pub org_id: OrgId,
    pub email: Email,
    pub full_name: String,
    pub role: Role,
    /// Opaque PHC string; `None` until set (pending invitation). Never serialized.
    #[serde(skip_serializing)]
    pub password_hash: Option<String>,
    pub is_active: bool,
    /// Consecutive bad passwords since the last success, unlock or expired lock.
    pub failed_attempts: u32,
    pub locked_until: Option<DateTime<Utc>>,
    pub locked_by_admin: bool,
    pub last_login: Option<DateTime<Utc>>,
    pub created_at: Option<DateTime<Utc>>,
    pub invitation: Option<Invitation>,
}

impl Default for User {
    fn default() -> Self {
        User {
            created: false,
            user_id: UserId(Uuid::nil()),
            org_id: OrgId(Uuid::nil()),
            email: Email(String::new()),
            full_name: String::new(),
            role: Role::Viewer,
            password_hash: None,
            is_active: false,
            failed_attempts: 0,
            locked_until: None,
            locked_by_admin: false,
            last_login: None,
            created_at: None,
            invitation: None,
        }
    }
}

impl User {
    /// The end of the lock in force at `now`, if any.
    pub fn is_locked_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.locked_until.filter(|until| *until > now)
    }

    /// Whether a password login is possible at all (active and a password is set).
    pub fn can_log_in(&self) -> bool {
        self.is_active && self.password_hash.is_some()
    }

    /// The failure count a new attempt builds on: an expired lock starts it again from zero.
    fn failures_at(&self, now: DateTime<Utc>) -> u32 {
        match self.locked_until {
            Some(until) if until <= now => 0,
            _ => self.failed_attempts,
        }
    }

    fn clear_expired_lock(&mut self, now: DateTime<Utc>) {
        if self.locked_until.is_some_and(|until| until <= now) {
            self.locked_until = None;
            self.locked_by_admin = false;
        }
    }

    fn decide_login(&self, password_ok: bool, now: DateTime<Utc>) -> Vec<Event> {
        let failed = |reason, consecutive_failures, locked_until| {
            Event::LoginFailed(LoginFailed { at: now, reason, consecutive_failures, locked_until })
        };
        if let Some(until) = self.is_locked_at(now) {
            return vec![failed(LoginFailureReason::AccountLocked, self.failed_attempts, Some(until))];
        }
        let failures = self.failures_at(now);
        // Checked before the password so guessing at a pending invitation can never lock it.
        if !self.can_log_in() {
            return vec![failed(LoginFailureReason::NotActive, failures, None)];
        }
        if password_ok {
            return vec![Event::LoginSucceeded(LoginSucceeded { at: now })];
        }
        let n = failures + 1;
        let mut events = vec![failed(LoginFailureReason::BadPassword, n, None)];
        if n >= MAX_FAILED_ATTEMPTS {
            events.push(Event::AccountLocked(AccountLocked {
                until: now + LOCKOUT,
                reason: LOCK_REASON_FAILED_LOGINS.to_owned(),
                by_user: None,
                at: now,
            }));
        }
        events
    }

    fn decide_accept(
        &self,
        token_hash: &str,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Event>, IdentityError> {
        let valid = self.invitation.as_ref().is_some_and(|inv| {
            !inv.accepted && inv.expires_at > now && constant_time_eq(inv.token_hash.as_bytes(), token_hash.as_bytes())
        });
        if !valid {
            return Err(IdentityError::InvalidInvitation);
        }
        Ok(vec![
            Event::InvitationAccepted(InvitationAccepted { at: now }),
            Event::PasswordSet(PasswordSet { password_hash: password_hash.to_owned(), at: now }),
        ])
    }
}

/// Compare two digests without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Aggregate for User {
    type Command = UserCommand;
    type Error = IdentityError;

    fn apply(&mut self, event: &Event) {
        match event {
            Event::UserCreated(e) => {
                self.created = true;
                self.user_id = e.user_id;
                self.org_id = e.org_id;
                self.email = e.email.clone();
                self.full_name = e.full_name.clone();
                self.role = e.role;
                self.password_hash = e.password_hash.clone();
                self.is_active = true;
                self.created_at = Some(e.created_at);
            }
            Event::UserInvited(e) => {
                self.role = e.role;
                self.invitation =
                    Some(Invitation { token_hash: e.token_hash.clone(), expires_at: e.expires_at, accepted: false });
            }
            Event::InvitationAccepted(_) => {
                if let Some(inv) = &mut self.invitation {
                    inv.accepted = true;
                }
            }
            Event::PasswordSet(e) => self.password_hash = Some(e.password_hash.clone()),
            Event::LoginSucceeded(e) => {
                self.failed_attempts = 0;
                self.clear_expired_lock(e.at);
                self.last_login = Some(e.at);
            }
            Event::LoginFailed(e) => {
                self.failed_attempts = e.consecutive_failures;
                self.clear_expired_lock(e.at);
            }
            Event::AccountLocked(e) => {
                self.locked_until = Some(e.until);
                self.locked_by_admin = e.by_user.is_some();
            }
            Event::AccountUnlocked(_) => {
                self.failed_attempts = 0;
                self.locked_until = None;
                self.locked_by_admin = false;
            }
            _ => {}
        }
    }

    fn decide(&self, command: &UserCommand) -> Result<Vec<Event>, IdentityError> {
        if let UserCommand::Create { user_id, org_id, email, full_name, role, password_hash, invitation, now } = command
        {
            if self.created {
                return Err(IdentityError::AlreadyExists);
            }
            let full_name = full_name.trim();
            if !(1..=255).contains(&full_name.chars().count()) {
                return Err(IdentityError::InvalidName);
            }
            let mut events = vec![Event::UserCreated(UserCreated {
                user_id: *user_id,
                org_id: *org_id,
                email: email.clone(),
                full_name: full_name.to_owned(),
                role: *role,
                password_hash: password_hash.clone(),
                created_at: *now,
            })];
            if let Some((token_hash, expires_at)) = invitation {
                events.push(Event::UserInvited(UserInvited {
                    token_hash: token_hash.clone(),
                    role: *role,
                    expires_at: *expires_at,
                }));
            }
            return Ok(events);
        }
        if !self.created {
            // An unknown invitee learns no more than a wrong token would tell them.
            return Err(match command {
                UserCommand::AcceptInvitation { .. } => IdentityError::InvalidInvitation,
                _ => IdentityError::NotFound,
            });
        }
        match command {
            UserCommand::Create { .. } => unreachable!("handled above"),
            UserCommand::RecordLogin { password_ok, now } => Ok(self.decide_login(*password_ok, *now)),
            UserCommand::Lock { until, by_user, now } => {
                if until <= now {
                    return Err(IdentityError::InvalidLockDuration);
                }
                Ok(vec![Event::AccountLocked(AccountLocked {
                    until: *until,
                    reason: LOCK_REASON_ADMIN.to_owned(),
                    by_user: Some(*by_user),
                    at: *now,
                })])
            }
            UserCommand::Unlock { by_user, now } => {
                if self.is_locked_at(*now).is_none() {
                    return Err(IdentityError::NotLocked);
                }
                Ok(vec![Event::AccountUnlocked(AccountUnlocked { by_user: *by_user, at: *now })])
            }
            UserCommand::AcceptInvitation { token_hash, password_hash, now } => {
                self.decide_accept(token_hash, password_hash, *now)
            }
        }
    }
}

/// What the login handler should answer, read from the events `RecordLogin` produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginOutcome {
    Succeeded,
    /// Wrong password or no usable account: answer the generic "invalid credentials".
    Failed,
    /// The account is locked (now or already was) until `until`.
    Locked {
        until: DateTime<Utc>,
    },
}

/// Summarize `RecordLogin`'s events. A lock (new or in force) wins over a plain failure.
pub fn login_outcome(events: &[Event]) -> LoginOutcome {
    let mut outcome = LoginOutcome::Failed;
    for event in events {
        match event {
            Event::AccountLocked(e) => return LoginOutcome::Locked { until: e.until },
            Event::LoginFailed(LoginFailed {
                reason: LoginFailureReason::AccountLocked,
                locked_until: Some(until),
                ..
            }) => return LoginOutcome::Locked { until: *until },
            Event::LoginSucceeded(_) => outcome = LoginOutcome::Succeeded,
            _ => {}
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::spec::{at, given};

    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA";
    const TOKEN_HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn user_id() -> UserId {
        UserId(Uuid::from_u128(10))
    }
    fn admin_id() -> UserId {
        UserId(Uuid::from_u128(11))
    }
    fn org_id() -> OrgId {
        OrgId(Uuid::from_u128(1))
    }

    fn create(password_hash: Option<&str>, invitation: Option<(&str, i64)>) -> UserCommand {
        UserCommand::Create {
            user_id: user_id(),
            org_id: org_id(),
            email: Email::parse("Alice@Example.com").unwrap(),
            full_name: " Alice Analyst ".into(),
            role: Role::Analyst,
            password_hash: password_hash.map(str::to_owned),
            invitation: invitation.map(|(t, exp)| (t.to_owned(), at(exp))),
            now: at(0),
        }
    }

    fn created(password_hash: Option<&str>) -> Event {
        Event::UserCreated(UserCreated {
            user_id: user_id(),
            org_id: org_id(),
            email: Email::parse("alice@example.com").unwrap(),
            full_name: "Alice Analyst".into(),
            role: Role::Analyst,
            password_hash: password_hash.map(str::to_owned),
            created_at: at(0),
        })
    }

    fn invited(expires: i64) -> Event {
        Event::UserInvited(UserInvited { token_hash: TOKEN_HASH.into(), role: Role::Analyst, expires_at: at(expires) })
    }

    fn active_user() -> Vec<Event> {
        vec![created(Some(HASH))]
    }

    fn login(ok: bool, t: i64) -> UserCommand {
        UserCommand::RecordLogin { password_ok: ok, now: at(t) }
    }

    fn failed(t: i64, reason: LoginFailureReason, n: u32, locked_until: Option<i64>) -> Event {
        Event::LoginFailed(LoginFailed {
            at: at(t),
            reason,
            consecutive_failures: n,
            locked_until: locked_until.map(at),
        })
    }

    fn bad(t: i64, n: u32) -> Event {
        failed(t, LoginFailureReason::BadPassword, n, None)
    }

    fn auto_lock(t: i64) -> Event {
        Event::AccountLocked(AccountLocked {
            until: at(t) + LOCKOUT,
            reason: LOCK_REASON_FAILED_LOGINS.into(),
            by_user: None,
            at: at(t),
        })
    }

    /// History of an active user after five bad passwords at t = 1..=5 (locked at t = 5).
    fn locked_user() -> Vec<Event> {
        let mut h = active_user();
        h.extend((1..=5).map(|t| bad(t, t as u32)));
        h.push(auto_lock(5));
        h
    }

    fn after(history: &[Event], cmd: UserCommand) -> Vec<Event> {
        let mut all = history.to_vec();
        all.extend(given::<User>(history.to_vec()).when(cmd).events());
        all
    }

    // --- Create ---------------------------------------------------------------------------

    #[test]
    fn it_should_create_a_user_with_a_trimmed_name() {
        given::<User>(vec![]).when(create(Some(HASH), None)).then(vec![created(Some(HASH))]);
    }

    #[test]
    fn it_should_record_the_invitation_when_invited() {
        given::<User>(vec![]).when(create(None, Some((TOKEN_HASH, 100)))).then(vec![created(None), invited(100)]);
    }

    #[test]
    fn it_should_not_create_twice() {
        given::<User>(active_user()).when(create(Some(HASH), None)).then_err(IdentityError::AlreadyExists);
    }

    #[test]
    fn it_should_not_create_with_a_blank_name() {
        let mut cmd = create(Some(HASH), None);
        if let UserCommand::Create { full_name, .. } = &mut cmd {
            *full_name = "   ".into();
        }
        given::<User>(vec![]).when(cmd).then_err(IdentityError::InvalidName);
    }

    #[test]
    fn it_should_not_create_with_a_name_over_255_chars() {
        let mut cmd = create(Some(HASH), None);
        if let UserCommand::Create { full_name, .. } = &mut cmd {
            *full_name = "n".repeat(256);
        }
        given::<User>(vec![]).when(cmd).then_err(IdentityError::InvalidName);
    }

    #[test]
    fn it_should_not_accept_commands_for_a_user_that_does_not_exist() {
        given::<User>(vec![]).when(login(true, 1)).then_err(IdentityError::NotFound);
        given::<User>(vec![])
            .when(UserCommand::Unlock { by_user: admin_id(), now: at(1) })
            .then_err(IdentityError::NotFound);
    }

    // --- Login ----------------------------------------------------------------------------

    #[test]
    fn it_should_record_a_successful_login() {
        given::<User>(active_user())
            .when(login(true, 1))
            .then(vec![Event::LoginSucceeded(LoginSucceeded { at: at(1) })]);
    }

    #[test]
    fn it_should_count_consecutive_bad_passwords() {
        let h = after(&active_user(), login(false, 1));
        given::<User>(h).when(login(false, 2)).then(vec![bad(2, 2)]);
    }

    #[test]
    fn it_should_lock_for_15_minutes_at_the_fifth_bad_password() {
        let mut h = active_user();
        h.extend((1..=4).map(|t| bad(t, t as u32)));
        given::<User>(h).when(login(false, 5)).then(vec![bad(5, 5), auto_lock(5)]);
    }

    #[test]
    fn it_should_reset_the_counter_after_a_success() {
        let mut h = active_user();
        h.extend((1..=4).map(|t| bad(t, t as u32)));
        let h = after(&h, login(true, 5));
        assert_eq!(User::from_history(&h).failed_attempts, 0);
        given::<User>(h).when(login(false, 6)).then(vec![bad(6, 1)]);
    }

    #[test]
    fn it_should_not_let_a_locked_user_in_even_with_the_right_password() {
        let until = 5 + LOCKOUT.num_seconds();
        given::<User>(locked_user()).when(login(true, 60)).then(vec![failed(
            60,
            LoginFailureReason::AccountLocked,
            5,
            Some(until),
        )]);
    }

    #[test]
    fn it_should_not_count_or_relock_while_locked() {
        let h = after(&locked_user(), login(false, 60));
        let user = User::from_history(&h);
        assert_eq!(user.failed_attempts, 5);
        assert_eq!(user.locked_until, Some(at(5) + LOCKOUT));
    }

    #[test]
    fn it_should_start_counting_from_zero_once_a_lock_expired() {
        let t = 5 + LOCKOUT.num_seconds();
        let h = after(&locked_user(), login(false, t));
        assert_eq!(h.last(), Some(&bad(t, 1)));
        let user = User::from_history(&h);
        assert_eq!(user.locked_until, None);
        given::<User>(h).when(login(false, t + 1)).then(vec![bad(t + 1, 2)]);
    }

    #[test]
    fn it_should_let_a_user_in_once_the_lock_expired() {
        let t = 5 + LOCKOUT.num_seconds() + 1;
        let h = after(&locked_user(), login(true, t));
        let user = User::from_history(&h);
        assert_eq!((user.failed_attempts, user.locked_until, user.last_login), (0, None, Some(at(t))));
    }

    #[test]
    fn it_should_not_let_a_pending_invitee_log_in_nor_lock_them() {
        let h = vec![created(None), invited(100)];
        given::<User>(h.clone()).when(login(false, 1)).then(vec![failed(1, LoginFailureReason::NotActive, 0, None)]);
        let mut h = h;
        for t in 1..=6 {
            h = after(&h, login(false, t));
        }
        assert_eq!(User::from_history(&h).is_locked_at(at(7)), None);
    }

    #[test]
    fn it_should_report_when_a_user_is_locked() {
        let user = User::from_history(&locked_user());
        assert_eq!(user.is_locked_at(at(6)), Some(at(5) + LOCKOUT));
        assert_eq!(user.is_locked_at(at(5) + LOCKOUT), None);
    }

    #[test]
    fn it_should_tell_the_handler_the_login_outcome() {
        assert_eq!(login_outcome(&[Event::LoginSucceeded(LoginSucceeded { at: at(1) })]), LoginOutcome::Succeeded);
        assert_eq!(login_outcome(&[bad(1, 1)]), LoginOutcome::Failed);
        assert_eq!(login_outcome(&[bad(5, 5), auto_lock(5)]), LoginOutcome::Locked { until: at(5) + LOCKOUT });
        let in_force = failed(6, LoginFailureReason::AccountLocked, 5, Some(900));
        assert_eq!(login_outcome(&[in_force]), LoginOutcome::Locked { until: at(900) });
        assert_eq!(login_outcome(&[]), LoginOutcome::Failed);
    }

    // --- Lock / unlock --------------------------------------------------------------------

    #[test]
    fn it_should_lock_by_admin() {
        given::<User>(active_user()).when(UserCommand::Lock { until: at(1000), by_user: admin_id(), now: at(1) }).then(
            vec![Event::AccountLocked(AccountLocked {
                until: at(1000),
                reason: LOCK_REASON_ADMIN.into(),
                by_user: Some(admin_id()),
                at: at(1),
            })],
        );
    }

    #[test]
    fn it_should_not_lock_until_a_time_already_past() {
        given::<User>(active_user())
            .when(UserCommand::Lock { until: at(1), by_user: admin_id(), now: at(1) })
            .then_err(IdentityError::InvalidLockDuration);
    }

    #[test]
    fn it_should_unlock_and_reset_the_counter() {
        given::<User>(locked_user())
            .when(UserCommand::Unlock { by_user: admin_id(), now: at(6) })
            .then(vec![Event::AccountUnlocked(AccountUnlocked { by_user: admin_id(), at: at(6) })]);
        let h = after(&locked_user(), UserCommand::Unlock { by_user: admin_id(), now: at(6) });
        let user = User::from_history(&h);
        assert_eq!((user.failed_attempts, user.locked_until, user.locked_by_admin), (0, None, false));
    }

    #[test]
    fn it_should_not_unlock_a_user_who_is_not_locked() {
        given::<User>(active_user())
            .when(UserCommand::Unlock { by_user: admin_id(), now: at(6) })
            .then_err(IdentityError::NotLocked);
        let expired = 5 + LOCKOUT.num_seconds();
        given::<User>(locked_user())
            .when(UserCommand::Unlock { by_user: admin_id(), now: at(expired) })
            .then_err(IdentityError::NotLocked);
    }

    // --- Invitation -----------------------------------------------------------------------

    fn accept(token_hash: &str, t: i64) -> UserCommand {
        UserCommand::AcceptInvitation { token_hash: token_hash.into(), password_hash: HASH.into(), now: at(t) }
    }

    #[test]
    fn it_should_accept_an_invitation_and_set_the_password() {
        let h = vec![created(None), invited(100)];
        given::<User>(h.clone()).when(accept(TOKEN_HASH, 50)).then(vec![
            Event::InvitationAccepted(InvitationAccepted { at: at(50) }),
            Event::PasswordSet(PasswordSet { password_hash: HASH.into(), at: at(50) }),
        ]);
        let h = after(&h, accept(TOKEN_HASH, 50));
        assert!(User::from_history(&h).can_log_in());
        given::<User>(h).when(login(true, 51)).then(vec![Event::LoginSucceeded(LoginSucceeded { at: at(51) })]);
    }

    #[test]
    fn it_should_not_accept_a_wrong_token() {
        given::<User>(vec![created(None), invited(100)])
            .when(accept("0000", 50))
            .then_err(IdentityError::InvalidInvitation);
    }

    #[test]
    fn it_should_not_accept_an_expired_invitation() {
        given::<User>(vec![created(None), invited(100)])
            .when(accept(TOKEN_HASH, 100))
            .then_err(IdentityError::InvalidInvitation);
    }

    #[test]
    fn it_should_not_accept_an_invitation_twice() {
        let h = after(&[created(None), invited(100)], accept(TOKEN_HASH, 50));
        given::<User>(h).when(accept(TOKEN_HASH, 60)).then_err(IdentityError::InvalidInvitation);
    }

    #[test]
    fn it_should_not_accept_an_invitation_that_was_never_sent() {
        given::<User>(active_user()).when(accept(TOKEN_HASH, 50)).then_err(IdentityError::InvalidInvitation);
        given::<User>(vec![]).when(accept(TOKEN_HASH, 50)).then_err(IdentityError::InvalidInvitation);
    }
}
