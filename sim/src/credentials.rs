//! Credentials files: one device a line as `serial,secret[,command_key]`, `#` starts a
//! comment, blank lines are skipped. `command_key` is the owner's Ed25519 command-verification
//! key in hex (what the unit is flashed with); without it the device accepts any command. `sunledger sim --database` writes one after registering units, so later runs
//! against a running server can log in without the secrets (stored only hashed) being
//! recoverable from the database.

use std::collections::HashSet;

use sunledger_proto::topic::validate_serial;

use crate::device::DeviceCredentials;
use crate::error::SimError;

/// Parses a credentials file, refusing the first bad line with its one-based number.
pub fn parse_credentials(text: &str) -> Result<Vec<DeviceCredentials>, SimError> {
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
        let (Some(serial), Some(secret)) = (fields.next(), fields.next()) else {
            return Err(bad("expected `serial,secret[,command_key]`".into()));
        };
        let command_key = match fields.next() {
            None => None,
            Some(hex_key) => Some(verifying_key(hex_key).ok_or_else(|| {
                bad(format!(
                    "serial {serial:?}: command_key must be 64 hex digits of an Ed25519 key"
                ))
            })?),
        };
        validate_serial(serial).map_err(|error| bad(format!("serial {serial:?}: {error}")))?;
        if secret.is_empty() {
            return Err(bad(format!("serial {serial:?} has an empty secret")));
        }
        if fields.next().is_some() {
            return Err(bad(format!("serial {serial:?}: more than three fields")));
        }
        if !serials.insert(serial.to_owned()) {
            return Err(bad(format!("serial {serial:?} appears more than once")));
        }
        devices.push(DeviceCredentials {
            serial: serial.to_owned(),
            secret: secret.to_owned(),
            command_key,
        });
    }
    if devices.is_empty() {
        return Err(SimError::NoCredentials);
    }
    Ok(devices)
}

/// An Ed25519 verification key from its 64 hex digits, as the API shows it.
pub fn verifying_key(hex_key: &str) -> Option<ed25519_dalek::VerifyingKey> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(hex_key, &mut bytes).ok()?;
    ed25519_dalek::VerifyingKey::from_bytes(&bytes).ok()
}

/// The text of a credentials file for `devices`, with a header saying what it is.
pub fn format_credentials(devices: &[DeviceCredentials]) -> String {
    let mut text = String::from(
        "# sunledger sim credentials: serial,secret[,command_key] (MQTT client id/username, \
         password, the owner's command-verification key)\n",
    );
    for device in devices {
        text.push_str(&device.serial);
        text.push(',');
        text.push_str(&device.secret);
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

    #[test]
    fn good_lines_parse_and_comments_and_blanks_are_skipped() {
        let text = "# fleet\n\nSIM-000001,abc\n  SIM-000002 , def  # spare\n";
        let devices = parse_credentials(text).unwrap();
        let pairs: Vec<_> = devices
            .iter()
            .map(|d| (d.serial.as_str(), d.secret.as_str()))
            .collect();
        assert_eq!(pairs, [("SIM-000001", "abc"), ("SIM-000002", "def")]);
        assert_eq!(
            parse_credentials(&format_credentials(&devices)).unwrap(),
            devices
        );
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
        let line = format!("SIM-3,ghi,{}\n", hex::encode(key.as_bytes()));
        let keyed = parse_credentials(&line).unwrap();
        assert_eq!(keyed[0].command_key, Some(key));
        assert_eq!(
            format_credentials(&keyed).lines().nth(1),
            Some(line.trim_end())
        );
        let too_many = format!("SIM-3,ghi,{},x\n", hex::encode(key.as_bytes()));
        assert!(parse_credentials(&too_many).is_err());
    }

    #[test]
    fn bad_lines_are_refused_with_their_line_number() {
        let cases = [
            (
                "SIM-1,a\nSIM-2\n",
                2,
                "expected `serial,secret[,command_key]`",
            ),
            ("# c\nbad serial!,x\n", 2, "bad serial!"),
            ("SIM-1,\n", 1, "empty secret"),
            ("SIM-1,a,b\n", 1, "command_key must be 64 hex digits"),
            ("SIM-1,a,b,c\n", 1, "command_key must be 64 hex digits"),
            ("SIM-1,a\n\nSIM-1,b\n", 3, "more than once"),
            (",secret\n", 1, "serial \"\""),
        ];
        for (text, expected_line, expected_reason) in cases {
            match parse_credentials(text) {
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
