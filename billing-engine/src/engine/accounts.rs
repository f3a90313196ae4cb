//! Accounts in a partition: opening one for a unit, changing its terms, and recording money
//! movements (payments, adjustments, reversals), each in its own durable transaction so the
//! caller's acknowledgement means the change survives a crash.
//!
//! Payment and adjustment references are idempotency keys per organisation: the index is read
//! and written inside the same write transaction, and redb runs one write transaction at a
//! time, so two partitions can never both record the same reference.

use super::{Partition, Unit};
use crate::account::{
    Account, AdjustmentError, ChargeError, PaymentError, ReversalError, SettingsError,
};
use crate::account_record::{AccountChange, AccountOpening, AccountRecord, Movement, Receipt};
use crate::ledger::EntryKind;
use crate::store::{JournalRecord, RefIndex, RefKind, StoreError, WriteTxn};
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
    /// The reference was already used for a different amount or account.
    #[error("reference {0:?} was already used for a different amount or account")]
    ReferenceReused(String),
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
    /// load if it differs from what the unit was last told.
    pub fn open_account(
        &mut self,
        serial: &str,
        opening: AccountOpening,
    ) -> Result<AccountRecord, EngineError> {
        let now = self.clock.now();
        self.transact(serial, |unit, _txn, pending| {
            if unit.account.is_some() {
                return Err(EngineError::AccountExists(serial.to_owned()));
            }
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
            });
            let decision = crate::account::LoadDecision { load, reason };
            pending.decide(serial, &mut unit.state, decision, now);
            Ok((unit.account.clone(), true))
        })
        .map(|record| record.expect("just opened"))
    }

    /// Changes an open account's terms; may switch the load.
    pub fn change_account(
        &mut self,
        serial: &str,
        change: AccountChange,
    ) -> Result<AccountRecord, EngineError> {
        let now = self.clock.now();
        self.transact(serial, |unit, _txn, pending| {
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
            Ok((unit.account.clone().expect("checked above"), true))
        })
    }

    /// Records a payment, adjustment or reversal. A reference already recorded returns the
    /// first call's entry (`duplicate`), unless it was for another amount or account.
    pub fn record(&mut self, serial: &str, movement: Movement) -> Result<Receipt, EngineError> {
        let now = self.clock.now();
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
            if let (Some(index), Some(amount)) = (&index, amount) {
                let first = stored_entry(txn, index.pos)?;
                if index.serial != serial || first.entry.amount != amount {
                    return Err(EngineError::ReferenceReused(reference));
                }
                let receipt = Receipt {
                    ledger_seq: first.seq,
                    entry: first.entry,
                    duplicate: true,
                    account: unit.account.clone().expect("checked above"),
                };
                return Ok((receipt, false));
            }
            let record = account_of(serial, unit)?;
            let mut reversed = None;
            let effects = match movement {
                Movement::Payment(payment) => record.account.apply_payment(&payment, now)?,
                Movement::Adjustment(adjustment) => {
                    record.account.apply_adjustment(&adjustment, now)?
                }
                Movement::Reversal {
                    provider_ref,
                    reversal,
                } => {
                    let index = index
                        .filter(|index| index.serial == serial)
                        .ok_or(EngineError::PaymentNotFound(provider_ref))?;
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
            let record = unit.account.clone().expect("checked above");
            let pos = record.ledger_head.expect("an entry was just appended");
            let new_index = match reversed {
                Some(index) => RefIndex {
                    reversal_pos: Some(pos),
                    ..index
                },
                None => RefIndex {
                    serial: serial.to_owned(),
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

/// The journal record an index points at; its absence means the file is damaged.
fn stored_entry(txn: &WriteTxn, pos: u64) -> Result<JournalRecord, EngineError> {
    txn.journal_record(pos)?.ok_or_else(|| {
        EngineError::Store(StoreError::Corrupt(format!(
            "reference index points at missing journal record {pos}"
        )))
    })
}
