//! Registered control units and their device keys.
//!
//! A unit's device key is 128 random bits, returned once at registration (or rotation) for the
//! manufacturer to flash. From it the device derives its MQTT password
//! ([`authenticity::mqtt_password`]) and MACs every message it sends. The store keeps neither
//! in a form usable on the wire: the password only as a keyed BLAKE3 hash (the password has
//! full entropy, so a fast hash is as strong as a password hash here and keeps a reconnect
//! storm of thousands of units cheap), the key sealed under the server's master key. The
//! [`UnitDirectory`] holds every unit's hash, opened key and status in memory for the broker's
//! CONNECT check and ingest's per-message check.

use compact_str::CompactString;
use hashbrown::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU32, Ordering};

use rand::RngCore;
use rkyv::{Archive, Deserialize, Serialize};
use sunledger_broker::{CredentialCheck, Verdict};
use sunledger_proto::authenticity::{self, DEVICE_KEY_BYTES};

use crate::event::{DeviceEvent, EventBody};
use crate::secrets::MasterKey;

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
    /// The device key's credentials as stored.
    pub key: StoredKey,
    /// In service or not.
    pub status: UnitStatus,
    /// When the unit was registered, unix milliseconds.
    pub registered_at_ms: i64,
    /// Whose command-signing key signs its commands: the organisation's id, or
    /// [`crate::store::PLATFORM_OWNER`].
    pub owner: String,
    /// Whether messages without a valid MAC are still accepted (bench rigs, hand-typed test
    /// messages); set only at registration, shown by the API and audited.
    pub development_mode: bool,
    /// The key before the last rotation, accepted alongside the new one until its grace ends.
    pub previous: Option<RetiredKey>,
}

/// What the store keeps of a device key: nothing a database reader could use on the wire.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct StoredKey {
    /// Keyed BLAKE3 hash of the MQTT password derived from the key.
    pub password_hash: [u8; 32],
    /// The key sealed under the master key, bound to the serial.
    pub sealed: Vec<u8>,
}

/// A rotated-out key and when it stops being accepted.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RetiredKey {
    /// The old key as it was stored.
    pub key: StoredKey,
    /// End of the grace period, unix milliseconds.
    pub until_ms: i64,
}

/// A device key, returned once at registration or rotation and stored only sealed.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceKey(authenticity::DeviceKey);

impl DeviceKey {
    /// Draws a fresh random key.
    pub fn generate() -> DeviceKey {
        let mut bytes = [0u8; DEVICE_KEY_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        DeviceKey(bytes)
    }

    /// A key given as 32 hexadecimal characters.
    pub fn from_hex(text: &str) -> Option<DeviceKey> {
        let mut bytes = [0u8; DEVICE_KEY_BYTES];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(DeviceKey(bytes))
    }

    /// The key's bytes, what a device MACs its messages under.
    pub fn bytes(&self) -> &authenticity::DeviceKey {
        &self.0
    }

    /// Lowercase hex, as the API returns it for flashing.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The MQTT password the device derives from the key.
    pub fn mqtt_password(&self) -> String {
        authenticity::mqtt_password(&self.0)
    }

    /// What the store keeps of the key for unit `serial`: the password's hash and the key
    /// sealed under `master`.
    pub fn stored(&self, serial: &str, master: &MasterKey) -> StoredKey {
        StoredKey {
            password_hash: hash_password(&self.mqtt_password()),
            sealed: master.seal(&sealing_owner(serial), &self.0),
        }
    }
}

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceKey(..)")
    }
}

fn hash_password(password: &str) -> [u8; 32] {
    blake3::derive_key(SECRET_HASH_CONTEXT, password.as_bytes())
}

/// The associated data a device key is sealed with: its purpose and serial, so neither a
/// keypad key nor another unit's sealed key opens in its place.
fn sealing_owner(serial: &str) -> String {
    format!("device key {serial}")
}

