//! One billing partition: the hot state of the units it owns, and how device events, money
//! movements and the calendar change it.
//!
//! Units are spread over partitions by a stable hash of the serial ([`partition_of`]), so a
//! partition can be owned by one process of several behind an MQTT cluster. A partition is
//! driven by a single thread (see [`crate::worker`]). It applies a whole batch of events in
//! memory, then writes every changed unit, account, ledger entry and event in one durable
//! transaction; units go into the unit log, and are checkpointed now and then (`unit_log`).
//! A batch's commit runs on a thread of its own while the next batch is applied (`committer`).
//! If that commit fails, the units both batches changed are reloaded from the file, so memory
//! never runs ahead of what is stored for longer than one batch, and never where anyone can
//! see it: requests and money movements first wait for the commit in flight. Commands that
//! result wait in an outbox until their commit succeeded; the worker publishes them.
//!
//! Submodules: `accounts` (opening, changing, closing, money movements), `committer` (the
//! thread batch commits run on), `instalments` (the timer that charges instalments as they
//! fall due, and catches up after downtime), `command_watch` (signing commands, and healing
//! forged ones on the `cmd` topics), `counters` (the per-reading counters), `summary` (counts
//! over an organisation's accounts for reports), `tokens` (keypad units' OpenPAYGO tokens,
//! made in the transaction that pays for them), `unit_log` (the partition's rows in the unit
//! log, and its checkpoints).

mod accounts;
mod command_watch;
mod committer;
mod counters;
mod hot_units;
mod instalments;
mod logged;
mod summary;
#[cfg(test)]
mod tests;
mod tokens;
mod unit_log;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sunledger_proto::device::{Command, LoadState, Reason};

use crate::account::{ChargeError, Effects, LoadDecision};
use crate::account_record::AccountRecord;
use crate::clock::Clock;
use crate::commands::{StoredCommand, decision_to_proto};
use crate::event::EventBody;
use crate::ledger::ReadingId;
use crate::meter::{self, MeterOutcome, MeterState};
use crate::store::JournalRecord;
use crate::store::{Store, StoreError, UnitEvent, UnitEventKind, UnitLogRow, WriteTxn};
use crate::tariff::RATED_POWER_W_DEFAULT;
use crate::units::{Admitted, UnitDirectory, UnitStatus};
use committer::Committer;
use counters::HotCounters;
use hot_units::{HotUnits, Slot};
pub(crate) use logged::{Change, LoggedUnit};
use unit_log::UnitLogBook;

pub use accounts::EngineError;
pub use summary::OrgSummary;
pub use tokens::CreditEnding;
pub use unit_log::UnitLogBound;

/// Which of `partitions` owns `serial`: FNV-1a of the serial, stable across versions and
/// machines (it decides data ownership, so it must never change).
pub fn partition_of(serial: &str, partitions: usize) -> usize {
    let hash = serial
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    (hash % partitions.max(1) as u64) as usize
}

/// Everything the platform keeps about one unit's device between messages. Kept small: it is
/// hot state, one per unit in memory.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct UnitState {
    /// The last accepted reading, the baseline for the next.
    pub meter: Option<MeterState>,
    /// Watt-hours consumed since the first reading, summed over accepted readings.
    pub consumed_wh: u64,
    /// Watt-hours in readings held for review (implausible jumps), not charged.
    pub held_wh: u64,
    /// Events recorded on the unit's event log; the next is numbered `events_recorded`.
    pub events_recorded: u64,
    /// The current desired load state, if a command was ever issued.
    pub desired: Option<StoredCommand>,
    /// The last command the device acknowledged: (cmd_id, LoadState number).
    pub confirmed: Option<(u64, i32)>,
    /// Whether the device's retained status says `online`.
    pub online: bool,
    /// Server time of the last message from the device, unix milliseconds.
    pub last_seen_ms: i64,
    /// Set to Offline Disable by an operator: kept OFF whatever the credit, and billing
    /// decisions wait (in the account) until the unit is enabled again.
    pub offline_disabled: bool,
    /// The count of the last OpenPAYGO token issued to a keypad unit; `None` until the first
    /// (the unit's initial count then stands).
    pub token_count: Option<u32>,
    /// Commands seen on the unit's `cmd` topic that the platform did not sign.
    pub foreign_commands: u32,
    /// When the last of them was seen, unix milliseconds (0 if never).
    pub last_foreign_command_ms: i64,
}

