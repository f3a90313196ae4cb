//! Device message authenticity: the MAC a unit puts on what it sends and the signature the
//! platform puts on what it commands.
//!
//! The customer holds the device, so anyone may pull its MQTT credentials out of flash, and
//! rumqttd has no per-topic ACL behind an external cluster. What a message says is therefore
//! trusted only if it proves its origin:
//!
//! - **Telemetry and acks** carry `mac` (field 15): HMAC-SHA256 under the unit's 16-byte device
//!   key, truncated to [`MAC_BYTES`], over the UTF-8 serial followed by the protobuf encoding
//!   of the message with `mac` unset. Binding the serial means one unit's key cannot vouch for
//!   another unit's topic.
//! - **Commands** carry `sig` (field 15): Ed25519 by the organisation's command-signing key
//!   over the serial followed by the encoding with `sig` unset. A device holds only the public
//!   key, so a leaked device cannot forge a command for any unit.
//!
//! - **The MQTT password** is derived from the device key ([`mqtt_password`]), so a firmware
//!   holds one secret and the platform stores neither in a form usable on the wire.
//!
//! Pure functions, no I/O: the platform, the simulator and Rust firmware share them.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use hmac::{Hmac, Mac};
use prost::Message;
use sha2::Sha256;

use crate::device::{Command, CommandAck, Telemetry};

/// Bytes of a message MAC: the first half of the HMAC-SHA256 output.
pub const MAC_BYTES: usize = 16;

/// Bytes of a device key (128 random bits).
pub const DEVICE_KEY_BYTES: usize = 16;

/// A unit's device key: what the MAC is computed under.
pub type DeviceKey = [u8; DEVICE_KEY_BYTES];

/// What the MQTT password is derived under: the HMAC message that names its purpose.
const MQTT_PASSWORD_LABEL: &[u8] = b"sunledger/v1 mqtt password";

/// The MQTT password of the unit holding `key`: lowercase hex of the first 16 bytes of
/// HMAC-SHA256(key, "sunledger/v1 mqtt password"). One primitive (HMAC-SHA256) covers both
/// what a firmware sends at CONNECT and the MAC on its messages.
pub fn mqtt_password(key: &DeviceKey) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(MQTT_PASSWORD_LABEL);
    hex::encode(&mac.finalize().into_bytes()[..16])
}

/// A device message that carries a MAC in its field 15.
pub trait Authenticated: Message + Clone + Sized {
    /// The MAC as received (empty if none was sent).
    fn mac(&self) -> &[u8];
    /// Sets the MAC.
    fn set_mac(&mut self, mac: Vec<u8>);
}

impl Authenticated for Telemetry {
    fn mac(&self) -> &[u8] {
        &self.mac
    }
    fn set_mac(&mut self, mac: Vec<u8>) {
        self.mac = mac;
    }
}

impl Authenticated for CommandAck {
    fn mac(&self) -> &[u8] {
        &self.mac
    }
    fn set_mac(&mut self, mac: Vec<u8>) {
        self.mac = mac;
    }
}

/// The bytes a MAC or signature covers: the serial, then the message encoded without it.
fn covered<M: Message>(serial: &str, unsigned: &M) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(serial.len() + unsigned.encoded_len());
    bytes.extend_from_slice(serial.as_bytes());
    unsigned.encode(&mut bytes).expect("a Vec grows as needed");
    bytes
}

fn hmac(key: &DeviceKey, serial: &str, message: &impl Authenticated) -> Hmac<Sha256> {
    let mut unsigned = message.clone();
    unsigned.set_mac(Vec::new());
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(&covered(serial, &unsigned));
    mac
}

/// The MAC `serial`'s device puts on `message` (whatever `message.mac` holds is ignored).
pub fn mac(key: &DeviceKey, serial: &str, message: &impl Authenticated) -> [u8; MAC_BYTES] {
    let full = hmac(key, serial, message).finalize().into_bytes();
    let mut truncated = [0u8; MAC_BYTES];
    truncated.copy_from_slice(&full[..MAC_BYTES]);
    truncated
}

/// Puts the MAC on `message`, as a device does before publishing.
pub fn seal<M: Authenticated>(key: &DeviceKey, serial: &str, mut message: M) -> M {
    let mac = mac(key, serial, &message);
    message.set_mac(mac.to_vec());
    message
}

/// Whether `message` carries a valid MAC from `serial`'s device, compared in constant time.
pub fn verify(key: &DeviceKey, serial: &str, message: &impl Authenticated) -> bool {
    message.mac().len() == MAC_BYTES
        && hmac(key, serial, message)
            .verify_truncated_left(message.mac())
            .is_ok()
}

/// Signs `command` for `serial` with the organisation's key, replacing any `sig`.
pub fn sign_command(key: &SigningKey, serial: &str, mut command: Command) -> Command {
    command.sig = Vec::new();
    let signature = key.sign(&covered(serial, &command));
    command.sig = signature.to_bytes().to_vec();
    command
}

