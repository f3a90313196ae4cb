//! A partition's batch commits, run on a thread of their own.
//!
//! A durable commit spends most of its time waiting for the disk (redb writes its pages and
//! syncs the file): 2–3 ms per batch of 8,192 readings on the benchmark machine's cloud
//! volume, a third of a busy partition's time. Handing the written transaction to this thread
//! lets the partition apply its next batch while the disk syncs. At most one commit is in
//! flight, and the partition settles it (see [`super::Partition::settle`]) before it writes
//! anything else, answers a request or publishes a command: nothing is acknowledged, and no
//! command leaves, before its commit is durable.

use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;

use crate::store::{StoreError, WriteTxn};

/// The thread that commits a partition's batches, one at a time.
pub(super) struct Committer {
    /// Transactions to commit; `None` once dropped, which ends the thread.
    txns: Option<SyncSender<WriteTxn>>,
    /// Each commit's outcome, in order.
    outcomes: Receiver<Result<(), StoreError>>,
    thread: Option<JoinHandle<()>>,
}

impl Committer {
    /// Starts partition `index`'s commit thread.
    pub(super) fn start(index: usize) -> Result<Committer, StoreError> {
        let (txns, to_commit) = mpsc::sync_channel::<WriteTxn>(1);
        let (done, outcomes) = mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name(format!("commit-{index}"))
            .spawn(move || {
                for txn in to_commit {
                    if done.send(txn.commit()).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Committer {
            txns: Some(txns),
            outcomes,
            thread: Some(thread),
        })
    }

    /// Starts committing `txn`. The caller waits for its outcome ([`Committer::outcome`])
    /// before sending another.
    pub(super) fn send(&self, txn: WriteTxn) -> Result<(), StoreError> {
        let txns = self.txns.as_ref().ok_or_else(ended)?;
        // A send fails only if the thread is gone; the transaction is then dropped, aborted.
        txns.send(txn).map_err(|_| ended())
    }

    /// Waits for the outcome of the commit last sent.
    pub(super) fn outcome(&self) -> Result<(), StoreError> {
        self.outcomes.recv().map_err(|_| ended())?
    }
}

/// The commit thread is gone (it panicked): what every later commit reports.
fn ended() -> StoreError {
    StoreError::Io(std::io::Error::other(
        "the partition's commit thread has ended",
    ))
}

impl Drop for Committer {
    /// Lets a commit in flight finish, so dropping a partition never cuts one short.
    fn drop(&mut self) {
        self.txns = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
