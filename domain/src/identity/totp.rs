//! The TOTP second factor (RFC 6238) of a user, and the org's policy that requires it.
//!
//! Pure like the password path: the handler decrypts the secret, computes the codes of the
//! time steps around `now` and passes in which step the presented code matched (or which
//! recovery code, by the index of its digest); this module decides what that means. A code is
//! good once: its step must be later than the last step accepted, so a code read over a
//! shoulder or replayed within its 30 seconds is refused. Each sign-in's challenge (the "MFA
//! pending" token, as its digest) allows [`MAX_SECOND_FACTOR_FAILURES`] wrong codes and then
//! is burned: the password must be entered again.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::{IdentityError, Role, User};
use crate::aggregate::Aggregate;
use crate::ids::UserId;
use crate::Event;

/// Recovery codes issued at enrolment.
pub const RECOVERY_CODES: usize = 10;
/// Wrong codes one sign-in challenge tolerates.
pub const MAX_SECOND_FACTOR_FAILURES: u32 = 5;
/// How long the "MFA pending" token of a sign-in is good for.
pub const CHALLENGE_TTL: Duration = Duration::minutes(5);

/// Event: enrolment began; the secret is stored sealed (AEAD, key from `ENCRYPTION_KEY`)
/// until the first code confirms it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecondFactorEnrolmentStarted {
    pub sealed_secret: String,
    pub at: DateTime<Utc>,
}

/// Event: the first code confirmed the pending secret; recovery codes are kept as digests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecondFactorEnrolled {
    pub recovery_codes_hash: Vec<String>,
    /// The time step of the confirming code (not accepted again).
    pub step: u64,
    pub at: DateTime<Utc>,
}

/// Event: a password was right and the second factor is asked for, under this challenge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecondFactorChallenged {
    pub challenge_hash: String,
    pub expires_at: DateTime<Utc>,
    pub at: DateTime<Utc>,
}

/// Event: the challenge was answered by a code of `step`, or by the recovery code at
/// `recovery_code` (now spent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecondFactorVerified {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_code: Option<usize>,
    pub at: DateTime<Utc>,
}

/// Why a second-factor answer was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecondFactorFailure {
    WrongCode,
    /// The code of a step already accepted (a replay).
    ReplayedCode,
    WrongRecoveryCode,
}

/// Event: a wrong answer to the challenge; at [`MAX_SECOND_FACTOR_FAILURES`] it is burned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecondFactorFailed {
    pub reason: SecondFactorFailure,
    pub failures: u32,
    pub at: DateTime<Utc>,
}

/// Event: an admin removed the user's second factor (the user enrols again).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecondFactorReset {
    pub by_user: UserId,
    pub at: DateTime<Utc>,
}

/// The user's second factor, as their stream says.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SecondFactor {
    /// Sealed secret awaiting its first code.
    pub pending_sealed_secret: Option<String>,
    /// Sealed secret in force; `Some` = enrolled.
    pub sealed_secret: Option<String>,
    /// The latest time step accepted; codes of this step or earlier are refused.
    pub last_step: u64,
    /// Digests of the recovery codes; `None` where one was spent.
    pub recovery_codes_hash: Vec<Option<String>>,
    pub challenge: Option<Challenge>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Challenge {
    pub challenge_hash: String,
    pub expires_at: DateTime<Utc>,
    pub failures: u32,
}

impl SecondFactor {
    pub fn is_enrolled(&self) -> bool {
        self.sealed_secret.is_some()
    }

    /// The index of the unspent recovery code with this digest.
    pub fn recovery_code_index(&self, code_hash: &str) -> Option<usize> {
        self.recovery_codes_hash.iter().position(|h| h.as_deref().is_some_and(|h| ct_eq(h, code_hash)))
    }

    fn open_challenge(&self, challenge_hash: &str, now: DateTime<Utc>) -> Option<&Challenge> {
        self.challenge.as_ref().filter(|c| {
            ct_eq(&c.challenge_hash, challenge_hash) && c.expires_at > now && c.failures < MAX_SECOND_FACTOR_FAILURES
        })
    }
}

/// What the handler found the presented answer to be.
#[derive(Debug, Clone, PartialEq)]
pub enum SecondFactorProof {
    /// A TOTP code; `matched_step` is the time step whose code it equals, if any.
    Code { matched_step: Option<u64> },
    /// A recovery code; `index` of the unspent digest it equals, if any.
    RecoveryCode { index: Option<usize> },
}

