//! The billing tables: units' hot state with their accounts, the journal of ledger entries,
//! idempotency indexes of payment and adjustment references, each organisation's revenue
//! (payments and reversals by time), unit events (counter resets, readings held for
//! review), and closed accounts (taken off their unit so it can be billed again).
//!
//! Ledger entries are appended to one journal keyed by an increasing position, so a batch's
//! entries land together at the end of the tree instead of on a page per account (random
//! inserts made throughput fall as ledgers grew). A run of consecutive positions (up to
//! [`JOURNAL_PACK_MAX`], which partitions reserve as blocks) is one row, keyed by its first
//! position: one insert per run instead of per entry, the engine's busiest write. A row keeps
//! each record as its own byte string, so reading an entry decodes only that entry. Each
//! record points at its account's previous
//! record, and the account holds the head, so an account's ledger is read by walking its chain.
//! A closed account keeps its head, so its ledger stays readable the same way; its entries are
//! never moved or rewritten, and the reference indexes keep pointing at them.
//!
//! Writes go through [`WriteTxn`], one redb write transaction that the engine fills with a whole
//! batch (unit states, accounts, ledger entries, events) and commits once. redb runs one write
//! transaction at a time, so a reference looked up inside a [`WriteTxn`] cannot be claimed by
//! another partition before this one commits.

use std::ops::Range;

use chrono::{DateTime, Utc};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{Store, StoreError, UNIT_STATE};
use crate::account_record::{AccountRecord, ClosedAccount};
use crate::codec;
use crate::engine::{Unit, UnitState};
use crate::ledger::{LedgerEntry, ReadingId};

/// First position of a run → the run's records, in position order, each a postcard byte
/// string of its own.
pub(super) const JOURNAL: TableDefinition<u64, &[u8]> = TableDefinition::new("journal");
/// Most records in one journal row, and the size of the position blocks partitions reserve:
/// small enough that reading one entry (decoding its run) stays cheap.
pub(super) const JOURNAL_PACK_MAX: u64 = 32;
pub(super) const PAYMENT_REFS: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("payment_refs");
pub(super) const ADJUSTMENT_REFS: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("adjustment_refs");
pub(super) const UNIT_EVENTS: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("unit_events");
/// (organisation, unix milliseconds, journal position) → signed amount (rust_decimal's 16-byte
/// form) of each payment and reversal: revenue over a period is one range read, however long
/// the journal of usage charges grows.
pub(super) const REVENUE: TableDefinition<(&str, i64, u64), [u8; 16]> =
    TableDefinition::new("revenue");
/// (serial, closed at, unix milliseconds) → the [`AccountRecord`] as it stood when closed.
pub(super) const CLOSED_ACCOUNTS: TableDefinition<(&str, i64), &[u8]> =
    TableDefinition::new("closed_accounts");

/// Which idempotency index a reference belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefKind {
    /// Providers' payment references, unique per organisation.
    Payment,
    /// Operators' adjustment references, unique per organisation.
    Adjustment,
}

impl RefKind {
    fn table(self) -> TableDefinition<'static, (&'static str, &'static str), &'static [u8]> {
        match self {
            RefKind::Payment => PAYMENT_REFS,
            RefKind::Adjustment => ADJUSTMENT_REFS,
        }
    }
}

/// Where a reference's entry is: the account and the entry's journal position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefIndex {
    /// The account (unit serial) the entry is on; inline up to 24 bytes, as serials are,
    /// so appending an entry allocates nothing for it.
    pub serial: compact_str::CompactString,
    /// The entry's journal position.
    pub pos: u64,
    /// For a payment, the journal position of its reversal once reversed.
    pub reversal_pos: Option<u64>,
}

/// One ledger entry in the journal, chained to its account's previous entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalRecord {
    /// The account (unit serial) the entry is on; inline up to 24 bytes, as serials are,
    /// so appending an entry allocates nothing for it.
    pub serial: compact_str::CompactString,
    /// The entry's number on the account's ledger, from 0.
    pub seq: u64,
    /// Journal position of the account's previous entry.
    pub prev: Option<u64>,
    /// The entry.
    pub entry: LedgerEntry,
}

/// Something that happened to a unit's meter that an operator may need to review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitEvent {
    /// When the server received the reading.
    pub at: DateTime<Utc>,
    /// The reading concerned.
    pub reading: ReadingId,
    /// What happened.
    pub kind: UnitEventKind,
}

