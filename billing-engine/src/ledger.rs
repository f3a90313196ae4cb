//! Ledger entries: the append-only record of every change to an account's credit balance.
//!
//! An account's balance is, by definition, the sum of its entries' amounts, and its total paid
//! the sum of its payment and reversal amounts; [`replay`] recomputes both so the stored hot
//! state can be checked against the record (`Account::check_ledger`). Each entry carries the
//! idempotency key it came from (a provider's payment reference, a device reading's
//! `(boot, seq)`, an instalment index) so storage can refuse a second copy.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

mod reason;

pub use reason::EntryReason;

/// What caused a ledger entry, which decides how it counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EntryKind {
    /// A customer's credit deposit (positive); counts toward total paid.
    Payment,
    /// Energy consumed under a usage-based tariff (negative or zero).
    UsageCharge,
    /// An instalment of an instalment-based tariff that fell due (negative or zero).
    InstalmentCharge,
    /// An operator's correction of either sign; does not count toward total paid.
    Adjustment,
    /// The undoing of one payment (negative); reduces total paid.
    Reversal,
    /// Credit turned into days on a keypad unit's token (negative): see [`crate::keypad`].
    TokenTime,
}

/// How a payment reached the organisation, kept for reconciliation with the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PaymentChannel {
    /// A mobile-money provider's callback (M-Pesa, MTN MoMo, Airtel Money…).
    MobileMoney,
    /// Entered by hand by a team member (cash, cheque).
    Manual,
    /// A bank transfer.
    BankTransfer,
    /// A card payment.
    Card,
    /// Any other channel.
    Other,
}

/// Identifies one device reading: `seq` increases within one `boot` of the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ReadingId {
    /// The device's boot counter.
    pub boot: u32,
    /// The message sequence number within the boot.
    pub seq: u64,
}

/// The idempotency key an entry came from; storage deduplicates on it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EntryRef {
    /// A payment, or the reversal of one: the provider's reference, unique per organisation.
    Payment {
        /// The provider's (or operator's) payment reference.
        provider_ref: String,
        /// The channel the payment came through.
        channel: PaymentChannel,
    },
    /// The device reading whose consumption was charged.
    Reading(ReadingId),
    /// The 1-based index of the instalment charged.
    Instalment(u32),
    /// An operator-chosen reference for an adjustment.
    Operator(String),
    /// The count of the (first) token carrying the days bought.
    Token(u32),
}

/// One append-only change to an account's credit balance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// What caused the change.
    pub kind: EntryKind,
    /// Signed change to the credit balance, at full precision.
    #[serde(with = "crate::compact::decimal")]
    pub amount: Decimal,
    /// Human-readable explanation shown in statements and audits.
    pub reason: EntryReason,
    /// When the change took effect (payment received, reading taken, instalment due).
    #[serde(with = "crate::compact::instant")]
    pub at: DateTime<Utc>,
    /// The idempotency key the change came from.
    pub reference: EntryRef,
    /// The user or integration that entered it; `None` for charges the engine computed.
    pub entered_by: Option<String>,
}

impl LedgerEntry {
    /// The provider's payment reference, for payments and reversals: the deduplication key.
    pub fn payment_ref(&self) -> Option<&str> {
        match &self.reference {
            EntryRef::Payment { provider_ref, .. } => Some(provider_ref),
            EntryRef::Reading(_)
            | EntryRef::Instalment(_)
            | EntryRef::Operator(_)
            | EntryRef::Token(_) => None,
        }
    }

    /// The device reading a usage charge came from.
    pub fn reading_id(&self) -> Option<ReadingId> {
        match self.reference {
            EntryRef::Reading(id) => Some(id),
            EntryRef::Payment { .. }
            | EntryRef::Instalment(_)
            | EntryRef::Operator(_)
            | EntryRef::Token(_) => None,
        }
    }

    /// The index of the instalment an instalment charge is for.
    pub fn instalment_index(&self) -> Option<u32> {
        match self.reference {
            EntryRef::Instalment(index) => Some(index),
            EntryRef::Payment { .. }
            | EntryRef::Reading(_)
            | EntryRef::Operator(_)
            | EntryRef::Token(_) => None,
        }
    }

    /// Whether the entry counts toward total paid (payments and their reversals).
    pub fn counts_as_paid(&self) -> bool {
        match self.kind {
            EntryKind::Payment | EntryKind::Reversal => true,
            EntryKind::UsageCharge
            | EntryKind::InstalmentCharge
            | EntryKind::Adjustment
            | EntryKind::TokenTime => false,
        }
    }
}

