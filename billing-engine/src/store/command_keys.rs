//! Command-signing keys: one Ed25519 key per owner (an organisation, or the platform for units
//! registered outside any organisation), the private half sealed under the master key.
//!
//! Every command the platform publishes is signed with its unit's owner's key, and devices
//! hold only the public half, so credentials pulled out of one unit cannot forge a command for
//! any unit. Keys are made on first use (a unit's registration) and cached in memory.
//!
//! Rotation is staged, because devices in the field hold the public key: a new key is stored
//! as the owner's *next* key with the time it starts signing. Until then the current key
//! signs, so every unit keeps verifying while the new public key is flashed or sent to it;
//! from then on the next key signs. Both verify on the platform's own watch of the `cmd`
//! topics throughout. A rotation with no grace (a leaked key) replaces the key at once.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use ed25519_dalek::{SigningKey, VerifyingKey};
use rand::RngCore;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use sunledger_proto::authenticity::verify_command;
use sunledger_proto::device::Command;

use super::{Store, StoreError};

/// Owner → the owner's signing key, sealed to the owner.
pub(super) const COMMAND_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("command_keys");

/// Owner → (the next signing key, sealed to the owner; unix ms from which it signs).
pub(super) const NEXT_COMMAND_KEYS: TableDefinition<&str, (&[u8], i64)> =
    TableDefinition::new("next_command_keys");

/// The owner of units registered outside any organisation.
pub const PLATFORM_OWNER: &str = "";

/// An owner's command keys: the current one and, during a staged rotation, the next.
pub struct CommandKeys {
    current: SigningKey,
    next: Option<(SigningKey, i64)>,
}

impl CommandKeys {
    /// The key that signs commands at `now_ms`.
    pub fn signing_at(&self, now_ms: i64) -> &SigningKey {
        match &self.next {
            Some((next, from_ms)) if now_ms >= *from_ms => next,
            _ => &self.current,
        }
    }

    /// Whether `command` for `serial` was signed by any of the owner's keys.
    pub fn signed(&self, serial: &str, command: &Command) -> bool {
        std::iter::once(&self.current)
            .chain(self.next.as_ref().map(|(next, _)| next))
            .any(|key| verify_command(&key.verifying_key(), serial, command))
    }

    /// The next key and when it starts signing, while that is still ahead of `now_ms`.
    pub fn pending_at(&self, now_ms: i64) -> Option<(VerifyingKey, i64)> {
        self.next
            .as_ref()
            .filter(|(_, from_ms)| now_ms < *from_ms)
            .map(|(next, from_ms)| (next.verifying_key(), *from_ms))
    }
}

/// Command keys already opened, by owner.
#[derive(Default)]
pub(super) struct KeyCache(RwLock<HashMap<String, Arc<CommandKeys>>>);

impl Store {
    /// `owner`'s current command-signing key, created (and stored) inside `txn` if it has none
    /// yet: the registration of an organisation's first unit makes its key in the same
    /// commit.
    pub fn command_key_in(
        &self,
        txn: &redb::WriteTransaction,
        owner: &str,
    ) -> Result<SigningKey, StoreError> {
        if let Some(keys) = self.cached_keys(owner) {
            return Ok(keys.current.clone());
        }
        let mut table = txn.open_table(COMMAND_KEYS)?;
        let existing = table.get(owner)?.map(|sealed| sealed.value().to_vec());
        // Cached only once committed by the caller's transaction: see `command_keys`.
        match existing {
            Some(sealed) => self.open_key(owner, &sealed),
            None => {
                let (key, sealed) = self.new_key(owner);
                table.insert(owner, sealed.as_slice())?;
                Ok(key)
            }
        }
    }

    /// `owner`'s committed command keys, creating the first in its own transaction if the
    /// owner has none (the platform's, on first use).
    pub fn command_keys(&self, owner: &str) -> Result<Arc<CommandKeys>, StoreError> {
        if let Some(keys) = self.cached_keys(owner) {
            return Ok(keys);
        }
        let stored = {
            let txn = self.database()?.begin_read()?;
            let current = txn.open_table(COMMAND_KEYS)?;
            let next = txn.open_table(NEXT_COMMAND_KEYS)?;
            let current = current.get(owner)?.map(|sealed| sealed.value().to_vec());
            let next = next.get(owner)?.map(|entry| {
                let (sealed, from_ms) = entry.value();
                (sealed.to_vec(), from_ms)
            });
            current.map(|current| (current, next))
        };
        let keys = match stored {
            Some((current, next)) => CommandKeys {
                current: self.open_key(owner, &current)?,
                next: next
                    .map(|(sealed, from_ms)| {
                        Ok::<_, StoreError>((self.open_key(owner, &sealed)?, from_ms))
                    })
                    .transpose()?,
            },
            None => {
                let txn = self.begin_write()?;
                let current = self.command_key_in(&txn, owner)?;
                txn.commit()?;
                CommandKeys {
                    current,
                    next: None,
                }
            }
        };
        Ok(self.cache_keys(owner, keys))
    }