impl UnitState {
    /// Whether the device still has to acknowledge the desired command.
    pub fn awaiting_ack(&self) -> bool {
        matches!(self.desired, Some(desired) if self.confirmed.map(|(id, _)| id) != Some(desired.cmd_id))
    }

    /// Makes `load` the desired state, as the unit's next numbered command, unless it already
    /// is (a plan completion is announced even when the load is already on, and the end of
    /// an Offline Disable hold is sent even when the load stays off).
    fn issue(&mut self, load: LoadState, reason: Reason, now_s: i64) -> Option<StoredCommand> {
        if let Some(desired) = self.desired {
            let same_load = desired.load == load as i32;
            let announces_completion =
                reason == Reason::PlanCompleted && desired.reason != reason as i32;
            let ends_hold =
                desired.reason == Reason::OfflineDisable as i32 && reason != Reason::OfflineDisable;
            if same_load && !announces_completion && !ends_hold {
                return None;
            }
        }
        let cmd_id = self.desired.map_or(1, |desired| desired.cmd_id + 1);
        let command = StoredCommand::new(cmd_id, load, reason, now_s);
        self.desired = Some(command);
        Some(command)
    }
}

/// A unit's hot state: its device side and, once it is on a payment plan, its account. Stored
/// as one record, so a reading costs one write however much it changes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Unit {
    /// Meter, commands and presence.
    pub state: UnitState,
    /// The open account, once one was opened for the unit; `None` again once it is closed
    /// (closed accounts are kept in the store, not in hot state).
    pub account: Option<AccountRecord>,
}

/// What a batch or request wrote in memory and must commit together.
struct Pending {
    /// Hands out blocks of journal positions.
    store: Arc<Store>,
    /// What is left of the current block, used in order.
    positions: std::ops::Range<u64>,
    /// Ledger entries, each at its journal position.
    journal: Vec<(u64, JournalRecord)>,
    /// Unit events, each with its unit and number.
    events: Vec<(Box<str>, u64, UnitEvent)>,
    /// Commands to publish once committed.
    outbox: Vec<(Box<str>, Command)>,
    /// Counters of readings and entries.
    counters: HotCounters,
}

impl Pending {
    /// Numbers and queues an operation's ledger entries, and turns its load decision into the
    /// unit's next command; returns the number of the first entry.
    fn record(
        &mut self,
        serial: &str,
        unit: &mut Unit,
        effects: Effects,
        now: DateTime<Utc>,
    ) -> u64 {
        let Some(record) = unit.account.as_mut() else {
            return 0;
        };
        record.track_limit(now);
        let first = record.ledger_len;
        for entry in effects.entries {
            self.counters.entry(entry.kind);
            let pos = self.next_position();
            let chained = JournalRecord {
                serial: serial.into(),
                seq: record.ledger_len,
                prev: record.ledger_head,
                entry,
            };
            self.journal.push((pos, chained));
            record.ledger_head = Some(pos);
            record.ledger_len += 1;
        }
        if let Some(decision) = effects.load_change {
            self.decide(serial, &mut unit.state, decision, now);
        }
        first
    }

    /// The next journal position of this partition, from a fresh block once one is used up.
    fn next_position(&mut self) -> u64 {
        if self.positions.is_empty() {
            self.positions = self.store.reserve_journal_block();
        }
        let pos = self.positions.start;
        self.positions.start += 1;
        pos
    }

    /// Issues the command a billing decision calls for, if it changes the desired state and
    /// the unit is not held off by Offline Disable.
    fn decide(
        &mut self,
        serial: &str,
        state: &mut UnitState,
        decision: LoadDecision,
        now: DateTime<Utc>,
    ) {
        if !state.offline_disabled {
            self.decide_ignoring_hold(serial, state, decision, now);
        }
    }

