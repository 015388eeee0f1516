//! Containment actions: requested by analysts on an incident, approved or rejected by a
//! `soc_lead`, listed newest first, and the blocks in force.

use super::scope::org_tx;
use async_graphql::connection::Connection;
use async_graphql::{Context, Enum, ErrorExtensions, InputObject, Object, Result, SimpleObject, ID};
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::Row;
use uuid::Uuid;
use xdr_commands::auth::AuthError;
use xdr_domain::identity::Permission;
use xdr_domain::ids::{ActionId, IncidentId, OrgId, UserId};
use xdr_domain::response::action::Action as ActionState;

use super::context::{
    actor_metadata, after_write, bad_input, caller, db_error, decode_time_id_cursor, encode_time_id_cursor, page_of,
    page_size, state,
};
use super::cost;
use super::errors::gql_error;
use super::incidents::{parse, stored};
use crate::response::{ActionAsk, ResponseFailure};

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum ActionKind {
    BlockIp,
    UnblockIp,
    IsolateHost,
    ReleaseHost,
    Notify,
}

impl ActionKind {
    pub fn to_domain(self) -> xdr_domain::response::action::ActionKind {
        use xdr_domain::response::action::ActionKind as D;
        match self {
            ActionKind::BlockIp => D::BlockIp,
            ActionKind::UnblockIp => D::UnblockIp,
            ActionKind::IsolateHost => D::IsolateHost,
            ActionKind::ReleaseHost => D::ReleaseHost,
            ActionKind::Notify => D::Notify,
        }
    }

