//! The partition threads and the [`Engine`] that routes to them.
//!
//! Each partition has a bounded lock-free queue of device events (filled by ingest) and a
//! request channel (API calls). Its thread takes everything queued, up to
//! `batch_events_max`, applies it as one batch and starts its one durable commit (group
//! commit: the batch grows on its own while the previous commit is in flight, so latency stays
//! at one commit under light load). While more events wait, the next batch is applied as the
//! disk syncs the last; otherwise, and before serving a request, the commit is finished. Under
//! load, batches start at most every `commit_interval_min_ms`: a commit's fixed cost (about
//! 200 µs of CPU, much of it the sync) is then shared by more events. The
//! commands that resulted are published once their commit is durable. Commands that devices
//! online have not acknowledged are published again every `command_resend_interval_ms`.

use std::sync::atomic::{AtomicBool, Ordering, fence};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use serde::{Deserialize, Serialize};
use sunledger_proto::device::{Command, LoadState, Reason};

use crate::account::Reversal;
use crate::account_record::{
    AccountChange, AccountOpening, AccountRecord, ClosedAccount, Movement, Receipt,
};
use crate::clock::Clock;
use crate::commands::CommandSink;
use crate::engine::{
    CreditEnding, EngineError, OrgSummary, Partition, UnitLogBound, UnitState, partition_of,
};
use crate::keypad::IssuedToken;
use crate::store::RefKind;
use crate::store::{Store, StoreError};
use crate::units::{Admitted, UnitDirectory};

/// How long an idle partition thread sleeps before looking again (it is woken early on work).
const IDLE_WAIT: Duration = Duration::from_millis(50);

/// How often a partition recounts its online units and accounts below the limit for the
/// gauges: a scan of hot state, cheap even at 10^6 units every few seconds.
const CENSUS_INTERVAL: Duration = Duration::from_secs(5);

/// Engine settings.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Number of partitions (threads) units are spread over by serial hash.
    pub partitions: usize,
    /// Capacity of each partition's event queue; a full queue makes ingest wait.
    pub queue_events_max: usize,
    /// Most events applied in one commit.
    pub batch_events_max: usize,
    /// Shortest time from one commit's start to the next's, in milliseconds. A commit has a
    /// fixed cost (the disk sync) whatever its size: under load, events wait this long to
    /// share one instead of each small batch paying it. A partition that has not committed
    /// for this long commits at once, so a quiet fleet's latency is unchanged. 0: no wait.
    pub commit_interval_min_ms: u64,
    /// How often commands that units online have not acknowledged are published again.
    pub command_resend_interval_ms: u64,
    /// Unit log entries each partition keeps before it checkpoints units, whatever its
    /// units (see [`crate::engine::UnitLogBound`]).
    pub unit_log_entries_min: usize,
    /// Unit log entries each partition keeps per unit it holds, when that is more.
    pub unit_log_entries_per_unit: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            partitions: 1,
            queue_events_max: 65_536,
            batch_events_max: 8_192,
            commit_interval_min_ms: 4,
            command_resend_interval_ms: 30_000,
            unit_log_entries_min: UnitLogBound::default().entries_min,
            unit_log_entries_per_unit: UnitLogBound::default().entries_per_unit,
        }
    }
}

impl EngineConfig {
    /// Checks every field once, before anything starts.
    pub fn validate(&self) -> Result<(), EngineConfigError> {
        let fields = [
            ("partitions", self.partitions as u64),
            ("queue_events_max", self.queue_events_max as u64),
            ("batch_events_max", self.batch_events_max as u64),
            ("unit_log_entries_min", self.unit_log_entries_min as u64),
            (
                "command_resend_interval_ms",
                self.command_resend_interval_ms,
            ),
        ];
        match fields.into_iter().find(|(_, value)| *value == 0) {
            Some((field, _)) => Err(EngineConfigError { field }),
            None => Ok(()),
        }
    }
}

/// An engine setting that cannot work: every engine limit must be at least 1.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("engine.{field} must be at least 1")]
pub struct EngineConfigError {
    /// The offending field.
    pub field: &'static str,
}

/// Work for a partition thread from outside it: runs with the partition, answers through the
/// channel it captured.
type Job = Box<dyn FnOnce(&mut Partition) + Send>;

/// The producer side of one partition.
pub struct PartitionHandle {
    queue: Arc<ArrayQueue<Admitted>>,
    requests: mpsc::Sender<Job>,
    thread: std::thread::Thread,
    /// Whether the thread is parked for want of work (see [`PartitionHandle::wake`]).
    idle: Arc<AtomicBool>,
}

