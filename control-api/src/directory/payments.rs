//! Money on installations' billing accounts: payments, reversals, balances, ledgers and
//! manual load switches.
//!
//! An installation is billed through its control unit's account in the billing engine (the
//! engine keys accounts by serial), opened when the registration completed. Every call names
//! the installation; it is looked up in the caller's organisation, so another
//! organisation's installations, units and payment references are out of reach.
//!
//! The engine is the ledger: a movement is validated here, then recorded by the engine in its
//! own durable transaction (idempotent by reference), and only then is the audit event
//! written. If that last commit fails, the movement stands without its audit event; a retry
//! of a payment is then a duplicate, which records nothing new, so the log may miss such a
//! payment but never shows one that did not happen. The ledger itself names who entered each
//! payment and reversal.
//!
//! Deleting a complete installation closed its account (see [`super::projects`]); the unit
//! may since bill another installation. The deleted installation's ledger stays readable: it
//! is the closed account's, found by the unit and the instant of closing the installation
//! recorded as its deletion. Every other call needs a complete installation.

use sunledger_billing::account::{Payment, Reversal};
use sunledger_billing::account_record::{AccountRecord, ClosedAccount, Movement, Receipt};
use sunledger_billing::ledger::{LedgerEntry, PaymentChannel};
use sunledger_billing::worker::Engine;
use sunledger_proto::device::{Command, LoadState, Reason};

use super::audit::AuditAction;
use super::installations::{
    INSTALLATIONS, Installation, InstallationStatus, ensure_status, installation_in,
};
use super::{Directory, DirectoryError};
use crate::amount;
use crate::pagination::{Page, PageRequest};
use crate::roles::Caller;
use crate::validate::{self, FieldViolation};

/// What an installation needs for its status to allow billing calls.
const NEEDS_ACCOUNT: &str = "only a complete registration has a billing account";

/// A payment to record, as the request gave it (validated by [`Directory::record_payment`];
/// errors name these fields).
#[derive(Clone, Debug)]
pub struct NewPayment {
    /// Field `installation_id`.
    pub installation_id: String,
    /// Decimal string (field `amount`).
    pub amount: String,
    /// The provider's reference, the idempotency key (field `reference`).
    pub reference: String,
    /// `None` when unspecified or unknown (field `channel`).
    pub channel: Option<PaymentChannel>,
}

/// The installation a call is about and the account that bills it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BilledInstallation {
    /// The installation.
    pub installation_id: String,
    /// Its control unit, whose account it is.
    pub serial: String,
    /// The organisation's currency, the account's.
    pub currency: String,
}

/// An account as a call left it, with the installation it bills.
#[derive(Clone, Debug)]
pub struct BilledAccount {
    /// Which installation and unit.
    pub billed: BilledInstallation,
    /// The account.
    pub account: AccountRecord,
}

impl Directory {
    /// Records a payment on installation `new.installation_id` of the caller's organisation.
    pub fn record_payment(
        &self,
        caller: &Caller,
        new: &NewPayment,
        engine: &Engine,
    ) -> Result<(Receipt, BilledInstallation), DirectoryError> {
        let installation_id = validate::id("installation_id", &new.installation_id)?;
        let currency = self.organisation(&caller.org_id)?.currency;
        let amount = amount::payment("amount", &new.amount, &currency)?;
        let reference = validate::name("reference", &new.reference)?;
        let channel = new.channel.ok_or_else(|| {
            FieldViolation::new(
                "channel",
                "must be a PAYMENT_CHANNEL other than UNSPECIFIED",
            )
        })?;
        let billed = self.billed(&caller.org_id, installation_id)?;
        let payment = Payment {
            amount,
            channel,
            provider_ref: reference.clone(),
            entered_by: caller.member_id.clone(),
        };
        let receipt = engine.record(&billed.serial, Movement::Payment(payment))?;
        if !receipt.duplicate {
            let description = format!(
                "payment {reference:?} of {amount} {currency} ({channel:?}) on unit {}",
                billed.serial
            );
            self.audit(
                caller,
                AuditAction::PaymentRecorded,
                installation_id,
                description,
            )?;
        }
        Ok((receipt, billed))
    }

    /// Reverses the payment with `reference` on installation `installation_id`.
    pub fn reverse_payment(
        &self,
        caller: &Caller,
        installation_id: &str,
        reference: &str,
        reason: &str,
        engine: &Engine,
    ) -> Result<(Receipt, BilledInstallation), DirectoryError> {
        let installation_id = validate::id("installation_id", installation_id)?;
        let reference = validate::name("reference", reference)?;
        let reason = validate::name("reason", reason)?;
        let billed = self.billed(&caller.org_id, installation_id)?;
        let movement = Movement::Reversal {
            provider_ref: reference.clone(),
            reversal: Reversal {
                reason: reason.clone(),
                entered_by: caller.member_id.clone(),
            },
        };
        let receipt = engine.record(&billed.serial, movement)?;
        let description = format!(
            "reversed payment {reference:?} ({} {}) on unit {}: {reason}",
            receipt.entry.amount, billed.currency, billed.serial
        );
        self.audit(
            caller,
            AuditAction::PaymentReversed,
            installation_id,
            description,
        )?;
        Ok((receipt, billed))
    }

    /// The account billing installation `installation_id` of `org_id`, as the engine holds
    /// it now.
    pub fn balance(
        &self,
        org_id: &str,
        installation_id: &str,
        engine: &Engine,
    ) -> Result<BilledAccount, DirectoryError> {
        let installation_id = validate::id("installation_id", installation_id)?;
        let billed = self.billed(org_id, installation_id)?;
        let account = engine.account(&billed.serial)?.ok_or_else(|| {
            sunledger_billing::engine::EngineError::AccountNotFound(billed.serial.clone())
        })?;
        Ok(BilledAccount { billed, account })
    }