/// Second-factor commands (variants of `UserCommand`, decided here).
#[derive(Debug, Clone, PartialEq)]
pub enum SecondFactorCommand {
    StartEnrolment {
        sealed_secret: String,
        now: DateTime<Utc>,
    },
    /// The first code: `matched_step` as in [`SecondFactorProof::Code`].
    ConfirmEnrolment {
        matched_step: Option<u64>,
        recovery_codes_hash: Vec<String>,
        now: DateTime<Utc>,
    },
    /// After a right password: ask for the second factor under this challenge.
    Challenge {
        challenge_hash: String,
        now: DateTime<Utc>,
    },
    Verify {
        challenge_hash: String,
        proof: SecondFactorProof,
        now: DateTime<Utc>,
    },
    Reset {
        by_user: UserId,
        now: DateTime<Utc>,
    },
}

impl User {
    pub(super) fn decide_second_factor(&self, command: &SecondFactorCommand) -> Result<Vec<Event>, IdentityError> {
        let factor = &self.second_factor;
        match command {
            SecondFactorCommand::StartEnrolment { sealed_secret, now } => {
                if factor.is_enrolled() {
                    return Err(IdentityError::SecondFactorAlreadyEnrolled);
                }
                Ok(vec![Event::SecondFactorEnrolmentStarted(SecondFactorEnrolmentStarted {
                    sealed_secret: sealed_secret.clone(),
                    at: *now,
                })])
            }
            SecondFactorCommand::ConfirmEnrolment { matched_step, recovery_codes_hash, now } => {
                if factor.is_enrolled() {
                    return Err(IdentityError::SecondFactorAlreadyEnrolled);
                }
                let (Some(_), Some(step)) = (&factor.pending_sealed_secret, matched_step) else {
                    return Err(IdentityError::InvalidSecondFactorCode);
                };
                Ok(vec![Event::SecondFactorEnrolled(SecondFactorEnrolled {
                    recovery_codes_hash: recovery_codes_hash.clone(),
                    step: *step,
                    at: *now,
                })])
            }
            SecondFactorCommand::Challenge { challenge_hash, now } => {
                if !factor.is_enrolled() {
                    return Err(IdentityError::SecondFactorNotEnrolled);
                }
                Ok(vec![Event::SecondFactorChallenged(SecondFactorChallenged {
                    challenge_hash: challenge_hash.clone(),
                    expires_at: *now + CHALLENGE_TTL,
                    at: *now,
                })])
            }
            SecondFactorCommand::Verify { challenge_hash, proof, now } => {
                let challenge = factor.open_challenge(challenge_hash, *now).ok_or(IdentityError::InvalidChallenge)?;
                let failed = |reason| {
                    Ok(vec![Event::SecondFactorFailed(SecondFactorFailed {
                        reason,
                        failures: challenge.failures + 1,
                        at: *now,
                    })])
                };
                match proof {
                    SecondFactorProof::Code { matched_step: Some(step) } if *step > factor.last_step => {
                        Ok(vec![verified(Some(*step), None, *now)])
                    }
                    SecondFactorProof::Code { matched_step: Some(_) } => failed(SecondFactorFailure::ReplayedCode),
                    SecondFactorProof::Code { matched_step: None } => failed(SecondFactorFailure::WrongCode),
                    SecondFactorProof::RecoveryCode { index: Some(i) }
                        if factor.recovery_codes_hash.get(*i).is_some_and(Option::is_some) =>
                    {
                        Ok(vec![verified(None, Some(*i), *now)])
                    }
                    SecondFactorProof::RecoveryCode { .. } => failed(SecondFactorFailure::WrongRecoveryCode),
                }
            }
            SecondFactorCommand::Reset { by_user, now } => {
                if !factor.is_enrolled() && factor.pending_sealed_secret.is_none() {
                    return Err(IdentityError::SecondFactorNotEnrolled);
                }
                Ok(vec![Event::SecondFactorReset(SecondFactorReset { by_user: *by_user, at: *now })])
            }
        }
    }

