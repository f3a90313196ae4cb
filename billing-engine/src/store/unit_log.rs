//! The unit log: where the engine's group commits write units' changed hot state, as an
//! append, instead of rewriting each unit's record in the `unit_state` B-tree.
//!
//! A commit of a batch used to rewrite every changed unit's record in place: at 10^5 units a
//! batch of readings touches nearly every leaf page of `unit_state`, so each commit copied
//! and wrote most of the table. Now a commit appends one row holding an entry per changed
//! unit (its serial and a [`LoggedUnit`]: the whole record, or only the fields metering
//! changed), and `unit_state` holds checkpoints. A partition checkpoints a unit (writes its record to `unit_state`)
//! before it deletes the last row it needs, so a row goes only once every unit in it has a
//! checkpoint at least as new; see [`crate::engine`] for the policy.
//!
//! Every change to a unit's record goes through the log, and a checkpoint is the unit's state
//! as of its latest entry when written. Rows go oldest first, so the log keeps, for every
//! unit, its entries since some point before its checkpoint; each entry sets fields to the
//! values its commit left. Replaying a unit's entries in order over its checkpoint therefore
//! ends at its committed state: every field ends as its latest entry (or the checkpoint) set
//! it. That is what every read here returns, and what [`Store::fold_unit_log`] writes back (at
//! start-up, so a restart after `kill -9` begins from every unit's committed state, and an
//! empty log).
//!
//! Rows are keyed by a number the store hands out in increasing order; one partition's rows
//! are in the order it committed them, which is all the order a unit needs (one partition
//! writes it).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::atomic::Ordering;

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::billing::{Bytes, WriteTxn, decoded};
use super::{Store, StoreError, UNIT_STATE};
use crate::codec;
use crate::engine::{LoggedUnit, Unit};

/// Row number → the entries one commit wrote, each a byte string holding a serial and a
/// [`LoggedUnit`].
pub(super) const UNIT_LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("unit_log");

/// One row's entries, encoded as they are added. A partition adds each unit's entry as soon
/// as it has applied the unit's events of a batch, while the unit is still in the CPU's
/// caches: encoding them when the batch is written read every unit from memory again, as a
/// shuffled batch's units no longer fit the caches by then.
#[derive(Default)]
pub(crate) struct UnitLogRow {
    bytes: Vec<u8>,
    /// One entry being encoded; kept for its capacity.
    entry: Vec<u8>,
    entries: usize,
}

impl UnitLogRow {
    /// A row of `entries`, in order.
    pub(crate) fn of<'a>(
        entries: impl IntoIterator<Item = (&'a str, LoggedUnit<'a>)>,
    ) -> Result<UnitLogRow, StoreError> {
        let mut row = UnitLogRow::default();
        for (serial, logged) in entries {
            row.push(serial, logged)?;
        }
        Ok(row)
    }

    /// Adds `serial`'s entry.
    pub(crate) fn push(&mut self, serial: &str, logged: LoggedUnit<'_>) -> Result<(), StoreError> {
        codec::encode_serde_into(&(serial, logged), &mut self.entry)?;
        codec::encode_serde_append(&Bytes(&self.entry), &mut self.bytes)?;
        self.entries += 1;
        Ok(())
    }

    /// How many entries the row holds.
    pub(crate) fn len(&self) -> usize {
        self.entries
    }

    /// Empties the row, keeping its buffers for the next.
    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
        self.entries = 0;
    }
}

impl WriteTxn {
    /// Appends `entries` as one row under `row`, a number from
    /// [`Store::reserve_unit_log_row`].
    pub(crate) fn append_unit_log(
        &mut self,
        row: u64,
        entries: &UnitLogRow,
    ) -> Result<(), StoreError> {
        self.txn()
            .open_table(UNIT_LOG)?
            .insert(row, entries.bytes.as_slice())?;
        Ok(())
    }

