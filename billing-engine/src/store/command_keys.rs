//! Command-signing keys: one Ed25519 key per owner (an organisation, or the platform for units
//! registered outside any organisation), the private half sealed under the master key.
//!
//! Every command the platform publishes is signed with its unit's owner's key, and devices
//! hold only the public half, so credentials pulled out of one unit cannot forge a command for
//! any unit. Keys are made on first use (a unit's registration) and cached in memory.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use ed25519_dalek::{SigningKey, VerifyingKey};
use rand::RngCore;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use super::{Store, StoreError};

/// Owner → the owner's signing key, sealed to the owner.
pub(super) const COMMAND_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("command_keys");

/// The owner of units registered outside any organisation.
pub const PLATFORM_OWNER: &str = "";

/// Signing keys already opened, by owner.
#[derive(Default)]
pub(super) struct KeyCache(RwLock<HashMap<String, Arc<SigningKey>>>);

impl Store {
    /// `owner`'s command-signing key, created (and stored) inside `txn` if it has none yet: the
    /// registration of an organisation's first unit makes its key in the same commit.
    pub fn command_key_in(
        &self,
        txn: &redb::WriteTransaction,
        owner: &str,
    ) -> Result<Arc<SigningKey>, StoreError> {
        if let Some(key) = self.cached_key(owner) {
            return Ok(key);
        }
        let mut table = txn.open_table(COMMAND_KEYS)?;
        let existing = table.get(owner)?.map(|sealed| sealed.value().to_vec());
        let key = match existing {
            Some(sealed) => self.open_key(owner, &sealed)?,
            None => {
                let mut secret = [0u8; 32];
                rand::rng().fill_bytes(&mut secret);
                let sealed = self.master_key().seal(owner, &secret);
                table.insert(owner, sealed.as_slice())?;
                SigningKey::from_bytes(&secret)
            }
        };
        // Cached only once committed by the caller's transaction: see `command_key`.
        Ok(Arc::new(key))
    }

    /// `owner`'s committed command-signing key, creating it in its own transaction if the
    /// owner has none (the platform's, on first use).
    pub fn command_key(&self, owner: &str) -> Result<Arc<SigningKey>, StoreError> {
        if let Some(key) = self.cached_key(owner) {
            return Ok(key);
        }
        let stored = {
            let txn = self.database()?.begin_read()?;
            let table = txn.open_table(COMMAND_KEYS)?;
            table.get(owner)?.map(|sealed| sealed.value().to_vec())
        };
        let key = match stored {
            Some(sealed) => Arc::new(self.open_key(owner, &sealed)?),
            None => {
                let txn = self.begin_write()?;
                let key = self.command_key_in(&txn, owner)?;
                txn.commit()?;
                key
            }
        };
        self.keys
            .0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(owner.to_owned(), key.clone());
        Ok(key)
    }

    /// `owner`'s public verification key: what devices check commands with.
    pub fn command_verifying_key(&self, owner: &str) -> Result<VerifyingKey, StoreError> {
        Ok(self.command_key(owner)?.verifying_key())
    }

    fn cached_key(&self, owner: &str) -> Option<Arc<SigningKey>> {
        let cache = self.keys.0.read().unwrap_or_else(PoisonError::into_inner);
        cache.get(owner).cloned()
    }

    fn open_key(&self, owner: &str, sealed: &[u8]) -> Result<SigningKey, StoreError> {
        let secret: [u8; 32] = self
            .master_key()
            .open(owner, sealed)?
            .try_into()
            .map_err(|_| {
                StoreError::Corrupt(format!("command key of {owner:?} is not 32 bytes"))
            })?;
        Ok(SigningKey::from_bytes(&secret))
    }
}