    /// Issues the command `decision` calls for even while the unit is in Offline Disable:
    /// how the hold itself is put on and lifted.
    fn decide_ignoring_hold(
        &mut self,
        serial: &str,
        state: &mut UnitState,
        decision: LoadDecision,
        now: DateTime<Utc>,
    ) {
        let (load, reason) = decision_to_proto(decision);
        if let Some(command) = state.issue(load, reason, now.timestamp()) {
            metrics::counter!("sunledger_commands_issued_total", "reason" => reason.as_str_name())
                .increment(1);
            self.outbox.push((serial.into(), command.to_proto()));
        }
    }

    /// Appends an event to the unit's log.
    fn event(&mut self, serial: &str, state: &mut UnitState, event: UnitEvent) {
        self.events
            .push((serial.into(), state.events_recorded, event));
        state.events_recorded += 1;
    }

    /// Ends an operation's writes, written or discarded: forgets them, and adds the readings
    /// and entries it counted to the counters.
    fn clear_writes(&mut self) {
        self.journal.clear();
        self.events.clear();
        self.counters.publish();
    }
}

/// One partition's units, in memory, backed by the store.
pub struct Partition {
    store: Arc<Store>,
    directory: Arc<UnitDirectory>,
    clock: Arc<dyn Clock>,
    units: HotUnits,
    pending: Pending,
    /// When each account's next instalment falls due; may hold stale entries, checked on pop.
    due: BinaryHeap<Reverse<(DateTime<Utc>, Box<str>)>>,
    /// Which partition of how many this is: the units it owns.
    ownership: (usize, usize),
    /// Set when a failed commit's units could not be reloaded (the file was unreadable):
    /// memory may be ahead of the file, so nothing is applied until [`Partition::resync`]
    /// reloads every unit.
    stale: bool,
    /// The partition's rows in the unit log and its units awaiting a checkpoint.
    log: UnitLogBook,
    /// Runs batch commits while the next batch is applied.
    committer: Committer,
    /// The batch whose commit is running, if any.
    in_flight: Option<InFlight>,
    /// Commands whose commits are durable, to publish.
    ready: Vec<(Box<str>, Command)>,
    /// The unit log row of the batch being applied, encoded unit by unit; kept for its
    /// buffers.
    log_row: UnitLogRow,
}

/// A batch whose commit is running on the [`Committer`], and what to do once it ends.
struct InFlight {
    /// The unit log's plan, booked once the commit succeeded.
    plan: unit_log::LogWrite,
    /// The units it changed, reloaded if the commit fails.
    changed: Vec<(Slot, Change)>,
    /// Its commands, published once the commit succeeded.
    outbox: Vec<(Box<str>, Command)>,
    /// When its write began, for `sunledger_billing_commit_seconds`.
    started: std::time::Instant,
}

impl Partition {
    /// Loads the committed state of the units partition `index` of `count` owns.
    pub fn open(
        store: Arc<Store>,
        directory: Arc<UnitDirectory>,
        clock: Arc<dyn Clock>,
        index: usize,
        count: usize,
    ) -> Result<Partition, StoreError> {
        store.fold_unit_log_or_warn();
        let units = owned_units(&store, index, count)?;
        let journal_store = store.clone();
        let mut partition = Partition {
            store,
            directory,
            clock,
            units,
            pending: Pending {
                store: journal_store,
                positions: 0..0,
                journal: Vec::new(),
                events: Vec::new(),
                outbox: Vec::new(),
                counters: HotCounters::registered(),
            },
            due: BinaryHeap::new(),
            ownership: (index, count),
            stale: false,
            log: UnitLogBook::new(index),
            committer: Committer::start(index)?,
            in_flight: None,
            ready: Vec::new(),
            log_row: UnitLogRow::default(),
        };
        partition.schedule_all();
        Ok(partition)
    }

    /// Queues every account's next instalment afresh.
    fn schedule_all(&mut self) {
        self.due.clear();
        let serials: Vec<Box<str>> = self.units.iter().map(|(serial, _)| serial.into()).collect();
        serials.iter().for_each(|serial| self.schedule(serial));
    }

    /// Whether memory may be ahead of the file after a failed commit (see
    /// [`Partition::resync`]).
    pub fn is_stale(&self) -> bool {
        self.stale
    }