    pub fn from_domain(kind: xdr_domain::response::action::ActionKind) -> Self {
        use xdr_domain::response::action::ActionKind as D;
        match kind {
            D::BlockIp => ActionKind::BlockIp,
            D::UnblockIp => ActionKind::UnblockIp,
            D::IsolateHost => ActionKind::IsolateHost,
            D::ReleaseHost => ActionKind::ReleaseHost,
            D::Notify => ActionKind::Notify,
        }
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum ActionStatus {
    PendingApproval,
    Approved,
    Rejected,
    Dispatched,
    Succeeded,
    Failed,
    Expired,
}

/// One containment action as it stands.
#[derive(SimpleObject, Clone, Debug)]
pub struct Action {
    pub id: ID,
    pub incident_id: Option<ID>,
    pub kind: ActionKind,
    /// An IP address for block/unblock, a host for isolate/release, a channel for notify.
    pub target: String,
    pub duration_seconds: Option<i64>,
    pub status: Option<ActionStatus>,
    /// Requested by a policy in auto mode or by the scheduler, not by a person.
    pub automatic: bool,
    pub needs_approval: bool,
    pub policy_id: Option<ID>,
    pub policy_name: Option<String>,
    /// The action this one follows up (the expired block an unblock lifts).
    pub follows: Option<ID>,
    pub requested_by: Option<ID>,
    /// Who approved or rejected it.
    pub decided_by: Option<ID>,
    /// Orders sent so far.
    pub attempts: i32,
    /// When the agent's answer to the last order is due.
    pub deadline: Option<DateTime<Utc>>,
    /// When a timed block lifts.
    pub expires_at: Option<DateTime<Utc>>,
    /// The agent's answer, or the rejection's reason.
    pub detail: Option<String>,
    pub requested_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn id(u: Uuid) -> ID {
    ID(u.to_string())
}

pub const ACTION_COLUMNS: &str = "action_id, incident_id, kind, target, duration_secs, status, automatic, \
     needs_approval, policy_id, policy_name, follows, requested_by, decided_by, attempts, deadline, expires_at, \
     detail, requested_at, updated_at";

impl Action {
    pub fn from_row(r: &PgRow) -> Action {
        let kind: String = r.get("kind");
        Action {
            id: id(r.get("action_id")),
            incident_id: r.get::<Option<Uuid>, _>("incident_id").map(id),
            kind: parse(&kind).unwrap_or(ActionKind::Notify),
            target: r.get("target"),
            duration_seconds: r.get("duration_secs"),
            status: parse(r.get::<&str, _>("status")),
            automatic: r.get("automatic"),
            needs_approval: r.get("needs_approval"),
            policy_id: r.get::<Option<Uuid>, _>("policy_id").map(id),
            policy_name: r.get("policy_name"),
            follows: r.get::<Option<Uuid>, _>("follows").map(id),
            requested_by: r.get::<Option<Uuid>, _>("requested_by").map(id),
            decided_by: r.get::<Option<Uuid>, _>("decided_by").map(id),
            attempts: r.get("attempts"),
            deadline: r.get("deadline"),
            expires_at: r.get("expires_at"),
            detail: r.get("detail"),
            requested_at: r.get("requested_at"),
            updated_at: r.get("updated_at"),
        }
    }

    /// The action as a command left it (a mutation answers before the read model has it).
    pub fn from_state(state: &ActionState, decided_by: Option<UserId>, now: DateTime<Utc>) -> Result<Action> {
        let r = state.request.as_ref().ok_or_else(|| gql_error(AuthError::NotFound))?;
        Ok(Action {
            id: id(r.action_id.0),
            incident_id: r.incident_id.map(|i| id(i.0)),
            kind: ActionKind::from_domain(r.kind),
            target: r.target.clone(),
            duration_seconds: r.duration_secs.map(|d| d as i64),
            status: parse(state.status.as_str()),
            automatic: r.automatic,
            needs_approval: r.needs_approval,
            policy_id: r.policy_id.map(|p| id(p.0)),
            policy_name: r.policy_name.clone(),
            follows: r.follows.map(|f| id(f.0)),
            requested_by: r.requested_by.map(|u| id(u.0)),
            decided_by: state.approved_by.or(decided_by).map(|u| id(u.0)),
            attempts: state.attempts as i32,
            deadline: state.deadline,
            expires_at: state.expires_at,
            detail: state.detail.clone(),
            requested_at: r.requested_at,
            updated_at: now,
        })
    }
}

/// A block in force: what enforcement agents re-sync from.
#[derive(SimpleObject, Clone, Debug)]
pub struct ActiveBlock {
    pub action_id: ID,
    pub ip: String,
    pub incident_id: Option<ID>,
    pub since: DateTime<Utc>,
    /// `null`: until lifted by hand.
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(InputObject, Default)]
pub struct ActionFilter {
    pub status: Option<ActionStatus>,
    pub kind: Option<ActionKind>,
    pub incident_id: Option<ID>,
}

#[derive(InputObject, Default)]
pub struct ActionParams {
    /// Defaults to the incident's source address for `BLOCK_IP` and `UNBLOCK_IP`.
    pub target: Option<String>,
    /// For `BLOCK_IP`: lift the block automatically after this many seconds.
    pub duration_seconds: Option<i32>,
    pub note: Option<String>,
    /// Four-eyes: hold the action until a `soc_lead` or admin approves it (undo kinds never wait).
    #[graphql(default)]
    pub require_approval: bool,
}

/// The GraphQL error for a failed request, approval or rejection.
pub fn failure(e: ResponseFailure) -> async_graphql::Error {
    match e {
        ResponseFailure::NotFound => gql_error(AuthError::NotFound),
        ResponseFailure::Forbidden => {
            async_graphql::Error::new(e.to_string()).extend_with(|_, x| x.set("code", "FORBIDDEN"))
        }
        ResponseFailure::SelfApproval => async_graphql::Error::new(e.to_string()).extend_with(|_, x| {
            x.set("code", "FORBIDDEN");
            x.set("reason", "SELF_APPROVAL");
        }),
        ResponseFailure::Protected(m) => bad_input(m).extend_with(|_, x| x.set("reason", "PROTECTED_TARGET")),
        ResponseFailure::Invalid(m) => bad_input(m),
        ResponseFailure::Internal(cause) => gql_error(AuthError::Internal(cause)),
    }
}

fn action_id(id: &ID) -> Result<ActionId> {
    Uuid::parse_str(id).map(ActionId).map_err(|_| gql_error(AuthError::NotFound))
}

/// The actions on one incident, oldest first (the `Incident.actions` field).
pub async fn actions_of_incident(ctx: &Context<'_>, org: OrgId, incident: Uuid) -> Result<Vec<Action>> {
    let mut tx = org_tx(ctx, org).await?;
    let rows = sqlx::query(&format!(
        "SELECT {ACTION_COLUMNS} FROM rm_actions WHERE org_id = $1 AND incident_id = $2 \
         ORDER BY requested_at, action_id LIMIT 500"
    ))
    .bind(org.0)
    .bind(incident)
    .fetch_all(&mut *tx)
    .await
    .map_err(db_error)?;
    Ok(rows.iter().map(Action::from_row).collect())
}

#[derive(Default)]
pub struct ResponseQuery;

#[Object]
impl ResponseQuery {
    /// Containment actions of the caller's organization, newest request first.
    #[graphql(complexity = "cost::root_page(first, child_complexity)")]
    async fn actions(
        &self,
        ctx: &Context<'_>,
        filter: Option<ActionFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, Action>> {
        let p = caller(ctx).await?;
        p.require(Permission::ReadOrgData).map_err(gql_error)?;
        let first = page_size(first)?;
        let after = decode_time_id_cursor(after.as_deref())?;
        let f = filter.unwrap_or_default();
        let incident = f
            .incident_id
            .map(|i| Uuid::parse_str(&i).map_err(|_| bad_input("incidentId is not an incident id")))
            .transpose()?;
        let mut tx = org_tx(ctx, p.org_id).await?;
        let rows = sqlx::query(&format!(
            "SELECT {ACTION_COLUMNS} FROM rm_actions WHERE org_id = $1 \
             AND ($2::timestamptz IS NULL OR (requested_at, action_id) < ($2, $3)) \
             AND ($4::text IS NULL OR status = $4) AND ($5::text IS NULL OR kind = $5) \
             AND ($6::uuid IS NULL OR incident_id = $6) \
             ORDER BY requested_at DESC, action_id DESC LIMIT $7"
        ))
        .bind(p.org_id.0)
        .bind(after.map(|a| a.0))
        .bind(after.map(|a| a.1))
        .bind(f.status.map(stored))
        .bind(f.kind.map(stored))
        .bind(incident)
        .bind(first as i64 + 1)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        Ok(page_of(&rows, first, after.is_some(), Action::from_row, |x| {
            encode_time_id_cursor(x.requested_at, x.id.as_str())
        }))
    }

    /// One action of the caller's organization; another org's id is simply not found.
    async fn action(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Action>> {
        let p = caller(ctx).await?;
        p.require(Permission::ReadOrgData).map_err(gql_error)?;
        let Ok(id) = Uuid::parse_str(&id) else { return Ok(None) };
        let mut tx = org_tx(ctx, p.org_id).await?;
        let row = sqlx::query(&format!("SELECT {ACTION_COLUMNS} FROM rm_actions WHERE org_id = $1 AND action_id = $2"))
            .bind(p.org_id.0)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?;
        Ok(row.as_ref().map(Action::from_row))
    }

    /// Blocks in force in the caller's organization, newest first.
    #[graphql(complexity = "cost::root_list(child_complexity)")]
    async fn active_blocks(&self, ctx: &Context<'_>) -> Result<Vec<ActiveBlock>> {
        let p = caller(ctx).await?;
        p.require(Permission::ReadOrgData).map_err(gql_error)?;
        let mut tx = org_tx(ctx, p.org_id).await?;
        let rows = sqlx::query(
            "SELECT action_id, ip, incident_id, since, expires_at FROM rm_active_blocks WHERE org_id = $1 \
             ORDER BY since DESC, action_id DESC",
        )
        .bind(p.org_id.0)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        Ok(rows
            .iter()
            .map(|r| ActiveBlock {
                action_id: id(r.get("action_id")),
                ip: r.get("ip"),
                incident_id: r.get::<Option<Uuid>, _>("incident_id").map(id),
                since: r.get("since"),
                expires_at: r.get("expires_at"),
            })
            .collect())
    }
}

#[derive(Default)]
pub struct ResponseMutation;

#[Object]
impl ResponseMutation {
    /// Ask for a containment action on an incident (analyst and up). Sent to the org's
    /// enforcement agents at once unless it waits for approval; safety rails apply (a
    /// protected or private target is refused with `BAD_USER_INPUT`, reason `PROTECTED_TARGET`).
    async fn request_action(
        &self,
        ctx: &Context<'_>,
        incident_id: ID,
        kind: ActionKind,
        params: Option<ActionParams>,
    ) -> Result<Action> {
        let p = caller(ctx).await?;
        p.require(Permission::RequestAction).map_err(gql_error)?;
        let incident = Uuid::parse_str(&incident_id).map(IncidentId).map_err(|_| gql_error(AuthError::NotFound))?;
        let params = params.unwrap_or_default();
        let duration_secs = params
            .duration_seconds
            .map(|d| u64::try_from(d).map_err(|_| bad_input("durationSeconds must be positive")))
            .transpose()?;
        let ask = ActionAsk {
            kind: kind.to_domain(),
            target: params.target,
            duration_secs,
            note: params.note,
            require_approval: params.require_approval,
        };
        let now = Utc::now();
        let done = crate::response::request_on_incident(state(ctx), &p, &actor_metadata(ctx, &p), incident, ask)
            .await
            .map_err(failure)?;
        after_write(ctx, p.org_id).await?;
        Action::from_state(&done, None, now)
    }

    /// Approve an action that waits for approval (soc_lead and up); it is sent at once.
    /// Four-eyes: the person who requested it cannot approve it (`FORBIDDEN`, reason
    /// `SELF_APPROVAL`) unless an admin allowed that with `setSelfApproval`.
    async fn approve_action(&self, ctx: &Context<'_>, id: ID) -> Result<Action> {
        let p = caller(ctx).await?;
        p.require(Permission::ApproveAction).map_err(gql_error)?;
        let action = action_id(&id)?;
        let done = crate::response::approve(state(ctx), &p, &actor_metadata(ctx, &p), action).await.map_err(failure)?;
        after_write(ctx, p.org_id).await?;
        Action::from_state(&done, Some(p.user_id), Utc::now())
    }

    /// Reject an action that waits for approval (soc_lead and up); it is never sent.
    async fn reject_action(&self, ctx: &Context<'_>, id: ID, reason: Option<String>) -> Result<Action> {
        let p = caller(ctx).await?;
        p.require(Permission::ApproveAction).map_err(gql_error)?;
        let action = action_id(&id)?;
        let reason = reason.map(|r| r.trim().to_owned()).filter(|r| !r.is_empty());
        let done =
            crate::response::reject(state(ctx), &p, &actor_metadata(ctx, &p), action, reason).await.map_err(failure)?;
        after_write(ctx, p.org_id).await?;
        Action::from_state(&done, Some(p.user_id), Utc::now())
    }
}
