//! E-mail addresses, normalized so equality is case-insensitive.
//!
//! Only the shape `local@domain.tld` is checked; deliverability is not this crate's concern.

use serde::{Deserialize, Serialize};

use super::IdentityError;

/// Longest accepted address (RFC 5321 path limit).
pub const MAX_EMAIL_LEN: usize = 254;

/// A trimmed, lower-cased address of the form `local@domain.tld`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Email(pub(crate) String);

impl Email {
    pub fn parse(raw: &str) -> Result<Email, IdentityError> {
        let email = raw.trim().to_lowercase();
        if email.chars().count() > MAX_EMAIL_LEN || email.chars().any(char::is_whitespace) {
            return Err(IdentityError::InvalidEmail);
        }
        let Some((local, domain)) = email.split_once('@') else {
            return Err(IdentityError::InvalidEmail);
        };
        let domain_ok = domain.contains('.') && domain.split('.').all(|label| !label.is_empty());
        if local.is_empty() || domain.contains('@') || !domain_ok {
            return Err(IdentityError::InvalidEmail);
        }
        Ok(Email(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl std::fmt::Display for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_should_trim_and_lowercase() {
        assert_eq!(Email::parse("  Alice@Example.COM ").unwrap().as_str(), "alice@example.com");
    }

    #[test]
    fn it_should_compare_case_insensitively() {
        assert_eq!(Email::parse("BOB@corp.io").unwrap(), Email::parse("bob@Corp.IO").unwrap());
    }

    #[test]
    fn it_should_not_accept_a_missing_at() {
        assert_eq!(Email::parse("alice.example.com"), Err(IdentityError::InvalidEmail));
    }

    #[test]
    fn it_should_not_accept_two_ats() {
        assert_eq!(Email::parse("a@b@example.com"), Err(IdentityError::InvalidEmail));
    }

    #[test]
    fn it_should_not_accept_empty_parts() {
        assert_eq!(Email::parse("@example.com"), Err(IdentityError::InvalidEmail));
        assert_eq!(Email::parse("alice@"), Err(IdentityError::InvalidEmail));
        assert_eq!(Email::parse(""), Err(IdentityError::InvalidEmail));
    }

    #[test]
    fn it_should_not_accept_a_domain_without_a_dot() {
        assert_eq!(Email::parse("alice@localhost"), Err(IdentityError::InvalidEmail));
        assert_eq!(Email::parse("alice@example."), Err(IdentityError::InvalidEmail));
        assert_eq!(Email::parse("alice@.com"), Err(IdentityError::InvalidEmail));
    }

    #[test]
    fn it_should_not_accept_inner_whitespace() {
        assert_eq!(Email::parse("al ice@example.com"), Err(IdentityError::InvalidEmail));
    }

    #[test]
    fn it_should_not_accept_more_than_254_chars() {
        let ok = format!("{}@example.com", "a".repeat(254 - 12));
        assert!(Email::parse(&ok).is_ok());
        let too_long = format!("{}@example.com", "a".repeat(255 - 12));
        assert_eq!(Email::parse(&too_long), Err(IdentityError::InvalidEmail));
    }

    #[test]
    fn it_should_display_the_user_facing_message() {
        assert_eq!(IdentityError::InvalidEmail.to_string(), "Invalid email address");
    }
}
