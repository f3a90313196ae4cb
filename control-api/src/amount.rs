//! Money amounts on the wire: decimal strings in, decimal strings out, never floats, so
//! `0.1 + 0.2` is exactly `0.3` from the operator's form to the ledger.
//!
//! An amount is written as plain digits with an optional `-` and fraction (`"1500"`,
//! `"0.37"`, `"-100"`): no exponent, sign `+`, separators or spaces inside. The billing
//! engine's bounds apply ([`sunledger_billing::money`]: magnitude at most 10^12, at most 12
//! decimal places), so a request can never store a value the ledger could overflow on; a
//! payment is further limited to its currency's minor unit, since nobody pays a tenth of a
//! cent.

use rust_decimal::Decimal;
use sunledger_billing::money::{self, AmountError};

use crate::validate::FieldViolation;

/// Longest accepted amount string: 13 integer digits (one more than 10^12 has, so "too
/// large" is reported as such), a point, 12 decimals, a sign and some leading zeros.
const AMOUNT_CHARS_MAX: usize = 40;

/// Which amounts a field accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sign {
    /// Greater than zero (a payment).
    Positive,
    /// Zero or more (a price, a down-payment, a system cost).
    NonNegative,
    /// Zero or less (a negative charge limit).
    NonPositive,
}

/// The amount in `raw`, which must not be empty.
pub fn required(field: &'static str, raw: &str, sign: Sign) -> Result<Decimal, FieldViolation> {
    let value = raw.trim();
    if value.is_empty() {
        return Err(FieldViolation::new(field, "must not be empty"));
    }
    let amount = parse(field, value)?;
    let checked = match sign {
        Sign::Positive => money::validate_positive(amount),
        Sign::NonNegative => money::validate_non_negative(amount),
        Sign::NonPositive => money::validate_non_positive(amount),
    };
    checked.map_err(|error| FieldViolation::new(field, reason(error, sign)))?;
    Ok(amount.normalize())
}

/// The amount in `raw`, or `None` when it is empty (the field was left out).
pub fn optional(
    field: &'static str,
    raw: &str,
    sign: Sign,
) -> Result<Option<Decimal>, FieldViolation> {
    match raw.trim().is_empty() {
        true => Ok(None),
        false => required(field, raw, sign).map(Some),
    }
}

/// A payment in `currency`: positive, bounded, and no finer than the currency's minor unit
/// (two decimals for KES, none for UGX).
pub fn payment(field: &'static str, raw: &str, currency: &str) -> Result<Decimal, FieldViolation> {
    let amount = required(field, raw, Sign::Positive)?;
    let digits = money::minor_unit_digits(currency);
    match amount.scale() > digits {
        true => Err(FieldViolation::new(
            field,
            format!("at most {digits} decimal places in {currency}"),
        )),
        false => Ok(amount),
    }
}

/// An amount as a reply carries it: exact, without trailing zeros (`"12.5"`, `"-0.045658"`).
pub fn to_wire(amount: Decimal) -> String {
    amount.normalize().to_string()
}

/// Parses plain decimal notation exactly (no rounding of extra digits).
fn parse(field: &'static str, value: &str) -> Result<Decimal, FieldViolation> {
    let not_decimal = || FieldViolation::new(field, "not a decimal number such as 12.50");
    if value.len() > AMOUNT_CHARS_MAX {
        return Err(FieldViolation::new(
            field,
            format!("at most {AMOUNT_CHARS_MAX} characters"),
        ));
    }
    let unsigned = value.strip_prefix('-').unwrap_or(value);
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, "0"));
    let digits_only = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    if !digits_only(whole) || !digits_only(fraction) {
        return Err(not_decimal());
    }
    Decimal::from_str_exact(value).map_err(|_| {
        // Plain digits that still do not parse carry more digits than a Decimal holds.
        FieldViolation::new(field, "magnitude exceeds 10^12")
    })
}

/// Why an amount was refused, in the words of the field's rule.
fn reason(error: AmountError, sign: Sign) -> &'static str {
    match (error, sign) {
        (AmountError::NotPositive, Sign::Positive) => "must be greater than zero",
        (AmountError::NotPositive, _) => "must be zero or more",
        (AmountError::Positive, _) => "must be zero or less",
        (AmountError::TooLarge, _) => "magnitude exceeds 10^12",
        (AmountError::TooPrecise, _) => "more than 12 decimal places",
        (_, _) => "not an accepted amount",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn valid_amounts_come_back_exact_and_normalised() {
        assert_eq!(required("a", " 12.50 ", Sign::Positive), Ok(dec!(12.5)));
        assert_eq!(required("a", "0", Sign::NonNegative), Ok(dec!(0)));
        assert_eq!(required("a", "-100", Sign::NonPositive), Ok(dec!(-100)));
        assert_eq!(required("a", "-0", Sign::NonPositive), Ok(dec!(0)));
        assert_eq!(
            required("a", "0.000000000001", Sign::Positive),
            Ok(dec!(0.000000000001))
        );
        assert_eq!(
            required("a", "1000000000000", Sign::Positive),
            Ok(dec!(1000000000000))
        );
        assert_eq!(optional("a", "  ", Sign::NonPositive), Ok(None));
        assert_eq!(payment("amount", "150.25", "KES"), Ok(dec!(150.25)));
        assert_eq!(payment("amount", "150.00", "UGX"), Ok(dec!(150)));
        assert_eq!(to_wire(dec!(12.500)), "12.5");
        assert_eq!(to_wire(dec!(-0.045658)), "-0.045658");
    }

    #[test]
    fn each_invalid_amount_is_refused_naming_its_field() {
        let long = "1".repeat(AMOUNT_CHARS_MAX + 1);
        let cases = [
            (
                required("amount", "", Sign::Positive),
                "amount: must not be empty",
            ),
            (
                required("amount", "1e5", Sign::Positive),
                "amount: not a decimal number such as 12.50",
            ),
            (
                required("amount", "+5", Sign::Positive),
                "amount: not a decimal number such as 12.50",
            ),
            (
                required("amount", "1,000", Sign::Positive),
                "amount: not a decimal number such as 12.50",
            ),
            (
                required("amount", "5.", Sign::Positive),
                "amount: not a decimal number such as 12.50",
            ),
            (
                required("amount", "NaN", Sign::Positive),
                "amount: not a decimal number such as 12.50",
            ),
            (
                required("amount", "0", Sign::Positive),
                "amount: must be greater than zero",
            ),
            (
                required("amount", "-1", Sign::Positive),
                "amount: must be greater than zero",
            ),
            (
                required("price", "-0.1", Sign::NonNegative),
                "price: must be zero or more",
            ),
            (
                required("limit", "5", Sign::NonPositive),
                "limit: must be zero or less",
            ),
            (
                required("amount", "1000000000000.01", Sign::Positive),
                "amount: magnitude exceeds 10^12",
            ),
            (
                required("amount", "1000000000000000000000000000000", Sign::Positive),
                "amount: magnitude exceeds 10^12",
            ),
            (
                required("amount", "0.0000000000001", Sign::Positive),
                "amount: more than 12 decimal places",
            ),
            (
                required("amount", &long, Sign::Positive),
                "amount: at most 40 characters",
            ),
            (
                payment("amount", "10.001", "KES"),
                "amount: at most 2 decimal places in KES",
            ),
            (
                payment("amount", "10.5", "UGX"),
                "amount: at most 0 decimal places in UGX",
            ),
        ];
        for (result, message) in cases {
            assert_eq!(result.unwrap_err().to_string(), message);
        }
    }
}
