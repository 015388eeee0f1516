//! Per-client-IP rate limit for login, so lockout cannot be used to lock everybody out
//! quickly and passwords cannot be sprayed at full speed from one address.

use governor::clock::DefaultClock;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use std::num::NonZeroU32;
use std::sync::Arc;

#[derive(Clone)]
pub struct LoginLimiter {
    limiter: Arc<RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock>>,
}

impl LoginLimiter {
    /// `per_minute` attempts per client address, with a burst of the same size.
    pub fn per_minute(per_minute: u32) -> LoginLimiter {
        let n = NonZeroU32::new(per_minute.max(1)).expect("non-zero");
        LoginLimiter { limiter: Arc::new(RateLimiter::keyed(Quota::per_minute(n))) }
    }

    pub fn check(&self, client: &str) -> bool {
        self.limiter.check_key(&client.to_owned()).is_ok()
    }
}
