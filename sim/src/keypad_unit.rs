//! A simulated keypad unit as its manufacturer makes it: a serial, a random OpenPAYGO key and
//! starting code flashed in (and registered with the platform), and the firmware that checks
//! typed codes, which is the platform's own unit-side [`Decoder`] started where a new unit
//! starts.
//!
//! Keypad units are new on every run (their serials carry the run's wall-clock second): the
//! platform never shows a key again, and a unit's count only moves forward, so an earlier
//! run's units cannot be picked up where they were left. Their keys and starting codes come
//! from the fleet seed and the unit's number, not the run, so a run replays.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sunledger_billing::openpaygo::{Decoder, MAX_STARTING_CODE, TokenKey};
use sunledger_proto::api::v1 as api;

use crate::clock::real_unix_ms;
use crate::seed::{Stream, device_seed, stream_seed};

/// The count a unit leaves the factory with, as the OpenPAYGO reference uses; registered
/// explicitly so the platform's first token and the firmware agree on where the chain starts.
pub const INITIAL_COUNT: u32 = 1;

/// One keypad unit's identity and factory setup.
#[derive(Clone)]
pub struct KeypadSpec {
    /// The unit's number in the run, from 1; also numbers its IMEI.
    pub n: usize,
    /// `SIMK-<run>-000001`…: unique per run, so every run registers fresh units.
    pub serial: String,
    /// The unit's seed, from the fleet seed and its number: replays its key and payments.
    pub seed: u64,
    /// The OpenPAYGO key shared with the platform.
    key: [u8; 16],
    /// The 9-digit starting code shared with the platform.
    pub starting_code: u32,
}

impl std::fmt::Debug for KeypadSpec {
    /// Leaves the key out, as [`TokenKey`] does, so a spec can be logged.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeypadSpec")
            .field("serial", &self.serial)
            .field("seed", &self.seed)
            .finish_non_exhaustive()
    }
}

impl KeypadSpec {
    /// Unit `n` of run `run` in a fleet seeded with `fleet_seed`.
    pub fn new(fleet_seed: u64, run: i64, n: usize) -> KeypadSpec {
        let seed = device_seed(fleet_seed, &format!("SIMK-{n:06}"));
        let mut rng = StdRng::seed_from_u64(stream_seed(seed, Stream::KeypadSetup));
        KeypadSpec {
            n,
            serial: format!("SIMK-{run}-{n:06}"),
            seed,
            key: rng.random(),
            starting_code: rng.random_range(0..=MAX_STARTING_CODE),
        }
    }

    /// Units 1..=`count` of a run starting now.
    pub fn fleet(fleet_seed: u64, count: usize) -> Vec<KeypadSpec> {
        let run = real_unix_ms().div_euclid(1_000);
        (1..=count)
            .map(|n| KeypadSpec::new(fleet_seed, run, n))
            .collect()
    }

    /// The setup to register the unit with (standard 9-digit tokens, full keypad).
    pub fn setup(&self) -> api::KeypadSetup {
        api::KeypadSetup {
            key: hex::encode(self.key),
            starting_code: self.starting_code,
            restricted_digits: false,
            extended: false,
            initial_count: Some(INITIAL_COUNT),
        }
    }

    /// The unit's firmware fresh from the factory: nothing typed yet.
    pub fn firmware(&self) -> Decoder {
        let key = TokenKey::from(self.key);
        Decoder::new(key, self.starting_code, false, INITIAL_COUNT, Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setups_replay_from_the_seed_and_differ_per_unit() {
        let (a, again, b) = (
            KeypadSpec::new(7, 100, 1),
            KeypadSpec::new(7, 200, 1),
            KeypadSpec::new(7, 100, 2),
        );
        assert_eq!(a.serial, "SIMK-100-000001");
        assert_eq!(
            (a.setup(), a.seed),
            (again.setup(), again.seed),
            "the run changes the serial only"
        );
        assert_ne!(a.setup().key, b.setup().key);
        assert_eq!(a.setup().key.len(), 32);
        assert!(a.starting_code <= MAX_STARTING_CODE);
        assert_eq!(a.firmware().last_count(), INITIAL_COUNT);
        assert!(!format!("{a:?}").contains(&a.setup().key));
    }
}
