//! Batches whose commits are in flight while the next batch is applied: their commands wait
//! for their commit, and requests and money movements see only committed state.

use super::*;

/// A on 0.5 per kWh with a limit of -1 and 1.00 paid, B at the same price with a limit of
/// -100, unpaid. Both have sent their first reading; the switch-on commands are taken.
fn two_units() -> Fixture {
    let mut fx = Fixture::new(&["A", "B"]);
    fx.open("A", usage(dec!(0.5), dec!(-1)), AccountSetup::default());
    fx.open("B", usage(dec!(0.5), dec!(-100)), AccountSetup::default());
    fx.pay("A", dec!(1), "MP-1").unwrap();
    let at = "2026-06-01T10:00:00Z";
    fx.apply_batch(&[
        event("A", at, reading(1, 0, 0)),
        event("B", at, reading(1, 0, 0)),
    ])
    .unwrap();
    fx.commands();
    fx
}

/// 4.001 kWh on A at 0.5 per kWh, an hour per kWh (its rated power): from 1.00 to -1.0005,
/// below its limit of -1.
fn a_runs_out() -> Vec<DeviceEvent> {
    let at = "2026-06-01T14:00:00Z";
    (2..=5)
        .map(|seq| {
            let load_wh = if seq == 5 { 4001 } else { (seq - 1) * 1000 };
            event("A", at, reading(seq, (seq as i64 - 1) * 3600, load_wh))
        })
        .collect()
}

#[test]
fn a_command_leaves_only_once_its_batch_is_committed() {
    let mut fx = two_units();
    fx.submit_batch(&a_runs_out()).unwrap();
    assert_eq!(fx.balance("A"), dec!(-1.0005), "applied in memory");
    assert_eq!(fx.commands(), [], "its commit is still in flight");

    // The next batch finishes the commit before it writes: the OFF command is then ready.
    let at = "2026-06-01T15:00:00Z";
    fx.submit_batch(&[event("B", at, reading(2, 10800, 600))])
        .unwrap();
    assert_eq!(
        fx.commands(),
        [(2, LoadState::Off, Reason::CreditExhausted)]
    );
    fx.partition.finish_commit().unwrap();
    assert_eq!(fx.commands(), [], "B's batch made no command");
    assert_eq!(fx.balance("B"), dec!(-0.3));
    fx.assert_stored_matches_ledger("A");
    fx.assert_stored_matches_ledger("B");
}

#[test]
fn a_payment_waits_for_the_commit_in_flight_and_its_command_follows_the_batch_s() {
    let mut fx = two_units();
    fx.submit_batch(&a_runs_out()).unwrap();
    let receipt = fx.pay("A", dec!(0.0005), "MP-2").unwrap();
    assert_eq!(receipt.account.account.balance(), dec!(-1));
    assert_eq!(
        fx.commands(),
        [
            (2, LoadState::Off, Reason::CreditExhausted),
            (3, LoadState::On, Reason::CreditRestored)
        ]
    );
    // Both are in the file, in order, and survive a restart.
    fx.restart();
    fx.assert_stored_matches_ledger("A");
    use EntryKind::{Payment as P, UsageCharge as U};
    assert_eq!(fx.stored_kinds("A"), [P, U, U, U, U, P]);
}
