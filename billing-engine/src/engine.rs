//! One billing partition: the hot state of the units it owns, and how a batch of device events
//! changes it.
//!
//! Units are spread over partitions by a stable hash of the serial ([`partition_of`]), so a
//! partition can be owned by one process of several behind an MQTT cluster. A partition is
//! driven by a single thread (see [`crate::worker`]); it applies a whole batch in memory, then
//! writes every changed unit in one durable transaction. If that commit fails, the changed
//! units are reloaded from the file, so memory never runs ahead of what is stored.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rkyv::{Archive, Deserialize, Serialize};
use sunledger_proto::device::{Command, LoadState, Reason};

use crate::commands::StoredCommand;
use crate::event::{DeviceEvent, EventBody};
use crate::meter::{self, MeterOutcome, MeterState};
use crate::store::{Store, StoreError};
use crate::units::{UnitDirectory, UnitStatus};

/// Rated maximum power of a unit when its plan does not say otherwise.
pub const RATED_POWER_W_DEFAULT: u32 = 1000;

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

/// Everything the platform keeps about one unit between messages. Kept small: it is the hot
/// state, one per unit in memory.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct UnitState {
    /// The last accepted reading, the baseline for the next.
    pub meter: Option<MeterState>,
    /// Watt-hours consumed since the first reading, summed over accepted readings.
    pub consumed_wh: u64,
    /// Watt-hours in readings held for review (implausible jumps), not charged.
    pub held_wh: u64,
    /// The current desired load state, if a command was ever issued.
    pub desired: Option<StoredCommand>,
    /// The last command the device acknowledged: (cmd_id, LoadState number).
    pub confirmed: Option<(u64, i32)>,
    /// Whether the device's retained status says `online`.
    pub online: bool,
    /// Server time of the last message from the device, unix milliseconds.
    pub last_seen_ms: i64,
}

impl UnitState {
    /// Whether the device still has to acknowledge the desired command.
    pub fn awaiting_ack(&self) -> bool {
        matches!(self.desired, Some(desired) if self.confirmed.map(|(id, _)| id) != Some(desired.cmd_id))
    }
}

/// Why the engine refused a request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// No such unit.
    #[error("unit {0} is not registered")]
    UnitNotFound(String),
    /// The unit was decommissioned.
    #[error("unit {0} is decommissioned")]
    UnitDecommissioned(String),
    /// The change could not be stored; nothing changed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The engine is shutting down.
    #[error("billing engine is stopping")]
    Stopping,
}

impl EngineError {
    /// Whether retrying the same call later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            EngineError::Store(error) => error.is_transient(),
            EngineError::Stopping => true,
            EngineError::UnitNotFound(_) | EngineError::UnitDecommissioned(_) => false,
        }
    }
}

/// One partition's units, in memory, backed by the store.
pub struct Partition {
    store: Arc<Store>,
    directory: Arc<UnitDirectory>,
    units: HashMap<Box<str>, UnitState>,
    rated_power_w_max: u32,
}

impl Partition {
    /// Loads the committed state of the units partition `index` of `count` owns.
    pub fn open(
        store: Arc<Store>,
        directory: Arc<UnitDirectory>,
        index: usize,
        count: usize,
    ) -> Result<Partition, StoreError> {
        let units = store
            .unit_states(|serial| partition_of(serial, count) == index)?
            .into_iter()
            .map(|(serial, state)| (serial.into_boxed_str(), state))
            .collect();
        Ok(Partition {
            store,
            directory,
            units,
            rated_power_w_max: RATED_POWER_W_DEFAULT,
        })
    }

    /// The in-memory state of a unit this partition owns.
    pub fn unit(&self, serial: &str) -> Option<&UnitState> {
        self.units.get(serial)
    }

    /// Applies a batch of device events and commits every change in one transaction.
    pub fn apply_batch(&mut self, events: &[DeviceEvent]) -> Result<(), StoreError> {
        let mut changed: HashSet<&str> = HashSet::new();
        for event in events {
            if self.apply_event(event) {
                changed.insert(&event.serial);
            }
        }
        self.commit(changed)
    }

