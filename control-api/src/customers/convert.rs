//! Conversions between the customer and installation records of the directory and the wire
//! messages of `customers.proto`, so the handlers only move values across.

use sunledger_proto::api::v1 as wire;

use crate::amount;
use crate::convert::timestamp;
use crate::directory::installations::{
    HouseholdDetails, Installation, InstallationStatus, PlanAssignment, SystemDetails,
};
use crate::directory::registration::PlanChoice;
use crate::directory::{
    Approval, ApprovalStatus, ContactPreference, Customer, CustomerType, NewCustomer, UserDetails,
};
use crate::validate::FieldViolation;

/// The customer type a request names in `field`; UNSPECIFIED and unknown numbers are
/// invalid.
pub fn customer_type_from_wire(
    field: &'static str,
    value: i32,
) -> Result<CustomerType, FieldViolation> {
    match wire::CustomerType::try_from(value) {
        Ok(wire::CustomerType::Consumer) => Ok(CustomerType::Consumer),
        Ok(wire::CustomerType::Company) => Ok(CustomerType::Company),
        Ok(wire::CustomerType::Unspecified) | Err(_) => Err(FieldViolation::new(
            field,
            "must be CUSTOMER_TYPE_CONSUMER or CUSTOMER_TYPE_COMPANY",
        )),
    }
}

/// The contact preference a request names in `field`; UNSPECIFIED and unknown numbers are
/// invalid.
pub fn preference_from_wire(
    field: &'static str,
    value: i32,
) -> Result<ContactPreference, FieldViolation> {
    match wire::ContactPreference::try_from(value) {
        Ok(wire::ContactPreference::Email) => Ok(ContactPreference::Email),
        Ok(wire::ContactPreference::Phone) => Ok(ContactPreference::Phone),
        Ok(wire::ContactPreference::Unspecified) | Err(_) => Err(FieldViolation::new(
            field,
            "must be CONTACT_PREFERENCE_EMAIL or CONTACT_PREFERENCE_PHONE",
        )),
    }
}

/// The approval status a request names in `field`; UNSPECIFIED means "any" or "keep"
/// (`None`), unknown numbers are invalid.
pub fn approval_status_from_wire(
    field: &'static str,
    value: i32,
) -> Result<Option<ApprovalStatus>, FieldViolation> {
    match wire::ApprovalStatus::try_from(value) {
        Ok(wire::ApprovalStatus::Unspecified) => Ok(None),
        Ok(wire::ApprovalStatus::New) => Ok(Some(ApprovalStatus::New)),
        Ok(wire::ApprovalStatus::PassedCreditRef) => Ok(Some(ApprovalStatus::PassedCreditRef)),
        Ok(wire::ApprovalStatus::Referred) => Ok(Some(ApprovalStatus::Referred)),
        Ok(wire::ApprovalStatus::FailedCreditRef) => Ok(Some(ApprovalStatus::FailedCreditRef)),
        Ok(wire::ApprovalStatus::Billing) => Ok(Some(ApprovalStatus::Billing)),
        Err(_) => Err(FieldViolation::new(field, "not an ApprovalStatus")),
    }
}

impl From<ApprovalStatus> for wire::ApprovalStatus {
    fn from(status: ApprovalStatus) -> wire::ApprovalStatus {
        match status {
            ApprovalStatus::New => wire::ApprovalStatus::New,
            ApprovalStatus::PassedCreditRef => wire::ApprovalStatus::PassedCreditRef,
            ApprovalStatus::Referred => wire::ApprovalStatus::Referred,
            ApprovalStatus::FailedCreditRef => wire::ApprovalStatus::FailedCreditRef,
            ApprovalStatus::Billing => wire::ApprovalStatus::Billing,
        }
    }
}

