//! Account administration and sessions: role changes, deactivation, the session list and
//! ending sessions. The same handlers as the `/api/auth/users/{id}/…` and `/api/auth/sessions`
//! routes.

use async_graphql::{ComplexObject, Context, Object, Result, SimpleObject, ID};
use chrono::{DateTime, Utc};
use sqlx::Row;
use uuid::Uuid;
use xdr_domain::identity::session::SESSION_MAX_AGE;
use xdr_domain::identity::Permission;
use xdr_domain::ids::{OrgId, SessionId, UserId};

use super::context::{after_write, caller, db_error, request, state, user_id};
use super::errors::gql_error;
use super::scope::org_tx;
use super::types::{Me, Role, User};

/// One sign-in's session, as the session list shows it.
#[derive(SimpleObject, Clone, Debug)]
pub struct UserSession {
    pub id: ID,
    pub created_at: DateTime<Utc>,
    /// The last time its refresh token was exchanged (the sign-in itself before that).
    pub last_used_at: DateTime<Utc>,
    /// The client's address at sign-in.
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The session this request was made with.
    pub current: bool,
}

#[ComplexObject]
impl Me {
    /// The caller's sessions that are still open, newest first.
    async fn sessions(&self, ctx: &Context<'_>) -> Result<Vec<UserSession>> {
        let p = caller(ctx).await?;
        open_sessions(ctx, p.org_id, p.user_id, Some(p.session_id)).await
    }

    /// Whether the caller has a TOTP second factor enrolled.
    async fn second_factor_enrolled(&self, ctx: &Context<'_>) -> Result<bool> {
        let p = caller(ctx).await?;
        Ok(state(ctx).identity.second_factor_status(&p).await.map_err(gql_error)?.0)
    }

    /// Whether the organization's policy requires a second factor of the caller.
    async fn second_factor_required(&self, ctx: &Context<'_>) -> Result<bool> {
        let p = caller(ctx).await?;
        Ok(state(ctx).identity.second_factor_status(&p).await.map_err(gql_error)?.1)
    }
}

/// Open sessions of `user` from the read model (scoped to `org` twice: RLS and the filter).
async fn open_sessions(
    ctx: &Context<'_>,
    org: OrgId,
    user: UserId,
    current: Option<SessionId>,
) -> Result<Vec<UserSession>> {
    let since = state(ctx).identity.clock().now() - SESSION_MAX_AGE;
    let mut tx = org_tx(ctx, org).await?;
    let rows = sqlx::query(
        "SELECT session_id, started_at, COALESCE(last_rotated_at, started_at) AS last_used_at, ip, user_agent \
         FROM rm_user_sessions WHERE org_id = $1 AND user_id = $2 AND revoked_at IS NULL AND started_at > $3 \
         ORDER BY started_at DESC, session_id LIMIT 200",
    )
    .bind(org.0)
    .bind(user.0)
    .bind(since)
    .fetch_all(&mut *tx)
    .await
    .map_err(db_error)?;
    Ok(rows
        .iter()
        .map(|row| {
            let id: Uuid = row.get("session_id");
            UserSession {
                id: ID(id.to_string()),
                created_at: row.get("started_at"),
                last_used_at: row.get("last_used_at"),
                ip: row.get("ip"),
                user_agent: row.get("user_agent"),
                current: current == Some(SessionId(id)),
            }
        })
        .collect())
}

fn session_id(id: &ID) -> Result<SessionId> {
    Uuid::parse_str(id).map(SessionId).map_err(|_| gql_error(xdr_commands::auth::AuthError::NotFound))
}

#[derive(Default)]
pub struct AccountsQuery;

#[Object]
impl AccountsQuery {
    /// Open sessions of a user of the caller's organization (admin).
    async fn user_sessions(&self, ctx: &Context<'_>, user_id: ID) -> Result<Vec<UserSession>> {
        let p = caller(ctx).await?;
        p.require(Permission::ManageUsers).map_err(gql_error)?;
        let user = state(ctx).identity.get_user(&p, super::context::user_id(&user_id)?).await.map_err(gql_error)?;
        open_sessions(ctx, p.org_id, UserId(user.id), Some(p.session_id)).await
    }
}

#[derive(Default)]
pub struct AccountsMutation;

#[Object]
impl AccountsMutation {
    /// Change the role of a user of the caller's organization (admin). The organization's
    /// last active admin cannot be demoted.
    async fn change_user_role(&self, ctx: &Context<'_>, id: ID, role: Role) -> Result<User> {
        let p = caller(ctx).await?;
        let user =
            state(ctx).identity.change_role(&p, user_id(&id)?, role.into(), &request(ctx)).await.map_err(gql_error)?;
        after_write(ctx, p.org_id).await?;
        Ok(user.into())
    }

    /// Deactivate a user of the caller's organization (admin): their sessions end at once and
    /// they cannot sign in. The organization's last active admin cannot be deactivated.
    async fn deactivate_user(&self, ctx: &Context<'_>, id: ID) -> Result<User> {
        let p = caller(ctx).await?;
        let user = state(ctx).identity.deactivate_user(&p, user_id(&id)?, &request(ctx)).await.map_err(gql_error)?;
        after_write(ctx, p.org_id).await?;
        Ok(user.into())
    }

    /// Let a deactivated user sign in again (admin); their old sessions stay ended.
    async fn reactivate_user(&self, ctx: &Context<'_>, id: ID) -> Result<User> {
        let p = caller(ctx).await?;
        let user = state(ctx).identity.reactivate_user(&p, user_id(&id)?, &request(ctx)).await.map_err(gql_error)?;
        after_write(ctx, p.org_id).await?;
        Ok(user.into())
    }

    /// End one session: one of the caller's own, or (admin) one of a user of their organization.
    async fn revoke_session(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let p = caller(ctx).await?;
        state(ctx).identity.revoke_session(&p, session_id(&id)?, &request(ctx)).await.map_err(gql_error)?;
        after_write(ctx, p.org_id).await?;
        Ok(true)
    }

    /// End every session of the caller except this one.
    async fn revoke_other_sessions(&self, ctx: &Context<'_>) -> Result<bool> {
        let p = caller(ctx).await?;
        state(ctx).identity.revoke_other_sessions(&p, &request(ctx)).await.map_err(gql_error)?;
        after_write(ctx, p.org_id).await?;
        Ok(true)
    }

    /// End every session of a user of the caller's organization (admin).
    async fn revoke_user_sessions(&self, ctx: &Context<'_>, user_id: ID) -> Result<bool> {
        let p = caller(ctx).await?;
        let user = super::context::user_id(&user_id)?;
        state(ctx).identity.revoke_user_sessions(&p, user, &request(ctx)).await.map_err(gql_error)?;
        after_write(ctx, p.org_id).await?;
        Ok(true)
    }
}