    /// Applies one event in memory; returns whether the unit's state changed.
    fn apply_event(&mut self, event: &DeviceEvent) -> bool {
        let refusal = match self.directory.status(&event.serial) {
            Some(UnitStatus::Enabled) => None,
            Some(UnitStatus::Decommissioned) => Some("decommissioned"),
            None => Some("unknown_serial"),
        };
        if let Some(reason) = refusal {
            metrics::counter!("sunledger_ingest_rejected_total", "reason" => reason).increment(1);
            return false;
        }
        let rated_power_w_max = self.rated_power_w_max;
        let unit = self.units.entry(event.serial.clone()).or_default();
        unit.last_seen_ms = unit.last_seen_ms.max(event.received_at_ms);
        match &event.body {
            EventBody::Telemetry(reading) => {
                let (outcome, baseline) =
                    meter::advance(unit.meter.as_ref(), reading, rated_power_w_max);
                metrics::counter!("sunledger_billing_readings_total", "outcome" => outcome.as_str()).increment(1);
                match outcome {
                    MeterOutcome::Consumed { wh } => {
                        unit.consumed_wh = unit.consumed_wh.saturating_add(wh)
                    }
                    MeterOutcome::HeldForReview { wh } => {
                        unit.held_wh = unit.held_wh.saturating_add(wh)
                    }
                    MeterOutcome::CounterReset => {
                        tracing::info!(serial = %event.serial, boot = reading.boot, "counter reset: new baseline")
                    }
                    MeterOutcome::Baseline | MeterOutcome::Duplicate => {}
                }
                unit.meter = Some(baseline);
            }
            EventBody::Ack(ack) => {
                let current = unit.desired.is_some_and(|desired| {
                    desired.cmd_id == ack.cmd_id && desired.load == ack.load
                });
                let label = if current { "current" } else { "stale" };
                metrics::counter!("sunledger_commands_acked_total", "kind" => label).increment(1);
                if current {
                    unit.confirmed = Some((ack.cmd_id, ack.load));
                }
            }
            EventBody::Status { online } => unit.online = *online,
        }
        true
    }

    /// Sets the desired load state of a unit (manual switch, offline disable...), durably,
    /// and returns the command to publish. The same state again issues no new command.
    pub fn set_load(
        &mut self,
        serial: &str,
        load: LoadState,
        reason: Reason,
        now_s: i64,
    ) -> Result<Command, EngineError> {
        match self.directory.status(serial) {
            None => return Err(EngineError::UnitNotFound(serial.to_owned())),
            Some(UnitStatus::Decommissioned) => {
                return Err(EngineError::UnitDecommissioned(serial.to_owned()));
            }
            Some(UnitStatus::Enabled) => {}
        }
        let unit = self.units.entry(serial.into()).or_default();
        if let Some(desired) = unit.desired.filter(|desired| desired.load == load as i32) {
            return Ok(desired.to_proto());
        }
        let cmd_id = unit.desired.map_or(1, |desired| desired.cmd_id + 1);
        let command = StoredCommand::new(cmd_id, load, reason, now_s);
        unit.desired = Some(command);
        self.commit(HashSet::from([serial]))?;
        Ok(command.to_proto())
    }

    /// Commands the devices have not acknowledged yet, to publish again.
    pub fn unacknowledged(&self) -> impl Iterator<Item = (&str, Command)> {
        self.units
            .iter()
            .filter(|(_, unit)| unit.awaiting_ack())
            .filter_map(|(serial, unit)| Some((serial.as_ref(), unit.desired?.to_proto())))
    }

    fn commit(&mut self, changed: HashSet<&str>) -> Result<(), StoreError> {
        if changed.is_empty() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let result = self.store.write_unit_states(
            changed
                .iter()
                .filter_map(|serial| Some((*serial, self.units.get(*serial)?))),
        );
        metrics::histogram!("sunledger_billing_commit_seconds")
            .record(started.elapsed().as_secs_f64());
        if let Err(error) = result {
            metrics::counter!("sunledger_billing_commit_failed_total").increment(1);
            let serials: Vec<Box<str>> = changed.into_iter().map(Into::into).collect();
            self.reload(&serials);
            return Err(error);
        }
        Ok(())
    }

