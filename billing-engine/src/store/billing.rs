//! The billing tables: accounts, their append-only ledgers, idempotency indexes of payment and
//! adjustment references, and unit events (counter resets, readings held for review).
//!
//! Writes go through [`WriteTxn`], one redb write transaction that the engine fills with a whole
//! batch (unit states, accounts, ledger entries, events) and commits once. redb runs one write
//! transaction at a time, so a reference looked up inside a [`WriteTxn`] cannot be claimed by
//! another partition before this one commits.

use chrono::{DateTime, Utc};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError, UNIT_STATE};
use crate::account_record::AccountRecord;
use crate::codec;
use crate::engine::UnitState;
use crate::ledger::{LedgerEntry, ReadingId};

pub(super) const ACCOUNTS: TableDefinition<&str, &[u8]> = TableDefinition::new("accounts");
pub(super) const LEDGER: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("ledger");
pub(super) const PAYMENT_REFS: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("payment_refs");
pub(super) const ADJUSTMENT_REFS: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("adjustment_refs");
pub(super) const UNIT_EVENTS: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("unit_events");

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

/// Where a reference's entry is: the account and the entry's number on its ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefIndex {
    /// The account (unit serial) the entry is on.
    pub serial: String,
    /// The entry's number on that ledger.
    pub seq: u64,
    /// For a payment, the number of its reversal entry once reversed.
    pub reversal_seq: Option<u64>,
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
    /// Stores unit states.
    pub fn put_unit_states<'a>(
        &mut self,
        states: impl IntoIterator<Item = (&'a str, &'a UnitState)>,
    ) -> Result<(), StoreError> {
        let mut table = self.txn.open_table(UNIT_STATE)?;
        for (serial, state) in states {
            table.insert(serial, codec::encode(state)?.as_slice())?;
        }
        Ok(())
    }

    /// Stores accounts.
    pub fn put_accounts<'a>(
        &mut self,
        accounts: impl IntoIterator<Item = (&'a str, &'a AccountRecord)>,
    ) -> Result<(), StoreError> {
        let mut table = self.txn.open_table(ACCOUNTS)?;
        for (serial, account) in accounts {
            table.insert(serial, codec::encode_serde(account)?.as_slice())?;
        }
        Ok(())
    }

    /// Appends ledger entries, each at its number on its account's ledger.
    pub fn append_ledger<'a>(
        &mut self,
        entries: impl IntoIterator<Item = (&'a str, u64, &'a LedgerEntry)>,
    ) -> Result<(), StoreError> {
        let mut table = self.txn.open_table(LEDGER)?;
        for (serial, seq, entry) in entries {
            table.insert((serial, seq), codec::encode_serde(entry)?.as_slice())?;
        }
        Ok(())
    }

    /// Appends unit events, each at its number on its unit's event log.
    pub fn append_events<'a>(
        &mut self,
        events: impl IntoIterator<Item = (&'a str, u64, &'a UnitEvent)>,
    ) -> Result<(), StoreError> {
        let mut table = self.txn.open_table(UNIT_EVENTS)?;
        for (serial, seq, event) in events {
            table.insert((serial, seq), codec::encode_serde(event)?.as_slice())?;
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
        let table = self.txn.open_table(kind.table())?;
        let found = table.get((org, reference))?;
        Ok(found
            .map(|index| codec::decode_serde(index.value()))
            .transpose()?)
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

    /// One ledger entry, seen from inside this transaction.
    pub fn ledger_entry(&self, serial: &str, seq: u64) -> Result<Option<LedgerEntry>, StoreError> {
        let table = self.txn.open_table(LEDGER)?;
        let found = table.get((serial, seq))?;
        Ok(found
            .map(|entry| codec::decode_serde(entry.value()))
            .transpose()?)
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
            txn: self.db.begin_write()?,
        })
    }

    /// The committed account of every unit whose serial `owned` accepts.
    pub fn accounts(
        &self,
        owned: impl Fn(&str) -> bool,
    ) -> Result<Vec<(String, AccountRecord)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ACCOUNTS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (serial, account) = entry?;
            if owned(serial.value()) {
                out.push((
                    serial.value().to_owned(),
                    codec::decode_serde(account.value())?,
                ));
            }
        }
        Ok(out)
    }

    /// The committed account of one unit.
    pub fn account(&self, serial: &str) -> Result<Option<AccountRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ACCOUNTS)?;
        let found = table.get(serial)?;
        Ok(found
            .map(|account| codec::decode_serde(account.value()))
            .transpose()?)
    }

    /// The committed ledger of one account, oldest first, with each entry's number.
    pub fn ledger(&self, serial: &str) -> Result<Vec<(u64, LedgerEntry)>, StoreError> {
        self.log(LEDGER, serial)
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
        let txn = self.db.begin_read()?;
        let table = txn.open_table(kind.table())?;
        let found = table.get((org, reference))?;
        Ok(found
            .map(|index| codec::decode_serde(index.value()))
            .transpose()?)
    }

    fn log<T: serde::de::DeserializeOwned>(
        &self,
        table: TableDefinition<(&str, u64), &[u8]>,
        serial: &str,
    ) -> Result<Vec<(u64, T)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(table)?;
        let mut out = Vec::new();
        for row in table.range((serial, 0)..=(serial, u64::MAX))? {
            let (key, value) = row?;
            out.push((key.value().1, codec::decode_serde(value.value())?));
        }
        Ok(out)
    }
}
