//! Registering a control unit and correcting its identifiers.
//!
//! Registration writes, in one transaction of the platform's one redb file, the billing
//! store's unit record (secret hash, what the broker's credential check reads; it alone
//! decides whether the serial is free platform-wide, units registered with
//! `sunledger unit register` included), the directory's claim of the serial for the
//! organisation, and the audit event: all of them or none. Only after the commit is the unit
//! added to the broker's in-memory credential check and its secret returned.

use sunledger_billing::keypad::CommMode;
use sunledger_billing::store::StoreError;
use sunledger_billing::units::{DeviceKey, UnitDirectory};

use super::super::audit::AuditAction;
use super::super::records::{MEMBERS, member_in};
use super::super::{Change, Directory, DirectoryError, encode};
use super::keypad::keypad_setup;
use super::{
    ControlUnit, EnableStatus, NewUnit, StatusChange, UNIT_SERIALS, UNITS, UnitChanges, entity_id,
    imei, serial, unit_in,
};
use crate::roles::Caller;

impl Directory {
    /// Registers a unit in the caller's organisation, lets its device connect, and returns
    /// the unit with its device key (the only time the key is seen). A keypad unit's
    /// OpenPAYGO key is sealed into the billing store in the same transaction. Development
    /// mode (messages accepted without a MAC) is named in the audit event.
    pub fn register_unit(
        &self,
        caller: &Caller,
        new: &NewUnit,
        credentials: &UnitDirectory,
    ) -> Result<(ControlUnit, DeviceKey), DirectoryError> {
        let serial = serial("serial", &new.serial)?;
        // A keypad-only unit has no modem, so no IMEI.
        let imei = match (new.comm_mode, new.imei.trim().is_empty()) {
            (CommMode::Keypad, true) => String::new(),
            _ => imei("imei", &new.imei)?,
        };
        let keypad = keypad_setup(new.comm_mode, new.keypad.as_ref())?;
        let entity_id = entity_id("entity_id", &new.entity_id)?;
        if self
            .read()?
            .open_table(UNIT_SERIALS)?
            .get(serial)?
            .is_some()
        {
            return Err(DirectoryError::SerialTaken(serial.to_owned()));
        }
        let now_ms = self.clock.now().timestamp_millis();
        let (unit, record, secret) = self.change(&caller.org_id, &caller.member_id, |change| {
            let registered = self.store.register_unit_in(
                &change.txn,
                serial,
                now_ms,
                change.org_id,
                new.development_mode,
            );
            let (record, secret) = match registered {
                Err(StoreError::UnitExists(_)) => {
                    return Err(DirectoryError::SerialTaken(serial.to_owned()));
                }
                registered => registered?,
            };
            if let Some(setup) = &keypad {
                self.store.put_keypad_in(&change.txn, serial, setup)?;
            }
            let unit = ControlUnit {
                serial: serial.to_owned(),
                org_id: change.org_id.to_owned(),
                imei,
                entity_id,
                enable_status: EnableStatus::Enabled,
                status_changed: change.status_change()?,
                registered_at_ms: record.registered_at_ms,
                comm_mode: new.comm_mode,
                token_format: keypad.as_ref().map(|setup| setup.format),
                development_mode: new.development_mode,
            };
            change.claim_serial(serial)?;
            change.put_unit(&unit)?;
            let mode = match new.development_mode {
                true => " in development mode: its messages are accepted without a MAC",
                false => "",
            };
            change.record(
                AuditAction::UnitRegistered,
                serial,
                format!("registered unit {serial} (IMEI {}){mode}", unit.imei),
            )?;
            Ok((unit, record, secret))
        })?;
        credentials.upsert(&record);
        metrics::gauge!("sunledger_units_registered").set(credentials.len() as f64);
        Ok((unit, secret))
    }

    /// Corrects the IMEI or entity id of unit `serial` of the caller's organisation. Values
    /// equal to the current ones change nothing and record nothing.
    pub fn update_unit(
        &self,
        caller: &Caller,
        serial_raw: &str,
        changes: &UnitChanges,
    ) -> Result<ControlUnit, DirectoryError> {
        let serial = serial("serial", serial_raw)?;
        let new_imei = changes
            .imei
            .as_deref()
            .map(|raw| imei("imei", raw))
            .transpose()?;
        let new_entity_id = changes
            .entity_id
            .as_deref()
            .map(|raw| entity_id("entity_id", raw))
            .transpose()?;
        self.change(&caller.org_id, &caller.member_id, |change| {
            let mut unit = unit_in(&change.txn.open_table(UNITS)?, change.org_id, serial)?;
            let mut described = Vec::new();
            if let Some(imei) = new_imei.filter(|imei| *imei != unit.imei) {
                described.push(format!("IMEI {} → {imei}", unit.imei));
                unit.imei = imei;
            }
            if let Some(entity) = new_entity_id.filter(|entity| *entity != unit.entity_id) {
                described.push(format!("entity id {:?} → {entity:?}", unit.entity_id));
                unit.entity_id = entity;
            }
            if described.is_empty() {
                return Ok(unit);
            }
            change.put_unit(&unit)?;
            change.record(AuditAction::UnitUpdated, serial, described.join("; "))?;
            Ok(unit)
        })
    }
}

impl Change<'_> {
    /// Stores `unit` (new or changed) as it is now.
    pub(super) fn put_unit(&self, unit: &ControlUnit) -> Result<(), DirectoryError> {
        self.txn.open_table(UNITS)?.insert(
            (self.org_id, unit.serial.as_str()),
            encode(unit)?.as_slice(),
        )?;
        Ok(())
    }

    /// The record of this change's actor changing a unit's enable status now.
    pub(super) fn status_change(&self) -> Result<StatusChange, DirectoryError> {
        let actor = member_in(&self.txn.open_table(MEMBERS)?, self.org_id, self.actor_id)?;
        Ok(StatusChange {
            member_id: actor.id,
            email: actor.email,
            at_ms: self.at_ms,
        })
    }

    /// Claims `serial` for this change's organisation, platform-wide.
    fn claim_serial(&self, serial: &str) -> Result<(), DirectoryError> {
        let mut serials = self.txn.open_table(UNIT_SERIALS)?;
        if serials.insert(serial, self.org_id)?.is_some() {
            return Err(DirectoryError::SerialTaken(serial.to_owned()));
        }
        Ok(())
    }
}
