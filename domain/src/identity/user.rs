//! The `User` aggregate: membership, credentials, invitation and the login lockout policy.
//!
//! Password and token *verification* happen in the handler; this aggregate only sees opaque
//! hashes (a PHC password string, a token digest) and whether the password matched. It never
//! reads a clock: `now` comes with every command.
//!
//! ## Lockout that cannot be turned against the owner
//!
//! Consecutive bad passwords lock the *password path for unknown clients*. A client that
//! signed in successfully before holds a "known device" token (random, issued by the handler
//! on every successful sign-in; only its digest is recorded here). A sign-in that presents a
//! known device's token is judged on its own: someone else's failures neither count against
//! it nor lock it out, so an attacker who knows the address cannot keep the owner out. A known
//! device's own bad passwords are counted per device, and the device is forgotten after
//! [`MAX_DEVICE_FAILURES`], so a stolen device token buys the thief only a few guesses more.
//! Admin locks stop every client. An automatic lock is also announced as
//! [`AccountUnderAttack`] for the org's admins.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::membership::{MembershipCommand, SessionCutoff};
use super::totp::{SecondFactor, SecondFactorCommand};
use super::{Email, IdentityError, Role};
use crate::aggregate::Aggregate;
use crate::ids::{OrgId, UserId};
use crate::Event;

/// Consecutive bad passwords that lock an account (the default of [`LockoutPolicy`]).
pub const MAX_FAILED_ATTEMPTS: u32 = 5;
/// How long an automatic lock lasts (the default of [`LockoutPolicy`]).
pub const LOCKOUT: Duration = Duration::minutes(15);
/// How long after its last successful sign-in a device stays known (the default of
/// [`LockoutPolicy`]).
pub const KNOWN_DEVICE_LIFETIME: Duration = Duration::days(30);
/// Devices remembered per user; signing in from one more forgets the least recently used.
pub const MAX_KNOWN_DEVICES: usize = 10;
/// Consecutive bad passwords from one known device after which it is forgotten.
pub const MAX_DEVICE_FAILURES: u32 = 5;
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

/// Event: a login succeeded. From an unknown client it resets the failure counter and clears
/// an expired lock; from a known device it leaves both alone (they are someone else's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoginSucceeded {
    pub at: DateTime<Utc>,
    /// Digest of the device token the client holds from now on (`None` in logs written
    /// before known devices existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_hash: Option<String>,
    /// The client presented the token of a device that was already known.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recognised: bool,
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
    /// The known device the attempt came from; its failures are counted apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_hash: Option<String>,
    /// Consecutive bad passwords of that device after this attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_failures: Option<u32>,
}

/// Event: a known device is no longer trusted (too many bad passwords from it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KnownDeviceForgotten {
    pub device_hash: String,
    pub at: DateTime<Utc>,
}

/// Event, for the org's admins: bad passwords from unknown clients locked the account. The
/// request metadata holds the address the last guess came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountUnderAttack {
    pub consecutive_failures: u32,
    pub locked_until: DateTime<Utc>,
    pub at: DateTime<Utc>,
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
    RecordLogin(LoginAttempt),
    /// An admin locks the account until `until`.
    Lock { until: DateTime<Utc>, by_user: UserId, now: DateTime<Utc> },
    /// An admin lifts a lock in force.
    Unlock { by_user: UserId, now: DateTime<Utc> },
    /// The invitee presents the token (as its digest) and chooses a password (as its hash; the
    /// handler checks the password policy before hashing).
    AcceptInvitation { token_hash: String, password_hash: String, now: DateTime<Utc> },
    /// Role, deactivation and bulk session ends (`super::membership`).
    Membership(MembershipCommand),
    /// The TOTP second factor (`super::totp`).
    SecondFactor(SecondFactorCommand),
}

/// How many bad passwords lock the password path for unknown clients, for how long, and how
/// long a device stays known. Comes with each attempt (from the deployment's settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    pub max_failures: u32,
    pub lockout: Duration,
    pub known_device_lifetime: Duration,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        LockoutPolicy {
            max_failures: MAX_FAILED_ATTEMPTS,
            lockout: LOCKOUT,
            known_device_lifetime: KNOWN_DEVICE_LIFETIME,
        }
    }
}

/// One sign-in attempt as the handler saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoginAttempt {
    pub password_ok: bool,
    /// Digest of the device token the client presented, if any.
    pub presented_device: Option<String>,
    /// Digest of a fresh device token, recorded if the attempt succeeds from a client that is
    /// not (or no longer) a known device; the handler hands that token to the client.
    pub new_device: String,
    pub policy: LockoutPolicy,
    pub now: DateTime<Utc>,
}

