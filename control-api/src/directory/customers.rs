//! Customers (contacts): created on their own or with a registration, listed with filters,
//! and deleted once they have no installation; edits are in `customer_updates`.
//!
//! An email, once a contact has it, belongs to the organisation's contacts for good: the
//! email index keeps the entry of a deleted contact as a tombstone, so no later contact can
//! take it, and a contact's email cannot be changed once set (as OpenSolar does). Phone
//! numbers are stored in E.164 and must be of the organisation's country.

use redb::{ReadableTable, TableDefinition, WriteTransaction};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::approval::{Approval, ApprovalStatus};
use super::audit::AuditAction;
use super::customer_fields::{self, optional_email, optional_text};
use super::installations::CUSTOMER_INSTALLATIONS;
use super::org_records::org_records;
use super::{Change, Directory, DirectoryError, decode, encode, new_id};
use crate::amount::{self, Sign};
use crate::pagination::{Page, PageRequest};
use crate::roles::Caller;
use crate::search;
use crate::validate::{self, FieldViolation};

/// (organisation id, customer id) → [`Customer`]; also the order of the customer list.
pub(super) const CUSTOMERS: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("api_customers");
/// (organisation id, lower-cased email) → id of the contact that took it, kept after the
/// contact is deleted.
pub(super) const CUSTOMER_EMAILS: TableDefinition<(&str, &str), &str> =
    TableDefinition::new("api_customer_emails");

/// Creates the customer tables, so reads never meet a missing one.
pub(super) fn create_tables(txn: &WriteTransaction) -> Result<(), DirectoryError> {
    txn.open_table(CUSTOMERS)?;
    txn.open_table(CUSTOMER_EMAILS)?;
    Ok(())
}

/// A private individual or a business.
///
/// Stored by variant position: add new types at the end only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CustomerType {
    /// A private individual.
    Consumer,
    /// A business.
    Company,
}

/// How a customer wants to be contacted.
///
/// Stored by variant position: add new channels at the end only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContactPreference {
    /// By email; the contact must have one.
    Email,
    /// By phone; the contact must have one.
    Phone,
}

/// Basic details about the user, entered at registration and editable later.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserDetails {
    /// Postal or physical address; empty if not given.
    pub address: String,
    /// National id or company registration number; empty if not given.
    pub id_number: String,
}

/// A contact of one organisation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    /// `cus_…`.
    pub id: String,
    /// The organisation the customer belongs to, and the only one that can see them.
    pub org_id: String,
    /// Consumer or company.
    pub customer_type: CustomerType,
    /// Display name.
    pub name: String,
    /// Category such as "Private individual"; empty if not given.
    pub category: String,
    /// The dealer who brought the customer; empty if not given.
    pub dealer_code: String,
    /// What the customer is expected to pay per month, for the approval portal.
    pub estimated_monthly_revenue: Option<Decimal>,
    /// As entered; unique among the organisation's contacts, past ones included.
    pub email: Option<String>,
    /// E.164, of the organisation's country.
    pub phone: Option<String>,
    /// A channel the contact has.
    pub contact_preference: ContactPreference,
    /// Address and id number.
    pub details: UserDetails,
    /// The approval workflow's state.
    pub approval: Approval,
    /// Unix milliseconds.
    pub created_at_ms: i64,
    /// The member who created the contact.
    pub created_by_member_id: String,
}

/// A contact as the request gave it (validated by [`NewCustomer::validate`]; errors name
/// these fields).
#[derive(Clone, Debug)]
pub struct NewCustomer {
    /// Field `type`.
    pub customer_type: CustomerType,
    /// Field `name`.
    pub name: String,
    /// Field `category`.
    pub category: String,
    /// Field `dealer_code`.
    pub dealer_code: String,
    /// Field `estimated_monthly_revenue`, a decimal string or empty.
    pub estimated_monthly_revenue: String,
    /// Field `email`, may be empty.
    pub email: String,
    /// Field `phone`, may be empty.
    pub phone: String,
    /// Field `contact_preference`.
    pub contact_preference: ContactPreference,
    /// Fields `address` and `id_number`.
    pub details: UserDetails,
}

/// Which customers a list returns.
#[derive(Clone, Debug, Default)]
pub struct CustomerFilter {
    /// Only this approval status.
    pub status: Option<ApprovalStatus>,
    /// Only this type.
    pub customer_type: Option<CustomerType>,
    /// Only names, emails or phones containing this text, case-insensitively.
    pub search: String,
}