    /// Discards in-memory changes to `serials` after a failed commit.
    fn reload(&mut self, serials: &[Box<str>]) {
        for serial in serials {
            match self.store.unit_state(serial) {
                Ok(Some(state)) => {
                    self.units.insert(serial.clone(), state);
                }
                Ok(None) => {
                    self.units.remove(serial);
                }
                Err(error) => {
                    tracing::error!(%serial, %error, "reloading unit after failed commit")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::UnitRecord;
    use sunledger_proto::device::{CommandAck, Telemetry};

    fn event(serial: &str, body: EventBody) -> DeviceEvent {
        DeviceEvent {
            serial: serial.into(),
            received_at_ms: 1,
            body,
        }
    }

    fn reading(seq: u64, ts: i64, load_wh: u64) -> EventBody {
        EventBody::Telemetry(Telemetry {
            seq,
            ts,
            load_wh,
            boot: 1,
            ..Telemetry::default()
        })
    }

    fn partition_with(serials: &[&str]) -> (tempfile::TempDir, Arc<Store>, Partition) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("db.redb")).unwrap());
        let records: Vec<UnitRecord> = serials
            .iter()
            .map(|serial| store.register_unit(serial, 0).unwrap().0)
            .collect();
        let directory = Arc::new(UnitDirectory::from_records(records));
        let partition = Partition::open(store.clone(), directory, 0, 1).unwrap();
        (dir, store, partition)
    }

    #[test]
    fn a_batch_is_stored_and_duplicates_are_not_counted_twice() {
        let (_dir, store, mut partition) = partition_with(&["A"]);
        let batch = [
            event("A", reading(1, 0, 100)),
            event("A", reading(2, 600, 130)),
            event("A", reading(2, 600, 130)),
            event("A", reading(3, 1200, 150)),
            event("ghost", reading(1, 0, 5)),
        ];
        partition.apply_batch(&batch).unwrap();
        let stored = store.unit_state("A").unwrap().unwrap();
        assert_eq!(stored.consumed_wh, 50);
        assert_eq!(stored.meter.unwrap().seq, 3);
        assert_eq!(store.unit_state("ghost").unwrap(), None);
    }

    #[test]
    fn a_command_is_confirmed_only_by_an_ack_of_its_id_and_state() {
        let (_dir, store, mut partition) = partition_with(&["A"]);
        let off = partition
            .set_load("A", LoadState::Off, Reason::Manual, 10)
            .unwrap();
        assert_eq!((off.cmd_id, off.load()), (1, LoadState::Off));
        assert_eq!(
            partition
                .set_load("A", LoadState::Off, Reason::Manual, 11)
                .unwrap(),
            off,
            "same state: no new command"
        );
        assert_eq!(partition.unacknowledged().count(), 1);
        let wrong = CommandAck {
            cmd_id: 1,
            load: LoadState::On as i32,
        };
        partition
            .apply_batch(&[event("A", EventBody::Ack(wrong))])
            .unwrap();
        assert_eq!(partition.unacknowledged().count(), 1);
        let right = CommandAck {
            cmd_id: 1,
            load: LoadState::Off as i32,
        };
        partition
            .apply_batch(&[event("A", EventBody::Ack(right))])
            .unwrap();
        assert_eq!(partition.unacknowledged().count(), 0);
        assert_eq!(
            store.unit_state("A").unwrap().unwrap().confirmed,
            Some((1, LoadState::Off as i32))
        );
        assert_eq!(
            partition
                .set_load("A", LoadState::On, Reason::Manual, 12)
                .unwrap()
                .cmd_id,
            2
        );
        assert!(matches!(
            partition.set_load("B", LoadState::On, Reason::Manual, 12),
            Err(EngineError::UnitNotFound(_))
        ));
    }

    #[test]
    fn partition_ownership_is_stable_and_covers_every_partition() {
        assert_eq!(partition_of("SL-000001", 8), partition_of("SL-000001", 8));
        let mut seen = [false; 8];
        for i in 0..200 {
            seen[partition_of(&format!("SL-{i:06}"), 8)] = true;
        }
        assert!(seen.iter().all(|hit| *hit));
    }
}
