//! Second-factor handlers: enrolment, the second step of a sign-in, an admin's reset and the
//! org's policy. Decisions are `xdr_domain::identity::totp`; the TOTP math and the sealing of
//! secrets are `super::super::totp`.

use xdr_domain::identity::totp::{policy_stream, SecondFactorPolicy, SetSecondFactorPolicy};
use xdr_domain::identity::{
    Permission, Role, SecondFactorCommand, SecondFactorProof, SecondFactorRequirement, User, UserCommand,
};
use xdr_domain::ids::{OrgId, UserId};
use xdr_domain::Event;

use super::super::totp::{self, SealError};
use super::{metadata, random_secret, sha256_hex, AuthError, IdentityService, Principal, RequestContext};
use crate::auth::tokens::TokenPair;
use crate::handler;

/// A sign-in waiting for its second factor: the "MFA pending" token to present with the code,
/// and the known-device token the client keeps (as after any right password). Never printed.
#[derive(Clone)]
pub struct PendingSignIn {
    pub mfa_token: String,
    pub device_token: String,
}

impl std::fmt::Debug for PendingSignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PendingSignIn(..)")
    }
}

/// What enrolment shows once: the `otpauth://` URI (for a QR code) and the secret as base32
/// for typing in by hand.
#[derive(Debug, Clone)]
pub struct SecondFactorEnrolment {
    pub otpauth_uri: String,
    pub secret_base32: String,
}

fn seal_error(e: SealError) -> AuthError {
    match e {
        SealError::NoKey => AuthError::Validation("Second factors are not configured on this server".into()),
        other => AuthError::Internal(other.to_string()),
    }
}

impl IdentityService {
    /// Whether the org's policy requires a second factor of `role`.
    pub(super) async fn second_factor_required(&self, org: OrgId, role: Role) -> Result<bool, AuthError> {
        let policy: SecondFactorPolicy = self.load(org, &policy_stream(org)).await?;
        Ok(policy.required_for.applies_to(role))
    }

    /// After a right password of an enrolled user: record a challenge and hand back the
    /// error that carries its token.
    pub(super) async fn challenge_second_factor(
        &self,
        org: OrgId,
        user_id: UserId,
        device_token: String,
        ctx: &RequestContext,
    ) -> Result<AuthError, AuthError> {
        // The user id in the token finds the stream; only the digest of the whole is stored.
        let mfa_token = format!("{}.{}", user_id.0.simple(), random_secret());
        let command = SecondFactorCommand::Challenge { challenge_hash: sha256_hex(&mfa_token), now: self.clock.now() };
        self.execute_factor(org, user_id, command, ctx).await?;
        Ok(AuthError::SecondFactorRequired(PendingSignIn { mfa_token, device_token }))
    }

    /// The second step of a sign-in: a TOTP code (or a recovery code) for the pending token.
    pub async fn login_second_factor(
        &self,
        mfa_token: &str,
        code: &str,
        ctx: &RequestContext,
    ) -> Result<TokenPair, AuthError> {
        let expired =
            || AuthError::Unauthenticated("Sign-in expired or too many wrong codes; enter the password again");
        let user_id = mfa_token
            .split_once('.')
            .and_then(|(id, _)| uuid::Uuid::parse_str(id).ok())
            .map(UserId)
            .ok_or_else(expired)?;
        let org = self.find_user_org(user_id).await?.ok_or_else(expired)?;
        let user: User = self.load(org, &user_id.stream_id()).await?;
        let now = self.clock.now();
        let proof = self.proof(&user, code, now)?;
        let command = SecondFactorCommand::Verify { challenge_hash: sha256_hex(mfa_token), proof, now };
        let executed = match self.execute_factor(org, user_id, command, ctx).await {
            Err(AuthError::Validation(_)) => return Err(expired()),
            other => other?,
        };
        let user = executed;
        if !user.1.iter().any(|e| matches!(e, Event::SecondFactorVerified(_))) {
            return Err(AuthError::Unauthenticated("Invalid code"));
        }
        // The account may have changed since the password step.
        if !user.0.can_log_in() || user.0.admin_lock_at(now).is_some() {
            return Err(AuthError::InvalidCredentials);
        }
        self.start_session(org, user_id, user.0.role, now, ctx).await
    }

    /// What the presented code is: six digits are a TOTP code, anything else a recovery code.
    fn proof(
        &self,
        user: &User,
        code: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<SecondFactorProof, AuthError> {
        let code = code.trim();
        if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
            let matched_step = match &user.second_factor.sealed_secret {
                Some(sealed) => {
                    let secret = self.sealer.open(sealed, user.user_id.0.as_bytes()).map_err(seal_error)?;
                    totp::matching_step(&secret, code, now.timestamp())
                }
                None => None,
            };
            return Ok(SecondFactorProof::Code { matched_step });
        }
        Ok(SecondFactorProof::RecoveryCode {
            index: user.second_factor.recovery_code_index(&totp::recovery_code_hash(code)),
        })
    }

