//! The stored format's version, checked when the file opens. Records are postcard, which is
//! not self-describing: a file written in another format would decode into wrong values (a
//! balance, a meter) rather than fail. So a new file is stamped with [`FORMAT_VERSION`], and a
//! file with tables but another version, or none (written before versions were kept), is
//! refused with both versions named, before anything reads it. A file in a format this build
//! can upgrade from ([`UPGRADES_FROM`]) is restamped.

use redb::{ReadableDatabase, TableDefinition};

use super::StoreError;

/// Facts about the file itself.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// The [`META`] key of the stored format's version.
const FORMAT_KEY: &str = "format";

/// The format this build reads and writes. 2 (2026-12-04): money as scale and varint mantissa,
/// journal rows holding runs of consecutive entries. 3 (2026-12-04): the unit log, where
/// commits write units' records, with `unit_state` holding checkpoints (a build of format 2
/// would read stale units from `unit_state` alone). 4 (2026-12-05): usage charges' reasons
/// stored as numbers (`ledger::EntryReason`), which a build of format 3 cannot decode.
pub const FORMAT_VERSION: u64 = 4;

/// The formats a file is upgraded from when it opens, by restamping it alone: format 3 is
/// format 4 with every reason stored as text, and format 2 is format 3 with an empty unit log.
const UPGRADES_FROM: [u64; 2] = [2, 3];

/// Stamps a new file with [`FORMAT_VERSION`], or checks that an existing one carries it; must
/// run before any table is created in the file.
pub(super) fn check_or_stamp(db: &redb::Database) -> Result<(), StoreError> {
    let stored = {
        let txn = db.begin_read()?;
        let new_file = txn.list_tables()?.next().is_none();
        match txn.open_table(META) {
            Ok(meta) => meta.get(FORMAT_KEY)?.map(|version| version.value()),
            Err(redb::TableError::TableDoesNotExist(_)) if new_file => None,
            Err(redb::TableError::TableDoesNotExist(_)) => {
                return Err(StoreError::Format { found: None });
            }
            Err(error) => return Err(error.into()),
        }
    };
    match stored {
        Some(FORMAT_VERSION) => Ok(()),
        Some(found) if !UPGRADES_FROM.contains(&found) => {
            Err(StoreError::Format { found: Some(found) })
        }
        Some(_) | None => {
            let txn = db.begin_write()?;
            txn.open_table(META)?.insert(FORMAT_KEY, FORMAT_VERSION)?;
            txn.commit()?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    /// A redb file at `path` holding what `fill` writes, as another build would leave it.
    fn file_with(path: &std::path::Path, fill: impl FnOnce(&redb::WriteTransaction)) {
        let db = redb::Database::create(path).unwrap();
        let txn = db.begin_write().unwrap();
        fill(&txn);
        txn.commit().unwrap();
    }

    #[test]
    fn a_new_file_is_stamped_the_previous_formats_upgraded_and_another_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stamped.redb");
        drop(Store::open(&path).unwrap());
        assert!(Store::open(&path).is_ok(), "reopens in its own format");

        let unstamped = dir.path().join("unstamped.redb");
        file_with(&unstamped, |txn| {
            txn.open_table(TableDefinition::<&str, &[u8]>::new("units"))
                .unwrap();
        });
        let error = Store::open(&unstamped).err().expect("refused");
        assert!(
            matches!(error, StoreError::Format { found: None }),
            "{error}"
        );

        for version in UPGRADES_FROM {
            let upgradable = dir.path().join(format!("format-{version}.redb"));
            file_with(&upgradable, |txn| {
                txn.open_table(META)
                    .unwrap()
                    .insert(FORMAT_KEY, version)
                    .unwrap();
            });
            drop(Store::open(&upgradable).expect("upgraded"));
            let db = redb::Database::open(&upgradable).unwrap();
            let txn = db.begin_read().unwrap();
            let stamp = txn.open_table(META).unwrap().get(FORMAT_KEY).unwrap();
            assert_eq!(stamp.map(|stamp| stamp.value()), Some(FORMAT_VERSION));
        }

        let older = dir.path().join("older.redb");
        file_with(&older, |txn| {
            txn.open_table(META).unwrap().insert(FORMAT_KEY, 1).unwrap();
        });
        let error = Store::open(&older).err().expect("refused");
        assert!(
            matches!(error, StoreError::Format { found: Some(1) }),
            "{error}"
        );
        assert!(error.to_string().contains("format 1"), "{error}");
    }
}
