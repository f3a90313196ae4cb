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

use sunledger_billing::account::{Payment, Reversal};
use sunledger_billing::account_record::{AccountRecord, Movement, Receipt};
use sunledger_billing::ledger::{LedgerEntry, PaymentChannel};
use sunledger_billing::worker::Engine;
use sunledger_proto::device::{Command, LoadState, Reason};

use super::audit::AuditAction;
use super::installations::{INSTALLATIONS, InstallationStatus, ensure_status, installation_in};
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
    /// each entry with its number. The billing store reads a ledger whole (it is a chain
    /// through the journal), so a page costs one read of the account's entries.
    pub fn ledger(
        &self,
        org_id: &str,
        installation_id: &str,
        page: &PageRequest<u64>,
    ) -> Result<(Page<(u64, LedgerEntry)>, BilledInstallation), DirectoryError> {
        let installation_id = validate::id("installation_id", installation_id)?;
        let billed = self.billed(org_id, installation_id)?;
        let entries = self.store.ledger(&billed.serial)?;
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
        let installation = installation_in(
            &self.read()?.open_table(INSTALLATIONS)?,
            org_id,
            installation_id,
        )?;
        ensure_status(
            &installation,
            &[InstallationStatus::Complete],
            NEEDS_ACCOUNT,
        )?;
        let serial = installation.unit_serial.ok_or_else(|| {
            DirectoryError::Corrupt(format!(
                "complete installation {installation_id} has no unit"
            ))
        })?;
        Ok(BilledInstallation {
            installation_id: installation.id,
            serial,
            currency: self.organisation(org_id)?.currency,
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
