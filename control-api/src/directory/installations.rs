//! Installations (a customer's projects: one control unit at one location on one payment
//! plan) and the history of which customer each unit was with.
//!
//! Tables, every key starting with the organisation id:
//! - `api_installations` (org, installation id) → [`Installation`], deleted ones included so
//!   a unit's history keeps pointing at them;
//! - `api_unit_assignments` (org, serial, start ms, installation id) → [`UnitAssignment`]: a
//!   unit's customers, oldest first; the one without an end is the current customer;
//! - `api_unit_installations` (org, serial) → installation id: the installation (partial or
//!   complete) holding the unit, so one unit is never in two installations;
//! - `api_customer_installations` (org, customer id, installation id): a contact's
//!   installations, to list them and to refuse deleting a contact who still has some.

use std::sync::Mutex;

use redb::{ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{Change, DirectoryError, decode, encode};

/// (organisation id, installation id) → [`Installation`].
pub(super) const INSTALLATIONS: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("api_installations");
/// (organisation id, serial, start ms, installation id) → [`UnitAssignment`].
pub(super) const UNIT_ASSIGNMENTS: TableDefinition<(&str, &str, i64, &str), &[u8]> =
    TableDefinition::new("api_unit_assignments");
/// (organisation id, serial) → id of the installation holding the unit.
pub(super) const UNIT_INSTALLATIONS: TableDefinition<(&str, &str), &str> =
    TableDefinition::new("api_unit_installations");
/// (organisation id, customer id, installation id) → nothing: a contact's installations.
pub(super) const CUSTOMER_INSTALLATIONS: TableDefinition<(&str, &str, &str), ()> =
    TableDefinition::new("api_customer_installations");

/// Creates the installation tables, so reads never meet a missing one.
pub(super) fn create_tables(txn: &WriteTransaction) -> Result<(), DirectoryError> {
    txn.open_table(INSTALLATIONS)?;
    txn.open_table(UNIT_ASSIGNMENTS)?;
    txn.open_table(UNIT_INSTALLATIONS)?;
    txn.open_table(CUSTOMER_INSTALLATIONS)?;
    Ok(())
}

/// Where a registration is: saved after its first step, completed, or deleted.
///
/// Stored by variant position: add new states at the end only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InstallationStatus {
    /// Only the initial registration (unit, contact, location) was saved; no account yet.
    Partial,
    /// Registered in full: the unit is assigned and its billing account is open.
    Complete,
    /// Deleted: kept only so the unit's customer history can still name it.
    Deleted,
}

/// A point on the map, in degrees (WGS 84).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Location {
    /// −90 to 90.
    pub latitude: f64,
    /// −180 to 180.
    pub longitude: f64,
}

/// The payment plan an installation is billed on, with the customer's own terms; copied into
/// the billing account when the registration completes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanAssignment {
    /// The organisation's plan.
    pub plan_id: String,
    /// Paid up-front: not credit, but counts toward the total system cost.
    pub down_payment: Decimal,
    /// Price of the system to the customer; `None` means the plan runs forever.
    pub total_system_cost: Option<Decimal>,
    /// Debt allowed before the load is switched off (≤ 0): the plan's default unless given.
    pub negative_charge_limit: Decimal,
    /// Whether falling below the limit switches the load off: the plan's default unless given.
    pub auto_switch_off: bool,
}

/// What was installed, for after-sales service.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemDetails {
    /// Solar panel capacity, watts peak.
    pub panel_capacity_w: u32,
    /// Battery capacity, watt-hours.
    pub battery_capacity_wh: u32,
    /// Battery chemistry or model, free text.
    pub battery_type: String,
    /// Appliances supplied or connected, free text.
    pub appliances: String,
    /// Anything else the technician noted.
    pub notes: String,
}

/// The household's demographics, recorded at registration for the organisation's reporting.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HouseholdDetails {
    /// People living in the household.
    pub members: u32,
    /// Of whom children.
    pub children: u32,
    /// The household's main occupation or source of income, free text.
    pub occupation: String,
    /// What the household used for light and power before, free text.
    pub previous_energy_source: String,
}

/// One customer's project: a unit at a location, billed on a plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Installation {
    /// `ins_…`.
    pub id: String,
    /// The organisation it belongs to.
    pub org_id: String,
    /// The contact it is assigned to; `None` after it was unassigned.
    pub customer_id: Option<String>,
    /// The control unit installed; may be given only when the registration completes.
    pub unit_serial: Option<String>,
    /// The plan and the customer's terms; set when the registration completes.
    pub plan: Option<PlanAssignment>,
    /// Where the system is installed.
    pub location: Location,
    /// Partial, complete or deleted.
    pub status: InstallationStatus,
    /// A partner organisation (a funder or customer group), free text; empty if none.
    pub partner_organisation: String,
    /// The member responsible for the installation; the registering member by default.
    pub technician_member_id: String,
    /// What was installed.
    pub system: SystemDetails,
    /// The household's demographics.
    pub household: HouseholdDetails,
    /// Unix milliseconds of the initial registration.
    pub created_at_ms: i64,
    /// Unix milliseconds of the completion of the registration.
    pub completed_at_ms: Option<i64>,
    /// Unix milliseconds of the deletion. For an installation deleted when complete, the
    /// instant the billing engine closed its account: with the unit's serial, the key of that
    /// closed account in the billing store, so the installation's ledger can still be read.
    pub deleted_at_ms: Option<i64>,
}

