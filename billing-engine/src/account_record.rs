//! What the engine keeps per account beside the billing rules' own state: the organisation it
//! belongs to (payment references are unique per organisation), the organisation's time zone
//! (instalment boundaries), the unit's rated power (meter plausibility) and its ledger's length
//! and head (see [`crate::store`] for how ledgers are chained through the journal).

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::account::{Account, AccountSetup, Adjustment, Payment, PlanState, Reversal};
use crate::keypad::{IssuedToken, KeypadBilling, TimeMode};
use crate::ledger::LedgerEntry;
use crate::tariff::PlanTerms;

/// One installation's account as the engine holds it in memory and stores it in redb.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRecord {
    /// The organisation the account belongs to: the scope of payment references.
    pub org: Box<str>,
    /// The organisation's time zone, where instalment periods begin and end.
    pub tz: Tz,
    /// Rated maximum power of the unit's load output, watts, from the plan.
    pub rated_power_w: u32,
    /// Balances, plan state and desired load, changed only by the billing rules.
    pub account: Account,
    /// Entries on the account's ledger; the next entry is numbered `ledger_len`.
    pub ledger_len: u64,
    /// Journal position of the account's latest ledger entry, the head of its chain.
    pub ledger_head: Option<u64>,
    /// Since when the balance has been below the negative charge limit, unix milliseconds:
    /// what portfolio-at-risk reports age. `None` while at or above it, or once completed.
    pub below_limit_since_ms: Option<i64>,
    /// A keypad unit's time bookkeeping: present when the account is billed in days of credit
    /// sold as tokens ([`crate::keypad`]) instead of charged instalments.
    pub keypad: Option<KeypadBilling>,
}

impl AccountRecord {
    /// Starts or ends the below-limit period after the account changed at `now`.
    pub(crate) fn track_limit(&mut self, now: DateTime<Utc>) {
        let account = &self.account;
        let below = !matches!(account.plan_state(), PlanState::Completed { .. })
            && account.balance() < account.negative_charge_limit();
        self.below_limit_since_ms = match below {
            true => self.below_limit_since_ms.or(Some(now.timestamp_millis())),
            false => None,
        };
    }
}

/// An account taken off its unit, so the unit can be billed again under a new account. Kept
/// whole: its ledger stays in the journal, readable from `record.ledger_head`, and its final
/// balance is the one `record` holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedAccount {
    /// When it was closed, unix milliseconds: with the serial, its key among the unit's closed
    /// accounts. Strictly increasing per unit, so the unit's closed accounts are in order.
    pub closed_at_ms: i64,
    /// The account as it stood when closed.
    pub record: AccountRecord,
}

/// What opening an account needs: whose it is, on which plan's terms, with which overrides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountOpening {
    /// The owning organisation's id.
    pub org: String,
    /// The organisation's time zone.
    pub tz: Tz,
    /// The plan's terms, copied into the account (a later plan change does not rewrite
    /// signed contracts).
    pub terms: PlanTerms,
    /// The customer's down-payment, system cost and overrides.
    pub setup: AccountSetup,
    /// For a keypad unit: whether payments add days or set the remaining days (the plan's
    /// choice); ignored for connected units.
    pub time_mode: TimeMode,
}

/// A change an operator makes to an open account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccountChange {
    /// New negative charge limit (≤ 0).
    NegativeChargeLimit(rust_decimal::Decimal),
    /// Enable or disable automatic switch-off.
    AutoSwitchOff(bool),
    /// Down-payment and total system cost, which registration may complete late.
    SaleTerms {
        /// The down-payment.
        down_payment: rust_decimal::Decimal,
        /// The total system cost, if the plan ends.
        total_system_cost: Option<rust_decimal::Decimal>,
    },
}

/// A money movement an operator or provider asks the engine to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Movement {
    /// A credit deposit; its provider reference makes it idempotent.
    Payment(Payment),
    /// An operator's correction; its reference makes it idempotent.
    Adjustment(Adjustment),
    /// The undoing of the payment with this provider reference.
    Reversal {
        /// The reversed payment's provider reference.
        provider_ref: String,
        /// Why and by whom.
        reversal: Reversal,
    },
}

/// The answer to a recorded money movement: the ledger entry it produced (or, for a repeated
/// reference, the entry the first call produced) and the account afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The entry's number on the account's ledger.
    pub ledger_seq: u64,
    /// The entry itself.
    pub entry: LedgerEntry,
    /// Whether this reference had already been recorded, so nothing new was written.
    pub duplicate: bool,
    /// The account after the movement.
    pub account: AccountRecord,
    /// For a payment on a keypad unit: the tokens it bought (for a repeated reference, the
    /// same tokens again); empty otherwise.
    pub tokens: Vec<IssuedToken>,
}