impl CustomerFilter {
    fn admits(&self, customer: &Customer, search: &str) -> bool {
        let text_matches = search.is_empty()
            || [
                Some(customer.name.as_str()),
                customer.email.as_deref(),
                customer.phone.as_deref(),
            ]
            .into_iter()
            .flatten()
            .any(|text| search::contains(text, search));
        self.status
            .is_none_or(|status| customer.approval.status == status)
            && self
                .customer_type
                .is_none_or(|customer_type| customer.customer_type == customer_type)
            && text_matches
    }
}

impl NewCustomer {
    /// The contact's fields in canonical form, phone parsed in `country`; refuses a contact
    /// without email and phone, or preferring a channel it lacks.
    pub(super) fn validate(&self, country: &str) -> Result<ValidCustomer, FieldViolation> {
        let valid = ValidCustomer {
            customer_type: self.customer_type,
            name: validate::name("name", &self.name)?,
            category: optional_text("category", &self.category)?,
            dealer_code: optional_text("dealer_code", &self.dealer_code)?,
            estimated_monthly_revenue: amount::optional(
                "estimated_monthly_revenue",
                &self.estimated_monthly_revenue,
                Sign::NonNegative,
            )?,
            email: optional_email("email", &self.email)?,
            phone: optional_phone(&self.phone, country)?,
            contact_preference: self.contact_preference,
            details: valid_details(&self.details)?,
        };
        check_contact(
            valid.email.as_deref(),
            valid.phone.as_deref(),
            valid.contact_preference,
        )?;
        Ok(valid)
    }
}

/// A [`NewCustomer`] whose fields passed validation.
#[derive(Clone, Debug)]
pub(super) struct ValidCustomer {
    customer_type: CustomerType,
    name: String,
    category: String,
    dealer_code: String,
    estimated_monthly_revenue: Option<Decimal>,
    email: Option<String>,
    phone: Option<String>,
    contact_preference: ContactPreference,
    details: UserDetails,
}

pub(super) fn optional_phone(raw: &str, country: &str) -> Result<Option<String>, FieldViolation> {
    match raw.trim().is_empty() {
        true => Ok(None),
        false => customer_fields::phone("phone", raw, country).map(Some),
    }
}

/// Address and id number with their text checked.
pub(super) fn valid_details(raw: &UserDetails) -> Result<UserDetails, FieldViolation> {
    Ok(UserDetails {
        address: optional_text("address", &raw.address)?,
        id_number: optional_text("id_number", &raw.id_number)?,
    })
}

/// A contact needs an email or a phone, and prefers a channel it has.
pub(super) fn check_contact(
    email: Option<&str>,
    phone: Option<&str>,
    preference: ContactPreference,
) -> Result<(), FieldViolation> {
    if email.is_none() && phone.is_none() {
        return Err(FieldViolation::new(
            "email",
            "an email or a phone number is required",
        ));
    }
    match (preference, email, phone) {
        (ContactPreference::Email, None, _) => Err(FieldViolation::new(
            "contact_preference",
            "email preferred but no email given",
        )),
        (ContactPreference::Phone, _, None) => Err(FieldViolation::new(
            "contact_preference",
            "phone preferred but no phone given",
        )),
        _ => Ok(()),
    }
}

/// The customer `customer_id` of `org_id`, or [`DirectoryError::CustomerNotFound`] (also for
/// another organisation's or a deleted one).
pub(crate) fn customer_in(
    table: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    org_id: &str,
    customer_id: &str,
) -> Result<Customer, DirectoryError> {
    match table.get((org_id, customer_id))? {
        Some(stored) => decode(stored.value()),
        None => Err(DirectoryError::CustomerNotFound(customer_id.to_owned())),
    }
}

impl Directory {
    /// Creates a contact in the caller's organisation, in approval status New.
    pub fn create_customer(
        &self,
        caller: &Caller,
        new: &NewCustomer,
    ) -> Result<Customer, DirectoryError> {
        let country = self.organisation(&caller.org_id)?.country;
        let valid = new.validate(&country)?;
        self.change(&caller.org_id, &caller.member_id, |change| {
            change.insert_customer(valid)
        })
    }

    /// Customer `customer_id` of `org_id`.
    pub fn customer(&self, org_id: &str, customer_id: &str) -> Result<Customer, DirectoryError> {
        let customer_id = validate::id("customer_id", customer_id)?;
        customer_in(&self.read()?.open_table(CUSTOMERS)?, org_id, customer_id)
    }

