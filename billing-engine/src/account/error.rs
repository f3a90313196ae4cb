//! One outcome enum per account operation, variants in order of precedence: when several
//! problems apply, the first listed is reported. Nothing here is transient: the rules are pure,
//! so the same input is refused again and only corrected input can succeed.

use crate::money::AmountError;
use crate::tariff::TermsError;

/// Why a free-text field (reference, reason, user) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TextError {
    /// Empty or only whitespace: the audit trail needs it.
    #[error("must not be empty")]
    Empty,
    /// Longer than [`super::TEXT_BYTES_MAX`] bytes.
    #[error("longer than 256 bytes")]
    TooLong,
}

/// Why a payment was refused; the account is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PaymentError {
    /// The amount is not positive, exceeds 10^12 or has more than 12 decimal places.
    #[error("invalid amount: {0}")]
    Amount(AmountError),
    /// The provider reference (the idempotency key) is empty or too long.
    #[error("invalid provider reference: {0}")]
    ProviderRef(TextError),
    /// The entering user is empty or too long.
    #[error("invalid entered-by: {0}")]
    EnteredBy(TextError),
    /// The balance or total paid would leave `Decimal`'s range.
    #[error("balance would overflow")]
    WouldOverflow,
}

impl PaymentError {
    /// Always `false` (see the module documentation).
    pub fn is_transient(&self) -> bool {
        match self {
            PaymentError::Amount(_)
            | PaymentError::ProviderRef(_)
            | PaymentError::EnteredBy(_)
            | PaymentError::WouldOverflow => false,
        }
    }
}

/// Why a reversal was refused; the account is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReversalError {
    /// The entry named is not a payment (only payments can be reversed).
    #[error("only a payment can be reversed")]
    NotAPayment,
    /// The payment has already been reversed.
    #[error("payment already reversed")]
    AlreadyReversed,
    /// The reason is empty or too long.
    #[error("invalid reason: {0}")]
    Reason(TextError),
    /// The entering user is empty or too long.
    #[error("invalid entered-by: {0}")]
    EnteredBy(TextError),
    /// Reversing would make total paid negative: the payment is not this account's.
    #[error("reversal exceeds the account's total paid")]
    ExceedsTotalPaid,
    /// The balance would leave `Decimal`'s range.
    #[error("balance would overflow")]
    WouldOverflow,
}

impl ReversalError {
    /// Always `false` (see the module documentation).
    pub fn is_transient(&self) -> bool {
        match self {
            ReversalError::NotAPayment
            | ReversalError::AlreadyReversed
            | ReversalError::Reason(_)
            | ReversalError::EnteredBy(_)
            | ReversalError::ExceedsTotalPaid
            | ReversalError::WouldOverflow => false,
        }
    }
}

/// Why an adjustment was refused; the account is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdjustmentError {
    /// The amount is zero: an adjustment that changes nothing is a mistake.
    #[error("adjustment amount must not be zero")]
    AmountZero,
    /// The amount's magnitude exceeds 10^12 or it has more than 12 decimal places.
    #[error("invalid amount: {0}")]
    Amount(AmountError),
    /// The operator's reference is empty or too long.
    #[error("invalid reference: {0}")]
    Reference(TextError),
    /// The reason is empty or too long.
    #[error("invalid reason: {0}")]
    Reason(TextError),
    /// The entering user is empty or too long.
    #[error("invalid entered-by: {0}")]
    EnteredBy(TextError),
    /// The balance would leave `Decimal`'s range.
    #[error("balance would overflow")]
    WouldOverflow,
}

impl AdjustmentError {
    /// Always `false` (see the module documentation).
    pub fn is_transient(&self) -> bool {
        match self {
            AdjustmentError::AmountZero
            | AdjustmentError::Amount(_)
            | AdjustmentError::Reference(_)
            | AdjustmentError::Reason(_)
            | AdjustmentError::EnteredBy(_)
            | AdjustmentError::WouldOverflow => false,
        }
    }
}

/// Why a usage or instalment charge could not be applied; the account is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChargeError {
    /// The energy or the charge cannot be represented exactly, or the balance would leave
    /// `Decimal`'s range: the reading is implausible and belongs in review.
    #[error("charge would overflow")]
    WouldOverflow,
}

impl ChargeError {
    /// Always `false` (see the module documentation).
    pub fn is_transient(&self) -> bool {
        match self {
            ChargeError::WouldOverflow => false,
        }
    }
}

/// Why opening an account or changing its settings was refused; the account is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// The plan's terms are invalid.
    #[error("invalid plan terms: {0}")]
    Terms(#[from] TermsError),
    /// The negative charge limit is positive, too large or too precise.
    #[error("invalid negative charge limit: {0}")]
    NegativeChargeLimit(AmountError),
    /// The down-payment is negative, too large or too precise.
    #[error("invalid down-payment: {0}")]
    DownPayment(AmountError),
    /// The total system cost is negative, too large or too precise.
    #[error("invalid total system cost: {0}")]
    TotalSystemCost(AmountError),
}

impl SettingsError {
    /// Always `false` (see the module documentation).
    pub fn is_transient(&self) -> bool {
        match self {
            SettingsError::Terms(_)
            | SettingsError::NegativeChargeLimit(_)
            | SettingsError::DownPayment(_)
            | SettingsError::TotalSystemCost(_) => false,
        }
    }
}
