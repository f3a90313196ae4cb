//! Control units as an organisation knows them (Home CRM): serial, IMEI, entity id and the
//! enable status with who changed it last. The device side (secret, presence, load) lives in
//! the billing store and engine; this record is the organisation's claim on the serial.
//!
//! A serial is unique across the platform (it is the device's MQTT client id), so besides the
//! organisation-keyed record a global index maps each serial to its organisation. The index is
//! only ever asked "is this serial taken?", never "by whom?", so registering a serial another
//! organisation holds reveals nothing about that organisation.

mod device_keys;
mod enable;
mod keypad;
mod listing;
mod registration;

pub use device_keys::RotatedKey;
pub use keypad::{KeypadInput, TokenSent};
pub use listing::{UnitFilter, UnitPosition};

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use sunledger_billing::keypad::CommMode;
use sunledger_billing::openpaygo::TokenFormat;
use sunledger_proto::topic::SERIAL_BYTES_MAX;

use super::installations::UnitAssignment;
use super::{DirectoryError, decode};
use crate::validate::{self, FieldViolation};

/// (organisation id, serial) → [`ControlUnit`].
pub(crate) const UNITS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("api_units");
/// Serial → organisation id: one organisation per serial, platform-wide.
pub(crate) const UNIT_SERIALS: TableDefinition<&str, &str> =
    TableDefinition::new("api_unit_serials");

/// Whether an operator has taken a unit out of normal billing control.
///
/// Stored by variant position: add new statuses at the end only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EnableStatus {
    /// Billing decides the load: on while the customer has credit (or switch-off is off).
    Enabled,
    /// An Admin set Offline Disable mode: the load is off whatever the credit.
    OfflineDisabled,
}

impl EnableStatus {
    /// The status's name, as audit descriptions show it.
    pub fn name(self) -> &'static str {
        match self {
            EnableStatus::Enabled => "Enabled",
            EnableStatus::OfflineDisabled => "Offline Disabled",
        }
    }
}

/// Who last changed a unit's enable status, and when (shown on the unit, per the Home CRM).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChange {
    /// The team member who changed it.
    pub member_id: String,
    /// Their email at the time, kept so the unit still shows it after they leave.
    pub email: String,
    /// Unix milliseconds.
    pub at_ms: i64,
}

/// A control unit registered by one organisation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlUnit {
    /// The unit's unique serial, also its MQTT client id.
    pub serial: String,
    /// The organisation owning the unit, and the only one that can see it.
    pub org_id: String,
    /// 15-digit IMEI identifying the unit's modem on cellular networks.
    pub imei: String,
    /// The entity the unit belongs to (Smart Solar entity id); empty when not given.
    pub entity_id: String,
    /// Enabled, or Offline Disabled by an Admin.
    pub enable_status: EnableStatus,
    /// The last change of [`ControlUnit::enable_status`]; registration sets it first.
    pub status_changed: StatusChange,
    /// Unix milliseconds.
    pub registered_at_ms: i64,
    /// How the unit is reached: MQTT, keypad tokens, or both.
    pub comm_mode: CommMode,
    /// A keypad unit's token format (its key is in the billing store, sealed).
    pub token_format: Option<TokenFormat>,
    /// Whether the unit's messages are accepted without a MAC; fixed at registration (the
    /// billing store's unit record, which ingest reads, holds the same).
    pub development_mode: bool,
}

/// The unit `serial` of `org_id`, or [`DirectoryError::UnitNotFound`] (also for another
/// organisation's unit).
pub(crate) fn unit_in(
    table: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    org_id: &str,
    serial: &str,
) -> Result<ControlUnit, DirectoryError> {
    match table.get((org_id, serial))? {
        Some(stored) => decode(stored.value()),
        None => Err(DirectoryError::UnitNotFound(serial.to_owned())),
    }
}

/// Digits in an IMEI: 14 identifying digits and a Luhn check digit.
pub const IMEI_DIGITS: usize = 15;

/// A unit to register, as the request gave it (validated by [`Directory::register_unit`];
/// errors name these fields).
#[derive(Clone, Debug, Default)]
pub struct NewUnit {
    /// Field `serial`.
    pub serial: String,
    /// Field `imei`.
    pub imei: String,
    /// Field `entity_id`; empty when not given.
    pub entity_id: String,
    /// Field `comm_mode`.
    pub comm_mode: CommMode,
    /// Field `keypad`: required for keypad modes, refused for connected units.
    pub keypad: Option<KeypadInput>,
    /// Field `development_mode`: Admin only.
    pub development_mode: bool,
}

