//! The redb file: registered units and each unit's durable state.
//!
//! Tables (string keys are serials; values are encoded by [`crate::codec`]):
//! - `units`: [`UnitRecord`], written at registration and status changes.
//! - `unit_state`: each unit's hot state ([`crate::engine::Unit`]: meter, commands, account)
//!   as of its last checkpoint; `unit_log`: the records the engine's group commits wrote
//!   since (see [`unit_log`]).
//! - the billing tables (journal of ledger entries, reference indexes, revenue, unit events,
//!   closed accounts): see [`billing`].
//! - the keypad tables (token setups with sealed keys, token logs): see [`keypad`].
//! - `command_keys`, `next_command_keys`: each owner's sealed Ed25519 command-signing key,
//!   and the next one during a staged rotation.
//!
//! Secrets the server must use again (keypad units' OpenPAYGO keys) are sealed under the
//! [`MasterKey`], which lives in its own file beside the database (`master.key`, 0600), never
//! in it.
//!
//! Every write is one redb transaction committed with immediate durability: when a method
//! returns `Ok`, the change survives `kill -9`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Instant;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::codec::{self, CodecError};
use crate::secrets::{MasterKey, SecretError};

use crate::units::{DeviceKey, RetiredKey, UnitDirectory, UnitRecord, UnitStatus};

mod billing;
mod command_keys;
mod format;
mod health;
mod keypad;
mod unit_log;
pub use billing::{JournalRecord, RefIndex, RefKind, UnitEvent, UnitEventKind, WriteTxn};
pub use command_keys::{CommandKeys, PLATFORM_OWNER};
pub use format::FORMAT_VERSION;
pub use health::DiskFault;
use health::{SpaceGuard, WatchedFile};
pub(crate) use unit_log::UnitLogRow;

const UNITS: TableDefinition<&str, &[u8]> = TableDefinition::new("units");
const UNIT_STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("unit_state");

/// A storage failure. Transient ones (disk full, I/O) may succeed on retry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// redb reported an error (I/O, corruption, full disk...).
    #[error("storage: {0}")]
    Db(#[from] redb::Error),
    /// A stored record could not be decoded: the file is damaged or from a newer version.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The data directory could not be created.
    #[error("creating data directory: {0}")]
    Io(#[from] std::io::Error),
    /// A unit with this serial is already registered.
    #[error("unit {0} is already registered")]
    UnitExists(String),
    /// No unit with this serial is registered.
    #[error("unit {0} is not registered")]
    UnitNotFound(String),
    /// Stored records contradict each other: the file is damaged.
    #[error("storage is inconsistent: {0}")]
    Corrupt(String),
    /// The master key could not be read or created.
    #[error(transparent)]
    MasterKey(#[from] SecretError),
    /// The disk is too full to write: writes are refused until space returns.
    #[error("disk full: {available} bytes free, {reserve} kept in reserve")]
    DiskFull {
        /// Free bytes seen.
        available: u64,
        /// The reserve required.
        reserve: u64,
    },
    /// The database failed and could not be reopened yet.
    #[error("storage unavailable after an I/O failure")]
    Unavailable,
    /// The file was written in another stored format (`None`: before formats were stamped);
    /// nothing in it is read.
    #[error(
        "the database file is in stored format {}, this build reads format {FORMAT_VERSION}; \
         there is no migration: move the file aside and start with a new one",
        found.map_or_else(|| "1 (unstamped)".to_owned(), |found| found.to_string())
    )]
    Format {
        /// The version the file carries.
        found: Option<u64>,
    },
    /// The serial cannot be used as an MQTT client id and topic level.
    #[error("serial {0:?}: {1}")]
    InvalidSerial(String, sunledger_proto::topic::TopicError),
}

impl StoreError {
    /// Whether retrying the same call later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::Db(_)
                | StoreError::Io(_)
                | StoreError::DiskFull { .. }
                | StoreError::Unavailable
        )
    }
}

