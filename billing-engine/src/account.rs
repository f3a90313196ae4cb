//! Accounts: one installation's hot billing state and the rules that change it.
//!
//! Every operation validates first (amounts, texts, checked sums), then changes state, then
//! decides the desired load: it returns [`Effects`], the ledger entries it appended and, only
//! when the desired load changed (or the plan just completed), a [`LoadDecision`]. The owner
//! persists the entries and the account together.
//!
//! Accounts do not number commands or track what the device confirmed: the engine owns the one
//! per-unit command sequence (billing decisions, manual switches and offline disables share it)
//! and matches acknowledgements there. A [`LoadDecision`] is only an input to that sequence.
//!
//! Desired load, in order: a completed plan is ON for good (`PlanCompleted`); otherwise with
//! automatic switch-off enabled a balance strictly below the negative charge limit is OFF
//! (`CreditExhausted`); otherwise ON (`CreditRestored`). The reason follows the state, not the
//! trigger, so lowering the limit or disabling switch-off also restores with `CreditRestored`.
//!
//! Submodules: `payments` (payments, reversals, adjustments), `charges` (usage and instalments),
//! `error` (one outcome enum per operation).

mod charges;
mod error;
mod payments;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

pub use self::error::{
    AdjustmentError, ChargeError, PaymentError, ReversalError, SettingsError, TextError,
};
pub use self::payments::{Adjustment, Payment, Reversal};
use crate::ledger::{self, LedgerEntry, Totals};
pub use crate::meter::EnergyDelta;
use crate::money;
use crate::tariff::{PlanTerms, Tariff};

/// Where an account is in its payment plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PlanState {
    /// No credit deposit yet: instalments have no anchor and are not charged.
    PendingFirstDeposit,
    /// Credit has been deposited; charges apply.
    Active,
    /// Down-payment plus payments reached the total system cost: nothing dated at or after `at`
    /// is charged, and the load stays on.
    Completed {
        /// The instant the plan completed.
        at: DateTime<Utc>,
    },
}

/// State of a unit's load output, mirroring the device protocol's `LoadState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LoadState {
    /// The load output is (to be) switched on.
    On,
    /// The load output is (to be) switched off.
    Off,
}

/// Why the desired load changed, mirroring the device protocol's `Reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reason {
    /// The balance fell below the negative charge limit with automatic switch-off enabled.
    CreditExhausted,
    /// The balance is at or above the limit (or switch-off is disabled): the load may run.
    CreditRestored,
    /// An operator set the unit to Offline Disable: off whatever the credit; issued by the
    /// engine's hold, never by these rules.
    OfflineDisable,
    /// An operator's explicit override; issued by the control API, never by these rules.
    Manual,
    /// The plan is paid off: the load stays on for good.
    PlanCompleted,
}

/// The desired load state changed; the engine turns it into the unit's next numbered command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadDecision {
    /// The new desired load state.
    pub load: LoadState,
    /// Why, sent to the device with the command.
    pub reason: Reason,
}

/// What an operation did: what to persist and what to send.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Effects {
    /// Ledger entries appended, in order; the account's totals already include them.
    pub entries: Vec<LedgerEntry>,
    /// The new desired load, if it changed (or the plan just completed): for the engine to
    /// publish as the unit's next command.
    pub load_change: Option<LoadDecision>,
    /// Set only by [`Account::apply_due_instalments`] when the per-call limit
    /// ([`crate::schedule::INSTALMENTS_PER_CALL_MAX`]) was hit: call again.
    pub more_due: bool,
}

/// Per-customer terms entered at registration; `None` takes the plan's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AccountSetup {
    /// Paid up-front for the system: not credit, but counts toward the total system cost.
    pub down_payment: Decimal,
    /// Price of the system; `None` means the plan runs forever.
    pub total_system_cost: Option<Decimal>,
    /// Override of the plan's negative charge limit (≤ 0).
    pub negative_charge_limit: Option<Decimal>,
    /// Override of the plan's automatic switch-off.
    pub auto_switch_off: Option<bool>,
}

/// Why stored totals disagree with their ledger (`Account::check_ledger`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerMismatch {
    /// The entries could not be summed.
    #[error("ledger cannot be replayed: {0}")]
    Replay(#[from] ledger::ReplayError),
    /// Stored totals differ from the replayed ones.
    #[error("stored {stored:?} but the ledger sums to {replayed:?}")]
    Totals {
        /// Totals held by the account.
        stored: Totals,
        /// Totals recomputed from the ledger.
        replayed: Totals,
    },
}

