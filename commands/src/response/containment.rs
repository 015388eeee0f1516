//! Command handlers of an org's containment policies, auto-containment switch and safety
//! rails (one `containment-<org>` stream).

use chrono::{DateTime, Utc};
use xdr_domain::ids::{OrgId, PolicyId};
use xdr_domain::response::policy::{
    containment_stream_id, ContainmentCommand, ContainmentError, ContainmentPolicies, ContainmentPolicy,
};
use xdr_domain::EventMetadata;

use crate::handler::{execute, CommandError};
use crate::store::EventStore;

pub type ContainmentCommandError = CommandError<ContainmentError>;

async fn run(
    store: &EventStore,
    org: OrgId,
    command: ContainmentCommand,
    metadata: &EventMetadata,
) -> Result<ContainmentPolicies, ContainmentCommandError> {
    Ok(execute::<ContainmentPolicies>(store, org, &containment_stream_id(org), &command, metadata, None).await?.state)
}

pub async fn create_policy(
    store: &EventStore,
    org: OrgId,
    policy: ContainmentPolicy,
    metadata: &EventMetadata,
    now: DateTime<Utc>,
) -> Result<ContainmentPolicies, ContainmentCommandError> {
    run(store, org, ContainmentCommand::Create { org_id: org, policy, now }, metadata).await
}

pub async fn update_policy(
    store: &EventStore,
    org: OrgId,
    policy: ContainmentPolicy,
    metadata: &EventMetadata,
    now: DateTime<Utc>,
) -> Result<ContainmentPolicies, ContainmentCommandError> {
    run(store, org, ContainmentCommand::Update { org_id: org, policy, now }, metadata).await
}

pub async fn delete_policy(
    store: &EventStore,
    org: OrgId,
    policy_id: PolicyId,
    metadata: &EventMetadata,
    now: DateTime<Utc>,
) -> Result<ContainmentPolicies, ContainmentCommandError> {
    run(store, org, ContainmentCommand::Delete { org_id: org, policy_id, now }, metadata).await
}

pub async fn set_auto_containment(
    store: &EventStore,
    org: OrgId,
    enabled: bool,
    metadata: &EventMetadata,
    now: DateTime<Utc>,
) -> Result<ContainmentPolicies, ContainmentCommandError> {
    run(store, org, ContainmentCommand::SetAutoContainment { org_id: org, enabled, now }, metadata).await
}

/// Replace the org's safety rails as a whole.
pub async fn change_settings(
    store: &EventStore,
    org: OrgId,
    protected_ranges: Vec<String>,
    allow_private_targets: bool,
    max_auto_blocks_per_minute: u32,
    metadata: &EventMetadata,
    now: DateTime<Utc>,
) -> Result<ContainmentPolicies, ContainmentCommandError> {
    let command = ContainmentCommand::ChangeSettings {
        org_id: org,
        protected_ranges,
        allow_private_targets,
        max_auto_blocks_per_minute,
        now,
    };
    run(store, org, command, metadata).await
}

/// Four-eyes: allow (or forbid again) requesters to approve their own actions.
pub async fn set_self_approval(
    store: &EventStore,
    org: OrgId,
    allowed: bool,
    metadata: &EventMetadata,
    now: DateTime<Utc>,
) -> Result<ContainmentPolicies, ContainmentCommandError> {
    run(store, org, ContainmentCommand::SetSelfApproval { org_id: org, allowed, now }, metadata).await
}
