//! Password hashing with argon2id (OWASP parameters: m = 19 MiB, t = 2, p = 1), always on the
//! blocking pool so a burst of logins never stalls the async workers.

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("password hashing task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Hashes and verifies passwords. Holds a hash of a random password so that an unknown
/// e-mail address costs exactly the argon2 work of a wrong password.
#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    dummy_hash: Arc<String>,
    /// At most this many hashes run at once, leaving a core for everything else: a login
    /// flood queues here instead of starving the other requests of CPU.
    permits: Arc<tokio::sync::Semaphore>,
}

impl PasswordHasher {
    /// OWASP's argon2id recommendation.
    pub fn owasp() -> Result<PasswordHasher, PasswordError> {
        let params = Params::new(19 * 1024, 2, 1, None).map_err(|e| PasswordError::Hash(e.to_string()))?;
        Self::with_params(params)
    }

    pub fn with_params(params: Params) -> Result<PasswordHasher, PasswordError> {
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let random = uuid::Uuid::new_v4().to_string();
        let salt = SaltString::generate(&mut OsRng);
        let dummy =
            argon.hash_password(random.as_bytes(), &salt).map_err(|e| PasswordError::Hash(e.to_string()))?.to_string();
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let permits = Arc::new(tokio::sync::Semaphore::new(cores.saturating_sub(1).max(1)));
        Ok(PasswordHasher { params, dummy_hash: Arc::new(dummy), permits })
    }

    fn argon(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
    pub async fn hash(&self, password: SecretString) -> Result<String, PasswordError> {
        let argon = self.argon();
        let span = tracing::Span::current();
        let _permit = self.permits.acquire().await.expect("semaphore never closed");
        tokio::task::spawn_blocking(move || {
            let _guard = span.enter();
            let salt = SaltString::generate(&mut OsRng);
            argon
                .hash_password(password.expose_secret().as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| PasswordError::Hash(e.to_string()))
        })
        .await?
    }

    /// Verify against a stored hash; `None` (unknown user, invitation pending) is checked
    /// against the dummy hash and always fails, at the same cost.
    pub async fn verify(&self, password: SecretString, stored: Option<String>) -> Result<bool, PasswordError> {
        let known = stored.is_some();
        let phc = stored.unwrap_or_else(|| self.dummy_hash.as_str().to_owned());
        let argon = self.argon();
        let span = tracing::Span::current();
        let _permit = self.permits.acquire().await.expect("semaphore never closed");
        let ok = tokio::task::spawn_blocking(move || {
            let _guard = span.enter();
            match PasswordHash::new(&phc) {
                Ok(parsed) => argon.verify_password(password.expose_secret().as_bytes(), &parsed).is_ok(),
                Err(_) => false,
            }
        })
        .await?;
        Ok(ok && known)
    }
}
