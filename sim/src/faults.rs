//! Seeded fault injection: each report interval rolls, from the device's own random stream,
//! whether it drops offline, reboots, duplicates its report, also sends garbage or also sends
//! a tampered copy of its report. One roll
//! per interval whatever the connection state, so a seed replays the same fault schedule.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::config::FaultRates;

/// What goes wrong during one report interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IntervalFaults {
    /// Drop off the network for this many report intervals (only acted on when online).
    pub offline_reports: Option<u32>,
    /// Reboot before reporting.
    pub reset: bool,
    /// Publish the report twice.
    pub duplicate: bool,
    /// Also publish garbage on the telemetry topic.
    pub malformed: bool,
    /// Also publish a tampered copy of the report, whose MAC does not match.
    pub tampered: bool,
}

/// A device's fault schedule, drawn from its own seeded stream.
#[derive(Debug, Clone)]
pub struct FaultInjector {
    rates: FaultRates,
    rng: StdRng,
}

impl FaultInjector {
    /// A schedule for `rates` replayable from `seed`.
    pub fn new(rates: FaultRates, seed: u64) -> FaultInjector {
        FaultInjector {
            rates,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// The faults of the next report interval. Always draws the same number of values, so
    /// the schedule does not depend on which faults were acted on.
    pub fn roll(&mut self) -> IntervalFaults {
        let offline = self.rng.random_bool(self.rates.offline_per_report);
        let offline_reports = self.rng.random_range(1..=self.rates.offline_reports_max);
        IntervalFaults {
            offline_reports: offline.then_some(offline_reports),
            reset: self.rng.random_bool(self.rates.reset_per_report),
            duplicate: self.rng.random_bool(self.rates.duplicate_per_report),
            malformed: self.rng.random_bool(self.rates.malformed_per_report),
            tampered: self.rng.random_bool(self.rates.tampered_per_report),
        }
    }

    /// Bytes that no decoder accepts: a protobuf key with wire type 7 (which does not exist)
    /// followed by random noise, and never a leading `{`.
    pub fn garbage(&mut self) -> Vec<u8> {
        let noise_bytes = self.rng.random_range(0..24);
        let mut bytes = Vec::with_capacity(1 + noise_bytes);
        bytes.push(0xFF);
        bytes.extend((0..noise_bytes).map(|_| self.rng.random::<u8>()));
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rates() -> FaultRates {
        FaultRates {
            offline_per_report: 0.02,
            offline_reports_max: 5,
            reset_per_report: 0.01,
            duplicate_per_report: 0.1,
            malformed_per_report: 0.05,
            tampered_per_report: 0.03,
        }
    }

    #[test]
    fn rates_are_roughly_honoured_with_a_fixed_seed() {
        let mut injector = FaultInjector::new(rates(), 42);
        let rolls = 100_000;
        let (mut offline, mut reset, mut duplicate, mut malformed, mut tampered) = (0, 0, 0, 0, 0);
        for _ in 0..rolls {
            let faults = injector.roll();
            if let Some(reports) = faults.offline_reports {
                assert!((1..=5).contains(&reports));
                offline += 1;
            }
            reset += u32::from(faults.reset);
            duplicate += u32::from(faults.duplicate);
            malformed += u32::from(faults.malformed);
            tampered += u32::from(faults.tampered);
        }
        let near = |count: u32, rate: f64| {
            let expected = rate * f64::from(rolls);
            (f64::from(count) - expected).abs() < expected * 0.1
        };
        assert!(near(offline, 0.02), "offline {offline}");
        assert!(near(reset, 0.01), "reset {reset}");
        assert!(near(duplicate, 0.1), "duplicate {duplicate}");
        assert!(near(malformed, 0.05), "malformed {malformed}");
        assert!(near(tampered, 0.03), "tampered {tampered}");
    }

    #[test]
    fn zero_rates_inject_nothing_and_seeds_replay() {
        let mut quiet = FaultInjector::new(FaultRates::default(), 1);
        assert!((0..10_000).all(|_| quiet.roll() == IntervalFaults::default()));
        let mut a = FaultInjector::new(rates(), 9);
        let mut b = FaultInjector::new(rates(), 9);
        assert!((0..1_000).all(|_| a.roll() == b.roll()));
    }

    #[test]
    fn garbage_never_decodes_as_telemetry() {
        let mut injector = FaultInjector::new(rates(), 3);
        for _ in 0..10_000 {
            let bytes = injector.garbage();
            assert!(
                sunledger_proto::payload::decode_telemetry(&bytes).is_err(),
                "{bytes:?}"
            );
        }
    }
}
