//! Why an identity command was refused.
//!
//! Every `Display` string is user-facing: the HTTP layer puts it verbatim into a
//! `{"detail": …}` body, so no message ever names internals (hashes, ids, streams).

use super::password::PasswordPolicyViolation;

/// A refused identity command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The organization name is out of bounds or yields no usable slug; carries the reason.
    #[error("{0}")]
    InvalidOrganizationName(String),
    /// The password breaks the policy; the message says which rule.
    #[error("{0}")]
    WeakPassword(PasswordPolicyViolation),
    #[error("Invalid email address")]
    InvalidEmail,
    #[error("Invalid role")]
    InvalidRole,
    #[error("Full name must be between 1 and 255 characters")]
    InvalidName,
    #[error("Already exists")]
    AlreadyExists,
    #[error("Not found")]
    NotFound,
    #[error("User is not locked")]
    NotLocked,
    #[error("Lock must end in the future")]
    InvalidLockDuration,
    #[error("Invalid or expired invitation")]
    InvalidInvitation,
    #[error("Session has been revoked")]
    SessionRevoked,
    #[error("Session has expired; sign in again")]
    SessionExpired,
    #[error("Invalid token")]
    InvalidToken,
    /// One message for every refused reset link, whatever the reason.
    #[error("Invalid or expired reset link")]
    ResetRefused(super::password_reset::ResetRefusal),
    #[error("The organization's last active admin cannot be demoted or deactivated")]
    LastAdmin,
    #[error("A second factor is already enrolled")]
    SecondFactorAlreadyEnrolled,
    #[error("No second factor is enrolled")]
    SecondFactorNotEnrolled,
    #[error("Invalid code")]
    InvalidSecondFactorCode,
    #[error("Sign-in expired or too many wrong codes; enter the password again")]
    InvalidChallenge,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_should_show_the_password_rule_as_the_message() {
        let e = IdentityError::WeakPassword(PasswordPolicyViolation::TooShort);
        assert_eq!(e.to_string(), "Password must be at least 12 characters long");
    }

    #[test]
    fn it_should_show_the_invitation_message_users_expect() {
        assert_eq!(IdentityError::InvalidInvitation.to_string(), "Invalid or expired invitation");
    }

    #[test]
    fn it_should_not_leak_internals_in_any_message() {
        let all = [
            IdentityError::InvalidOrganizationName("Organization name must be between 2 and 255 characters".into()),
            IdentityError::WeakPassword(PasswordPolicyViolation::NoDigit),
            IdentityError::InvalidEmail,
            IdentityError::InvalidRole,
            IdentityError::InvalidName,
            IdentityError::AlreadyExists,
            IdentityError::NotFound,
            IdentityError::NotLocked,
            IdentityError::InvalidLockDuration,
            IdentityError::InvalidInvitation,
            IdentityError::SessionRevoked,
            IdentityError::SessionExpired,
            IdentityError::InvalidToken,
        ];
        for e in all {
            let m = e.to_string();
            assert!(!m.is_empty());
            for word in ["hash", "stream", "uuid", "jti", "sql"] {
                assert!(!m.to_lowercase().contains(word), "{m:?} mentions {word}");
            }
        }
    }
}
