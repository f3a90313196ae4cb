//! Registering a customer in two steps, as Cloud Solar does: the initial registration (unit,
//! contact, location) is saved alone as a partial registration; completing it adds the user
//! details, the payment plan with the customer's terms, the associations and the system and
//! household details, assigns the unit to the customer and opens the billing account.
//!
//! Completion touches two stores, the directory and the billing engine (which owns accounts
//! and commits them in its own transactions on the same redb file, so it cannot be called
//! while a directory write transaction is open). The order makes a failure leave nothing
//! partial:
//!
//! 1. every field is validated and every record the request names is read and checked in one
//!    read transaction, building the account's opening terms;
//! 2. the engine opens the account (a refusal there changes nothing anywhere);
//! 3. one directory write transaction re-checks the installation, then writes it complete, the
//!    unit's assignment, the customer's details and the audit event, and commits.
//!
//! All installation changes of the process run one at a time (see
//! [`super::installations::serialised`]), so nothing can change between steps 1 and 3 what
//! step 1 checked. Only a storage failure in step 3 can leave an account without its
//! completed installation; retrying the completion then meets the existing account and is
//! refused (FAILED_PRECONDITION) rather than opening a second one.
//!
//! Deleting a complete installation follows the same order the other way round (see
//! [`super::projects`]): check, close the unit's account in the engine, then write the
//! installation deleted and free the unit. So a unit whose installation was deleted has no
//! account, and completing a new registration on it opens a fresh one (balance and ledger from
//! zero); the closed account and its ledger stay in the billing store. If the directory write
//! fails after the engine closed the account, the installation stays complete and keeps its
//! unit (no other registration can take it), but has no account: billing calls on it are
//! FAILED_PRECONDITION, and retrying the deletion finds the account already closed and
//! finishes the deletion.

use chrono_tz::Tz;
use sunledger_billing::account::AccountSetup;
use sunledger_billing::account_record::{AccountOpening, AccountRecord};
use sunledger_billing::engine::EngineError;

use super::audit::AuditAction;
use super::customer_fields::{self, optional_text};
use super::customers::{
    CUSTOMERS, Customer, NewCustomer, UserDetails, ValidCustomer, customer_in, valid_details,
};
use super::installations::{
    HouseholdDetails, INSTALLATIONS, Installation, InstallationStatus, PlanAssignment,
    SystemDetails, UNIT_INSTALLATIONS, ensure_status, installation_in, serialised, unit_holder,
};
use super::org_records::org_records;
use super::plans::{PLANS, plan_in};
use super::records::{MEMBERS, member_in};
use super::units::{UNITS, unit_in};
use super::{Change, Directory, DirectoryError, new_id};
use crate::amount::{self, Sign};
use crate::pagination::{Page, PageRequest};
use crate::roles::Caller;
use crate::validate::{self, FieldViolation};

/// Who an initial registration is for.
#[derive(Clone, Debug)]
pub enum RegistrationContact {
    /// An existing contact (field `customer_id`).
    Existing(String),
    /// A new contact, created with the registration (field `new_customer`).
    New(NewCustomer),
}

/// The initial registration as the request gave it.
#[derive(Clone, Debug)]
pub struct NewRegistration {
    /// Field `unit_serial`; may be empty and given on completion instead.
    pub unit_serial: String,
    /// Field `contact`; `None` if the request named none.
    pub contact: Option<RegistrationContact>,
    /// Fields `latitude` and `longitude`; `None` if the request had no location.
    pub location: Option<(f64, f64)>,
}

/// The plan chosen on completion, as the request gave it.
#[derive(Clone, Debug, Default)]
pub struct PlanChoice {
    /// Field `plan_id`.
    pub plan_id: String,
    /// Field `down_payment`; empty is 0.
    pub down_payment: String,
    /// Field `total_system_cost`; empty means the plan runs forever.
    pub total_system_cost: String,
    /// Field `negative_charge_limit`; `None` takes the plan's default.
    pub negative_charge_limit: Option<String>,
    /// Field `auto_switch_off`; `None` takes the plan's default.
    pub auto_switch_off: Option<bool>,
}

