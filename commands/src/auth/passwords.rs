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
    /// Every place in the hashing queue is taken: answer at once instead of timing out later.
    #[error("too many sign-ins in progress")]
    Busy,
}

/// Hashes waiting or running at once, per process, before new ones are refused. At ~25 ms a
/// hash on one core, a full queue drains in about a second and a half.
pub const HASH_QUEUE_CAPACITY: usize = 64;

/// Hashes and verifies passwords. Holds a hash of a random password so that an unknown
/// e-mail address costs exactly the argon2 work of a wrong password.
#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    dummy_hash: Arc<String>,
    /// At most this many hashes run at once, leaving a core for everything else: a login
    /// flood queues here instead of starving the other requests of CPU.
    permits: Arc<tokio::sync::Semaphore>,
    /// Places in the queue (waiting or hashing); none left means [`PasswordError::Busy`].
    queue: Arc<tokio::sync::Semaphore>,
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
        Ok(PasswordHasher {
            params,
            dummy_hash: Arc::new(dummy),
            permits,
            queue: Arc::new(tokio::sync::Semaphore::new(HASH_QUEUE_CAPACITY)),
        })
    }

    /// With a queue of `capacity` places instead of [`HASH_QUEUE_CAPACITY`] (tests).
    pub fn with_queue_capacity(mut self, capacity: usize) -> PasswordHasher {
        self.queue = Arc::new(tokio::sync::Semaphore::new(capacity));
        self
    }

    /// Run argon2 work on the blocking pool once a place in the queue and a hashing permit are
    /// held. Both move into the blocking task, so a request that gives up (its future
    /// dropped) frees its place only when its hash has really finished.
    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, PasswordError> {
        let place = self.queue.clone().try_acquire_owned().map_err(|_| PasswordError::Busy)?;
        let permit = self.permits.clone().acquire_owned().await.expect("semaphore never closed");
        let span = tracing::Span::current();
        Ok(tokio::task::spawn_blocking(move || {
            let _guard = span.enter();
            let out = work();
            drop((permit, place));
            out
        })
        .await?)
    }

    fn argon(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
    pub async fn hash(&self, password: SecretString) -> Result<String, PasswordError> {
        let argon = self.argon();
        self.run(move || {
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
        let ok = self
            .run(move || match PasswordHash::new(&phc) {
                Ok(parsed) => argon.verify_password(password.expose_secret().as_bytes(), &parsed).is_ok(),
                Err(_) => false,
            })
            .await?;
        Ok(ok && known)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> PasswordHasher {
        PasswordHasher::with_params(Params::new(8, 1, 1, None).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_and_a_given_up_request_keeps_its_place_until_done() {
        let hasher = cheap().with_queue_capacity(1);
        let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        // Occupy the only place with work that blocks until released, then give up on it.
        let busy = {
            let hasher = hasher.clone();
            tokio::spawn(async move {
                hasher
                    .run(move || {
                        started_tx.send(()).unwrap();
                        release_rx.recv().unwrap();
                    })
                    .await
            })
        };
        tokio::task::spawn_blocking(move || started_rx.recv().unwrap()).await.unwrap();
        busy.abort();
        let _ = busy.await;
        // The abandoned hash is still running, so its place is still taken.
        assert!(matches!(hasher.hash(SecretString::from("x")).await, Err(PasswordError::Busy)));
        release_tx.send(()).unwrap();
        let mut freed = false;
        for _ in 0..200 {
            if hasher.hash(SecretString::from("x")).await.is_ok() {
                freed = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(freed, "the place is freed once the abandoned hash finished");
    }
}
