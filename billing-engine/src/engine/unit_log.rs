//! A partition's book of the unit log rows it wrote, and when it checkpoints.
//!
//! Each commit appends one row with the records of the units it changed (see
//! [`crate::store`]'s `unit_log`). A unit changed since its last checkpoint waits in a queue,
//! at the first row it went into since. When the partition's rows hold more entries than its
//! [`UnitLogBound`] allows, the commit also drops the oldest rows, and first checkpoints every
//! unit waiting since one of them, with its current state (committed by the same transaction).
//!
//! So a unit is checkpointed once per bound's worth of entries the partition logs, not once
//! per commit; what a restart replays is bounded by the same number. The bound grows with the
//! units held: with a fixed one smaller than the fleet, every reading would also cost a
//! checkpoint (at 10^6 units and 2^20 entries, shuffled readings ran at 50k/s, against 342k/s
//! with eight entries per unit). A commit's
//! plan is made before it commits and booked only after it did, so a failed commit leaves the
//! book as it was.

use std::collections::VecDeque;

use compact_str::CompactString;

use super::hot_units::{HotUnits, Slot};
use super::logged::{Change, LoggedUnit};
use crate::store::{Store, StoreError, UnitLogRow, WriteTxn};

/// How many unit log entries a partition keeps before it checkpoints units: the larger of a
/// floor and a multiple of the units it holds. More means fewer whole-record writes; fewer,
/// a shorter replay at start-up (a full log of 8 × 10^6 entries took 15 s).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnitLogBound {
    /// Entries kept whatever the number of units.
    pub entries_min: usize,
    /// Entries kept per unit held: a unit reporting as often as the rest is written whole
    /// about once per this many of its readings.
    pub entries_per_unit: usize,
}

impl Default for UnitLogBound {
    fn default() -> Self {
        UnitLogBound {
            entries_min: 1 << 20,
            entries_per_unit: 8,
        }
    }
}

impl UnitLogBound {
    /// Entries kept by a partition holding `units` units (at least one).
    pub fn entries(&self, units: usize) -> usize {
        units
            .saturating_mul(self.entries_per_unit)
            .max(self.entries_min)
            .max(1)
    }
}

/// The partition's rows in the log and the units waiting for a checkpoint.
pub(super) struct UnitLogBook {
    /// Rows this partition wrote that are still in the log, oldest first: (row, records).
    rows: VecDeque<(u64, usize)>,
    /// Records in `rows`.
    entries: usize,
    /// Units changed since their checkpoint, by the first row they went into since, oldest
    /// first. An entry whose unit no longer says that row (checkpointed, or reloaded) is
    /// skipped.
    waiting: VecDeque<(CompactString, u64)>,
    /// How many records are kept before the oldest rows are dropped.
    bound: UnitLogBound,
    /// `sunledger_billing_unit_log_entries` of this partition.
    entries_gauge: metrics::Gauge,
}

/// What one commit writes to the log, booked once it committed.
pub(super) struct LogWrite {
    /// The new row and its records; `None` if the commit changed no unit.
    row: Option<(u64, usize)>,
    /// Entries at the front of the queue the commit checkpointed.
    checkpointed: usize,
    /// Rows at the front the commit dropped.
    dropped: usize,
}

impl UnitLogBook {
    /// An empty book (the store folds the log when it opens, and a partition when it loads).
    pub(super) fn new(partition: usize) -> UnitLogBook {
        UnitLogBook {
            rows: VecDeque::new(),
            entries: 0,
            waiting: VecDeque::new(),
            bound: UnitLogBound::default(),
            entries_gauge: metrics::gauge!("sunledger_billing_unit_log_entries", "partition" => partition.to_string()),
        }
    }

    /// Marks the units waiting for a checkpoint in `units`, reloaded from the file: the rows
    /// the book knows are still in the log.
    pub(super) fn mark_waiting(&self, units: &mut HotUnits) {
        for (serial, since) in &self.waiting {
            if let Some(slot) = units.slot(serial) {
                units.set_logged_since(slot, Some(*since));
            }
        }
    }