/// The rest of a registration, as the request gave it.
#[derive(Clone, Debug, Default)]
pub struct Completion {
    /// Field `installation_id`.
    pub installation_id: String,
    /// Field `unit_serial`: required if the initial registration had none.
    pub unit_serial: String,
    /// Field `user`: replaces the customer's details if given.
    pub user: Option<UserDetails>,
    /// Field `plan`; required.
    pub plan: Option<PlanChoice>,
    /// Field `partner_organisation`.
    pub partner_organisation: String,
    /// Field `technician_member_id`; empty means the caller.
    pub technician_member_id: String,
    /// Field `system`.
    pub system: SystemDetails,
    /// Field `household`.
    pub household: HouseholdDetails,
}

/// A [`Completion`] whose fields passed validation.
struct ValidCompletion<'a> {
    installation_id: &'a str,
    unit_serial: Option<&'a str>,
    user: Option<UserDetails>,
    plan_id: &'a str,
    down_payment: rust_decimal::Decimal,
    total_system_cost: Option<rust_decimal::Decimal>,
    negative_charge_limit: Option<rust_decimal::Decimal>,
    auto_switch_off: Option<bool>,
    partner_organisation: String,
    technician_member_id: &'a str,
    system: SystemDetails,
    household: HouseholdDetails,
}

impl Completion {
    fn validate<'a>(&'a self, caller: &'a Caller) -> Result<ValidCompletion<'a>, FieldViolation> {
        let installation_id = validate::id("installation_id", &self.installation_id)?;
        let unit_serial = optional_id("unit_serial", &self.unit_serial)?;
        let user = self.user.as_ref().map(valid_details).transpose()?;
        let plan = self
            .plan
            .as_ref()
            .ok_or_else(|| FieldViolation::new("plan", "required"))?;
        let plan_id = validate::id("plan_id", &plan.plan_id)?;
        let down_payment = amount::optional("down_payment", &plan.down_payment, Sign::NonNegative)?
            .unwrap_or_default();
        let total_system_cost = amount::optional(
            "total_system_cost",
            &plan.total_system_cost,
            Sign::NonNegative,
        )?;
        customer_fields::sale_terms(down_payment, total_system_cost)?;
        let negative_charge_limit = plan
            .negative_charge_limit
            .as_deref()
            .map(|raw| amount::required("negative_charge_limit", raw, Sign::NonPositive))
            .transpose()?;
        Ok(ValidCompletion {
            installation_id,
            unit_serial,
            user,
            plan_id,
            down_payment,
            total_system_cost,
            negative_charge_limit,
            auto_switch_off: plan.auto_switch_off,
            partner_organisation: optional_text(
                "partner_organisation",
                &self.partner_organisation,
            )?,
            technician_member_id: optional_id("technician_member_id", &self.technician_member_id)?
                .unwrap_or(&caller.member_id),
            system: customer_fields::system(&self.system)?,
            household: customer_fields::household(&self.household)?,
        })
    }
}

/// An id that may be left empty.
fn optional_id<'a>(field: &'static str, raw: &'a str) -> Result<Option<&'a str>, FieldViolation> {
    match raw.trim().is_empty() {
        true => Ok(None),
        false => validate::id(field, raw).map(Some),
    }
}

/// The contact of an initial registration, validated.
enum Contact<'a> {
    Existing(&'a str),
    New(ValidCustomer),
}

/// What step 1 of a completion established: the unit, the plan terms and the account to open.
struct Checked {
    serial: String,
    plan: PlanAssignment,
    opening: AccountOpening,
}

