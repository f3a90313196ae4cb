//! Rotating a unit's device key: an Admin issues a new key (the old one keeps working for a
//! grace period while the unit is re-flashed), recorded in the audit log.

use sunledger_billing::units::{DeviceKey, UnitDirectory};

use super::super::audit::AuditAction;
use super::super::{Directory, DirectoryError};
use super::{UNITS, serial, unit_in};
use crate::roles::Caller;
use crate::validate;

/// A rotated key, as returned once to the Admin.
#[derive(Debug)]
pub struct RotatedKey {
    /// The new key.
    pub key: DeviceKey,
    /// When the old key stops working, unix milliseconds; `None` if it stopped at once.
    pub previous_until_ms: Option<i64>,
}

impl Directory {
    /// Issues a new device key for connected unit `serial` of the caller's organisation,
    /// keeping the old one valid for `grace_seconds`, and updates the in-memory credential
    /// check once committed.
    pub fn rotate_device_key(
        &self,
        caller: &Caller,
        serial_raw: &str,
        grace_seconds: i64,
        credentials: &UnitDirectory,
    ) -> Result<RotatedKey, DirectoryError> {
        let serial = serial("serial", serial_raw)?;
        let grace_seconds = validate::grace_seconds("grace_seconds", grace_seconds)?;
        let now_ms = self.clock.now().timestamp_millis();
        let (record, key) = self.change(&caller.org_id, &caller.member_id, |change| {
            let unit = unit_in(&change.txn.open_table(UNITS)?, change.org_id, serial)?;
            if !unit.comm_mode.uses_mqtt() {
                return Err(DirectoryError::NotConnected(serial.to_owned()));
            }
            let rotated = self.store.rotate_device_key_in(
                &change.txn,
                serial,
                now_ms,
                grace_seconds * 1000,
            )?;
            change.record(
                AuditAction::UnitDeviceKeyRotated,
                serial,
                format!(
                    "new device key for {serial}; the old one works for {grace_seconds} s more"
                ),
            )?;
            Ok(rotated)
        })?;
        credentials.upsert(&record);
        Ok(RotatedKey {
            key,
            previous_until_ms: record.previous.map(|previous| previous.until_ms),
        })
    }
}
