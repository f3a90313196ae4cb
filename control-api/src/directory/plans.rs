//! Payment plans: the named tariffs and defaults an organisation assigns to installations.
//!
//! A plan's terms (tariff, default negative charge limit, automatic switch-off, rated power)
//! never change once created: accounts copy them when opened, and a plan must keep describing
//! what its customers signed. A change of tariff is a new plan; the old one is retired (no
//! longer offered for new installations) but stays readable forever.

use redb::{ReadableTable, TableDefinition};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sunledger_billing::keypad::TimeMode;
use sunledger_billing::tariff::{Period, PlanTerms, RATED_POWER_W_DEFAULT, Tariff};

use super::audit::AuditAction;
use super::org_records::org_records;
use super::{Directory, DirectoryError, decode, encode, new_id};
use crate::amount::{self, Sign};
use crate::pagination::{Page, PageRequest};
use crate::roles::Caller;
use crate::search;
use crate::validate::{self, FieldViolation};

/// (organisation id, plan id) → [`Plan`]; also the order of the plan list.
pub(crate) const PLANS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("api_plans");

/// A payment plan of one organisation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// `plan_…`, how installations name the plan.
    pub id: String,
    /// The organisation offering the plan, and the only one that can see it.
    pub org_id: String,
    /// Display name, so operators recognise the plan when registering customers.
    pub name: String,
    /// Tariff and defaults, copied into each account opened on the plan; never changed.
    pub terms: PlanTerms,
    /// How keypad units on the plan receive the days a payment bought (instalment plans).
    pub token_time: TimeMode,
    /// The organisation's ISO 4217 currency, in which the plan's amounts are meant.
    pub currency: String,
    /// When the plan stopped being offered to new installations; `None` while offered.
    pub retired_at_ms: Option<i64>,
    /// Unix milliseconds.
    pub created_at_ms: i64,
}

impl Plan {
    /// Whether the plan may still be assigned to new installations.
    pub fn is_active(&self) -> bool {
        self.retired_at_ms.is_none()
    }
}

/// The plan `plan_id` of `org_id`, or [`DirectoryError::PlanNotFound`] (also for another
/// organisation's plan).
pub(crate) fn plan_in(
    table: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    org_id: &str,
    plan_id: &str,
) -> Result<Plan, DirectoryError> {
    match table.get((org_id, plan_id))? {
        Some(stored) => decode(stored.value()),
        None => Err(DirectoryError::PlanNotFound(plan_id.to_owned())),
    }
}

/// A plan to create, as the request gave it (validated by [`Directory::create_plan`]; errors
/// name these fields).
#[derive(Clone, Debug, Default)]
pub struct NewPlan {
    /// Display name (field `name`).
    pub name: String,
    /// The tariff; `None` when the request named neither kind (field `tariff`).
    pub tariff: Option<NewTariff>,
    /// Default negative charge limit, a decimal string; empty means 0.
    pub negative_charge_limit: String,
    /// Default automatic switch-off.
    pub auto_switch_off: bool,
    /// Rated load power in watts; 0 means [`RATED_POWER_W_DEFAULT`].
    pub rated_power_w: u32,
}

/// A tariff as the request gave it.
#[derive(Clone, Debug)]
pub enum NewTariff {
    /// Usage-based (field `usage`).
    Usage {
        /// Decimal string (field `usage.price_per_kwh`).
        price_per_kwh: String,
    },
    /// Instalment-based (field `instalment`).
    Instalment {
        /// Decimal string (field `instalment.amount_per_period`).
        amount_per_period: String,
        /// `None` when unspecified or unknown (field `instalment.period`).
        period: Option<Period>,
        /// `None` when unknown (field `instalment.token_time_mode`).
        token_time: Option<TimeMode>,
    },
}

/// The kind of a plan's tariff, to filter lists by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TariffKind {
    /// Usage-based.
    Usage,
    /// Instalment-based.
    Instalment,
}

/// Which plans a list shows; the default shows all.
#[derive(Clone, Debug, Default)]
pub struct PlanFilter {
    /// Only plans with this kind of tariff.
    pub tariff: Option<TariffKind>,
    /// Only active (`Some(true)`) or only retired (`Some(false)`) plans.
    pub active: Option<bool>,
    /// Only plans whose name contains this, case-insensitively (field `search`).
    pub search: String,
}

impl Directory {
    /// Creates a plan in the caller's organisation, in its currency.
    pub fn create_plan(&self, caller: &Caller, new: &NewPlan) -> Result<Plan, DirectoryError> {
        let name = validate::name("name", &new.name)?;
        let terms = plan_terms(new)?;
        let token_time = match &new.tariff {
            Some(NewTariff::Instalment { token_time, .. }) => token_time.ok_or_else(|| {
                FieldViolation::new("instalment.token_time_mode", "must be add_time or set_time")
            })?,
            _ => TimeMode::AddTime,
        };
        let currency = self.organisation(&caller.org_id)?.currency;
        self.change(&caller.org_id, &caller.member_id, |change| {
            let plan = Plan {
                id: new_id("plan_"),
                org_id: change.org_id.to_owned(),
                name,
                terms,
                token_time,
                currency,
                retired_at_ms: None,
                created_at_ms: change.at_ms,
            };
            let collided = change
                .txn
                .open_table(PLANS)?
                .insert((change.org_id, plan.id.as_str()), encode(&plan)?.as_slice())?
                .is_some();
            if collided {
                return Err(DirectoryError::Corrupt("plan id collision".to_owned()));
            }
            change.record(
                AuditAction::PlanCreated,
                &plan.id,
                format!("created plan {:?}: {}", plan.name, describe(&plan)),
            )?;
            Ok(plan)
        })
    }

