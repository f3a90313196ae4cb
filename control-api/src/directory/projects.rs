//! A contact's installations (OpenSolar's projects) after registration: reading and listing
//! them, editing their details and account terms, assigning them to another existing
//! contact, unassigning and deleting them. Moving a complete installation between contacts
//! moves its unit too, which the unit's customer history records.
//!
//! Account terms (negative charge limit, automatic switch-off, down-payment and total system
//! cost) live in the billing engine; an edit of them follows the order of
//! [`super::registration`]: check in a read transaction, change the engine, then write the
//! directory, all under [`super::installations::serialised`]. Should the engine refuse the
//! second of two term changes, the directory still records the first, so it never disagrees
//! with the engine.
//!
//! Deleting a complete installation closes its account in the engine in the same order, so
//! its unit can be billed for a new installation; [`super::registration`] explains what a
//! failure between the two writes leaves behind.

use std::ops::Bound;

use rust_decimal::Decimal;
use sunledger_billing::account_record::{AccountChange, AccountRecord, ClosedAccount};
use sunledger_billing::engine::EngineError;

use super::audit::AuditAction;
use super::customer_fields;
use super::customers::{CUSTOMERS, customer_in};
use super::installations::{
    CUSTOMER_INSTALLATIONS, HouseholdDetails, INSTALLATIONS, Installation, InstallationStatus,
    Location, PlanAssignment, SystemDetails, ensure_status, installation_in, serialised,
};
use super::records::{MEMBERS, member_in};
use super::{Change, Directory, DirectoryError};
use crate::amount::{self, Sign};
use crate::pagination::{Page, PageRequest};
use crate::roles::Caller;
use crate::validate::{self, FieldViolation};

/// Changes to an installation as the request gave them; `None` keeps the current value.
#[derive(Clone, Debug, Default)]
pub struct InstallationChanges {
    /// Field `installation_id`.
    pub installation_id: String,
    /// Fields `latitude` and `longitude`.
    pub location: Option<(f64, f64)>,
    /// Field `partner_organisation`.
    pub partner_organisation: Option<String>,
    /// Field `technician_member_id`.
    pub technician_member_id: Option<String>,
    /// Field `system`, replaced whole.
    pub system: Option<SystemDetails>,
    /// Field `household`, replaced whole.
    pub household: Option<HouseholdDetails>,
    /// Field `negative_charge_limit` (complete installations only).
    pub negative_charge_limit: Option<String>,
    /// Field `auto_switch_off` (complete installations only).
    pub auto_switch_off: Option<bool>,
    /// Field `down_payment` (complete installations only).
    pub down_payment: Option<String>,
    /// Field `total_system_cost` (complete installations only); empty means the plan runs
    /// forever.
    pub total_system_cost: Option<String>,
}

/// [`InstallationChanges`] whose fields passed validation.
struct ValidEdits<'a> {
    installation_id: &'a str,
    location: Option<Location>,
    partner_organisation: Option<String>,
    technician_member_id: Option<&'a str>,
    system: Option<SystemDetails>,
    household: Option<HouseholdDetails>,
    account: Vec<AccountChange>,
    sale_terms: SaleTermsEdit,
}

/// A change of the down-payment, the total system cost or both. The engine takes both at
/// once, so the one left out is filled in from the installation's current terms once they
/// have been read.
#[derive(Clone, Copy, Debug, Default)]
struct SaleTermsEdit {
    down_payment: Option<Decimal>,
    /// `Some(None)` makes the plan run forever.
    total_system_cost: Option<Option<Decimal>>,
}

impl SaleTermsEdit {
    fn is_empty(&self) -> bool {
        self.down_payment.is_none() && self.total_system_cost.is_none()
    }

