//! Reconnect delays: exponential from an initial delay up to a cap, with seeded jitter so
//! 10,000 devices dropped together do not return together.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The delay before the next reconnect attempt of one device.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial_ms: u64,
    max_ms: u64,
    failures: u32,
    rng: StdRng,
}

impl Backoff {
    /// Delays start at `initial_ms` and double per failure up to `max_ms`.
    pub fn new(initial_ms: u64, max_ms: u64, seed: u64) -> Backoff {
        Backoff {
            initial_ms,
            max_ms,
            failures: 0,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// The delay after one more failure: half the exponential step plus up to another half at
    /// random, never above the cap.
    pub fn next_delay(&mut self) -> Duration {
        let step_ms = self
            .initial_ms
            .saturating_mul(1 << self.failures.min(20))
            .min(self.max_ms);
        self.failures = self.failures.saturating_add(1);
        let half_ms = step_ms / 2;
        Duration::from_millis(half_ms + self.rng.random_range(0..=step_ms - half_ms))
    }

    /// A connection succeeded; the next failure starts from the initial delay again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_and_reset_after_success() {
        let mut backoff = Backoff::new(100, 1_000, 1);
        let delays: Vec<u64> = (0..8)
            .map(|_| backoff.next_delay().as_millis() as u64)
            .collect();
        assert!((50..=100).contains(&delays[0]), "{delays:?}");
        assert!((100..=200).contains(&delays[1]), "{delays:?}");
        assert!(
            delays[4..].iter().all(|d| (500..=1_000).contains(d)),
            "{delays:?}"
        );
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(100));
    }
}
