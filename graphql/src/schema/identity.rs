//! Identity queries and mutations: the same operations as `/api/auth/*`.

use async_graphql::{Context, InputObject, Object, Result, ID};
use chrono::{DateTime, Utc};
use secrecy::SecretString;

use super::context::{after_write, caller, request, state, user_id};
use super::errors::{gql_error, rate_limited};
use super::types::{AuthPayload, Invitation, Me, Role, User};
use xdr_domain::ids::OrgId;

#[derive(Default)]
pub struct IdentityQuery;

#[Object]
impl IdentityQuery {
    /// The caller and their organization.
    async fn me(&self, ctx: &Context<'_>) -> Result<Me> {
        let principal = caller(ctx).await?;
        let (user, organization) = state(ctx).identity.me(&principal).await.map_err(gql_error)?;
        Ok(Me { user: user.into(), organization: organization.into() })
    }
}

#[derive(InputObject)]
pub struct RegisterOrganizationInput {
    pub organization_name: String,
    pub admin_email: String,
    pub admin_password: String,
    pub admin_name: String,
}

#[derive(Default)]
pub struct IdentityMutation;

#[Object]
impl IdentityMutation {
    /// Register an organization with its first admin, who is logged in.
    async fn register_organization(&self, ctx: &Context<'_>, input: RegisterOrganizationInput) -> Result<AuthPayload> {
        // Per resolver call, not per request: every alias of a batch spends from the budget.
        limit(ctx, &state(ctx).register_limiter, &state(ctx).metrics.registrations_rate_limited)?;
        let r = state(ctx)
            .identity
            .register(
                &input.organization_name,
                &input.admin_email,
                SecretString::from(input.admin_password),
                &input.admin_name,
                &request(ctx),
            )
            .await
            .map_err(gql_error)?;
        after_write(ctx, OrgId(r.organization.id)).await?;
        Ok(AuthPayload {
            access_token: r.tokens.access_token,
            refresh_token: r.tokens.refresh_token,
            token_type: r.tokens.token_type.into(),
            user: Some(r.user.into()),
            organization: Some(r.organization.into()),
            device_token: None,
        })
    }

    /// Sign in. `deviceToken` is the `deviceToken` of an earlier successful sign-in from this
    /// client: a recognised client is not held back by a lock that someone else's bad
    /// passwords caused.
    async fn login(
        &self,
        ctx: &Context<'_>,
        email: String,
        password: String,
        device_token: Option<String>,
    ) -> Result<AuthPayload> {
        let state = state(ctx);
        let req = request(ctx);
        if !state.login_limiter.check(req.ip.as_deref().unwrap_or_default()) {
            return Err(rate_limited());
        }
        let signed_in = state
            .identity
            .login(&email, SecretString::from(password), device_token.as_deref(), &req)
            .await
            .map_err(gql_error)?;
        let t = signed_in.tokens;
        Ok(AuthPayload {
            access_token: t.access_token,
            refresh_token: t.refresh_token,
            token_type: t.token_type.into(),
            user: None,
            organization: None,
            device_token: Some(signed_in.device_token),
        })
    }

    async fn refresh_token(&self, ctx: &Context<'_>, refresh_token: String) -> Result<AuthPayload> {
        limit(ctx, &state(ctx).refresh_limiter, &state(ctx).metrics.refreshes_rate_limited)?;
        let t = state(ctx).identity.refresh(&refresh_token, &request(ctx)).await.map_err(gql_error)?;
        Ok(AuthPayload {
            access_token: t.access_token,
            refresh_token: t.refresh_token,
            token_type: t.token_type.into(),
            user: None,
            organization: None,
            device_token: None,
        })
    }

    /// Revoke the caller's session.
    async fn logout(&self, ctx: &Context<'_>) -> Result<bool> {
        let principal = caller(ctx).await?;
        state(ctx).identity.logout(&principal, &request(ctx)).await.map_err(gql_error)?;
        Ok(true)
    }

    /// Invite a user into the caller's organization (admin).
    async fn invite_user(&self, ctx: &Context<'_>, email: String, full_name: String, role: Role) -> Result<Invitation> {
        let principal = caller(ctx).await?;
        let role: xdr_domain::identity::Role = role.into();
        let invited = state(ctx)
            .identity
            .invite(&principal, &email, &full_name, role.as_str(), &request(ctx))
            .await
            .map_err(gql_error)?;
        after_write(ctx, principal.org_id).await?;
        Ok(Invitation {
            user: invited.user.into(),
            invitation_token: invited.invitation_token,
            expires_at: invited.expires_at,
        })
    }

    async fn accept_invite(&self, ctx: &Context<'_>, token: String, password: String) -> Result<User> {
        limit(ctx, &state(ctx).register_limiter, &state(ctx).metrics.registrations_rate_limited)?;
        let user = state(ctx)
            .identity
            .accept_invite(&token, SecretString::from(password), &request(ctx))
            .await
            .map_err(gql_error)?;
        after_write(ctx, OrgId(user.organization_id)).await?;
        Ok(user.into())
    }

    /// Lock a user of the caller's organization (admin); `until` defaults to a year.
    async fn lock_user(&self, ctx: &Context<'_>, id: ID, until: Option<DateTime<Utc>>) -> Result<User> {
        let principal = caller(ctx).await?;
        let user =
            state(ctx).identity.lock_user(&principal, user_id(&id)?, until, &request(ctx)).await.map_err(gql_error)?;
        after_write(ctx, principal.org_id).await?;
        Ok(user.into())
    }

    async fn unlock_user(&self, ctx: &Context<'_>, id: ID) -> Result<User> {
        let principal = caller(ctx).await?;
        let user =
            state(ctx).identity.unlock_user(&principal, user_id(&id)?, &request(ctx)).await.map_err(gql_error)?;
        after_write(ctx, principal.org_id).await?;
        Ok(user.into())
    }

    /// Replace the caller's password (the current one is required); every other session of
    /// theirs ends, this one stays. The same handler as `POST /api/auth/change-password`.
    async fn change_password(&self, ctx: &Context<'_>, current_password: String, new_password: String) -> Result<bool> {
        let principal = caller(ctx).await?;
        limit(ctx, &state(ctx).login_limiter, &state(ctx).metrics.logins_rate_limited)?;
        state(ctx)
            .identity
            .change_password(
                &principal,
                SecretString::from(current_password),
                SecretString::from(new_password),
                &request(ctx),
            )
            .await
            .map_err(gql_error)?;
        Ok(true)
    }
}

/// Spend one request of the caller's client address from `limiter`, or refuse with `RATE_LIMITED`.
fn limit(
    ctx: &Context<'_>,
    limiter: &crate::rate_limit::ClientLimiter,
    refused: &std::sync::atomic::AtomicU64,
) -> Result<()> {
    if limiter.check(request(ctx).ip.as_deref().unwrap_or_default()) {
        Ok(())
    } else {
        crate::metrics::Metrics::inc(refused);
        Err(rate_limited())
    }
}
