//! The customer approval workflow of the approval portal: a new customer is credit-checked
//! (passed, referred for further checks, or failed), and a passed one is put on the billing
//! system with a billing reference. Only the transitions of [`ApprovalStatus::may_become`]
//! exist; the assignee and the references can change in any status.

use serde::{Deserialize, Serialize};

use super::audit::AuditAction;
use super::customers::{CUSTOMERS, customer_in};
use super::records::{MEMBERS, member_in};
use super::{Directory, DirectoryError, encode};
use crate::roles::Caller;
use crate::validate::{self, FieldViolation};

/// Where a customer is in the approval workflow.
///
/// Stored by variant position: add new statuses at the end only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ApprovalStatus {
    /// Created by the partner and submitted.
    New,
    /// Passed a credit check.
    PassedCreditRef,
    /// Needs further credit checks.
    Referred,
    /// Failed the credit check.
    FailedCreditRef,
    /// On the billing system, ready for contract submission.
    Billing,
}

impl ApprovalStatus {
    /// Every status in workflow order, as the dashboard counts them.
    pub const ALL: [ApprovalStatus; 5] = [
        ApprovalStatus::New,
        ApprovalStatus::PassedCreditRef,
        ApprovalStatus::Referred,
        ApprovalStatus::FailedCreditRef,
        ApprovalStatus::Billing,
    ];

    /// The status's name, as errors and audit descriptions show it.
    pub fn name(self) -> &'static str {
        match self {
            ApprovalStatus::New => "New",
            ApprovalStatus::PassedCreditRef => "Passed Credit Ref",
            ApprovalStatus::Referred => "Referred",
            ApprovalStatus::FailedCreditRef => "Failed Credit Ref",
            ApprovalStatus::Billing => "Billing",
        }
    }

    /// Whether the workflow allows moving from this status to `next`.
    pub fn may_become(self, next: ApprovalStatus) -> bool {
        use ApprovalStatus::{Billing, FailedCreditRef, New, PassedCreditRef, Referred};
        matches!(
            (self, next),
            (New, PassedCreditRef | Referred | FailedCreditRef)
                | (Referred, PassedCreditRef | FailedCreditRef)
                | (PassedCreditRef, Billing)
        )
    }
}

/// A customer's place in the approval workflow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// The current status.
    pub status: ApprovalStatus,
    /// The member processing the customer.
    pub assignee_member_id: Option<String>,
    /// The credit check's reference; empty if none yet.
    pub credit_reference: String,
    /// The billing system's reference; required to enter [`ApprovalStatus::Billing`].
    pub billing_reference: String,
    /// When the approval last changed, unix milliseconds.
    pub changed_at_ms: i64,
    /// Who changed it.
    pub changed_by_member_id: String,
}

/// An approval change as the request gave it; `None` keeps the current value.
#[derive(Clone, Debug, Default)]
pub struct ApprovalChange {
    /// The customer (field `customer_id`).
    pub customer_id: String,
    /// The status to move to.
    pub status: Option<ApprovalStatus>,
    /// The assignee (field `assignee_member_id`); empty unassigns.
    pub assignee_member_id: Option<String>,
    /// Field `credit_reference`.
    pub credit_reference: Option<String>,
    /// Field `billing_reference`.
    pub billing_reference: Option<String>,
}

impl Directory {
    /// Applies `request` to a customer of the caller's organisation: references and assignee
    /// first, then the transition, which must be allowed and, into Billing, needs a billing
    /// reference. A change equal to the current state records nothing.
    pub fn change_approval(
        &self,
        caller: &Caller,
        request: &ApprovalChange,
    ) -> Result<super::Customer, DirectoryError> {
        let customer_id = validate::id("customer_id", &request.customer_id)?;
        let assignee = match request.assignee_member_id.as_deref().map(str::trim) {
            None => None,
            Some("") => Some(None),
            Some(member_id) => Some(Some(validate::id("assignee_member_id", member_id)?)),
        };
        let reference = |field, raw: &Option<String>| {
            raw.as_deref()
                .map(|raw| super::customer_fields::optional_text(field, raw))
                .transpose()
        };
        let credit_reference = reference("credit_reference", &request.credit_reference)?;
        let billing_reference = reference("billing_reference", &request.billing_reference)?;
        self.change(&caller.org_id, &caller.member_id, |change| {
            let mut customers = change.txn.open_table(CUSTOMERS)?;
            let mut customer = customer_in(&customers, change.org_id, customer_id)?;
            let before = customer.approval.clone();
            let approval = &mut customer.approval;
            if let Some(Some(member_id)) = assignee {
                member_in(&change.txn.open_table(MEMBERS)?, change.org_id, member_id)?;
            }
            if let Some(assignee) = assignee {
                approval.assignee_member_id = assignee.map(str::to_owned);
            }
            if let Some(credit_reference) = credit_reference {
                approval.credit_reference = credit_reference;
            }
            if let Some(billing_reference) = billing_reference {
                approval.billing_reference = billing_reference;
            }
            if let Some(next) = request.status.filter(|next| *next != approval.status) {
                if !approval.status.may_become(next) {
                    return Err(DirectoryError::ApprovalTransition {
                        from: approval.status.name(),
                        to: next.name(),
                    });
                }
                if next == ApprovalStatus::Billing && approval.billing_reference.is_empty() {
                    return Err(FieldViolation::new(
                        "billing_reference",
                        "required to put a customer on billing",
                    )
                    .into());
                }
                approval.status = next;
            }
            if *approval == before {
                return Ok(customer);
            }
            approval.changed_at_ms = change.at_ms;
            approval.changed_by_member_id = change.actor_id.to_owned();
            let description = describe(&before, approval);
            customers.insert((change.org_id, customer_id), encode(&customer)?.as_slice())?;
            drop(customers);
            change.record(
                AuditAction::CustomerApprovalChanged,
                customer_id,
                description,
            )?;
            Ok(customer)
        })
    }
}

/// What changed between two approvals, for the audit log.
fn describe(before: &Approval, after: &Approval) -> String {
    let mut changes = Vec::new();
    if before.status != after.status {
        changes.push(format!(
            "status {} → {}",
            before.status.name(),
            after.status.name()
        ));
    }
    if before.assignee_member_id != after.assignee_member_id {
        changes.push(format!(
            "assignee {} → {}",
            before.assignee_member_id.as_deref().unwrap_or("none"),
            after.assignee_member_id.as_deref().unwrap_or("none")
        ));
    }
    if before.credit_reference != after.credit_reference {
        changes.push(format!("credit reference {:?}", after.credit_reference));
    }
    if before.billing_reference != after.billing_reference {
        changes.push(format!("billing reference {:?}", after.billing_reference));
    }
    changes.join("; ")
}

#[cfg(test)]
mod tests {
    use super::ApprovalStatus::{self, *};

    #[test]
    fn only_the_workflow_transitions_are_allowed() {
        let allowed = [
            (New, PassedCreditRef),
            (New, Referred),
            (New, FailedCreditRef),
            (Referred, PassedCreditRef),
            (Referred, FailedCreditRef),
            (PassedCreditRef, Billing),
        ];
        for from in ApprovalStatus::ALL {
            for to in ApprovalStatus::ALL {
                assert_eq!(
                    from.may_become(to),
                    allowed.contains(&(from, to)),
                    "{} → {}",
                    from.name(),
                    to.name()
                );
            }
        }
    }
}
