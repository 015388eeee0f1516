//! Containment policies, the auto-containment switch, the safety rails (admin writes, every
//! member reads) and enforcement-agent keys (admin).

use super::scope::org_tx;
use async_graphql::{Context, Enum, InputObject, Object, Result, SimpleObject, ID};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use sqlx::postgres::PgRow;
use sqlx::Row;
use uuid::Uuid;
use xdr_commands::auth::AuthError;
use xdr_commands::handler::CommandError;
use xdr_commands::response::actions::load_containment;
use xdr_commands::response::agent_keys::{create_agent_key, revoke_agent_key};
use xdr_commands::response::containment::{
    change_settings, create_policy, delete_policy, set_auto_containment, set_self_approval, update_policy,
};
use xdr_domain::identity::Permission;
use xdr_domain::ids::{AgentKeyId, PolicyId};
use xdr_domain::response::agent_key::AgentKeyError;
use xdr_domain::response::policy::{
    ContainmentError, ContainmentPolicies, ContainmentPolicy as DomainPolicy, PolicyAction as DomainPolicyAction,
    PolicyConditions as DomainConditions, PolicyMode as DomainMode,
};

use super::context::{actor_metadata, after_write, bad_input, caller, db_error, state};
use super::cost;
use super::errors::gql_error;
use super::incidents::{parse, stored, IncidentCategory, Severity};
use super::response::ActionKind;

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum PolicyMode {
    /// Act at once (when auto-containment is on and the org's cap allows).
    Auto,
    /// Queue the action for a soc_lead or admin.
    Approval,
}

/// When a policy applies: every condition that is set must hold.
#[derive(SimpleObject, Clone, Debug)]
pub struct PolicyConditions {
    pub min_severity: Option<Severity>,
    /// Any of these categories (empty: any).
    pub categories: Vec<IncidentCategory>,
    pub min_risk: Option<f64>,
    /// Any of these ATT&CK techniques (a parent id like `T1110` matches `T1110.001`).
    pub techniques: Vec<String>,
    /// Source inside one of these CIDRs (empty: anywhere).
    pub source_in: Vec<String>,
    /// Source outside all of these CIDRs.
    pub source_not_in: Vec<String>,
}

#[derive(InputObject, Clone, Debug, Default)]
pub struct PolicyConditionsInput {
    pub min_severity: Option<Severity>,
    #[graphql(default)]
    pub categories: Vec<IncidentCategory>,
    pub min_risk: Option<f64>,
    #[graphql(default)]
    pub techniques: Vec<String>,
    #[graphql(default)]
    pub source_in: Vec<String>,
    #[graphql(default)]
    pub source_not_in: Vec<String>,
}

#[derive(SimpleObject, Clone, Debug)]
pub struct PolicyAction {
    pub kind: ActionKind,
    pub duration_seconds: Option<i64>,
}

#[derive(InputObject, Clone, Debug)]
pub struct PolicyActionInput {
    /// `BLOCK_IP` or `NOTIFY`.
    pub kind: ActionKind,
    /// For `BLOCK_IP`: lift the block after this many seconds.
    pub duration_seconds: Option<i32>,
}

#[derive(SimpleObject, Clone, Debug)]
pub struct ContainmentPolicy {
    pub id: ID,
    pub name: String,
    /// Lower runs first; the first matching enabled policy wins.
    pub priority: i32,
    pub enabled: bool,
    pub mode: PolicyMode,
    pub conditions: PolicyConditions,
    pub action: PolicyAction,
    pub updated_at: DateTime<Utc>,
}

#[derive(InputObject, Clone, Debug)]
pub struct ContainmentPolicyInput {
    pub name: String,
    pub priority: i32,
    #[graphql(default = true)]
    pub enabled: bool,
    pub mode: PolicyMode,
    #[graphql(default)]
    pub conditions: PolicyConditionsInput,
    pub action: PolicyActionInput,
}

