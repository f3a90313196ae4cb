//! serde helpers for the JSON form of device payloads.

use serde::{Deserialize, Deserializer};

use crate::device::LoadState;

/// Accepts a `LoadState` as its protobuf name (`"LOAD_STATE_ON"`), a short name (`"ON"`), or
/// its number, so hand-typed JSON from standard MQTT tools works.
pub(crate) fn load_state<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i32, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(i32),
        Name(String),
    }
    let state = match Raw::deserialize(deserializer)? {
        Raw::Number(n) => LoadState::try_from(n).ok(),
        Raw::Name(name) => LoadState::from_str_name(&name)
            .or_else(|| LoadState::from_str_name(&format!("LOAD_STATE_{name}"))),
    };
    state
        .map(|s| s as i32)
        .ok_or_else(|| serde::de::Error::custom("load must be LOAD_STATE_ON or LOAD_STATE_OFF"))
}

/// Reads a MAC given as lowercase (or upper-case) hex, the JSON form of a `bytes` field.
pub(crate) fn hex_bytes<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    let text = String::deserialize(deserializer)?;
    hex::decode(&text).map_err(|_| serde::de::Error::custom("mac must be hex"))
}
