//! Publish→PUBACK latency of readings, measured in the devices: every device records the time
//! from handing a reading to its MQTT client until the broker's PUBACK into one fleet-wide
//! HDR histogram, so percentiles stay exact to three significant digits at any count without
//! keeping the samples.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Largest latency the histogram resolves, in microseconds (one minute); longer ones are
/// clamped to it rather than lost.
const LATENCY_US_MAX: u64 = 60_000_000;
/// Significant decimal digits kept per recorded value.
const SIGNIFICANT_DIGITS: u8 = 3;

/// The fleet's latency histogram. One lock per PUBACK is cheap next to the PUBACK itself, and
/// one histogram of a few tens of kilobytes serves 10,000 devices (one per device would not).
#[derive(Debug)]
pub(crate) struct LatencyRecorder {
    histogram: Mutex<Histogram<u64>>,
}

impl Default for LatencyRecorder {
    fn default() -> Self {
        let histogram = Histogram::new_with_bounds(1, LATENCY_US_MAX, SIGNIFICANT_DIGITS)
            .expect("constant histogram bounds are valid");
        LatencyRecorder {
            histogram: Mutex::new(histogram),
        }
    }
}

impl LatencyRecorder {
    pub(crate) fn record(&self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.lock().saturating_record(us.clamp(1, LATENCY_US_MAX));
    }

    /// Percentiles of everything recorded since the start or the last [`Self::reset`].
    pub(crate) fn summary(&self) -> LatencySummary {
        let histogram = self.lock();
        let at = |quantile: f64| histogram.value_at_quantile(quantile);
        LatencySummary {
            count: histogram.len(),
            p50_us: at(0.50),
            p90_us: at(0.90),
            p99_us: at(0.99),
            max_us: histogram.max(),
        }
    }

    /// Forgets every sample, so a benchmark phase measures only itself.
    pub(crate) fn reset(&self) {
        self.lock().reset();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Histogram<u64>> {
        // A histogram is plain counts; a panic mid-record cannot leave it unusable.
        self.histogram
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Percentiles of publish→PUBACK latency, in microseconds (0 when nothing was recorded).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Readings whose PUBACK was timed.
    pub count: u64,
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Slowest (clamped to one minute).
    pub max_us: u64,
}

impl LatencySummary {
    /// Microseconds as milliseconds, for tables that print milliseconds.
    pub fn ms(us: u64) -> f64 {
        us as f64 / 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_what_was_recorded_and_reset_forgets_it() {
        let recorder = LatencyRecorder::default();
        for ms in 1..=100 {
            recorder.record(Duration::from_millis(ms));
        }
        let summary = recorder.summary();
        assert_eq!(summary.count, 100);
        assert!((49_900..=50_100).contains(&summary.p50_us), "{summary:?}");
        assert!((98_900..=99_100).contains(&summary.p99_us), "{summary:?}");
        recorder.reset();
        assert_eq!(recorder.summary(), LatencySummary::default());
    }
}