/// The kinds of [`UnitEvent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UnitEventKind {
    /// The counters went down with a new boot: a new baseline, the gap not charged.
    CounterReset,
    /// The increase implied more than the rated power: not charged, held for review.
    HeldForReview {
        /// The energy held, watt-hours.
        wh: u64,
    },
}

/// One write transaction over every table.
pub struct WriteTxn {
    txn: redb::WriteTransaction,
}

impl WriteTxn {
    /// The redb transaction, for the other table modules of the store.
    pub(super) fn txn(&self) -> &redb::WriteTransaction {
        &self.txn
    }

    /// Stores units' hot state (device side and account, one record each).
    pub fn put_units<'a>(
        &mut self,
        units: impl IntoIterator<Item = (&'a str, &'a Unit)>,
    ) -> Result<(), StoreError> {
        self.put_encoded(UNIT_STATE, units)
    }

    /// Appends ledger entries to the journal, each at the position reserved for it
    /// (increasing), a run of consecutive positions per row.
    pub fn append_journal<'a>(
        &mut self,
        records: impl IntoIterator<Item = (u64, &'a JournalRecord)>,
    ) -> Result<(), StoreError> {
        // Every record encoded once into `bytes`; a run is the spans of its records.
        let mut bytes = Vec::new();
        let mut runs: Vec<(u64, Vec<Range<usize>>)> = Vec::new();
        for (pos, record) in records {
            let start = bytes.len();
            codec::encode_serde_append(record, &mut bytes)?;
            let span = start..bytes.len();
            match runs.last_mut() {
                Some((first, run))
                    if pos == *first + run.len() as u64
                        && (run.len() as u64) < JOURNAL_PACK_MAX =>
                {
                    run.push(span);
                }
                _ => runs.push((pos, vec![span])),
            }
        }
        let mut table = self.txn.open_table(JOURNAL)?;
        let mut buffer = Vec::new();
        for (first, run) in &runs {
            let records: Vec<Bytes> = run.iter().map(|span| Bytes(&bytes[span.clone()])).collect();
            codec::encode_serde_into(&records, &mut buffer)?;
            table.insert(*first, buffer.as_slice())?;
        }
        Ok(())
    }

    /// Appends unit events, each at its number on its unit's event log.
    pub fn append_events<'a>(
        &mut self,
        events: impl IntoIterator<Item = (&'a str, u64, &'a UnitEvent)>,
    ) -> Result<(), StoreError> {
        let keyed = events
            .into_iter()
            .map(|(serial, seq, event)| ((serial, seq), event));
        self.put_encoded(UNIT_EVENTS, keyed)
    }

    /// Inserts postcard-encoded `rows` into one table, opened once for all of them.
    fn put_encoded<'k, K: redb::Key + 'static, T: Serialize + 'k>(
        &mut self,
        definition: TableDefinition<K, &'static [u8]>,
        rows: impl IntoIterator<Item = (K::SelfType<'k>, &'k T)>,
    ) -> Result<(), StoreError> {
        let mut table = self.txn.open_table(definition)?;
        let mut buffer = Vec::new();
        for (key, value) in rows {
            codec::encode_serde_into(value, &mut buffer)?;
            table.insert(key, buffer.as_slice())?;
        }
        Ok(())
    }

    /// The entry a reference was recorded as, seen from inside this transaction.
    pub fn reference(
        &self,
        kind: RefKind,
        org: &str,
        reference: &str,
    ) -> Result<Option<RefIndex>, StoreError> {
        decoded(&self.txn.open_table(kind.table())?, (org, reference))
    }

    /// Records where a reference's entry is.
    pub fn put_reference(
        &mut self,
        kind: RefKind,
        org: &str,
        reference: &str,
        index: &RefIndex,
    ) -> Result<(), StoreError> {
        let mut table = self.txn.open_table(kind.table())?;
        table.insert((org, reference), codec::encode_serde(index)?.as_slice())?;
        Ok(())
    }

    /// Counts a payment (positive) or reversal (negative) at journal position `pos` in the
    /// organisation's revenue.
    pub fn put_revenue(
        &mut self,
        org: &str,
        at: DateTime<Utc>,
        pos: u64,
        amount: Decimal,
    ) -> Result<(), StoreError> {
        let mut table = self.txn.open_table(REVENUE)?;
        table.insert((org, at.timestamp_millis(), pos), amount.serialize())?;
        Ok(())
    }

    /// Stores `closed` among the unit's closed accounts.
    pub fn put_closed_account(
        &mut self,
        serial: &str,
        closed: &ClosedAccount,
    ) -> Result<(), StoreError> {
        let row = ((serial, closed.closed_at_ms), &closed.record);
        self.put_encoded(CLOSED_ACCOUNTS, [row])
    }

    /// The unit's closed accounts, oldest first, seen from inside this transaction.
    pub fn closed_accounts(&self, serial: &str) -> Result<Vec<ClosedAccount>, StoreError> {
        closed_accounts_in(&self.txn.open_table(CLOSED_ACCOUNTS)?, serial)
    }

    /// One journal record, seen from inside this transaction.
    pub fn journal_record(&self, pos: u64) -> Result<Option<JournalRecord>, StoreError> {
        match journal_run(&self.txn.open_table(JOURNAL)?, pos)? {
            Some(run) => run.get(pos),
            None => Ok(None),
        }
    }

    /// Makes everything written durable; when this returns `Ok` it survives `kill -9`.
    pub fn commit(self) -> Result<(), StoreError> {
        self.txn.commit()?;
        Ok(())
    }
}

