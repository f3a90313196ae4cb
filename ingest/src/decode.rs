//! From a forwarded MQTT message to a device event.

use sunledger_billing::event::{DeviceEvent, EventBody};
use sunledger_proto::payload;
use sunledger_proto::topic::{DeviceTopic, TopicKind};

/// Why a message was dropped; the label of `sunledger_ingest_rejected_total{reason}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// The topic is not a device topic this stage handles.
    BadTopic,
    /// The payload is not a valid message of the topic's kind.
    Malformed,
    /// A status payload other than `online` or `offline`.
    BadStatus,
}

impl Rejection {
    /// Metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::BadTopic => "bad_topic",
            Rejection::Malformed => "malformed",
            Rejection::BadStatus => "bad_status",
        }
    }
}

/// Decodes the message published on `topic`, stamping it with the server time it arrived.
pub fn decode(topic: &[u8], payload: &[u8], received_at_ms: i64) -> Result<DeviceEvent, Rejection> {
    decode_on(parse_topic(topic)?, payload, received_at_ms)
}

/// The device topic a message was published on.
pub fn parse_topic(topic: &[u8]) -> Result<DeviceTopic<'_>, Rejection> {
    let topic = std::str::from_utf8(topic).map_err(|_| Rejection::BadTopic)?;
    DeviceTopic::parse(topic).map_err(|_| Rejection::BadTopic)
}

/// [`decode`] for a topic already parsed (the tap parses it to choose its messages).
pub fn decode_on(
    topic: DeviceTopic<'_>,
    payload: &[u8],
    received_at_ms: i64,
) -> Result<DeviceEvent, Rejection> {
    let body = match topic.kind {
        TopicKind::Telemetry => EventBody::Telemetry(
            payload::decode_telemetry(payload).map_err(|_| Rejection::Malformed)?,
        ),
        TopicKind::Ack => {
            EventBody::Ack(payload::decode_ack(payload).map_err(|_| Rejection::Malformed)?)
        }
        TopicKind::Status => match payload {
            b"online" => EventBody::Status { online: true },
            b"offline" => EventBody::Status { online: false },
            _ => return Err(Rejection::BadStatus),
        },
        TopicKind::Cmd => {
            EventBody::Command(prost::Message::decode(payload).map_err(|_| Rejection::Malformed)?)
        }
    };
    Ok(DeviceEvent {
        serial: topic.serial.into(),
        received_at_ms,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use prost::Message;
    use sunledger_proto::device::{CommandAck, LoadState, Telemetry};

    #[test]
    fn decodes_each_kind_and_names_the_serial_from_the_topic() {
        let telemetry = Telemetry {
            seq: 1,
            load_wh: 5,
            ..Telemetry::default()
        };
        let event = decode(
            b"sunledger/v1/devices/A/telemetry",
            &telemetry.encode_to_vec(),
            7,
        )
        .unwrap();
        assert_eq!(
            event,
            DeviceEvent {
                serial: "A".into(),
                received_at_ms: 7,
                body: EventBody::Telemetry(telemetry)
            }
        );
        let ack = decode(
            b"sunledger/v1/devices/A/ack",
            br#"{"cmd_id":2,"load":"LOAD_STATE_ON"}"#,
            7,
        )
        .unwrap();
        assert_eq!(
            ack.body,
            EventBody::Ack(CommandAck {
                cmd_id: 2,
                load: LoadState::On as i32,
                ..CommandAck::default()
            })
        );
        let status = decode(b"sunledger/v1/devices/A/status", b"offline", 7).unwrap();
        assert_eq!(status.body, EventBody::Status { online: false });
        let command = sunledger_proto::device::Command {
            cmd_id: 3,
            sig: vec![1; 64],
            ..Default::default()
        };
        let seen = decode(b"sunledger/v1/devices/A/cmd", &command.encode_to_vec(), 7).unwrap();
        assert_eq!(seen.body, EventBody::Command(command));
    }

    #[test]
    fn bad_input_is_rejected_with_its_reason() {
        let cases: [(&[u8], &[u8], Rejection); 6] = [
            (
                b"sunledger/v1/devices/A/telemetry",
                b"{not json",
                Rejection::Malformed,
            ),
            (
                b"sunledger/v1/devices/A/telemetry",
                &[0xff, 0x01],
                Rejection::Malformed,
            ),
            (
                b"sunledger/v1/devices/A/status",
                b"maybe",
                Rejection::BadStatus,
            ),
            (b"sunledger/v1/devices/A/cmd", &[0xff], Rejection::Malformed),
            (b"sunledger/v1/devices/A/other", b"", Rejection::BadTopic),
            (&[0xc3, 0x28], b"", Rejection::BadTopic),
        ];
        for (topic, payload, reason) in cases {
            assert_eq!(decode(topic, payload, 0), Err(reason), "{topic:?}");
        }
    }

    proptest! {
        #[test]
        fn decode_never_panics(topic in proptest::collection::vec(any::<u8>(), 0..80), payload in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&topic, &payload, 0);
        }
    }
}
