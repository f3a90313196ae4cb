//! Load commands: how they are stored, encoded and published.
//!
//! A command is published retained on the unit's `cmd` topic so a device that reconnects gets
//! the current desired state. The engine re-publishes a command until the device acks it.

use serde::{Deserialize, Serialize};
use sunledger_broker::Link;
use sunledger_proto::device::{Command, LoadState, Reason};
use sunledger_proto::topic::{TopicKind, device_topic};

/// The desired load state of a unit, as last decided and stored.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredCommand {
    /// Increases with every new command for the unit.
    pub cmd_id: u64,
    /// `LoadState` as its protobuf number.
    pub load: i32,
    /// `Reason` as its protobuf number.
    pub reason: i32,
    /// When it was issued, unix seconds.
    pub ts: i64,
}

impl StoredCommand {
    /// A new command.
    pub fn new(cmd_id: u64, load: LoadState, reason: Reason, ts: i64) -> StoredCommand {
        StoredCommand {
            cmd_id,
            load: load as i32,
            reason: reason as i32,
            ts,
        }
    }

    /// The wire form.
    pub fn to_proto(self) -> Command {
        Command {
            cmd_id: self.cmd_id,
            load: self.load,
            reason: self.reason,
            ts: self.ts,
            // Signed where it is published, by the unit's organisation's key.
            sig: Vec::new(),
        }
    }
}

/// The wire form of the billing rules' decision.
pub fn decision_to_proto(decision: crate::account::LoadDecision) -> (LoadState, Reason) {
    use crate::account::{LoadState as Rule, Reason as Why};
    let load = match decision.load {
        Rule::On => LoadState::On,
        Rule::Off => LoadState::Off,
    };
    let reason = match decision.reason {
        Why::CreditExhausted => Reason::CreditExhausted,
        Why::CreditRestored => Reason::CreditRestored,
        Why::OfflineDisable => Reason::OfflineDisable,
        Why::Manual => Reason::Manual,
        Why::PlanCompleted => Reason::PlanCompleted,
    };
    (load, reason)
}

/// Where the engine sends commands: the embedded broker, or an external MQTT cluster.
pub trait CommandSink: Send {
    /// Publishes `command` retained on `serial`'s `cmd` topic.
    fn publish(&mut self, serial: &str, command: &Command);
}

/// Publishes commands through an in-process link to the embedded broker.
pub struct BrokerCommandSink {
    link: Link,
}

impl BrokerCommandSink {
    /// Wraps an in-process broker link.
    pub fn new(link: Link) -> BrokerCommandSink {
        BrokerCommandSink { link }
    }
}

impl CommandSink for BrokerCommandSink {
    fn publish(&mut self, serial: &str, command: &Command) {
        use prost::Message;
        use std::future::Future;
        let publish = rumqttd_publish(
            device_topic(serial, TopicKind::Cmd),
            command.encode_to_vec(),
        );
        // `LinkTx::send` is async only in signature: it appends to a buffer and notifies the
        // router, so it completes on its first poll.
        let mut send = std::pin::pin!(self.link.tx.send(publish));
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        match send.as_mut().poll(&mut context) {
            std::task::Poll::Ready(Ok(_)) => {
                metrics::counter!("sunledger_commands_published_total").increment(1)
            }
            std::task::Poll::Ready(Err(error)) => {
                metrics::counter!("sunledger_commands_publish_failed_total").increment(1);
                tracing::error!(serial, %error, "publishing command to the broker failed");
            }
            std::task::Poll::Pending => unreachable!("LinkTx::send never waits"),
        }
    }
}

/// A retained publish; local links publish at QoS 0 and rumqttd delivers at the subscriber's
/// QoS (devices subscribe with QoS 1).
fn rumqttd_publish(topic: String, payload: Vec<u8>) -> sunledger_broker::Packet {
    sunledger_broker::Packet::Publish(
        sunledger_broker::Publish::new(
            bytes::Bytes::from(topic),
            bytes::Bytes::from(payload),
            true,
        ),
        None,
    )
}
