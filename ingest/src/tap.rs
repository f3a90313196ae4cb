//! Device telemetry and acks, taken straight off their MQTT connections (the broker's
//! [`TapSlot`](sunledger_broker::TapSlot)): decoded, admitted and queued on the owning
//! partition by the connection's own task, without the router's log and forwarding thread.
//!
//! A QoS 1 publish is PUBACKed once it is queued here, as it was once the router held it:
//! either way it is in memory, and the devices' cumulative counters carry it if the server
//! dies before the commit. When the partition's queue is full the tap answers `Full`: the
//! connection stops reading and offers the publish again shortly, so back-pressure reaches
//! the device through TCP and nothing is dropped or evicted meanwhile.

use std::sync::Arc;

use sunledger_billing::units::UnitDirectory;
use sunledger_billing::worker::{Engine, PartitionHandle};
use sunledger_broker::{PublishTap, Tapped};
use sunledger_proto::topic::TopicKind;

use crate::decode::parse_topic;
use crate::intake::Intake;

/// The tap ingest puts in the broker's slot.
pub(crate) struct DeviceTap {
    telemetry: Intake,
    acks: Intake,
    engine: Arc<Engine>,
    /// Publishes offered while their partition's queue was full (back-pressure).
    queue_full_waits: metrics::Counter,
}

impl DeviceTap {
    /// A tap that admits through `directory` and queues on `engine`'s partitions.
    pub(crate) fn new(directory: Arc<UnitDirectory>, engine: Arc<Engine>) -> DeviceTap {
        DeviceTap {
            telemetry: Intake::new("telemetry", directory.clone()),
            acks: Intake::new("ack", directory),
            engine,
            queue_full_waits: metrics::counter!("sunledger_ingest_queue_full_waits_total"),
        }
    }

    /// Counts a wait for room in `partition`'s queue and makes sure its thread is draining it.
    fn full(&self, partition: &PartitionHandle) -> Tapped {
        self.queue_full_waits.increment(1);
        partition.wake();
        Tapped::Full
    }
}

impl PublishTap for DeviceTap {
    fn offer(&self, topic: &[u8], payload: &[u8]) -> Tapped {
        let Ok(device_topic) = parse_topic(topic) else {
            return Tapped::Declined;
        };
        let intake = match device_topic.kind {
            TopicKind::Telemetry => &self.telemetry,
            TopicKind::Ack => &self.acks,
            // Status goes through the router, as the wills the router publishes itself do.
            TopicKind::Status | TopicKind::Cmd => return Tapped::Declined,
        };
        let partition = self.engine.partition_for(device_topic.serial);
        // Checked before the MAC, which a full queue would have checked again on every offer.
        if partition.is_full() {
            return self.full(partition);
        }
        let Some(event) = intake.admit_on(device_topic, payload) else {
            return Tapped::Taken;
        };
        let tally = intake.tally(&event, payload);
        if partition.try_push(event).is_err() {
            return self.full(partition);
        }
        partition.wake();
        tally.count();
        Tapped::Taken
    }
}