    /// Keeps as many unit log entries as `bound` allows before checkpointing (default
    /// [`UnitLogBound::default`]).
    pub fn set_unit_log_bound(&mut self, bound: UnitLogBound) {
        self.log.set_bound(bound);
    }

    /// Reloads every unit of the partition from the file after a failed commit's units could
    /// not be reloaded (the file was unreadable); returns whether the partition is in step
    /// with the file again.
    pub fn resync(&mut self) -> bool {
        if !self.stale {
            return true;
        }
        let (index, count) = self.ownership;
        match owned_units(&self.store, index, count) {
            Ok(units) => {
                self.units = units;
                self.log.mark_waiting(&mut self.units);
                self.schedule_all();
                self.pending.outbox.clear();
                self.stale = false;
                tracing::warn!(
                    partition = index,
                    "partition reloaded from the file after a storage failure"
                );
                true
            }
            Err(_) => false,
        }
    }

    /// The in-memory state of a unit this partition owns.
    pub fn unit(&self, serial: &str) -> Option<&Unit> {
        self.units.get(serial)
    }

    /// Commands whose commits are durable, not yet taken, to publish.
    pub fn take_outbox(&mut self) -> Vec<(Box<str>, Command)> {
        let mut commands = std::mem::take(&mut self.ready);
        commands.append(&mut self.pending.outbox);
        commands
    }

    /// Applies a batch of device events and commits every change in one durable transaction
    /// ([`Partition::submit_batch`], then [`Partition::finish_commit`]).
    pub fn apply_batch(&mut self, events: &[Admitted]) -> Result<(), StoreError> {
        self.submit_batch(events)?;
        self.finish_commit()
    }

    /// Applies a batch of device events in memory and starts committing every change in one
    /// durable transaction, which the next call, or [`Partition::finish_commit`], waits for:
    /// a busy partition applies each batch while the disk syncs the one before (see
    /// `committer`). The error of a failed commit is returned by that next call, and every
    /// unit either batch changed is reloaded from the file. While the partition is stale and
    /// the file still unreadable, the events are dropped (counted): a device's next stored
    /// reading carries its cumulative counters, so no energy is lost.
    pub fn submit_batch(&mut self, events: &[Admitted]) -> Result<(), StoreError> {
        if !self.resync() {
            metrics::counter!("sunledger_ingest_dropped_total", "reason" => "storage_unavailable")
                .increment(events.len() as u64);
            return Err(StoreError::Unavailable);
        }
        // Commands queued so far are committed; the outbox is left to this batch's.
        self.ready.append(&mut self.pending.outbox);
        // Events are applied in the order of their units' slots, each unit's in arrival order:
        // memory is then walked forwards, whatever order a fleet's messages came in (at 10^5
        // units, shuffled readings were a third slower). Units are independent, so only each
        // unit's own order matters. A unit not yet held gets its slot from its first event.
        let mut changed = Vec::with_capacity(events.len());
        let mut order = Vec::with_capacity(events.len());
        for (index, admitted) in events.iter().enumerate() {
            match self.slot_of(admitted) {
                Some(slot) => order.push((slot, index)),
                None => changed.extend(self.apply_event(admitted)),
            }
        }
        order.sort_unstable();
        // Units new to the partition were changed out of slot order: their batch's row is
        // encoded when written instead.
        let in_slot_order = changed.is_empty();
        let mut row = std::mem::take(&mut self.log_row);
        row.clear();
        let encoded = self.apply_in_slot_order(&order, events, &mut changed, &mut row);
        let encoded = (in_slot_order && encoded).then_some(&row);
        let submitted = self
            .finish_commit_or_reload(&changed)
            .and_then(|()| self.start_commit(changed, encoded));
        self.log_row = row;
        submitted
    }

    /// Applies the events of `events` that `order` lists, sorted by slot, into `changed`;
    /// encodes each changed unit's unit log entry into `row` as soon as its last event is
    /// applied, while the unit is in the caches. Returns whether every entry was encoded.
    fn apply_in_slot_order(
        &mut self,
        order: &[(Slot, usize)],
        events: &[Admitted],
        changed: &mut Vec<(Slot, Change)>,
        row: &mut UnitLogRow,
    ) -> bool {
        let mut encoded = true;
        let mut run: Option<(Slot, Change)> = None;
        for &(slot, index) in order {
            if let Some(done) = run.take_if(|(unit, _)| *unit != slot) {
                encoded &= self.encode_log_entry(row, done);
            }
            if let Some((slot, change)) = self.apply_event_at(slot, &events[index]) {
                changed.push((slot, change));
                let change = run.map_or(change, |(_, earlier)| earlier.max(change));
                run = Some((slot, change));
            }
        }
        if let Some(done) = run {
            encoded &= self.encode_log_entry(row, done);
        }
        encoded
    }

