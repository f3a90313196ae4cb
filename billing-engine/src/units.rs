//! Registered control units and their device secrets.
//!
//! A device secret is 128 random bits, shown once at registration. Only a keyed BLAKE3 hash is
//! stored: the secret has full entropy, so a fast hash is as strong as a password hash here and
//! keeps a reconnect storm of thousands of units cheap to authenticate. The
//! [`UnitDirectory`] keeps every unit's hash and status in memory for the broker's CONNECT
//! check and ingest's per-message check.

use std::collections::HashMap;
use std::sync::RwLock;

use rand::RngCore;
use rkyv::{Archive, Deserialize, Serialize};
use sunledger_broker::{CredentialCheck, Verdict};

/// Bytes of randomness in a device secret.
pub const DEVICE_SECRET_BYTES: usize = 16;

/// BLAKE3 key-derivation context: binds stored hashes to this purpose.
const SECRET_HASH_CONTEXT: &str = "sunledger 2026-11 device secret hash v1";

/// Whether a unit may talk to the platform.
#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnitStatus {
    /// In service.
    Enabled,
    /// Taken out of service: its CONNECTs and messages are refused.
    Decommissioned,
}

/// A registered unit as stored.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct UnitRecord {
    /// Unique serial, also the MQTT client id.
    pub serial: String,
    /// Keyed BLAKE3 hash of the device secret.
    pub secret_hash: [u8; 32],
    /// In service or not.
    pub status: UnitStatus,
    /// When the unit was registered, unix milliseconds.
    pub registered_at_ms: i64,
    /// Whose command-signing key signs its commands: the organisation's id, or
    /// [`crate::store::PLATFORM_OWNER`].
    pub owner: String,
}

/// A device secret, returned once at registration and never stored.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceSecret(String);

impl DeviceSecret {
    /// Draws a fresh random secret (hex, 32 characters).
    pub fn generate() -> DeviceSecret {
        let mut bytes = [0u8; DEVICE_SECRET_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        DeviceSecret(hex::encode(bytes))
    }

    /// The secret as the device sends it as its MQTT password.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The hash that is stored instead of the secret.
    pub fn hash(&self) -> [u8; 32] {
        hash_secret(&self.0)
    }
}

impl std::fmt::Debug for DeviceSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceSecret(..)")
    }
}

fn hash_secret(secret: &str) -> [u8; 32] {
    blake3::derive_key(SECRET_HASH_CONTEXT, secret.as_bytes())
}

#[derive(Clone)]
struct DirectoryEntry {
    secret_hash: blake3::Hash,
    status: UnitStatus,
    owner: Box<str>,
}

/// Every unit's secret hash and status, in memory, read on every CONNECT and message.
#[derive(Default)]
pub struct UnitDirectory {
    units: RwLock<HashMap<Box<str>, DirectoryEntry>>,
}

impl UnitDirectory {
    /// Builds the directory from stored records.
    pub fn from_records(records: impl IntoIterator<Item = UnitRecord>) -> UnitDirectory {
        let directory = UnitDirectory::default();
        for record in records {
            directory.upsert(&record);
        }
        directory
    }

    /// Adds or replaces a unit after it was durably stored.
    pub fn upsert(&self, record: &UnitRecord) {
        let entry = DirectoryEntry {
            secret_hash: record.secret_hash.into(),
            status: record.status,
            owner: record.owner.as_str().into(),
        };
        self.write().insert(record.serial.as_str().into(), entry);
    }

    /// The status of `serial`, or `None` if no such unit is registered.
    pub fn status(&self, serial: &str) -> Option<UnitStatus> {
        self.read().get(serial).map(|entry| entry.status)
    }

    /// Whose key signs `serial`'s commands, or `None` if no such unit is registered.
    pub fn owner(&self, serial: &str) -> Option<Box<str>> {
        self.read().get(serial).map(|entry| entry.owner.clone())
    }

    /// Number of registered units.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether no unit is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Box<str>, DirectoryEntry>> {
        self.units
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Box<str>, DirectoryEntry>> {
        self.units
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl CredentialCheck for UnitDirectory {
    fn verify(&self, serial: &str, secret: &str) -> Verdict {
        let Some((secret_hash, status)) = self
            .read()
            .get(serial)
            .map(|entry| (entry.secret_hash, entry.status))
        else {
            return Verdict::UnknownSerial;
        };
        // blake3::Hash equality is constant-time.
        if secret_hash != blake3::Hash::from(hash_secret(secret)) {
            return Verdict::WrongSecret;
        }
        match status {
            UnitStatus::Enabled => Verdict::Allowed,
            UnitStatus::Decommissioned => Verdict::Decommissioned,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(serial: &str, secret: &DeviceSecret, status: UnitStatus) -> UnitRecord {
        UnitRecord {
            serial: serial.to_owned(),
            secret_hash: secret.hash(),
            status,
            registered_at_ms: 0,
            owner: String::new(),
        }
    }

    #[test]
    fn only_the_issued_secret_of_an_enabled_unit_is_allowed() {
        let (a, b) = (DeviceSecret::generate(), DeviceSecret::generate());
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 2 * DEVICE_SECRET_BYTES);
        let directory = UnitDirectory::from_records([
            record("A", &a, UnitStatus::Enabled),
            record("B", &b, UnitStatus::Decommissioned),
        ]);
        assert_eq!(directory.verify("A", a.expose()), Verdict::Allowed);
        assert_eq!(directory.verify("A", b.expose()), Verdict::WrongSecret);
        assert_eq!(directory.verify("B", b.expose()), Verdict::Decommissioned);
        assert_eq!(directory.verify("C", a.expose()), Verdict::UnknownSerial);
    }

    #[test]
    fn the_stored_hash_does_not_contain_the_secret() {
        let secret = DeviceSecret::generate();
        assert!(!hex::encode(secret.hash()).contains(secret.expose()));
    }
}