// ---------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------

/// A client that signed in successfully, known by the digest of the token it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KnownDevice {
    pub device_hash: String,
    pub last_success: DateTime<Utc>,
    /// Consecutive bad passwords from this device.
    pub failures: u32,
}

/// A pending or past invitation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invitation {
    /// Never shown: state dumps drop every `*hash` key (`replay --state` redacts).
    pub token_hash: String,
    pub expires_at: DateTime<Utc>,
    pub accepted: bool,
}

/// State of one `user-<uuid>` stream. `created` is false until `UserCreated`.
///
/// Serializes completely (it is its own snapshot); whoever shows it to a person redacts the
/// `*hash` keys first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub created: bool,
    pub user_id: UserId,
    pub org_id: OrgId,
    pub email: Email,
    pub full_name: String,
    pub role: Role,
    /// Opaque PHC string; `None` until set (pending invitation).
    pub password_hash: Option<String>,
    pub is_active: bool,
    /// Consecutive bad passwords from unknown clients since the last success from one, an
    /// unlock or an expired lock.
    pub failed_attempts: u32,
    pub locked_until: Option<DateTime<Utc>>,
    pub locked_by_admin: bool,
    pub last_login: Option<DateTime<Utc>>,
    pub created_at: Option<DateTime<Utc>>,
    pub invitation: Option<Invitation>,
    /// Most recently used first, at most [`MAX_KNOWN_DEVICES`].
    #[serde(default)]
    pub known_devices: Vec<KnownDevice>,
    /// Bulk session ends (deactivation, "revoke all"): see `super::membership`.
    #[serde(default)]
    pub session_cutoffs: Vec<SessionCutoff>,
    /// The TOTP second factor (`super::totp`).
    #[serde(default)]
    pub second_factor: SecondFactor,
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
            known_devices: Vec::new(),
            session_cutoffs: Vec::new(),
            second_factor: SecondFactor::default(),
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

    /// The end of an admin's lock in force at `now`: it stops every client and every session.
    pub fn admin_lock_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.is_locked_at(now).filter(|_| self.locked_by_admin)
    }

    /// The known device with this token digest, if it signed in within `lifetime` of `now`.
    pub fn known_device(&self, device_hash: &str, lifetime: Duration, now: DateTime<Utc>) -> Option<&KnownDevice> {
        self.known_devices.iter().find(|d| {
            constant_time_eq(d.device_hash.as_bytes(), device_hash.as_bytes()) && d.last_success + lifetime > now
        })
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

    fn remember_device(&mut self, device_hash: &str, at: DateTime<Utc>) {
        self.known_devices.retain(|d| d.device_hash != device_hash);
        self.known_devices
            .insert(0, KnownDevice { device_hash: device_hash.to_owned(), last_success: at, failures: 0 });
        self.known_devices.truncate(MAX_KNOWN_DEVICES);
    }

    fn decide_login(&self, attempt: &LoginAttempt) -> Vec<Event> {
        let LoginAttempt { password_ok, presented_device, new_device, policy, now } = attempt;
        let now = *now;
        let failed = |reason, consecutive_failures, locked_until| {
            Event::LoginFailed(LoginFailed {
                at: now,
                reason,
                consecutive_failures,
                locked_until,
                device_hash: None,
                device_failures: None,
            })
        };
        if let Some(until) = self.admin_lock_at(now) {
            return vec![failed(LoginFailureReason::AccountLocked, self.failed_attempts, Some(until))];
        }
        let known = presented_device.as_deref().and_then(|d| self.known_device(d, policy.known_device_lifetime, now));
        if let Some(device) = known {
            return self.decide_known_device_login(device, *password_ok, now);
        }
        if let Some(until) = self.is_locked_at(now) {
            return vec![failed(LoginFailureReason::AccountLocked, self.failed_attempts, Some(until))];
        }
        let failures = self.failures_at(now);
        // Checked before the password so guessing at a pending invitation can never lock it.
        if !self.can_log_in() {
            return vec![failed(LoginFailureReason::NotActive, failures, None)];
        }
        if *password_ok {
            return vec![Event::LoginSucceeded(LoginSucceeded {
                at: now,
                device_hash: Some(new_device.clone()),
                recognised: false,
            })];
        }
        let n = failures + 1;
        let mut events = vec![failed(LoginFailureReason::BadPassword, n, None)];
        if n >= policy.max_failures {
            let until = now + policy.lockout;
            events.push(Event::AccountLocked(AccountLocked {
                until,
                reason: LOCK_REASON_FAILED_LOGINS.to_owned(),
                by_user: None,
                at: now,
            }));
            events.push(Event::AccountUnderAttack(AccountUnderAttack {
                consecutive_failures: n,
                locked_until: until,
                at: now,
            }));
        }
        events
    }

    /// A sign-in from a known device: not held back by the automatic lock, and its bad
    /// passwords count against the device only.
    fn decide_known_device_login(&self, device: &KnownDevice, password_ok: bool, now: DateTime<Utc>) -> Vec<Event> {
        if !self.can_log_in() {
            return vec![Event::LoginFailed(LoginFailed {
                at: now,
                reason: LoginFailureReason::NotActive,
                consecutive_failures: self.failed_attempts,
                locked_until: None,
                device_hash: Some(device.device_hash.clone()),
                device_failures: Some(device.failures),
            })];
        }
        if password_ok {
            return vec![Event::LoginSucceeded(LoginSucceeded {
                at: now,
                device_hash: Some(device.device_hash.clone()),
                recognised: true,
            })];
        }
        let n = device.failures + 1;
        let mut events = vec![Event::LoginFailed(LoginFailed {
            at: now,
            reason: LoginFailureReason::BadPassword,
            consecutive_failures: self.failed_attempts,
            locked_until: None,
            device_hash: Some(device.device_hash.clone()),
            device_failures: Some(n),
        })];
        if n >= MAX_DEVICE_FAILURES {
            events.push(Event::KnownDeviceForgotten(KnownDeviceForgotten {
                device_hash: device.device_hash.clone(),
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

    // v2: session cut-offs and the second factor joined the state; v1 snapshots are ignored.
    const SNAPSHOT: Option<&'static str> = Some("user/v2");

    fn to_snapshot(&self) -> Option<serde_json::Value> {
        serde_json::to_value(self).ok()
    }

    fn from_snapshot(snapshot: &serde_json::Value) -> Option<Self> {
        serde_json::from_value(snapshot.clone()).ok()
    }

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
                if !e.recognised {
                    self.failed_attempts = 0;
                }
                self.clear_expired_lock(e.at);
                self.last_login = Some(e.at);
                if let Some(device) = &e.device_hash {
                    self.remember_device(device, e.at);
                }
            }
            Event::LoginFailed(e) => {
                match (&e.device_hash, e.device_failures) {
                    (Some(device), Some(n)) => {
                        if let Some(d) = self.known_devices.iter_mut().find(|d| &d.device_hash == device) {
                            d.failures = n;
                        }
                    }
                    _ => self.failed_attempts = e.consecutive_failures,
                }
                self.clear_expired_lock(e.at);
            }
            Event::KnownDeviceForgotten(e) => self.known_devices.retain(|d| d.device_hash != e.device_hash),
            Event::AccountLocked(e) => {
                self.locked_until = Some(e.until);
                self.locked_by_admin = e.by_user.is_some();
            }
            Event::AccountUnlocked(_) => {
                self.failed_attempts = 0;
                self.locked_until = None;
                self.locked_by_admin = false;
            }
            Event::PasswordChanged(e) => {
                self.password_hash = Some(e.password_hash.clone());
                // A reset proves the mailbox: it lifts the automatic lock, never an admin's.
                if e.clears_lock {
                    self.failed_attempts = 0;
                    self.locked_until = None;
                }
            }
            other => {
                let _ = self.apply_membership(other) || self.apply_second_factor(other);
            }
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
            UserCommand::RecordLogin(attempt) => Ok(self.decide_login(attempt)),
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
            UserCommand::Membership(membership) => self.decide_membership(membership),
            UserCommand::SecondFactor(factor) => self.decide_second_factor(factor),
        }
    }
}

/// What the login handler should answer, read from the events `RecordLogin` produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginOutcome {
    /// Signed in; the client holds the device token whose digest is `device_hash` from now on.
    Succeeded { device_hash: Option<String> },
    /// Wrong password or no usable account: answer the generic "invalid credentials".
    Failed,
    /// The account is locked (now or already was) until `until`.
    Locked { until: DateTime<Utc> },
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
            Event::LoginSucceeded(e) => outcome = LoginOutcome::Succeeded { device_hash: e.device_hash.clone() },
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

    /// An attempt from a client without a device token; a success issues `new-<t>`.
    fn login(ok: bool, t: i64) -> UserCommand {
        attempt(ok, None, t)
    }

    /// An attempt presenting the device token whose digest is `device`.
    fn login_from(device: &str, ok: bool, t: i64) -> UserCommand {
        attempt(ok, Some(device), t)
    }

    fn attempt(ok: bool, device: Option<&str>, t: i64) -> UserCommand {
        UserCommand::RecordLogin(LoginAttempt {
            password_ok: ok,
            presented_device: device.map(str::to_owned),
            new_device: format!("new-{t}"),
            policy: LockoutPolicy::default(),
            now: at(t),
        })
    }

    fn succeeded(t: i64, device: &str, recognised: bool) -> Event {
        Event::LoginSucceeded(LoginSucceeded { at: at(t), device_hash: Some(device.into()), recognised })
    }

    fn failed(t: i64, reason: LoginFailureReason, n: u32, locked_until: Option<i64>) -> Event {
        Event::LoginFailed(LoginFailed {
            at: at(t),
            reason,
            consecutive_failures: n,
            locked_until: locked_until.map(at),
            device_hash: None,
            device_failures: None,
        })
    }

    fn under_attack(t: i64, n: u32) -> Event {
        Event::AccountUnderAttack(AccountUnderAttack {
            consecutive_failures: n,
            locked_until: at(t) + LOCKOUT,
            at: at(t),
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
        h.push(under_attack(5, 5));
        h
    }

    /// The owner signed in at t = 0 from the device `owner-device`, then an attacker locked
    /// the account with five bad passwords at t = 1..=5.
    fn locked_while_owner_known() -> Vec<Event> {
        let mut h = active_user();
        h.push(succeeded(0, "owner-device", false));
        h.extend(locked_user().into_iter().skip(1));
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
        given::<User>(active_user()).when(login(true, 1)).then(vec![succeeded(1, "new-1", false)]);
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
        given::<User>(h).when(login(false, 5)).then(vec![bad(5, 5), auto_lock(5), under_attack(5, 5)]);
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
        assert_eq!(
            login_outcome(&[succeeded(1, "new-1", false)]),
            LoginOutcome::Succeeded { device_hash: Some("new-1".into()) }
        );
        assert_eq!(login_outcome(&[bad(1, 1)]), LoginOutcome::Failed);
        assert_eq!(login_outcome(&[bad(5, 5), auto_lock(5)]), LoginOutcome::Locked { until: at(5) + LOCKOUT });
        let in_force = failed(6, LoginFailureReason::AccountLocked, 5, Some(900));
        assert_eq!(login_outcome(&[in_force]), LoginOutcome::Locked { until: at(900) });
        assert_eq!(login_outcome(&[]), LoginOutcome::Failed);
    }

    // --- Known devices: the lock cannot be used against the owner ---------------------

    #[test]
    fn it_should_let_the_owner_in_from_a_known_device_while_an_attacker_holds_the_lock() {
        let h = locked_while_owner_known();
        given::<User>(h.clone()).when(login_from("owner-device", true, 60)).then(vec![succeeded(
            60,
            "owner-device",
            true,
        )]);
        // The attacker's lock still holds for everybody else, with or without a made-up token.
        let until = 5 + LOCKOUT.num_seconds();
        let refused = vec![failed(60, LoginFailureReason::AccountLocked, 5, Some(until))];
        given::<User>(h.clone()).when(login(true, 60)).then(refused.clone());
        given::<User>(h).when(login_from("guessed-device", true, 60)).then(refused);
    }

    #[test]
    fn it_should_not_lift_the_attackers_lock_or_counter_when_the_owner_signs_in_from_a_known_device() {
        let h = after(&locked_while_owner_known(), login_from("owner-device", true, 60));
        let user = User::from_history(&h);
        assert_eq!((user.failed_attempts, user.is_locked_at(at(61))), (5, Some(at(5) + LOCKOUT)));
        assert_eq!(user.last_login, Some(at(60)));
    }

    #[test]
    fn it_should_remember_the_device_of_every_successful_sign_in() {
        let h = after(&active_user(), login(true, 1));
        let user = User::from_history(&h);
        assert!(user.known_device("new-1", KNOWN_DEVICE_LIFETIME, at(2)).is_some());
        // A later sign-in from it is recognised and keeps its token.
        given::<User>(h).when(login_from("new-1", true, 2)).then(vec![succeeded(2, "new-1", true)]);
    }

    #[test]
    fn it_should_forget_a_device_that_has_not_signed_in_for_its_lifetime() {
        let mut h = active_user();
        h.push(succeeded(0, "old-device", false));
        h.extend((1..=5).map(|t| bad(t, t as u32)));
        h.push(auto_lock(5));
        let stale = KNOWN_DEVICE_LIFETIME.num_seconds();
        let user = User::from_history(&h);
        assert!(user.known_device("old-device", KNOWN_DEVICE_LIFETIME, at(stale)).is_none());
        // One second before the lifetime ends it still counts.
        assert!(user.known_device("old-device", KNOWN_DEVICE_LIFETIME, at(stale - 1)).is_some());
    }

    #[test]
    fn it_should_count_a_known_devices_bad_passwords_apart_and_forget_it_at_the_limit() {
        let mut h = after(&active_user(), login(true, 1));
        for t in 2..(2 + MAX_DEVICE_FAILURES as i64 - 1) {
            h = after(&h, login_from("new-1", false, t));
        }
        let user = User::from_history(&h);
        assert_eq!(user.failed_attempts, 0, "a known device's typos do not lock the account");
        assert_eq!(user.known_devices[0].failures, MAX_DEVICE_FAILURES - 1);
        let last = 2 + MAX_DEVICE_FAILURES as i64 - 1;
        let events = given::<User>(h.clone()).when(login_from("new-1", false, last)).events();
        assert_eq!(
            events.last(),
            Some(&Event::KnownDeviceForgotten(KnownDeviceForgotten { device_hash: "new-1".into(), at: at(last) }))
        );
        let h = after(&h, login_from("new-1", false, last));
        let user = User::from_history(&h);
        assert!(user.known_devices.is_empty());
        // From now on it is an unknown client like any other.
        given::<User>(h).when(login_from("new-1", false, last + 1)).then(vec![bad(last + 1, 1)]);
    }

    #[test]
    fn it_should_reset_a_known_devices_failures_when_it_signs_in() {
        let h = after(&after(&active_user(), login(true, 1)), login_from("new-1", false, 2));
        let h = after(&h, login_from("new-1", true, 3));
        assert_eq!(User::from_history(&h).known_devices[0].failures, 0);
    }

    #[test]
    fn it_should_not_let_a_known_device_past_an_admins_lock() {
        let h = after(&active_user(), login(true, 1));
        let h = after(&h, UserCommand::Lock { until: at(1000), by_user: admin_id(), now: at(2) });
        given::<User>(h).when(login_from("new-1", true, 3)).then(vec![failed(
            3,
            LoginFailureReason::AccountLocked,
            0,
            Some(1000),
        )]);
    }

    #[test]
    fn it_should_keep_at_most_the_most_recent_devices() {
        let mut h = active_user();
        for t in 0..(MAX_KNOWN_DEVICES as i64 + 3) {
            h = after(&h, login(true, t));
        }
        let user = User::from_history(&h);
        assert_eq!(user.known_devices.len(), MAX_KNOWN_DEVICES);
        assert_eq!(user.known_devices[0].device_hash, format!("new-{}", MAX_KNOWN_DEVICES + 2));
        assert!(user.known_device("new-0", KNOWN_DEVICE_LIFETIME, at(100)).is_none());
    }

    #[test]
    fn it_should_follow_the_deployments_lockout_policy() {
        let policy = LockoutPolicy { max_failures: 2, lockout: Duration::minutes(1), ..LockoutPolicy::default() };
        let cmd = |t| {
            UserCommand::RecordLogin(LoginAttempt {
                password_ok: false,
                presented_device: None,
                new_device: "x".into(),
                policy,
                now: at(t),
            })
        };
        let h = after(&active_user(), cmd(1));
        let events = given::<User>(h).when(cmd(2)).events();
        assert!(events.contains(&Event::AccountLocked(AccountLocked {
            until: at(62),
            reason: LOCK_REASON_FAILED_LOGINS.into(),
            by_user: None,
            at: at(2),
        })));
    }

    #[test]
    fn it_should_give_back_the_same_state_from_its_snapshot() {
        let h = after(&locked_while_owner_known(), login_from("owner-device", false, 60));
        let mut h = h;
        h.push(invited(100));
        let user = User::from_history(&h);
        let snapshot = user.to_snapshot().unwrap();
        assert_eq!(User::from_snapshot(&snapshot), Some(user));
        assert!(snapshot.to_string().contains(HASH), "a snapshot is complete: the password hash is state");
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
        given::<User>(h).when(login(true, 51)).then(vec![succeeded(51, "new-51", false)]);
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
