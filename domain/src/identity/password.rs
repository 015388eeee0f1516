//! The password policy, checked on the plaintext before the handler hashes it.
//!
//! Rules are checked in a fixed order and the first broken one is reported, so a user fixes
//! one thing at a time. Hashing and verification live outside this crate.

use super::IdentityError;

/// Shortest accepted password, in characters.
pub const MIN_PASSWORD_LEN: usize = 12;

/// The first policy rule a password breaks. `Display` is the user-facing message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasswordPolicyViolation {
    #[error("Password must be at least 12 characters long")]
    TooShort,
    #[error("Password must contain at least one uppercase letter")]
    NoUppercase,
    #[error("Password must contain at least one lowercase letter")]
    NoLowercase,
    #[error("Password must contain at least one digit")]
    NoDigit,
    #[error("Password must contain at least one special character")]
    NoSpecial,
}

/// A special character: anything printable that is neither a letter, a digit nor whitespace.
fn is_special(c: char) -> bool {
    !c.is_alphanumeric() && !c.is_whitespace() && !c.is_control()
}

/// `Ok(())` when the password satisfies every rule, else the first broken rule.
pub fn check_password_policy(password: &str) -> Result<(), IdentityError> {
    use PasswordPolicyViolation::*;
    let violation = if password.chars().count() < MIN_PASSWORD_LEN {
        Some(TooShort)
    } else if !password.chars().any(char::is_uppercase) {
        Some(NoUppercase)
    } else if !password.chars().any(char::is_lowercase) {
        Some(NoLowercase)
    } else if !password.chars().any(|c| c.is_ascii_digit()) {
        Some(NoDigit)
    } else if !password.chars().any(is_special) {
        Some(NoSpecial)
    } else {
        None
    };
    violation.map_or(Ok(()), |v| Err(IdentityError::WeakPassword(v)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(password: &str) -> String {
        check_password_policy(password).unwrap_err().to_string()
    }

    #[test]
    fn it_should_accept_a_strong_password() {
        assert_eq!(check_password_policy("SecurePass123!@#"), Ok(()));
    }

    #[test]
    fn it_should_not_accept_fewer_than_12_characters() {
        assert_eq!(message("Sh0rt!pass"), "Password must be at least 12 characters long");
    }

    #[test]
    fn it_should_not_accept_a_password_without_uppercase() {
        assert_eq!(message("securepass123!@#"), "Password must contain at least one uppercase letter");
    }

    #[test]
    fn it_should_not_accept_a_password_without_lowercase() {
        assert_eq!(message("SECUREPASS123!@#"), "Password must contain at least one lowercase letter");
    }

    #[test]
    fn it_should_not_accept_a_password_without_a_digit() {
        assert_eq!(message("SecurePassword!@#"), "Password must contain at least one digit");
    }

    #[test]
    fn it_should_not_accept_a_password_without_a_special_character() {
        assert_eq!(message("SecurePass123456"), "Password must contain at least one special character");
        assert_eq!(message("Secure Pass 123456"), "Password must contain at least one special character");
    }

    #[test]
    fn it_should_report_the_first_broken_rule_in_order() {
        assert_eq!(message("abc"), "Password must be at least 12 characters long");
        assert_eq!(message("aaaaaaaaaaaa"), "Password must contain at least one uppercase letter");
        assert_eq!(message("AAAAAAAAAAAA"), "Password must contain at least one lowercase letter");
        assert_eq!(message("AAAAAAaaaaaa"), "Password must contain at least one digit");
    }
}
