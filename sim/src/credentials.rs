//! Credentials files: one device a line as `serial,secret`, `#` starts a comment, blank lines
//! are skipped. `sunledger sim --database` writes one after registering units, so later runs
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
        let Some((serial, secret)) = content.split_once(',') else {
            return Err(bad("expected `serial,secret`".into()));
        };
        let (serial, secret) = (serial.trim(), secret.trim());
        validate_serial(serial).map_err(|error| bad(format!("serial {serial:?}: {error}")))?;
        if secret.is_empty() {
            return Err(bad(format!("serial {serial:?} has an empty secret")));
        }
        if secret.contains(',') {
            return Err(bad(format!("serial {serial:?}: more than two fields")));
        }
        if !serials.insert(serial.to_owned()) {
            return Err(bad(format!("serial {serial:?} appears more than once")));
        }
        devices.push(DeviceCredentials {
            serial: serial.to_owned(),
            secret: secret.to_owned(),
        });
    }
    if devices.is_empty() {
        return Err(SimError::NoCredentials);
    }
    Ok(devices)
}

/// The text of a credentials file for `devices`, with a header saying what it is.
pub fn format_credentials(devices: &[DeviceCredentials]) -> String {
    let mut text = String::from(
        "# sunledger sim credentials: serial,secret (MQTT client id/username, password)\n",
    );
    for device in devices {
        text.push_str(&device.serial);
        text.push(',');
        text.push_str(&device.secret);
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
    }

    #[test]
    fn bad_lines_are_refused_with_their_line_number() {
        let cases = [
            ("SIM-1,a\nSIM-2\n", 2, "expected `serial,secret`"),
            ("# c\nbad serial!,x\n", 2, "bad serial!"),
            ("SIM-1,\n", 1, "empty secret"),
            ("SIM-1,a,b\n", 1, "more than two fields"),
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