    /// The slot of `serial` if it still waits since `since` (not checkpointed since, nor
    /// reloaded).
    fn still_waiting(units: &HotUnits, serial: &str, since: u64) -> Option<Slot> {
        units
            .slot(serial)
            .filter(|slot| units.logged_since(*slot) == Some(since))
    }

    /// Keeps as many records as `bound` allows, from the next commit on.
    pub(super) fn set_bound(&mut self, bound: UnitLogBound) {
        self.bound = bound;
    }

    /// Writes the units in `changed` (no repeats, in slot order), each as its change calls
    /// for, as a new row into `txn`, with the checkpoints and row drops that keep the book
    /// within its bound. `encoded` is that row if the partition already encoded it.
    pub(super) fn write(
        &self,
        store: &Store,
        txn: &mut WriteTxn,
        units: &HotUnits,
        changed: &[(Slot, Change)],
        encoded: Option<&UnitLogRow>,
    ) -> Result<LogWrite, StoreError> {
        let mut plan = LogWrite {
            row: None,
            checkpointed: 0,
            dropped: 0,
        };
        if changed.is_empty() {
            return Ok(plan);
        }
        let row = store.reserve_unit_log_row();
        match encoded {
            Some(entries) => {
                debug_assert_eq!(entries.len(), changed.len(), "encoded for `changed`");
                txn.append_unit_log(row, entries)?
            }
            None => {
                let entries = UnitLogRow::of(changed.iter().map(|(slot, change)| {
                    let (serial, unit) = units.at(*slot);
                    (serial, LoggedUnit::of(unit, *change))
                }))?;
                txn.append_unit_log(row, &entries)?
            }
        }
        plan.row = Some((row, changed.len()));
        let mut entries = self.entries + changed.len();
        let entries_max = self.bound.entries(units.len());
        let mut checkpoints = Vec::new();
        while entries > entries_max && plan.dropped < self.rows.len() {
            let (oldest, records) = self.rows[plan.dropped];
            while let Some((serial, since)) = self.waiting.get(plan.checkpointed) {
                if *since > oldest {
                    break;
                }
                checkpoints.extend(Self::still_waiting(units, serial, *since));
                plan.checkpointed += 1;
            }
            plan.dropped += 1;
            entries -= records;
        }
        if plan.dropped > 0 {
            // In key order, neighbouring records share pages.
            checkpoints.sort_unstable_by(|a, b| units.at(*a).0.cmp(units.at(*b).0));
            txn.put_units(checkpoints.iter().map(|slot| units.at(*slot)))?;
            txn.drop_unit_log_rows(self.rows.iter().take(plan.dropped).map(|(row, _)| *row))?;
            metrics::counter!("sunledger_billing_checkpoints_total")
                .increment(checkpoints.len() as u64);
        }
        Ok(plan)
    }

    /// Books a committed `plan` of the units in `changed`.
    pub(super) fn committed(
        &mut self,
        plan: LogWrite,
        units: &mut HotUnits,
        changed: &[(Slot, Change)],
    ) {
        let Some((row, records)) = plan.row else {
            return;
        };
        for (slot, _) in changed {
            if units.logged_since(*slot).is_none() {
                units.set_logged_since(*slot, Some(row));
                self.waiting.push_back((units.at(*slot).0.into(), row));
            }
        }
        // Checkpointed with their state as this commit left it, changed or not.
        for (serial, since) in self.waiting.drain(..plan.checkpointed) {
            if let Some(slot) = Self::still_waiting(units, &serial, since) {
                units.set_logged_since(slot, None);
            }
        }
        for (_, dropped) in self.rows.drain(..plan.dropped) {
            self.entries -= dropped;
        }
        self.rows.push_back((row, records));
        self.entries += records;
        self.entries_gauge.set(self.entries as f64);
    }
}
