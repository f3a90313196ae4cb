//! The `sunledger.api.v1.Plans` service: the organisation's payment plans.

use sunledger_billing::keypad::TimeMode;
use sunledger_billing::tariff::{Period, Tariff};
use sunledger_proto::api::v1 as wire;
use sunledger_proto::api::v1::plans_server::Plans;
use tonic::{Request, Response, Status};

use crate::amount;
use crate::convert::timestamp;
use crate::directory::{Directory, NewPlan, NewTariff, Plan, PlanFilter, TariffKind};
use crate::pagination::PageRequest;
use crate::roles::Role;
use crate::{auth, blocking};

/// Serves `Plans` from the directory.
pub struct PlansService {
    directory: Directory,
}

impl PlansService {
    /// A service reading and writing `directory`.
    pub fn new(directory: Directory) -> PlansService {
        PlansService { directory }
    }
}

#[tonic::async_trait]
impl Plans for PlansService {
    async fn create_plan(
        &self,
        request: Request<wire::CreatePlanRequest>,
    ) -> Result<Response<wire::Plan>, Status> {
        let caller = auth::authorised(&request, Role::Admin)?;
        let request = request.into_inner();
        let new = NewPlan {
            name: request.name,
            tariff: request.tariff.map(tariff_from_wire),
            negative_charge_limit: request.negative_charge_limit,
            auto_switch_off: request.auto_switch_off,
            rated_power_w: request.rated_power_w,
        };
        let directory = self.directory.clone();
        let plan = blocking(move || directory.create_plan(&caller, &new)).await?;
        Ok(Response::new(plan_to_wire(plan)))
    }

    async fn get_plan(
        &self,
        request: Request<wire::GetPlanRequest>,
    ) -> Result<Response<wire::Plan>, Status> {
        let caller = auth::authorised(&request, Role::Observer)?;
        let plan_id = request.into_inner().plan_id;
        let directory = self.directory.clone();
        let plan = blocking(move || directory.plan(&caller.org_id, &plan_id)).await?;
        Ok(Response::new(plan_to_wire(plan)))
    }

    async fn list_plans(
        &self,
        request: Request<wire::ListPlansRequest>,
    ) -> Result<Response<wire::ListPlansResponse>, Status> {
        let caller = auth::authorised(&request, Role::Observer)?;
        let request = request.into_inner();
        let page = PageRequest::parse(request.page_size, &request.page_token)?;
        let filter = PlanFilter {
            tariff: match request.tariff_type() {
                wire::TariffType::Unspecified => None,
                wire::TariffType::Usage => Some(TariffKind::Usage),
                wire::TariffType::Instalment => Some(TariffKind::Instalment),
            },
            active: match request.availability() {
                wire::PlanAvailability::Unspecified => None,
                wire::PlanAvailability::Active => Some(true),
                wire::PlanAvailability::Retired => Some(false),
            },
            search: request.search,
        };
        let directory = self.directory.clone();
        let page = blocking(move || directory.plans(&caller.org_id, &filter, &page)).await?;
        Ok(Response::new(wire::ListPlansResponse {
            plans: page.items.into_iter().map(plan_to_wire).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn rename_plan(
        &self,
        request: Request<wire::RenamePlanRequest>,
    ) -> Result<Response<wire::Plan>, Status> {
        let caller = auth::authorised(&request, Role::Admin)?;
        let request = request.into_inner();
        let directory = self.directory.clone();
        let plan =
            blocking(move || directory.rename_plan(&caller, &request.plan_id, &request.name))
                .await?;
        Ok(Response::new(plan_to_wire(plan)))
    }

    async fn retire_plan(
        &self,
        request: Request<wire::RetirePlanRequest>,
    ) -> Result<Response<wire::Plan>, Status> {
        let caller = auth::authorised(&request, Role::Admin)?;
        let plan_id = request.into_inner().plan_id;
        let directory = self.directory.clone();
        let plan = blocking(move || directory.retire_plan(&caller, &plan_id)).await?;
        Ok(Response::new(plan_to_wire(plan)))
    }
}

/// The tariff a create request names; an unspecified or unknown period is left `None` for
/// the directory to refuse naming `instalment.period`.
fn tariff_from_wire(tariff: wire::create_plan_request::Tariff) -> NewTariff {
    use wire::create_plan_request::Tariff as Wire;
    match tariff {
        Wire::Usage(usage) => NewTariff::Usage {
            price_per_kwh: usage.price_per_kwh,
        },
        Wire::Instalment(instalment) => NewTariff::Instalment {
            period: match wire::TariffPeriod::try_from(instalment.period) {
                Ok(wire::TariffPeriod::Daily) => Some(Period::Daily),
                Ok(wire::TariffPeriod::Weekly) => Some(Period::Weekly),
                Ok(wire::TariffPeriod::Monthly) => Some(Period::Monthly),
                Ok(wire::TariffPeriod::Unspecified) | Err(_) => None,
            },
            token_time: match wire::TokenTimeMode::try_from(instalment.token_time_mode) {
                Ok(wire::TokenTimeMode::Unspecified | wire::TokenTimeMode::AddTime) => {
                    Some(TimeMode::AddTime)
                }
                Ok(wire::TokenTimeMode::SetTime) => Some(TimeMode::SetTime),
                Err(_) => None,
            },
            amount_per_period: instalment.amount_per_period,
        },
    }
}

/// A plan as replies carry it, amounts as decimal strings.
fn plan_to_wire(plan: Plan) -> wire::Plan {
    use wire::plan::Tariff as Wire;
    let tariff = match plan.terms.tariff {
        Tariff::Usage { price_per_kwh } => Wire::Usage(wire::UsageTariff {
            price_per_kwh: amount::to_wire(price_per_kwh),
        }),
        Tariff::Instalment {
            amount_per_period,
            period,
        } => Wire::Instalment(wire::InstalmentTariff {
            amount_per_period: amount::to_wire(amount_per_period),
            period: match period {
                Period::Daily => wire::TariffPeriod::Daily,
                Period::Weekly => wire::TariffPeriod::Weekly,
                Period::Monthly => wire::TariffPeriod::Monthly,
            }
            .into(),
            token_time_mode: match plan.token_time {
                TimeMode::AddTime => wire::TokenTimeMode::AddTime,
                TimeMode::SetTime => wire::TokenTimeMode::SetTime,
            }
            .into(),
        }),
    };
    wire::Plan {
        id: plan.id,
        name: plan.name,
        tariff: Some(tariff),
        negative_charge_limit: amount::to_wire(plan.terms.negative_charge_limit),
        auto_switch_off: plan.terms.auto_switch_off,
        rated_power_w: plan.terms.rated_power_w,
        currency: plan.currency,
        retired_at: plan.retired_at_ms.map(timestamp),
        created_at: Some(timestamp(plan.created_at_ms)),
    }
}