    /// The engine's change for this edit of `current`, if it edits anything; a down-payment
    /// that would exceed the total system cost is refused as the request's mistake.
    fn resolve(&self, current: &PlanAssignment) -> Result<Option<AccountChange>, FieldViolation> {
        if self.is_empty() {
            return Ok(None);
        }
        let down_payment = self.down_payment.unwrap_or(current.down_payment);
        let total_system_cost = self.total_system_cost.unwrap_or(current.total_system_cost);
        customer_fields::sale_terms(down_payment, total_system_cost)?;
        Ok(Some(AccountChange::SaleTerms {
            down_payment,
            total_system_cost,
        }))
    }
}

/// What an edit of account terms was checked against: the unit whose account changes, the
/// installation's current terms, and the engine changes to make in order.
#[derive(Default)]
struct CheckedTerms {
    serial: String,
    plan: Option<PlanAssignment>,
    account: Vec<AccountChange>,
}

impl InstallationChanges {
    fn validate(&self) -> Result<ValidEdits<'_>, FieldViolation> {
        let mut account = Vec::new();
        if let Some(raw) = &self.negative_charge_limit {
            let limit = amount::required("negative_charge_limit", raw, Sign::NonPositive)?;
            account.push(AccountChange::NegativeChargeLimit(limit));
        }
        if let Some(enabled) = self.auto_switch_off {
            account.push(AccountChange::AutoSwitchOff(enabled));
        }
        let sale_terms = SaleTermsEdit {
            down_payment: self
                .down_payment
                .as_deref()
                .map(|raw| amount::required("down_payment", raw, Sign::NonNegative))
                .transpose()?,
            total_system_cost: self
                .total_system_cost
                .as_deref()
                .map(|raw| amount::optional("total_system_cost", raw, Sign::NonNegative))
                .transpose()?,
        };
        Ok(ValidEdits {
            installation_id: validate::id("installation_id", &self.installation_id)?,
            location: self
                .location
                .map(|(latitude, longitude)| customer_fields::location(latitude, longitude))
                .transpose()?,
            partner_organisation: self
                .partner_organisation
                .as_deref()
                .map(|raw| customer_fields::optional_text("partner_organisation", raw))
                .transpose()?,
            technician_member_id: self
                .technician_member_id
                .as_deref()
                .map(|raw| validate::id("technician_member_id", raw))
                .transpose()?,
            system: self
                .system
                .as_ref()
                .map(customer_fields::system)
                .transpose()?,
            household: self
                .household
                .as_ref()
                .map(customer_fields::household)
                .transpose()?,
            account,
            sale_terms,
        })
    }
}

impl ValidEdits<'_> {
    /// Applies the directory-only edits to `installation`.
    fn apply(&self, installation: &mut Installation) {
        if let Some(location) = self.location {
            installation.location = location;
        }
        if let Some(partner) = &self.partner_organisation {
            installation.partner_organisation = partner.clone();
        }
        if let Some(technician) = self.technician_member_id {
            installation.technician_member_id = technician.to_owned();
        }
        if let Some(system) = &self.system {
            installation.system = system.clone();
        }
        if let Some(household) = &self.household {
            installation.household = household.clone();
        }
    }
}

/// Mirrors an account change the engine applied into the installation's plan assignment.
fn mirror(plan: &mut PlanAssignment, change: &AccountChange) {
    match *change {
        AccountChange::NegativeChargeLimit(limit) => plan.negative_charge_limit = limit,
        AccountChange::AutoSwitchOff(enabled) => plan.auto_switch_off = enabled,
        AccountChange::SaleTerms {
            down_payment,
            total_system_cost,
        } => {
            plan.down_payment = down_payment;
            plan.total_system_cost = total_system_cost;
        }
    }
}

const LIVE: &[InstallationStatus] = &[InstallationStatus::Partial, InstallationStatus::Complete];

impl Directory {
    /// Installation `installation_id` of `org_id`, deleted ones included.
    pub fn installation(
        &self,
        org_id: &str,
        installation_id: &str,
    ) -> Result<Installation, DirectoryError> {
        let installation_id = validate::id("installation_id", installation_id)?;
        installation_in(
            &self.read()?.open_table(INSTALLATIONS)?,
            org_id,
            installation_id,
        )
    }

