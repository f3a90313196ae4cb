//! The plans the simulator bills its units on: found again by name on later runs, created
//! when missing, and refused when one of that name has other terms, since plan terms never
//! change and billing at terms the run did not ask for would make its audit meaningless.

use std::str::FromStr;

use rust_decimal::Decimal;
use sunledger_proto::api::v1 as api;

use crate::error::SimError;
use crate::operator::{Operator, all_pages};

/// The terms of a simulator plan, as the run asks for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimTariff {
    /// Connected units pay for the energy they report, switched off when credit runs out.
    Usage {
        /// Price of a kWh.
        price_per_kwh: Decimal,
    },
    /// Keypad units buy days at a weekly rate, delivered as tokens.
    Weekly {
        /// Price of a week (seven days of credit).
        amount_per_week: Decimal,
    },
}

impl SimTariff {
    fn tariff_type(self) -> api::TariffType {
        match self {
            SimTariff::Usage { .. } => api::TariffType::Usage,
            SimTariff::Weekly { .. } => api::TariffType::Instalment,
        }
    }

    /// The tariff of `plan` as this kind of term, `None` when it is the other kind or its
    /// amount is not a decimal.
    fn of(self, plan: &api::Plan) -> Option<SimTariff> {
        match &plan.tariff {
            Some(api::plan::Tariff::Usage(usage)) => Some(SimTariff::Usage {
                price_per_kwh: Decimal::from_str(&usage.price_per_kwh).ok()?,
            }),
            Some(api::plan::Tariff::Instalment(instalment))
                if instalment.period() == api::TariffPeriod::Weekly =>
            {
                Some(SimTariff::Weekly {
                    amount_per_week: Decimal::from_str(&instalment.amount_per_period).ok()?,
                })
            }
            _ => None,
        }
    }

    fn request(self, name: &str) -> api::CreatePlanRequest {
        let tariff = match self {
            SimTariff::Usage { price_per_kwh } => {
                api::create_plan_request::Tariff::Usage(api::UsageTariff {
                    price_per_kwh: price_per_kwh.to_string(),
                })
            }
            SimTariff::Weekly { amount_per_week } => {
                api::create_plan_request::Tariff::Instalment(api::InstalmentTariff {
                    amount_per_period: amount_per_week.to_string(),
                    period: api::TariffPeriod::Weekly.into(),
                    token_time_mode: api::TokenTimeMode::AddTime.into(),
                })
            }
        };
        api::CreatePlanRequest {
            name: name.into(),
            tariff: Some(tariff),
            auto_switch_off: true,
            ..Default::default()
        }
    }

    /// The terms in words, for an error message.
    fn describe(self) -> String {
        match self {
            SimTariff::Usage { price_per_kwh } => format!("{price_per_kwh} per kWh"),
            SimTariff::Weekly { amount_per_week } => format!("{amount_per_week} per week"),
        }
    }
}

/// The id of the active plan named `name` with terms `wanted`, created (with automatic
/// switch-off) if there is none; one of that name with other terms is refused.
pub async fn find_or_create(
    operator: &Operator,
    name: &str,
    wanted: SimTariff,
) -> Result<String, SimError> {
    let plans = all_pages(|page_token| async move {
        let request = api::ListPlansRequest {
            page_size: 0,
            page_token,
            tariff_type: wanted.tariff_type().into(),
            availability: api::PlanAvailability::Active.into(),
            search: name.into(),
        };
        let page = operator
            .plans()
            .list_plans(request)
            .await
            .map_err(|status| SimError::api("ListPlans", status))?
            .into_inner();
        Ok((page.plans, page.next_page_token))
    })
    .await?;
    if let Some(plan) = plans.into_iter().find(|plan| plan.name == name) {
        return match wanted.of(&plan) {
            Some(existing) if existing == wanted => Ok(plan.id),
            existing => Err(SimError::PlanTermsDiffer {
                name: name.into(),
                existing: existing.map_or_else(|| "other terms".into(), SimTariff::describe),
                wanted: wanted.describe(),
            }),
        };
    }
    let plan = operator
        .plans()
        .create_plan(wanted.request(name))
        .await
        .map_err(|status| SimError::api("CreatePlan", status))?;
    Ok(plan.into_inner().id)
}