/// The org's auto-containment switch and safety rails.
#[derive(SimpleObject, Clone, Debug)]
pub struct ContainmentSettings {
    /// Whether `AUTO` policies act without approval (off until an admin turns it on).
    pub auto_containment: bool,
    /// Addresses no block may touch.
    pub protected_ranges: Vec<String>,
    /// Whether private (RFC 1918, CGNAT, link-local, ULA) addresses may be blocked.
    pub allow_private_targets: bool,
    /// Automatic blocks per minute beyond which actions wait for approval.
    pub max_auto_blocks_per_minute: i32,
    /// Whether whoever requested an action may approve it too (four-eyes off); `false`
    /// until an admin allows it.
    pub allow_self_approval: bool,
}

impl From<&ContainmentPolicies> for ContainmentSettings {
    fn from(c: &ContainmentPolicies) -> Self {
        ContainmentSettings {
            auto_containment: c.auto_containment,
            protected_ranges: c.protected_ranges.clone(),
            allow_private_targets: c.allow_private_targets,
            max_auto_blocks_per_minute: c.max_auto_blocks_per_minute as i32,
            allow_self_approval: c.allow_self_approval,
        }
    }
}

#[derive(SimpleObject, Clone, Debug)]
pub struct AgentKey {
    pub id: ID,
    pub name: String,
    /// The first characters of the key, to recognise it; never the key.
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(SimpleObject)]
pub struct CreatedAgentKey {
    /// The key itself. Shown once: only its digest is stored.
    pub key: String,
    pub agent_key: AgentKey,
}

// --------------------------------------------------------------------------- mapping

/// A GraphQL enum value into the domain enum of the same (snake_case) name.
fn to_domain<G: async_graphql::EnumType + Copy, D: serde::de::DeserializeOwned>(v: G) -> Result<D> {
    serde_json::from_value(serde_json::Value::String(stored(v)))
        .map_err(|e| gql_error(AuthError::Internal(format!("enum mapping: {e}"))))
}

fn conditions_out(c: &DomainConditions) -> PolicyConditions {
    PolicyConditions {
        min_severity: c.min_severity.and_then(|s| parse(s.as_str())),
        categories: c.categories.iter().filter_map(|k| parse(k.as_str())).collect(),
        min_risk: c.min_risk,
        techniques: c.techniques.clone(),
        source_in: c.source_in.clone(),
        source_not_in: c.source_not_in.clone(),
    }
}

fn policy_out(p: &DomainPolicy, updated_at: DateTime<Utc>) -> ContainmentPolicy {
    ContainmentPolicy {
        id: ID(p.policy_id.0.to_string()),
        name: p.name.clone(),
        priority: p.priority,
        enabled: p.enabled,
        mode: match p.mode {
            DomainMode::Auto => PolicyMode::Auto,
            DomainMode::Approval => PolicyMode::Approval,
        },
        conditions: conditions_out(&p.conditions),
        action: PolicyAction {
            kind: ActionKind::from_domain(p.action.kind),
            duration_seconds: p.action.duration_secs.map(|d| d as i64),
        },
        updated_at,
    }
}

fn policy_from_row(r: &PgRow) -> Result<ContainmentPolicy> {
    let corrupt = |e: serde_json::Error| gql_error(AuthError::Internal(format!("rm_containment_policies: {e}")));
    let conditions: DomainConditions = serde_json::from_value(r.get("conditions")).map_err(corrupt)?;
    let action: DomainPolicyAction = serde_json::from_value(r.get("action")).map_err(corrupt)?;
    let mode = match r.get::<&str, _>("mode") {
        "auto" => DomainMode::Auto,
        _ => DomainMode::Approval,
    };
    let policy = DomainPolicy {
        policy_id: PolicyId(r.get("policy_id")),
        name: r.get("name"),
        priority: r.get("priority"),
        enabled: r.get("enabled"),
        conditions,
        action,
        mode,
    };
    Ok(policy_out(&policy, r.get("updated_at")))
}

