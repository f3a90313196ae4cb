//! Editing a contact: every field may change except an email once set, which stays the
//! contact's for good (see [`super::customers`]). The edited contact must still have an
//! email or a phone and prefer a channel it has.

use rust_decimal::Decimal;

use super::audit::AuditAction;
use super::customer_fields::{optional_email, optional_text};
use super::customers::{
    CUSTOMERS, ContactPreference, Customer, CustomerType, UserDetails, check_contact, customer_in,
    optional_phone, valid_details,
};
use super::{Directory, DirectoryError};
use crate::amount::{self, Sign};
use crate::roles::Caller;
use crate::validate::{self, FieldViolation};

/// Changes to a contact; `None` keeps the current value.
#[derive(Clone, Debug, Default)]
pub struct CustomerChanges {
    /// Field `customer_id`.
    pub customer_id: String,
    /// Field `type`.
    pub customer_type: Option<CustomerType>,
    /// Field `name`.
    pub name: Option<String>,
    /// Field `category`.
    pub category: Option<String>,
    /// Field `dealer_code`.
    pub dealer_code: Option<String>,
    /// Field `estimated_monthly_revenue`; empty clears it.
    pub estimated_monthly_revenue: Option<String>,
    /// Field `email`: may be set once, never changed.
    pub email: Option<String>,
    /// Field `phone`; empty clears it.
    pub phone: Option<String>,
    /// Field `contact_preference`.
    pub contact_preference: Option<ContactPreference>,
    /// Fields `address` and `id_number`, replaced together.
    pub details: Option<UserDetails>,
}

impl Directory {
    /// Changes a contact of the caller's organisation. Values equal to the current ones
    /// change nothing and record nothing.
    pub fn update_customer(
        &self,
        caller: &Caller,
        changes: &CustomerChanges,
    ) -> Result<Customer, DirectoryError> {
        let customer_id = validate::id("customer_id", &changes.customer_id)?;
        let country = self.organisation(&caller.org_id)?.country;
        let valid = ValidChanges::validate(changes, &country)?;
        self.change(&caller.org_id, &caller.member_id, |change| {
            let mut customer = customer_in(
                &change.txn.open_table(CUSTOMERS)?,
                change.org_id,
                customer_id,
            )?;
            let before = customer.clone();
            valid.apply(&mut customer)?;
            if customer == before {
                return Ok(customer);
            }
            check_contact(
                customer.email.as_deref(),
                customer.phone.as_deref(),
                customer.contact_preference,
            )?;
            if let (None, Some(email)) = (&before.email, &customer.email) {
                change.reserve_email(email, customer_id)?;
            }
            change.put_customer(&customer)?;
            change.record(
                AuditAction::CustomerUpdated,
                customer_id,
                describe_changes(&before, &customer),
            )?;
            Ok(customer)
        })
    }
}

/// [`CustomerChanges`] whose fields passed validation.
struct ValidChanges {
    customer_type: Option<CustomerType>,
    name: Option<String>,
    category: Option<String>,
    dealer_code: Option<String>,
    estimated_monthly_revenue: Option<Option<Decimal>>,
    email: Option<Option<String>>,
    phone: Option<Option<String>>,
    contact_preference: Option<ContactPreference>,
    details: Option<UserDetails>,
}

impl ValidChanges {
    fn validate(changes: &CustomerChanges, country: &str) -> Result<ValidChanges, FieldViolation> {
        let text = |field, raw: &Option<String>| {
            raw.as_deref()
                .map(|raw| optional_text(field, raw))
                .transpose()
        };
        Ok(ValidChanges {
            customer_type: changes.customer_type,
            name: changes
                .name
                .as_deref()
                .map(|name| validate::name("name", name))
                .transpose()?,
            category: text("category", &changes.category)?,
            dealer_code: text("dealer_code", &changes.dealer_code)?,
            estimated_monthly_revenue: changes
                .estimated_monthly_revenue
                .as_deref()
                .map(|raw| amount::optional("estimated_monthly_revenue", raw, Sign::NonNegative))
                .transpose()?,
            email: changes
                .email
                .as_deref()
                .map(|raw| optional_email("email", raw))
                .transpose()?,
            phone: changes
                .phone
                .as_deref()
                .map(|raw| optional_phone(raw, country))
                .transpose()?,
            contact_preference: changes.contact_preference,
            details: changes.details.as_ref().map(valid_details).transpose()?,
        })
    }

    /// Applies the changes; refuses changing an email that is already set.
    fn apply(self, customer: &mut Customer) -> Result<(), FieldViolation> {
        if let Some(email) = self.email {
            if customer.email.is_some() && customer.email != email {
                return Err(FieldViolation::new("email", "cannot be changed once set"));
            }
            customer.email = email;
        }
        let keep = |current: &mut String, new: Option<String>| {
            if let Some(new) = new {
                *current = new;
            }
        };
        keep(&mut customer.name, self.name);
        keep(&mut customer.category, self.category);
        keep(&mut customer.dealer_code, self.dealer_code);
        if let Some(customer_type) = self.customer_type {
            customer.customer_type = customer_type;
        }
        if let Some(revenue) = self.estimated_monthly_revenue {
            customer.estimated_monthly_revenue = revenue;
        }
        if let Some(phone) = self.phone {
            customer.phone = phone;
        }
        if let Some(preference) = self.contact_preference {
            customer.contact_preference = preference;
        }
        if let Some(details) = self.details {
            customer.details = details;
        }
        Ok(())
    }
}

/// What an update changed, for the audit log (field names only: contact data stays in the
/// record, not the log).
fn describe_changes(before: &Customer, after: &Customer) -> String {
    let fields = [
        ("type", before.customer_type != after.customer_type),
        ("name", before.name != after.name),
        ("category", before.category != after.category),
        ("dealer_code", before.dealer_code != after.dealer_code),
        (
            "estimated_monthly_revenue",
            before.estimated_monthly_revenue != after.estimated_monthly_revenue,
        ),
        ("email", before.email != after.email),
        ("phone", before.phone != after.phone),
        (
            "contact_preference",
            before.contact_preference != after.contact_preference,
        ),
        ("details", before.details != after.details),
    ];
    let changed: Vec<&str> = fields
        .into_iter()
        .filter_map(|(field, changed)| changed.then_some(field))
        .collect();
    format!("{}: changed {}", after.name, changed.join(", "))
}
