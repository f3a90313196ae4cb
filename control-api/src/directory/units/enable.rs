//! Offline Disable mode: an Admin turns a unit's load off whatever its credit, and later
//! enables it again, with who and when recorded on the unit and in the audit log.
//!
//! The billing engine holds the mode (it must keep billing from switching the load back on),
//! so it is changed there first, durably, and the command goes out to the device. The
//! directory then records the status with its actor. Both steps are idempotent: if the
//! directory commit fails after the engine's, the same call again finds the engine already
//! in that mode, changes nothing there, and records the status.

use sunledger_billing::worker::Engine;

use super::super::audit::AuditAction;
use super::super::{Directory, DirectoryError};
use super::{ControlUnit, EnableStatus, UNITS, serial, unit_in};
use crate::roles::Caller;

impl Directory {
    /// Puts unit `serial` of the caller's organisation in `status` through `engine`; setting
    /// the status it already has records nothing.
    pub fn set_enable_status(
        &self,
        caller: &Caller,
        serial_raw: &str,
        status: EnableStatus,
        engine: &Engine,
    ) -> Result<ControlUnit, DirectoryError> {
        let serial = serial("serial", serial_raw)?;
        unit_in(&self.read()?.open_table(UNITS)?, &caller.org_id, serial)?;
        engine.set_offline_disabled(serial, status == EnableStatus::OfflineDisabled)?;
        self.change(&caller.org_id, &caller.member_id, |change| {
            let mut unit = unit_in(&change.txn.open_table(UNITS)?, change.org_id, serial)?;
            if unit.enable_status == status {
                return Ok(unit);
            }
            let before = std::mem::replace(&mut unit.enable_status, status);
            unit.status_changed = change.status_change()?;
            change.put_unit(&unit)?;
            change.record(
                AuditAction::UnitEnableStatusChanged,
                serial,
                format!("{}: {} → {}", unit.serial, before.name(), status.name()),
            )?;
            Ok(unit)
        })
    }
}
