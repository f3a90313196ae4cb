//! The simulated clock: real time stretched by `time_scale` from a chosen start, so a day of
//! household demand plays out in minutes.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Maps real instants to simulated unix milliseconds; cheap to copy into every device.
#[derive(Debug, Clone, Copy)]
pub struct SimClock {
    origin: Instant,
    origin_sim_ms: i64,
    time_scale: f64,
}

impl SimClock {
    /// A clock that reads `start_unix_s` now (the real clock when `None`) and then runs
    /// `time_scale` times faster than real time.
    pub fn start(start_unix_s: Option<i64>, time_scale: f64) -> SimClock {
        let origin_sim_ms = match start_unix_s {
            Some(s) => s.saturating_mul(1_000),
            None => real_unix_ms(),
        };
        SimClock {
            origin: Instant::now(),
            origin_sim_ms,
            time_scale,
        }
    }

    /// Simulated unix time, in milliseconds, at the real instant `at`.
    pub fn sim_ms_at(&self, at: Instant) -> i64 {
        let real_ms = at.saturating_duration_since(self.origin).as_secs_f64() * 1_000.0;
        // Saturating float-to-int conversion; a run never gets near the bounds.
        self.origin_sim_ms
            .saturating_add((real_ms * self.time_scale) as i64)
    }

    /// Simulated unix time, in milliseconds, now.
    pub fn now_ms(&self) -> i64 {
        self.sim_ms_at(Instant::now())
    }
}

/// The wall clock, unix milliseconds: what timestamps from the platform's clock are compared
/// with (0 before 1970).
pub fn real_unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn one_real_second_is_a_simulated_minute_at_scale_sixty() {
        let clock = SimClock::start(Some(1_000), 60.0);
        let later = clock.origin + Duration::from_secs(1);
        assert_eq!(clock.sim_ms_at(clock.origin), 1_000_000);
        assert_eq!(clock.sim_ms_at(later), 1_000_000 + 60_000);
    }
}