    /// One page of `org_id`'s customers admitted by `filter`, by id.
    pub fn customers(
        &self,
        org_id: &str,
        filter: &CustomerFilter,
        page: &PageRequest<String>,
    ) -> Result<Page<Customer>, DirectoryError> {
        let search = search::text("search", &filter.search)?;
        let txn = self.read()?;
        let customers = txn.open_table(CUSTOMERS)?;
        let admitted = org_records(&customers, org_id, page.after.as_deref())?.filter(
            |customer: &Result<Customer, DirectoryError>| {
                customer
                    .as_ref()
                    .map_or(true, |customer| filter.admits(customer, &search))
            },
        );
        page.page(admitted, |customer| customer.id.clone())
    }

    /// Deletes a contact without installations; their email stays reserved.
    pub fn delete_customer(
        &self,
        caller: &Caller,
        customer_id: &str,
    ) -> Result<Customer, DirectoryError> {
        let customer_id = validate::id("customer_id", customer_id)?;
        self.change(&caller.org_id, &caller.member_id, |change| {
            let mut customers = change.txn.open_table(CUSTOMERS)?;
            let customer = customer_in(&customers, change.org_id, customer_id)?;
            let links = change.txn.open_table(CUSTOMER_INSTALLATIONS)?;
            let mut installations = links.range(
                (change.org_id, customer_id, "")..=(change.org_id, customer_id, "\u{10FFFF}"),
            )?;
            if installations.next().is_some() {
                return Err(DirectoryError::CustomerHasInstallations(
                    customer_id.to_owned(),
                ));
            }
            customers.remove((change.org_id, customer_id))?;
            drop(customers);
            change.record(
                AuditAction::CustomerDeleted,
                customer_id,
                format!("deleted {}", customer.name),
            )?;
            Ok(customer)
        })
    }
}

impl Change<'_> {
    /// Stores a new contact of this change's organisation, refusing an email any contact
    /// (past or present) has.
    pub(super) fn insert_customer(&self, valid: ValidCustomer) -> Result<Customer, DirectoryError> {
        let customer = Customer {
            id: new_id("cus_"),
            org_id: self.org_id.to_owned(),
            customer_type: valid.customer_type,
            name: valid.name,
            category: valid.category,
            dealer_code: valid.dealer_code,
            estimated_monthly_revenue: valid.estimated_monthly_revenue,
            email: valid.email,
            phone: valid.phone,
            contact_preference: valid.contact_preference,
            details: valid.details,
            approval: Approval {
                status: ApprovalStatus::New,
                assignee_member_id: None,
                credit_reference: String::new(),
                billing_reference: String::new(),
                changed_at_ms: self.at_ms,
                changed_by_member_id: self.actor_id.to_owned(),
            },
            created_at_ms: self.at_ms,
            created_by_member_id: self.actor_id.to_owned(),
        };
        if let Some(email) = &customer.email {
            self.reserve_email(email, &customer.id)?;
        }
        let collided = self
            .txn
            .open_table(CUSTOMERS)?
            .insert(
                (self.org_id, customer.id.as_str()),
                encode(&customer)?.as_slice(),
            )?
            .is_some();
        if collided {
            return Err(DirectoryError::Corrupt("customer id collision".to_owned()));
        }
        self.record(
            AuditAction::CustomerCreated,
            &customer.id,
            format!(
                "created {} ({:?}, approval New)",
                customer.name, customer.customer_type
            ),
        )?;
        Ok(customer)
    }

    /// Stores `customer` as it is now.
    pub(super) fn put_customer(&self, customer: &Customer) -> Result<(), DirectoryError> {
        self.txn.open_table(CUSTOMERS)?.insert(
            (self.org_id, customer.id.as_str()),
            encode(customer)?.as_slice(),
        )?;
        Ok(())
    }

    /// Takes `email` for `customer_id` for good, refusing one any contact ever had.
    pub(super) fn reserve_email(
        &self,
        email: &str,
        customer_id: &str,
    ) -> Result<(), DirectoryError> {
        let mut emails = self.txn.open_table(CUSTOMER_EMAILS)?;
        let key = email.to_lowercase();
        if emails.get((self.org_id, key.as_str()))?.is_some() {
            return Err(DirectoryError::CustomerEmailTaken(email.to_owned()));
        }
        emails.insert((self.org_id, key.as_str()), customer_id)?;
        Ok(())
    }
}
