//! Credit in and out by people: payments, their reversals, and operators' adjustments.
//!
//! A payment is credit and counts toward the total system cost; the first one anchors the
//! instalment schedule. A reversal undoes one payment once, as its own negative entry under the
//! same provider reference. A completed plan stays completed even if a payment is later
//! reversed: completion is "for good", and instalments skipped after it cannot be resurrected
//! consistently. An adjustment corrects the balance only, never total paid.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::validate_text;
use super::{Account, AdjustmentError, Effects, PaymentError, PlanState, ReversalError};
use crate::ledger::{EntryKind, EntryRef, LedgerEntry, PaymentChannel};
use crate::money;

/// A credit deposit as received from a provider or entered by a team member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    /// Amount credited: positive, at most 10^12, at most 12 decimal places.
    pub amount: Decimal,
    /// How the money arrived.
    pub channel: PaymentChannel,
    /// The provider's transaction reference: the idempotency key storage deduplicates on.
    pub provider_ref: String,
    /// The user or integration that entered it, for the audit trail.
    pub entered_by: String,
}

/// An operator's request to undo a payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reversal {
    /// Why (charge-back, duplicate, wrong account), for the audit trail.
    pub reason: String,
    /// Who reversed it.
    pub entered_by: String,
}

/// An operator's correction of the balance, of either sign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Adjustment {
    /// Signed change to the balance: non-zero, magnitude at most 10^12.
    pub amount: Decimal,
    /// The operator's idempotency key for this adjustment.
    pub reference: String,
    /// Why, for the audit trail.
    pub reason: String,
    /// Who entered it.
    pub entered_by: String,
}

impl Account {
    /// Credits a payment received at `at`. The first payment activates the plan and anchors the
    /// instalment schedule; a payment covering the total system cost completes the plan; one
    /// bringing the balance back to the limit restores the load.
    pub fn apply_payment(
        &mut self,
        payment: &Payment,
        at: DateTime<Utc>,
    ) -> Result<Effects, PaymentError> {
        money::validate_positive(payment.amount).map_err(PaymentError::Amount)?;
        validate_text(&payment.provider_ref).map_err(PaymentError::ProviderRef)?;
        validate_text(&payment.entered_by).map_err(PaymentError::EnteredBy)?;
        let balance = self
            .balance
            .checked_add(payment.amount)
            .ok_or(PaymentError::WouldOverflow)?;
        let total_paid = self
            .total_paid
            .checked_add(payment.amount)
            .ok_or(PaymentError::WouldOverflow)?;

        self.balance = balance;
        self.total_paid = total_paid;
        if self.plan_state == PlanState::PendingFirstDeposit {
            self.plan_state = PlanState::Active;
            self.first_deposit_at = Some(at);
        }
        let entry = LedgerEntry {
            kind: EntryKind::Payment,
            amount: payment.amount,
            reason: format!("payment via {:?}", payment.channel).into(),
            at,
            reference: EntryRef::Payment {
                provider_ref: payment.provider_ref.clone(),
                channel: payment.channel,
            },
            entered_by: Some(payment.entered_by.clone()),
        };
        let completed = self.try_complete(at);
        Ok(self.effects(vec![entry], completed))
    }

    /// Reverses the payment `original` at `at`. The caller looks the payment up by reference
    /// and says whether a reversal of it already exists (`ledger::is_reversed`), since the
    /// account holds no history. May switch the load off if the balance falls below the limit.
    pub fn reverse_payment(
        &mut self,
        original: &LedgerEntry,
        already_reversed: bool,
        reversal: &Reversal,
        at: DateTime<Utc>,
    ) -> Result<Effects, ReversalError> {
        if original.kind != EntryKind::Payment {
            return Err(ReversalError::NotAPayment);
        }
        if already_reversed {
            return Err(ReversalError::AlreadyReversed);
        }
        validate_text(&reversal.reason).map_err(ReversalError::Reason)?;
        validate_text(&reversal.entered_by).map_err(ReversalError::EnteredBy)?;
        let total_paid = self
            .total_paid
            .checked_sub(original.amount)
            .ok_or(ReversalError::WouldOverflow)?;
        if total_paid < Decimal::ZERO {
            return Err(ReversalError::ExceedsTotalPaid);
        }
        let balance = self
            .balance
            .checked_sub(original.amount)
            .ok_or(ReversalError::WouldOverflow)?;

        self.balance = balance;
        self.total_paid = total_paid;
        let entry = LedgerEntry {
            kind: EntryKind::Reversal,
            amount: -original.amount,
            reason: reversal.reason.as_str().into(),
            at,
            reference: original.reference.clone(),
            entered_by: Some(reversal.entered_by.clone()),
        };
        Ok(self.effects(vec![entry], false))
    }

    /// Applies an operator's adjustment at `at`: changes the balance (and so possibly the
    /// load), never total paid or plan completion.
    pub fn apply_adjustment(
        &mut self,
        adjustment: &Adjustment,
        at: DateTime<Utc>,
    ) -> Result<Effects, AdjustmentError> {
        if adjustment.amount.is_zero() {
            return Err(AdjustmentError::AmountZero);
        }
        money::validate_signed(adjustment.amount).map_err(AdjustmentError::Amount)?;
        validate_text(&adjustment.reference).map_err(AdjustmentError::Reference)?;
        validate_text(&adjustment.reason).map_err(AdjustmentError::Reason)?;
        validate_text(&adjustment.entered_by).map_err(AdjustmentError::EnteredBy)?;
        let balance = self
            .balance
            .checked_add(adjustment.amount)
            .ok_or(AdjustmentError::WouldOverflow)?;

        self.balance = balance;
        let entry = LedgerEntry {
            kind: EntryKind::Adjustment,
            amount: adjustment.amount,
            reason: adjustment.reason.as_str().into(),
            at,
            reference: EntryRef::Operator(adjustment.reference.clone()),
            entered_by: Some(adjustment.entered_by.clone()),
        };
        Ok(self.effects(vec![entry], false))
    }
}
