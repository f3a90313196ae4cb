//! Decoding of device payloads: protobuf by default, JSON when the first byte is `{`.
//!
//! Decoders never panic on input (fuzzed and property-tested); every failure is a
//! [`PayloadError`] whose variant names what was wrong, for the rejection metrics. Whatever
//! they accept re-encodes to a payload they accept as the same message.
//!
//! An empty payload is protobuf: it is the encoding of a message whose fields are all zero,
//! and a unit's first reading after manufacture (boot 0, seq 0, counters 0, clock unset) is
//! exactly that. Refusing it would make the unit's second reading its baseline, and the
//! energy between the two would never be charged.

use prost::Message;

use crate::device::{CommandAck, LoadState, Telemetry};

/// Why a payload could not be decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
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

    /// Found by the `telemetry` fuzz target's round-trip property: a reading whose fields are
    /// all zero encodes to no bytes at all, and the empty payload used to be refused.
    #[test]
    fn an_all_zero_reading_is_the_empty_payload_and_decodes() {
        let zero = Telemetry::default();
        assert!(zero.encode_to_vec().is_empty());
        assert_eq!(decode_telemetry(b"").unwrap(), zero);
        let unknown_field_only = [249, 39, 255, 255, 223, 255, 255, 8, 255, 255];
        let reading = decode_telemetry(&unknown_field_only).unwrap();
        assert_eq!(decode_telemetry(&reading.encode_to_vec()).unwrap(), reading);
        assert!(matches!(
            decode_ack(b""),
            Err(PayloadError::InvalidField { field: "load", .. })
        ));
    }

    fn reading() -> impl Strategy<Value = Telemetry> {
        let counters = (
            any::<u64>(),
            any::<i64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u32>(),
        );
        let optional = (any::<Option<u32>>(), any::<Option<u64>>(), any::<bool>());
        let mac = proptest::collection::vec(any::<u8>(), 0..33);
        (counters, optional, mac).prop_map(
            |((seq, ts, load_wh, usb_wh, boot), (battery_mv, pv_wh, load_on), mac)| Telemetry {
                seq,
                ts,
                load_wh,
                usb_wh,
                boot,
                battery_mv,
                pv_wh,
                load_on,
                mac,
            },
        )
    }

    /// The JSON form of `reading`, as a device (or `mosquitto_pub`) would type it.
    fn reading_json(reading: &Telemetry) -> String {
        serde_json::json!({
            "seq": reading.seq, "ts": reading.ts, "load_wh": reading.load_wh,
            "usb_wh": reading.usb_wh, "boot": reading.boot, "battery_mv": reading.battery_mv,
            "pv_wh": reading.pv_wh, "load_on": reading.load_on, "mac": hex::encode(&reading.mac),
        })
        .to_string()
    }

    proptest! {
        /// Arbitrary bytes never panic a decoder, and whatever one accepts re-encodes to a
        /// payload it accepts as the same message (the fuzz targets' property, in CI).
        #[test]
        fn decoders_never_panic_and_what_they_accept_round_trips(
            payload in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            if let Ok(reading) = decode_telemetry(&payload) {
                prop_assert_eq!(decode_telemetry(&reading.encode_to_vec()).ok(), Some(reading));
            }
            if let Ok(ack) = decode_ack(&payload) {
                prop_assert!(matches!(ack.load(), LoadState::On | LoadState::Off));
                prop_assert_eq!(decode_ack(&ack.encode_to_vec()).ok(), Some(ack));
            }
        }

        /// Every reading, extreme values included, decodes from both of its forms.
        #[test]
        fn every_reading_decodes_from_protobuf_and_from_json(reading in reading()) {
            prop_assert_eq!(decode_telemetry(&reading.encode_to_vec()).unwrap(), reading.clone());
            prop_assert_eq!(decode_telemetry(reading_json(&reading).as_bytes()).unwrap(), reading);
        }

        /// Every ack of ON or OFF decodes from protobuf and from each JSON spelling of `load`.
        #[test]
        fn every_ack_decodes_from_protobuf_and_from_json(
            cmd_id in any::<u64>(),
            on in any::<bool>(),
            mac in proptest::collection::vec(any::<u8>(), 0..33),
        ) {
            let load = if on { LoadState::On } else { LoadState::Off };
            let ack = CommandAck { cmd_id, load: load as i32, mac };
            prop_assert_eq!(decode_ack(&ack.encode_to_vec()).unwrap(), ack.clone());
            let short = load.as_str_name().trim_start_matches("LOAD_STATE_");
            for spelling in [
                serde_json::json!(load.as_str_name()),
                serde_json::json!(short),
                serde_json::json!(load as i32),
            ] {
                let json = serde_json::json!({
                    "cmd_id": cmd_id, "load": spelling, "mac": hex::encode(&ack.mac),
                });
                prop_assert_eq!(decode_ack(json.to_string().as_bytes()).unwrap(), ack.clone());
            }
        }
    }
}