/// Whether `command` was signed for `serial` by the holder of `key`'s private half.
pub fn verify_command(key: &VerifyingKey, serial: &str, command: &Command) -> bool {
    let Ok(signature) = Signature::from_slice(&command.sig) else {
        return false;
    };
    let mut unsigned = command.clone();
    unsigned.sig = Vec::new();
    key.verify(&covered(serial, &unsigned), &signature).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::{LoadState, Reason};

    /// The README's worked example: fixed key, fixed reading, expected bytes.
    const EXAMPLE_KEY: DeviceKey = *b"0123456789abcdef";
    const EXAMPLE_SERIAL: &str = "SL-000042";

    fn example_reading() -> Telemetry {
        Telemetry {
            seq: 7,
            ts: 1_780_000_000,
            load_wh: 1234,
            usb_wh: 56,
            boot: 3,
            load_on: true,
            ..Telemetry::default()
        }
    }

    #[test]
    fn the_readme_worked_example_gives_the_documented_bytes() {
        let reading = example_reading();
        assert_eq!(
            hex::encode(covered(EXAMPLE_SERIAL, &reading)),
            "534c2d30303030343208071080cae2d00618d209203828034001"
        );
        let sealed = seal(&EXAMPLE_KEY, EXAMPLE_SERIAL, reading);
        assert_eq!(hex::encode(&sealed.mac), "09ccae74a90e02db223bcc58d5a74e12");
        assert!(verify(&EXAMPLE_KEY, EXAMPLE_SERIAL, &sealed));
    }

    #[test]
    fn the_readme_worked_example_password_is_derived_from_the_key() {
        assert_eq!(
            mqtt_password(&EXAMPLE_KEY),
            "14fe6a9c5be074ff600f32a582f209af"
        );
        assert_ne!(
            mqtt_password(b"0123456789abcdeF"),
            mqtt_password(&EXAMPLE_KEY)
        );
    }

    /// The README's worked example of a signed command: the signing key's seed is 32 bytes
    /// of 7 (Ed25519 signatures are deterministic, so the bytes are fixed).
    #[test]
    fn the_readme_worked_example_command_signature_gives_the_documented_bytes() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let command = example_command();
        assert_eq!(
            hex::encode(key.verifying_key().as_bytes()),
            "ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c"
        );
        assert_eq!(
            hex::encode(covered(EXAMPLE_SERIAL, &command)),
            "534c2d3030303034320809100118022080cae2d006"
        );
        let signed = sign_command(&key, EXAMPLE_SERIAL, command);
        assert_eq!(
            hex::encode(&signed.sig),
            "c50d8d853ac1363e865f629d8bd28dccad0743d46ee6a23a72699eff6171fb3dfc0a3eee63a0be244a195760d369dbdc9881f6cfa6089c78b13c8d66075c3102"
        );
        assert!(verify_command(
            &key.verifying_key(),
            EXAMPLE_SERIAL,
            &signed
        ));
    }

    fn example_command() -> Command {
        Command {
            cmd_id: 9,
            load: LoadState::On as i32,
            reason: Reason::CreditRestored as i32,
            ts: 1_780_000_000,
            ..Command::default()
        }
    }

    #[test]
    fn a_mac_binds_key_serial_and_every_field() {
        let sealed = seal(&EXAMPLE_KEY, EXAMPLE_SERIAL, example_reading());
        assert!(
            !verify(b"0123456789abcdeF", EXAMPLE_SERIAL, &sealed),
            "other key"
        );
        assert!(
            !verify(&EXAMPLE_KEY, "SL-000043", &sealed),
            "other unit's topic"
        );
        let mut changed = sealed.clone();
        changed.load_wh -= 1;
        assert!(
            !verify(&EXAMPLE_KEY, EXAMPLE_SERIAL, &changed),
            "changed reading"
        );
        let mut cut = sealed.clone();
        cut.mac.truncate(8);
        assert!(!verify(&EXAMPLE_KEY, EXAMPLE_SERIAL, &cut), "short MAC");
        assert!(
            !verify(&EXAMPLE_KEY, EXAMPLE_SERIAL, &example_reading()),
            "no MAC"
        );
        let ack = seal(
            &EXAMPLE_KEY,
            EXAMPLE_SERIAL,
            CommandAck {
                cmd_id: 3,
                load: LoadState::Off as i32,
                ..CommandAck::default()
            },
        );
        assert!(verify(&EXAMPLE_KEY, EXAMPLE_SERIAL, &ack));
    }

    #[test]
    fn a_command_verifies_only_for_its_unit_unchanged_under_the_organisation_key() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let signed = sign_command(&key, EXAMPLE_SERIAL, example_command());
        let public = key.verifying_key();
        assert!(verify_command(&public, EXAMPLE_SERIAL, &signed));
        assert!(
            !verify_command(&public, "SL-000043", &signed),
            "replayed to another unit"
        );
        let mut forged = signed.clone();
        forged.load = LoadState::Off as i32;
        assert!(
            !verify_command(&public, EXAMPLE_SERIAL, &forged),
            "changed state"
        );
        let stranger = SigningKey::from_bytes(&[8u8; 32]).verifying_key();
        assert!(
            !verify_command(&stranger, EXAMPLE_SERIAL, &signed),
            "other organisation"
        );
        let mut unsigned = signed;
        unsigned.sig.clear();
        assert!(!verify_command(&public, EXAMPLE_SERIAL, &unsigned));
    }

    proptest::proptest! {
        #[test]
        fn sealed_readings_verify_and_any_bit_flip_is_caught(
            key in proptest::prelude::any::<[u8; 16]>(),
            seq in 0u64..1_000_000,
            load_wh in proptest::prelude::any::<u64>(),
            flip in 0usize..(16 * 8),
        ) {
            let reading = Telemetry { seq, load_wh, boot: 1, ..Telemetry::default() };
            let sealed = seal(&key, EXAMPLE_SERIAL, reading);
            proptest::prop_assert!(verify(&key, EXAMPLE_SERIAL, &sealed));
            let mut tampered = sealed;
            tampered.mac[flip / 8] ^= 1 << (flip % 8);
            proptest::prop_assert!(!verify(&key, EXAMPLE_SERIAL, &tampered));
        }
    }
}
