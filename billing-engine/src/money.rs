//! Money: exact decimal amounts in the organisation's currency.
//!
//! The ledger keeps every amount at full `Decimal` precision (a usage charge of 0.1234 kWh at
//! 0.37/kWh is stored as 0.045658, not 0.05); rounding happens only when an amount is shown to a
//! person, to the currency's minor unit, half away from zero. Amounts that enter from outside
//! (payments, prices, limits) are bounded here so that ledger sums can never overflow in practice
//! and stay exact.

use rust_decimal::{Decimal, RoundingStrategy};

/// Largest amount accepted from outside in one value (a payment, a price, an instalment, a
/// limit's magnitude): 10^12 currency units. Far above any real PAYG payment in any currency
/// (1 trillion UGX ≈ 270 million USD), far below `Decimal::MAX` (≈ 7.9 × 10^28), so that
/// ~10^16 maximal values can be summed before a balance could overflow.
pub const AMOUNT_MAX: Decimal = Decimal::from_parts(3_567_587_328, 232, 0, false, 0);

/// Most decimal places accepted in an amount from outside (trailing zeros are ignored). Twelve
/// places is far finer than any currency's minor unit yet leaves room in the 28-digit `Decimal`
/// for a usage charge (price × kWh adds three more places) to stay exact.
pub const AMOUNT_SCALE_MAX: u32 = 12;

/// Minor-unit digits used when a currency code is not in [`minor_unit_digits`]'s table: two is
/// the most common ISO 4217 exponent, and only display depends on it.
pub const MINOR_UNIT_DIGITS_DEFAULT: u32 = 2;

/// Why an amount from outside was refused, in order of precedence (the first that applies is
/// reported).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AmountError {
    /// The amount is zero or negative where only a positive amount makes sense (a payment).
    #[error("amount must be greater than zero")]
    NotPositive,
    /// The amount is positive where only zero or less makes sense (a negative charge limit).
    #[error("amount must be zero or less")]
    Positive,
    /// The magnitude exceeds [`AMOUNT_MAX`].
    #[error("amount magnitude exceeds 10^12")]
    TooLarge,
    /// The amount has more than [`AMOUNT_SCALE_MAX`] decimal places.
    #[error("amount has more than 12 decimal places")]
    TooPrecise,
}

impl AmountError {
    /// Always `false`: the same amount is refused again on retry, so only a corrected value can
    /// succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            AmountError::NotPositive
            | AmountError::Positive
            | AmountError::TooLarge
            | AmountError::TooPrecise => false,
        }
    }
}

/// Checks the magnitude and precision bounds shared by every amount from outside; the sign is
/// checked by the callers below, which know which sign is allowed.
fn check_bounds(amount: Decimal) -> Result<(), AmountError> {
    if amount.abs() > AMOUNT_MAX {
        return Err(AmountError::TooLarge);
    }
    if amount.normalize().scale() > AMOUNT_SCALE_MAX {
        return Err(AmountError::TooPrecise);
    }
    Ok(())
}

/// Validates an amount that must be strictly positive (a payment).
pub fn validate_positive(amount: Decimal) -> Result<(), AmountError> {
    if amount <= Decimal::ZERO {
        return Err(AmountError::NotPositive);
    }
    check_bounds(amount)
}

/// Validates an amount that must be zero or more (a price, an instalment, a down-payment, a
/// total system cost): zero is allowed so that an organisation can run a free plan.
pub fn validate_non_negative(amount: Decimal) -> Result<(), AmountError> {
    if amount < Decimal::ZERO {
        return Err(AmountError::NotPositive);
    }
    check_bounds(amount)
}

/// Validates an amount that must be zero or less (a negative charge limit).
pub fn validate_non_positive(amount: Decimal) -> Result<(), AmountError> {
    if amount > Decimal::ZERO {
        return Err(AmountError::Positive);
    }
    check_bounds(amount)
}

/// Validates an amount of either sign (a manual adjustment), bounded like every other input.
pub fn validate_signed(amount: Decimal) -> Result<(), AmountError> {
    check_bounds(amount)
}

