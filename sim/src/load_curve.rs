//! What a household draws at each hour of its local day: lights and a TV in the evening, a
//! night light overnight, phones charging on USB in the morning and evening, and the panel
//! harvesting around noon. Each device scales the shared shape by its own seeded factors.

use rand::Rng;
use rand::rngs::StdRng;

const MS_PER_HOUR: i64 = 3_600_000;
const MS_PER_DAY: i64 = 24 * MS_PER_HOUR;

/// Load-port draw per local hour, in milliwatts, before the device's scale: a 2 W night
/// light, morning lights, a radio by day, and 25 W of lights and TV from 18:00 to 23:00.
const LOAD_MW_BY_HOUR: [u64; 24] = [
    2_000, 2_000, 2_000, 2_000, 2_000, 8_000, 8_000, 3_000, 3_000, 3_000, 3_000, 3_000, //
    3_000, 3_000, 3_000, 3_000, 3_000, 10_000, 25_000, 25_000, 25_000, 25_000, 25_000, 5_000,
];

/// USB draw per local hour, in milliwatts: phones charge at 5 W early morning and evening.
const USB_MW_BY_HOUR: [u64; 24] = [
    0, 0, 0, 0, 0, 0, 5_000, 5_000, 500, 500, 500, 500, //
    500, 500, 500, 500, 500, 500, 500, 5_000, 5_000, 5_000, 1_000, 1_000,
];

/// Panel harvest per local hour, in milliwatts: a 60 W panel under a clear-sky bell.
const PV_MW_BY_HOUR: [u64; 24] = [
    0, 0, 0, 0, 0, 0, 5_000, 15_000, 30_000, 45_000, 55_000, 60_000, //
    60_000, 55_000, 45_000, 30_000, 15_000, 5_000, 0, 0, 0, 0, 0, 0,
];

/// Instantaneous power of the three things a control unit meters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Power {
    /// Drawn through the switchable load port.
    pub load_mw: u64,
    /// Drawn through the USB ports (switched together with the load).
    pub usb_mw: u64,
    /// Harvested by the panel; unaffected by the load switch.
    pub pv_mw: u64,
}

/// One household's daily curve: the shared hourly shape times its own scale factors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadCurve {
    load_scale_permille: u64,
    usb_scale_permille: u64,
    pv_scale_permille: u64,
    utc_offset_ms: i64,
}

impl LoadCurve {
    /// A household with seeded scale factors (load 0.5–1.5×, USB 0.3–1.5×, panel 0.7–1.3×),
    /// so a fleet is varied yet replays exactly from the seed.
    pub fn random(rng: &mut StdRng, utc_offset_minutes: i32) -> LoadCurve {
        LoadCurve {
            load_scale_permille: rng.random_range(500..=1_500),
            usb_scale_permille: rng.random_range(300..=1_500),
            pv_scale_permille: rng.random_range(700..=1_300),
            utc_offset_ms: i64::from(utc_offset_minutes) * 60_000,
        }
    }

    /// The unscaled household in UTC, for tests that want round numbers.
    pub fn nominal() -> LoadCurve {
        LoadCurve {
            load_scale_permille: 1_000,
            usb_scale_permille: 1_000,
            pv_scale_permille: 1_000,
            utc_offset_ms: 0,
        }
    }

    fn local_hour(&self, sim_ms: i64) -> usize {
        let local_ms = (sim_ms + self.utc_offset_ms).rem_euclid(MS_PER_DAY);
        // At most 23, so the cast cannot truncate.
        (local_ms / MS_PER_HOUR) as usize
    }

    fn power_at(&self, sim_ms: i64) -> Power {
        let hour = self.local_hour(sim_ms);
        Power {
            load_mw: LOAD_MW_BY_HOUR[hour] * self.load_scale_permille / 1_000,
            usb_mw: USB_MW_BY_HOUR[hour] * self.usb_scale_permille / 1_000,
            pv_mw: PV_MW_BY_HOUR[hour] * self.pv_scale_permille / 1_000,
        }
    }

    fn next_change_ms(&self, sim_ms: i64) -> i64 {
        let into_hour_ms = (sim_ms + self.utc_offset_ms).rem_euclid(MS_PER_HOUR);
        sim_ms + (MS_PER_HOUR - into_hour_ms)
    }
}

/// Where a device's demand comes from: its daily curve, or a constant a test sets so the
/// expected counters are easy to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consumption {
    /// Follow the household's daily curve.
    Curve(LoadCurve),
    /// Draw the same power at every instant.
    Constant(Power),
}

impl Consumption {
    /// Demand (with the load switched on) at simulated unix time `sim_ms`.
    pub fn power_at(&self, sim_ms: i64) -> Power {
        match self {
            Consumption::Curve(curve) => curve.power_at(sim_ms),
            Consumption::Constant(power) => *power,
        }
    }

    /// The next instant after `sim_ms` at which demand may change; power is constant until
    /// then, which lets energy be integrated exactly in steps.
    pub fn next_change_ms(&self, sim_ms: i64) -> i64 {
        match self {
            Consumption::Curve(curve) => curve.next_change_ms(sim_ms),
            Consumption::Constant(_) => i64::MAX,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::energy::EnergyCounter;
    use rand::SeedableRng;

    fn daily_wh(consumption: &Consumption) -> (u64, u64) {
        let (mut load, mut usb) = (EnergyCounter::default(), EnergyCounter::default());
        let mut t = 0;
        while t < MS_PER_DAY {
            let next = consumption.next_change_ms(t).min(MS_PER_DAY);
            let power = consumption.power_at(t);
            load.add(power.load_mw, (next - t) as u64);
            usb.add(power.usb_mw, (next - t) as u64);
            t = next;
        }
        (load.wh(), usb.wh())
    }

    #[test]
    fn nominal_household_uses_about_two_hundred_wh_a_day() {
        let (load_wh, usb_wh) = daily_wh(&Consumption::Curve(LoadCurve::nominal()));
        assert_eq!((load_wh, usb_wh), (196, 32));
    }

    #[test]
    fn every_seeded_household_uses_a_plausible_daily_energy() {
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..1_000 {
            let curve = Consumption::Curve(LoadCurve::random(&mut rng, 180));
            let (load_wh, usb_wh) = daily_wh(&curve);
            assert!((90..=300).contains(&load_wh), "load {load_wh} Wh/day");
            assert!((5..=60).contains(&usb_wh), "usb {usb_wh} Wh/day");
        }
    }

    #[test]
    fn evening_peak_exceeds_overnight_draw_in_local_time() {
        let mut rng = StdRng::seed_from_u64(8);
        let curve = Consumption::Curve(LoadCurve::random(&mut rng, 180));
        // 17:00 UTC is 20:00 at UTC+3; 00:00 UTC is 03:00.
        let evening = curve.power_at(17 * MS_PER_HOUR);
        let night = curve.power_at(0);
        assert!(
            evening.load_mw > 5 * night.load_mw,
            "{evening:?} vs {night:?}"
        );
        assert!(evening.usb_mw > night.usb_mw);
        assert_eq!(night.pv_mw, 0);
    }

    #[test]
    fn next_change_is_the_next_local_hour_boundary() {
        let curve = Consumption::Curve(LoadCurve {
            utc_offset_ms: 30 * 60_000,
            ..LoadCurve::nominal()
        });
        assert_eq!(curve.next_change_ms(0), 30 * 60_000);
        assert_eq!(curve.next_change_ms(30 * 60_000), 90 * 60_000);
        assert_eq!(curve.next_change_ms(-1), 30 * 60_000);
    }
}