/// One installation's billing state: small (no strings, no history) so that every account of a
/// partition stays in memory; the history lives in the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// How credit is consumed, copied from the plan.
    tariff: Tariff,
    /// Credit balance: the sum of the ledger's amounts.
    #[serde(with = "crate::compact::decimal")]
    balance: Decimal,
    /// Paid up-front; not credit, counts toward the total system cost.
    #[serde(with = "crate::compact::decimal")]
    down_payment: Decimal,
    /// Price of the system, if the plan ends.
    #[serde(with = "crate::compact::decimal_option")]
    total_system_cost: Option<Decimal>,
    /// Payments net of reversals.
    #[serde(with = "crate::compact::decimal")]
    total_paid: Decimal,
    /// Lowest balance allowed before switch-off (≤ 0).
    #[serde(with = "crate::compact::decimal")]
    negative_charge_limit: Decimal,
    /// Whether falling below the limit switches the load off.
    auto_switch_off: bool,
    /// Where the account is in its plan.
    plan_state: PlanState,
    /// The load state the rules last decided; compared with each new outcome so that a
    /// decision is emitted only on change.
    desired_load: LoadState,
    /// Why the load is desired so; sent with the command.
    desired_reason: Reason,
    /// Anchor of the instalment schedule.
    first_deposit_at: Option<DateTime<Utc>>,
    /// Instalments charged so far; the next due is number `instalments_applied + 1`.
    instalments_applied: u32,
}

impl Account {
    /// Opens an account on a plan at `at`, its load desired ON (`PlanCompleted` if a down-payment
    /// already covers the total system cost, which completes the plan at once; otherwise
    /// `CreditRestored`). No decision is returned: the caller reads [`Account::desired_load`],
    /// and the engine publishes it as a command if it differs from the unit's current desired
    /// state.
    pub fn open(
        terms: &PlanTerms,
        setup: &AccountSetup,
        at: DateTime<Utc>,
    ) -> Result<Account, SettingsError> {
        terms.validate()?;
        let limit = setup
            .negative_charge_limit
            .unwrap_or(terms.negative_charge_limit);
        money::validate_non_positive(limit).map_err(SettingsError::NegativeChargeLimit)?;
        validate_sale_terms(setup.down_payment, setup.total_system_cost)?;
        let mut account = Account {
            tariff: terms.tariff,
            balance: Decimal::ZERO,
            down_payment: setup.down_payment,
            total_system_cost: setup.total_system_cost,
            total_paid: Decimal::ZERO,
            negative_charge_limit: limit,
            auto_switch_off: setup.auto_switch_off.unwrap_or(terms.auto_switch_off),
            plan_state: PlanState::PendingFirstDeposit,
            desired_load: LoadState::On,
            desired_reason: Reason::CreditRestored,
            first_deposit_at: None,
            instalments_applied: 0,
        };
        account.try_complete(at);
        (account.desired_load, account.desired_reason) = account.computed_load();
        Ok(account)
    }

    /// The tariff the account is charged under.
    pub fn tariff(&self) -> Tariff {
        self.tariff
    }

    /// Credit balance at full precision (round only for display).
    pub fn balance(&self) -> Decimal {
        self.balance
    }

    /// Puts back the balance a committed usage charge left, when the store replays the unit
    /// log (the charge's entry is already in the journal).
    pub(crate) fn restore_balance(&mut self, balance: Decimal) {
        self.balance = balance;
    }

    /// The down-payment.
    pub fn down_payment(&self) -> Decimal {
        self.down_payment
    }

    /// The total system cost, if the plan ends.
    pub fn total_system_cost(&self) -> Option<Decimal> {
        self.total_system_cost
    }

    /// Payments net of reversals (excluding the down-payment).
    pub fn total_paid(&self) -> Decimal {
        self.total_paid
    }

    /// The negative charge limit (≤ 0).
    pub fn negative_charge_limit(&self) -> Decimal {
        self.negative_charge_limit
    }

    /// Whether automatic load switch-off is enabled.
    pub fn auto_switch_off(&self) -> bool {
        self.auto_switch_off
    }

    /// Where the account is in its plan.
    pub fn plan_state(&self) -> PlanState {
        self.plan_state
    }

    /// The desired load state and why: what the rules last decided, whether or not the engine
    /// has sent it or the device confirmed it.
    pub fn desired_load(&self) -> (LoadState, Reason) {
        (self.desired_load, self.desired_reason)
    }

    /// When the first credit deposit was received: the instalment anchor.
    pub fn first_deposit_at(&self) -> Option<DateTime<Utc>> {
        self.first_deposit_at
    }

    /// How many instalments have been charged.
    pub fn instalments_applied(&self) -> u32 {
        self.instalments_applied
    }