/// A contact as a request describes it (in `CreateCustomer` or a registration).
pub fn new_customer(details: wire::CustomerDetails) -> Result<NewCustomer, FieldViolation> {
    Ok(NewCustomer {
        customer_type: customer_type_from_wire("type", details.r#type)?,
        name: details.name,
        category: details.category,
        dealer_code: details.dealer_code,
        estimated_monthly_revenue: details.estimated_monthly_revenue,
        email: details.email,
        phone: details.phone,
        contact_preference: preference_from_wire("contact_preference", details.contact_preference)?,
        details: details.details.map(user_details).unwrap_or_default(),
    })
}

/// Basic user details as a request gives them.
pub fn user_details(details: wire::UserDetails) -> UserDetails {
    UserDetails {
        address: details.address,
        id_number: details.id_number,
    }
}

/// System details as a request gives them (validated by the directory).
pub fn system_details(system: wire::SystemDetails) -> SystemDetails {
    SystemDetails {
        panel_capacity_w: system.panel_capacity_w,
        battery_capacity_wh: system.battery_capacity_wh,
        battery_type: system.battery_type,
        appliances: system.appliances,
        notes: system.notes,
    }
}

/// Household details as a request gives them (validated by the directory).
pub fn household_details(household: wire::HouseholdDetails) -> HouseholdDetails {
    HouseholdDetails {
        members: household.members,
        children: household.children,
        occupation: household.occupation,
        previous_energy_source: household.previous_energy_source,
    }
}

/// The plan chosen at registration.
pub fn plan_choice(plan: wire::PlanChoice) -> PlanChoice {
    PlanChoice {
        plan_id: plan.plan_id,
        down_payment: plan.down_payment,
        total_system_cost: plan.total_system_cost,
        negative_charge_limit: plan.negative_charge_limit,
        auto_switch_off: plan.auto_switch_off,
    }
}

/// A location as a request gives it: `(latitude, longitude)`.
pub fn location(location: wire::Location) -> (f64, f64) {
    (location.latitude, location.longitude)
}

impl From<Customer> for wire::Customer {
    fn from(customer: Customer) -> wire::Customer {
        let customer_type = match customer.customer_type {
            CustomerType::Consumer => wire::CustomerType::Consumer,
            CustomerType::Company => wire::CustomerType::Company,
        };
        let preference = match customer.contact_preference {
            ContactPreference::Email => wire::ContactPreference::Email,
            ContactPreference::Phone => wire::ContactPreference::Phone,
        };
        wire::Customer {
            id: customer.id,
            r#type: customer_type.into(),
            name: customer.name,
            category: customer.category,
            dealer_code: customer.dealer_code,
            estimated_monthly_revenue: customer
                .estimated_monthly_revenue
                .map(amount::to_wire)
                .unwrap_or_default(),
            email: customer.email.unwrap_or_default(),
            phone: customer.phone.unwrap_or_default(),
            contact_preference: preference.into(),
            details: Some(wire::UserDetails {
                address: customer.details.address,
                id_number: customer.details.id_number,
            }),
            approval: Some(customer.approval.into()),
            created_at: Some(timestamp(customer.created_at_ms)),
            created_by_member_id: customer.created_by_member_id,
        }
    }
}

impl From<Approval> for wire::Approval {
    fn from(approval: Approval) -> wire::Approval {
        wire::Approval {
            status: wire::ApprovalStatus::from(approval.status).into(),
            assignee_member_id: approval.assignee_member_id.unwrap_or_default(),
            credit_reference: approval.credit_reference,
            billing_reference: approval.billing_reference,
            changed_at: Some(timestamp(approval.changed_at_ms)),
            changed_by_member_id: approval.changed_by_member_id,
        }
    }
}

impl From<Installation> for wire::Installation {
    fn from(installation: Installation) -> wire::Installation {
        let status = match installation.status {
            InstallationStatus::Partial => wire::InstallationStatus::Partial,
            InstallationStatus::Complete => wire::InstallationStatus::Complete,
            InstallationStatus::Deleted => wire::InstallationStatus::Deleted,
        };
        wire::Installation {
            id: installation.id,
            customer_id: installation.customer_id.unwrap_or_default(),
            unit_serial: installation.unit_serial.unwrap_or_default(),
            status: status.into(),
            location: Some(wire::Location {
                latitude: installation.location.latitude,
                longitude: installation.location.longitude,
            }),
            plan: installation.plan.map(plan_to_wire),
            partner_organisation: installation.partner_organisation,
            technician_member_id: installation.technician_member_id,
            system: Some(wire::SystemDetails {
                panel_capacity_w: installation.system.panel_capacity_w,
                battery_capacity_wh: installation.system.battery_capacity_wh,
                battery_type: installation.system.battery_type,
                appliances: installation.system.appliances,
                notes: installation.system.notes,
            }),
            household: Some(wire::HouseholdDetails {
                members: installation.household.members,
                children: installation.household.children,
                occupation: installation.household.occupation,
                previous_energy_source: installation.household.previous_energy_source,
            }),
            created_at: Some(timestamp(installation.created_at_ms)),
            completed_at: installation.completed_at_ms.map(timestamp),
            deleted_at: installation.deleted_at_ms.map(timestamp),
        }
    }
}

fn plan_to_wire(plan: PlanAssignment) -> wire::PlanAssignment {
    wire::PlanAssignment {
        plan_id: plan.plan_id,
        down_payment: amount::to_wire(plan.down_payment),
        total_system_cost: plan
            .total_system_cost
            .map(amount::to_wire)
            .unwrap_or_default(),
        negative_charge_limit: amount::to_wire(plan.negative_charge_limit),
        auto_switch_off: plan.auto_switch_off,
    }
}
