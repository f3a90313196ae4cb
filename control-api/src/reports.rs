//! The `sunledger.api.v1.Reports` service: the dashboard, revenue collected in a period and
//! the portfolio at risk. Counts of customers, registrations and unheld units come from the
//! directory; the state of the billed units from [`Engine::org_summary`]; revenue from the
//! billing store's per-organisation revenue index. Every report is open to any role.

use std::sync::Arc;

use prost_types::Timestamp;
use rust_decimal::Decimal;
use sunledger_billing::engine::OrgSummary;
use sunledger_billing::worker::Engine;
use sunledger_proto::api::v1 as wire;
use sunledger_proto::api::v1::reports_server::Reports;
use tonic::{Request, Response, Status};

use crate::amount;
use crate::platform::Platform;
use crate::roles::Role;
use crate::validate::FieldViolation;
use crate::{auth, blocking};

/// Decimal places of a portfolio-at-risk share (0.1234 is 12.34 %).
const SHARE_DECIMALS: u32 = 4;

/// Serves `Reports` from the directory, the billing engine and the billing store.
pub struct ReportsService {
    platform: Platform,
}

impl ReportsService {
    /// A service reading `platform`.
    pub fn new(platform: Platform) -> ReportsService {
        ReportsService { platform }
    }
}

/// The engine's counts over `org_id`'s billed units, asked on the blocking pool (the engine
/// answers through its partition threads).
async fn summary(engine: Arc<Engine>, org_id: String) -> Result<OrgSummary, Status> {
    blocking(move || Ok(engine.org_summary(&org_id)?)).await
}

/// `part / whole` rounded to [`SHARE_DECIMALS`], as a decimal string; "0" when `whole` is 0.
fn share(part: u64, whole: u64) -> String {
    match whole {
        0 => "0".to_owned(),
        _ => amount::to_wire((Decimal::from(part) / Decimal::from(whole)).round_dp(SHARE_DECIMALS)),
    }
}

/// Unix milliseconds of a required timestamp field.
fn millis(field: &'static str, at: Option<Timestamp>) -> Result<i64, FieldViolation> {
    let at = at.ok_or_else(|| FieldViolation::new(field, "required"))?;
    at.seconds
        .checked_mul(1_000)
        .and_then(|ms| ms.checked_add(i64::from(at.nanos) / 1_000_000))
        .ok_or_else(|| FieldViolation::new(field, "out of range"))
}

#[tonic::async_trait]
impl Reports for ReportsService {
    async fn get_dashboard(
        &self,
        request: Request<wire::GetDashboardRequest>,
    ) -> Result<Response<wire::Dashboard>, Status> {
        let caller = auth::authorised(&request, Role::Observer)?;
        let directory = self.platform.directory.clone();
        let org_id = caller.org_id.clone();
        let counts = blocking(move || directory.dashboard_counts(&org_id)).await?;
        let units = summary(self.platform.engine.clone(), caller.org_id).await?;
        Ok(Response::new(wire::Dashboard {
            customers_by_status: counts
                .customers_by_status
                .into_iter()
                .map(|(status, customers)| wire::ApprovalStatusCount {
                    status: wire::ApprovalStatus::from(status).into(),
                    customers,
                })
                .collect(),
            partial_registrations: counts.partial_registrations,
            units_online: units.online,
            units_offline: units.offline,
            units_switched_off_for_credit: units.switched_off_for_credit,
            units_offline_disabled: units.offline_disabled,
            units_without_installation: counts.units_without_installation,
        }))
    }

    async fn get_revenue(
        &self,
        request: Request<wire::GetRevenueRequest>,
    ) -> Result<Response<wire::Revenue>, Status> {
        let caller = auth::authorised(&request, Role::Observer)?;
        let request = request.into_inner();
        let from_ms = millis("from", request.from)?;
        let to_ms = millis("to", request.to)?;
        if to_ms <= from_ms {
            return Err(FieldViolation::new("to", "must be after from").into());
        }
        let Platform {
            directory, store, ..
        } = self.platform.clone();
        let (amount, currency) = blocking(move || {
            let currency = directory.organisation(&caller.org_id)?.currency;
            Ok((store.revenue(&caller.org_id, from_ms, to_ms)?, currency))
        })
        .await?;
        Ok(Response::new(wire::Revenue {
            amount: amount::to_wire(amount),
            currency,
        }))
    }

    async fn get_portfolio_at_risk(
        &self,
        request: Request<wire::GetPortfolioAtRiskRequest>,
    ) -> Result<Response<wire::PortfolioAtRisk>, Status> {
        let caller = auth::authorised(&request, Role::Observer)?;
        let units = summary(self.platform.engine.clone(), caller.org_id).await?;
        Ok(Response::new(wire::PortfolioAtRisk {
            accounts: units.accounts,
            at_risk_7d: units.below_limit_7d,
            share_7d: share(units.below_limit_7d, units.accounts),
            at_risk_30d: units.below_limit_30d,
            share_30d: share(units.below_limit_30d, units.accounts),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_round_to_four_places_and_no_accounts_is_zero() {
        assert_eq!(share(1, 3), "0.3333");
        assert_eq!(share(2, 2), "1");
        assert_eq!(share(0, 0), "0");
    }

    #[test]
    fn timestamps_become_milliseconds_and_missing_ones_name_their_field() {
        let at = Timestamp {
            seconds: 2,
            nanos: 500_000_000,
        };
        assert_eq!(millis("from", Some(at)), Ok(2_500));
        assert_eq!(millis("to", None).unwrap_err().field, "to");
    }
}