    /// Adds the unit log entry of the unit in `slot` to `row`; returns whether it could be
    /// encoded (if not, the batch's row is encoded again when written, and fails there).
    fn encode_log_entry(&self, row: &mut UnitLogRow, (slot, change): (Slot, Change)) -> bool {
        let (serial, unit) = self.units.at(slot);
        row.push(serial, LoggedUnit::of(unit, change)).is_ok()
    }

    /// The slot of the unit `admitted` is for, if the partition holds it. The hint ingest
    /// read during admission is taken once the serial in its slot matches: that reads the
    /// unit's first cache line, which applying the event reads next anyway, where hashing
    /// the serial into the index missed the cache twice more (a sixth of a shuffled batch at
    /// 10^5 units). A missing or outdated hint is looked up and corrected in the directory.
    fn slot_of(&self, admitted: &Admitted) -> Option<Slot> {
        let serial = &admitted.event().serial;
        if let Some(hint) = admitted.slot_hint()
            && self.units.holds_at(hint, serial)
        {
            return Some(hint);
        }
        let slot = self.units.slot(serial)?;
        self.directory.remember_slot(serial, slot);
        Some(slot)
    }

    /// Applies one event of a unit the partition may not hold yet: a device's own event makes
    /// its slot; a command seen on the topic of a unit not held changes nothing.
    fn apply_event(&mut self, admitted: &Admitted) -> Option<(Slot, Change)> {
        let serial = &admitted.event().serial;
        let slot = match admitted.event().body {
            EventBody::Command(_) => self.units.slot(serial)?,
            _ => {
                let slot = self.units.slot_or_insert(serial);
                self.directory.remember_slot(serial, slot);
                slot
            }
        };
        self.apply_event_at(slot, admitted)
    }

    /// Applies one event to its unit in `slot`; returns the slot if the unit changed, and how.
    fn apply_event_at(&mut self, slot: Slot, admitted: &Admitted) -> Option<(Slot, Change)> {
        let event = admitted.event();
        if let EventBody::Command(command) = &event.body {
            let changed = self.watch_command(slot, &event.serial, command, event.received_at_ms);
            return changed.then_some((slot, Change::Whole));
        }
        let (serial, unit) = self.units.held_mut(slot);
        unit.state.last_seen_ms = unit.state.last_seen_ms.max(event.received_at_ms);
        match &event.body {
            EventBody::Telemetry(reading) => {
                let received_at = DateTime::from_timestamp_millis(event.received_at_ms)
                    .unwrap_or(DateTime::UNIX_EPOCH);
                return Some((
                    slot,
                    meter_reading(&mut self.pending, serial, unit, reading, received_at),
                ));
            }
            EventBody::Ack(ack) => {
                let current = unit.state.desired.is_some_and(|desired| {
                    desired.cmd_id == ack.cmd_id && desired.load == ack.load
                });
                let label = if current { "current" } else { "stale" };
                metrics::counter!("sunledger_commands_acked_total", "kind" => label).increment(1);
                if current {
                    unit.state.confirmed = Some((ack.cmd_id, ack.load));
                }
            }
            EventBody::Status { online } => unit.state.online = *online,
            EventBody::Command(_) => {}
        }
        Some((slot, Change::Whole))
    }