    /// Sets the negative charge limit (≤ 0); may switch the load, as the limit decides it.
    pub fn set_negative_charge_limit(&mut self, limit: Decimal) -> Result<Effects, SettingsError> {
        money::validate_non_positive(limit).map_err(SettingsError::NegativeChargeLimit)?;
        self.negative_charge_limit = limit;
        Ok(self.effects(Vec::new(), false))
    }

    /// Enables or disables automatic switch-off; may switch the load accordingly.
    pub fn set_auto_switch_off(&mut self, enabled: bool) -> Effects {
        self.auto_switch_off = enabled;
        self.effects(Vec::new(), false)
    }

    /// Sets down-payment and total system cost, which registration may fill in late; completes
    /// the plan at `at` if they are now covered. A completed plan stays completed.
    pub fn set_sale_terms(
        &mut self,
        down_payment: Decimal,
        total_system_cost: Option<Decimal>,
        at: DateTime<Utc>,
    ) -> Result<Effects, SettingsError> {
        validate_sale_terms(down_payment, total_system_cost)?;
        self.down_payment = down_payment;
        self.total_system_cost = total_system_cost;
        let completed = self.try_complete(at);
        Ok(self.effects(Vec::new(), completed))
    }

    /// Compares stored totals with the ledger's: an O(n) audit, meant for debug builds and
    /// offline checks (the redb `debug_check_consistency` habit).
    pub fn check_ledger<'a>(
        &self,
        entries: impl IntoIterator<Item = &'a LedgerEntry>,
    ) -> Result<(), LedgerMismatch> {
        let replayed = ledger::replay(entries)?;
        let stored = Totals {
            balance: self.balance,
            total_paid: self.total_paid,
        };
        if stored == replayed {
            Ok(())
        } else {
            Err(LedgerMismatch::Totals { stored, replayed })
        }
    }

    /// Whether nothing dated `at` may be charged any more.
    fn is_completed_by(&self, at: DateTime<Utc>) -> bool {
        match self.plan_state {
            PlanState::Completed { at: completed_at } => at >= completed_at,
            PlanState::PendingFirstDeposit | PlanState::Active => false,
        }
    }

    /// Completes the plan at `at` if down-payment plus payments cover the total system cost;
    /// returns whether it completed just now.
    fn try_complete(&mut self, at: DateTime<Utc>) -> bool {
        if matches!(self.plan_state, PlanState::Completed { .. }) {
            return false;
        }
        let Some(cost) = self.total_system_cost else {
            return false;
        };
        // An overflowing sum is astronomically more than any cost.
        let covered = self
            .down_payment
            .checked_add(self.total_paid)
            .is_none_or(|paid| paid >= cost);
        if covered {
            self.plan_state = PlanState::Completed { at };
        }
        covered
    }

    /// The desired load the rules give for the current state.
    fn computed_load(&self) -> (LoadState, Reason) {
        if matches!(self.plan_state, PlanState::Completed { .. }) {
            (LoadState::On, Reason::PlanCompleted)
        } else if self.auto_switch_off && self.balance < self.negative_charge_limit {
            (LoadState::Off, Reason::CreditExhausted)
        } else {
            (LoadState::On, Reason::CreditRestored)
        }
    }

    /// Wraps appended entries with the decision the new state calls for: only if the desired
    /// load changed or the plan just completed.
    fn effects(&mut self, entries: Vec<LedgerEntry>, just_completed: bool) -> Effects {
        let (load, reason) = self.computed_load();
        let load_change = if load != self.desired_load || just_completed {
            self.desired_load = load;
            self.desired_reason = reason;
            Some(LoadDecision { load, reason })
        } else {
            None
        };
        // The reason changes only with the load or at completion, so no change goes unreported.
        debug_assert_eq!((self.desired_load, self.desired_reason), (load, reason));
        Effects {
            entries,
            load_change,
            more_due: false,
        }
    }
}

/// Checks the down-payment and total system cost: both zero or more, bounded.
fn validate_sale_terms(
    down_payment: Decimal,
    total_system_cost: Option<Decimal>,
) -> Result<(), SettingsError> {
    money::validate_non_negative(down_payment).map_err(SettingsError::DownPayment)?;
    if let Some(cost) = total_system_cost {
        money::validate_non_negative(cost).map_err(SettingsError::TotalSystemCost)?;
    }
    Ok(())
}

/// Checks a free-text field: non-empty and at most [`TEXT_BYTES_MAX`] bytes.
fn validate_text(text: &str) -> Result<(), TextError> {
    if text.trim().is_empty() {
        Err(TextError::Empty)
    } else if text.len() > TEXT_BYTES_MAX {
        Err(TextError::TooLong)
    } else {
        Ok(())
    }
}

/// Longest reference, reason or user name accepted, in bytes: room for any provider's
/// transaction id or a sentence of explanation, while keeping entries small.
pub const TEXT_BYTES_MAX: usize = 256;
