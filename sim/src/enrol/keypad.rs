//! Enrolling keypad units: the weekly instalment plan they buy days on, then per unit its
//! registration with the OpenPAYGO setup flashed into it and a customer on that plan. No
//! opening credit: the simulator pays for keypad units while it runs, and audits every day.

use sunledger_proto::api::v1 as api;

use super::{ENROL_CONCURRENCY, amount, imei_with_check_digit, install};
use crate::error::SimError;
use crate::keypad_truth::DayRate;
use crate::keypad_unit::KeypadSpec;
use crate::operator::{Operator, bounded};
use crate::plans::{SimTariff, find_or_create};

/// Name of the plan keypad units are sold on, found again by it on later runs.
pub const KEYPAD_PLAN_NAME: &str = "sim keypad weekly";
/// First 14 digits of keypad units' IMEIs, less the unit number: clear of the connected
/// units' range (`SIM_IMEI_BASE`) for a million units.
const SIM_KEYPAD_IMEI_BASE: u64 = 35_801_000_000_000;

/// One enrolled keypad unit.
#[derive(Debug, Clone)]
pub struct EnrolledKeypad {
    /// Its identity and factory setup, which its firmware starts from.
    pub spec: KeypadSpec,
    /// The complete installation whose account its payments go to.
    pub installation_id: String,
}

/// The enrolled keypad units and what their days cost.
#[derive(Debug, Clone)]
pub struct KeypadEnrolment {
    /// The weekly plan they are sold on.
    pub plan_id: String,
    /// Its price of a day, for the ground truth of days owed.
    pub rate: DayRate,
    /// Every unit, in number order.
    pub units: Vec<EnrolledKeypad>,
}

/// The day rate of a week priced `value` (option `field`), which must be above zero.
pub(super) fn weekly_rate(field: &'static str, value: &str) -> Result<DayRate, SimError> {
    match amount(field, value)? {
        zero if zero.is_zero() => Err(SimError::InvalidAmount {
            field,
            value: value.to_owned(),
            must_be: "above zero",
        }),
        amount_per_week => Ok(DayRate { amount_per_week }),
    }
}

/// Registers every unit of `specs` as a keypad unit and installs it on the weekly plan of
/// `rate` (found or created).
pub(super) async fn enrol_keypads(
    operator: &Operator,
    rate: DayRate,
    specs: &[KeypadSpec],
) -> Result<KeypadEnrolment, SimError> {
    let weekly = SimTariff::Weekly {
        amount_per_week: rate.amount_per_week,
    };
    let plan_id = find_or_create(operator, KEYPAD_PLAN_NAME, weekly).await?;
    let units = specs
        .iter()
        .map(|spec| enrol_keypad(operator.clone(), spec.clone(), plan_id.clone()));
    let units = bounded(units, ENROL_CONCURRENCY).await?;
    Ok(KeypadEnrolment {
        plan_id,
        rate,
        units,
    })
}

/// Registers one keypad unit (a serial already taken is an error: its key cannot be known)
/// and installs it on `plan_id`.
async fn enrol_keypad(
    operator: Operator,
    spec: KeypadSpec,
    plan_id: String,
) -> Result<EnrolledKeypad, SimError> {
    let request = api::RegisterUnitRequest {
        serial: spec.serial.clone(),
        imei: imei_with_check_digit(SIM_KEYPAD_IMEI_BASE + spec.n as u64),
        comm_mode: api::CommMode::Keypad.into(),
        keypad: Some(spec.setup()),
        ..Default::default()
    };
    operator
        .units()
        .register_unit(request)
        .await
        .map_err(|status| SimError::api(format!("RegisterUnit {}", spec.serial), status))?;
    let installation_id = install(&operator, &spec.serial, &plan_id).await?;
    Ok(EnrolledKeypad {
        spec,
        installation_id,
    })
}

#[cfg(test)]
mod tests {
    use rust_decimal::Decimal;

    use super::*;

    #[test]
    fn a_week_must_cost_more_than_nothing() {
        let rate = weekly_rate("f", "70").unwrap();
        assert_eq!(rate.day_price(), Decimal::TEN);
        for (bad, must_be) in [("0", "above zero"), ("-1", "at least zero")] {
            match weekly_rate("f", bad) {
                Err(SimError::InvalidAmount { must_be: said, .. }) => assert_eq!(said, must_be),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }
}