/// Corrections to a unit's identifiers; `None` keeps the current value.
#[derive(Clone, Debug, Default)]
pub struct UnitChanges {
    /// A new IMEI (field `imei`).
    pub imei: Option<String>,
    /// A new entity id (field `entity_id`); empty clears it.
    pub entity_id: Option<String>,
}

/// A unit with the customer who has it now, as lists show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldUnit {
    /// The unit.
    pub unit: ControlUnit,
    /// The active assignment (the current customer), if a customer has the unit.
    pub current: Option<UnitAssignment>,
}

/// A serial as units are named on the wire and in MQTT: `[A-Za-z0-9_.-]`, 1 to 64 bytes.
pub fn serial<'a>(field: &'static str, raw: &'a str) -> Result<&'a str, FieldViolation> {
    let value = raw.trim();
    sunledger_proto::topic::validate_serial(value)
        .map(|()| value)
        .map_err(|_| {
            FieldViolation::new(
                field,
                format!(
                    "1 to {SERIAL_BYTES_MAX} letters, digits, '_', '.' or '-' (it is the \
                     device's MQTT client id)"
                ),
            )
        })
}

/// An IMEI: exactly 15 digits whose last is the Luhn check digit of the others, so a
/// mistyped digit is caught when the unit is registered.
pub fn imei(field: &'static str, raw: &str) -> Result<String, FieldViolation> {
    let value = raw.trim();
    if value.len() != IMEI_DIGITS || !value.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(FieldViolation::new(field, "must be exactly 15 digits"));
    }
    match luhn_valid(value) {
        true => Ok(value.to_owned()),
        false => Err(FieldViolation::new(
            field,
            "check digit does not match (Luhn): a digit is mistyped",
        )),
    }
}

/// An optional identifier: empty, or a one-line text of at most
/// [`crate::validate::TEXT_BYTES_MAX`] bytes.
pub fn entity_id(field: &'static str, raw: &str) -> Result<String, FieldViolation> {
    match raw.trim().is_empty() {
        true => Ok(String::new()),
        false => validate::name(field, raw),
    }
}

/// Whether the ASCII digits `digits` end with their Luhn check digit: from the right, every
/// second digit is doubled (less 9 above 9), and the sum must be a multiple of 10.
fn luhn_valid(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .map(|byte| u32::from(byte - b'0'))
        .enumerate()
        .map(|(position, digit)| match position % 2 {
            1 if digit * 2 > 9 => digit * 2 - 9,
            1 => digit * 2,
            _ => digit,
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_identifiers_come_back_trimmed() {
        assert_eq!(serial("serial", " SL-0001.a_b ").unwrap(), "SL-0001.a_b");
        assert_eq!(
            imei("imei", " 490154203237518 ").unwrap(),
            "490154203237518"
        );
        assert_eq!(imei("imei", "356938035643809").unwrap(), "356938035643809");
        assert_eq!(entity_id("entity_id", "  ").unwrap(), "");
        assert_eq!(entity_id("entity_id", " ENT-7 ").unwrap(), "ENT-7");
    }

    #[test]
    fn each_invalid_identifier_is_refused_naming_its_field() {
        let long = "S".repeat(SERIAL_BYTES_MAX + 1);
        for bad in ["", "a/b", "a b", "+", long.as_str()] {
            assert_eq!(
                serial("serial", bad).unwrap_err().field,
                "serial",
                "{bad:?}"
            );
        }
        let cases = [
            ("49015420323751", "imei: must be exactly 15 digits"),
            ("4901542032375180", "imei: must be exactly 15 digits"),
            ("49015420323751x", "imei: must be exactly 15 digits"),
            (
                "490154203237519",
                "imei: check digit does not match (Luhn): a digit is mistyped",
            ),
            (
                "490154203273518",
                "imei: check digit does not match (Luhn): a digit is mistyped",
            ),
        ];
        for (raw, message) in cases {
            assert_eq!(imei("imei", raw).unwrap_err().to_string(), message);
        }
        assert_eq!(
            entity_id("entity_id", "a\nb").unwrap_err().field,
            "entity_id"
        );
    }
}