fn policy_in(policy_id: PolicyId, input: ContainmentPolicyInput) -> Result<DomainPolicy> {
    let c = input.conditions;
    let min_severity = c.min_severity.map(to_domain).transpose()?;
    let categories = c.categories.into_iter().map(to_domain).collect::<Result<Vec<_>>>()?;
    let duration_secs = input
        .action
        .duration_seconds
        .map(|d| u64::try_from(d).map_err(|_| bad_input("durationSeconds must be positive")))
        .transpose()?;
    Ok(DomainPolicy {
        policy_id,
        name: input.name,
        priority: input.priority,
        enabled: input.enabled,
        conditions: DomainConditions {
            min_severity,
            categories,
            min_risk: c.min_risk,
            techniques: c.techniques.into_iter().map(|t| t.trim().to_owned()).collect(),
            source_in: c.source_in,
            source_not_in: c.source_not_in,
        },
        action: DomainPolicyAction { kind: input.action.kind.to_domain(), duration_secs },
        mode: match input.mode {
            PolicyMode::Auto => DomainMode::Auto,
            PolicyMode::Approval => DomainMode::Approval,
        },
    })
}

fn containment_error(e: CommandError<ContainmentError>) -> async_graphql::Error {
    match e {
        CommandError::Domain(ContainmentError::NotFound) => gql_error(AuthError::NotFound),
        CommandError::Domain(other) => bad_input(other.to_string()),
        other => gql_error(AuthError::Internal(other.to_string())),
    }
}

fn policy_id(id: &ID) -> Result<PolicyId> {
    Uuid::parse_str(id).map(PolicyId).map_err(|_| gql_error(AuthError::NotFound))
}

// ---------------------------------------------------------------------------- queries

#[derive(Default)]
pub struct ContainmentQuery;

#[Object]
impl ContainmentQuery {
    /// The org's containment policies in evaluation order (lowest priority number first).
    #[graphql(complexity = "cost::root_list(child_complexity)")]
    async fn containment_policies(&self, ctx: &Context<'_>) -> Result<Vec<ContainmentPolicy>> {
        let p = caller(ctx).await?;
        p.require(Permission::ReadOrgData).map_err(gql_error)?;
        let mut tx = org_tx(ctx, p.org_id).await?;
        let rows = sqlx::query(
            "SELECT policy_id, name, priority, enabled, mode, conditions, action, updated_at \
             FROM rm_containment_policies WHERE org_id = $1 ORDER BY priority, policy_id",
        )
        .bind(p.org_id.0)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        rows.iter().map(policy_from_row).collect()
    }

    /// The org's auto-containment switch and safety rails (the defaults until an admin
    /// changes them).
    async fn containment_settings(&self, ctx: &Context<'_>) -> Result<ContainmentSettings> {
        let p = caller(ctx).await?;
        p.require(Permission::ReadOrgData).map_err(gql_error)?;
        let mut tx = org_tx(ctx, p.org_id).await?;
        let row = sqlx::query(
            "SELECT auto_containment, protected_ranges, allow_private_targets, max_auto_blocks_per_minute, \
               allow_self_approval FROM rm_containment_settings WHERE org_id = $1",
        )
        .bind(p.org_id.0)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        Ok(match row {
            Some(r) => ContainmentSettings {
                auto_containment: r.get("auto_containment"),
                protected_ranges: r.get("protected_ranges"),
                allow_private_targets: r.get("allow_private_targets"),
                max_auto_blocks_per_minute: r.get("max_auto_blocks_per_minute"),
                allow_self_approval: r.get("allow_self_approval"),
            },
            // No containment event yet: the domain's defaults are in force.
            None => ContainmentSettings::from(&ContainmentPolicies::default()),
        })
    }