/// Why a device message is refused; the label of `sunledger_ingest_rejected_total{reason}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No unit with this serial is registered.
    UnknownSerial,
    /// The unit was decommissioned.
    Decommissioned,
    /// A telemetry or ack message whose MAC is missing or wrong.
    BadMac,
}

impl Refusal {
    /// Metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::UnknownSerial => "unknown_serial",
            Refusal::Decommissioned => "decommissioned",
            Refusal::BadMac => "bad_mac",
        }
    }
}

/// How an admitted device message proved its origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Its MAC verified, or it needs none (status words, and commands, which are checked by
    /// their signature).
    Verified,
    /// It has no valid MAC and was let in only because the unit is in development mode.
    Waived,
}

/// A device event that passed [`UnitDirectory::admit`]: the only kind a partition applies, so
/// an unchecked message cannot reach a balance by forgetting a call.
#[derive(Clone, Debug, PartialEq)]
pub struct Admitted {
    event: DeviceEvent,
    admission: Admission,
    /// The unit's slot in its partition's memory as the partition last reported it
    /// ([`UnitDirectory::remember_slot`]), read during admission's own directory lookup;
    /// [`NO_SLOT`] if it has not. A bare `u32` keeps the event as small as it was.
    slot_hint: u32,
}

impl Admitted {
    /// The event as the device sent it.
    pub fn event(&self) -> &DeviceEvent {
        &self.event
    }

    /// How it proved its origin.
    pub fn admission(&self) -> Admission {
        self.admission
    }

    /// Where its unit was in its partition's memory, if the partition has said: a hint the
    /// partition checks against the serial held there, so it need not hash the serial again.
    pub(crate) fn slot_hint(&self) -> Option<usize> {
        (self.slot_hint != NO_SLOT).then_some(self.slot_hint as usize)
    }
}

/// One key as the directory holds it in memory.
#[derive(Clone)]
struct LiveKey {
    password_hash: blake3::Hash,
    /// `None` if the sealed key did not open (logged at load): the unit's messages are then
    /// refused rather than accepted unchecked.
    mac_key: Option<authenticity::DeviceKey>,
}

struct DirectoryEntry {
    key: LiveKey,
    /// The rotated-out key and the end of its grace, unix milliseconds.
    previous: Option<Box<(LiveKey, i64)>>,
    status: UnitStatus,
    development_mode: bool,
    owner: Box<str>,
    /// The unit's slot in its partition ([`NO_SLOT`] until the partition says), handed to
    /// the partition with each admitted event.
    slot: AtomicU32,
}

/// [`DirectoryEntry::slot`] of a unit whose partition has not said where it holds it.
const NO_SLOT: u32 = u32::MAX;

impl DirectoryEntry {
    /// The keys accepted at `now_ms`: the current one, and the previous one during its grace.
    fn keys(&self, now_ms: i64) -> impl Iterator<Item = &LiveKey> {
        let previous = self
            .previous
            .as_deref()
            .filter(|(_, until_ms)| now_ms < *until_ms)
            .map(|(key, _)| key);
        std::iter::once(&self.key).chain(previous)
    }
}

/// Every unit's credentials and status, in memory, read on every CONNECT and message.
pub struct UnitDirectory {
    master_key: MasterKey,
    /// Read on every message: hashbrown's seeded hasher is several times cheaper than std's
    /// SipHash on serials, and an inline serial (up to 24 bytes) saves a trip to memory per
    /// lookup.
    units: RwLock<HashMap<CompactString, DirectoryEntry>>,
}

impl UnitDirectory {
    /// Builds the directory from stored records, opening their keys with `master_key`.
    pub fn from_records(
        master_key: MasterKey,
        records: impl IntoIterator<Item = UnitRecord>,
    ) -> UnitDirectory {
        let directory = UnitDirectory {
            master_key,
            units: RwLock::default(),
        };
        for record in records {
            directory.upsert(&record);
        }
        directory
    }