    /// One page of the (not deleted) installations of contact `customer_id`, by id.
    pub fn installations_of(
        &self,
        org_id: &str,
        customer_id: &str,
        page: &PageRequest<String>,
    ) -> Result<Page<Installation>, DirectoryError> {
        let customer_id = validate::id("customer_id", customer_id)?;
        let txn = self.read()?;
        customer_in(&txn.open_table(CUSTOMERS)?, org_id, customer_id)?;
        let links = txn.open_table(CUSTOMER_INSTALLATIONS)?;
        let installations = txn.open_table(INSTALLATIONS)?;
        let start = match page.after.as_deref() {
            Some(after) => Bound::Excluded((org_id, customer_id, after)),
            None => Bound::Included((org_id, customer_id, "")),
        };
        let entries = links.range::<(&str, &str, &str)>((start, Bound::Unbounded))?;
        let linked = entries.map_while(|entry| match entry {
            Err(error) => Some(Err(DirectoryError::from(error))),
            Ok((key, _)) => {
                let (org, customer, installation_id) = key.value();
                (org == org_id && customer == customer_id)
                    .then(|| installation_in(&installations, org_id, installation_id))
            }
        });
        page.page(linked, |installation| installation.id.clone())
    }

    /// Edits an installation; account terms (complete installations only) are changed with
    /// `change_account` (the billing engine's) before the directory is written.
    pub fn update_installation(
        &self,
        caller: &Caller,
        changes: &InstallationChanges,
        mut change_account: impl FnMut(&str, AccountChange) -> Result<AccountRecord, EngineError>,
    ) -> Result<Installation, DirectoryError> {
        let edits = changes.validate()?;
        serialised(|| {
            let CheckedTerms {
                serial,
                mut plan,
                account,
            } = self.check_edits(caller, &edits)?;
            let mut failure = None;
            for account_change in &account {
                if let Err(error) = change_account(&serial, account_change.clone()) {
                    failure = Some(error);
                    break;
                }
                if let Some(plan) = plan.as_mut() {
                    mirror(plan, account_change);
                }
            }
            let installation = self.change(&caller.org_id, &caller.member_id, |change| {
                let mut installation = change.live_installation(edits.installation_id)?;
                let before = installation.clone();
                if failure.is_none() {
                    edits.apply(&mut installation);
                }
                if let Some(plan) = plan {
                    installation.plan = Some(plan);
                }
                if installation == before {
                    return Ok(installation);
                }
                change.put_installation(&installation)?;
                change.record(
                    AuditAction::InstallationUpdated,
                    &installation.id,
                    describe_edits(&before, &installation),
                )?;
                Ok(installation)
            })?;
            match failure {
                Some(error) => Err(error.into()),
                None => Ok(installation),
            }
        })
    }

    /// Reads and checks what an edit names: the installation (not deleted; complete for
    /// account terms) and the technician. Returns the account terms to change.
    fn check_edits(
        &self,
        caller: &Caller,
        edits: &ValidEdits,
    ) -> Result<CheckedTerms, DirectoryError> {
        let txn = self.read()?;
        let org_id = caller.org_id.as_str();
        let installation = installation_in(
            &txn.open_table(INSTALLATIONS)?,
            org_id,
            edits.installation_id,
        )?;
        ensure_status(
            &installation,
            LIVE,
            "a deleted installation cannot be edited",
        )?;
        if let Some(technician) = edits.technician_member_id {
            member_in(&txn.open_table(MEMBERS)?, org_id, technician)?;
        }
        if edits.account.is_empty() && edits.sale_terms.is_empty() {
            return Ok(CheckedTerms::default());
        }
        ensure_status(
            &installation,
            &[InstallationStatus::Complete],
            "account terms exist once the registration is complete",
        )?;
        let corrupt = |missing: &str| {
            DirectoryError::Corrupt(format!(
                "complete installation {} has no {missing}",
                installation.id
            ))
        };
        let serial = installation
            .unit_serial
            .clone()
            .ok_or_else(|| corrupt("unit"))?;
        let plan = installation.plan.clone().ok_or_else(|| corrupt("plan"))?;
        let mut account = edits.account.clone();
        account.extend(edits.sale_terms.resolve(&plan)?);
        Ok(CheckedTerms {
            serial,
            plan: Some(plan),
            account,
        })
    }