/// Number of digits after the decimal point in the minor unit of an ISO 4217 currency, used
/// only for display. Codes outside the table (including lower-case input, which is upper-cased
/// first) fall back to [`MINOR_UNIT_DIGITS_DEFAULT`].
pub fn minor_unit_digits(currency_code: &str) -> u32 {
    match currency_code.to_ascii_uppercase().as_str() {
        // Currencies without a minor unit in use.
        "UGX" | "RWF" | "XOF" | "XAF" | "BIF" | "GNF" | "KMF" | "DJF" | "JPY" | "KRW" | "VND"
        | "CLP" | "PYG" | "ISK" | "VUV" | "XPF" => 0,
        // Three-digit minor units.
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        // Two-digit minor units, listed for clarity: the common PAYG markets.
        "USD" | "EUR" | "GBP" | "KES" | "TZS" | "NGN" | "ZMW" | "MWK" | "GHS" | "ETB" | "MZN"
        | "ZAR" | "INR" | "PKR" | "BDT" | "SLE" | "LRD" | "CDF" | "SSP" | "SDG" | "NAD" | "BWP"
        | "ZWL" | "MMK" | "PHP" | "HTG" | "XCD" => 2,
        _ => MINOR_UNIT_DIGITS_DEFAULT,
    }
}

/// Rounds an amount for display to the currency's minor unit, half away from zero (2.345 USD
/// shows as 2.35, −2.345 as −2.35): the rule people expect on a receipt. Banker's rounding
/// would only matter for sums of rounded values, and the ledger never sums rounded values.
pub fn round_for_display(amount: Decimal, currency_code: &str) -> Decimal {
    amount.round_dp_with_strategy(
        minor_unit_digits(currency_code),
        RoundingStrategy::MidpointAwayFromZero,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn amount_max_is_ten_to_the_twelfth() {
        assert_eq!(AMOUNT_MAX, dec!(1_000_000_000_000));
    }

    #[test]
    fn minor_units_of_common_currencies() {
        let table = [
            ("USD", 2),
            ("KES", 2),
            ("UGX", 0),
            ("TZS", 2),
            ("NGN", 2),
            ("RWF", 0),
            ("XOF", 0),
            ("EUR", 2),
            ("ZMW", 2),
            ("MWK", 2),
            ("GHS", 2),
            ("KWD", 3),
            ("ugx", 0),
            ("???", 2),
        ];
        for (code, digits) in table {
            assert_eq!(minor_unit_digits(code), digits, "{code}");
        }
    }

    #[test]
    fn display_rounds_half_away_from_zero() {
        let table = [
            (dec!(2.345), "USD", dec!(2.35)),
            (dec!(-2.345), "USD", dec!(-2.35)),
            (dec!(2.344999), "KES", dec!(2.34)),
            (dec!(1500.5), "UGX", dec!(1501)),
            (dec!(-0.5), "RWF", dec!(-1)),
            (dec!(0.045658), "USD", dec!(0.05)),
        ];
        for (amount, code, shown) in table {
            assert_eq!(round_for_display(amount, code), shown, "{amount} {code}");
        }
    }

    #[test]
    fn amount_validation_table() {
        let too_precise = Decimal::new(1, 13);
        type Validate = fn(Decimal) -> Result<(), AmountError>;
        let table: [(Validate, Decimal, Result<(), AmountError>); 12] = [
            (validate_positive, dec!(0), Err(AmountError::NotPositive)),
            (validate_positive, dec!(-1), Err(AmountError::NotPositive)),
            (validate_positive, dec!(0.01), Ok(())),
            (validate_positive, AMOUNT_MAX, Ok(())),
            (
                validate_positive,
                AMOUNT_MAX + dec!(0.01),
                Err(AmountError::TooLarge),
            ),
            (validate_positive, too_precise, Err(AmountError::TooPrecise)),
            (validate_positive, dec!(1.500000000000000000), Ok(())),
            (validate_non_negative, dec!(0), Ok(())),
            (
                validate_non_negative,
                dec!(-0.01),
                Err(AmountError::NotPositive),
            ),
            (
                validate_non_positive,
                dec!(0.01),
                Err(AmountError::Positive),
            ),
            (validate_non_positive, dec!(-100), Ok(())),
            (
                validate_signed,
                -AMOUNT_MAX - dec!(1),
                Err(AmountError::TooLarge),
            ),
        ];
        for (validate, amount, expected) in table {
            assert_eq!(validate(amount), expected, "{amount}");
            if let Err(error) = expected {
                assert!(!error.is_transient());
            }
        }
    }
}