    /// Deletes log rows whose every unit has a checkpoint at least as new.
    pub fn drop_unit_log_rows(
        &mut self,
        rows: impl IntoIterator<Item = u64>,
    ) -> Result<(), StoreError> {
        let mut table = self.txn().open_table(UNIT_LOG)?;
        for row in rows {
            table.remove(row)?;
        }
        Ok(())
    }
}

impl Store {
    /// A number for the next log row, larger than every row's in the log.
    pub fn reserve_unit_log_row(&self) -> u64 {
        self.unit_log_next.fetch_add(1, Ordering::Relaxed)
    }

    /// The number after the log's last row: where numbering continues when the store opens
    /// (the log is empty then, unless folding it failed).
    pub(super) fn unit_log_end(db: &redb::Database) -> Result<u64, StoreError> {
        let txn = db.begin_read()?;
        let log = txn.open_table(UNIT_LOG)?;
        let end = log.last()?.map_or(0, |(row, _)| row.value() + 1);
        Ok(end)
    }

    /// Folds the log ([`Store::fold_unit_log`]) if it holds anything; a failure (a full disk)
    /// is logged and leaves the log as it is, which every read folds in anyway.
    pub fn fold_unit_log_or_warn(&self) {
        let started = std::time::Instant::now();
        match self.fold_unit_log() {
            Ok(0) => {}
            Ok(units) => tracing::info!(
                units,
                seconds = started.elapsed().as_secs_f64(),
                "unit log folded into checkpoints"
            ),
            Err(error) => tracing::warn!(%error, "unit log not folded; reads fold it in"),
        }
    }

    /// Writes every unit's latest logged record to `unit_state` and empties the log, in one
    /// transaction; returns how many units it wrote. Safe at any time: a row holds only
    /// committed states, and a unit's latest one is its state.
    pub fn fold_unit_log(&self) -> Result<usize, StoreError> {
        let empty = {
            let txn = self.database()?.begin_read()?;
            txn.open_table(UNIT_LOG)?.is_empty()?
        };
        if empty {
            return Ok(0);
        }
        let mut txn = self.begin()?;
        let mut latest = HashMap::new();
        {
            let log = txn.txn().open_table(UNIT_LOG)?;
            let checkpoints = txn.txn().open_table(UNIT_STATE)?;
            let checkpoint = |serial: &str| decoded(&checkpoints, serial);
            replay(&log, |_| true, checkpoint, &mut latest)?;
        }
        let mut units: Vec<(&str, &Unit)> = latest
            .iter()
            .map(|(serial, unit)| (serial.as_str(), unit))
            .collect();
        units.sort_unstable_by_key(|(serial, _)| *serial);
        txn.put_units(units)?;
        txn.txn().open_table(UNIT_LOG)?.retain(|_, _| false)?;
        txn.commit()?;
        Ok(latest.len())
    }

    /// The committed hot state of every unit whose serial `owned` accepts, in serial order:
    /// checkpoints, with the log replayed over them.
    pub fn units_hot(
        &self,
        owned: impl Fn(&str) -> bool,
    ) -> Result<Vec<(String, Unit)>, StoreError> {
        let txn = self.database()?.begin_read()?;
        let mut units = Vec::new();
        for entry in txn.open_table(UNIT_STATE)?.iter()? {
            let (serial, unit) = entry?;
            if owned(serial.value()) {
                units.push((
                    serial.value().to_owned(),
                    codec::decode_serde(unit.value())?,
                ));
            }
        }
        // Checkpoints come in serial order; only the units in the log are looked up.
        let position = |units: &[(String, Unit)], serial: &str| {
            units.binary_search_by(|(held, _)| held.as_str().cmp(serial))
        };
        let mut replayed = HashMap::new();
        let checkpoint =
            |serial: &str| Ok(position(&units, serial).ok().map(|at| units[at].1.clone()));
        replay(&txn.open_table(UNIT_LOG)?, owned, checkpoint, &mut replayed)?;
        let mut new = Vec::new();
        for (serial, unit) in replayed {
            match position(&units, &serial) {
                Ok(at) => units[at].1 = unit,
                Err(_) => new.push((serial, unit)),
            }
        }
        if !new.is_empty() {
            units.extend(new);
            units.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        }
        Ok(units)
    }

