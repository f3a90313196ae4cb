//! Device events as ingest hands them to the engine: decoded, with the topic's serial.

use sunledger_proto::device::{Command, CommandAck, Telemetry};

/// One decoded message from a device, attributed to the serial in its topic (which the broker
/// guarantees is the sender's own).
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceEvent {
    /// The control unit's serial.
    pub serial: Box<str>,
    /// Server time the message was taken off the broker, unix milliseconds.
    pub received_at_ms: i64,
    /// What the device said.
    pub body: EventBody,
}

/// The payload of a [`DeviceEvent`].
#[derive(Clone, Debug, PartialEq)]
pub enum EventBody {
    /// A reading of the cumulative counters.
    Telemetry(Telemetry),
    /// Confirmation that the device applied a command.
    Ack(CommandAck),
    /// A command seen on the unit's `cmd` topic: the platform's own, or a forgery for the
    /// watch to catch.
    Command(Command),
    /// The device's retained online/offline marker.
    Status {
        /// `true` for `online`, `false` for `offline` (the last will).
        online: bool,
    },
}
