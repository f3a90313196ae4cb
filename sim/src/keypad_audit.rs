//! The keypad fleet's audit: every paid day must have arrived. Per unit, the days its firmware
//! accepted must equal the days its payments owe, and the platform's account (read through
//! `Payments.GetBalance`) must have credited exactly those days and kept on its balance exactly
//! the money that buys no whole day yet; whatever the unit's truth found wrong on the way
//! (refused tokens, re-entries accepted, counts not rising) is reported too.

use std::str::FromStr;

use rust_decimal::Decimal;
use serde::Serialize;
use sunledger_proto::api::v1 as api;

use crate::error::SimError;
use crate::keypad::KeypadRun;
use crate::keypad_truth::{DayRate, KeypadTruth};
use crate::operator::{Operator, bounded};

/// Balances read at once during the audit.
const AUDIT_CONCURRENCY: usize = 16;

/// The keypad fleet's figures and audit, as the summary prints them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KeypadSummary {
    /// Keypad units run.
    pub units: usize,
    /// Distinct payments recorded.
    pub payments: u64,
    /// Earlier references sent again.
    pub repeats: u64,
    /// Tokens the units accepted.
    pub tokens_accepted: u64,
    /// Re-entries of used tokens the units refused.
    pub reentries_refused: u64,
    /// Whole days the money paid buys, by the simulator's own arithmetic.
    pub days_owed: u64,
    /// Days the units' firmware accepted.
    pub days_accepted: u64,
    /// Days the platform says it credited.
    pub days_credited: u64,
    /// Payments that waited for a free slot under `keypad.payments_in_flight_max`.
    pub in_flight_limit_hits: u64,
    /// Everything that differs from the truth, one line each; must be empty.
    pub mismatches: Vec<String>,
}

/// What the platform says of one keypad unit's account.
struct Account {
    balance: Option<Decimal>,
    days_credited: Option<u64>,
}

/// Audits the keypad fleet's `run` against the platform, each unit's days at `rate`.
pub async fn audit_keypads(
    operator: &Operator,
    rate: DayRate,
    run: &KeypadRun,
) -> Result<KeypadSummary, SimError> {
    let reads = run
        .truths
        .iter()
        .map(|truth| account(operator.clone(), truth.installation_id.clone()));
    let accounts = bounded(reads, AUDIT_CONCURRENCY).await?;
    let mut summary = KeypadSummary {
        units: run.truths.len(),
        in_flight_limit_hits: run.in_flight_limit_hits,
        ..KeypadSummary::default()
    };
    for (truth, account) in run.truths.iter().zip(&accounts) {
        summary.check(rate, truth, account);
    }
    Ok(summary)
}

impl KeypadSummary {
    /// Adds one unit's figures and whatever in them differs from its truth.
    fn check(&mut self, rate: DayRate, truth: &KeypadTruth, account: &Account) {
        let owed = truth.days_owed(rate);
        self.payments += truth.payments;
        self.repeats += truth.repeats;
        self.tokens_accepted += truth.tokens_accepted;
        self.reentries_refused += truth.reentries_refused;
        self.days_owed += owed;
        self.days_accepted += truth.days_accepted;
        self.days_credited += account.days_credited.unwrap_or(0);
        self.mismatches.extend(truth.problems.iter().cloned());
        let unit = format!("keypad {} (seed {})", truth.serial, truth.seed);
        if truth.problems_dropped > 0 {
            let dropped = truth.problems_dropped;
            self.mismatches
                .push(format!("{unit}: {dropped} more problems"));
        }
        if truth.days_accepted != owed {
            self.mismatches.push(format!(
                "{unit}: paid {} for {owed} days, the unit accepted {}",
                truth.paid, truth.days_accepted
            ));
        }
        match account.days_credited {
            Some(credited) if credited == owed => {}
            credited => self.mismatches.push(format!(
                "{unit}: owed {owed} days, the platform credited {credited:?}"
            )),
        }
        let expected = truth.balance_expected();
        if account.balance != Some(expected) {
            self.mismatches.push(format!(
                "{unit}: {expected} should wait on the balance, the platform has {:?}",
                account.balance
            ));
        }
    }
}

/// The balance and days credited of the account of `installation_id`; `None` for a balance
/// that is not a decimal, or an account without keypad credit.
async fn account(operator: Operator, installation_id: String) -> Result<Account, SimError> {
    let request = api::GetBalanceRequest {
        installation_id: installation_id.clone(),
    };
    let balance = operator
        .payments()
        .get_balance(request)
        .await
        .map_err(|status| SimError::api(format!("GetBalance {installation_id}"), status))?
        .into_inner();
    Ok(Account {
        balance: Decimal::from_str(&balance.balance).ok(),
        days_credited: balance.keypad.map(|keypad| keypad.days_credited),
    })
}