    /// Fold a second-factor event; `false` when `event` is not one.
    pub(super) fn apply_second_factor(&mut self, event: &Event) -> bool {
        let factor = &mut self.second_factor;
        match event {
            Event::SecondFactorEnrolmentStarted(e) => factor.pending_sealed_secret = Some(e.sealed_secret.clone()),
            Event::SecondFactorEnrolled(e) => {
                factor.sealed_secret = factor.pending_sealed_secret.take();
                factor.last_step = e.step;
                factor.recovery_codes_hash = e.recovery_codes_hash.iter().cloned().map(Some).collect();
            }
            Event::SecondFactorChallenged(e) => {
                factor.challenge =
                    Some(Challenge { challenge_hash: e.challenge_hash.clone(), expires_at: e.expires_at, failures: 0 })
            }
            Event::SecondFactorVerified(e) => {
                if let Some(step) = e.step {
                    factor.last_step = factor.last_step.max(step);
                }
                if let Some(slot) = e.recovery_code.and_then(|i| factor.recovery_codes_hash.get_mut(i)) {
                    *slot = None;
                }
                factor.challenge = None;
            }
            Event::SecondFactorFailed(e) => {
                if let Some(c) = &mut factor.challenge {
                    c.failures = e.failures;
                }
            }
            Event::SecondFactorReset(_) => *factor = SecondFactor::default(),
            _ => return false,
        }
        true
    }
}

fn verified(step: Option<u64>, recovery_code: Option<usize>, at: DateTime<Utc>) -> Event {
    Event::SecondFactorVerified(SecondFactorVerified { step, recovery_code, at })
}

fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Who must have a second factor in an org.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecondFactorRequirement {
    #[default]
    Nobody,
    Admins,
    Everyone,
}

impl SecondFactorRequirement {
    pub fn applies_to(self, role: Role) -> bool {
        match self {
            SecondFactorRequirement::Nobody => false,
            SecondFactorRequirement::Admins => role == Role::Admin,
            SecondFactorRequirement::Everyone => true,
        }
    }
}

/// Event (`mfapolicy-<org uuid>`): an admin set who must use a second factor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecondFactorPolicySet {
    pub required_for: SecondFactorRequirement,
    pub by_user: UserId,
    pub at: DateTime<Utc>,
}

/// The org's second-factor policy (its own stream, so the org aggregate stays as it is).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SecondFactorPolicy {
    pub required_for: SecondFactorRequirement,
}

/// The policy stream of an org.
pub fn policy_stream(org: crate::ids::OrgId) -> String {
    format!("mfapolicy-{}", org.0)
}

#[derive(Debug, Clone, PartialEq)]
pub struct SetSecondFactorPolicy {
    pub required_for: SecondFactorRequirement,
    pub by_user: UserId,
    pub now: DateTime<Utc>,
}

impl Aggregate for SecondFactorPolicy {
    type Command = SetSecondFactorPolicy;
    type Error = IdentityError;

    fn apply(&mut self, event: &Event) {
        if let Event::SecondFactorPolicySet(e) = event {
            self.required_for = e.required_for;
        }
    }

