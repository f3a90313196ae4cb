//! Backs off repeated failed logins per key (an MQTT client id, an API caller's address).
//!
//! Device secrets and API tokens have full entropy, so guessing is hopeless; what repeated
//! failures cost is work: a misconfigured fleet or a hostile client hammering CONNECT or the
//! API spends the server's CPU on hashing and lookups. After [`LimitPolicy::free_failures`]
//! consecutive failures a key is locked out, for [`LimitPolicy::first_lockout`] doubling with
//! every further failure up to [`LimitPolicy::max_lockout`]; attempts while locked out are
//! refused without being checked. A success forgets the key. At most
//! [`LimitPolicy::max_keys`] keys are tracked, so a flood of random keys cannot exhaust
//! memory: stale keys are pruned first, and when the table is still full new keys are not
//! tracked (they get the free failures of an unknown key, nothing more).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How failures turn into lockouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitPolicy {
    /// Consecutive failures allowed before the first lockout.
    pub free_failures: u32,
    /// The first lockout; each further failure doubles it.
    pub first_lockout: Duration,
    /// The longest lockout; also how long a quiet key is remembered.
    pub max_lockout: Duration,
    /// Keys tracked at most.
    pub max_keys: usize,
}

#[derive(Clone, Copy, Debug)]
struct Failures {
    count: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

/// Consecutive failures and lockouts per key; shared by every connection handler.
#[derive(Debug)]
pub struct FailureLimiter<K> {
    policy: LimitPolicy,
    failures: Mutex<HashMap<K, Failures>>,
}

impl<K: Hash + Eq> FailureLimiter<K> {
    /// An empty limiter applying `policy`.
    pub fn new(policy: LimitPolicy) -> FailureLimiter<K> {
        FailureLimiter {
            policy,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Whether attempts for `key` are refused unchecked at `now`.
    pub fn is_locked_out(&self, key: &K, now: Instant) -> bool {
        self.table()
            .get(key)
            .and_then(|failures| failures.locked_until)
            .is_some_and(|until| now < until)
    }

    /// Counts a failed attempt for `key` at `now`, locking it out once past the free ones.
    pub fn failed(&self, key: K, now: Instant) {
        let policy = self.policy;
        let mut table = self.table();
        if table.len() >= policy.max_keys && !table.contains_key(&key) {
            table.retain(|_, failures| now.duration_since(failures.last) < policy.max_lockout);
            if table.len() >= policy.max_keys {
                return;
            }
        }
        let failures = table.entry(key).or_insert(Failures {
            count: 0,
            last: now,
            locked_until: None,
        });
        failures.count = failures.count.saturating_add(1);
        failures.last = now;
        if let Some(beyond) = failures.count.checked_sub(policy.free_failures + 1) {
            let doubled = policy
                .first_lockout
                .checked_mul(1u32.checked_shl(beyond).unwrap_or(u32::MAX))
                .unwrap_or(policy.max_lockout);
            failures.locked_until = Some(now + doubled.min(policy.max_lockout));
        }
    }

    /// Forgets `key`'s failures after a successful attempt.
    pub fn succeeded(&self, key: &K) {
        self.table().remove(key);
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<K, Failures>> {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: LimitPolicy = LimitPolicy {
        free_failures: 3,
        first_lockout: Duration::from_secs(1),
        max_lockout: Duration::from_secs(8),
        max_keys: 2,
    };

    #[test]
    fn lockouts_start_after_the_free_failures_double_and_cap() {
        let limiter = FailureLimiter::new(POLICY);
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        for _ in 0..3 {
            limiter.failed("SL-1", start);
            assert!(!limiter.is_locked_out(&"SL-1", start));
        }
        limiter.failed("SL-1", start);
        assert!(limiter.is_locked_out(&"SL-1", start));
        assert!(!limiter.is_locked_out(&"SL-1", at(1)), "1 s lockout over");
        limiter.failed("SL-1", at(1));
        assert!(limiter.is_locked_out(&"SL-1", at(2)));
        assert!(!limiter.is_locked_out(&"SL-1", at(3)), "2 s lockout over");
        for _ in 0..40 {
            limiter.failed("SL-1", at(3));
        }
        assert!(limiter.is_locked_out(&"SL-1", at(10)));
        assert!(!limiter.is_locked_out(&"SL-1", at(11)), "capped at 8 s");
        assert!(!limiter.is_locked_out(&"SL-2", at(3)), "keys are separate");
        limiter.succeeded(&"SL-1");
        limiter.failed("SL-1", at(11));
        assert!(!limiter.is_locked_out(&"SL-1", at(11)), "a success forgets");
    }

    #[test]
    fn the_table_is_bounded_and_stale_keys_make_room() {
        let limiter = FailureLimiter::new(POLICY);
        let start = Instant::now();
        for key in ["A", "B", "C"] {
            for _ in 0..4 {
                limiter.failed(key, start);
            }
        }
        assert!(limiter.is_locked_out(&"A", start) && limiter.is_locked_out(&"B", start));
        assert!(
            !limiter.is_locked_out(&"C", start),
            "table full: C untracked"
        );
        let later = start + POLICY.max_lockout;
        for _ in 0..4 {
            limiter.failed("C", later);
        }
        assert!(
            limiter.is_locked_out(&"C", later),
            "stale A and B pruned for C"
        );
    }
}
