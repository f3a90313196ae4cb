//! Credentials files: one device a line as `serial,device_key[,command_key]`, `#` starts a
//! comment, blank lines are skipped. `device_key` is the unit's 16-byte device key in hex, as
//! `RegisterUnit` returns it: the device derives its MQTT password from it and seals every
//! reading and ack under it. `command_key` is the owner's Ed25519 command-verification key in
//! hex (what the unit is flashed with); without it the device accepts any command.
//! `sunledger sim --database` and `--grpc` write one after registering units: the platform
//! shows a device key only once, so later runs against a running server take it from here.

use std::collections::HashSet;

use sunledger_proto::authenticity::{DEVICE_KEY_BYTES, DeviceKey};
use sunledger_proto::topic::validate_serial;

use crate::device::DeviceCredentials;
use crate::error::SimError;

/// The header this module writes, naming the fields.
const HEADER: &str = "# sunledger sim credentials: serial,device_key[,command_key] \
                      (MQTT client id/username, the device key its password and MACs come \
                      from, the owner's command-verification key)\n";

/// How files written before device keys begin: their second field is an MQTT password, which
/// looks just like a device key (32 hex digits) but would log in as nothing and seal nothing
/// the platform accepts, so such a file is refused outright.
const PASSWORD_FILE_HEADER: &str = "# sunledger sim credentials: serial,secret";

/// Parses a credentials file, refusing the first bad line with its one-based number.
pub fn parse_credentials(text: &str) -> Result<Vec<DeviceCredentials>, SimError> {
    if text.starts_with(PASSWORD_FILE_HEADER) {
        return Err(SimError::CredentialsLine {
            line: 1,
            reason: "this file lists MQTT passwords (`serial,secret`), written before device \
                     keys; the passwords cannot seal messages, so register the units again \
                     (`sunledger sim --database` re-keys them) to get their device keys"
                .into(),
        });
    }
    let mut devices = Vec::new();
    let mut serials = HashSet::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let content = raw.split('#').next().unwrap_or_default().trim();
        if content.is_empty() {
            continue;
        }
        let bad = |reason: String| SimError::CredentialsLine { line, reason };
        let mut fields = content.split(',').map(str::trim);
        let (Some(serial), Some(hex_device_key)) = (fields.next(), fields.next()) else {
            return Err(bad("expected `serial,device_key[,command_key]`".into()));
        };
        validate_serial(serial).map_err(|error| bad(format!("serial {serial:?}: {error}")))?;
        let device_key = device_key(hex_device_key).ok_or_else(|| {
            bad(format!(
                "serial {serial:?}: device_key must be {} hex digits, as RegisterUnit returns it",
                2 * DEVICE_KEY_BYTES
            ))
        })?;
        let command_key = match fields.next() {
            None => None,
            Some(hex_key) => Some(verifying_key(hex_key).ok_or_else(|| {
                bad(format!(
                    "serial {serial:?}: command_key must be 64 hex digits of an Ed25519 key"
                ))
            })?),
        };
        if fields.next().is_some() {
            return Err(bad(format!("serial {serial:?}: more than three fields")));
        }
        if !serials.insert(serial.to_owned()) {
            return Err(bad(format!("serial {serial:?} appears more than once")));
        }
        devices.push(DeviceCredentials {
            serial: serial.to_owned(),
            device_key,
            command_key,
        });
    }
    if devices.is_empty() {
        return Err(SimError::NoCredentials);
    }
    Ok(devices)
}

/// A device key from its 32 hex digits, as `RegisterUnit` returns it.
pub fn device_key(hex_key: &str) -> Option<DeviceKey> {
    let mut bytes = [0u8; DEVICE_KEY_BYTES];
    hex::decode_to_slice(hex_key, &mut bytes).ok()?;
    Some(bytes)
}

/// An Ed25519 verification key from its 64 hex digits, as the API shows it.
pub fn verifying_key(hex_key: &str) -> Option<ed25519_dalek::VerifyingKey> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(hex_key, &mut bytes).ok()?;
    ed25519_dalek::VerifyingKey::from_bytes(&bytes).ok()
}

