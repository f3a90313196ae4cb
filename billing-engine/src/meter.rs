//! Turning a unit's cumulative counters into consumed energy.
//!
//! Devices report cumulative `load_wh` and `usb_wh` since `boot`, numbered by `seq` within a
//! boot. Consumption is the increase since the last accepted reading, so lost or late messages
//! cost nothing and an offline unit is charged the whole gap on its next message. The
//! idempotency key is `(boot, seq)`: anything not newer than the last accepted reading is a
//! duplicate and changes nothing.

use serde::{Deserialize, Serialize};
use sunledger_proto::device::Telemetry;

/// Integer rounding slack: each counter is a floor of the true energy, so a delta can exceed
/// the physically possible energy by just under 1 Wh per counter.
const COUNTER_ROUNDING_WH: u64 = 2;

/// Energy consumed since the previous reading, per port: what usage is charged for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EnergyDelta {
    /// Watt-hours delivered through the load port.
    pub load_wh: u64,
    /// Watt-hours delivered through the USB ports.
    pub usb_wh: u64,
}

impl EnergyDelta {
    /// Total watt-hours charged: load plus USB; `None` if the sum overflows `u64`.
    pub fn total_wh(&self) -> Option<u64> {
        self.load_wh.checked_add(self.usb_wh)
    }
}

/// The last accepted reading of a unit: the baseline for the next one.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct MeterState {
    /// Boot counter of the baseline reading.
    pub boot: u32,
    /// Sequence number of the baseline reading within its boot.
    pub seq: u64,
    /// Device time of the baseline reading, unix seconds.
    pub ts: i64,
    /// Cumulative load-port counter at the baseline.
    pub load_wh: u64,
    /// Cumulative USB counter at the baseline.
    pub usb_wh: u64,
}

impl MeterState {
    fn of(reading: &Telemetry) -> MeterState {
        MeterState {
            boot: reading.boot,
            seq: reading.seq,
            ts: reading.ts,
            load_wh: reading.load_wh,
            usb_wh: reading.usb_wh,
        }
    }
}

/// What a reading means for billing. The engine counts each kind in metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MeterOutcome {
    /// The unit's first reading: it becomes the baseline, nothing is charged.
    Baseline,
    /// Energy consumed since the previous reading (may be 0).
    Consumed(EnergyDelta),
    /// `(boot, seq)` is not newer than the baseline: a redelivery or a late message.
    Duplicate,
    /// The counters went down: the device restarted them. The new reading is the baseline and
    /// the unknown gap is not charged.
    CounterReset,
    /// The increase implies more than the unit's rated power over the elapsed time. The
    /// baseline moves on; the energy is not charged and waits for an operator's review.
    HeldForReview {
        /// The implausible increase, in watt-hours.
        wh: u64,
    },
}

impl MeterOutcome {
    /// Every outcome's metrics label, at its [`MeterOutcome::label_index`].
    pub const LABELS: [&'static str; 5] = [
        "baseline",
        "consumed",
        "duplicate",
        "counter_reset",
        "held_for_review",
    ];

    /// Where the outcome's label is in [`MeterOutcome::LABELS`]: counters are kept per label.
    pub fn label_index(self) -> usize {
        match self {
            MeterOutcome::Baseline => 0,
            MeterOutcome::Consumed(_) => 1,
            MeterOutcome::Duplicate => 2,
            MeterOutcome::CounterReset => 3,
            MeterOutcome::HeldForReview { .. } => 4,
        }
    }

    /// Metrics label.
    pub fn as_str(self) -> &'static str {
        Self::LABELS[self.label_index()]
    }
}