    /// Sets the desired load state of a unit (a manual switch), durably, and returns the
    /// command to publish. The same state again issues no new command. A unit in Offline
    /// Disable is refused: only enabling it again may switch it.
    pub fn set_load(
        &mut self,
        serial: &str,
        load: LoadState,
        reason: Reason,
    ) -> Result<Command, EngineError> {
        let now_s = self.clock.now().timestamp();
        self.transact(serial, |unit, _txn, pending| {
            if unit.state.offline_disabled {
                return Err(EngineError::OfflineDisabled(serial.to_owned()));
            }
            match unit.state.issue(load, reason, now_s) {
                Some(command) => {
                    pending.outbox.push((serial.into(), command.to_proto()));
                    Ok((command.to_proto(), true))
                }
                None => Ok((
                    unit.state
                        .desired
                        .map(StoredCommand::to_proto)
                        .unwrap_or_default(),
                    false,
                )),
            }
        })
    }

    /// Sets or ends Offline Disable, durably, and returns the unit's device side afterwards.
    /// Disabling switches the load OFF (`REASON_OFFLINE_DISABLE`) whatever the credit;
    /// enabling sends the state the account's rules want now (ON if the unit has no account).
    pub fn set_offline_disabled(
        &mut self,
        serial: &str,
        disabled: bool,
    ) -> Result<UnitState, EngineError> {
        let now = self.clock.now();
        self.transact(serial, |unit, _txn, pending| {
            if unit.state.offline_disabled == disabled {
                return Ok((unit.state.clone(), false));
            }
            unit.state.offline_disabled = disabled;
            let decision = match (disabled, &unit.account) {
                (true, _) => LoadDecision {
                    load: crate::account::LoadState::Off,
                    reason: crate::account::Reason::OfflineDisable,
                },
                (false, Some(record)) => {
                    let (load, reason) = record.account.desired_load();
                    LoadDecision { load, reason }
                }
                (false, None) => LoadDecision {
                    load: crate::account::LoadState::On,
                    reason: crate::account::Reason::Manual,
                },
            };
            pending.decide_ignoring_hold(serial, &mut unit.state, decision, now);
            Ok((unit.state.clone(), true))
        })
    }

    /// Commands that devices online have not acknowledged yet, to publish again. A unit that
    /// is away gets its command from its retained `cmd` slot when it reconnects; re-sending
    /// to it would only cost a signature and a broker publish per unit and interval (at 10^6
    /// units after an outage, most of them).
    pub fn unacknowledged(&self) -> impl Iterator<Item = (&str, Command)> {
        self.commands_where(|state| state.online && state.awaiting_ack())
    }

    /// Every unit's current command, acknowledged or not: published once when the partition
    /// starts, because the embedded broker keeps retained messages in memory only, and a
    /// device reconnecting after a restart must still find its current state in its `cmd`
    /// slot.
    pub fn desired_commands(&self) -> impl Iterator<Item = (&str, Command)> {
        self.commands_where(|_| true)
    }

    /// The current command of every unit whose device side `wanted` accepts.
    fn commands_where(
        &self,
        wanted: impl Fn(&UnitState) -> bool,
    ) -> impl Iterator<Item = (&str, Command)> {
        self.units
            .iter()
            .filter(move |(_, unit)| wanted(&unit.state))
            .filter_map(|(serial, unit)| Some((serial, unit.state.desired?.to_proto())))
    }

    /// Runs `change` on one registered unit inside a write transaction and commits it with
    /// the unit's state, account and queued entries. `change` returns its answer and whether
    /// it changed anything (nothing is written otherwise). On any failure the unit is restored,
    /// so memory matches the file.
    fn transact<T>(
        &mut self,
        serial: &str,
        change: impl FnOnce(&mut Unit, &mut WriteTxn, &mut Pending) -> Result<(T, bool), EngineError>,
    ) -> Result<T, EngineError> {
        if !self.resync() {
            return Err(EngineError::Store(StoreError::Unavailable));
        }
        self.finish_commit()?;
        match self.directory.status(serial) {
            None => return Err(EngineError::UnitNotFound(serial.to_owned())),
            Some(UnitStatus::Decommissioned) => {
                return Err(EngineError::UnitDecommissioned(serial.to_owned()));
            }
            Some(UnitStatus::Enabled) => {}
        }
        let before = self.units.get(serial).cloned();
        let outbox_len = self.pending.outbox.len();
        let result = self.try_transact(serial, change);
        self.pending.clear_writes();
        match result {
            Ok((answer, changed)) => {
                if changed {
                    self.schedule(serial);
                }
                Ok(answer)
            }
            Err(error) => {
                self.pending.outbox.truncate(outbox_len);
                match before {
                    Some(unit) => self.units.insert(serial, unit),
                    None => {
                        self.units.remove(serial);
                    }
                };
                Err(error)
            }
        }
    }