    /// `owner`'s public verification key at the present moment: what devices check commands
    /// with now.
    pub fn command_verifying_key(&self, owner: &str) -> Result<VerifyingKey, StoreError> {
        let now_ms = chrono::Utc::now().timestamp_millis();
        Ok(self.command_keys(owner)?.signing_at(now_ms).verifying_key())
    }

    /// Rotates `owner`'s command key inside `txn`: the new key signs from `now_ms + grace_ms`
    /// (at once for a grace of 0, dropping the old key). A next key already signing becomes
    /// the current one first; one still pending is replaced. Call
    /// [`Store::forget_command_keys`] once `txn` commits.
    pub fn rotate_command_key_in(
        &self,
        txn: &redb::WriteTransaction,
        owner: &str,
        now_ms: i64,
        grace_ms: i64,
    ) -> Result<VerifyingKey, StoreError> {
        self.command_key_in(txn, owner)?;
        let mut current = txn.open_table(COMMAND_KEYS)?;
        let mut next = txn.open_table(NEXT_COMMAND_KEYS)?;
        let signing = next.remove(owner)?.map(|entry| {
            let (sealed, from_ms) = entry.value();
            (sealed.to_vec(), from_ms)
        });
        if let Some((sealed, _)) = signing.filter(|(_, from_ms)| now_ms >= *from_ms) {
            current.insert(owner, sealed.as_slice())?;
        }
        let (key, sealed) = self.new_key(owner);
        if grace_ms == 0 {
            current.insert(owner, sealed.as_slice())?;
        } else {
            next.insert(owner, (sealed.as_slice(), now_ms.saturating_add(grace_ms)))?;
        }
        Ok(key.verifying_key())
    }

    /// Drops `owner`'s cached keys so the next use reads what was committed.
    pub fn forget_command_keys(&self, owner: &str) {
        self.keys
            .0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(owner);
    }

    fn new_key(&self, owner: &str) -> (SigningKey, Vec<u8>) {
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        let sealed = self.master_key().seal(owner, &secret);
        (SigningKey::from_bytes(&secret), sealed)
    }

    fn cached_keys(&self, owner: &str) -> Option<Arc<CommandKeys>> {
        let cache = self.keys.0.read().unwrap_or_else(PoisonError::into_inner);
        cache.get(owner).cloned()
    }

    fn cache_keys(&self, owner: &str, keys: CommandKeys) -> Arc<CommandKeys> {
        let keys = Arc::new(keys);
        self.keys
            .0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(owner.to_owned(), keys.clone());
        keys
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

#[cfg(test)]
mod tests {
    use super::*;
    use sunledger_proto::authenticity::sign_command;

    #[test]
    fn a_staged_rotation_signs_with_the_old_key_until_the_switch_and_both_verify() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.redb")).unwrap();
        let old = store.command_keys("org").unwrap().signing_at(0).clone();
        let txn = store.begin_write().unwrap();
        let new = store
            .rotate_command_key_in(&txn, "org", 1_000, 500)
            .unwrap();
        txn.commit().unwrap();
        store.forget_command_keys("org");

        let keys = store.command_keys("org").unwrap();
        assert_eq!(keys.signing_at(1_499).verifying_key(), old.verifying_key());
        assert_eq!(keys.signing_at(1_500).verifying_key(), new);
        assert_eq!(keys.pending_at(1_499), Some((new, 1_500)));
        assert_eq!(keys.pending_at(1_500), None);
        let command = Command {
            cmd_id: 1,
            ..Command::default()
        };
        for signer in [keys.signing_at(0), keys.signing_at(2_000)] {
            assert!(keys.signed("S", &sign_command(signer, "S", command.clone())));
        }

        // Rotating again after the switch keeps the switched-to key and drops the old one.
        let txn = store.begin_write().unwrap();
        let newest = store.rotate_command_key_in(&txn, "org", 3_000, 0).unwrap();
        txn.commit().unwrap();
        store.forget_command_keys("org");
        drop(store);
        let store = Store::open(&dir.path().join("db.redb")).unwrap();
        let keys = store.command_keys("org").unwrap();
        assert_eq!(keys.signing_at(3_000).verifying_key(), newest);
        assert_eq!(keys.pending_at(3_000), None);
        assert!(!keys.signed("S", &sign_command(&old, "S", command)));
    }
}