    /// Adds or replaces a unit after it was durably stored.
    pub fn upsert(&self, record: &UnitRecord) {
        let live = |stored: &StoredKey| LiveKey {
            password_hash: stored.password_hash.into(),
            mac_key: self.open(&record.serial, &stored.sealed),
        };
        let entry = DirectoryEntry {
            key: live(&record.key),
            previous: record
                .previous
                .as_ref()
                .map(|retired| Box::new((live(&retired.key), retired.until_ms))),
            status: record.status,
            development_mode: record.development_mode,
            owner: record.owner.as_str().into(),
            slot: AtomicU32::new(NO_SLOT),
        };
        self.write().insert(record.serial.as_str().into(), entry);
    }

    /// Notes where `serial`'s partition holds its unit, for the events admitted from now on
    /// to carry (see [`Admitted::slot_hint`]). A partition calls this only when a hint was
    /// missing or wrong: at its first event, or after units moved.
    pub(crate) fn remember_slot(&self, serial: &str, slot: usize) {
        if let (Some(entry), Ok(slot)) = (self.read().get(serial), u32::try_from(slot)) {
            entry.slot.store(slot, Ordering::Relaxed);
        }
    }

    fn open(&self, serial: &str, sealed: &[u8]) -> Option<authenticity::DeviceKey> {
        let opened = self.master_key.open(&sealing_owner(serial), sealed);
        match opened.ok().and_then(|bytes| bytes.try_into().ok()) {
            Some(key) => Some(key),
            None => {
                tracing::error!(
                    serial,
                    "the unit's device key does not open under the master key; its messages will be refused"
                );
                None
            }
        }
    }

    /// Lets `event` in if it comes from the unit it names (see [`UnitDirectory::check`]):
    /// ingest calls this on its own threads, so a partition only ever sees [`Admitted`]
    /// events and spends none of its time on MACs.
    pub fn admit(&self, event: DeviceEvent) -> Result<Admitted, Refusal> {
        let (admission, slot_hint) = self.check(&event)?;
        Ok(Admitted {
            event,
            admission,
            slot_hint,
        })
    }

    /// Decides whether `event` comes from the unit it names: the unit must be registered and
    /// enabled, and telemetry and acks must carry a valid MAC under a key accepted at the
    /// time the event arrived (a development-mode unit's are let in without one). Returns
    /// how, and where the unit's partition last said it holds the unit.
    fn check(&self, event: &DeviceEvent) -> Result<(Admission, u32), Refusal> {
        let units = self.read();
        let entry = units.get(&*event.serial).ok_or(Refusal::UnknownSerial)?;
        if entry.status == UnitStatus::Decommissioned {
            return Err(Refusal::Decommissioned);
        }
        let authentic = |verify: &dyn Fn(&authenticity::DeviceKey) -> bool| {
            entry
                .keys(event.received_at_ms)
                .filter_map(|key| key.mac_key.as_ref())
                .any(verify)
        };
        let verified = match &event.body {
            EventBody::Telemetry(reading) => {
                authentic(&|key| authenticity::verify(key, &event.serial, reading))
            }
            EventBody::Ack(ack) => authentic(&|key| authenticity::verify(key, &event.serial, ack)),
            EventBody::Command(_) | EventBody::Status { .. } => true,
        };
        let admission = match (verified, entry.development_mode) {
            (true, _) => Admission::Verified,
            (false, true) => Admission::Waived,
            (false, false) => return Err(Refusal::BadMac),
        };
        Ok((admission, entry.slot.load(Ordering::Relaxed)))
    }

    /// Checks an MQTT password for `serial` at `now_ms`, in constant time per key.
    pub fn verify_at(&self, serial: &str, password: &str, now_ms: i64) -> Verdict {
        let units = self.read();
        let Some(entry) = units.get(serial) else {
            return Verdict::UnknownSerial;
        };
        let hash = blake3::Hash::from(hash_password(password));
        // blake3::Hash equality is constant-time.
        if !entry.keys(now_ms).any(|key| key.password_hash == hash) {
            return Verdict::WrongSecret;
        }
        match entry.status {
            UnitStatus::Enabled => Verdict::Allowed,
            UnitStatus::Decommissioned => Verdict::Decommissioned,
        }
    }

