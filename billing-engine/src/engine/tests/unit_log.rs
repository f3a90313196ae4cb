//! The unit log under checkpointing pressure: whatever the mix of readings and payments and
//! however small the log is kept, the file (checkpoints folded with the log) always holds
//! exactly the partition's memory, the log stays bounded, and a restart loads the same state.

use proptest::prelude::*;

use super::*;

const SERIALS: [&str; 5] = ["A", "B", "C", "D", "E"];

/// One step of the property: a reading of `wh` more on unit `unit`, or a payment to it.
#[derive(Debug, Clone)]
enum Step {
    Reading { units: Vec<usize>, wh: u64 },
    Payment { unit: usize },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (proptest::collection::vec(0..SERIALS.len(), 1..8), 1u64..500)
            .prop_map(|(units, wh)| Step::Reading { units, wh }),
        1 => (0..SERIALS.len()).prop_map(|unit| Step::Payment { unit }),
    ]
}

impl Fixture {
    /// Fails unless every unit the file holds is the one in memory.
    fn assert_file_is_memory(&self) {
        for serial in SERIALS {
            assert_eq!(
                self.store.unit(serial).unwrap().as_ref(),
                self.partition.unit(serial),
                "unit {serial}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn the_file_always_holds_memory_and_the_log_stays_bounded(
        entries_max in 1usize..8,
        steps in proptest::collection::vec(step(), 1..40),
        restart in any::<proptest::sample::Index>(),
    ) {
        let mut fx = Fixture::new(&SERIALS);
        let bound = UnitLogBound { entries_min: entries_max, entries_per_unit: 0 };
        fx.partition.set_unit_log_bound(bound);
        for serial in SERIALS {
            fx.open(serial, usage(dec!(2), dec!(-5)), AccountSetup::default());
        }
        let restart_at = restart.index(steps.len());
        let mut counters = [0u64; SERIALS.len()];
        let mut seq = 0;
        for (n, step) in steps.iter().enumerate() {
            if n == restart_at {
                let before: Vec<Option<Unit>> =
                    SERIALS.iter().map(|serial| fx.partition.unit(serial).cloned()).collect();
                fx.restart();
                fx.partition.set_unit_log_bound(bound);
                let after: Vec<Option<Unit>> =
                    SERIALS.iter().map(|serial| fx.partition.unit(serial).cloned()).collect();
                prop_assert_eq!(before, after, "a restart loads what memory held");
                prop_assert_eq!(fx.store.unit_log_records().unwrap(), 0, "folded on loading");
            }
            match step {
                Step::Reading { units, wh } => {
                    seq += 1;
                    let at = fx.clock.now() + chrono::Duration::hours(seq as i64);
                    let batch: Vec<DeviceEvent> = units
                        .iter()
                        .map(|unit| {
                            counters[*unit] += wh;
                            DeviceEvent {
                                serial: SERIALS[*unit].into(),
                                received_at_ms: at.timestamp_millis(),
                                body: reading(seq, seq as i64 * 3600, counters[*unit]),
                            }
                        })
                        .collect();
                    fx.apply_batch(&batch).unwrap();
                }
                Step::Payment { unit } => {
                    fx.pay(SERIALS[*unit], dec!(1.5), &format!("P-{n}")).unwrap();
                }
            }
            fx.assert_file_is_memory();
            // At most the bound, plus the rows the last commit could not drop yet: each
            // commit drops the oldest rows until the rest fit, keeping its own.
            let batch_max = SERIALS.len();
            prop_assert!(fx.store.unit_log_records().unwrap() <= entries_max + batch_max);
        }
        for serial in SERIALS {
            fx.assert_stored_matches_ledger(serial);
        }
    }
}

#[test]
fn a_unit_is_checkpointed_once_the_rows_it_waits_in_are_dropped() {
    let mut fx = Fixture::new(&["A", "B"]);
    fx.partition.set_unit_log_bound(UnitLogBound {
        entries_min: 2,
        entries_per_unit: 0,
    });
    fx.open("A", usage(dec!(1), dec!(-1000)), AccountSetup::default());
    fx.open("B", usage(dec!(1), dec!(-1000)), AccountSetup::default());
    let checkpoint = |fx: &Fixture, serial: &str| fx.store.checkpoint(serial).unwrap();
    // Two rows of one record each: the bound holds, nothing is checkpointed yet.
    let opened_b = checkpoint(&fx, "B");
    assert_eq!(opened_b, None, "B's opening is only in the log");
    fx.apply_batch(&[event("B", "2026-06-01T11:00:00Z", reading(1, 0, 0))])
        .unwrap();
    // Three records: A's opening row goes, and A (waiting since it) is checkpointed.
    assert_eq!(checkpoint(&fx, "A").as_ref(), fx.partition.unit("A"));
    assert_eq!(checkpoint(&fx, "B"), None, "B waits in rows still kept");
    assert_eq!(fx.store.unit_log_records().unwrap(), 2);
    fx.assert_stored_matches_ledger("A");
    fx.assert_stored_matches_ledger("B");
}

#[test]
fn units_a_reload_moved_in_memory_are_checkpointed_from_where_they_are_now() {
    let mut fx = Fixture::new(&["A", "B"]);
    fx.partition.set_unit_log_bound(UnitLogBound {
        entries_min: 2,
        entries_per_unit: 0,
    });
    let slots = |fx: &Fixture| (fx.partition.units.slot("A"), fx.partition.units.slot("B"));
    // B is seen first and takes the first slot; reloading the partition puts A first.
    fx.apply_batch(&[event("B", "2026-06-01T11:00:00Z", reading(1, 0, 0))])
        .unwrap();
    fx.apply_batch(&[event("A", "2026-06-01T11:00:00Z", reading(1, 0, 0))])
        .unwrap();
    let (a, b) = slots(&fx);
    fx.partition.stale = true;
    assert!(fx.partition.resync());
    assert_eq!(slots(&fx), (b, a), "the reload swapped their slots");
    // Each new row drops the oldest: B's, then A's, and the unit waiting since it is
    // checkpointed with what memory holds.
    for (hour, serial) in [(12, "B"), (13, "A")] {
        let at = format!("2026-06-01T{hour}:00:00Z");
        fx.apply_batch(&[event("A", &at, reading(hour, hour as i64 * 3600, hour))])
            .unwrap();
        let checkpoint = fx.store.checkpoint(serial).unwrap();
        assert_eq!(checkpoint.as_ref(), fx.partition.unit(serial), "{serial}");
    }
}
