//! Keeping the redb file writable, or failing cleanly when it is not.
//!
//! Two defences against a full disk:
//! - **Before** a write: [`SpaceGuard`] refuses to start a write transaction while the file
//!   system has less free space than a reserve, so redb never meets a failed write in the
//!   normal case. Reads go on, and writes resume by themselves once space returns.
//! - **If** a write fails anyway (the disk filled between the check and the commit, an I/O
//!   error): redb latches every later operation on that database to `PreviousIo`, reads
//!   included, until it is reopened. [`WatchedFile`] wraps the file so the store sees the
//!   failure, and the store reopens the file (at most every [`REOPEN_INTERVAL`]); the reopened
//!   file is the last committed state, nothing half-written.
//!
//! [`DiskFault`] lets tests make the disk "full" for both.

use std::fs::File;
use std::io;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redb::StorageBackend;
use redb::backends::FileBackend;

use super::StoreError;

/// Least time between two attempts to reopen a failed file.
pub(super) const REOPEN_INTERVAL: Duration = Duration::from_millis(200);

/// A switch that makes the disk behave as full, for tests of what the platform does then.
#[derive(Clone, Debug, Default)]
pub struct DiskFault {
    full: Arc<AtomicBool>,
    writes_fail: Arc<AtomicBool>,
}

impl DiskFault {
    /// The disk is full: the space guard sees no free space and writes reaching the file fail.
    pub fn fill(&self) {
        self.full.store(true, Ordering::SeqCst);
        self.writes_fail.store(true, Ordering::SeqCst);
    }

    /// Writes reaching the file fail while the guard still sees space: the disk filled after
    /// the check (or the device failed).
    pub fn fail_writes(&self) {
        self.writes_fail.store(true, Ordering::SeqCst);
    }

    /// Space is back.
    pub fn free(&self) {
        self.full.store(false, Ordering::SeqCst);
        self.writes_fail.store(false, Ordering::SeqCst);
    }

    fn is_full(&self) -> bool {
        self.full.load(Ordering::SeqCst)
    }

    fn writes_fail(&self) -> bool {
        self.writes_fail.load(Ordering::SeqCst)
    }
}

/// Refuses write transactions while the file system has less than a reserve free.
#[derive(Debug)]
pub(super) struct SpaceGuard {
    /// The directory holding the database.
    pub dir: PathBuf,
    /// Free bytes kept in reserve.
    pub reserve_bytes: u64,
    /// The test switch.
    pub fault: DiskFault,
}

impl SpaceGuard {
    /// `Ok` when a write may start.
    pub fn check(&self) -> Result<(), StoreError> {
        let available = match self.fault.is_full() {
            true => 0,
            false if self.reserve_bytes == 0 => return Ok(()),
            false => available_bytes(&self.dir)?,
        };
        if available < self.reserve_bytes.max(1) {
            metrics::counter!("sunledger_storage_refused_total", "reason" => "disk_full")
                .increment(1);
            return Err(StoreError::DiskFull {
                available,
                reserve: self.reserve_bytes,
            });
        }
        Ok(())
    }
}

/// Bytes an unprivileged process may still write on the file system holding `dir`.
fn available_bytes(dir: &Path) -> io::Result<u64> {
    let stats = rustix::fs::statvfs(dir)?;
    Ok(stats.f_bavail.saturating_mul(stats.f_frsize))
}

/// The database file, with every I/O failure noted in `failed` (the flag the store reopens
/// on) and writes failing while the test switch says so.
#[derive(Debug)]
pub(super) struct WatchedFile {
    inner: FileBackend,
    failed: Arc<AtomicBool>,
    fault: DiskFault,
}

impl WatchedFile {
    /// Opens (or creates) the file at `path`.
    pub fn open(
        path: &Path,
        failed: Arc<AtomicBool>,
        fault: DiskFault,
    ) -> Result<WatchedFile, StoreError> {
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        Ok(WatchedFile {
            inner: FileBackend::new(file)?,
            failed,
            fault,
        })
    }

    /// Notes a failure of `result` before handing it on.
    fn watched<T, E>(&self, result: Result<T, E>) -> Result<T, E> {
        if result.is_err() {
            self.failed.store(true, Ordering::SeqCst);
        }
        result
    }

    /// The error a write meets while the test switch fails writes.
    fn injected(&self) -> Result<(), io::Error> {
        match self.fault.writes_fail() {
            true => self.watched(Err(io::Error::from(io::ErrorKind::StorageFull))),
            false => Ok(()),
        }
    }
}

impl StorageBackend for WatchedFile {
    fn len(&self) -> Result<u64, io::Error> {
        self.watched(self.inner.len())
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.watched(self.inner.read(offset, out))
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        self.injected()?;
        self.watched(self.inner.set_len(len))
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        self.injected()?;
        self.watched(self.inner.sync_data())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.injected()?;
        self.watched(self.inner.write(offset, data))
    }

    fn close(&self) -> Result<(), io::Error> {
        self.inner.close()
    }

    fn try_lock_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, redb::BackendError> {
        self.inner.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, redb::BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), redb::BackendError> {
        self.inner.lock_range(start, end)
    }

    fn lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<(), redb::BackendError> {
        self.inner.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), redb::BackendError> {
        self.inner.unlock_range(start, end)
    }

    fn query_lock_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, redb::BackendError> {
        self.inner.query_lock_range(start, end)
    }
}
