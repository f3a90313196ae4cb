//! Tariffs and plan terms: what a customer is charged, and the defaults a payment plan gives to
//! each account assigned to it.
//!
//! A usage-based tariff charges energy delivered through the load and USB ports at a price per
//! kWh, exactly; an instalment-based tariff charges a fixed amount every day, week or month after
//! the first credit deposit (the calendar arithmetic lives in `schedule`).

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::money::{self, AmountError};

/// Rated maximum power of a unit's load output when a plan does not say otherwise, in watts. The
/// meter code uses it to reject readings that claim more energy than the unit could deliver.
pub const RATED_POWER_W_DEFAULT: u32 = 1000;

/// How often an instalment-based tariff charges. Periods are calendar periods in the
/// organisation's time zone, anchored at the first credit deposit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Period {
    /// Every local calendar day (23 or 25 hours across a DST change).
    Daily,
    /// Every seven local calendar days.
    Weekly,
    /// Every calendar month, on the deposit's day of month, clamped to the month's last day.
    Monthly,
}

/// How an account's credit is consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Tariff {
    /// Credit is consumed by energy delivered through the load and USB ports.
    Usage {
        /// Price of one kWh in the organisation's currency, at full precision.
        #[serde(with = "crate::compact::decimal")]
        price_per_kwh: Decimal,
    },
    /// Credit is consumed by a fixed charge every period after the first credit deposit.
    Instalment {
        /// Amount charged when each period falls due.
        #[serde(with = "crate::compact::decimal")]
        amount_per_period: Decimal,
        /// Length of a period.
        period: Period,
    },
}

/// Why a tariff or plan terms were refused, in order of precedence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TermsError {
    /// The price per kWh is negative, too large or too precise.
    #[error("invalid price per kWh: {0}")]
    PricePerKwh(AmountError),
    /// The instalment amount is negative, too large or too precise.
    #[error("invalid amount per period: {0}")]
    AmountPerPeriod(AmountError),
    /// The default negative charge limit is positive, too large or too precise.
    #[error("invalid negative charge limit: {0}")]
    NegativeChargeLimit(AmountError),
    /// The rated power is zero, which would make every reading implausible.
    #[error("rated power must be greater than zero")]
    RatedPowerZero,
}

impl TermsError {
    /// Always `false`: the same terms are refused again, only corrected terms can succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            TermsError::PricePerKwh(_)
            | TermsError::AmountPerPeriod(_)
            | TermsError::NegativeChargeLimit(_)
            | TermsError::RatedPowerZero => false,
        }
    }
}

impl Tariff {
    /// Checks the tariff's amounts once, when a plan is created or changed, so charging never
    /// meets an out-of-range price.
    pub fn validate(&self) -> Result<(), TermsError> {
        match *self {
            Tariff::Usage { price_per_kwh } => {
                money::validate_non_negative(price_per_kwh).map_err(TermsError::PricePerKwh)
            }
            Tariff::Instalment {
                amount_per_period, ..
            } => {
                money::validate_non_negative(amount_per_period).map_err(TermsError::AmountPerPeriod)
            }
        }
    }
}

/// Exact charge for `energy_wh` watt-hours at `price_per_kwh`: energy × price / 1000, computed
/// on the decimal mantissa so no digit is ever rounded away. `None` when the exact result does
/// not fit in a `Decimal` (impossible for validated prices and energies below ~10^16 Wh).
pub fn usage_charge(price_per_kwh: Decimal, energy_wh: u64) -> Option<Decimal> {
    let mantissa = price_per_kwh
        .mantissa()
        .checked_mul(i128::from(energy_wh))?;
    let scale = price_per_kwh.scale().checked_add(3)?;
    Decimal::try_from_i128_with_scale(mantissa, scale).ok()
}

/// The terms a payment plan gives to the accounts assigned to it. The negative charge limit and
/// automatic switch-off are defaults that each account may override.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanTerms {
    /// How credit is consumed.
    pub tariff: Tariff,
    /// Debt a customer may reach before the load is switched off (≤ 0; 0 when not entered).
    pub negative_charge_limit: Decimal,
    /// Whether falling below the limit switches the load off (off unless the plan enables it).
    pub auto_switch_off: bool,
    /// Rated maximum load power in watts, for the meter's plausibility checks.
    pub rated_power_w: u32,
}

impl PlanTerms {
    /// Terms with the documented defaults (limit 0, no automatic switch-off, 1000 W) around a
    /// tariff, so a plan only states what differs.
    pub fn new(tariff: Tariff) -> PlanTerms {
        PlanTerms {
            tariff,
            negative_charge_limit: Decimal::ZERO,
            auto_switch_off: false,
            rated_power_w: RATED_POWER_W_DEFAULT,
        }
    }

    /// Checks all terms once, when a plan is created or changed.
    pub fn validate(&self) -> Result<(), TermsError> {
        self.tariff.validate()?;
        money::validate_non_positive(self.negative_charge_limit)
            .map_err(TermsError::NegativeChargeLimit)?;
        if self.rated_power_w == 0 {
            return Err(TermsError::RatedPowerZero);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn usage_charge_is_energy_times_price_over_a_thousand_exactly() {
        let table = [
            (dec!(0.37), 123, dec!(0.04551)),
            (dec!(0.37), 0, dec!(0)),
            (dec!(100), 1000, dec!(100)),
            (dec!(0.123456789012), 999_999, dec!(123.456665555210988)),
            (dec!(250), 1, dec!(0.25)),
        ];
        for (price, wh, charge) in table {
            assert_eq!(usage_charge(price, wh), Some(charge), "{price} × {wh}");
        }
    }

    #[test]
    fn usage_charge_at_the_largest_inputs_is_exact_or_refused() {
        let huge = usage_charge(money::AMOUNT_MAX, u64::MAX);
        assert_eq!(huge, None);
        let big = usage_charge(dec!(0.000000000001), u64::MAX).unwrap();
        assert_eq!(
            big * dec!(1000) * dec!(1000000000000),
            Decimal::from(u64::MAX)
        );
    }

    #[test]
    fn plan_terms_default_to_limit_zero_no_switch_off_and_1000_w() {
        let terms = PlanTerms::new(Tariff::Usage {
            price_per_kwh: dec!(0.5),
        });
        assert_eq!(terms.negative_charge_limit, Decimal::ZERO);
        assert!(!terms.auto_switch_off);
        assert_eq!(terms.rated_power_w, 1000);
        assert_eq!(terms.validate(), Ok(()));
    }

    #[test]
    fn invalid_terms_are_refused_in_order() {
        let mut terms = PlanTerms::new(Tariff::Instalment {
            amount_per_period: dec!(-1),
            period: Period::Weekly,
        });
        terms.negative_charge_limit = dec!(5);
        terms.rated_power_w = 0;
        let expected = TermsError::AmountPerPeriod(AmountError::NotPositive);
        assert_eq!(terms.validate(), Err(expected));
        assert!(!expected.is_transient());
        terms.tariff = Tariff::Usage {
            price_per_kwh: dec!(0.1),
        };
        let expected = TermsError::NegativeChargeLimit(AmountError::Positive);
        assert_eq!(terms.validate(), Err(expected));
        terms.negative_charge_limit = dec!(-100);
        assert_eq!(terms.validate(), Err(TermsError::RatedPowerZero));
    }
}