impl Directory {
    /// Saves an initial registration as a partial one, creating its contact if new. A unit
    /// given must be the organisation's and not in another installation.
    pub fn start_registration(
        &self,
        caller: &Caller,
        new: &NewRegistration,
    ) -> Result<Installation, DirectoryError> {
        let serial = optional_id("unit_serial", &new.unit_serial)?;
        let (latitude, longitude) = new
            .location
            .ok_or_else(|| FieldViolation::new("location", "required"))?;
        let location = customer_fields::location(latitude, longitude)?;
        let contact = match &new.contact {
            None => {
                let violation =
                    FieldViolation::new("contact", "required: customer_id or new_customer");
                return Err(violation.into());
            }
            Some(RegistrationContact::Existing(id)) => {
                Contact::Existing(validate::id("customer_id", id)?)
            }
            Some(RegistrationContact::New(customer)) => {
                let country = self.organisation(&caller.org_id)?.country;
                Contact::New(customer.validate(&country)?)
            }
        };
        serialised(|| {
            self.change(&caller.org_id, &caller.member_id, |change| {
                let installation_id = new_id("ins_");
                if let Some(serial) = serial {
                    unit_in(&change.txn.open_table(UNITS)?, change.org_id, serial)?;
                    change.hold_unit(serial, &installation_id)?;
                }
                let customer = match contact {
                    Contact::Existing(customer_id) => customer_in(
                        &change.txn.open_table(CUSTOMERS)?,
                        change.org_id,
                        customer_id,
                    )?,
                    Contact::New(valid) => change.insert_customer(valid)?,
                };
                let installation = Installation {
                    id: installation_id,
                    org_id: change.org_id.to_owned(),
                    customer_id: Some(customer.id.clone()),
                    unit_serial: serial.map(str::to_owned),
                    plan: None,
                    location,
                    status: InstallationStatus::Partial,
                    partner_organisation: String::new(),
                    technician_member_id: change.actor_id.to_owned(),
                    system: SystemDetails::default(),
                    household: HouseholdDetails::default(),
                    created_at_ms: change.at_ms,
                    completed_at_ms: None,
                    deleted_at_ms: None,
                };
                change.put_installation(&installation)?;
                change.link_customer(&customer.id, &installation.id, true)?;
                change.record(
                    AuditAction::RegistrationStarted,
                    &installation.id,
                    format!(
                        "partial registration for {} ({}), unit {}",
                        customer.name,
                        customer.id,
                        serial.unwrap_or("not given yet")
                    ),
                )?;
                Ok(installation)
            })
        })
    }

    /// Completes a partial registration and opens its account with `open_account` (the
    /// billing engine's), in the order the module documentation explains.
    pub fn complete_registration(
        &self,
        caller: &Caller,
        completion: &Completion,
        open_account: impl FnOnce(&str, AccountOpening) -> Result<AccountRecord, EngineError>,
    ) -> Result<Installation, DirectoryError> {
        let valid = completion.validate(caller)?;
        serialised(|| {
            let checked = self.check_completion(caller, &valid)?;
            open_account(&checked.serial, checked.opening.clone())?;
            self.change(&caller.org_id, &caller.member_id, |change| {
                change.write_completion(&valid, checked)
            })
        })
    }

    /// Step 1 of a completion: reads and checks everything the request names.
    fn check_completion(
        &self,
        caller: &Caller,
        valid: &ValidCompletion,
    ) -> Result<Checked, DirectoryError> {
        let organisation = self.organisation(&caller.org_id)?;
        let txn = self.read()?;
        let org_id = caller.org_id.as_str();
        let installation = installation_in(
            &txn.open_table(INSTALLATIONS)?,
            org_id,
            valid.installation_id,
        )?;
        ensure_partial(&installation)?;
        let customer_id =
            installation
                .customer_id
                .as_deref()
                .ok_or(DirectoryError::InstallationState {
                    installation_id: installation.id.clone(),
                    status: "unassigned",
                    needed: "assign a contact before completing the registration",
                })?;
        customer_in(&txn.open_table(CUSTOMERS)?, org_id, customer_id)?;
        let serial = match (installation.unit_serial.as_deref(), valid.unit_serial) {
            (Some(held), Some(given)) if held != given => {
                return Err(FieldViolation::new(
                    "unit_serial",
                    format!("the registration is for unit {held}"),
                )
                .into());
            }
            (Some(serial), _) | (None, Some(serial)) => serial.to_owned(),
            (None, None) => {
                return Err(FieldViolation::new(
                    "unit_serial",
                    "required: the initial registration gave none",
                )
                .into());
            }
        };
        unit_in(&txn.open_table(UNITS)?, org_id, &serial)?;
        if let Some(holder) = unit_holder(&txn.open_table(UNIT_INSTALLATIONS)?, org_id, &serial)?
            .filter(|holder| *holder != installation.id)
        {
            return Err(DirectoryError::UnitInUse {
                serial,
                installation_id: holder,
            });
        }
        member_in(
            &txn.open_table(MEMBERS)?,
            org_id,
            valid.technician_member_id,
        )?;
        let plan = plan_in(&txn.open_table(PLANS)?, org_id, valid.plan_id)?;
        if !plan.is_active() {
            return Err(DirectoryError::PlanRetired(plan.id));
        }
        let assignment = PlanAssignment {
            plan_id: plan.id.clone(),
            down_payment: valid.down_payment,
            total_system_cost: valid.total_system_cost,
            negative_charge_limit: valid
                .negative_charge_limit
                .unwrap_or(plan.terms.negative_charge_limit),
            auto_switch_off: valid.auto_switch_off.unwrap_or(plan.terms.auto_switch_off),
        };
        let tz: Tz = organisation.time_zone.parse().map_err(|_| {
            DirectoryError::Corrupt(format!(
                "organisation {org_id} has time zone {:?}",
                organisation.time_zone
            ))
        })?;
        let opening = AccountOpening {
            org: org_id.to_owned(),
            tz,
            terms: plan.terms,
            setup: AccountSetup {
                down_payment: assignment.down_payment,
                total_system_cost: assignment.total_system_cost,
                negative_charge_limit: Some(assignment.negative_charge_limit),
                auto_switch_off: Some(assignment.auto_switch_off),
            },
            time_mode: plan.token_time,
        };
        Ok(Checked {
            serial,
            plan: assignment,
            opening,
        })
    }

