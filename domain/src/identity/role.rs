//! Roles, ordered by privilege, and the single table of what each permission requires.

use serde::{Deserialize, Serialize};

use super::IdentityError;

/// A user's role inside their organization. Ordered: `Viewer < Analyst < SocLead < Admin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Analyst,
    SocLead,
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Analyst, Role::SocLead, Role::Admin];

    /// The wire and storage form: `viewer`, `analyst`, `soc_lead`, `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Analyst => "analyst",
            Role::SocLead => "soc_lead",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Result<Role, IdentityError> {
        Role::ALL.into_iter().find(|r| r.as_str() == s).ok_or(IdentityError::InvalidRole)
    }

    /// Whether this role is at least the minimum role the permission requires.
    pub fn can(self, permission: Permission) -> bool {
        self >= minimum_role(permission)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something a user may be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    ReadOrgData,
    UpdateIncidentStatus,
    InviteUser,
    LockUser,
    UnlockUser,
    ManageIngestKeys,
    ApproveAction,
    ReadAuditLog,
    /// Ask for a containment action (block, unblock, isolate, release, notify).
    RequestAction,
    /// Write containment policies, the auto-containment switch and the safety rails.
    ManageContainment,
    /// Issue and revoke enforcement-agent keys.
    ManageAgentKeys,
    /// Change a member's role, deactivate and reactivate them, end their sessions.
    ManageUsers,
}

impl Permission {
    pub const ALL: [Permission; 12] = [
        Permission::ReadOrgData,
        Permission::UpdateIncidentStatus,
        Permission::InviteUser,
        Permission::LockUser,
        Permission::UnlockUser,
        Permission::ManageIngestKeys,
        Permission::ApproveAction,
        Permission::ReadAuditLog,
        Permission::RequestAction,
        Permission::ManageContainment,
        Permission::ManageAgentKeys,
        Permission::ManageUsers,
    ];
}

/// The one authorization table: the least role that holds each permission.
pub fn minimum_role(permission: Permission) -> Role {
    match permission {
        Permission::ReadOrgData => Role::Viewer,
        Permission::UpdateIncidentStatus | Permission::RequestAction => Role::Analyst,
        Permission::ApproveAction => Role::SocLead,
        Permission::InviteUser
        | Permission::LockUser
        | Permission::UnlockUser
        | Permission::ManageIngestKeys
        | Permission::ReadAuditLog
        | Permission::ManageContainment
        | Permission::ManageAgentKeys
        | Permission::ManageUsers => Role::Admin,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_should_order_roles_by_privilege() {
        assert!(Role::Viewer < Role::Analyst);
        assert!(Role::Analyst < Role::SocLead);
        assert!(Role::SocLead < Role::Admin);
    }

    #[test]
    fn it_should_serialize_roles_as_snake_case() {
        for role in Role::ALL {
            assert_eq!(serde_json::to_value(role).unwrap(), serde_json::json!(role.as_str()));
            assert_eq!(serde_json::from_value::<Role>(serde_json::json!(role.as_str())).unwrap(), role);
        }
        assert_eq!(Role::SocLead.as_str(), "soc_lead");
    }

    #[test]
    fn it_should_parse_every_role_name() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Ok(role));
        }
    }

    #[test]
    fn it_should_not_parse_an_unknown_role() {
        assert_eq!(Role::parse("superuser"), Err(IdentityError::InvalidRole));
        assert_eq!(Role::parse("Admin"), Err(IdentityError::InvalidRole));
    }

    #[test]
    fn it_should_grant_exactly_the_permission_table() {
        use Permission::*;
        // (permission, viewer, analyst, soc_lead, admin)
        let table = [
            (ReadOrgData, true, true, true, true),
            (UpdateIncidentStatus, false, true, true, true),
            (ApproveAction, false, false, true, true),
            (InviteUser, false, false, false, true),
            (LockUser, false, false, false, true),
            (UnlockUser, false, false, false, true),
            (ManageIngestKeys, false, false, false, true),
            (ReadAuditLog, false, false, false, true),
            (RequestAction, false, true, true, true),
            (ManageContainment, false, false, false, true),
            (ManageAgentKeys, false, false, false, true),
            (ManageUsers, false, false, false, true),
        ];
        assert_eq!(table.len(), Permission::ALL.len());
        for (p, viewer, analyst, soc_lead, admin) in table {
            assert_eq!(Role::Viewer.can(p), viewer, "viewer {p:?}");
            assert_eq!(Role::Analyst.can(p), analyst, "analyst {p:?}");
            assert_eq!(Role::SocLead.can(p), soc_lead, "soc_lead {p:?}");
            assert_eq!(Role::Admin.can(p), admin, "admin {p:?}");
        }
    }
}