    fn decide(&self, c: &SetSecondFactorPolicy) -> Result<Vec<Event>, IdentityError> {
        if c.required_for == self.required_for {
            return Ok(vec![]);
        }
        Ok(vec![Event::SecondFactorPolicySet(SecondFactorPolicySet {
            required_for: c.required_for,
            by_user: c.by_user,
            at: c.now,
        })])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::spec::{at, given};
    use crate::identity::{Email, UserCommand, UserCreated};
    use crate::ids::OrgId;
    use uuid::Uuid;

    fn uid() -> UserId {
        UserId(Uuid::from_u128(10))
    }

    fn cmd(c: SecondFactorCommand) -> UserCommand {
        UserCommand::SecondFactor(c)
    }

    fn after(mut h: Vec<Event>, c: SecondFactorCommand) -> Vec<Event> {
        let events = given::<User>(h.clone()).when(cmd(c)).events();
        h.extend(events);
        h
    }

    fn enrolled() -> Vec<Event> {
        let h = vec![Event::UserCreated(UserCreated {
            user_id: uid(),
            org_id: OrgId(Uuid::from_u128(1)),
            email: Email::parse("a@example.com").unwrap(),
            full_name: "A".into(),
            role: Role::Admin,
            password_hash: Some("$argon2id$x".into()),
            created_at: at(0),
        })];
        let h = after(h, SecondFactorCommand::StartEnrolment { sealed_secret: "sealed".into(), now: at(1) });
        let codes = (0..RECOVERY_CODES).map(|i| format!("rc{i}")).collect();
        let h = after(
            h,
            SecondFactorCommand::ConfirmEnrolment { matched_step: Some(100), recovery_codes_hash: codes, now: at(2) },
        );
        after(h, SecondFactorCommand::Challenge { challenge_hash: "ch".into(), now: at(3) })
    }

    fn verify(proof: SecondFactorProof, t: i64) -> UserCommand {
        cmd(SecondFactorCommand::Verify { challenge_hash: "ch".into(), proof, now: at(t) })
    }

    fn code(step: Option<u64>) -> SecondFactorProof {
        SecondFactorProof::Code { matched_step: step }
    }

    #[test]
    fn it_should_enrol_only_with_a_right_first_code() {
        let h = enrolled();
        let user = User::from_history(&h);
        assert!(user.second_factor.is_enrolled());
        assert_eq!(user.second_factor.recovery_codes_hash.len(), RECOVERY_CODES);
        let fresh = &h[..2];
        given::<User>(fresh.to_vec())
            .when(cmd(SecondFactorCommand::ConfirmEnrolment {
                matched_step: None,
                recovery_codes_hash: vec![],
                now: at(2),
            }))
            .then_err(IdentityError::InvalidSecondFactorCode);
        given::<User>(h)
            .when(cmd(SecondFactorCommand::StartEnrolment { sealed_secret: "x".into(), now: at(9) }))
            .then_err(IdentityError::SecondFactorAlreadyEnrolled);
    }

    #[test]
    fn it_should_accept_a_later_step_once_and_refuse_its_replay() {
        let h = enrolled();
        given::<User>(h.clone()).when(verify(code(Some(101)), 4)).then(vec![verified(Some(101), None, at(4))]);
        // The enrolment's own code is spent already.
        let events = given::<User>(h.clone()).when(verify(code(Some(100)), 4)).events();
        assert!(matches!(&events[0], Event::SecondFactorFailed(f) if f.reason == SecondFactorFailure::ReplayedCode));
        // After a sign-in with step 101, the next challenge refuses 101 again.
        let h =
            after(h, SecondFactorCommand::Verify { challenge_hash: "ch".into(), proof: code(Some(101)), now: at(4) });
        let h = after(h, SecondFactorCommand::Challenge { challenge_hash: "ch".into(), now: at(5) });
        let events = given::<User>(h).when(verify(code(Some(101)), 6)).events();
        assert!(matches!(&events[0], Event::SecondFactorFailed(f) if f.reason == SecondFactorFailure::ReplayedCode));
    }

    #[test]
    fn it_should_burn_the_challenge_after_the_attempt_limit_and_when_it_expires() {
        let mut h = enrolled();
        for _ in 0..MAX_SECOND_FACTOR_FAILURES {
            let events = given::<User>(h.clone()).when(verify(code(None), 4)).events();
            h.extend(events);
        }
        given::<User>(h).when(verify(code(Some(200)), 4)).then_err(IdentityError::InvalidChallenge);
        let late = 3 + CHALLENGE_TTL.num_seconds();
        given::<User>(enrolled()).when(verify(code(Some(200)), late)).then_err(IdentityError::InvalidChallenge);
    }

    #[test]
    fn it_should_spend_a_recovery_code_once() {
        let h = enrolled();
        let recover = SecondFactorProof::RecoveryCode { index: Some(3) };
        given::<User>(h.clone()).when(verify(recover.clone(), 4)).then(vec![verified(None, Some(3), at(4))]);
        let h =
            after(h, SecondFactorCommand::Verify { challenge_hash: "ch".into(), proof: recover.clone(), now: at(4) });
        let user = User::from_history(&h);
        assert_eq!(user.second_factor.recovery_code_index("rc3"), None);
        assert_eq!(user.second_factor.recovery_code_index("rc4"), Some(4));
        let h = after(h, SecondFactorCommand::Challenge { challenge_hash: "ch".into(), now: at(5) });
        let events = given::<User>(h).when(verify(recover, 6)).events();
        assert!(
            matches!(&events[0], Event::SecondFactorFailed(f) if f.reason == SecondFactorFailure::WrongRecoveryCode)
        );
    }

    #[test]
    fn it_should_reset_the_factor_and_require_a_new_enrolment() {
        let h = after(enrolled(), SecondFactorCommand::Reset { by_user: UserId(Uuid::from_u128(11)), now: at(9) });
        let user = User::from_history(&h);
        assert_eq!(user.second_factor, SecondFactor::default());
        given::<User>(h)
            .when(cmd(SecondFactorCommand::Challenge { challenge_hash: "c".into(), now: at(10) }))
            .then_err(IdentityError::SecondFactorNotEnrolled);
    }

    #[test]
    fn it_should_require_the_factor_by_policy() {
        assert!(!SecondFactorRequirement::Nobody.applies_to(Role::Admin));
        assert!(SecondFactorRequirement::Admins.applies_to(Role::Admin));
        assert!(!SecondFactorRequirement::Admins.applies_to(Role::SocLead));
        assert!(SecondFactorRequirement::Everyone.applies_to(Role::Viewer));
    }
}
