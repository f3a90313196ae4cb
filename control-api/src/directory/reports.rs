//! The directory's side of the dashboard: customers by approval status, partial
//! registrations, and registered units no installation holds, counted in one read
//! transaction so the numbers agree with each other. The device and billing side (online,
//! switched off, at risk) comes from the billing engine.

use super::approval::ApprovalStatus;
use super::customers::{CUSTOMERS, Customer};
use super::installations::{INSTALLATIONS, Installation, InstallationStatus, UNIT_INSTALLATIONS};
use super::org_records::org_records;
use super::units::{ControlUnit, UNITS};
use super::{Directory, DirectoryError};

/// What the directory contributes to an organisation's dashboard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectoryCounts {
    /// Customers in each approval status, every status listed in workflow order.
    pub customers_by_status: Vec<(ApprovalStatus, u64)>,
    /// Registrations saved after their initial step only.
    pub partial_registrations: u64,
    /// Registered units that no installation (partial or complete) holds.
    pub units_without_installation: u64,
}

impl Directory {
    /// The dashboard counts of `org_id`.
    pub fn dashboard_counts(&self, org_id: &str) -> Result<DirectoryCounts, DirectoryError> {
        let txn = self.read()?;
        let mut customers_by_status: Vec<(ApprovalStatus, u64)> = ApprovalStatus::ALL
            .iter()
            .map(|status| (*status, 0))
            .collect();
        for customer in org_records::<Customer>(&txn.open_table(CUSTOMERS)?, org_id, None)? {
            let status = customer?.approval.status;
            if let Some((_, count)) = customers_by_status.iter_mut().find(|(s, _)| *s == status) {
                *count += 1;
            }
        }
        let mut partial_registrations = 0;
        for installation in
            org_records::<Installation>(&txn.open_table(INSTALLATIONS)?, org_id, None)?
        {
            if installation?.status == InstallationStatus::Partial {
                partial_registrations += 1;
            }
        }
        let holders = txn.open_table(UNIT_INSTALLATIONS)?;
        let mut units_without_installation = 0;
        for unit in org_records::<ControlUnit>(&txn.open_table(UNITS)?, org_id, None)? {
            if holders.get((org_id, unit?.serial.as_str()))?.is_none() {
                units_without_installation += 1;
            }
        }
        Ok(DirectoryCounts {
            customers_by_status,
            partial_registrations,
            units_without_installation,
        })
    }
}
