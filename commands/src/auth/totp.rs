//! TOTP (RFC 6238 over RFC 4226 HOTP, HMAC-SHA1, 6 digits, 30 s) and the sealing of its
//! secrets at rest. Both use `ring`, which the TLS stack already builds: no new crate.
//!
//! Sealed secrets are ChaCha20-Poly1305 under a key derived with HKDF-SHA256 from
//! `ENCRYPTION_KEY`, bound to the user id (as associated data, so a sealed secret copied onto
//! another user's stream does not open). The text form `v1.<key id>.<hex nonce‖ciphertext>`
//! names the key that sealed it, so a rotation can keep opening old secrets with the previous
//! key (docs/OPERATIONS.md, "Rotating ENCRYPTION_KEY").

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::{hkdf, hmac};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// Seconds per time step.
pub const STEP_SECONDS: i64 = 30;
/// Steps accepted either side of now (clock drift between phone and server).
pub const DRIFT_STEPS: u64 = 1;
/// Bytes of a new secret (160 bits, as RFC 4226 recommends).
pub const SECRET_BYTES: usize = 20;
const ISSUER: &str = "Mini-XDR";
const HKDF_INFO: &[u8] = b"mini-xdr totp secret v1";

/// The time step of a Unix time.
pub fn step_at(unix_seconds: i64) -> u64 {
    u64::try_from(unix_seconds.max(0) / STEP_SECONDS).unwrap_or(0)
}

/// The 6-digit HOTP code of `secret` at `counter`.
pub fn code_at(secret: &[u8], counter: u64) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let tag = hmac::sign(&key, &counter.to_be_bytes());
    let mac = tag.as_ref();
    let offset = usize::from(mac[mac.len() - 1] & 0x0f);
    let binary = u32::from_be_bytes([mac[offset] & 0x7f, mac[offset + 1], mac[offset + 2], mac[offset + 3]]);
    format!("{:06}", binary % 1_000_000)
}

/// The step within the drift window around `unix_seconds` whose code `code` is, if any (the
/// latest one when several match). Every step is computed, so timing says nothing.
pub fn matching_step(secret: &[u8], code: &str, unix_seconds: i64) -> Option<u64> {
    let code = code.trim();
    let now = step_at(unix_seconds);
    let mut found = None;
    for step in now.saturating_sub(DRIFT_STEPS)..=now + DRIFT_STEPS {
        let expected = code_at(secret, step);
        let equal = expected.len() == code.len()
            && expected.bytes().zip(code.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
        if equal {
            found = Some(step);
        }
    }
    found
}

/// RFC 4648 base32 without padding, as authenticator apps read it.
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// The `otpauth://` URI an authenticator app enrols from (shown as text or a QR code).
pub fn otpauth_uri(account: &str, secret: &[u8]) -> String {
    format!(
        "otpauth://totp/{ISSUER}:{}?secret={}&issuer={ISSUER}&algorithm=SHA1&digits=6&period={STEP_SECONDS}",
        percent_encode(account),
        base32(secret)
    )
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => char::from(b).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// A fresh recovery code: sixteen base32 characters in four groups (`abcd-efgh-ijkl-mnop`,
/// 80 bits, so its unsalted SHA-256 cannot be searched offline).
pub fn recovery_code() -> String {
    let text = base32(&rand::random::<[u8; 10]>()).to_lowercase();
    format!("{}-{}-{}-{}", &text[..4], &text[4..8], &text[8..12], &text[12..16])
}

/// The stored digest of a recovery code, however it was typed (case, dashes, spaces).
pub fn recovery_code_hash(code: &str) -> String {
    let normal: String = code.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect();
    hex::encode(Sha256::digest(normal.as_bytes()))
}

/// Why a sealed secret could not be opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("no ENCRYPTION_KEY is configured: second factors are unavailable")]
    NoKey,
    #[error("sealed by a key that is not configured (key id {0})")]
    UnknownKey(String),
    #[error("sealed secret is corrupt or was not sealed for this user")]
    Corrupt,
}

struct SealKey {
    id: String,
    key: LessSafeKey,
}

/// Seals and opens second-factor secrets: the current key seals, every configured key opens.
#[derive(Clone, Default)]
pub struct SecretSealer {
    keys: std::sync::Arc<Vec<SealKey>>,
}

impl std::fmt::Debug for SecretSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        write!(f, "SecretSealer(keys {ids:?})")
    }
}

impl SecretSealer {
    /// `current` seals; `previous` keys (from a rotation) still open what they sealed.
    pub fn new(current: &SecretString, previous: &[SecretString]) -> SecretSealer {
        let keys = std::iter::once(current).chain(previous).map(|k| derive(k.expose_secret().as_bytes())).collect();
        SecretSealer { keys: std::sync::Arc::new(keys) }
    }

