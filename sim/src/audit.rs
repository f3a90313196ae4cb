//! The end-of-run audit: for every device, the energy the platform holds must be what the
//! device's ground truth says it reported past its baselines, give or take only readings
//! written whose PUBACK never came (the platform may or may not have received those); and,
//! read through the operators' API, every account's ledger must sum to its balance.
//!
//! [`Audit::check_energy`] is the comparison, whoever reads the platform's figure (the
//! end-to-end benchmark reads its store directly); [`audit_over_api`] reads everything
//! through gRPC, as an operator would, and repeats until the platform has caught up.
//!
//! A unit that reported in an earlier run is the one place the truth cannot be exact: the
//! platform charges this run's first reading its increase over that run's last reading when
//! neither counter is lower (the unit rebooted shortly before the earlier run ended), and
//! the API does not show that reading's counters. Such a unit may hold up to its first
//! reading's energy more ([`Audit::check_energy_after_earlier_runs`]).

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sunledger_proto::api::v1 as api;

use crate::enrol::EnrolledUnit;
use crate::error::SimError;
use crate::operator::{Operator, all_pages, bounded};
use crate::truth::DeviceTruth;

/// Pause between two audit passes while the platform still processes the last readings.
const AUDIT_RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// What the audit found; no mismatches means the platform agrees with the fleet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Audit {
    /// Devices whose energy was checked.
    pub checked: usize,
    /// Accounts whose ledger was summed against their balance.
    pub ledgers_checked: usize,
    /// Energy the devices reported past their baselines, summed (Wh).
    pub billable_wh: u64,
    /// Energy the platform holds, summed (Wh).
    pub stored_wh: u64,
    /// One line per mismatch, naming the device (and its replay seed) and both figures.
    pub mismatches: Vec<String>,
}

impl Audit {
    /// Checks the platform's `stored_wh` for the device `truth` describes, a unit that had
    /// not reported before the run.
    pub fn check_energy(&mut self, truth: &DeviceTruth, stored_wh: u64) {
        self.check_energy_within(truth, stored_wh, 0);
    }

    /// Checks the platform's `stored_wh` for a unit that reported in an earlier run: it may
    /// also hold (part of) this run's first reading, charged as an increase over the earlier
    /// run's last.
    pub fn check_energy_after_earlier_runs(&mut self, truth: &DeviceTruth, stored_wh: u64) {
        self.check_energy_within(truth, stored_wh, truth.first_reported_wh);
    }

    /// Stored energy must lie between what was acknowledged past the baselines and that
    /// plus what was written without an acknowledgement, plus `unknown_baseline_wh`.
    fn check_energy_within(
        &mut self,
        truth: &DeviceTruth,
        stored_wh: u64,
        unknown_baseline_wh: u64,
    ) {
        let low = truth.billable_wh();
        let high = low + truth.unacked_wh() + unknown_baseline_wh;
        self.checked += 1;
        self.billable_wh += low;
        self.stored_wh += stored_wh;
        if !(low..=high).contains(&stored_wh) {
            self.mismatches.push(format!(
                "{} (seed {}): truth allows {low}..={high} Wh, platform stored {stored_wh} Wh",
                truth.serial, truth.seed
            ));
        }
    }

    /// Checks that the ledger entries of `serial`'s account sum to its balance.
    pub fn check_ledger(&mut self, serial: &str, balance: Decimal, ledger_sum: Decimal) {
        self.ledgers_checked += 1;
        if balance != ledger_sum {
            self.mismatches.push(format!(
                "{serial}: balance {balance} but the ledger sums to {ledger_sum}"
            ));
        }
    }
}

/// Audits every device in `truths` through the operators' API, `units` naming their
/// installations and the energy metered before the run (which the truths do not cover);
/// repeats while mismatches remain and the platform's stored energy still
/// moves, for at most `settle_max`, and returns the last pass.
pub async fn audit_over_api(
    operator: &Operator,
    units: &[EnrolledUnit],
    truths: &[DeviceTruth],
    settle_max: Duration,
) -> Result<Audit, SimError> {
    let deadline = tokio::time::Instant::now() + settle_max;
    let mut previous_stored_wh = None;
    loop {
        let audit = audit_pass(operator, units, truths).await?;
        let settled = previous_stored_wh == Some(audit.stored_wh);
        if audit.mismatches.is_empty() || settled || tokio::time::Instant::now() >= deadline {
            return Ok(audit);
        }
        previous_stored_wh = Some(audit.stored_wh);
        tokio::time::sleep(AUDIT_RETRY_INTERVAL).await;
    }
}

/// Calls in flight at once during an audit pass: a 10,000-device fleet audited one call at a
/// time takes minutes.
const AUDIT_CONCURRENCY: usize = 16;

/// What the platform says about one unit: its metered energy and, for an enrolled unit, its
/// balance and ledger sum.
struct Observed {
    consumed_wh: u64,
    ledger: Option<(Option<Decimal>, Option<Decimal>)>,
}

