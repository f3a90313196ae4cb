//! Accounts in a partition: opening one for a unit, changing its terms, recording money
//! movements (payments, adjustments, reversals) and closing it, each in its own durable
//! transaction so the caller's acknowledgement means the change survives a crash.
//!
//! Payment and adjustment references are idempotency keys per organisation: the index is read
//! and written inside the same write transaction, and redb runs one write transaction at a
//! time, so two partitions can never both record the same reference. Closing an account never
//! frees its references: one already used on a closed account is refused on the unit's next
//! account too (its entry is on another account).

use super::tokens::{Issuer, settle_completion};
use super::{Partition, Unit};
use crate::account::{
    Account, AdjustmentError, ChargeError, PaymentError, ReversalError, SettingsError,
};
use crate::account_record::{
    AccountChange, AccountOpening, AccountRecord, ClosedAccount, Movement, Receipt,
};
use crate::keypad::{KeypadBilling, TokenReason};
use crate::ledger::EntryKind;
use crate::store::{JournalRecord, RefIndex, RefKind, StoreError, WriteTxn};
use crate::tariff::Tariff;
use rust_decimal::prelude::ToPrimitive;

/// Why the engine refused a request. Nothing was changed when one is returned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// No such unit.
    #[error("unit {0} is not registered")]
    UnitNotFound(String),
    /// The unit was decommissioned.
    #[error("unit {0} is decommissioned")]
    UnitDecommissioned(String),
    /// The unit has no account yet.
    #[error("unit {0} has no account")]
    AccountNotFound(String),
    /// The unit already has an account.
    #[error("unit {0} already has an account")]
    AccountExists(String),
    /// No payment with this reference in the organisation.
    #[error("no payment with reference {0:?}")]
    PaymentNotFound(String),
    /// The reference was already used for a different amount or account (a closed account of
    /// the same unit included).
    #[error("reference {0:?} was already used for a different amount or account")]
    ReferenceReused(String),
    /// The payment to reverse is on a closed account, which takes no more entries.
    #[error("payment {0:?} is on a closed account")]
    PaymentOnClosedAccount(String),
    /// The account settings were refused.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The payment was refused.
    #[error(transparent)]
    Payment(#[from] PaymentError),
    /// The adjustment was refused.
    #[error(transparent)]
    Adjustment(#[from] AdjustmentError),
    /// The reversal was refused.
    #[error(transparent)]
    Reversal(#[from] ReversalError),
    /// A charge could not be computed.
    #[error(transparent)]
    Charge(#[from] ChargeError),
    /// The change could not be stored; nothing changed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The unit is not a keypad unit, so it takes no tokens.
    #[error("unit {0} is not a keypad unit")]
    NotKeypad(String),
    /// A keypad unit's payments buy days at an instalment rate, so its plan must have one.
    #[error("unit {0} is a keypad unit: its plan must be instalment-based")]
    KeypadNeedsInstalmentPlan(String),
    /// A token could not be made (e.g. more days than the unit's token format carries).
    #[error(transparent)]
    Token(#[from] crate::openpaygo::TokenError),
    /// The unit is held off by Offline Disable; only enabling it may switch it.
    #[error("unit {0} is in Offline Disable")]
    OfflineDisabled(String),
    /// The engine is shutting down.
    #[error("billing engine is stopping")]
    Stopping,
}

impl EngineError {
    /// Whether retrying the same call later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            EngineError::Store(error) => error.is_transient(),
            EngineError::Stopping => true,
            _ => false,
        }
    }
}

impl Partition {
    /// Opens the unit's account on `opening`'s terms; the unit is sent the account's desired
    /// load if it differs from what the unit was last told. A keypad unit's account is billed
    /// in days (its plan must be instalment-based), and gets DISABLE_PAYG at once if the
    /// down-payment already covers the system cost.
    pub fn open_account(
        &mut self,
        serial: &str,
        opening: AccountOpening,
    ) -> Result<AccountRecord, EngineError> {
        let now = self.clock.now();
        let store = self.store.clone();
        self.transact(serial, |unit, txn, pending| {
            if unit.account.is_some() {
                return Err(EngineError::AccountExists(serial.to_owned()));
            }
            let keypad = match txn.keypad_config(serial)? {
                Some(config) if config.mode.uses_tokens() => {
                    if !matches!(opening.terms.tariff, Tariff::Instalment { .. }) {
                        return Err(EngineError::KeypadNeedsInstalmentPlan(serial.to_owned()));
                    }
                    Some(KeypadBilling {
                        time_mode: opening.time_mode,
                        ..KeypadBilling::default()
                    })
                }
                _ => None,
            };
            let account = Account::open(&opening.terms, &opening.setup, now)?;
            let (load, reason) = account.desired_load();
            unit.account = Some(AccountRecord {
                org: opening.org.into_boxed_str(),
                tz: opening.tz,
                rated_power_w: opening.terms.rated_power_w,
                account,
                ledger_len: 0,
                ledger_head: None,
                below_limit_since_ms: None,
                keypad,
            });
            let decision = crate::account::LoadDecision { load, reason };
            pending.decide(serial, &mut unit.state, decision, now);
            settle_completion(&store, serial, now, unit, txn, pending)?;
            Ok((unit.account.clone(), true))
        })
        .map(|record| record.expect("just opened"))
    }

    /// Changes an open account's terms; may switch the load, and on a keypad unit may
    /// complete the plan (DISABLE_PAYG).
    pub fn change_account(
        &mut self,
        serial: &str,
        change: AccountChange,
    ) -> Result<AccountRecord, EngineError> {
        let now = self.clock.now();
        let store = self.store.clone();
        self.transact(serial, |unit, txn, pending| {
            let record = account_of(serial, unit)?;
            let effects = match change {
                AccountChange::NegativeChargeLimit(limit) => {
                    record.account.set_negative_charge_limit(limit)?
                }
                AccountChange::AutoSwitchOff(enabled) => {
                    record.account.set_auto_switch_off(enabled)
                }
                AccountChange::SaleTerms {
                    down_payment,
                    total_system_cost,
                } => record
                    .account
                    .set_sale_terms(down_payment, total_system_cost, now)?,
            };
            pending.record(serial, unit, effects, now);
            settle_completion(&store, serial, now, unit, txn, pending)?;
            Ok((unit.account.clone().expect("checked above"), true))
        })
    }

    /// Closes the unit's account so the unit can be billed again under a new one (opened with
    /// [`Partition::open_account`]). In one transaction the account moves, whole, to the unit's
    /// closed accounts and the unit is left without one; from then on nothing is charged to it
    /// (readings are metered but not billed, its instalments stop) and no movement reaches it.
    ///
    /// Its ledger stays in the journal, readable with [`crate::store::Store::account_ledger`],
    /// and its references stay used. An account whose balance is not zero may be closed:
    /// writing off a debt or refunding credit is the operator's business, and the final
    /// balance is kept in the closed record. The unit's device side is untouched: the load
    /// stays as last commanded, and an Offline Disable hold stays on.
    pub fn close_account(&mut self, serial: &str) -> Result<ClosedAccount, EngineError> {
        let now_ms = self.clock.now().timestamp_millis();
        self.transact(serial, |unit, txn, _pending| {
            let record = unit
                .account
                .take()
                .ok_or_else(|| EngineError::AccountNotFound(serial.to_owned()))?;
            // Keys stay unique and ordered even if the clock stands still or steps back.
            let latest_ms = txn.closed_accounts(serial)?.last().map(|c| c.closed_at_ms);
            let closed = ClosedAccount {
                closed_at_ms: latest_ms.map_or(now_ms, |ms| now_ms.max(ms.saturating_add(1))),
                record,
            };
            txn.put_closed_account(serial, &closed)?;
            Ok((closed, true))
        })
    }

    /// Records a payment, adjustment or reversal. A reference already recorded returns the
    /// first call's entry (`duplicate`), unless it was for another amount or account. A
    /// payment on a keypad unit buys days and returns their tokens (a repeated reference, the
    /// same tokens); adjustments and reversals move the balance only, which the next payment
    /// settles.
    pub fn record(&mut self, serial: &str, movement: Movement) -> Result<Receipt, EngineError> {
        let now = self.clock.now();
        let store = self.store.clone();
        let receipt = self.transact(serial, |unit, txn, pending| {
            let org = account_of(serial, unit)?.org.clone();
            let (kind, reference, amount) = match &movement {
                Movement::Payment(payment) => (
                    RefKind::Payment,
                    &payment.provider_ref,
                    Some(payment.amount),
                ),
                Movement::Adjustment(adjustment) => (
                    RefKind::Adjustment,
                    &adjustment.reference,
                    Some(adjustment.amount),
                ),
                Movement::Reversal { provider_ref, .. } => (RefKind::Payment, provider_ref, None),
            };
            let reference = reference.clone();
            let index = txn.reference(kind, &org, &reference)?;
            let on_closed = match &index {
                Some(index) if index.serial == serial => on_closed_account(txn, serial, index.pos)?,
                _ => false,
            };
            if let (Some(index), Some(amount)) = (&index, amount) {
                let first = stored_entry(txn, index.pos)?;
                if index.serial != serial || on_closed || first.entry.amount != amount {
                    return Err(EngineError::ReferenceReused(reference));
                }
                let receipt = Receipt {
                    ledger_seq: first.seq,
                    entry: first.entry,
                    duplicate: true,
                    account: unit.account.clone().expect("checked above"),
                    tokens: txn.tokens_for_payment(serial, &reference)?,
                };
                return Ok((receipt, false));
            }
            let record = account_of(serial, unit)?;
            let mut reversed = None;
            let mut paid_by = None;
            let effects = match movement {
                Movement::Payment(payment) => {
                    paid_by = Some(payment.entered_by.clone());
                    record.account.apply_payment(&payment, now)?
                }
                Movement::Adjustment(adjustment) => {
                    record.account.apply_adjustment(&adjustment, now)?
                }
                Movement::Reversal {
                    provider_ref,
                    reversal,
                } => {
                    let index = index
                        .filter(|index| index.serial == serial)
                        .ok_or_else(|| EngineError::PaymentNotFound(provider_ref.clone()))?;
                    if on_closed {
                        return Err(EngineError::PaymentOnClosedAccount(provider_ref));
                    }
                    let original = stored_entry(txn, index.pos)?.entry;
                    let already_reversed = index.reversal_pos.is_some();
                    let effects = record.account.reverse_payment(
                        &original,
                        already_reversed,
                        &reversal,
                        now,
                    )?;
                    reversed = Some(index);
                    effects
                }
            };
            let entry = effects
                .entries
                .first()
                .cloned()
                .expect("a movement appends one entry");
            let ledger_seq = pending.record(serial, unit, effects, now);
            let pos = unit
                .account
                .as_ref()
                .and_then(|record| record.ledger_head)
                .expect("an entry was just appended");
            let tokens = match &paid_by {
                Some(by) => {
                    let issuer = Issuer {
                        store: &store,
                        serial,
                        by,
                        now,
                    };
                    let provider_ref = reference.clone();
                    issuer.settle(
                        unit,
                        txn,
                        pending,
                        Some(TokenReason::Payment { provider_ref }),
                    )?
                }
                None => Vec::new(),
            };
            let record = unit.account.clone().expect("checked above");
            let new_index = match reversed {
                Some(index) => RefIndex {
                    reversal_pos: Some(pos),
                    ..index
                },
                None => RefIndex {
                    serial: serial.into(),
                    pos,
                    reversal_pos: None,
                },
            };
            txn.put_reference(kind, &org, &reference, &new_index)?;
            if kind == RefKind::Payment {
                txn.put_revenue(&org, now, pos, entry.amount)?;
            }
            let receipt = Receipt {
                ledger_seq,
                entry,
                duplicate: false,
                account: record,
                tokens,
            };
            Ok((receipt, true))
        })?;
        count_money_in(&receipt);
        Ok(receipt)
    }
}

/// Counts a committed payment or reversal for the dashboards: the histograms' sums and
/// counts give revenue and the number of payments. Approximate (f64): the ledger is the
/// account of record.
fn count_money_in(receipt: &Receipt) {
    if receipt.duplicate {
        return;
    }
    let amount = receipt.entry.amount.abs().to_f64().unwrap_or(f64::MAX);
    match receipt.entry.kind {
        EntryKind::Payment => metrics::histogram!("sunledger_payment_amount").record(amount),
        EntryKind::Reversal => metrics::histogram!("sunledger_reversal_amount").record(amount),
        _ => {}
    }
}

/// The unit's account, or the error saying it has none.
fn account_of<'a>(serial: &str, unit: &'a mut Unit) -> Result<&'a mut AccountRecord, EngineError> {
    unit.account
        .as_mut()
        .ok_or_else(|| EngineError::AccountNotFound(serial.to_owned()))
}

/// Whether the entry at journal position `pos` of unit `serial` is on one of its closed
/// accounts. Journal positions only grow and a unit has one account at a time, so every entry
/// of a closed account lies at or before that account's head, and every entry of the open one
/// after it. Read only when a reference of this unit is met again, so the scan is rare.
fn on_closed_account(txn: &WriteTxn, serial: &str, pos: u64) -> Result<bool, EngineError> {
    let closed = txn.closed_accounts(serial)?;
    Ok(closed
        .iter()
        .filter_map(|closed| closed.record.ledger_head)
        .any(|head| pos <= head))
}

/// The journal record an index points at; its absence means the file is damaged.
fn stored_entry(txn: &WriteTxn, pos: u64) -> Result<JournalRecord, EngineError> {
    txn.journal_record(pos)?.ok_or_else(|| {
        EngineError::Store(StoreError::Corrupt(format!(
            "reference index points at missing journal record {pos}"
        )))
    })
}