    fn try_transact<T>(
        &mut self,
        serial: &str,
        change: impl FnOnce(&mut Unit, &mut WriteTxn, &mut Pending) -> Result<(T, bool), EngineError>,
    ) -> Result<(T, bool), EngineError> {
        let mut txn = self.store.begin()?;
        let slot = self.units.slot_or_insert(serial);
        let unit = self.units.at_mut(slot);
        let (answer, changed) = change(unit, &mut txn, &mut self.pending)?;
        if changed {
            let changed = [(slot, Change::Whole)];
            let plan = self.write(&mut txn, &changed, None)?;
            txn.commit()?;
            self.log.committed(plan, &mut self.units, &changed);
        }
        Ok((answer, changed))
    }

    /// Commits a batch's changes to the units in `changed` (repeats allowed, the larger
    /// change of a unit counts) and waits for it; on failure reloads them.
    fn commit(&mut self, changed: Vec<(Slot, Change)>) -> Result<(), StoreError> {
        self.start_commit(changed, None)?;
        self.finish_commit()
    }

    /// Writes a batch's changes to the units in `changed` (as [`Partition::commit`]) and
    /// hands the transaction to the committer; a commit already in flight must be finished.
    /// If the write fails, the units are reloaded.
    fn start_commit(
        &mut self,
        mut changed: Vec<(Slot, Change)>,
        encoded: Option<&UnitLogRow>,
    ) -> Result<(), StoreError> {
        debug_assert!(self.in_flight.is_none(), "one commit in flight at a time");
        if changed.is_empty() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        changed.sort_unstable();
        changed.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                kept.1 = kept.1.max(later.1);
            }
            same
        });
        let written = self.store.begin().and_then(|mut txn| {
            let plan = self.write(&mut txn, &changed, encoded)?;
            self.committer.send(txn)?;
            Ok(plan)
        });
        self.pending.clear_writes();
        match written {
            Ok(plan) => {
                self.in_flight = Some(InFlight {
                    plan,
                    changed,
                    outbox: std::mem::take(&mut self.pending.outbox),
                    started,
                });
                Ok(())
            }
            Err(error) => {
                metrics::counter!("sunledger_billing_commit_failed_total").increment(1);
                self.pending.outbox.clear();
                self.reload(&changed);
                Err(error)
            }
        }
    }

    /// Waits for the commit in flight, if any: books it and readies its commands, or, if it
    /// failed, reloads the units it changed and returns its error.
    pub fn finish_commit(&mut self) -> Result<(), StoreError> {
        self.finish_commit_or_reload(&[])
    }

    /// [`Partition::finish_commit`], for a partition that has since applied changes to the
    /// units in `applied`, not yet written: if the commit failed, those are discarded too
    /// (their state built on it), their queued writes and commands with them.
    fn finish_commit_or_reload(&mut self, applied: &[(Slot, Change)]) -> Result<(), StoreError> {
        let Some(flight) = self.in_flight.take() else {
            return Ok(());
        };
        let outcome = self.committer.outcome();
        metrics::histogram!("sunledger_billing_commit_seconds")
            .record(flight.started.elapsed().as_secs_f64());
        match outcome {
            Ok(()) => {
                self.log
                    .committed(flight.plan, &mut self.units, &flight.changed);
                self.ready.extend(flight.outbox);
                Ok(())
            }
            Err(error) => {
                metrics::counter!("sunledger_billing_commit_failed_total").increment(1);
                let mut changed = flight.changed;
                if !applied.is_empty() {
                    changed.extend_from_slice(applied);
                    self.pending.clear_writes();
                    self.pending.outbox.clear();
                }
                self.reload(&changed);
                Err(error)
            }
        }
    }

    /// Writes the units in `changed` (into the unit log, with any checkpoints that are due)
    /// and everything queued into `txn`; returns the log's plan, to book once committed.
    /// `encoded` is their unit log row, if the batch encoded it while applying.
    fn write(
        &self,
        txn: &mut WriteTxn,
        changed: &[(Slot, Change)],
        encoded: Option<&UnitLogRow>,
    ) -> Result<unit_log::LogWrite, StoreError> {
        let plan = self
            .log
            .write(&self.store, txn, &self.units, changed, encoded)?;
        txn.append_journal(
            self.pending
                .journal
                .iter()
                .map(|(pos, record)| (*pos, record)),
        )?;
        txn.append_events(
            self.pending
                .events
                .iter()
                .map(|(serial, seq, event)| (&**serial, *seq, event)),
        )?;
        Ok(plan)
    }

    /// Discards in-memory changes to the units in `changed` after a failed commit: reloads
    /// their committed state in one read, and drops the ones the file does not hold. If the
    /// file cannot be read, the whole partition reloads later ([`Partition::resync`]).
    fn reload(&mut self, changed: &[(Slot, Change)]) {
        let mut missing: HashSet<Box<str>> = changed
            .iter()
            .map(|(slot, _)| self.units.at(*slot).0.into())
            .collect();
        match self.store.units_hot(|serial| missing.contains(serial)) {
            Ok(units) => {
                for (serial, unit) in units {
                    missing.remove(serial.as_str());
                    self.units.insert(&serial, unit);
                    self.schedule(&serial);
                }
                for serial in missing {
                    self.units.remove(&serial);
                }
            }
            Err(error) => {
                tracing::error!(%error, "reloading units after a failed commit; reloading the partition once the file is readable");
                self.stale = true;
            }
        }
    }
}

