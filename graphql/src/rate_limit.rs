//! Per-client rate limits for the anonymous routes that cost the server real work: login
//! (argon2, and lockout could otherwise be driven at full speed), register and accept-invite
//! (argon2), refresh (token verification and two stream reads).
//!
//! Each limiter is a token bucket per client address: `per_minute` requests of burst, refilled
//! at `per_minute` a minute. The key is the address [`crate::extract::client_addr`] trusts,
//! IPv4 as is and IPv6 by its /64 (one subscriber's allocation: keying by the whole address
//! would hand anyone with a /64 2^64 buckets). The store is bounded: buckets that have refilled
//! completely are indistinguishable from new ones and are pruned (each minute, and whenever the
//! store is full); when it is still full of clients that are actively spending, newcomers share
//! one overflow bucket instead of growing the store, so memory stays bounded under an attack
//! from many addresses and the clients already tracked keep their own budgets.
//!
//! Time comes from the identity service's [`Clock`], so tests move it instead of waiting.

use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;
use xdr_commands::auth::Clock;

/// Default bound on the clients one limiter tracks (about 80 bytes each).
pub const DEFAULT_MAX_CLIENTS: usize = 100_000;

/// A full store prunes at most this often, so a flood of new addresses costs one scan a
/// second, not one per request.
const FULL_PRUNE_INTERVAL: Duration = Duration::seconds(1);
/// Even when not full, fully refilled buckets are dropped this often.
const PRUNE_INTERVAL: Duration = Duration::minutes(1);

pub struct ClientLimiter {
    per_minute: u32,
    max_clients: usize,
    clock: Clock,
    state: Mutex<Buckets>,
}

struct Buckets {
    by_client: HashMap<IpAddr, Bucket>,
    /// Shared by the clients that arrive while the store is full of active ones.
    overflow: Bucket,
    last_prune: DateTime<Utc>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: DateTime<Utc>,
}

impl Bucket {
    fn full(capacity: f64, now: DateTime<Utc>) -> Bucket {
        Bucket { tokens: capacity, at: now }
    }

    fn refill(&mut self, capacity: f64, now: DateTime<Utc>) {
        let elapsed_ms = (now - self.at).num_milliseconds().max(0) as f64;
        self.tokens = (self.tokens + elapsed_ms * capacity / 60_000.0).min(capacity);
        self.at = now;
    }

    fn take(&mut self, capacity: f64, now: DateTime<Utc>) -> bool {
        self.refill(capacity, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether the bucket has refilled completely by `now`, so forgetting it changes nothing.
    fn is_full_at(&self, capacity: f64, now: DateTime<Utc>) -> bool {
        let mut b = *self;
        b.refill(capacity, now);
        b.tokens >= capacity
    }
}

impl ClientLimiter {
    /// `per_minute` requests per client (at least 1), at most `max_clients` clients tracked.
    pub fn per_minute(per_minute: u32, max_clients: usize, clock: Clock) -> ClientLimiter {
        let per_minute = per_minute.max(1);
        let now = clock.now();
        ClientLimiter {
            per_minute,
            max_clients: max_clients.max(1),
            state: Mutex::new(Buckets {
                by_client: HashMap::new(),
                overflow: Bucket::full(f64::from(per_minute), now),
                last_prune: now,
            }),
            clock,
        }
    }

    /// Spend one request of `client` (an address as [`crate::extract::client_ip`] gives it;
    /// anything unparseable counts as one unknown client). `false`: over the limit.
    pub fn check(&self, client: &str) -> bool {
        let key = limiter_key(client.parse().ok());
        let capacity = f64::from(self.per_minute);
        let now = self.clock.now();
        let mut state = self.state.lock().expect("rate limiter lock");
        let due = now - state.last_prune >= PRUNE_INTERVAL;
        let full = state.by_client.len() >= self.max_clients && !state.by_client.contains_key(&key);
        if due || (full && now - state.last_prune >= FULL_PRUNE_INTERVAL) {
            state.by_client.retain(|_, bucket| !bucket.is_full_at(capacity, now));
            state.last_prune = now;
        }
        if state.by_client.len() >= self.max_clients && !state.by_client.contains_key(&key) {
            return state.overflow.take(capacity, now);
        }
        state.by_client.entry(key).or_insert_with(|| Bucket::full(capacity, now)).take(capacity, now)
    }

    /// Clients tracked right now (a gauge on `/metrics`).
    pub fn tracked_clients(&self) -> usize {
        self.state.lock().expect("rate limiter lock").by_client.len()
    }
}

/// The bucket an address falls into: IPv4 (IPv4-mapped IPv6 included) whole, IPv6 by /64.
impl ClientLimiter {
    /// Spend one request of a *name* (an e-mail address a request targets) instead of a client.
    /// A name is keyed as an address in the documentation prefix `2001:db8::/32`, which no
    /// real client has, so names and clients can share one limiter without sharing buckets.
    pub fn check_name(&self, name: &str) -> bool {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        name.hash(&mut hasher);
        let h = hasher.finish();
        let key = Ipv6Addr::new(0x2001, 0x0db8, (h >> 48) as u16, (h >> 32) as u16, 0, 0, 0, 0);
        self.check(&key.to_string())
    }
}

fn limiter_key(addr: Option<IpAddr>) -> IpAddr {
    match addr.map(|a| a.to_canonical()) {
        Some(IpAddr::V6(v6)) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        Some(v4) => v4,
        None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock() -> Clock {
        Clock::manual("2026-01-01T00:00:00Z".parse().unwrap())
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64_and_ipv4_mapped_as_ipv4() {
        assert_eq!(limiter_key("2001:db8:1:2:aaaa::1".parse().ok()), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
        assert_ne!(limiter_key("2001:db8:1:2::1".parse().ok()), limiter_key("2001:db8:1:3::1".parse().ok()));
        assert_eq!(limiter_key("::ffff:10.0.0.1".parse().ok()), "10.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn a_bucket_refills_at_the_configured_rate() {
        let clock = clock();
        let limiter = ClientLimiter::per_minute(2, 10, clock.clone());
        assert!(limiter.check("10.0.0.1") && limiter.check("10.0.0.1"));
        assert!(!limiter.check("10.0.0.1"));
        assert!(limiter.check("10.0.0.2"), "another client has its own budget");
        clock.advance(Duration::seconds(30));
        assert!(limiter.check("10.0.0.1"), "one request back after half a minute");
        assert!(!limiter.check("10.0.0.1"));
    }

    #[test]
    fn a_full_store_sends_newcomers_to_one_shared_bucket_and_prunes_refilled_clients() {
        let clock = clock();
        let limiter = ClientLimiter::per_minute(3, 4, clock.clone());
        for i in 0..4 {
            assert!(limiter.check(&format!("10.0.0.{i}")));
        }
        // Full of active clients: the newcomers share one bucket of three.
        let admitted = (10..20).filter(|i| limiter.check(&format!("10.0.0.{i}"))).count();
        assert_eq!((admitted, limiter.tracked_clients()), (3, 4));
        clock.advance(Duration::minutes(2));
        assert!(limiter.check("10.0.1.1"));
        assert_eq!(limiter.tracked_clients(), 1, "refilled clients were pruned");
    }
}