impl Store {
    /// Starts a write transaction (waiting for any other to finish).
    pub fn begin(&self) -> Result<WriteTxn, StoreError> {
        Ok(WriteTxn {
            txn: self.begin_write()?,
        })
    }

    /// The committed device side of one unit.
    pub fn unit_state(&self, serial: &str) -> Result<Option<UnitState>, StoreError> {
        Ok(self.unit(serial)?.map(|unit| unit.state))
    }

    /// The committed account of one unit, if it has one.
    pub fn account(&self, serial: &str) -> Result<Option<AccountRecord>, StoreError> {
        Ok(self.unit(serial)?.and_then(|unit| unit.account))
    }

    /// The committed ledger of the unit's open account, oldest first, with each entry's
    /// number: its chain through the journal followed back from the account's head.
    /// Reads the unit's state as [`Store::unit`] does (the whole unit log): where the caller
    /// holds the account, [`Store::account_ledger`] reads only the journal.
    pub fn ledger(&self, serial: &str) -> Result<Vec<(u64, LedgerEntry)>, StoreError> {
        match self.account(serial)? {
            Some(account) => self.account_ledger(serial, &account),
            None => Ok(Vec::new()),
        }
    }

    /// The committed ledger of `account`, unit `serial`'s open or closed account, oldest
    /// first, with each entry's number: its chain through the journal from the account's head.
    pub fn account_ledger(
        &self,
        serial: &str,
        account: &AccountRecord,
    ) -> Result<Vec<(u64, LedgerEntry)>, StoreError> {
        let txn = self.database()?.begin_read()?;
        chain(&txn.open_table(JOURNAL)?, serial, account.ledger_head)
    }

    /// The committed closed accounts of one unit, oldest first.
    pub fn closed_accounts(&self, serial: &str) -> Result<Vec<ClosedAccount>, StoreError> {
        let txn = self.database()?.begin_read()?;
        closed_accounts_in(&txn.open_table(CLOSED_ACCOUNTS)?, serial)
    }

    /// The position after the journal's last record: where appends continue after a restart.
    pub(super) fn journal_end(db: &redb::Database) -> Result<u64, StoreError> {
        let txn = db.begin_read()?;
        let journal = txn.open_table(JOURNAL)?;
        let Some((first, records)) = journal.last()? else {
            return Ok(0);
        };
        let run: Vec<&[u8]> =
            postcard::from_bytes(records.value()).map_err(codec::CodecError::from)?;
        Ok(first.value() + run.len() as u64)
    }

    /// The committed events of one unit, oldest first, with each event's number.
    pub fn unit_events(&self, serial: &str) -> Result<Vec<(u64, UnitEvent)>, StoreError> {
        self.log(UNIT_EVENTS, serial)
    }

    /// Where a reference's entry is, as committed.
    pub fn reference(
        &self,
        kind: RefKind,
        org: &str,
        reference: &str,
    ) -> Result<Option<RefIndex>, StoreError> {
        let txn = self.database()?.begin_read()?;
        decoded(&txn.open_table(kind.table())?, (org, reference))
    }

