//! `payload::decode_ack`, the decoder ingest runs on every message published on an `.../ack`
//! topic, fed arbitrary bytes (protobuf, or JSON when the first byte is `{`).
//!
//! Properties beyond "never panics": an accepted ack names a real load state (ON or OFF);
//! it re-encodes (protobuf) to a payload that decodes to the same ack, whichever form it
//! arrived in; and a refusal names the encoding the first byte selected.

#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use sunledger_fuzz::assert_refusal_matches_encoding;
use sunledger_proto::device::LoadState;
use sunledger_proto::payload::decode_ack;

fuzz_target!(|payload: &[u8]| {
    match decode_ack(payload) {
        Ok(ack) => {
            assert!(
                matches!(ack.load(), LoadState::On | LoadState::Off),
                "accepted ack with load {}",
                ack.load
            );
            let again = decode_ack(&ack.encode_to_vec());
            assert_eq!(again.ok(), Some(ack), "re-encoded ack decodes to itself");
        }
        Err(error) => assert_refusal_matches_encoding(payload, &error),
    }
});