    /// The partial registrations of `org_id`, by id.
    pub fn partial_registrations(
        &self,
        org_id: &str,
        page: &PageRequest<String>,
    ) -> Result<Page<Installation>, DirectoryError> {
        let txn = self.read()?;
        let installations = txn.open_table(INSTALLATIONS)?;
        let partial = org_records(&installations, org_id, page.after.as_deref())?.filter(
            |installation: &Result<Installation, DirectoryError>| {
                installation.as_ref().map_or(true, |installation| {
                    installation.status == InstallationStatus::Partial
                })
            },
        );
        page.page(partial, |installation| installation.id.clone())
    }
}

/// Refuses an installation that is not a partial registration.
fn ensure_partial(installation: &Installation) -> Result<(), DirectoryError> {
    ensure_status(
        installation,
        &[InstallationStatus::Partial],
        "only a partial registration can be completed",
    )
}

impl Change<'_> {
    /// Step 3 of a completion: re-checks the installation and writes everything.
    fn write_completion(
        &self,
        valid: &ValidCompletion,
        checked: Checked,
    ) -> Result<Installation, DirectoryError> {
        let mut installation = installation_in(
            &self.txn.open_table(INSTALLATIONS)?,
            self.org_id,
            valid.installation_id,
        )?;
        ensure_partial(&installation)?;
        let customer_id = installation.customer_id.clone().ok_or_else(|| {
            DirectoryError::Corrupt(format!(
                "installation {} lost its customer while completing",
                installation.id
            ))
        })?;
        let mut customer: Customer =
            customer_in(&self.txn.open_table(CUSTOMERS)?, self.org_id, &customer_id)?;
        if let Some(user) = &valid.user {
            customer.details = user.clone();
            self.put_customer(&customer)?;
        }
        self.hold_unit(&checked.serial, &installation.id)?;
        self.assign_unit(&checked.serial, &customer_id, &installation.id)?;
        let description = format!(
            "completed for {} ({}): unit {}, plan {}, down-payment {}, limit {}, switch-off {}",
            customer.name,
            customer.id,
            checked.serial,
            checked.plan.plan_id,
            checked.plan.down_payment,
            checked.plan.negative_charge_limit,
            checked.plan.auto_switch_off
        );
        installation.unit_serial = Some(checked.serial);
        installation.plan = Some(checked.plan);
        installation.status = InstallationStatus::Complete;
        installation.partner_organisation = valid.partner_organisation.clone();
        installation.technician_member_id = valid.technician_member_id.to_owned();
        installation.system = valid.system.clone();
        installation.household = valid.household.clone();
        installation.completed_at_ms = Some(self.at_ms);
        self.put_installation(&installation)?;
        self.record(
            AuditAction::RegistrationCompleted,
            &installation.id,
            description,
        )?;
        Ok(installation)
    }
}