impl PartitionHandle {
    /// Queues an admitted event; gives it back if the queue is full.
    pub fn try_push(&self, event: Admitted) -> Result<(), Admitted> {
        self.queue.push(event)
    }

    /// Wakes the partition thread after pushing, if it is parked for want of work. Otherwise
    /// it takes the event on its next round anyway, and an unpark would cost a syscall per
    /// event and, while the thread waits for its commit thread (a channel wait parks it
    /// too), a spurious wake-up and context switch per event.
    pub fn wake(&self) {
        // Pairs with the fence in `Worker::rest`: either the thread sees the event pushed
        // before this call, or this sees the thread idle.
        fence(Ordering::SeqCst);
        if self.idle.load(Ordering::Relaxed) {
            self.thread.unpark();
        }
    }

    /// Whether the queue has no room: a producer that cannot wait in place answers so.
    pub fn is_full(&self) -> bool {
        self.queue.is_full()
    }

    /// Queues `job` for the partition thread; its answer arrives on the returned receiver.
    fn ask<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Partition) -> T + Send + 'static,
    ) -> Result<mpsc::Receiver<T>, EngineError> {
        let (reply, answer) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |partition| {
            let _ = reply.send(job(partition));
        });
        self.requests.send(job).map_err(|_| EngineError::Stopping)?;
        // Requests are rare and the thread does not watch its inbox while idle: woken always.
        self.thread.unpark();
        Ok(answer)
    }
}

/// All partitions of this process, and the routing of work to them.
pub struct Engine {
    store: Arc<Store>,
    partitions: Vec<PartitionHandle>,
    stop: Arc<AtomicBool>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Engine {
    /// Loads every partition and starts its thread; `sink` makes each partition's publisher.
    /// Instalments that fell due while the engine was down are charged first thing.
    pub fn start(
        store: Arc<Store>,
        directory: Arc<UnitDirectory>,
        clock: Arc<dyn Clock>,
        config: &EngineConfig,
        mut sink: impl FnMut(usize) -> Box<dyn CommandSink>,
    ) -> Result<Engine, StoreError> {
        register_rare_counters();
        let stop = Arc::new(AtomicBool::new(false));
        let (mut partitions, mut threads) = (Vec::new(), Vec::new());
        for index in 0..config.partitions {
            let mut partition = Partition::open(
                store.clone(),
                directory.clone(),
                clock.clone(),
                index,
                config.partitions,
            )?;
            partition.set_unit_log_bound(UnitLogBound {
                entries_min: config.unit_log_entries_min,
                entries_per_unit: config.unit_log_entries_per_unit,
            });
            let queue = Arc::new(ArrayQueue::new(config.queue_events_max));
            let (requests, inbox) = mpsc::channel();
            let idle = Arc::new(AtomicBool::new(false));
            let worker = Worker {
                index,
                partition,
                queue: queue.clone(),
                inbox,
                sink: sink(index),
                config: config.clone(),
                stop: stop.clone(),
                idle: idle.clone(),
            };
            let thread = std::thread::Builder::new()
                .name(format!("billing-{index}"))
                .spawn(move || worker.run())?;
            partitions.push(PartitionHandle {
                queue,
                requests,
                thread: thread.thread().clone(),
                idle,
            });
            threads.push(thread);
        }
        Ok(Engine {
            store,
            partitions,
            stop,
            threads: Mutex::new(threads),
        })
    }

    /// The partition that owns `serial`.
    pub fn partition_for(&self, serial: &str) -> &PartitionHandle {
        &self.partitions[partition_of(serial, self.partitions.len())]
    }

    /// Every partition, for ingest's routing and metrics.
    pub fn partitions(&self) -> &[PartitionHandle] {
        &self.partitions
    }

    /// Runs `job` on the partition owning `serial` and waits for its answer.
    fn call<T: Send + 'static>(
        &self,
        serial: &str,
        job: impl FnOnce(&mut Partition) -> T + Send + 'static,
    ) -> Result<T, EngineError> {
        let answer = self.partition_for(serial).ask(job)?;
        answer.recv().map_err(|_| EngineError::Stopping)
    }