/// The text of a credentials file for `devices`, with a header saying what it is.
pub fn format_credentials(devices: &[DeviceCredentials]) -> String {
    let mut text = String::from(HEADER);
    for device in devices {
        text.push_str(&device.serial);
        text.push(',');
        text.push_str(&hex::encode(device.device_key));
        if let Some(key) = &device.command_key {
            text.push(',');
            text.push_str(&hex::encode(key.as_bytes()));
        }
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_1: &str = "000102030405060708090a0b0c0d0e0f";
    const KEY_2: &str = "F0E1D2C3B4A5968778695A4B3C2D1E0F";

    #[test]
    fn good_lines_parse_and_comments_and_blanks_are_skipped() {
        let text = format!("# fleet\n\nSIM-000001,{KEY_1}\n  SIM-000002 , {KEY_2}  # spare\n");
        let devices = parse_credentials(&text).unwrap();
        let pairs: Vec<_> = devices
            .iter()
            .map(|d| (d.serial.as_str(), hex::encode(d.device_key)))
            .collect();
        assert_eq!(
            pairs,
            [
                ("SIM-000001", KEY_1.to_owned()),
                ("SIM-000002", KEY_2.to_lowercase())
            ]
        );
        assert_eq!(devices[0].device_key[15], 0x0f);
        assert_eq!(
            parse_credentials(&format_credentials(&devices)).unwrap(),
            devices
        );
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
        let line = format!("SIM-3,{KEY_1},{}\n", hex::encode(key.as_bytes()));
        let keyed = parse_credentials(&line).unwrap();
        assert_eq!(keyed[0].command_key, Some(key));
        assert_eq!(
            format_credentials(&keyed).lines().nth(1),
            Some(line.trim_end())
        );
        let too_many = format!("SIM-3,{KEY_1},{},x\n", hex::encode(key.as_bytes()));
        assert!(parse_credentials(&too_many).is_err());
    }

    #[test]
    fn the_password_is_derived_from_the_key_and_never_shown() {
        let devices = parse_credentials(&format!("SIM-1,{KEY_1}\n")).unwrap();
        assert_eq!(
            devices[0].mqtt_password(),
            sunledger_proto::authenticity::mqtt_password(&devices[0].device_key)
        );
        let debug = format!("{:?}", devices[0]);
        assert!(
            debug.contains("SIM-1") && debug.contains("<redacted>"),
            "{debug}"
        );
        assert!(!debug.contains("0a0b"), "{debug}");
    }

    #[test]
    fn bad_lines_are_refused_with_their_line_number() {
        let short_command_key = "ab".repeat(31);
        let cases = [
            (
                format!("SIM-1,{KEY_1}\nSIM-2\n"),
                2,
                "expected `serial,device_key[,command_key]`",
            ),
            (format!("# c\nbad serial!,{KEY_1}\n"), 2, "bad serial!"),
            ("SIM-1,\n".into(), 1, "device_key must be 32 hex digits"),
            ("SIM-1,abc\n".into(), 1, "device_key must be 32 hex digits"),
            (
                format!("SIM-1,{KEY_1}00\n"),
                1,
                "device_key must be 32 hex digits",
            ),
            (
                format!("SIM-1,{}\n", &KEY_1[..30]),
                1,
                "device_key must be 32 hex digits",
            ),
            (
                format!("SIM-1,{}zz\n", &KEY_1[..30]),
                1,
                "SIM-1\": device_key must be 32 hex digits",
            ),
            (
                format!("SIM-1,{KEY_1},b\n"),
                1,
                "command_key must be 64 hex digits",
            ),
            (
                format!("SIM-1,{KEY_1},{short_command_key}\n"),
                1,
                "command_key must be 64 hex digits",
            ),
            (
                format!("SIM-1,{KEY_1}\n\nSIM-1,{KEY_2}\n"),
                3,
                "more than once",
            ),
            (format!(",{KEY_1}\n"), 1, "serial \"\""),
            (
                format!(
                    "# sunledger sim credentials: serial,secret[,command_key]\nSIM-1,{KEY_1}\n"
                ),
                1,
                "register the units again",
            ),
        ];
        for (text, expected_line, expected_reason) in cases {
            match parse_credentials(&text) {
                Err(SimError::CredentialsLine { line, reason }) => {
                    assert_eq!(line, expected_line, "{text:?}");
                    assert!(reason.contains(expected_reason), "{text:?}: {reason}");
                }
                other => panic!("{text:?}: expected a line error, got {other:?}"),
            }
        }
        assert!(matches!(
            parse_credentials("# nothing\n\n"),
            Err(SimError::NoCredentials)
        ));
    }
}