    /// One page of the ledger of installation `installation_id` of `org_id`, oldest first,
    /// each entry with its number: the unit's open account's while the installation is
    /// complete, the account closed on its deletion once deleted. The billing store reads a
    /// ledger whole (it is a chain through the journal), so a page costs one read of the
    /// account's entries; an open account's head comes from `engine`, which holds it.
    pub fn ledger(
        &self,
        org_id: &str,
        installation_id: &str,
        page: &PageRequest<u64>,
        engine: &Engine,
    ) -> Result<(Page<(u64, LedgerEntry)>, BilledInstallation), DirectoryError> {
        let installation_id = validate::id("installation_id", installation_id)?;
        let installation = self.installation_in_org(org_id, installation_id)?;
        let billed_once = [InstallationStatus::Complete, InstallationStatus::Deleted];
        let billed = self.billed_installation(org_id, installation.clone(), &billed_once)?;
        let entries = match installation.deleted_at_ms {
            None => match engine.account(&billed.serial)? {
                Some(account) => self.store.account_ledger(&billed.serial, &account)?,
                None => Vec::new(),
            },
            Some(deleted_at_ms) => {
                let closed = self.closed_account(&installation, &billed.serial, deleted_at_ms)?;
                self.store.account_ledger(&billed.serial, &closed.record)?
            }
        };
        let after = page.after;
        let following = entries
            .into_iter()
            .filter(|(sequence, _)| after.is_none_or(|after| *sequence > after))
            .map(Ok::<_, DirectoryError>);
        let page = page.page(following, |(sequence, _)| *sequence)?;
        Ok((page, billed))
    }

    /// Switches the load of installation `installation_id`'s unit by hand.
    pub fn switch_load(
        &self,
        caller: &Caller,
        installation_id: &str,
        load: LoadState,
        engine: &Engine,
    ) -> Result<(Command, BilledInstallation), DirectoryError> {
        let installation_id = validate::id("installation_id", installation_id)?;
        let billed = self.billed(&caller.org_id, installation_id)?;
        let command = engine.set_load(&billed.serial, load, Reason::Manual)?;
        let description = format!(
            "load of unit {} switched {} by hand (command {})",
            billed.serial,
            load.as_str_name(),
            command.cmd_id
        );
        self.audit(
            caller,
            AuditAction::LoadSwitched,
            installation_id,
            description,
        )?;
        Ok((command, billed))
    }

    /// Installation `installation_id` of `org_id` with the unit and currency of its account;
    /// FAILED_PRECONDITION unless its registration is complete.
    fn billed(
        &self,
        org_id: &str,
        installation_id: &str,
    ) -> Result<BilledInstallation, DirectoryError> {
        let installation = self.installation_in_org(org_id, installation_id)?;
        self.billed_installation(org_id, installation, &[InstallationStatus::Complete])
    }

    /// Installation `installation_id` of `org_id`, deleted ones included.
    fn installation_in_org(
        &self,
        org_id: &str,
        installation_id: &str,
    ) -> Result<Installation, DirectoryError> {
        installation_in(
            &self.read()?.open_table(INSTALLATIONS)?,
            org_id,
            installation_id,
        )
    }

    /// `installation` with the unit and currency of its account; FAILED_PRECONDITION unless
    /// its status is one of `allowed` and its registration was completed (so it had an
    /// account).
    fn billed_installation(
        &self,
        org_id: &str,
        installation: Installation,
        allowed: &[InstallationStatus],
    ) -> Result<BilledInstallation, DirectoryError> {
        ensure_status(&installation, allowed, NEEDS_ACCOUNT)?;
        let serial = match (installation.completed_at_ms, installation.unit_serial) {
            (None, _) => {
                return Err(DirectoryError::InstallationState {
                    installation_id: installation.id,
                    status: "never completed",
                    needed: NEEDS_ACCOUNT,
                });
            }
            (Some(_), Some(serial)) => serial,
            (Some(_), None) => {
                return Err(DirectoryError::Corrupt(format!(
                    "completed installation {} has no unit",
                    installation.id
                )));
            }
        };
        Ok(BilledInstallation {
            installation_id: installation.id,
            serial,
            currency: self.organisation(org_id)?.currency,
        })
    }

    /// The account closed when `installation` (completed, then deleted at `deleted_at_ms`)
    /// was deleted. An installation deleted before accounts could be closed has none:
    /// FAILED_PRECONDITION.
    fn closed_account(
        &self,
        installation: &Installation,
        serial: &str,
        deleted_at_ms: i64,
    ) -> Result<ClosedAccount, DirectoryError> {
        self.store
            .closed_accounts(serial)?
            .into_iter()
            .find(|closed| {
                closed.closed_at_ms == deleted_at_ms && *closed.record.org == installation.org_id
            })
            .ok_or_else(|| DirectoryError::InstallationState {
                installation_id: installation.id.clone(),
                status: "deleted",
                needed: "its account was not closed on deletion, so its ledger is not kept",
            })
    }

    /// Appends one audit event for a change made outside the directory (in the engine).
    fn audit(
        &self,
        caller: &Caller,
        action: AuditAction,
        target_id: &str,
        description: String,
    ) -> Result<(), DirectoryError> {
        self.change(&caller.org_id, &caller.member_id, |change| {
            change.record(action, target_id, description)
        })
    }
}
