//! `payload::decode_telemetry`, the decoder ingest runs on every message published on a
//! `.../telemetry` topic, fed arbitrary bytes (protobuf, or JSON when the first byte is `{`).
//!
//! Properties beyond "never panics": a decoded reading re-encodes (protobuf) to a payload
//! that decodes to the same reading, whichever form it arrived in; and a refusal names the
//! encoding the first byte selected.

#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use sunledger_fuzz::assert_refusal_matches_encoding;
use sunledger_proto::payload::decode_telemetry;

fuzz_target!(|payload: &[u8]| {
    match decode_telemetry(payload) {
        Ok(reading) => {
            let again = decode_telemetry(&reading.encode_to_vec());
            assert_eq!(
                again.ok(),
                Some(reading),
                "re-encoded reading decodes to itself"
            );
        }
        Err(error) => assert_refusal_matches_encoding(payload, &error),
    }
});