    /// Payments net of reversals recorded for `org` in `[from_ms, to_ms)`, unix milliseconds.
    pub fn revenue(&self, org: &str, from_ms: i64, to_ms: i64) -> Result<Decimal, StoreError> {
        let txn = self.database()?.begin_read()?;
        let table = txn.open_table(REVENUE)?;
        let mut total = Decimal::ZERO;
        if from_ms < to_ms {
            for row in table.range((org, from_ms, 0)..(org, to_ms, 0))? {
                total += Decimal::deserialize(row?.1.value());
            }
        }
        Ok(total)
    }

    fn log<T: serde::de::DeserializeOwned>(
        &self,
        table: TableDefinition<(&str, u64), &[u8]>,
        serial: &str,
    ) -> Result<Vec<(u64, T)>, StoreError> {
        let txn = self.database()?.begin_read()?;
        let table = txn.open_table(table)?;
        let mut out = Vec::new();
        for row in table.range((serial, 0)..=(serial, u64::MAX))? {
            let (key, value) = row?;
            out.push((key.value().1, codec::decode_serde(value.value())?));
        }
        Ok(out)
    }
}

/// The ledger chain of an account of unit `serial` ending at journal position `head`, oldest
/// first, with each entry's number; a missing link or another unit's entry means the file is
/// damaged.
fn chain(
    journal: &impl ReadableTable<u64, &'static [u8]>,
    serial: &str,
    head: Option<u64>,
) -> Result<Vec<(u64, LedgerEntry)>, StoreError> {
    let mut entries = Vec::new();
    let mut next = head;
    // Consecutive entries of one account often share a run: decode each run once.
    let mut run: Option<JournalRun> = None;
    while let Some(pos) = next {
        if !run.as_ref().is_some_and(|run| run.holds(pos)) {
            run = journal_run(journal, pos)?;
        }
        let found = match &run {
            Some(run) => run.get(pos)?,
            None => None,
        };
        let record = found.ok_or_else(|| {
            StoreError::Corrupt(format!("{serial}: ledger chain broken at journal {pos}"))
        })?;
        if record.serial != serial {
            return Err(StoreError::Corrupt(format!(
                "{serial}: journal {pos} belongs to {}",
                record.serial
            )));
        }
        next = record.prev;
        entries.push((record.seq, record.entry));
    }
    entries.reverse();
    Ok(entries)
}

/// A record's encoding, written as one byte string (serde would write a `&[u8]` byte by
/// byte); reads back as a `&[u8]`.
pub(super) struct Bytes<'a>(pub(super) &'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

/// One journal row: the records at consecutive positions from `first`, still encoded.
struct JournalRun {
    first: u64,
    bytes: Vec<u8>,
    /// Where each record's encoding is in `bytes`.
    spans: Vec<Range<usize>>,
}

impl JournalRun {
    fn holds(&self, pos: u64) -> bool {
        pos.checked_sub(self.first)
            .is_some_and(|index| index < self.spans.len() as u64)
    }

    /// The record at `pos`, decoded; `None` if the run does not hold it.
    fn get(&self, pos: u64) -> Result<Option<JournalRecord>, StoreError> {
        let Some(span) = pos
            .checked_sub(self.first)
            .and_then(|index| self.spans.get(usize::try_from(index).ok()?))
        else {
            return Ok(None);
        };
        Ok(Some(codec::decode_serde(&self.bytes[span.clone()])?))
    }
}

/// The journal row that would hold position `pos` (the last one starting at or before it),
/// through a write or a read transaction alike; `None` if there is none. The row may still
/// end before `pos` (a position reserved and never used).
fn journal_run(
    journal: &impl ReadableTable<u64, &'static [u8]>,
    pos: u64,
) -> Result<Option<JournalRun>, StoreError> {
    let Some(row) = journal.range(..=pos)?.next_back() else {
        return Ok(None);
    };
    let (first, records) = row?;
    let bytes = records.value().to_vec();
    let records: Vec<&[u8]> = postcard::from_bytes(&bytes).map_err(codec::CodecError::from)?;
    // postcard borrows byte strings from its input: each record is a slice of `bytes`.
    let base = bytes.as_ptr() as usize;
    let spans = records
        .iter()
        .map(|record| {
            let start = record.as_ptr() as usize - base;
            start..start + record.len()
        })
        .collect();
    Ok(Some(JournalRun {
        first: first.value(),
        bytes,
        spans,
    }))
}

