//! GraphQL object types of identity.

use async_graphql::{Enum, SimpleObject, ID};
use chrono::{DateTime, Utc};
use xdr_commands::auth::identity::{OrganizationView, UserView};
use xdr_domain::identity::Role as DomainRole;

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum Role {
    Viewer,
    Analyst,
    SocLead,
    Admin,
}

impl From<DomainRole> for Role {
    fn from(r: DomainRole) -> Self {
        match r {
            DomainRole::Viewer => Role::Viewer,
            DomainRole::Analyst => Role::Analyst,
            DomainRole::SocLead => Role::SocLead,
            DomainRole::Admin => Role::Admin,
        }
    }
}

impl From<Role> for DomainRole {
    fn from(r: Role) -> Self {
        match r {
            Role::Viewer => DomainRole::Viewer,
            Role::Analyst => DomainRole::Analyst,
            Role::SocLead => DomainRole::SocLead,
            Role::Admin => DomainRole::Admin,
        }
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum OrganizationStatus {
    Active,
}

#[derive(SimpleObject, Clone, Debug)]
pub struct User {
    pub id: ID,
    pub organization_id: ID,
    pub email: String,
    pub full_name: String,
    pub role: Role,
    pub is_active: bool,
    pub created_at: Option<DateTime<Utc>>,
    pub last_login: Option<DateTime<Utc>>,
}

impl From<UserView> for User {
    fn from(u: UserView) -> Self {
        User {
            id: ID(u.id.to_string()),
            organization_id: ID(u.organization_id.to_string()),
            email: u.email,
            full_name: u.full_name,
            role: u.role.into(),
            is_active: u.is_active,
            created_at: u.created_at,
            last_login: u.last_login,
        }
    }
}

#[derive(SimpleObject, Clone, Debug)]
pub struct Organization {
    pub id: ID,
    pub name: String,
    pub slug: String,
    pub status: OrganizationStatus,
    pub created_at: Option<DateTime<Utc>>,
}

impl From<OrganizationView> for Organization {
    fn from(o: OrganizationView) -> Self {
        Organization {
            id: ID(o.id.to_string()),
            name: o.name,
            slug: o.slug,
            status: OrganizationStatus::Active,
            created_at: o.created_at,
        }
    }
}

#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct Me {
    pub user: User,
    pub organization: Organization,
}

#[derive(SimpleObject, Clone, Debug)]
pub struct AuthPayload {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: String,
    /// Present on registration.
    pub user: Option<User>,
    pub organization: Option<Organization>,
    /// On login: the known-device token to pass as `login(deviceToken:)` next time.
    pub device_token: Option<String>,
}

#[derive(SimpleObject, Clone, Debug)]
pub struct Invitation {
    pub user: User,
    /// Shown once; only its digest is stored.
    pub invitation_token: String,
    pub expires_at: DateTime<Utc>,
}
