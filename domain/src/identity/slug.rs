//! Organization names and the URL-safe slug derived from them.
//!
//! The slug is a pure function of the name; its global uniqueness is the store's job.

use serde::{Deserialize, Serialize};

use super::IdentityError;

/// Longest slug kept, in characters (all ASCII).
pub const MAX_SLUG_LEN: usize = 100;
/// Bounds of an organization name, in characters after trimming.
pub const MIN_ORG_NAME_LEN: usize = 2;
pub const MAX_ORG_NAME_LEN: usize = 255;

const ORG_NAME_LENGTH_MESSAGE: &str = "Organization name must be between 2 and 255 characters";
const ORG_NAME_NO_SLUG_MESSAGE: &str = "Organization name must contain at least one letter or digit";

/// A validated organization name: trimmed, 2–255 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrgName(String);

impl OrgName {
    pub fn parse(raw: &str) -> Result<OrgName, IdentityError> {
        let name = raw.trim();
        let len = name.chars().count();
        if !(MIN_ORG_NAME_LEN..=MAX_ORG_NAME_LEN).contains(&len) {
            return Err(IdentityError::InvalidOrganizationName(ORG_NAME_LENGTH_MESSAGE.to_owned()));
        }
        Ok(OrgName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl std::fmt::Display for OrgName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Lower-case `a-z0-9` words joined by single dashes, at most 100 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Slug(String);

impl Slug {
    /// `"Test Corp"` → `"test-corp"`. Fails when nothing usable is left.
    pub fn from_name(name: &str) -> Result<Slug, IdentityError> {
        let mut slug = String::with_capacity(name.len());
        let mut pending_dash = false;
        for c in name.to_lowercase().chars() {
            match c {
                'a'..='z' | '0'..='9' => {
                    if pending_dash && !slug.is_empty() {
                        slug.push('-');
                    }
                    pending_dash = false;
                    slug.push(c);
                }
                ' ' | '-' => pending_dash = true,
                _ => {}
            }
        }
        // Only ASCII is left, so byte truncation is character truncation.
        slug.truncate(MAX_SLUG_LEN);
        let slug = slug.trim_end_matches('-');
        if slug.is_empty() {
            return Err(IdentityError::InvalidOrganizationName(ORG_NAME_NO_SLUG_MESSAGE.to_owned()));
        }
        Ok(Slug(slug.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Slug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slug(name: &str) -> String {
        Slug::from_name(name).unwrap().as_str().to_owned()
    }

    #[test]
    fn it_should_lowercase_and_dash_words() {
        assert_eq!(slug("Test Corp"), "test-corp");
    }

    #[test]
    fn it_should_drop_characters_outside_the_alphabet() {
        assert_eq!(slug("Acme, Inc. (EU)"), "acme-inc-eu");
        assert_eq!(slug("Café_Müller"), "cafmller");
    }

    #[test]
    fn it_should_collapse_runs_of_spaces_and_dashes() {
        assert_eq!(slug("a  -- b - - c"), "a-b-c");
    }

    #[test]
    fn it_should_trim_leading_and_trailing_dashes() {
        assert_eq!(slug(" --Blue Team-- "), "blue-team");
    }

    #[test]
    fn it_should_truncate_to_100_chars_and_trim_a_trailing_dash() {
        let long = format!("{} b", "a".repeat(99));
        assert_eq!(slug(&long), "a".repeat(99));
        assert_eq!(slug(&"x".repeat(150)).len(), MAX_SLUG_LEN);
    }

    #[test]
    fn it_should_not_accept_a_name_without_letters_or_digits() {
        assert!(matches!(Slug::from_name("!!! ---"), Err(IdentityError::InvalidOrganizationName(_))));
        assert!(matches!(Slug::from_name(""), Err(IdentityError::InvalidOrganizationName(_))));
    }

    #[test]
    fn it_should_trim_an_org_name() {
        assert_eq!(OrgName::parse("  Test Corp ").unwrap().as_str(), "Test Corp");
    }

    #[test]
    fn it_should_not_accept_an_org_name_shorter_than_2_chars() {
        let err = OrgName::parse("  A ").unwrap_err();
        assert_eq!(err.to_string(), "Organization name must be between 2 and 255 characters");
    }

    #[test]
    fn it_should_not_accept_an_org_name_longer_than_255_chars() {
        assert!(OrgName::parse(&"é".repeat(255)).is_ok());
        assert_eq!(
            OrgName::parse(&"a".repeat(256)),
            Err(IdentityError::InvalidOrganizationName(ORG_NAME_LENGTH_MESSAGE.into()))
        );
    }
}