    /// Plan `plan_id` of `org_id`.
    pub fn plan(&self, org_id: &str, plan_id: &str) -> Result<Plan, DirectoryError> {
        let plan_id = validate::id("plan_id", plan_id)?;
        plan_in(&self.read()?.open_table(PLANS)?, org_id, plan_id)
    }

    /// One page of `org_id`'s plans that `filter` lets through, by id.
    pub fn plans(
        &self,
        org_id: &str,
        filter: &PlanFilter,
        page: &PageRequest<String>,
    ) -> Result<Page<Plan>, DirectoryError> {
        let search = search::text("search", &filter.search)?;
        let txn = self.read()?;
        let plans = txn.open_table(PLANS)?;
        let shown = |plan: &Plan| {
            filter
                .tariff
                .is_none_or(|kind| kind == tariff_kind(&plan.terms.tariff))
                && filter
                    .active
                    .is_none_or(|active| active == plan.is_active())
                && search::contains(&plan.name, &search)
        };
        let matching = org_records(&plans, org_id, page.after.as_deref())?
            .filter(|plan: &Result<Plan, DirectoryError>| plan.as_ref().map_or(true, shown));
        page.page(matching, |plan| plan.id.clone())
    }

    /// Gives plan `plan_id` another display name.
    pub fn rename_plan(
        &self,
        caller: &Caller,
        plan_id: &str,
        name: &str,
    ) -> Result<Plan, DirectoryError> {
        let plan_id = validate::id("plan_id", plan_id)?;
        let name = validate::name("name", name)?;
        self.update_plan(caller, plan_id, |plan, _| {
            if plan.name == name {
                return None;
            }
            let before = std::mem::replace(&mut plan.name, name);
            Some((
                AuditAction::PlanRenamed,
                format!("renamed {before:?} → {:?}", plan.name),
            ))
        })
    }

    /// Stops offering plan `plan_id` to new installations; a retired plan stays as it is.
    pub fn retire_plan(&self, caller: &Caller, plan_id: &str) -> Result<Plan, DirectoryError> {
        let plan_id = validate::id("plan_id", plan_id)?;
        self.update_plan(caller, plan_id, |plan, now_ms| {
            if !plan.is_active() {
                return None;
            }
            plan.retired_at_ms = Some(now_ms);
            Some((
                AuditAction::PlanRetired,
                format!("retired plan {:?}", plan.name),
            ))
        })
    }

    /// Applies `edit` to plan `plan_id` in one change at the change's time; `edit` returns the
    /// audit event of what it changed, or `None` if nothing changed (nothing is then written
    /// or recorded).
    fn update_plan(
        &self,
        caller: &Caller,
        plan_id: &str,
        edit: impl FnOnce(&mut Plan, i64) -> Option<(AuditAction, String)>,
    ) -> Result<Plan, DirectoryError> {
        self.change(&caller.org_id, &caller.member_id, |change| {
            let mut plans = change.txn.open_table(PLANS)?;
            let mut plan = plan_in(&plans, change.org_id, plan_id)?;
            let Some((action, description)) = edit(&mut plan, change.at_ms) else {
                return Ok(plan);
            };
            plans.insert((change.org_id, plan_id), encode(&plan)?.as_slice())?;
            drop(plans);
            change.record(action, plan_id, description)?;
            Ok(plan)
        })
    }
}

/// The plan terms `new` asks for, every field validated.
fn plan_terms(new: &NewPlan) -> Result<PlanTerms, FieldViolation> {
    let tariff = match &new.tariff {
        None => {
            return Err(FieldViolation::new(
                "tariff",
                "required: usage or instalment",
            ));
        }
        Some(NewTariff::Usage { price_per_kwh }) => Tariff::Usage {
            price_per_kwh: amount::required(
                "usage.price_per_kwh",
                price_per_kwh,
                Sign::NonNegative,
            )?,
        },
        Some(NewTariff::Instalment {
            amount_per_period,
            period,
            ..
        }) => Tariff::Instalment {
            amount_per_period: amount::required(
                "instalment.amount_per_period",
                amount_per_period,
                Sign::NonNegative,
            )?,
            period: period.ok_or_else(|| {
                FieldViolation::new("instalment.period", "must be daily, weekly or monthly")
            })?,
        },
    };
    let limit = amount::optional(
        "negative_charge_limit",
        &new.negative_charge_limit,
        Sign::NonPositive,
    )?;
    Ok(PlanTerms {
        tariff,
        negative_charge_limit: limit.unwrap_or(Decimal::ZERO),
        auto_switch_off: new.auto_switch_off,
        rated_power_w: match new.rated_power_w {
            0 => RATED_POWER_W_DEFAULT,
            watts => watts,
        },
    })
}

/// The kind of `tariff`.
pub fn tariff_kind(tariff: &Tariff) -> TariffKind {
    match tariff {
        Tariff::Usage { .. } => TariffKind::Usage,
        Tariff::Instalment { .. } => TariffKind::Instalment,
    }
}

/// A plan's terms in a line, for the audit log.
fn describe(plan: &Plan) -> String {
    let tariff = match plan.terms.tariff {
        Tariff::Usage { price_per_kwh } => format!("{price_per_kwh} {}/kWh", plan.currency),
        Tariff::Instalment {
            amount_per_period,
            period,
        } => format!("{amount_per_period} {} {period:?}", plan.currency),
    };
    format!(
        "{tariff}, negative charge limit {}, automatic switch-off {}, {} W",
        plan.terms.negative_charge_limit,
        match plan.terms.auto_switch_off {
            true => "on",
            false => "off",
        },
        plan.terms.rated_power_w
    )
}
