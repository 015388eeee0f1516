//! The `Organization` aggregate: a tenant's registration.
//!
//! Name bounds and the derived slug are checked here; that no other tenant already holds the
//! slug is enforced by the store (a unique registry), not by this aggregate.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{IdentityError, OrgName, Slug};
use crate::aggregate::Aggregate;
use crate::ids::OrgId;
use crate::Event;

/// Lifecycle status recorded at registration (`"active"` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrganizationStatus {
    Active,
}

/// Event: a tenant was registered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrganizationRegistered {
    pub org_id: OrgId,
    pub name: String,
    pub slug: Slug,
    pub status: OrganizationStatus,
    pub created_at: DateTime<Utc>,
}

/// Command: register a new organization under a fresh id.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisterOrganization {
    pub org_id: OrgId,
    /// Raw name as typed; trimmed and validated by `decide`.
    pub name: String,
    pub now: DateTime<Utc>,
}

/// State of one `org-<uuid>` stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Organization {
    pub registered: bool,
    pub org_id: OrgId,
    pub name: String,
    pub slug: Option<Slug>,
    pub created_at: Option<DateTime<Utc>>,
}

impl Default for Organization {
    fn default() -> Self {
        Organization {
            registered: false,
            org_id: OrgId(Uuid::nil()),
            name: String::new(),
            slug: None,
            created_at: None,
        }
    }
}

impl Aggregate for Organization {
    type Command = RegisterOrganization;
    type Error = IdentityError;

    fn apply(&mut self, event: &Event) {
        if let Event::OrganizationRegistered(e) = event {
            self.registered = true;
            self.org_id = e.org_id;
            self.name = e.name.clone();
            self.slug = Some(e.slug.clone());
            self.created_at = Some(e.created_at);
        }
    }

    fn decide(&self, command: &RegisterOrganization) -> Result<Vec<Event>, IdentityError> {
        if self.registered {
            return Err(IdentityError::AlreadyExists);
        }
        let name = OrgName::parse(&command.name)?;
        let slug = Slug::from_name(name.as_str())?;
        Ok(vec![Event::OrganizationRegistered(OrganizationRegistered {
            org_id: command.org_id,
            name: name.into_string(),
            slug,
            status: OrganizationStatus::Active,
            created_at: command.now,
        })])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::spec::{at, given};

    fn org_id() -> OrgId {
        OrgId(Uuid::from_u128(1))
    }

    fn register(name: &str) -> RegisterOrganization {
        RegisterOrganization { org_id: org_id(), name: name.into(), now: at(0) }
    }

    fn registered(name: &str, slug: &str) -> Event {
        Event::OrganizationRegistered(OrganizationRegistered {
            org_id: org_id(),
            name: name.into(),
            slug: Slug::from_name(slug).unwrap(),
            status: OrganizationStatus::Active,
            created_at: at(0),
        })
    }

    #[test]
    fn it_should_register_with_a_trimmed_name_and_derived_slug() {
        given::<Organization>(vec![]).when(register("  Test Corp ")).then(vec![registered("Test Corp", "test-corp")]);
    }

    #[test]
    fn it_should_record_status_active_on_the_wire() {
        let (_, payload) = registered("Test Corp", "test-corp").to_parts();
        assert_eq!(payload["status"], "active");
        assert_eq!(payload["slug"], "test-corp");
    }

    #[test]
    fn it_should_not_register_twice() {
        given::<Organization>(vec![registered("Test Corp", "test-corp")])
            .when(register("Other Corp"))
            .then_err(IdentityError::AlreadyExists);
    }

    #[test]
    fn it_should_not_register_a_name_out_of_bounds() {
        given::<Organization>(vec![]).when(register(" x ")).then_err(IdentityError::InvalidOrganizationName(
            "Organization name must be between 2 and 255 characters".into(),
        ));
    }

    #[test]
    fn it_should_not_register_a_name_without_a_usable_slug() {
        let err = given::<Organization>(vec![]).when(register("!!!")).err();
        assert!(matches!(err, IdentityError::InvalidOrganizationName(_)));
    }

    #[test]
    fn it_should_remember_the_registration() {
        let org = Organization::from_history(&[registered("Test Corp", "test-corp")]);
        assert!(org.registered);
        assert_eq!(org.slug.unwrap().as_str(), "test-corp");
        assert_eq!(org.created_at, Some(at(0)));
    }
}