/// The totals a ledger implies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Totals {
    /// Sum of every entry's amount: the credit balance.
    pub balance: Decimal,
    /// Sum of payments net of reversals (the down-payment is not a ledger entry).
    pub total_paid: Decimal,
}

/// Why a ledger could not be replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// A running sum left `Decimal`'s range at the entry with this position.
    #[error("sum overflows at entry {0}")]
    WouldOverflow(usize),
}

impl ReplayError {
    /// Always `false`: replaying the same entries overflows again.
    pub fn is_transient(&self) -> bool {
        match self {
            ReplayError::WouldOverflow(_) => false,
        }
    }
}

/// Recomputes balance and total paid from the entries, in any order (sums commute).
pub fn replay<'a>(
    entries: impl IntoIterator<Item = &'a LedgerEntry>,
) -> Result<Totals, ReplayError> {
    let mut totals = Totals::default();
    for (position, entry) in entries.into_iter().enumerate() {
        let overflow = ReplayError::WouldOverflow(position);
        totals.balance = totals.balance.checked_add(entry.amount).ok_or(overflow)?;
        if entry.counts_as_paid() {
            totals.total_paid = totals
                .total_paid
                .checked_add(entry.amount)
                .ok_or(overflow)?;
        }
    }
    Ok(totals)
}

/// The payment entry with this provider reference, if any: what a reversal needs.
pub fn find_payment<'a>(entries: &'a [LedgerEntry], provider_ref: &str) -> Option<&'a LedgerEntry> {
    entries
        .iter()
        .find(|entry| entry.kind == EntryKind::Payment && entry.payment_ref() == Some(provider_ref))
}

/// Whether the payment with this provider reference has already been reversed.
pub fn is_reversed(entries: &[LedgerEntry], provider_ref: &str) -> bool {
    entries
        .iter()
        .any(|entry| entry.kind == EntryKind::Reversal && entry.payment_ref() == Some(provider_ref))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn entry(kind: EntryKind, amount: Decimal, reference: EntryRef) -> LedgerEntry {
        LedgerEntry {
            kind,
            amount,
            reason: "".into(),
            at: DateTime::UNIX_EPOCH,
            reference,
            entered_by: None,
        }
    }

    fn payment_ref(provider_ref: &str) -> EntryRef {
        EntryRef::Payment {
            provider_ref: provider_ref.to_owned(),
            channel: PaymentChannel::MobileMoney,
        }
    }

    #[test]
    fn replay_sums_every_entry_into_balance_and_payments_into_total_paid() {
        let reading = ReadingId { boot: 1, seq: 7 };
        let entries = [
            entry(EntryKind::Payment, dec!(10), payment_ref("A")),
            entry(EntryKind::Payment, dec!(5), payment_ref("B")),
            entry(
                EntryKind::UsageCharge,
                dec!(-0.04551),
                EntryRef::Reading(reading),
            ),
            entry(
                EntryKind::InstalmentCharge,
                dec!(-1),
                EntryRef::Instalment(1),
            ),
            entry(
                EntryKind::Adjustment,
                dec!(2),
                EntryRef::Operator("fix".into()),
            ),
            entry(EntryKind::Reversal, dec!(-5), payment_ref("B")),
        ];
        let totals = replay(&entries).unwrap();
        assert_eq!(totals.balance, dec!(10.95449));
        assert_eq!(totals.total_paid, dec!(10));
        assert_eq!(entries[2].reading_id(), Some(reading));
        assert_eq!(entries[3].instalment_index(), Some(1));
        assert_eq!(entries[5].payment_ref(), Some("B"));
        assert_eq!(find_payment(&entries, "B"), Some(&entries[1]));
        assert!(is_reversed(&entries, "B"));
        assert!(!is_reversed(&entries, "A"));
        assert_eq!(find_payment(&entries, "C"), None);
    }

    #[test]
    fn replay_reports_overflow_instead_of_panicking() {
        let entries = [
            entry(
                EntryKind::Adjustment,
                Decimal::MAX,
                EntryRef::Operator("a".into()),
            ),
            entry(
                EntryKind::Adjustment,
                Decimal::MAX,
                EntryRef::Operator("b".into()),
            ),
        ];
        assert_eq!(replay(&entries), Err(ReplayError::WouldOverflow(1)));
        assert!(!ReplayError::WouldOverflow(1).is_transient());
    }
}
