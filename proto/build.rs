//! Compiles the protobuf contracts with `protox` (a pure-Rust protobuf compiler), so a fresh
//! machine needs no system `protoc`.

use std::path::PathBuf;

const PROTO_FILES: &[&str] = &[
    "sunledger/device/v1/device.proto",
    "sunledger/api/v1/common.proto",
    "sunledger/api/v1/organisations.proto",
    "sunledger/api/v1/team.proto",
    "sunledger/api/v1/plans.proto",
    "sunledger/api/v1/units.proto",
    "sunledger/api/v1/payments.proto",
    "sunledger/api/v1/customers.proto",
    "sunledger/api/v1/reports.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let file_descriptors = protox::compile(PROTO_FILES, ["."])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    // Reflection serves this set; compile_fds does not write it itself.
    std::fs::write(
        out_dir.join("sunledger_descriptor.bin"),
        prost::Message::encode_to_vec(&file_descriptors),
    )?;
    tonic_prost_build::configure()
        // JSON payloads (a debugging aid for devices) use the protobuf field names.
        .type_attribute(
            ".sunledger.device.v1.Telemetry",
            "#[derive(serde::Deserialize)] #[serde(default, deny_unknown_fields)]",
        )
        .type_attribute(
            ".sunledger.device.v1.CommandAck",
            "#[derive(serde::Deserialize)] #[serde(default, deny_unknown_fields)]",
        )
        .field_attribute(
            ".sunledger.device.v1.Telemetry.mac",
            "#[serde(deserialize_with = \"crate::json::hex_bytes\")]",
        )
        .field_attribute(
            ".sunledger.device.v1.CommandAck.mac",
            "#[serde(deserialize_with = \"crate::json::hex_bytes\")]",
        )
        .field_attribute(
            ".sunledger.device.v1.CommandAck.load",
            "#[serde(deserialize_with = \"crate::json::load_state\")]",
        )
        .compile_fds(file_descriptors)?;
    for file in PROTO_FILES {
        println!("cargo:rerun-if-changed={file}");
    }
    Ok(())
}
