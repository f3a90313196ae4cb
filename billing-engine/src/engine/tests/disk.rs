//! A full disk and failing writes against a real redb file: writes are refused cleanly, reads
//! go on, nothing half-written reaches the file, and everything resumes when space returns.

use super::*;
use crate::store::{DiskFault, StoreError, StoreOptions};

fn faulty(serials: &[&str]) -> (Fixture, DiskFault) {
    let fault = DiskFault::default();
    let options = StoreOptions {
        fault: fault.clone(),
        ..StoreOptions::default()
    };
    (Fixture::with_options(serials, options), fault)
}

fn is_unavailable(error: &EngineError) -> bool {
    matches!(
        error,
        EngineError::Store(StoreError::DiskFull { .. } | StoreError::Unavailable)
    ) || error.is_transient()
}

#[test]
fn a_full_disk_refuses_writes_keeps_reads_and_resumes_when_space_returns() {
    let (mut fx, fault) = faulty(&["A"]);
    fx.open("A", usage(dec!(1), dec!(-100)), AccountSetup::default());
    fx.pay("A", dec!(10), "p1").unwrap();
    fx.apply_batch(&[event("A", "2026-06-01T10:00:00Z", reading(1, 0, 0))])
        .unwrap();

    fault.fill();
    let refused = fx.pay("A", dec!(5), "p2").unwrap_err();
    assert!(matches!(
        refused,
        EngineError::Store(StoreError::DiskFull { .. })
    ));
    assert!(refused.is_transient());
    let batch = [event("A", "2026-06-01T11:00:00Z", reading(2, 3600, 400))];
    assert!(fx.apply_batch(&batch).is_err());
    // Reads go on, and memory did not run ahead of the file.
    assert_eq!(fx.store.ledger("A").unwrap().len(), 1);
    assert_eq!(fx.balance("A"), dec!(10));
    fx.assert_stored_matches_ledger("A");

    fault.free();
    fx.pay("A", dec!(5), "p2").unwrap();
    // The next reading carries the cumulative counter: the 400 Wh of the refused one and 100
    // more are charged once.
    fx.apply_batch(&[event("A", "2026-06-01T12:00:00Z", reading(3, 7200, 500))])
        .unwrap();
    assert_eq!(fx.balance("A"), dec!(14.5));
    fx.assert_stored_matches_ledger("A");
}

#[test]
fn a_write_failing_mid_commit_reopens_the_file_at_its_last_commit() {
    let (mut fx, fault) = faulty(&["A", "B"]);
    fx.open("A", usage(dec!(1), dec!(-100)), AccountSetup::default());
    fx.open("B", usage(dec!(1), dec!(-100)), AccountSetup::default());
    fx.pay("A", dec!(10), "p1").unwrap();
    fx.apply_batch(&[
        event("A", "2026-06-01T10:00:00Z", reading(1, 0, 0)),
        event("B", "2026-06-01T10:00:00Z", reading(1, 0, 0)),
    ])
    .unwrap();

    // The space check passes but the write fails: redb latches the file.
    fault.fail_writes();
    let batch = [
        event("A", "2026-06-01T11:00:00Z", reading(2, 3600, 300)),
        event("B", "2026-06-01T11:00:00Z", reading(2, 3600, 200)),
    ];
    assert!(fx.apply_batch(&batch).is_err());
    let refused = fx.pay("A", dec!(5), "p2").unwrap_err();
    assert!(is_unavailable(&refused), "{refused:?}");
    assert!(!fx.store.is_available() || fx.store.ledger("A").is_err());

    // Space returns: the file reopens at its last commit, the partition reloads from it.
    fault.free();
    std::thread::sleep(std::time::Duration::from_millis(250));
    fx.pay("A", dec!(5), "p2").unwrap();
    assert!(fx.store.is_available());
    fx.apply_batch(&[
        event("A", "2026-06-01T12:00:00Z", reading(3, 7200, 500)),
        event("B", "2026-06-01T12:00:00Z", reading(3, 7200, 500)),
    ])
    .unwrap();
    assert_eq!(fx.balance("A"), dec!(14.5), "500 Wh charged once");
    assert_eq!(fx.balance("B"), dec!(-0.5));
    fx.assert_stored_matches_ledger("A");
    fx.assert_stored_matches_ledger("B");
    fx.restart();
    fx.assert_stored_matches_ledger("A");
}

#[test]
fn a_commit_failing_in_flight_discards_the_batch_applied_after_it_too() {
    let (mut fx, fault) = faulty(&["A", "B"]);
    fx.open("A", usage(dec!(1), dec!(-100)), AccountSetup::default());
    fx.open("B", usage(dec!(1), dec!(-100)), AccountSetup::default());
    fx.pay("A", dec!(10), "p1").unwrap();
    let at = "2026-06-01T10:00:00Z";
    fx.apply_batch(&[
        event("A", at, reading(1, 0, 0)),
        event("B", at, reading(1, 0, 0)),
    ])
    .unwrap();

    // A's batch is written and handed over; its commit fails while B's batch is applied.
    fault.fail_writes();
    fx.submit_batch(&[event("A", "2026-06-01T11:00:00Z", reading(2, 3600, 300))])
        .unwrap();
    let refused = fx.submit_batch(&[event("B", "2026-06-01T11:00:00Z", reading(2, 3600, 200))]);
    assert!(refused.is_err(), "the commit in flight failed");
    fault.free();
    std::thread::sleep(std::time::Duration::from_millis(250));
    fx.pay("A", dec!(5), "p2").unwrap();
    assert_eq!(fx.balance("A"), dec!(15), "A's 300 Wh were not kept");
    assert_eq!(
        fx.balance("B"),
        dec!(0),
        "nor B's 200, which built on a lost commit"
    );

    // The next readings carry the cumulative counters: every Wh charged once.
    let at = "2026-06-01T12:00:00Z";
    fx.apply_batch(&[
        event("A", at, reading(3, 7200, 500)),
        event("B", at, reading(3, 7200, 500)),
    ])
    .unwrap();
    assert_eq!(fx.balance("A"), dec!(14.5));
    assert_eq!(fx.balance("B"), dec!(-0.5));
    fx.restart();
    fx.assert_stored_matches_ledger("A");
    fx.assert_stored_matches_ledger("B");
}