/// One period during which a unit was with one customer, through one installation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitAssignment {
    /// The customer who had the unit.
    pub customer_id: String,
    /// The installation through which they had it.
    pub installation_id: String,
    /// Unix milliseconds when the customer got the unit.
    pub start_ms: i64,
    /// Unix milliseconds when it stopped being theirs; `None` for the current customer.
    pub end_ms: Option<i64>,
}

/// The status's name, as errors and audit descriptions show it.
pub(crate) fn status_name(status: InstallationStatus) -> &'static str {
    match status {
        InstallationStatus::Partial => "partial",
        InstallationStatus::Complete => "complete",
        InstallationStatus::Deleted => "deleted",
    }
}

/// Refuses `installation` unless its status is one of `allowed`, telling what the call
/// `needed`.
pub(super) fn ensure_status(
    installation: &Installation,
    allowed: &[InstallationStatus],
    needed: &'static str,
) -> Result<(), DirectoryError> {
    match allowed.contains(&installation.status) {
        true => Ok(()),
        false => Err(DirectoryError::InstallationState {
            installation_id: installation.id.clone(),
            status: status_name(installation.status),
            needed,
        }),
    }
}

/// Serialises this process's installation changes. A completion checks its records in a read
/// transaction, then calls the billing engine, then writes (see [`super::registration`]):
/// holding this lock throughout means no other installation change can slip in between and
/// invalidate what was checked.
static INSTALLATION_CHANGES: Mutex<()> = Mutex::new(());

/// Runs `change` while no other installation change of this process runs.
pub(super) fn serialised<T>(change: impl FnOnce() -> T) -> T {
    let _guard = INSTALLATION_CHANGES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    change()
}

/// Installation `installation_id` of `org_id` (deleted ones included), or
/// [`DirectoryError::InstallationNotFound`].
pub(crate) fn installation_in(
    table: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    org_id: &str,
    installation_id: &str,
) -> Result<Installation, DirectoryError> {
    match table.get((org_id, installation_id))? {
        Some(stored) => decode(stored.value()),
        None => Err(DirectoryError::InstallationNotFound(
            installation_id.to_owned(),
        )),
    }
}

/// Every customer unit `serial` of `org_id` was assigned to, oldest first; the current one
/// (if any) is last, without an end.
pub(crate) fn unit_history(
    txn: &ReadTransaction,
    org_id: &str,
    serial: &str,
) -> Result<Vec<UnitAssignment>, DirectoryError> {
    assignments_of(&txn.open_table(UNIT_ASSIGNMENTS)?, org_id, serial)
}