    /// Sets a unit's desired load state durably and publishes the command; returns it.
    pub fn set_load(
        &self,
        serial: &str,
        load: LoadState,
        reason: Reason,
    ) -> Result<Command, EngineError> {
        let owned = serial.to_owned();
        self.call(serial, move |partition| {
            partition.set_load(&owned, load, reason)
        })?
    }

    /// The partition's current view of a unit's device side.
    pub fn unit(&self, serial: &str) -> Result<Option<UnitState>, EngineError> {
        let owned = serial.to_owned();
        self.call(serial, move |partition| {
            partition.unit(&owned).map(|unit| unit.state.clone())
        })
    }

    /// The partition's current view of a unit's account.
    pub fn account(&self, serial: &str) -> Result<Option<AccountRecord>, EngineError> {
        let owned = serial.to_owned();
        self.call(serial, move |partition| {
            partition.unit(&owned).and_then(|unit| unit.account.clone())
        })
    }

    /// Opens an account for a registered unit, durably.
    pub fn open_account(
        &self,
        serial: &str,
        opening: AccountOpening,
    ) -> Result<AccountRecord, EngineError> {
        let owned = serial.to_owned();
        self.call(serial, move |partition| {
            partition.open_account(&owned, opening)
        })?
    }

    /// Changes an account's terms, durably.
    pub fn change_account(
        &self,
        serial: &str,
        change: AccountChange,
    ) -> Result<AccountRecord, EngineError> {
        let owned = serial.to_owned();
        self.call(serial, move |partition| {
            partition.change_account(&owned, change)
        })?
    }

    /// Closes a unit's account, durably, so the unit can be billed again under a new one; see
    /// [`Partition::close_account`].
    pub fn close_account(&self, serial: &str) -> Result<ClosedAccount, EngineError> {
        let owned = serial.to_owned();
        self.call(serial, move |partition| partition.close_account(&owned))?
    }

    /// Records a payment or adjustment on a unit's account; returns once it is durable.
    pub fn record(&self, serial: &str, movement: Movement) -> Result<Receipt, EngineError> {
        let owned = serial.to_owned();
        self.call(serial, move |partition| partition.record(&owned, movement))?
    }

    /// Reverses the organisation's payment with this provider reference, wherever it is.
    pub fn reverse_payment(
        &self,
        org: &str,
        provider_ref: &str,
        reversal: Reversal,
    ) -> Result<Receipt, EngineError> {
        let index = self
            .store
            .reference(RefKind::Payment, org, provider_ref)?
            .ok_or_else(|| EngineError::PaymentNotFound(provider_ref.to_owned()))?;
        let movement = Movement::Reversal {
            provider_ref: provider_ref.to_owned(),
            reversal,
        };
        self.record(&index.serial, movement)
    }

    /// Issues a keypad unit's COUNTER_SYNC token, durably; `by` is the Admin, for the log.
    pub fn counter_sync(&self, serial: &str, by: &str) -> Result<IssuedToken, EngineError> {
        let (owned, by) = (serial.to_owned(), by.to_owned());
        self.call(serial, move |partition| partition.counter_sync(&owned, &by))?
    }

    /// Sets or ends a unit's Offline Disable hold, durably; returns its device side.
    pub fn set_offline_disabled(
        &self,
        serial: &str,
        disabled: bool,
    ) -> Result<UnitState, EngineError> {
        let owned = serial.to_owned();
        self.call(serial, move |partition| {
            partition.set_offline_disabled(&owned, disabled)
        })?
    }

    /// Counts over `org`'s accounts in every partition of this process, asked of all
    /// partitions at once.
    pub fn org_summary(&self, org: &str) -> Result<OrgSummary, EngineError> {
        let org = org.to_owned();
        let answers = self.ask_all(move |partition| partition.org_summary(&org))?;
        Ok(answers
            .iter()
            .fold(OrgSummary::default(), |mut total, answer| {
                total.add(answer);
                total
            }))
    }

    /// The keypad accounts of this process whose credit runs out by `before_ms` (unix
    /// milliseconds) and has not yet: what low-credit reminders go to.
    pub fn credit_ending(&self, before_ms: i64) -> Result<Vec<CreditEnding>, EngineError> {
        let answers = self.ask_all(move |partition| partition.credit_ending(before_ms))?;
        Ok(answers.into_iter().flatten().collect())
    }

