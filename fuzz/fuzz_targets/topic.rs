//! The topic parser as ingest runs it on every forwarded message: the topic bytes as UTF-8,
//! then `DeviceTopic::parse`, fed arbitrary bytes.
//!
//! Properties beyond "never panics": a parsed topic formats back to exactly the input (so
//! the serial a message is billed to is the one in its topic, byte for byte), equals the
//! topic `device_topic` builds for its serial and kind, and its serial passes
//! `validate_serial`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sunledger_proto::topic::{DeviceTopic, device_topic, validate_serial};

fuzz_target!(|topic: &[u8]| {
    let Ok(topic) = std::str::from_utf8(topic) else {
        return;
    };
    if let Ok(parsed) = DeviceTopic::parse(topic) {
        assert_eq!(
            parsed.to_string(),
            topic,
            "parsed topic formats back to itself"
        );
        assert_eq!(device_topic(parsed.serial, parsed.kind), topic);
        assert_eq!(validate_serial(parsed.serial), Ok(()));
    }
});
