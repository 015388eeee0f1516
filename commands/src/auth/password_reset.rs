//! Password reset by e-mail and password change: load → decide (pure, in
//! `xdr_domain::identity::password_reset`) → append, the new password and the end of the
//! user's sessions in one transaction.
//!
//! The reset request answers the same, after the same time, whether or not the address has an
//! account: the work that differs (a stream read and an append) hides under a fixed floor of
//! [`FORGOT_PASSWORD_FLOOR`]. The link itself is mailed by the outbox (`crate::mail`); this
//! handler records only the token's digest.

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use sqlx::{Postgres, Transaction};
use std::time::Duration;
use uuid::Uuid;
use xdr_domain::aggregate::Aggregate;
use xdr_domain::identity::password_reset::{
    change_password, end_session_for_password, PasswordChangeKind, PasswordReset, PasswordResetCommand, ResetRefusal,
};
use xdr_domain::identity::{check_password_policy, Email, IdentityError, RevokeReason, Session, User};
use xdr_domain::ids::{OrgId, SessionId, UserId};
use xdr_domain::{Event, EventMetadata};

use super::identity::{metadata, new_events, sha256_hex, AuthError, IdentityService, Principal, RequestContext};
use super::LinkTokens;
use crate::handler::{self, CommandError, MAX_ATTEMPTS};
use crate::store::{ExpectedVersion, StoreError};

/// `forgot-password` never answers sooner than this, known address or not.
pub const FORGOT_PASSWORD_FLOOR: Duration = Duration::from_millis(250);

/// The stream of a user's reset links.
pub fn reset_stream(user: UserId) -> String {
    format!("pwreset-{}", user.0)
}

type Step<T> = Result<T, CommandError<IdentityError>>;

fn expected(version: i64) -> ExpectedVersion {
    if version == 0 {
        ExpectedVersion::NoStream
    } else {
        ExpectedVersion::Exact(version)
    }
}

impl IdentityService {
    /// Issue a reset link for `email` if it belongs to an active account with a password.
    /// Answers `Ok` either way, no sooner than [`FORGOT_PASSWORD_FLOOR`].
    pub async fn forgot_password(&self, email: &str, ctx: &RequestContext) -> Result<(), AuthError> {
        let floor = tokio::time::Instant::now() + FORGOT_PASSWORD_FLOOR;
        let outcome = self.issue_reset(email, ctx).await;
        tokio::time::sleep_until(floor).await;
        match outcome {
            // Saying "try again" only on overload is the same for every address.
            Err(AuthError::Busy) => Err(AuthError::Busy),
            Err(e) => {
                // The caller hears the same as always; the operator sees the cause.
                tracing::error!(error = %e, "password reset request could not be recorded");
                Ok(())
            }
            Ok(()) => Ok(()),
        }
    }

    async fn issue_reset(&self, email: &str, ctx: &RequestContext) -> Result<(), AuthError> {
        let Ok(email) = Email::parse(email) else { return Ok(()) };
        let Some((org_id, user_id)) = self.find_email(&email).await? else { return Ok(()) };
        let user: User = self.load(org_id, &user_id.stream_id()).await?;
        if !user.created || !user.can_log_in() {
            return Ok(());
        }
        let reset_id = Uuid::new_v4();
        let token = self.tokens.links().password_reset(user_id, reset_id);
        let command =
            PasswordResetCommand::Request { reset_id, user_id, token_hash: sha256_hex(&token), now: self.clock.now() };
        // Anonymous: knowing an address is no proof of being its owner.
        handler::execute::<PasswordReset>(
            &self.store,
            org_id,
            &reset_stream(user_id),
            &command,
            &metadata(None, ctx),
            None,
        )
        .await?;
        tracing::info!(%org_id, %user_id, "password reset link issued");
        Ok(())
    }

