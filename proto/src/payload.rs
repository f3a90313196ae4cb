//! Decoding of device payloads: protobuf by default, JSON when the first byte is `{`.
//!
//! Decoders never panic on input (fuzzed and property-tested); every failure is a
//! [`PayloadError`] whose variant names what was wrong, for the rejection metrics.

use prost::Message;

use crate::device::{CommandAck, LoadState, Telemetry};

/// Why a payload could not be decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// The payload is empty.
    #[error("payload is empty")]
    Empty,
    /// The payload starts with `{` but is not valid JSON of the message.
    #[error("invalid JSON payload: {0}")]
    Json(#[from] serde_json::Error),
    /// The payload is not a valid protobuf encoding of the message.
    #[error("invalid protobuf payload: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// The message decoded but a field has a value the protocol forbids.
    #[error("invalid field {field}: {reason}")]
    InvalidField {
        /// The protobuf field name.
        field: &'static str,
        /// What is wrong with its value.
        reason: &'static str,
    },
}

/// Which encoding a payload used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// Protobuf binary encoding.
    Protobuf,
    /// JSON with the protobuf field names.
    Json,
}

impl Encoding {
    /// Detects the encoding from the first byte.
    pub fn of(payload: &[u8]) -> Encoding {
        if payload.first() == Some(&b'{') {
            Encoding::Json
        } else {
            Encoding::Protobuf
        }
    }
}

fn decode<M>(payload: &[u8]) -> Result<M, PayloadError>
where
    M: Message + Default + serde::de::DeserializeOwned,
{
    if payload.is_empty() {
        return Err(PayloadError::Empty);
    }
    match Encoding::of(payload) {
        Encoding::Json => Ok(serde_json::from_slice(payload)?),
        Encoding::Protobuf => Ok(M::decode(payload)?),
    }
}

/// Decodes a `Telemetry` payload.
pub fn decode_telemetry(payload: &[u8]) -> Result<Telemetry, PayloadError> {
    decode(payload)
}

/// Decodes a `CommandAck` payload; the acknowledged state must be ON or OFF.
pub fn decode_ack(payload: &[u8]) -> Result<CommandAck, PayloadError> {
    let ack: CommandAck = decode(payload)?;
    match ack.load() {
        LoadState::On | LoadState::Off => Ok(ack),
        LoadState::Unspecified => Err(PayloadError::InvalidField {
            field: "load",
            reason: "must be LOAD_STATE_ON or LOAD_STATE_OFF",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn protobuf_and_json_decode_to_the_same_telemetry() {
        let telemetry = Telemetry {
            seq: 7,
            ts: 1_780_000_000,
            load_wh: 1234,
            usb_wh: 56,
            boot: 2,
            battery_mv: Some(12_800),
            pv_wh: None,
            load_on: true,
            mac: vec![0xab, 0x01],
        };
        let json = br#"{"seq":7,"ts":1780000000,"load_wh":1234,"usb_wh":56,"boot":2,"battery_mv":12800,"load_on":true,"mac":"ab01"}"#;
        assert_eq!(
            decode_telemetry(&telemetry.encode_to_vec()).unwrap(),
            telemetry
        );
        assert_eq!(decode_telemetry(json).unwrap(), telemetry);
    }

    #[test]
    fn json_ack_accepts_state_names_and_numbers() {
        for json in [
            &br#"{"cmd_id":3,"load":"LOAD_STATE_OFF"}"#[..],
            br#"{"cmd_id":3,"load":"OFF"}"#,
            br#"{"cmd_id":3,"load":2}"#,
        ] {
            let ack = decode_ack(json).unwrap();
            assert_eq!((ack.cmd_id, ack.load()), (3, LoadState::Off));
        }
    }

    #[test]
    fn rejects_bad_payloads_with_a_reason() {
        assert!(matches!(decode_telemetry(b""), Err(PayloadError::Empty)));
        assert!(matches!(
            decode_telemetry(b"{\"seq\":-1}"),
            Err(PayloadError::Json(_))
        ));
        assert!(matches!(
            decode_telemetry(b"{\"sq\":1}"),
            Err(PayloadError::Json(_))
        ));
        assert!(matches!(
            decode_telemetry(&[0xff, 0xff]),
            Err(PayloadError::Protobuf(_))
        ));
        assert!(matches!(
            decode_ack(br#"{"cmd_id":3}"#),
            Err(PayloadError::InvalidField { field: "load", .. })
        ));
    }

    proptest! {
        #[test]
        fn decoders_never_panic(payload in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_telemetry(&payload);
            let _ = decode_ack(&payload);
        }
    }
}