    /// Runs `job` on every partition at once and collects their answers.
    fn ask_all<T: Send + 'static>(
        &self,
        job: impl Fn(&mut Partition) -> T + Clone + Send + 'static,
    ) -> Result<Vec<T>, EngineError> {
        let answers = self
            .partitions
            .iter()
            .map(|handle| handle.ask(job.clone()))
            .collect::<Result<Vec<_>, EngineError>>()?;
        answers
            .into_iter()
            .map(|answer| answer.recv().map_err(|_| EngineError::Stopping))
            .collect()
    }

    /// Applies everything queued, commits, and stops the partition threads.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::SeqCst);
        for partition in &self.partitions {
            partition.thread.unpark();
        }
        let threads = std::mem::take(
            &mut *self
                .threads
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for thread in threads {
            if thread.join().is_err() {
                tracing::error!("a billing partition thread panicked");
            }
        }
    }
}

/// Logs a failed batch commit; a commit refused because the file is unavailable was counted
/// as dropped, and the failure that made it so was logged.
fn log_commit_failure(outcome: Result<(), StoreError>) {
    match outcome {
        Ok(()) | Err(StoreError::Unavailable) => {}
        Err(error) => {
            tracing::error!(%error, "batch commit failed; devices' next cumulative readings will cover it");
        }
    }
}

/// Registers the failure and retry counters at 0, so dashboards and alerts see 0 rather than
/// no data until the first failure.
fn register_rare_counters() {
    for name in [
        "sunledger_billing_commit_failed_total",
        "sunledger_commands_publish_failed_total",
        "sunledger_commands_resent_total",
    ] {
        metrics::counter!(name).increment(0);
    }
}

struct Worker {
    index: usize,
    partition: Partition,
    queue: Arc<ArrayQueue<Admitted>>,
    inbox: mpsc::Receiver<Job>,
    sink: Box<dyn CommandSink>,
    config: EngineConfig,
    stop: Arc<AtomicBool>,
    idle: Arc<AtomicBool>,
}

impl Worker {
    fn run(mut self) {
        let mut batch = Vec::with_capacity(self.config.batch_events_max);
        let resend_interval = Duration::from_millis(self.config.command_resend_interval_ms);
        let mut last_resend = Instant::now();
        let mut last_census = None;
        let queue_depth =
            metrics::gauge!("sunledger_ingest_queue_depth", "partition" => self.index.to_string());
        let batch_events = metrics::histogram!("sunledger_billing_batch_events");
        let mut last_batch = None;
        self.publish_retained_slots();
        loop {
            let stopping = self.stop.load(Ordering::SeqCst);
            let mut busy = false;
            let gathering = self.gathering(last_batch, stopping).is_some();
            while !gathering && batch.len() < self.config.batch_events_max {
                match self.queue.pop() {
                    Some(event) => batch.push(event),
                    None => break,
                }
            }
            queue_depth.set(self.queue.len() as f64);
            if !batch.is_empty() {
                busy = true;
                last_batch = Some(Instant::now());
                batch_events.record(batch.len() as f64);
                let submitted = self.partition.submit_batch(&batch);
                log_commit_failure(submitted);
                batch.clear();
            }
            // Under load the next batch is applied while this one's commit syncs; otherwise,
            // or while events gather, the commit is finished now, so its commands leave
            // without waiting for more.
            if gathering || self.queue.is_empty() {
                self.finish_commit();
            }
            busy |= self.serve_requests();
            // The charges build on the batch commit in flight: finished here, so a failure
            // of it is reported as the batch's.
            if self.partition.instalments_due() {
                self.finish_commit();
            }
            match self
                .partition
                .apply_due_instalments(self.config.batch_events_max)
            {
                Ok(charged) => busy |= charged > 0,
                Err(error) => {
                    tracing::error!(%error, "instalment commit failed; retried next round")
                }
            }
            self.publish_outbox();
            if last_resend.elapsed() >= resend_interval {
                self.finish_commit();
                self.resend_unacknowledged();
                last_resend = Instant::now();
            }
            if last_census.is_none_or(|at: Instant| at.elapsed() >= CENSUS_INTERVAL) {
                self.publish_census();
                last_census = Some(Instant::now());
            }
            if stopping && !busy && self.queue.is_empty() {
                self.finish_commit();
                self.publish_outbox();
                return;
            }
            if let Some(wait) = self.gathering(last_batch, stopping) {
                // Not marked idle: producers leave the thread be while events gather.
                std::thread::park_timeout(wait);
            } else if !busy {
                self.rest();
            }
        }
    }

