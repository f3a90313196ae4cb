//! MQTT topic names of a control unit: `sunledger/v1/devices/{serial}/{kind}`.
//!
//! The serial is the unit's identity on the wire, so the parser is strict: anything that is
//! not exactly this shape is an error rather than a best guess.

use std::fmt;

/// Every device topic starts with this prefix.
pub const DEVICE_TOPIC_PREFIX: &str = "sunledger/v1/devices/";

/// Longest serial accepted on the wire; longer ones are refused before any lookup.
pub const SERIAL_BYTES_MAX: usize = 64;

/// Subscription filter that matches every device's telemetry.
pub const ALL_TELEMETRY: &str = "sunledger/v1/devices/+/telemetry";
/// Subscription filter that matches every device's command acknowledgements.
pub const ALL_ACKS: &str = "sunledger/v1/devices/+/ack";
/// Subscription filter that matches every device's commands (the platform's watch on them).
pub const ALL_CMDS: &str = "sunledger/v1/devices/+/cmd";
/// Subscription filter that matches every device's online/offline status.
pub const ALL_STATUS: &str = "sunledger/v1/devices/+/status";

/// What a message on a device topic carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TopicKind {
    /// Device → platform readings (`Telemetry`).
    Telemetry,
    /// Platform → device load commands (`Command`), retained.
    Cmd,
    /// Device → platform command acknowledgements (`CommandAck`).
    Ack,
    /// Device online/offline marker, retained; `offline` is the device's last will.
    Status,
}

impl TopicKind {
    /// Every kind, for iteration in tests and metrics.
    pub const ALL: [TopicKind; 4] = [
        TopicKind::Telemetry,
        TopicKind::Cmd,
        TopicKind::Ack,
        TopicKind::Status,
    ];

    /// The last topic level for this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            TopicKind::Telemetry => "telemetry",
            TopicKind::Cmd => "cmd",
            TopicKind::Ack => "ack",
            TopicKind::Status => "status",
        }
    }

    fn parse(level: &str) -> Option<TopicKind> {
        TopicKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == level)
    }
}

/// Why a topic is not a device topic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopicError {
    /// The topic does not start with `sunledger/v1/devices/`.
    #[error("topic is not under {DEVICE_TOPIC_PREFIX}")]
    WrongPrefix,
    /// The topic has a different number of levels than `.../{serial}/{kind}`.
    #[error("topic must be {DEVICE_TOPIC_PREFIX}{{serial}}/{{kind}}")]
    WrongShape,
    /// The serial level is empty, too long, or contains a character outside `[A-Za-z0-9_.-]`.
    #[error(
        "serial is empty, longer than {SERIAL_BYTES_MAX} bytes, or has a character outside [A-Za-z0-9_.-]"
    )]
    BadSerial,
    /// The last level is not one of the known kinds.
    #[error("unknown topic kind")]
    UnknownKind,
}

/// A parsed device topic, borrowing the serial from the topic string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceTopic<'a> {
    /// The control unit's serial.
    pub serial: &'a str,
    /// What the message carries.
    pub kind: TopicKind,
}

impl<'a> DeviceTopic<'a> {
    /// Parses `sunledger/v1/devices/{serial}/{kind}`.
    pub fn parse(topic: &'a str) -> Result<DeviceTopic<'a>, TopicError> {
        let rest = topic
            .strip_prefix(DEVICE_TOPIC_PREFIX)
            .ok_or(TopicError::WrongPrefix)?;
        let (serial, kind) = rest.split_once('/').ok_or(TopicError::WrongShape)?;
        if kind.contains('/') {
            return Err(TopicError::WrongShape);
        }
        validate_serial(serial)?;
        let kind = TopicKind::parse(kind).ok_or(TopicError::UnknownKind)?;
        Ok(DeviceTopic { serial, kind })
    }
}

impl fmt::Display for DeviceTopic<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{DEVICE_TOPIC_PREFIX}{}/{}",
            self.serial,
            self.kind.as_str()
        )
    }
}

/// Checks that a serial can be used as one topic level and as a client id.
pub fn validate_serial(serial: &str) -> Result<(), TopicError> {
    let well_formed = !serial.is_empty()
        && serial.len() <= SERIAL_BYTES_MAX
        && serial
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if well_formed {
        Ok(())
    } else {
        Err(TopicError::BadSerial)
    }
}

/// The topic of `kind` for the unit `serial`.
pub fn device_topic(serial: &str, kind: TopicKind) -> String {
    DeviceTopic { serial, kind }.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_every_kind_and_round_trips() {
        for kind in TopicKind::ALL {
            let topic = device_topic("SL-0001", kind);
            assert_eq!(
                DeviceTopic::parse(&topic),
                Ok(DeviceTopic {
                    serial: "SL-0001",
                    kind
                })
            );
        }
    }

    #[test]
    fn rejects_malformed_topics_with_the_specific_reason() {
        let cases = [
            ("other/v1/devices/A/telemetry", TopicError::WrongPrefix),
            ("sunledger/v1/devices/A", TopicError::WrongShape),
            ("sunledger/v1/devices/A/telemetry/x", TopicError::WrongShape),
            ("sunledger/v1/devices//telemetry", TopicError::BadSerial),
            ("sunledger/v1/devices/+/telemetry", TopicError::BadSerial),
            ("sunledger/v1/devices/A#/telemetry", TopicError::BadSerial),
            ("sunledger/v1/devices/A/telemetri", TopicError::UnknownKind),
        ];
        for (topic, expected) in cases {
            assert_eq!(DeviceTopic::parse(topic), Err(expected), "{topic}");
        }
        let long = format!(
            "sunledger/v1/devices/{}/cmd",
            "x".repeat(SERIAL_BYTES_MAX + 1)
        );
        assert_eq!(DeviceTopic::parse(&long), Err(TopicError::BadSerial));
    }

    proptest! {
        /// Arbitrary strings, and near misses of real topics (stray separators, wildcards,
        /// misspelt kinds, long serials), never panic the parser, and a topic it accepts formats
        /// back to exactly itself with a valid serial: the serial billed is the one in the topic.
        #[test]
        fn a_topic_that_parses_formats_back_to_itself(
            topic in prop_oneof![
                "\\PC{0,120}",
                ("[A-Za-z0-9_.+#/ -]{0,70}", "(telemetry|ack|status|cmd|telemetri|Ack|)(/?)")
                    .prop_map(|(serial, kind)| format!("{DEVICE_TOPIC_PREFIX}{serial}/{kind}")),
            ],
        ) {
            if let Ok(parsed) = DeviceTopic::parse(&topic) {
                prop_assert_eq!(parsed.to_string(), topic.as_str());
                prop_assert_eq!(validate_serial(parsed.serial), Ok(()));
            }
        }

        #[test]
        fn valid_serials_round_trip(serial in "[A-Za-z0-9_.-]{1,64}") {
            let topic = device_topic(&serial, TopicKind::Ack);
            let parsed = DeviceTopic::parse(&topic).unwrap();
            prop_assert_eq!(parsed.serial, serial.as_str());
        }
    }
}
