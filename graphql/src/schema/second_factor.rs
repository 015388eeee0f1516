//! The TOTP second factor over GraphQL: enrolment, the second step of a sign-in, an admin's
//! reset and the org's policy. Same handlers as `/api/auth/login/mfa`.

use async_graphql::{Context, Enum, Object, Result, SimpleObject, ID};
use xdr_domain::identity::SecondFactorRequirement as DomainRequirement;

use super::context::{after_write, caller, request, state};
use super::errors::{gql_error, rate_limited};
use super::types::AuthPayload;

/// Who in an organization must use a second factor.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum SecondFactorRequirement {
    Nobody,
    Admins,
    Everyone,
}

impl From<SecondFactorRequirement> for DomainRequirement {
    fn from(r: SecondFactorRequirement) -> Self {
        match r {
            SecondFactorRequirement::Nobody => DomainRequirement::Nobody,
            SecondFactorRequirement::Admins => DomainRequirement::Admins,
            SecondFactorRequirement::Everyone => DomainRequirement::Everyone,
        }
    }
}

impl From<DomainRequirement> for SecondFactorRequirement {
    fn from(r: DomainRequirement) -> Self {
        match r {
            DomainRequirement::Nobody => SecondFactorRequirement::Nobody,
            DomainRequirement::Admins => SecondFactorRequirement::Admins,
            DomainRequirement::Everyone => SecondFactorRequirement::Everyone,
        }
    }
}

/// Shown once when enrolment starts: add it to an authenticator app, then confirm a code.
#[derive(SimpleObject, Clone, Debug)]
pub struct SecondFactorEnrolment {
    /// `otpauth://totp/…`, for a QR code.
    pub otpauth_uri: String,
    /// The same secret in base32, for typing in by hand.
    pub secret: String,
}

#[derive(Default)]
pub struct SecondFactorMutation;

#[Object]
impl SecondFactorMutation {
    /// Begin enrolling a TOTP second factor (allowed while the org's policy still requires one).
    async fn start_second_factor_enrolment(&self, ctx: &Context<'_>) -> Result<SecondFactorEnrolment> {
        let p = caller(ctx).await?;
        let e = state(ctx).identity.start_second_factor_enrolment(&p, &request(ctx)).await.map_err(gql_error)?;
        Ok(SecondFactorEnrolment { otpauth_uri: e.otpauth_uri, secret: e.secret_base32 })
    }

    /// Confirm enrolment with a first code. Returns ten single-use recovery codes, shown once.
    async fn confirm_second_factor_enrolment(&self, ctx: &Context<'_>, code: String) -> Result<Vec<String>> {
        let p = caller(ctx).await?;
        let codes =
            state(ctx).identity.confirm_second_factor_enrolment(&p, &code, &request(ctx)).await.map_err(gql_error)?;
        after_write(ctx, p.org_id).await?;
        Ok(codes)
    }

    /// The second step of a sign-in: `mfaToken` from the `SECOND_FACTOR_REQUIRED` error of
    /// `login`, and a TOTP code or a recovery code.
    async fn login_second_factor(&self, ctx: &Context<'_>, mfa_token: String, code: String) -> Result<AuthPayload> {
        let state = state(ctx);
        let req = request(ctx);
        if !state.login_limiter.check(req.ip.as_deref().unwrap_or_default()) {
            return Err(rate_limited());
        }
        let t = state.identity.login_second_factor(&mfa_token, &code, &req).await.map_err(gql_error)?;
        Ok(AuthPayload {
            access_token: t.access_token,
            refresh_token: t.refresh_token,
            token_type: t.token_type.into(),
            user: None,
            organization: None,
            device_token: None,
        })
    }

    /// Remove the second factor of a user of the caller's organization (admin); they enrol again.
    async fn reset_second_factor(&self, ctx: &Context<'_>, user_id: ID) -> Result<bool> {
        let p = caller(ctx).await?;
        let user = super::context::user_id(&user_id)?;
        state(ctx).identity.reset_second_factor(&p, user, &request(ctx)).await.map_err(gql_error)?;
        after_write(ctx, p.org_id).await?;
        Ok(true)
    }

    /// Set who in the caller's organization must use a second factor (admin). Users it covers
    /// who have none can do nothing but enrol until they do.
    async fn set_second_factor_policy(
        &self,
        ctx: &Context<'_>,
        required_for: SecondFactorRequirement,
    ) -> Result<SecondFactorRequirement> {
        let p = caller(ctx).await?;
        let set = state(ctx)
            .identity
            .set_second_factor_policy(&p, required_for.into(), &request(ctx))
            .await
            .map_err(gql_error)?;
        after_write(ctx, p.org_id).await?;
        Ok(set.into())
    }
}