    /// Set a new password with a mailed link: the link is spent, every session of the user
    /// ends, an automatic lock is lifted.
    pub async fn reset_password(
        &self,
        token: &str,
        password: SecretString,
        ctx: &RequestContext,
    ) -> Result<(), AuthError> {
        let refused = || AuthError::from(IdentityError::ResetRefused(ResetRefusal::Invalid));
        let (user_id, reset_id) = LinkTokens::parse_reset(token).ok_or_else(refused)?;
        let org_id = self.find_user_org(user_id).await?.ok_or_else(refused)?;
        check_password_policy(password.expose_secret())?;
        let token_hash = sha256_hex(token);
        let now = self.clock.now();
        let complete = PasswordResetCommand::Complete { reset_id, token_hash, now };
        // Refuse a dead link before paying for argon2.
        let reset: PasswordReset = self.load(org_id, &reset_stream(user_id)).await?;
        reset.decide(&complete)?;
        let password_hash = self.hasher.hash(password).await?;
        let meta = metadata(Some(user_id), ctx);
        handler::retry_on_conflict(MAX_ATTEMPTS, || async {
            let (reset, reset_version) =
                handler::load::<PasswordReset>(&self.store, org_id, &reset_stream(user_id)).await?;
            let spent = reset.decide(&complete).map_err(CommandError::Domain)?;
            let (user, user_version) = handler::load::<User>(&self.store, org_id, &user_id.stream_id()).await?;
            let changed =
                change_password(&user, &password_hash, PasswordChangeKind::Reset, now).map_err(CommandError::Domain)?;
            let mut tx = crate::db::begin_org_tx(self.store.pool(), org_id).await.map_err(StoreError::from)?;
            let stream = reset_stream(user_id);
            self.store
                .append_in_tx(&mut tx, org_id, &stream, expected(reset_version), new_events(&stream, &spent, &meta))
                .await?;
            self.change_in_tx(
                &mut tx,
                org_id,
                user_id,
                user_version,
                changed,
                None,
                RevokeReason::PasswordReset,
                &meta,
                now,
            )
            .await?;
            tx.commit().await.map_err(StoreError::from)?;
            Step::Ok(())
        })
        .await
        .map_err(AuthError::from)?;
        tracing::info!(%org_id, %user_id, "password reset: sessions ended");
        Ok(())
    }

    /// The signed-in caller replaces their password (the current one is required); every
    /// other session ends, this one stays.
    pub async fn change_password(
        &self,
        principal: &Principal,
        current: SecretString,
        new: SecretString,
        ctx: &RequestContext,
    ) -> Result<(), AuthError> {
        check_password_policy(new.expose_secret())?;
        let (org_id, user_id) = (principal.org_id, principal.user_id);
        let user: User = self.load(org_id, &user_id.stream_id()).await?;
        if !self.hasher.verify(current, user.password_hash.clone()).await? {
            return Err(AuthError::Validation("Current password is incorrect".into()));
        }
        let password_hash = self.hasher.hash(new).await?;
        let now = self.clock.now();
        let meta = metadata(Some(user_id), ctx);
        handler::retry_on_conflict(MAX_ATTEMPTS, || async {
            let (user, user_version) = handler::load::<User>(&self.store, org_id, &user_id.stream_id()).await?;
            let changed = change_password(&user, &password_hash, PasswordChangeKind::Change, now)
                .map_err(CommandError::Domain)?;
            let mut tx = crate::db::begin_org_tx(self.store.pool(), org_id).await.map_err(StoreError::from)?;
            let keep = Some(principal.session_id);
            self.change_in_tx(
                &mut tx,
                org_id,
                user_id,
                user_version,
                changed,
                keep,
                RevokeReason::PasswordChanged,
                &meta,
                now,
            )
            .await?;
            tx.commit().await.map_err(StoreError::from)?;
            Step::Ok(())
        })
        .await
        .map_err(AuthError::from)
    }

    /// Append the password change and end the user's sessions (but `keep`) in `tx`.
    #[allow(clippy::too_many_arguments)]
    async fn change_in_tx(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        org_id: OrgId,
        user_id: UserId,
        user_version: i64,
        changed: Event,
        keep: Option<SessionId>,
        reason: RevokeReason,
        meta: &EventMetadata,
        now: DateTime<Utc>,
    ) -> Step<()> {
        let stream = user_id.stream_id();
        self.store
            .append_in_tx(tx, org_id, &stream, expected(user_version), new_events(&stream, &[changed], meta))
            .await?;
        for session_stream in session_streams(tx, org_id, user_id).await? {
            let (session, version) = handler::load::<Session>(&self.store, org_id, &session_stream).await?;
            if let Some(ended) = end_session_for_password(&session, keep, reason, user_id, now) {
                let events = new_events(&session_stream, &[ended], meta);
                self.store.append_in_tx(tx, org_id, &session_stream, ExpectedVersion::Exact(version), events).await?;
            }
        }
        Ok(())
    }
}

/// Every session stream the user ever started (`store::queries::session_streams_of_user`).
async fn session_streams(
    tx: &mut Transaction<'static, Postgres>,
    org: OrgId,
    user: UserId,
) -> Result<Vec<String>, StoreError> {
    crate::store::session_streams_of_user(tx, org, user.0).await
}