    pub fn is_configured(&self) -> bool {
        !self.keys.is_empty()
    }

    /// The id of the key that seals new secrets.
    pub fn current_key_id(&self) -> Option<&str> {
        self.keys.first().map(|k| k.id.as_str())
    }

    pub fn seal(&self, secret: &[u8], bound_to: &[u8]) -> Result<String, SealError> {
        let key = self.keys.first().ok_or(SealError::NoKey)?;
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let mut in_out = secret.to_vec();
        key.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce_bytes), Aad::from(bound_to), &mut in_out)
            .map_err(|_| SealError::Corrupt)?;
        let mut body = nonce_bytes.to_vec();
        body.extend(in_out);
        Ok(format!("v1.{}.{}", key.id, hex::encode(body)))
    }

    pub fn open(&self, sealed: &str, bound_to: &[u8]) -> Result<Vec<u8>, SealError> {
        if self.keys.is_empty() {
            return Err(SealError::NoKey);
        }
        let mut parts = sealed.splitn(3, '.');
        let (Some("v1"), Some(id), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(SealError::Corrupt);
        };
        let key = self.keys.iter().find(|k| k.id == id).ok_or_else(|| SealError::UnknownKey(id.to_owned()))?;
        let body = hex::decode(body).map_err(|_| SealError::Corrupt)?;
        if body.len() < NONCE_LEN {
            return Err(SealError::Corrupt);
        }
        let (nonce, ciphertext) = body.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Corrupt)?;
        let mut in_out = ciphertext.to_vec();
        let plain = key.key.open_in_place(nonce, Aad::from(bound_to), &mut in_out).map_err(|_| SealError::Corrupt)?;
        Ok(plain.to_vec())
    }
}

fn derive(ikm: &[u8]) -> SealKey {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"mini-xdr").extract(ikm);
    let okm = prk.expand(&[HKDF_INFO], &CHACHA20_POLY1305).expect("HKDF output of one key length");
    let key = LessSafeKey::new(UnboundKey::from(okm));
    // The id names the key without revealing it: a digest of a separate derivation.
    let id = hex::encode(&Sha256::digest([b"mini-xdr key id:".as_slice(), ikm].concat())[..4]);
    SealKey { id, key }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 rows (8-digit codes there; ours are their last 6 digits).
    #[test]
    fn it_should_match_the_rfc_6238_test_vectors() {
        let secret = b"12345678901234567890";
        for (time, eight_digits) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
        ] {
            assert_eq!(code_at(secret, step_at(time)), eight_digits[2..], "t = {time}");
        }
    }

    #[test]
    fn it_should_accept_one_step_of_drift_and_no_more() {
        let secret = b"12345678901234567890";
        let t = 1_111_111_111;
        let code = code_at(secret, step_at(t));
        assert_eq!(matching_step(secret, &code, t), Some(step_at(t)));
        assert_eq!(matching_step(secret, &code, t + STEP_SECONDS), Some(step_at(t)));
        assert_eq!(matching_step(secret, &code, t + 2 * STEP_SECONDS), None);
        assert_eq!(matching_step(secret, "000000x", t), None);
    }

    #[test]
    fn it_should_encode_base32_as_rfc_4648() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(b"12345678901234567890"), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    }

    #[test]
    fn it_should_seal_bound_to_the_user_and_open_with_a_previous_key_after_rotation() {
        let old = SecretSealer::new(&SecretString::from("old-key-0123456789"), &[]);
        let sealed = old.seal(b"secret", b"user-1").unwrap();
        assert!(!sealed.contains(&hex::encode(b"secret")));
        assert_eq!(old.open(&sealed, b"user-1").unwrap(), b"secret");
        assert_eq!(old.open(&sealed, b"user-2"), Err(SealError::Corrupt), "bound to its user");
        let rotated =
            SecretSealer::new(&SecretString::from("new-key-9876543210"), &[SecretString::from("old-key-0123456789")]);
        assert_eq!(rotated.open(&sealed, b"user-1").unwrap(), b"secret");
        assert_ne!(rotated.current_key_id(), old.current_key_id());
        let fresh = SecretSealer::new(&SecretString::from("new-key-9876543210"), &[]);
        assert!(matches!(fresh.open(&sealed, b"user-1"), Err(SealError::UnknownKey(_))));
        assert_eq!(SecretSealer::default().seal(b"x", b"u"), Err(SealError::NoKey));
    }

    #[test]
    fn it_should_hash_recovery_codes_however_they_are_typed() {
        let code = recovery_code();
        assert_eq!(code.len(), 19);
        assert_eq!(recovery_code_hash(&code), recovery_code_hash(&code.to_uppercase().replace('-', " ")));
    }
}