macro_rules! from_redb {
    ($($error:ty),*) => {$(
        impl From<$error> for StoreError {
            fn from(error: $error) -> Self {
                StoreError::Db(error.into())
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// How to open the store; the default suits a server with its data directory.
#[derive(Debug, Default)]
pub struct StoreOptions {
    /// The master key; `None` reads (or creates) `master.key` beside the database.
    pub master_key: Option<MasterKey>,
    /// Free bytes the file system must keep for a write to start ([`health`]); 0 checks
    /// nothing.
    pub reserve_bytes: u64,
    /// A switch for tests that makes the disk behave as full.
    pub fault: DiskFault,
    /// Bytes redb may cache; `None` keeps redb's default (1 GiB). The hot state lives in the
    /// partitions, so the cache mostly holds recently written pages: it bounds how far the
    /// process grows under a steady write load.
    pub cache_bytes: Option<usize>,
}

/// The platform's durable state.
pub struct Store {
    /// The open database; `None` after an I/O failure until it reopens.
    db: RwLock<Option<Arc<Database>>>,
    /// The database file.
    path: PathBuf,
    /// Set by the file when any I/O fails: the database must be reopened.
    failed: Arc<AtomicBool>,
    /// When the last reopen was tried.
    last_reopen: Mutex<Option<Instant>>,
    /// Refuses writes while the disk is (nearly) full.
    guard: SpaceGuard,
    /// redb's cache size, for reopening.
    cache_bytes: Option<usize>,
    /// The next free journal position; positions reserved by a failed commit stay unused.
    journal_next: AtomicU64,
    /// The next unit log row's number.
    unit_log_next: AtomicU64,
    /// What stored secrets are sealed under.
    master_key: MasterKey,
    /// Command-signing keys opened so far.
    keys: command_keys::KeyCache,
}

impl Store {
    /// Opens (or creates) the redb file, creating its directory and tables, with the master
    /// key in `master.key` beside it (created on first start) and no space reserve.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_with(path, StoreOptions::default())
    }

    /// Opens (or creates) the redb file as `options` say.
    pub fn open_with(path: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        let dir = path
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let master_key = match options.master_key {
            Some(key) => key,
            None => MasterKey::load_or_create(&path.with_file_name("master.key"))?,
        };
        let failed = Arc::new(AtomicBool::new(false));
        let guard = SpaceGuard {
            dir: dir.to_path_buf(),
            reserve_bytes: options.reserve_bytes,
            fault: options.fault,
        };
        let db = open_file(path, &failed, &guard.fault, options.cache_bytes)?;
        format::check_or_stamp(&db)?;
        let txn = db.begin_write()?;
        txn.open_table(UNITS)?;
        txn.open_table(UNIT_STATE)?;
        txn.open_table(unit_log::UNIT_LOG)?;
        txn.open_table(billing::JOURNAL)?;
        txn.open_table(billing::PAYMENT_REFS)?;
        txn.open_table(billing::ADJUSTMENT_REFS)?;
        txn.open_table(billing::UNIT_EVENTS)?;
        txn.open_table(billing::REVENUE)?;
        txn.open_table(billing::CLOSED_ACCOUNTS)?;
        txn.open_table(keypad::KEYPAD_UNITS)?;
        txn.open_table(keypad::TOKENS)?;
        txn.open_table(command_keys::COMMAND_KEYS)?;
        txn.open_table(command_keys::NEXT_COMMAND_KEYS)?;
        txn.commit()?;
        let journal_next = AtomicU64::new(Store::journal_end(&db)?);
        let unit_log_next = AtomicU64::new(Store::unit_log_end(&db)?);
        metrics::gauge!("sunledger_storage_available").set(1.0);
        let store = Store {
            db: RwLock::new(Some(Arc::new(db))),
            path: path.to_path_buf(),
            failed,
            last_reopen: Mutex::new(None),
            guard,
            cache_bytes: options.cache_bytes,
            journal_next,
            unit_log_next,
            master_key,
            keys: command_keys::KeyCache::default(),
        };
        store.fold_unit_log_or_warn();
        Ok(store)
    }

    /// The redb database, for reads and for other components' tables in the same file (the
    /// control API's organisations, team and audit log), so the platform stays one file with
    /// one transaction order. After an I/O failure it is reopened first; while that fails,
    /// [`StoreError::Unavailable`].
    pub fn database(&self) -> Result<Arc<Database>, StoreError> {
        if self.failed.load(Ordering::SeqCst) {
            self.reopen();
        }
        self.db
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or(StoreError::Unavailable)
    }

    /// Starts a write transaction on the database, unless the disk is too full to write
    /// ([`StoreError::DiskFull`]) or the database is unavailable.
    pub fn begin_write(&self) -> Result<redb::WriteTransaction, StoreError> {
        self.guard.check()?;
        Ok(self.database()?.begin_write()?)
    }

    /// Whether the database is open and no I/O has failed since.
    pub fn is_available(&self) -> bool {
        !self.failed.load(Ordering::SeqCst)
    }

    /// Closes the failed database and opens the file again (its last committed state), at
    /// most every [`health::REOPEN_INTERVAL`]. Until it succeeds the store is unavailable.
    fn reopen(&self) {
        {
            let mut last = self
                .last_reopen
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if last.is_some_and(|at| at.elapsed() < health::REOPEN_INTERVAL) {
                return;
            }
            *last = Some(Instant::now());
        }
        let mut db = self.db.write().unwrap_or_else(PoisonError::into_inner);
        if !self.failed.load(Ordering::SeqCst) {
            return;
        }
        metrics::gauge!("sunledger_storage_available").set(0.0);
        // The file stays locked until every handle on the failed database is gone.
        *db = None;
        self.failed.store(false, Ordering::SeqCst);
        match open_file(
            &self.path,
            &self.failed,
            &self.guard.fault,
            self.cache_bytes,
        ) {
            Ok(reopened) => {
                *db = Some(Arc::new(reopened));
                metrics::gauge!("sunledger_storage_available").set(1.0);
                tracing::warn!(path = %self.path.display(), "database reopened after an I/O failure");
            }
            Err(error) => {
                self.failed.store(true, Ordering::SeqCst);
                tracing::warn!(%error, "database still unavailable");
            }
        }
    }

    /// What stored secrets are sealed under.
    pub(crate) fn master_key(&self) -> &MasterKey {
        &self.master_key
    }

    /// Reserves a block of journal positions for one partition's next ledger entries: taken
    /// in order, they make runs the journal stores as one row each (see [`billing`]), however
    /// many partitions append at once. Positions left unused stay unused.
    pub fn reserve_journal_block(&self) -> std::ops::Range<u64> {
        let start = self
            .journal_next
            .fetch_add(billing::JOURNAL_PACK_MAX, Ordering::Relaxed);
        start..start + billing::JOURNAL_PACK_MAX
    }

    /// Registers a new enabled unit of the platform (outside any organisation) and returns
    /// its device key, the only time it is seen.
    pub fn register_unit(
        &self,
        serial: &str,
        now_ms: i64,
        development_mode: bool,
    ) -> Result<(UnitRecord, DeviceKey), StoreError> {
        let txn = self.begin_write()?;
        let registered =
            self.register_unit_in(&txn, serial, now_ms, PLATFORM_OWNER, development_mode)?;
        txn.commit()?;
        Ok(registered)
    }

    /// Registers a new enabled unit inside `txn`, a write transaction on this store's file,
    /// so another component (the operators' directory) can claim the unit in the same
    /// commit: both or neither. The unit may connect once `txn` commits and the caller adds
    /// the record to the [`UnitDirectory`]. Its commands are signed with `owner`'s key (made
    /// in `txn` if the owner has none yet). A `development_mode` unit's messages are accepted
    /// without a MAC.
    pub fn register_unit_in(
        &self,
        txn: &redb::WriteTransaction,
        serial: &str,
        now_ms: i64,
        owner: &str,
        development_mode: bool,
    ) -> Result<(UnitRecord, DeviceKey), StoreError> {
        sunledger_proto::topic::validate_serial(serial)
            .map_err(|error| StoreError::InvalidSerial(serial.to_owned(), error))?;
        let key = DeviceKey::generate();
        let record = UnitRecord {
            serial: serial.to_owned(),
            key: key.stored(serial, &self.master_key),
            status: UnitStatus::Enabled,
            registered_at_ms: now_ms,
            owner: owner.to_owned(),
            development_mode,
            previous: None,
        };
        self.command_key_in(txn, owner)?;
        let mut units = txn.open_table(UNITS)?;
        if units.get(serial)?.is_some() {
            return Err(StoreError::UnitExists(serial.to_owned()));
        }
        units.insert(serial, codec::encode(&record)?.as_slice())?;
        Ok((record, key))
    }

    /// Changes a unit's status and returns the updated record.
    pub fn set_unit_status(
        &self,
        serial: &str,
        status: UnitStatus,
    ) -> Result<UnitRecord, StoreError> {
        let txn = self.begin_write()?;
        let record = self.update_unit_in(&txn, serial, |record| record.status = status)?;
        txn.commit()?;
        Ok(record)
    }

    /// Changes the stored record of unit `serial` inside `txn` and returns it.
    fn update_unit_in(
        &self,
        txn: &redb::WriteTransaction,
        serial: &str,
        change: impl FnOnce(&mut UnitRecord),
    ) -> Result<UnitRecord, StoreError> {
        let mut units = txn.open_table(UNITS)?;
        let stored = units
            .get(serial)?
            .ok_or_else(|| StoreError::UnitNotFound(serial.to_owned()))?;
        let mut record: UnitRecord = codec::decode(stored.value())?;
        drop(stored);
        change(&mut record);
        units.insert(serial, codec::encode(&record)?.as_slice())?;
        Ok(record)
    }

    /// Issues a new device key for unit `serial` inside `txn`. The old key (password and MAC)
    /// is still accepted until `now_ms + grace_ms`, so units in the field can be re-flashed
    /// meanwhile; a grace of 0 retires it at once (a leaked key). A key already in its grace
    /// is dropped: only the newest old key is kept.
    pub fn rotate_device_key_in(
        &self,
        txn: &redb::WriteTransaction,
        serial: &str,
        now_ms: i64,
        grace_ms: i64,
    ) -> Result<(UnitRecord, DeviceKey), StoreError> {
        let key = DeviceKey::generate();
        let stored = key.stored(serial, &self.master_key);
        let record = self.update_unit_in(txn, serial, |record| {
            let old = std::mem::replace(&mut record.key, stored);
            record.previous = (grace_ms > 0).then(|| RetiredKey {
                key: old,
                until_ms: now_ms.saturating_add(grace_ms),
            });
        })?;
        Ok((record, key))
    }

    /// [`Store::rotate_device_key_in`] in a transaction of its own.
    pub fn rotate_device_key(
        &self,
        serial: &str,
        now_ms: i64,
        grace_ms: i64,
    ) -> Result<(UnitRecord, DeviceKey), StoreError> {
        let txn = self.begin_write()?;
        let rotated = self.rotate_device_key_in(&txn, serial, now_ms, grace_ms)?;
        txn.commit()?;
        Ok(rotated)
    }

    /// The in-memory directory of every registered unit, keys opened, for the broker's
    /// CONNECT check and the engine's per-message check.
    pub fn unit_directory(&self) -> Result<UnitDirectory, StoreError> {
        Ok(UnitDirectory::from_records(
            self.master_key.clone(),
            self.units()?,
        ))
    }

    /// Every registered unit.
    pub fn units(&self) -> Result<Vec<UnitRecord>, StoreError> {
        let txn = self.database()?.begin_read()?;
        let units = txn.open_table(UNITS)?;
        let mut records = Vec::new();
        for entry in units.iter()? {
            records.push(codec::decode(entry?.1.value())?);
        }
        Ok(records)
    }
}

/// Opens the database in the watched file at `path`.
fn open_file(
    path: &Path,
    failed: &Arc<AtomicBool>,
    fault: &DiskFault,
    cache_bytes: Option<usize>,
) -> Result<Database, StoreError> {
    let file = WatchedFile::open(path, failed.clone(), fault.clone())?;
    let mut builder = redb::Builder::new();
    if let Some(bytes) = cache_bytes {
        builder.set_cache_size(bytes);
    }
    Ok(builder.create_with_backend(file)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Unit, UnitState};

    #[test]
    fn units_and_states_survive_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/sunledger.redb");
        let store = Store::open(&path).unwrap();
        let (record, _secret) = store.register_unit("SL1", 42, false).unwrap();
        assert!(matches!(
            store.register_unit("SL1", 43, false),
            Err(StoreError::UnitExists(_))
        ));
        assert!(matches!(
            store.register_unit("S/1", 43, false),
            Err(StoreError::InvalidSerial(..))
        ));
        let state = UnitState {
            consumed_wh: 7,
            ..UnitState::default()
        };
        let unit = Unit {
            state: state.clone(),
            account: None,
        };
        let mut txn = store.begin().unwrap();
        txn.put_units([("SL1", &unit)]).unwrap();
        txn.commit().unwrap();
        drop(store);

        let store = Store::open(&path).unwrap();
        assert_eq!(store.units().unwrap(), vec![record]);
        assert_eq!(store.unit_state("SL1").unwrap(), Some(state));
        let decommissioned = store
            .set_unit_status("SL1", UnitStatus::Decommissioned)
            .unwrap();
        assert_eq!(decommissioned.status, UnitStatus::Decommissioned);
        let (rotated, key) = store.rotate_device_key("SL1", 1_000, 500).unwrap();
        assert_ne!(rotated.key, decommissioned.key);
        let previous = rotated
            .previous
            .as_ref()
            .expect("old key kept for its grace");
        assert_eq!(
            (&previous.key, previous.until_ms),
            (&decommissioned.key, 1_500)
        );
        let directory = store.unit_directory().unwrap();
        assert_eq!(
            directory.verify_at("SL1", &key.mqtt_password(), 1_000),
            sunledger_broker::Verdict::Decommissioned,
            "the new key opens and is checked"
        );
        let (at_once, _) = store.rotate_device_key("SL1", 2_000, 0).unwrap();
        assert_eq!(at_once.previous, None, "no grace keeps no old key");
        assert!(matches!(
            store.set_unit_status("nope", UnitStatus::Enabled),
            Err(StoreError::UnitNotFound(_))
        ));
    }
}