    /// The org's enforcement-agent keys, newest first (admin).
    #[graphql(complexity = "cost::root_list(child_complexity)")]
    async fn agent_keys(&self, ctx: &Context<'_>) -> Result<Vec<AgentKey>> {
        let p = caller(ctx).await?;
        p.require(Permission::ManageAgentKeys).map_err(gql_error)?;
        let mut tx = org_tx(ctx, p.org_id).await?;
        let rows = sqlx::query(
            "SELECT key_id, name, prefix, created_at, revoked_at FROM rm_agent_keys \
             WHERE org_id = $1 ORDER BY created_at DESC, key_id",
        )
        .bind(p.org_id.0)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        Ok(rows
            .iter()
            .map(|r| AgentKey {
                id: ID(r.get::<Uuid, _>("key_id").to_string()),
                name: r.get("name"),
                prefix: r.get("prefix"),
                created_at: r.get("created_at"),
                revoked_at: r.get("revoked_at"),
            })
            .collect())
    }
}

// -------------------------------------------------------------------------- mutations

#[derive(Default)]
pub struct ContainmentMutation;

#[Object]
impl ContainmentMutation {
    /// Add a containment policy (admin). Priorities are unique within the org.
    async fn create_containment_policy(
        &self,
        ctx: &Context<'_>,
        input: ContainmentPolicyInput,
    ) -> Result<ContainmentPolicy> {
        let p = caller(ctx).await?;
        p.require(Permission::ManageContainment).map_err(gql_error)?;
        let id = PolicyId(Uuid::now_v7());
        let policy = policy_in(id, input)?;
        let now = Utc::now();
        let state_after = create_policy(state(ctx).identity.store(), p.org_id, policy, &actor_metadata(ctx, &p), now)
            .await
            .map_err(containment_error)?;
        after_write(ctx, p.org_id).await?;
        let created = state_after.policies.get(&id).ok_or_else(|| gql_error(AuthError::NotFound))?;
        Ok(policy_out(created, now))
    }

    /// Replace a containment policy as a whole (admin).
    async fn update_containment_policy(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: ContainmentPolicyInput,
    ) -> Result<ContainmentPolicy> {
        let p = caller(ctx).await?;
        p.require(Permission::ManageContainment).map_err(gql_error)?;
        let id = policy_id(&id)?;
        let policy = policy_in(id, input)?;
        let now = Utc::now();
        let state_after = update_policy(state(ctx).identity.store(), p.org_id, policy, &actor_metadata(ctx, &p), now)
            .await
            .map_err(containment_error)?;
        after_write(ctx, p.org_id).await?;
        let updated = state_after.policies.get(&id).ok_or_else(|| gql_error(AuthError::NotFound))?;
        Ok(policy_out(updated, now))
    }

    /// Delete a containment policy (admin).
    async fn delete_containment_policy(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let p = caller(ctx).await?;
        p.require(Permission::ManageContainment).map_err(gql_error)?;
        let id = policy_id(&id)?;
        delete_policy(state(ctx).identity.store(), p.org_id, id, &actor_metadata(ctx, &p), Utc::now())
            .await
            .map_err(containment_error)?;
        after_write(ctx, p.org_id).await?;
        Ok(true)
    }

    /// Turn automatic containment on or off for the org (admin). Off: `AUTO` policies'
    /// actions wait for approval.
    async fn set_auto_containment(&self, ctx: &Context<'_>, enabled: bool) -> Result<ContainmentSettings> {
        let p = caller(ctx).await?;
        p.require(Permission::ManageContainment).map_err(gql_error)?;
        let after =
            set_auto_containment(state(ctx).identity.store(), p.org_id, enabled, &actor_metadata(ctx, &p), Utc::now())
                .await
                .map_err(containment_error)?;
        after_write(ctx, p.org_id).await?;
        Ok(ContainmentSettings::from(&after))
    }