    /// Assigns an installation to existing contact `customer_id`; a complete installation's
    /// unit passes to them.
    pub fn assign_installation(
        &self,
        caller: &Caller,
        installation_id: &str,
        customer_id: &str,
    ) -> Result<Installation, DirectoryError> {
        let installation_id = validate::id("installation_id", installation_id)?;
        let customer_id = validate::id("customer_id", customer_id)?;
        serialised(|| {
            self.change(&caller.org_id, &caller.member_id, |change| {
                let mut installation = change.live_installation(installation_id)?;
                let customer = customer_in(
                    &change.txn.open_table(CUSTOMERS)?,
                    change.org_id,
                    customer_id,
                )?;
                if installation.customer_id.as_deref() == Some(customer_id) {
                    return Ok(installation);
                }
                let before = change.detach_customer(&installation)?;
                change.link_customer(customer_id, installation_id, true)?;
                if let Some(serial) = assigned_unit(&installation) {
                    change.assign_unit(serial, customer_id, installation_id)?;
                }
                installation.customer_id = Some(customer_id.to_owned());
                change.put_installation(&installation)?;
                change.record(
                    AuditAction::InstallationAssigned,
                    installation_id,
                    format!(
                        "assigned to {} ({customer_id}), previously {}",
                        customer.name,
                        before.as_deref().unwrap_or("unassigned")
                    ),
                )?;
                Ok(installation)
            })
        })
    }

    /// Removes the contact from an installation, ending their possession of its unit.
    pub fn unassign_installation(
        &self,
        caller: &Caller,
        installation_id: &str,
    ) -> Result<Installation, DirectoryError> {
        let installation_id = validate::id("installation_id", installation_id)?;
        serialised(|| {
            self.change(&caller.org_id, &caller.member_id, |change| {
                let mut installation = change.live_installation(installation_id)?;
                let Some(before) = change.detach_customer(&installation)? else {
                    return Ok(installation);
                };
                installation.customer_id = None;
                change.put_installation(&installation)?;
                change.record(
                    AuditAction::InstallationUnassigned,
                    installation_id,
                    format!("unassigned from {before}"),
                )?;
                Ok(installation)
            })
        })
    }

    /// Deletes an installation: its unit is freed and its customer's possession ends. The
    /// record stays (as deleted) for the unit's history; the contact keeps their email. A
    /// complete installation's account is first closed with `close_account` (the billing
    /// engine's), whatever its balance, so the unit can be billed for a new installation; the
    /// deleted installation's `deleted_at_ms` is then the instant its account was closed,
    /// which names the closed account in the billing store (see [`Directory::ledger`]).
    pub fn delete_installation(
        &self,
        caller: &Caller,
        installation_id: &str,
        close_account: impl FnOnce(&str) -> Result<ClosedAccount, EngineError>,
    ) -> Result<Installation, DirectoryError> {
        let installation_id = validate::id("installation_id", installation_id)?;
        serialised(|| {
            let checked = self.installation(&caller.org_id, installation_id)?;
            ensure_status(&checked, LIVE, "the installation was deleted")?;
            let closed = assigned_unit(&checked)
                .map(|serial| self.close_account_of(&caller.org_id, serial, close_account))
                .transpose()?;
            self.change(&caller.org_id, &caller.member_id, |change| {
                let mut installation = change.live_installation(installation_id)?;
                let customer = change.detach_customer(&installation)?;
                if let Some(serial) = installation.unit_serial.as_deref() {
                    change.release_unit(serial)?;
                }
                installation.customer_id = None;
                installation.status = InstallationStatus::Deleted;
                installation.deleted_at_ms = Some(
                    closed
                        .as_ref()
                        .map_or(change.at_ms, |closed| closed.closed_at_ms),
                );
                change.put_installation(&installation)?;
                let account = match &closed {
                    Some(closed) => format!(
                        "account closed at balance {}",
                        closed.record.account.balance()
                    ),
                    None => "no account".to_owned(),
                };
                change.record(
                    AuditAction::InstallationDeleted,
                    installation_id,
                    format!(
                        "deleted (unit {}, customer {}, {account})",
                        installation.unit_serial.as_deref().unwrap_or("none"),
                        customer.as_deref().unwrap_or("none")
                    ),
                )?;
                Ok(installation)
            })
        })
    }