    /// How much longer events should gather before the next batch, if they should: while
    /// less than `commit_interval_min_ms` has passed since the last batch started, unless the
    /// queue is empty (nothing to gather: the thread rests), a full batch waits, or the
    /// partition is stopping.
    fn gathering(&self, last_batch: Option<Instant>, stopping: bool) -> Option<Duration> {
        let waiting = self.queue.len();
        if stopping || waiting == 0 || waiting >= self.config.batch_events_max {
            return None;
        }
        let interval = Duration::from_millis(self.config.commit_interval_min_ms);
        interval
            .checked_sub(last_batch?.elapsed())
            .filter(|left| !left.is_zero())
    }

    /// Parks until woken or [`IDLE_WAIT`] passes, unless an event came in meanwhile;
    /// producers wake the thread only while it is marked idle here.
    fn rest(&self) {
        self.idle.store(true, Ordering::Relaxed);
        // Pairs with the fence in `PartitionHandle::wake`.
        fence(Ordering::SeqCst);
        if self.queue.is_empty() {
            std::thread::park_timeout(IDLE_WAIT);
        }
        self.idle.store(false, Ordering::Relaxed);
    }

    /// Runs queued API requests, once the commit in flight is finished: a request sees only
    /// committed state. Returns whether there were any.
    fn serve_requests(&mut self) -> bool {
        let mut served = false;
        while let Ok(job) = self.inbox.try_recv() {
            if !served {
                self.finish_commit();
                served = true;
            }
            job(&mut self.partition);
            self.publish_outbox();
        }
        served
    }

    /// Finishes the partition's commit in flight, if any, logging its failure.
    fn finish_commit(&mut self) {
        log_commit_failure(self.partition.finish_commit());
    }

    /// Publishes the commands the last commits produced.
    fn publish_outbox(&mut self) {
        for (serial, command) in self.partition.take_outbox() {
            self.publish(&serial, command);
        }
    }

    /// Sets the fleet gauges (online devices, accounts below the limit, commands awaiting an
    /// ack) from a scan of the partition's units.
    fn publish_census(&self) {
        let census = self.partition.census();
        let partition = self.index.to_string();
        metrics::gauge!("sunledger_devices_online", "partition" => partition.clone())
            .set(census.online as f64);
        metrics::gauge!("sunledger_accounts_below_limit", "partition" => partition.clone())
            .set(census.below_limit as f64);
        metrics::gauge!("sunledger_commands_pending", "partition" => partition)
            .set(census.awaiting_ack as f64);
    }

    /// Fills every unit's retained `cmd` slot with its current command.
    fn publish_retained_slots(&mut self) {
        let commands: Vec<(String, Command)> = self
            .partition
            .desired_commands()
            .map(|(serial, command)| (serial.to_owned(), command))
            .collect();
        for (serial, command) in commands {
            self.publish(&serial, command);
        }
    }

    fn resend_unacknowledged(&mut self) {
        let pending: Vec<(String, Command)> = self
            .partition
            .unacknowledged()
            .map(|(serial, command)| (serial.to_owned(), command))
            .collect();
        for (serial, command) in pending {
            metrics::counter!("sunledger_commands_resent_total").increment(1);
            self.publish(&serial, command);
        }
    }

    /// Signs `command` with its unit's owner's key and publishes it.
    fn publish(&mut self, serial: &str, command: Command) {
        if let Some(signed) = self.partition.signed(serial, command) {
            self.sink.publish(serial, &signed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A handle on the calling thread itself, so the test can watch its park token.
    fn handle_on_this_thread(idle: bool) -> PartitionHandle {
        let (requests, _inbox) = mpsc::channel();
        PartitionHandle {
            queue: Arc::new(ArrayQueue::new(1)),
            requests,
            thread: std::thread::current(),
            idle: Arc::new(AtomicBool::new(idle)),
        }
    }

    #[test]
    fn a_partition_thread_that_is_not_idle_is_not_unparked_for_each_event() {
        let handle = handle_on_this_thread(false);
        handle.wake();
        // An unpark would have left the token set and the park would return at once.
        let wait = Duration::from_millis(20);
        let started = Instant::now();
        std::thread::park_timeout(wait);
        assert!(started.elapsed() >= wait);
    }

    #[test]
    fn an_idle_partition_thread_is_unparked() {
        let handle = handle_on_this_thread(true);
        handle.wake();
        let started = Instant::now();
        std::thread::park_timeout(Duration::from_secs(60));
        assert!(started.elapsed() < Duration::from_secs(60));
    }
}