/// The unit's assignments, oldest first.
fn assignments_of(
    table: &impl ReadableTable<(&'static str, &'static str, i64, &'static str), &'static [u8]>,
    org_id: &str,
    serial: &str,
) -> Result<Vec<UnitAssignment>, DirectoryError> {
    table
        .range((org_id, serial, i64::MIN, "")..=(org_id, serial, i64::MAX, "\u{10FFFF}"))?
        .map(|entry| decode(entry?.1.value()))
        .collect()
}

/// The id of the installation holding unit `serial` of `org_id`, if any.
pub(crate) fn unit_holder(
    table: &impl ReadableTable<(&'static str, &'static str), &'static str>,
    org_id: &str,
    serial: &str,
) -> Result<Option<String>, DirectoryError> {
    Ok(table
        .get((org_id, serial))?
        .map(|holder| holder.value().to_owned()))
}

impl Change<'_> {
    /// Stores `installation` (new or changed) as it is now.
    pub(super) fn put_installation(
        &self,
        installation: &Installation,
    ) -> Result<(), DirectoryError> {
        self.txn.open_table(INSTALLATIONS)?.insert(
            (self.org_id, installation.id.as_str()),
            encode(installation)?.as_slice(),
        )?;
        Ok(())
    }

    /// Makes `installation_id` the holder of unit `serial`, refusing a unit another
    /// installation holds.
    pub(super) fn hold_unit(
        &self,
        serial: &str,
        installation_id: &str,
    ) -> Result<(), DirectoryError> {
        let mut holders = self.txn.open_table(UNIT_INSTALLATIONS)?;
        match unit_holder(&holders, self.org_id, serial)? {
            Some(holder) if holder != installation_id => Err(DirectoryError::UnitInUse {
                serial: serial.to_owned(),
                installation_id: holder,
            }),
            _ => {
                holders.insert((self.org_id, serial), installation_id)?;
                Ok(())
            }
        }
    }

    /// Frees unit `serial` from whatever installation held it.
    pub(super) fn release_unit(&self, serial: &str) -> Result<(), DirectoryError> {
        self.txn
            .open_table(UNIT_INSTALLATIONS)?
            .remove((self.org_id, serial))?;
        Ok(())
    }

    /// Links or unlinks `installation_id` to contact `customer_id`.
    pub(super) fn link_customer(
        &self,
        customer_id: &str,
        installation_id: &str,
        linked: bool,
    ) -> Result<(), DirectoryError> {
        let mut links = self.txn.open_table(CUSTOMER_INSTALLATIONS)?;
        let key = (self.org_id, customer_id, installation_id);
        match linked {
            true => links.insert(key, ())?,
            false => links.remove(key)?,
        };
        Ok(())
    }

    /// Gives unit `serial` to `customer_id` through `installation_id` from now on, ending the
    /// current customer's possession first. A possession that would last zero milliseconds
    /// is replaced rather than kept, so history rows never share a key.
    pub(super) fn assign_unit(
        &self,
        serial: &str,
        customer_id: &str,
        installation_id: &str,
    ) -> Result<(), DirectoryError> {
        self.end_unit_assignment(serial)?;
        let assignment = UnitAssignment {
            customer_id: customer_id.to_owned(),
            installation_id: installation_id.to_owned(),
            start_ms: self.at_ms,
            end_ms: None,
        };
        self.txn.open_table(UNIT_ASSIGNMENTS)?.insert(
            (self.org_id, serial, self.at_ms, installation_id),
            encode(&assignment)?.as_slice(),
        )?;
        Ok(())
    }

    /// Ends the current customer's possession of unit `serial`, if someone has it.
    pub(super) fn end_unit_assignment(&self, serial: &str) -> Result<(), DirectoryError> {
        let mut table = self.txn.open_table(UNIT_ASSIGNMENTS)?;
        let current = assignments_of(&table, self.org_id, serial)?
            .into_iter()
            .rfind(|assignment| assignment.end_ms.is_none());
        let Some(mut current) = current else {
            return Ok(());
        };
        let key = (
            self.org_id,
            serial,
            current.start_ms,
            current.installation_id.as_str(),
        );
        if current.start_ms == self.at_ms {
            table.remove(key)?;
            return Ok(());
        }
        current.end_ms = Some(self.at_ms);
        table.insert(key, encode(&current)?.as_slice())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::{TimeZone, Utc};
    use sunledger_billing::clock::ManualClock;
    use sunledger_billing::store::Store;

    use super::*;
    use crate::directory::Directory;

    fn directory_at(dir: &tempfile::TempDir, clock: Arc<ManualClock>) -> Directory {
        let store = Arc::new(Store::open(&dir.path().join("sunledger.redb")).unwrap());
        Directory::open(store, clock).unwrap()
    }

    fn history(directory: &Directory) -> Vec<(String, i64, Option<i64>)> {
        unit_history(&directory.read().unwrap(), "org_a", "SL-1")
            .unwrap()
            .into_iter()
            .map(|a| (a.customer_id, a.start_ms, a.end_ms))
            .collect()
    }

    #[test]
    fn each_assignment_ends_the_previous_one_and_a_zero_length_one_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(Utc.timestamp_millis_opt(1_000).unwrap()));
        let directory = directory_at(&dir, clock.clone());
        let assign = |customer_id: &str| {
            directory
                .change("org_a", "mem_a", |change| {
                    change.assign_unit("SL-1", customer_id, "ins_1")
                })
                .unwrap()
        };
        assign("cus_a");
        clock.set(Utc.timestamp_millis_opt(2_000).unwrap());
        assign("cus_b");
        assign("cus_c");
        let expected = vec![
            ("cus_a".to_owned(), 1_000, Some(2_000)),
            ("cus_c".to_owned(), 2_000, None),
        ];
        assert_eq!(history(&directory), expected);
        clock.set(Utc.timestamp_millis_opt(3_000).unwrap());
        directory
            .change("org_a", "mem_a", |change| {
                change.end_unit_assignment("SL-1")
            })
            .unwrap();
        assert_eq!(history(&directory)[1].2, Some(3_000));
        let other = unit_history(&directory.read().unwrap(), "org_b", "SL-1").unwrap();
        assert!(
            other.is_empty(),
            "another organisation's history is separate"
        );
    }
}
