//! Sunledger's wire contracts, shared by the platform, the simulator and device firmware
//! written in Rust.
//!
//! - [`device`]: the generated protobuf messages of `sunledger.device.v1` (telemetry,
//!   commands, acknowledgements).
//! - [`api`]: the generated messages, clients and servers of the operators' gRPC API,
//!   `sunledger.api.v1` (organisations, team, audit log).
//! - [`topic`]: the MQTT topic names of a control unit, and the parser that turns a topic back
//!   into a serial and a message kind.
//! - [`authenticity`]: the MAC on device messages and the signature on commands.
//! - [`payload`]: decoding of device payloads, which arrive as protobuf or, when the first byte
//!   is `{`, as JSON with the same field names.
//!
//! Data flows one way through this crate: bytes and topic strings in, typed values out (or a
//! typed error naming what was wrong). Nothing here does I/O.

pub mod authenticity;
pub mod payload;
pub mod topic;

mod json;

/// Protobuf messages of the device protocol, package `sunledger.device.v1`.
#[allow(missing_docs, clippy::all)]
pub mod device {
    include!(concat!(env!("OUT_DIR"), "/sunledger.device.v1.rs"));
}

/// The operators' gRPC API: messages, tonic clients and tonic servers.
pub mod api {
    /// Version 1, package `sunledger.api.v1`.
    #[allow(missing_docs, clippy::all)]
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/sunledger.api.v1.rs"));
    }
}

/// The encoded file descriptor set of every Sunledger proto, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/sunledger_descriptor.bin"));
