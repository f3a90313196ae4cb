//! Integer energy accumulation: power in milliwatts over time in milliseconds, kept exactly so
//! no fraction of a watt-hour is lost between reports.

/// Milliwatt-milliseconds in one milliwatt-hour.
const MW_MS_PER_MILLI_WH: u64 = 3_600_000;

/// A cumulative energy counter, as a device keeps it in firmware: integer milli-watt-hours
/// plus the not-yet-whole remainder, so repeated small steps sum exactly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EnergyCounter {
    milli_wh: u64,
    remainder_mw_ms: u64,
}

impl EnergyCounter {
    /// Adds `power_mw` drawn for `duration_ms`; saturates rather than wraps, which would take
    /// millions of simulated years.
    pub fn add(&mut self, power_mw: u64, duration_ms: u64) {
        let total_mw_ms = power_mw
            .saturating_mul(duration_ms)
            .saturating_add(self.remainder_mw_ms);
        self.milli_wh = self
            .milli_wh
            .saturating_add(total_mw_ms / MW_MS_PER_MILLI_WH);
        self.remainder_mw_ms = total_mw_ms % MW_MS_PER_MILLI_WH;
    }

    /// The counter in milli-watt-hours, for exact accounting in tests.
    pub fn milli_wh(&self) -> u64 {
        self.milli_wh
    }

    /// The counter as reported on the wire: whole watt-hours, rounded down.
    pub fn wh(&self) -> u64 {
        self.milli_wh / 1000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_small_steps_sum_to_the_same_energy_as_one_big_step() {
        let mut stepped = EnergyCounter::default();
        for _ in 0..3_600 {
            stepped.add(10_000, 1_000);
        }
        let mut once = EnergyCounter::default();
        once.add(10_000, 3_600_000);
        assert_eq!(stepped, once);
        assert_eq!(once.wh(), 10, "10 W for an hour is 10 Wh");
    }

    #[test]
    fn reports_floor_of_whole_watt_hours() {
        let mut counter = EnergyCounter::default();
        counter.add(1_000, 3_599_999);
        assert_eq!((counter.milli_wh(), counter.wh()), (999, 0));
        counter.add(1_000, 1);
        assert_eq!((counter.milli_wh(), counter.wh()), (1_000, 1));
    }
}