    /// Step 2 of deleting a complete installation: closes its unit's account with
    /// `close_account`. An account already gone was closed by an earlier attempt whose
    /// directory write failed; the installation kept holding the unit since, so nothing else
    /// can have billed it, and that attempt's closed account is the unit's latest one of this
    /// organisation.
    fn close_account_of(
        &self,
        org_id: &str,
        serial: &str,
        close_account: impl FnOnce(&str) -> Result<ClosedAccount, EngineError>,
    ) -> Result<ClosedAccount, DirectoryError> {
        match close_account(serial) {
            Ok(closed) => Ok(closed),
            Err(EngineError::AccountNotFound(missing)) => self
                .store
                .closed_accounts(serial)?
                .into_iter()
                .rfind(|closed| &*closed.record.org == org_id)
                .ok_or(DirectoryError::Engine(EngineError::AccountNotFound(
                    missing,
                ))),
            Err(error) => Err(error.into()),
        }
    }
}

/// The unit a complete installation gives its customer; a partial one only reserves its unit.
fn assigned_unit(installation: &Installation) -> Option<&str> {
    match installation.status {
        InstallationStatus::Complete => installation.unit_serial.as_deref(),
        InstallationStatus::Partial | InstallationStatus::Deleted => None,
    }
}

/// Which parts an edit changed, for the audit log.
fn describe_edits(before: &Installation, after: &Installation) -> String {
    let parts = [
        ("location", before.location != after.location),
        (
            "partner organisation",
            before.partner_organisation != after.partner_organisation,
        ),
        (
            "technician",
            before.technician_member_id != after.technician_member_id,
        ),
        ("system details", before.system != after.system),
        ("household details", before.household != after.household),
        ("account terms", before.plan != after.plan),
    ];
    let changed: Vec<&str> = parts
        .into_iter()
        .filter_map(|(part, changed)| changed.then_some(part))
        .collect();
    format!("changed {}", changed.join(", "))
}

impl Change<'_> {
    /// The installation `installation_id`, refused if deleted.
    fn live_installation(&self, installation_id: &str) -> Result<Installation, DirectoryError> {
        let installation = installation_in(
            &self.txn.open_table(INSTALLATIONS)?,
            self.org_id,
            installation_id,
        )?;
        ensure_status(&installation, LIVE, "the installation was deleted")?;
        Ok(installation)
    }

    /// Unlinks the installation from its contact and ends their possession of its unit;
    /// returns the contact it had.
    fn detach_customer(
        &self,
        installation: &Installation,
    ) -> Result<Option<String>, DirectoryError> {
        let Some(customer_id) = installation.customer_id.clone() else {
            return Ok(None);
        };
        self.link_customer(&customer_id, &installation.id, false)?;
        if let Some(serial) = assigned_unit(installation) {
            self.end_unit_assignment(serial)?;
        }
        Ok(Some(customer_id))
    }
}