    /// The status of `serial`, or `None` if no such unit is registered.
    pub fn status(&self, serial: &str) -> Option<UnitStatus> {
        self.read().get(serial).map(|entry| entry.status)
    }

    /// Whether `serial` is in development mode, or `None` if no such unit is registered.
    pub fn development_mode(&self, serial: &str) -> Option<bool> {
        self.read().get(serial).map(|entry| entry.development_mode)
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

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<CompactString, DirectoryEntry>> {
        self.units
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<CompactString, DirectoryEntry>> {
        self.units
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl CredentialCheck for UnitDirectory {
    fn verify(&self, serial: &str, secret: &str) -> Verdict {
        self.verify_at(serial, secret, chrono::Utc::now().timestamp_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sunledger_proto::device::{CommandAck, Telemetry};

    fn master() -> MasterKey {
        MasterKey::from_hex(&"42".repeat(32)).unwrap()
    }

    fn record(serial: &str, key: &DeviceKey, status: UnitStatus) -> UnitRecord {
        UnitRecord {
            serial: serial.to_owned(),
            key: key.stored(serial, &master()),
            status,
            registered_at_ms: 0,
            owner: String::new(),
            development_mode: false,
            previous: None,
        }
    }

    fn admission(directory: &UnitDirectory, event: DeviceEvent) -> Result<Admission, Refusal> {
        directory.admit(event).map(|admitted| admitted.admission())
    }

    #[test]
    fn events_carry_the_slot_their_partition_last_said() {
        let key = DeviceKey::generate();
        let directory =
            UnitDirectory::from_records(master(), [record("A", &key, UnitStatus::Enabled)]);
        let hint = |directory: &UnitDirectory| {
            let admitted = directory.admit(reading("A", Some(&key), 0));
            admitted.expect("admitted").slot_hint()
        };
        assert_eq!(hint(&directory), None);
        directory.remember_slot("A", 7);
        directory.remember_slot("NOT-REGISTERED", 3);
        assert_eq!(hint(&directory), Some(7));
        directory.remember_slot("A", 2);
        assert_eq!(hint(&directory), Some(2));
    }

    fn reading(serial: &str, key: Option<&DeviceKey>, received_at_ms: i64) -> DeviceEvent {
        let reading = Telemetry {
            seq: 1,
            load_wh: 10,
            boot: 1,
            ..Telemetry::default()
        };
        let reading = match key {
            Some(key) => authenticity::seal(key.bytes(), serial, reading),
            None => reading,
        };
        DeviceEvent {
            serial: serial.into(),
            received_at_ms,
            body: EventBody::Telemetry(reading),
        }
    }

    #[test]
    fn only_the_password_of_the_issued_key_of_an_enabled_unit_is_allowed() {
        let (a, b) = (DeviceKey::generate(), DeviceKey::generate());
        assert_ne!(a, b);
        assert_eq!(a.mqtt_password().len(), 32);
        let directory = UnitDirectory::from_records(
            master(),
            [
                record("A", &a, UnitStatus::Enabled),
                record("B", &b, UnitStatus::Decommissioned),
            ],
        );
        assert_eq!(directory.verify("A", &a.mqtt_password()), Verdict::Allowed);
        assert_eq!(
            directory.verify("A", &b.mqtt_password()),
            Verdict::WrongSecret
        );
        assert_eq!(directory.verify("A", &a.hex()), Verdict::WrongSecret);
        assert_eq!(
            directory.verify("B", &b.mqtt_password()),
            Verdict::Decommissioned
        );
        assert_eq!(
            directory.verify("C", &a.mqtt_password()),
            Verdict::UnknownSerial
        );
    }

    #[test]
    fn telemetry_and_acks_need_the_units_own_mac() {
        let (a, b) = (DeviceKey::generate(), DeviceKey::generate());
        let directory = UnitDirectory::from_records(
            master(),
            [
                record("A", &a, UnitStatus::Enabled),
                record("B", &b, UnitStatus::Enabled),
            ],
        );
        assert_eq!(
            admission(&directory, reading("A", Some(&a), 0)),
            Ok(Admission::Verified)
        );
        assert_eq!(
            admission(&directory, reading("A", Some(&b), 0)),
            Err(Refusal::BadMac),
            "B's key on A's topic"
        );
        assert_eq!(
            admission(&directory, reading("A", None, 0)),
            Err(Refusal::BadMac)
        );
        assert_eq!(
            admission(&directory, reading("Z", Some(&a), 0)),
            Err(Refusal::UnknownSerial)
        );
        let ack = |key: &DeviceKey| DeviceEvent {
            serial: "A".into(),
            received_at_ms: 0,
            body: EventBody::Ack(authenticity::seal(key.bytes(), "A", CommandAck::default())),
        };
        assert_eq!(admission(&directory, ack(&a)), Ok(Admission::Verified));
        assert_eq!(admission(&directory, ack(&b)), Err(Refusal::BadMac));
    }

    #[test]
    fn a_development_mode_unit_is_let_in_without_a_mac_and_says_so() {
        let key = DeviceKey::generate();
        let mut dev = record("D", &key, UnitStatus::Enabled);
        dev.development_mode = true;
        let directory = UnitDirectory::from_records(master(), [dev]);
        assert_eq!(directory.development_mode("D"), Some(true));
        assert_eq!(
            admission(&directory, reading("D", None, 0)),
            Ok(Admission::Waived)
        );
        assert_eq!(
            admission(&directory, reading("D", Some(&key), 0)),
            Ok(Admission::Verified)
        );
    }

    #[test]
    fn a_rotated_out_key_works_until_its_grace_ends() {
        let (old, new) = (DeviceKey::generate(), DeviceKey::generate());
        let mut rotated = record("A", &new, UnitStatus::Enabled);
        rotated.previous = Some(RetiredKey {
            key: old.stored("A", &master()),
            until_ms: 1_000,
        });
        let directory = UnitDirectory::from_records(master(), [rotated]);
        for (key, at, admitted) in [
            (&new, 0, true),
            (&old, 999, true),
            (&old, 1_000, false),
            (&new, 1_000, true),
        ] {
            assert_eq!(
                admission(&directory, reading("A", Some(key), at)).is_ok(),
                admitted,
                "MAC at {at}"
            );
            assert_eq!(
                directory.verify_at("A", &key.mqtt_password(), at) == Verdict::Allowed,
                admitted,
                "CONNECT at {at}"
            );
        }
    }

    #[test]
    fn a_key_sealed_for_another_unit_does_not_open_and_its_messages_are_refused() {
        let key = DeviceKey::generate();
        let mut moved = record("A", &key, UnitStatus::Enabled);
        moved.key.sealed = key.stored("B", &master()).sealed;
        let directory = UnitDirectory::from_records(master(), [moved]);
        assert_eq!(
            admission(&directory, reading("A", Some(&key), 0)),
            Err(Refusal::BadMac)
        );
    }

    #[test]
    fn what_is_stored_contains_neither_the_key_nor_the_password() {
        let key = DeviceKey::generate();
        let stored = record("A", &key, UnitStatus::Enabled);
        let bytes = crate::codec::encode(&stored).unwrap();
        for secret in [
            key.bytes().to_vec(),
            key.hex().into_bytes(),
            key.mqtt_password().into_bytes(),
        ] {
            assert!(
                !bytes
                    .windows(secret.len())
                    .any(|window| window == secret.as_slice())
            );
        }
    }
}