/// Classifies `reading` against the `baseline` and returns the new baseline.
pub fn advance(
    baseline: Option<&MeterState>,
    reading: &Telemetry,
    rated_power_w_max: u32,
) -> (MeterOutcome, MeterState) {
    let next = MeterState::of(reading);
    let Some(prev) = baseline else {
        return (MeterOutcome::Baseline, next);
    };
    if (reading.boot, reading.seq) <= (prev.boot, prev.seq) {
        return (MeterOutcome::Duplicate, *prev);
    }
    let (Some(load), Some(usb)) = (
        reading.load_wh.checked_sub(prev.load_wh),
        reading.usb_wh.checked_sub(prev.usb_wh),
    ) else {
        return (MeterOutcome::CounterReset, next);
    };
    let energy = EnergyDelta {
        load_wh: load,
        usb_wh: usb,
    };
    let wh = load.saturating_add(usb);
    let elapsed_s = u64::try_from(reading.ts.saturating_sub(prev.ts)).unwrap_or(0);
    let possible_wh =
        u64::from(rated_power_w_max).saturating_mul(elapsed_s) / 3600 + COUNTER_ROUNDING_WH;
    if wh > possible_wh {
        return (MeterOutcome::HeldForReview { wh }, next);
    }
    (MeterOutcome::Consumed(energy), next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const RATED_W: u32 = 1000;

    fn reading(boot: u32, seq: u64, ts: i64, load_wh: u64, usb_wh: u64) -> Telemetry {
        Telemetry {
            seq,
            ts,
            load_wh,
            usb_wh,
            boot,
            ..Telemetry::default()
        }
    }

    fn after(prev: &Telemetry, next: &Telemetry) -> MeterOutcome {
        let (_, baseline) = advance(None, prev, RATED_W);
        advance(Some(&baseline), next, RATED_W).0
    }

    #[test]
    fn first_reading_is_a_baseline_and_later_ones_charge_the_increase() {
        let first = reading(1, 1, 0, 500, 20);
        assert_eq!(advance(None, &first, RATED_W).0, MeterOutcome::Baseline);
        assert_eq!(
            after(&first, &reading(1, 2, 3600, 600, 25)),
            MeterOutcome::Consumed(EnergyDelta {
                load_wh: 100,
                usb_wh: 5
            })
        );
    }

    #[test]
    fn an_offline_gap_is_charged_whole_on_the_next_message() {
        let three_days_s = 3 * 86_400;
        let outcome = after(
            &reading(1, 1, 0, 0, 0),
            &reading(1, 2, three_days_s, 900, 300),
        );
        assert_eq!(
            outcome,
            MeterOutcome::Consumed(EnergyDelta {
                load_wh: 900,
                usb_wh: 300
            })
        );
    }

    #[test]
    fn duplicates_and_older_messages_change_nothing() {
        let prev = reading(2, 10, 100, 50, 5);
        let (_, baseline) = advance(None, &prev, RATED_W);
        for stale in [
            reading(2, 10, 100, 50, 5),
            reading(2, 9, 90, 40, 5),
            reading(1, 99, 200, 999, 9),
        ] {
            assert_eq!(
                advance(Some(&baseline), &stale, RATED_W),
                (MeterOutcome::Duplicate, baseline)
            );
        }
    }

    #[test]
    fn counters_going_down_with_a_new_boot_take_a_new_baseline() {
        let prev = reading(1, 50, 1000, 800, 90);
        let reset = reading(2, 1, 1100, 3, 0);
        assert_eq!(after(&prev, &reset), MeterOutcome::CounterReset);
        let (_, baseline) = advance(None, &prev, RATED_W);
        assert_eq!(
            advance(Some(&baseline), &reset, RATED_W).1,
            MeterState::of(&reset)
        );
    }

    #[test]
    fn a_new_boot_with_persisted_counters_is_charged_normally() {
        assert_eq!(
            after(&reading(1, 50, 0, 800, 90), &reading(2, 1, 3600, 850, 90)),
            MeterOutcome::Consumed(EnergyDelta {
                load_wh: 50,
                usb_wh: 0
            })
        );
    }

    #[test]
    fn more_than_rated_power_over_the_elapsed_time_is_held_for_review() {
        // 1000 W for one hour is at most 1000 Wh (+ rounding slack).
        assert_eq!(
            after(&reading(1, 1, 0, 0, 0), &reading(1, 2, 3600, 1002, 0)),
            MeterOutcome::Consumed(EnergyDelta {
                load_wh: 1002,
                usb_wh: 0
            })
        );
        assert_eq!(
            after(&reading(1, 1, 0, 0, 0), &reading(1, 2, 3600, 1003, 0)),
            MeterOutcome::HeldForReview { wh: 1003 }
        );
        assert_eq!(
            after(&reading(1, 1, 100, 0, 0), &reading(1, 2, 50, 10, 0)),
            MeterOutcome::HeldForReview { wh: 10 }
        );
    }

    proptest! {
        /// Feeding any permutation-with-duplicates of one boot's readings charges exactly the
        /// increase between the first accepted and the highest-seq reading, never more.
        #[test]
        fn redelivery_never_charges_twice(
            steps in proptest::collection::vec(0u64..50, 1..40),
            order in proptest::collection::vec(any::<proptest::sample::Index>(), 1..80),
        ) {
            let mut total = 0u64;
            let readings: Vec<Telemetry> = steps.iter().enumerate().map(|(i, step)| {
                total += step;
                reading(1, i as u64 + 1, (i as i64 + 1) * 600, total, 0)
            }).collect();
            let mut baseline = advance(None, &readings[0], RATED_W).1;
            let mut charged = 0u64;
            for index in &order {
                let (outcome, next) = advance(Some(&baseline), index.get(&readings), RATED_W);
                if let MeterOutcome::Consumed(energy) = outcome { charged += energy.load_wh; }
                baseline = next;
            }
            prop_assert_eq!(charged, baseline.load_wh - readings[0].load_wh);
            prop_assert!(charged <= total);
        }
    }
}
