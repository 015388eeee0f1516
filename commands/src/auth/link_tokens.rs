//! Tokens of mailed links (invitations, password resets), derived, not stored.
//!
//! A link's token is `HMAC-SHA256(K, purpose ‖ ids)` with `K` derived from `JWT_SECRET_KEY`,
//! so the mail sender can rebuild the link from the event alone while the log holds only the
//! token's SHA-256 digest: whoever reads the log (an auditor, a backup) cannot use a link.
//! Rotating `JWT_SECRET_KEY` invalidates outstanding links; mails not yet sent then fail as
//! "link cannot be rebuilt" instead of carrying a dead link (docs/ARCHITECTURE.md, "Mail").

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use uuid::Uuid;
use xdr_domain::ids::UserId;

type HmacSha256 = Hmac<Sha256>;

/// Derives link tokens. Cheap to clone; holds only the derived key.
#[derive(Clone)]
pub struct LinkTokens {
    key: [u8; 32],
}

impl std::fmt::Debug for LinkTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkTokens(..)")
    }
}

impl LinkTokens {
    /// A key of its own, so a link token can never double as a JWT signature or vice versa.
    pub fn new(secret: &SecretString) -> LinkTokens {
        let mut mac = HmacSha256::new_from_slice(secret.expose_secret().as_bytes()).expect("HMAC takes any key length");
        mac.update(b"mini-xdr link tokens v1");
        LinkTokens { key: mac.finalize().into_bytes().into() }
    }

    fn mac(&self, parts: &[&[u8]]) -> String {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        for part in parts {
            mac.update(&(part.len() as u32).to_be_bytes());
            mac.update(part);
        }
        hex::encode(mac.finalize().into_bytes())
    }

    /// `<user>.<mac>`: the invitation of `user` that expires at `expires_at` (each invitation
    /// has its own expiry, so each its own token).
    pub fn invitation(&self, user: UserId, expires_at: DateTime<Utc>) -> String {
        let mac = self.mac(&[b"invitation", user.0.as_bytes(), &expires_at.timestamp().to_be_bytes()]);
        format!("{}.{mac}", user.0.simple())
    }

    /// `<user>.<reset>.<mac>`: the reset link `reset_id` of `user`.
    pub fn password_reset(&self, user: UserId, reset_id: Uuid) -> String {
        let mac = self.mac(&[b"password-reset", user.0.as_bytes(), reset_id.as_bytes()]);
        format!("{}.{}.{mac}", user.0.simple(), reset_id.simple())
    }

    /// The user and reset ids a reset token names (not yet whether it is genuine: the digest
    /// recorded in the log decides that).
    pub fn parse_reset(token: &str) -> Option<(UserId, Uuid)> {
        let mut parts = token.split('.');
        let user = Uuid::parse_str(parts.next()?).ok()?;
        let reset = Uuid::parse_str(parts.next()?).ok()?;
        parts.next()?;
        parts.next().is_none().then_some((UserId(user), reset))
    }
}

/// The digest the log records for a token.
pub fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links(secret: &str) -> LinkTokens {
        LinkTokens::new(&SecretString::from(secret))
    }

    #[test]
    fn tokens_are_deterministic_per_key_and_differ_by_purpose_and_id() {
        let (user, reset) = (UserId(Uuid::from_u128(1)), Uuid::from_u128(2));
        let a = links("0123456789abcdef0123456789abcdef");
        assert_eq!(a.password_reset(user, reset), a.password_reset(user, reset));
        assert_ne!(a.password_reset(user, reset), a.password_reset(user, Uuid::from_u128(3)));
        assert_ne!(
            a.password_reset(user, reset),
            links("another key of thirty-two chars!!").password_reset(user, reset)
        );
        assert_eq!(LinkTokens::parse_reset(&a.password_reset(user, reset)), Some((user, reset)));
        let now = DateTime::<Utc>::UNIX_EPOCH;
        assert!(a.invitation(user, now).starts_with(&user.0.simple().to_string()));
        assert_ne!(a.invitation(user, now), a.invitation(user, now + chrono::Duration::seconds(1)));
    }

    #[test]
    fn malformed_reset_tokens_name_nothing() {
        for bad in ["", "x", "a.b.c", &format!("{}.{}", Uuid::nil().simple(), Uuid::nil().simple())] {
            assert_eq!(LinkTokens::parse_reset(bad), None, "{bad}");
        }
    }
}