    /// Begin enrolment: a fresh secret, sealed on the caller's stream until the first code.
    pub async fn start_second_factor_enrolment(
        &self,
        principal: &Principal,
        ctx: &RequestContext,
    ) -> Result<SecondFactorEnrolment, AuthError> {
        let secret: [u8; totp::SECRET_BYTES] = rand::random();
        let sealed = self.sealer.seal(&secret, principal.user_id.0.as_bytes()).map_err(seal_error)?;
        let command = SecondFactorCommand::StartEnrolment { sealed_secret: sealed, now: self.clock.now() };
        let (user, _) = self.execute_factor(principal.org_id, principal.user_id, command, ctx).await?;
        Ok(SecondFactorEnrolment {
            otpauth_uri: totp::otpauth_uri(user.email.as_str(), &secret),
            secret_base32: totp::base32(&secret),
        })
    }

    /// Confirm enrolment with the first code; returns the ten recovery codes, shown once.
    pub async fn confirm_second_factor_enrolment(
        &self,
        principal: &Principal,
        code: &str,
        ctx: &RequestContext,
    ) -> Result<Vec<String>, AuthError> {
        let user: User = self.load(principal.org_id, &principal.user_id.stream_id()).await?;
        let now = self.clock.now();
        let matched_step = match &user.second_factor.pending_sealed_secret {
            Some(sealed) => {
                let secret = self.sealer.open(sealed, principal.user_id.0.as_bytes()).map_err(seal_error)?;
                totp::matching_step(&secret, code, now.timestamp())
            }
            None => None,
        };
        let codes: Vec<String> =
            (0..xdr_domain::identity::totp::RECOVERY_CODES).map(|_| totp::recovery_code()).collect();
        let recovery_codes_hash = codes.iter().map(|c| totp::recovery_code_hash(c)).collect();
        let command = SecondFactorCommand::ConfirmEnrolment { matched_step, recovery_codes_hash, now };
        self.execute_factor(principal.org_id, principal.user_id, command, ctx).await?;
        Ok(codes)
    }

    /// Remove the second factor of a user of the caller's org (admin); recorded with the actor.
    pub async fn reset_second_factor(
        &self,
        principal: &Principal,
        user_id: UserId,
        ctx: &RequestContext,
    ) -> Result<(), AuthError> {
        principal.require(Permission::ManageUsers)?;
        self.user_in_org(principal.org_id, user_id).await?;
        let command = SecondFactorCommand::Reset { by_user: principal.user_id, now: self.clock.now() };
        self.execute_factor(principal.org_id, user_id, command, ctx).await.map(|_| ())
    }

    /// Set who in the caller's org must use a second factor (admin).
    pub async fn set_second_factor_policy(
        &self,
        principal: &Principal,
        required_for: SecondFactorRequirement,
        ctx: &RequestContext,
    ) -> Result<SecondFactorRequirement, AuthError> {
        principal.require(Permission::ManageUsers)?;
        let command = SetSecondFactorPolicy { required_for, by_user: principal.user_id, now: self.clock.now() };
        let executed = handler::execute::<SecondFactorPolicy>(
            &self.store,
            principal.org_id,
            &policy_stream(principal.org_id),
            &command,
            &metadata(Some(principal.user_id), ctx),
            None,
        )
        .await?;
        Ok(executed.state.required_for)
    }

    /// The caller's second-factor state: enrolled, and whether their org requires one of them.
    pub async fn second_factor_status(&self, principal: &Principal) -> Result<(bool, bool), AuthError> {
        let user: User = self.load(principal.org_id, &principal.user_id.stream_id()).await?;
        let required = self.second_factor_required(principal.org_id, user.role).await?;
        Ok((user.second_factor.is_enrolled(), required))
    }

    async fn execute_factor(
        &self,
        org: OrgId,
        user_id: UserId,
        command: SecondFactorCommand,
        ctx: &RequestContext,
    ) -> Result<(User, Vec<Event>), AuthError> {
        // The user acts on their own factor, except an admin's reset.
        let actor = match &command {
            SecondFactorCommand::Reset { by_user, .. } => *by_user,
            _ => user_id,
        };
        let executed = handler::execute::<User>(
            &self.store,
            org,
            &user_id.stream_id(),
            &UserCommand::SecondFactor(command),
            &metadata(Some(actor), ctx),
            None,
        )
        .await?;
        Ok((executed.state, executed.events))
    }
}
