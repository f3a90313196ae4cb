//! The keypad tables: each keypad unit's token setup (its OpenPAYGO key sealed under the
//! master key) and its token log, every token ever issued, keyed by count.
//!
//! The log is the audit trail (who, when, why, count) and the answer to a repeated payment:
//! the tokens a payment reference bought are found again here, never generated anew.

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use super::billing::{WriteTxn, decoded};
use super::{Store, StoreError};
use crate::codec;
use crate::keypad::{IssuedToken, KeypadConfig, KeypadSetup, TokenReason};
use crate::openpaygo::TokenKey;

/// serial → [`KeypadConfig`], written once at registration.
pub(super) const KEYPAD_UNITS: TableDefinition<&str, &[u8]> = TableDefinition::new("keypad_units");
/// (serial, count) → [`IssuedToken`].
pub(super) const TOKENS: TableDefinition<(&str, u32), &[u8]> = TableDefinition::new("tokens");

impl Store {
    /// Records unit `serial`'s token setup inside `txn` (the registration's transaction), its
    /// key sealed to the serial.
    pub fn put_keypad_in(
        &self,
        txn: &redb::WriteTransaction,
        serial: &str,
        setup: &KeypadSetup,
    ) -> Result<KeypadConfig, StoreError> {
        let config = KeypadConfig {
            mode: setup.mode,
            sealed_key: self.master_key().seal(serial, setup.key.bytes()),
            starting_code: setup.starting_code,
            extended: setup.format.extended,
            restricted_digits: setup.format.restricted_digits,
            initial_count: setup.initial_count,
        };
        txn.open_table(KEYPAD_UNITS)?
            .insert(serial, codec::encode_serde(&config)?.as_slice())?;
        Ok(config)
    }

    /// Unit `serial`'s token setup, if it is a keypad unit.
    pub fn keypad_config(&self, serial: &str) -> Result<Option<KeypadConfig>, StoreError> {
        let txn = self.database()?.begin_read()?;
        decoded(&txn.open_table(KEYPAD_UNITS)?, serial)
    }

    /// Every token issued to unit `serial`, by count.
    pub fn tokens(&self, serial: &str) -> Result<Vec<IssuedToken>, StoreError> {
        let txn = self.database()?.begin_read()?;
        tokens_in(&txn.open_table(TOKENS)?, serial)
    }

    /// Opens a keypad unit's sealed key: only to generate a token.
    pub(crate) fn token_key(
        &self,
        serial: &str,
        config: &KeypadConfig,
    ) -> Result<TokenKey, StoreError> {
        let bytes = self
            .master_key()
            .open(serial, &config.sealed_key)
            .map_err(|error| StoreError::Corrupt(format!("{serial}: token key: {error}")))?;
        let bytes: [u8; 16] = bytes
            .try_into()
            .map_err(|_| StoreError::Corrupt(format!("{serial}: token key is not 16 bytes")))?;
        Ok(TokenKey::from(bytes))
    }
}

impl WriteTxn {
    /// Unit `serial`'s token setup, seen from inside this transaction.
    pub fn keypad_config(&self, serial: &str) -> Result<Option<KeypadConfig>, StoreError> {
        decoded(&self.txn().open_table(KEYPAD_UNITS)?, serial)
    }

    /// Appends a token to unit `serial`'s log.
    pub fn put_token(&mut self, serial: &str, token: &IssuedToken) -> Result<(), StoreError> {
        self.txn().open_table(TOKENS)?.insert(
            (serial, token.count),
            codec::encode_serde(token)?.as_slice(),
        )?;
        Ok(())
    }

    /// The tokens the payment `provider_ref` bought for unit `serial`, seen from inside this
    /// transaction: what a repeated payment returns.
    pub fn tokens_for_payment(
        &self,
        serial: &str,
        provider_ref: &str,
    ) -> Result<Vec<IssuedToken>, StoreError> {
        let tokens = tokens_in(&self.txn().open_table(TOKENS)?, serial)?;
        Ok(tokens
            .into_iter()
            .filter(|token| {
                matches!(&token.reason, TokenReason::Payment { provider_ref: paid } if paid == provider_ref)
            })
            .collect())
    }
}

/// Unit `serial`'s token log, by count, through a write or a read transaction alike.
fn tokens_in(
    table: &impl ReadableTable<(&'static str, u32), &'static [u8]>,
    serial: &str,
) -> Result<Vec<IssuedToken>, StoreError> {
    let mut out = Vec::new();
    for row in table.range((serial, 0)..=(serial, u32::MAX))? {
        out.push(codec::decode_serde(row?.1.value())?);
    }
    Ok(out)
}