/// Reads unit `serial` (and the ledger of `installation_id`, if enrolled) through the API.
async fn observe(
    operator: Operator,
    serial: String,
    installation_id: Option<String>,
) -> Result<(String, Observed), SimError> {
    let request = api::GetUnitRequest {
        serial: serial.clone(),
    };
    let details = operator
        .units()
        .get_unit(request)
        .await
        .map_err(|status| SimError::api(format!("GetUnit {serial}"), status))?
        .into_inner();
    let ledger = match installation_id {
        Some(id) => Some(ledger(&operator, &serial, &id).await?),
        None => None,
    };
    let consumed_wh = details.device.map_or(0, |device| device.consumed_wh);
    Ok((
        serial,
        Observed {
            consumed_wh,
            ledger,
        },
    ))
}

async fn audit_pass(
    operator: &Operator,
    units: &[EnrolledUnit],
    truths: &[DeviceTruth],
) -> Result<Audit, SimError> {
    let enrolled: HashMap<&str, &EnrolledUnit> = units
        .iter()
        .map(|unit| (unit.serial.as_str(), unit))
        .collect();
    let reads = truths.iter().map(|truth| {
        let installation_id = enrolled
            .get(truth.serial.as_str())
            .map(|unit| unit.installation_id.clone());
        observe(operator.clone(), truth.serial.clone(), installation_id)
    });
    let observed: HashMap<String, Observed> = bounded(reads, AUDIT_CONCURRENCY)
        .await?
        .into_iter()
        .collect();
    let mut audit = Audit::default();
    for truth in truths {
        let seen = &observed[&truth.serial];
        let unit = enrolled.get(truth.serial.as_str());
        let stored_wh = seen
            .consumed_wh
            .saturating_sub(unit.map_or(0, |unit| unit.consumed_wh_before));
        match unit {
            Some(unit) if !unit.newly_registered => {
                audit.check_energy_after_earlier_runs(truth, stored_wh);
            }
            _ => audit.check_energy(truth, stored_wh),
        }
        match seen.ledger {
            None => {}
            Some((Some(balance), Some(sum))) => audit.check_ledger(&truth.serial, balance, sum),
            Some(_) => audit
                .mismatches
                .push(format!("{}: an amount is not a decimal", truth.serial)),
        }
    }
    Ok(audit)
}

/// The account's balance and the sum of its ledger, all pages; `None` for an amount that is
/// not a decimal.
async fn ledger(
    operator: &Operator,
    serial: &str,
    installation_id: &str,
) -> Result<(Option<Decimal>, Option<Decimal>), SimError> {
    let request = api::GetBalanceRequest {
        installation_id: installation_id.to_owned(),
    };
    let balance = operator
        .payments()
        .get_balance(request)
        .await
        .map_err(|status| SimError::api(format!("GetBalance {serial}"), status))?
        .into_inner();
    let entries = all_pages(|page_token| async move {
        let request = api::ListLedgerRequest {
            installation_id: installation_id.to_owned(),
            page_size: 0,
            page_token,
        };
        let page = operator
            .payments()
            .list_ledger(request)
            .await
            .map_err(|status| SimError::api(format!("ListLedger {serial}"), status))?
            .into_inner();
        Ok((page.entries, page.next_page_token))
    })
    .await?;
    let sum = entries.iter().try_fold(Decimal::ZERO, |sum, entry| {
        sum.checked_add(Decimal::from_str(&entry.amount).ok()?)
    });
    Ok((Decimal::from_str(&balance.balance).ok(), sum))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::truth::TruthRecorder;

    #[test]
    fn stored_energy_must_lie_between_acknowledged_and_written() {
        let mut recorder = TruthRecorder::new("SL-1".into(), 3, 1, 4);
        let wh = |load_wh, usb_wh| crate::Counters { load_wh, usb_wh };
        recorder.on_acked(1, wh(10, 0));
        recorder.on_acked(1, wh(30, 0));
        recorder.on_written(1, wh(35, 0));
        let truth = recorder.snapshot();
        let mut audit = Audit::default();
        for stored_wh in [20, 25, 19, 26] {
            audit.check_energy(&truth, stored_wh);
        }
        assert_eq!((audit.checked, audit.billable_wh), (4, 80));
        assert_eq!(audit.mismatches.len(), 2, "{:?}", audit.mismatches);
        assert!(audit.mismatches[0].contains("20..=25 Wh, platform stored 19"));
        // After an earlier run, the first reading (10 Wh) may have been charged too.
        let before = audit.mismatches.len();
        for stored_wh in [20, 35, 36] {
            audit.check_energy_after_earlier_runs(&truth, stored_wh);
        }
        assert_eq!(audit.mismatches.len(), before + 1, "{:?}", audit.mismatches);
        assert!(audit.mismatches[before].contains("20..=35 Wh, platform stored 36"));
        audit.check_ledger("SL-1", Decimal::new(150, 2), Decimal::new(15, 1));
        audit.check_ledger("SL-1", Decimal::ONE, Decimal::ZERO);
        assert_eq!((audit.ledgers_checked, audit.mismatches.len()), (2, 4));
    }
}