    /// The committed hot state of one unit. The log is not indexed by serial, so this reads
    /// the whole log: for tools, tests and recovery; a running partition answers from memory.
    pub fn unit(&self, serial: &str) -> Result<Option<Unit>, StoreError> {
        let txn = self.database()?.begin_read()?;
        let checkpoints = txn.open_table(UNIT_STATE)?;
        let mut units = HashMap::new();
        let checkpoint = |serial: &str| decoded(&checkpoints, serial);
        replay(
            &txn.open_table(UNIT_LOG)?,
            |logged| logged == serial,
            checkpoint,
            &mut units,
        )?;
        match units.remove(serial) {
            Some(unit) => Ok(Some(unit)),
            None => decoded(&checkpoints, serial),
        }
    }
}

#[cfg(test)]
impl Store {
    /// Records in the log, for tests of its bound.
    pub(crate) fn unit_log_records(&self) -> Result<usize, StoreError> {
        let txn = self.database()?.begin_read()?;
        let mut records = 0;
        for row in txn.open_table(UNIT_LOG)?.iter()? {
            for entry in row_entries(row?.1.value()) {
                entry?;
                records += 1;
            }
        }
        Ok(records)
    }

    /// A unit's checkpoint alone, for tests of when one is written.
    pub(crate) fn checkpoint(&self, serial: &str) -> Result<Option<Unit>, StoreError> {
        let txn = self.database()?.begin_read()?;
        decoded(&txn.open_table(UNIT_STATE)?, serial)
    }
}

/// Replays every log entry of the units `wanted` accepts over `units`, through a read or a
/// write transaction alike. A unit missing from `units` starts from `checkpoint` (or empty,
/// as a unit first seen in memory does). Only the wanted units' entries are decoded.
fn replay(
    log: &impl ReadableTable<u64, &'static [u8]>,
    wanted: impl Fn(&str) -> bool,
    checkpoint: impl Fn(&str) -> Result<Option<Unit>, StoreError>,
    units: &mut HashMap<String, Unit>,
) -> Result<(), StoreError> {
    for row in log.iter()? {
        let (_, row) = row?;
        for entry in row_entries(row.value()) {
            let (serial, logged) =
                postcard::take_from_bytes::<&str>(entry?).map_err(codec::CodecError::from)?;
            if !wanted(serial) {
                continue;
            }
            let logged: LoggedUnit = codec::decode_serde_borrowed(logged)?;
            let unit = match units.entry(serial.to_owned()) {
                Entry::Occupied(unit) => unit.into_mut(),
                Entry::Vacant(vacant) => vacant.insert(checkpoint(serial)?.unwrap_or_default()),
            };
            logged.replay(unit);
        }
    }
    Ok(())
}