/// The closed accounts of unit `serial`, oldest first, through a write or a read transaction
/// alike.
fn closed_accounts_in(
    table: &impl ReadableTable<(&'static str, i64), &'static [u8]>,
    serial: &str,
) -> Result<Vec<ClosedAccount>, StoreError> {
    let mut out = Vec::new();
    for row in table.range((serial, i64::MIN)..=(serial, i64::MAX))? {
        let (key, value) = row?;
        out.push(ClosedAccount {
            closed_at_ms: key.value().1,
            record: codec::decode_serde(value.value())?,
        });
    }
    Ok(out)
}

/// The postcard record under `key`, read through a write or a read transaction alike.
pub(super) fn decoded<'k, K: redb::Key + 'static, T: serde::de::DeserializeOwned>(
    table: &impl ReadableTable<K, &'static [u8]>,
    key: K::SelfType<'k>,
) -> Result<Option<T>, StoreError> {
    let found = table.get(key)?;
    Ok(found
        .map(|value| codec::decode_serde(value.value()))
        .transpose()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{EntryKind, EntryRef};
    use redb::ReadableTableMetadata;

    fn record(serial: &str, seq: u64, prev: Option<u64>) -> JournalRecord {
        JournalRecord {
            serial: serial.into(),
            seq,
            prev,
            entry: LedgerEntry {
                kind: EntryKind::Adjustment,
                amount: Decimal::from(seq),
                reason: format!("entry {seq}").into(),
                at: DateTime::UNIX_EPOCH,
                reference: EntryRef::Operator(format!("ref-{seq}")),
                entered_by: None,
            },
        }
    }

    /// Chains one account's records over `positions`, in order.
    fn ledger(serial: &str, positions: impl Iterator<Item = u64>) -> Vec<(u64, JournalRecord)> {
        let mut prev = None;
        positions
            .enumerate()
            .map(|(seq, pos)| {
                let chained = (pos, record(serial, seq as u64, prev));
                prev = Some(pos);
                chained
            })
            .collect()
    }

    #[test]
    fn interleaved_blocks_read_back_by_position_and_unused_positions_read_as_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.redb");
        let store = Store::open(&path).unwrap();
        // Two partitions take blocks in turn; A uses 40 positions over two commits, running
        // into its second block, which it leaves mostly unused; B uses 3 of its block.
        let (a1, b1, a2) = (
            store.reserve_journal_block(),
            store.reserve_journal_block(),
            store.reserve_journal_block(),
        );
        let a = ledger("A", a1.clone().chain(a2.clone()).take(40));
        let b = ledger("B", b1.clone().take(3));
        for commit in [&a[..20], &b[..], &a[20..]] {
            let mut txn = store.begin().unwrap();
            txn.append_journal(commit.iter().map(|(pos, record)| (*pos, record)))
                .unwrap();
            txn.commit().unwrap();
        }

        let txn = store.begin().unwrap();
        for (pos, record) in a.iter().chain(&b) {
            assert_eq!(txn.journal_record(*pos).unwrap().as_ref(), Some(record));
        }
        for unused in [b1.start + 3, a2.start + 8, a2.end - 1, a2.end + 5] {
            assert_eq!(
                txn.journal_record(unused).unwrap(),
                None,
                "position {unused}"
            );
        }
        drop(txn);
        let read = store.database().unwrap().begin_read().unwrap();
        let journal = read.open_table(JOURNAL).unwrap();
        assert_eq!(
            journal.len().unwrap(),
            4,
            "A's first 20, B's 3, A's next 12 to its block's end, A's 8 in its second block"
        );
        let (last_a, _) = a[39];
        let entries = chain(&journal, "A", Some(last_a)).unwrap();
        let seqs: Vec<u64> = entries.iter().map(|(seq, _)| *seq).collect();
        assert_eq!(seqs, (0..40).collect::<Vec<_>>());
        assert!(matches!(
            chain(&journal, "B", Some(last_a)),
            Err(StoreError::Corrupt(_))
        ));
        drop((journal, read, store));

        let store = Store::open(&path).unwrap();
        assert_eq!(
            store.reserve_journal_block().start,
            last_a + 1,
            "after a restart appends continue after the last record, never over one"
        );
    }
}
