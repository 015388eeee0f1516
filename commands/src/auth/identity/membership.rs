//! Membership handlers: an admin changes a user's role, deactivates or reactivates them; a
//! user (or an admin of their org) ends sessions. Decisions are `xdr_domain::identity::membership`.
//!
//! Role and deactivation take effect on the affected user's very next request because
//! `authenticate` and `refresh` read the user stream every time and use its *current* role
//! and state, never the role in the token. Ending sessions in bulk is a cut-off on the user
//! stream, checked by the same reads.

use sqlx::{Postgres, Transaction};
use uuid::Uuid;
use xdr_domain::aggregate::Aggregate;
use xdr_domain::identity::{MembershipCommand, Permission, Role, Session, SessionCommand, User, UserCommand};
use xdr_domain::ids::{OrgId, SessionId, UserId};

use super::{metadata, new_events, AuthError, IdentityService, Principal, RequestContext, UserView};
use crate::handler;
use crate::store::{ExpectedVersion, StoreError};

/// How often a role change is re-decided after a concurrent write to the target's stream.
const MEMBERSHIP_ATTEMPTS: usize = 8;

impl IdentityService {
    /// Change the role of a user of the caller's org (admin).
    pub async fn change_role(
        &self,
        principal: &Principal,
        user_id: UserId,
        role: Role,
        ctx: &RequestContext,
    ) -> Result<UserView, AuthError> {
        principal.require(Permission::ManageUsers)?;
        self.decide_with_admin_count(principal, user_id, ctx, |active_admins, now| MembershipCommand::ChangeRole {
            role,
            by_user: principal.user_id,
            active_admins,
            now,
        })
        .await
    }

    /// Deactivate a user of the caller's org (admin): no sign-in, every session ends now.
    pub async fn deactivate_user(
        &self,
        principal: &Principal,
        user_id: UserId,
        ctx: &RequestContext,
    ) -> Result<UserView, AuthError> {
        principal.require(Permission::ManageUsers)?;
        self.decide_with_admin_count(principal, user_id, ctx, |active_admins, now| MembershipCommand::Deactivate {
            by_user: principal.user_id,
            active_admins,
            now,
        })
        .await
    }

    /// Let a deactivated user of the caller's org sign in again (admin).
    pub async fn reactivate_user(
        &self,
        principal: &Principal,
        user_id: UserId,
        ctx: &RequestContext,
    ) -> Result<UserView, AuthError> {
        principal.require(Permission::ManageUsers)?;
        self.user_in_org(principal.org_id, user_id).await?;
        let command = UserCommand::Membership(MembershipCommand::Reactivate {
            by_user: principal.user_id,
            now: self.clock.now(),
        });
        self.execute_user(principal, user_id, command, ctx).await
    }

    /// End one session: the caller's own, or (admin) one of a user of the caller's org. A
    /// session of another org is not found: its stream is looked up in the caller's org only.
    pub async fn revoke_session(
        &self,
        principal: &Principal,
        session_id: SessionId,
        ctx: &RequestContext,
    ) -> Result<(), AuthError> {
        let session: Session = self.load(principal.org_id, &session_id.stream_id()).await?;
        if !session.started {
            return Err(AuthError::NotFound);
        }
        if session.user_id != principal.user_id {
            principal.require(Permission::ManageUsers).map_err(|_| AuthError::NotFound)?;
        }
        handler::execute::<Session>(
            &self.store,
            principal.org_id,
            &session_id.stream_id(),
            &SessionCommand::Revoke { by_user: principal.user_id, now: self.clock.now() },
            &metadata(Some(principal.user_id), ctx),
            None,
        )
        .await?;
        Ok(())
    }

    /// End every session of the caller except the one making the request.
    pub async fn revoke_other_sessions(&self, principal: &Principal, ctx: &RequestContext) -> Result<(), AuthError> {
        let command = UserCommand::Membership(MembershipCommand::RevokeSessions {
            keep: Some(principal.session_id),
            by_user: principal.user_id,
            now: self.clock.now(),
        });
        self.execute_user(principal, principal.user_id, command, ctx).await.map(|_| ())
    }

    /// End every session of a user of the caller's org (admin).
    pub async fn revoke_user_sessions(
        &self,
        principal: &Principal,
        user_id: UserId,
        ctx: &RequestContext,
    ) -> Result<(), AuthError> {
        principal.require(Permission::ManageUsers)?;
        self.user_in_org(principal.org_id, user_id).await?;
        let command = UserCommand::Membership(MembershipCommand::RevokeSessions {
            keep: None,
            by_user: principal.user_id,
            now: self.clock.now(),
        });
        self.execute_user(principal, user_id, command, ctx).await.map(|_| ())
    }

    /// Decide a command that needs the org's count of active admins, under a per-org lock so
    /// two admins demoting each other at once are decided one after the other.
    async fn decide_with_admin_count(
        &self,
        principal: &Principal,
        user_id: UserId,
        ctx: &RequestContext,
        command: impl Fn(u32, chrono::DateTime<chrono::Utc>) -> MembershipCommand,
    ) -> Result<UserView, AuthError> {
        self.user_in_org(principal.org_id, user_id).await?;
        let stream = user_id.stream_id();
        let meta = metadata(Some(principal.user_id), ctx);
        for _ in 0..MEMBERSHIP_ATTEMPTS {
            let mut tx = crate::db::begin_org_tx(self.pool(), principal.org_id).await?;
            let active_admins = self.lock_and_count_active_admins(&mut tx, principal.org_id).await?;
            let (mut user, version) = handler::load::<User>(&self.store, principal.org_id, &stream)
                .await
                .map_err(|e| AuthError::Internal(format!("{e:?}")))?;
            let events = user.decide(&UserCommand::Membership(command(active_admins, self.clock.now())))?;
            let appended = self
                .store
                .append_in_tx(
                    &mut tx,
                    principal.org_id,
                    &stream,
                    ExpectedVersion::Exact(version),
                    new_events(&stream, &events, &meta),
                )
                .await;
            match appended {
                Err(StoreError::Conflict { .. }) => continue,
                other => other?,
            };
            tx.commit().await?;
            events.iter().for_each(|e| user.apply(e));
            return Ok((&user).into());
        }
        Err(AuthError::Internal("user stream kept changing during a role change".into()))
    }

    /// Take the org's admin-roster lock for the rest of `tx` and count its active admins from
    /// their streams (the registry lists every member; read models could lag a change).
    async fn lock_and_count_active_admins(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        org: OrgId,
    ) -> Result<u32, AuthError> {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("admin-roster-{org}"))
            .execute(&mut **tx)
            .await?;
        let members: Vec<Uuid> = sqlx::query_scalar("SELECT user_id FROM user_emails WHERE org_id = $1")
            .bind(org.0)
            .fetch_all(&mut **tx)
            .await?;
        let mut active_admins = 0;
        for member in members {
            let user: User = self.load(org, &UserId(member).stream_id()).await?;
            if user.created && user.is_active && user.role == Role::Admin {
                active_admins += 1;
            }
        }
        Ok(active_admins)
    }
}