/// The entries of one row, each a serial and a [`LoggedUnit`] still encoded.
fn row_entries(row: &[u8]) -> impl Iterator<Item = Result<&[u8], StoreError>> {
    let mut rest = row;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        Some(match postcard::take_from_bytes::<&[u8]>(rest) {
            Ok((entry, after)) => {
                rest = after;
                Ok(entry)
            }
            Err(error) => {
                rest = &[];
                Err(codec::CodecError::from(error).into())
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Change;

    fn whole(unit: &Unit) -> LoggedUnit<'_> {
        LoggedUnit::of(unit, Change::Whole)
    }

    fn unit(consumed_wh: u64) -> Unit {
        let mut unit = Unit::default();
        unit.state.consumed_wh = consumed_wh;
        unit
    }

    fn consumed(store: &Store, serial: &str) -> Option<u64> {
        store
            .unit(serial)
            .unwrap()
            .map(|unit| unit.state.consumed_wh)
    }

    #[test]
    fn the_latest_logged_record_wins_over_the_checkpoint_and_folding_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.redb");
        let store = Store::open(&path).unwrap();
        let mut txn = store.begin().unwrap();
        txn.put_units([("A", &unit(1)), ("B", &unit(10)), ("C", &unit(100))])
            .unwrap();
        txn.commit().unwrap();
        for (a, b) in [(2, 11), (3, 12)] {
            let row = store.reserve_unit_log_row();
            let mut txn = store.begin().unwrap();
            let (a, b) = (unit(a), unit(b));
            txn.append_unit_log(
                row,
                &UnitLogRow::of([("A", whole(&a)), ("B", whole(&b))]).unwrap(),
            )
            .unwrap();
            txn.commit().unwrap();
        }
        let row = store.reserve_unit_log_row();
        let mut txn = store.begin().unwrap();
        txn.append_unit_log(row, &UnitLogRow::of([("D", whole(&unit(7)))]).unwrap())
            .unwrap();
        txn.commit().unwrap();

        assert_eq!(consumed(&store, "A"), Some(3), "latest row");
        assert_eq!(consumed(&store, "C"), Some(100), "checkpoint only");
        assert_eq!(consumed(&store, "D"), Some(7), "logged, never checkpointed");
        assert_eq!(consumed(&store, "E"), None);
        let mut hot = store.units_hot(|serial| serial != "B").unwrap();
        hot.sort_by(|a, b| a.0.cmp(&b.0));
        let hot: Vec<(&str, u64)> = hot
            .iter()
            .map(|(serial, unit)| (serial.as_str(), unit.state.consumed_wh))
            .collect();
        assert_eq!(hot, [("A", 3), ("C", 100), ("D", 7)]);

        drop(store);
        let store = Store::open(&path).unwrap();
        assert_eq!(consumed(&store, "B"), Some(12), "folded at open");
        assert_eq!(
            store.fold_unit_log().unwrap(),
            0,
            "the log is empty after it"
        );
        assert_eq!(store.checkpoint("D").unwrap(), Some(unit(7)));
    }

    #[test]
    fn dropped_rows_are_gone_and_the_checkpoint_shows_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("drop.redb")).unwrap();
        let mut txn = store.begin().unwrap();
        txn.put_units([("A", &unit(5))]).unwrap();
        let row = store.reserve_unit_log_row();
        txn.append_unit_log(row, &UnitLogRow::of([("A", whole(&unit(6)))]).unwrap())
            .unwrap();
        txn.commit().unwrap();
        assert_eq!(consumed(&store, "A"), Some(6));
        let mut txn = store.begin().unwrap();
        txn.drop_unit_log_rows([row]).unwrap();
        txn.commit().unwrap();
        assert_eq!(consumed(&store, "A"), Some(5));
        assert!(store.reserve_unit_log_row() > row, "numbers only grow");
    }

    #[test]
    fn a_readings_entry_sets_the_metered_fields_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("readings.redb")).unwrap();
        let mut checkpoint = unit(1);
        checkpoint.state.online = true;
        checkpoint.state.held_wh = 40;
        let mut metered = unit(9);
        metered.state.last_seen_ms = 77;
        let mut txn = store.begin().unwrap();
        txn.put_units([("A", &checkpoint)]).unwrap();
        let row = store.reserve_unit_log_row();
        let readings = LoggedUnit::of(&metered, Change::Readings);
        txn.append_unit_log(row, &UnitLogRow::of([("A", readings)]).unwrap())
            .unwrap();
        txn.commit().unwrap();
        let mut expected = checkpoint;
        expected.state.consumed_wh = 9;
        expected.state.last_seen_ms = 77;
        assert_eq!(store.unit("A").unwrap(), Some(expected));
    }
}