/// The committed hot state of the units partition `index` of `count` owns.
fn owned_units(store: &Store, index: usize, count: usize) -> Result<HotUnits, StoreError> {
    let owned = |serial: &str| partition_of(serial, count) == index;
    Ok(store.units_hot(owned)?.into_iter().collect())
}

/// Meters one reading and charges its consumption to the unit's account, if it has one;
/// returns whether that changed more than metering does (a load decision, an event).
fn meter_reading(
    pending: &mut Pending,
    serial: &str,
    unit: &mut Unit,
    reading: &sunledger_proto::device::Telemetry,
    received_at: DateTime<Utc>,
) -> Change {
    let rated_power_w = unit
        .account
        .as_ref()
        .map_or(RATED_POWER_W_DEFAULT, |record| record.rated_power_w);
    let (outcome, baseline) = meter::advance(unit.state.meter.as_ref(), reading, rated_power_w);
    pending.counters.reading(outcome);
    unit.state.meter = Some(baseline);
    let id = ReadingId {
        boot: reading.boot,
        seq: reading.seq,
    };
    let event = |kind| UnitEvent {
        at: received_at,
        reading: id,
        kind,
    };
    match outcome {
        MeterOutcome::Consumed(energy) => {
            let wh = energy.total_wh().unwrap_or(u64::MAX);
            unit.state.consumed_wh = unit.state.consumed_wh.saturating_add(wh);
            let Some(record) = unit.account.as_mut() else {
                return Change::Readings;
            };
            match record.account.apply_usage(id, energy, received_at) {
                Ok(effects) => {
                    let change = match effects.load_change {
                        None => Change::Readings,
                        Some(_) => Change::Whole,
                    };
                    pending.record(serial, unit, effects, received_at);
                    change
                }
                Err(ChargeError::WouldOverflow) => {
                    metrics::counter!("sunledger_billing_charge_failed_total").increment(1);
                    tracing::error!(
                        serial,
                        wh,
                        "usage charge overflows the balance; not charged"
                    );
                    Change::Readings
                }
            }
        }
        MeterOutcome::HeldForReview { wh } => {
            unit.state.held_wh = unit.state.held_wh.saturating_add(wh);
            pending.event(
                serial,
                &mut unit.state,
                event(UnitEventKind::HeldForReview { wh }),
            );
            Change::Whole
        }
        MeterOutcome::CounterReset => {
            tracing::info!(serial, boot = reading.boot, "counter reset: new baseline");
            pending.event(serial, &mut unit.state, event(UnitEventKind::CounterReset));
            Change::Whole
        }
        MeterOutcome::Baseline | MeterOutcome::Duplicate => Change::Readings,
    }
}