    /// Four-eyes (admin): `allowed: true` lets whoever requested an action approve it too;
    /// `false` (the default) requires a second soc_lead or admin. Recorded as an event.
    async fn set_self_approval(&self, ctx: &Context<'_>, allowed: bool) -> Result<ContainmentSettings> {
        let p = caller(ctx).await?;
        p.require(Permission::ManageContainment).map_err(gql_error)?;
        let after =
            set_self_approval(state(ctx).identity.store(), p.org_id, allowed, &actor_metadata(ctx, &p), Utc::now())
                .await
                .map_err(containment_error)?;
        after_write(ctx, p.org_id).await?;
        Ok(ContainmentSettings::from(&after))
    }

    /// Change the org's safety rails (admin). Arguments left out keep their current value;
    /// `protectedRanges` replaces the whole list (the defaults included).
    async fn update_containment_settings(
        &self,
        ctx: &Context<'_>,
        protected_ranges: Option<Vec<String>>,
        allow_private_targets: Option<bool>,
        max_auto_blocks_per_minute: Option<i32>,
    ) -> Result<ContainmentSettings> {
        let p = caller(ctx).await?;
        p.require(Permission::ManageContainment).map_err(gql_error)?;
        let store = state(ctx).identity.store();
        let current = load_containment(store, p.org_id).await.map_err(containment_error)?;
        let cap = match max_auto_blocks_per_minute {
            Some(n) => u32::try_from(n).map_err(|_| bad_input("maxAutoBlocksPerMinute must not be negative"))?,
            None => current.max_auto_blocks_per_minute,
        };
        let after = change_settings(
            store,
            p.org_id,
            protected_ranges.unwrap_or(current.protected_ranges),
            allow_private_targets.unwrap_or(current.allow_private_targets),
            cap,
            &actor_metadata(ctx, &p),
            Utc::now(),
        )
        .await
        .map_err(containment_error)?;
        after_write(ctx, p.org_id).await?;
        Ok(ContainmentSettings::from(&after))
    }

    /// Issue a key for an enforcement agent (admin). The key is shown once; the agent receives
    /// this org's containment orders with it.
    async fn create_agent_key(&self, ctx: &Context<'_>, name: String) -> Result<CreatedAgentKey> {
        let p = caller(ctx).await?;
        p.require(Permission::ManageAgentKeys).map_err(gql_error)?;
        let issued = create_agent_key(state(ctx).identity.store(), p.org_id, &name, &actor_metadata(ctx, &p))
            .await
            .map_err(|e| match e {
                CommandError::Domain(AgentKeyError::InvalidName) => bad_input(AgentKeyError::InvalidName.to_string()),
                other => gql_error(AuthError::Internal(other.to_string())),
            })?;
        after_write(ctx, p.org_id).await?;
        Ok(CreatedAgentKey {
            key: issued.key.expose_secret().to_owned(),
            agent_key: AgentKey {
                id: ID(issued.key_id.0.to_string()),
                name: issued.name,
                prefix: issued.prefix,
                created_at: issued.created_at,
                revoked_at: None,
            },
        })
    }

    /// Revoke an agent key (admin); the agent holding it receives no further orders.
    /// Returns `false` when it was already revoked.
    async fn revoke_agent_key(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let p = caller(ctx).await?;
        p.require(Permission::ManageAgentKeys).map_err(gql_error)?;
        let key_id = Uuid::parse_str(&id).map(AgentKeyId).map_err(|_| gql_error(AuthError::NotFound))?;
        // The key's stream is read in the caller's org only: another org's key is not found.
        let revoked = revoke_agent_key(state(ctx).identity.store(), p.org_id, key_id, &actor_metadata(ctx, &p))
            .await
            .map_err(|e| match e {
            CommandError::Domain(AgentKeyError::NotFound) => gql_error(AuthError::NotFound),
            other => gql_error(AuthError::Internal(other.to_string())),
        })?;
        after_write(ctx, p.org_id).await?;
        Ok(revoked)
    }
}
