//! Which low-credit reminders were sent, so each is sent once, restarts included.
//!
//! A reminder is about one credit end: the instant a keypad unit's days run out. A payment
//! moves that instant, so the unit is reminded again before its new end, never twice before
//! the same one.

use redb::{TableDefinition, WriteTransaction};

use super::{Directory, DirectoryError};

/// Serial → the credit end (unix milliseconds) its customer was last reminded of.
const REMINDERS: TableDefinition<&str, i64> = TableDefinition::new("api_keypad_reminders");

/// Creates the table, so that reads find it on a fresh file.
pub(super) fn create_tables(txn: &WriteTransaction) -> Result<(), DirectoryError> {
    txn.open_table(REMINDERS)?;
    Ok(())
}

impl Directory {
    /// Whether unit `serial`'s customer is yet to be reminded of the credit end `until_ms`.
    pub fn reminder_due(&self, serial: &str, until_ms: i64) -> Result<bool, DirectoryError> {
        let reminded = self.read()?.open_table(REMINDERS)?.get(serial)?;
        Ok(reminded.is_none_or(|reminded| reminded.value() != until_ms))
    }

    /// Records that unit `serial`'s customer was reminded of the credit end `until_ms`.
    pub fn mark_reminded(&self, serial: &str, until_ms: i64) -> Result<(), DirectoryError> {
        let txn = self.begin_write()?;
        txn.open_table(REMINDERS)?.insert(serial, until_ms)?;
        txn.commit()?;
        Ok(())
    }
}
