//! The `sunledger.api.v1.Payments` service: money on installations' billing accounts and
//! manual load switches, through the billing engine.

use sunledger_billing::account::{LoadDecision, PlanState};
use sunledger_billing::account_record::Receipt;
use sunledger_billing::commands::decision_to_proto;
use sunledger_billing::ledger::{EntryKind, EntryRef, LedgerEntry, PaymentChannel};
use sunledger_proto::api::v1 as wire;
use sunledger_proto::api::v1::payments_server::Payments;
use sunledger_proto::device;
use tonic::{Request, Response, Status};

use crate::amount::to_wire as money;
use crate::convert::timestamp;
use crate::directory::{BilledAccount, BilledInstallation, DirectoryError, NewPayment};
use crate::notify::{self, SmsKind};
use crate::pagination::PageRequest;
use crate::platform::Platform;
use crate::roles::Role;
use crate::units::{load_to_wire, reason_to_wire, token_to_wire};
use crate::validate::FieldViolation;
use crate::{auth, blocking};

/// Serves `Payments` from the directory and the billing engine.
pub struct PaymentsService {
    platform: Platform,
}

impl PaymentsService {
    /// A service over `platform`.
    pub fn new(platform: Platform) -> PaymentsService {
        PaymentsService { platform }
    }
}

#[tonic::async_trait]
impl Payments for PaymentsService {
    async fn record_payment(
        &self,
        request: Request<wire::RecordPaymentRequest>,
    ) -> Result<Response<wire::RecordPaymentResponse>, Status> {
        let caller = auth::authorised(&request, Role::Technician)?;
        let request = request.into_inner();
        let new = NewPayment {
            channel: channel_from_wire(request.channel()),
            installation_id: request.installation_id,
            amount: request.amount,
            reference: request.reference,
        };
        let platform = self.platform.clone();
        let (receipt, billed, phone) = blocking(move || {
            let (receipt, billed) =
                platform
                    .directory
                    .record_payment(&caller, &new, &platform.engine)?;
            let phone = match receipt.tokens.is_empty() || receipt.duplicate {
                true => None,
                false => platform
                    .directory
                    .customer_phone(&caller.org_id, &billed.serial)?,
            };
            Ok::<_, DirectoryError>((receipt, billed, phone))
        })
        .await?;
        let duplicate = receipt.duplicate;
        let tokens: Vec<wire::KeypadToken> = receipt
            .tokens
            .iter()
            .map(|token| token_to_wire(&billed.serial, token))
            .collect();
        if !duplicate {
            for token in &receipt.tokens {
                let text = notify::token_message(&billed.serial, token);
                notify::send(&*self.platform.sms, SmsKind::Token, phone.as_deref(), &text);
            }
        }
        let (entry, balance) = receipt_to_wire(receipt, billed);
        Ok(Response::new(wire::RecordPaymentResponse {
            entry: Some(entry),
            duplicate,
            balance: Some(balance),
            tokens,
        }))
    }

    async fn reverse_payment(
        &self,
        request: Request<wire::ReversePaymentRequest>,
    ) -> Result<Response<wire::ReversePaymentResponse>, Status> {
        let caller = auth::authorised(&request, Role::Admin)?;
        let request = request.into_inner();
        let platform = self.platform.clone();
        let (receipt, billed) = blocking(move || {
            platform.directory.reverse_payment(
                &caller,
                &request.installation_id,
                &request.reference,
                &request.reason,
                &platform.engine,
            )
        })
        .await?;
        let (entry, balance) = receipt_to_wire(receipt, billed);
        Ok(Response::new(wire::ReversePaymentResponse {
            entry: Some(entry),
            balance: Some(balance),
        }))
    }

    async fn get_balance(
        &self,
        request: Request<wire::GetBalanceRequest>,
    ) -> Result<Response<wire::Balance>, Status> {
        let caller = auth::authorised(&request, Role::Observer)?;
        let installation_id = request.into_inner().installation_id;
        let platform = self.platform.clone();
        let account = blocking(move || {
            platform
                .directory
                .balance(&caller.org_id, &installation_id, &platform.engine)
        })
        .await?;
        Ok(Response::new(balance_to_wire(account)))
    }

    async fn list_ledger(
        &self,
        request: Request<wire::ListLedgerRequest>,
    ) -> Result<Response<wire::ListLedgerResponse>, Status> {
        let caller = auth::authorised(&request, Role::Observer)?;
        let request = request.into_inner();
        let page = PageRequest::parse(request.page_size, &request.page_token)?;
        let platform = self.platform.clone();
        let (page, billed) = blocking(move || {
            platform.directory.ledger(
                &caller.org_id,
                &request.installation_id,
                &page,
                &platform.engine,
            )
        })
        .await?;
        Ok(Response::new(wire::ListLedgerResponse {
            entries: page
                .items
                .into_iter()
                .map(|(sequence, entry)| entry_to_wire(sequence, entry, &billed.currency))
                .collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn switch_load(
        &self,
        request: Request<wire::SwitchLoadRequest>,
    ) -> Result<Response<wire::SwitchLoadResponse>, Status> {
        let caller = auth::authorised(&request, Role::Admin)?;
        let request = request.into_inner();
        let load = match request.load() {
            wire::UnitLoad::On => device::LoadState::On,
            wire::UnitLoad::Off => device::LoadState::Off,
            wire::UnitLoad::Unspecified => {
                let violation =
                    FieldViolation::new("load", "must be UNIT_LOAD_ON or UNIT_LOAD_OFF");
                return Err(violation.into());
            }
        };
        let platform = self.platform.clone();
        let (command, billed) = blocking(move || {
            platform.directory.switch_load(
                &caller,
                &request.installation_id,
                load,
                &platform.engine,
            )
        })
        .await?;
        Ok(Response::new(wire::SwitchLoadResponse {
            unit_serial: billed.serial,
            load: load_to_wire(command.load).into(),
            reason: reason_to_wire(command.reason).into(),
            command_id: command.cmd_id,
        }))
    }
}

/// The channel a request names; unspecified and unknown are `None`, refused naming `channel`.
fn channel_from_wire(channel: wire::PaymentChannel) -> Option<PaymentChannel> {
    match channel {
        wire::PaymentChannel::MobileMoney => Some(PaymentChannel::MobileMoney),
        wire::PaymentChannel::Manual => Some(PaymentChannel::Manual),
        wire::PaymentChannel::BankTransfer => Some(PaymentChannel::BankTransfer),
        wire::PaymentChannel::Card => Some(PaymentChannel::Card),
        wire::PaymentChannel::Other => Some(PaymentChannel::Other),
        wire::PaymentChannel::Unspecified => None,
    }
}

/// A recorded movement's entry and the account after it, as replies carry them.
fn receipt_to_wire(
    receipt: Receipt,
    billed: BilledInstallation,
) -> (wire::LedgerEntry, wire::Balance) {
    let entry = entry_to_wire(receipt.ledger_seq, receipt.entry, &billed.currency);
    let balance = balance_to_wire(BilledAccount {
        billed,
        account: receipt.account,
    });
    (entry, balance)
}

/// An account as replies carry it, amounts as decimal strings with the currency.
fn balance_to_wire(billed_account: BilledAccount) -> wire::Balance {
    let BilledAccount { billed, account } = billed_account;
    let rules = &account.account;
    let (load, reason) = rules.desired_load();
    let (load, reason) = decision_to_proto(LoadDecision { load, reason });
    wire::Balance {
        installation_id: billed.installation_id,
        unit_serial: billed.serial,
        currency: billed.currency,
        balance: money(rules.balance()),
        total_paid: money(rules.total_paid()),
        down_payment: money(rules.down_payment()),
        total_system_cost: rules.total_system_cost().map(money).unwrap_or_default(),
        negative_charge_limit: money(rules.negative_charge_limit()),
        auto_switch_off: rules.auto_switch_off(),
        plan_progress: match rules.plan_state() {
            PlanState::PendingFirstDeposit => wire::PlanProgress::PendingFirstDeposit,
            PlanState::Active => wire::PlanProgress::Active,
            PlanState::Completed { .. } => wire::PlanProgress::Completed,
        }
        .into(),
        desired_load: load_to_wire(load as i32).into(),
        desired_reason: reason_to_wire(reason as i32).into(),
        ledger_entries: account.ledger_len,
        keypad: account.keypad.map(|keypad| wire::KeypadCredit {
            days_credited: keypad.days_credited,
            credit_until: keypad.credit_until_ms.map(timestamp),
            payg_disabled: keypad.payg_disabled,
        }),
    }
}

/// One ledger entry as replies carry it.
fn entry_to_wire(sequence: u64, entry: LedgerEntry, currency: &str) -> wire::LedgerEntry {
    let (reference, channel) = match entry.reference {
        EntryRef::Payment {
            provider_ref,
            channel,
        } => (provider_ref, channel_to_wire(channel)),
        EntryRef::Operator(reference) => (reference, wire::PaymentChannel::Unspecified),
        EntryRef::Reading(reading) => (
            format!("reading {}:{}", reading.boot, reading.seq),
            wire::PaymentChannel::Unspecified,
        ),
        EntryRef::Instalment(index) => (
            format!("instalment {index}"),
            wire::PaymentChannel::Unspecified,
        ),
        EntryRef::Token(count) => (format!("token {count}"), wire::PaymentChannel::Unspecified),
    };
    wire::LedgerEntry {
        sequence,
        kind: match entry.kind {
            EntryKind::Payment => wire::LedgerEntryKind::Payment,
            EntryKind::UsageCharge => wire::LedgerEntryKind::UsageCharge,
            EntryKind::InstalmentCharge => wire::LedgerEntryKind::InstalmentCharge,
            EntryKind::Adjustment => wire::LedgerEntryKind::Adjustment,
            EntryKind::Reversal => wire::LedgerEntryKind::Reversal,
            EntryKind::TokenTime => wire::LedgerEntryKind::TokenTime,
        }
        .into(),
        amount: money(entry.amount),
        currency: currency.to_owned(),
        reason: entry.reason.to_string(),
        at: Some(timestamp(entry.at.timestamp_millis())),
        reference,
        channel: channel.into(),
        entered_by: entry.entered_by.unwrap_or_default(),
    }
}

/// A ledger channel as the API's enum.
fn channel_to_wire(channel: PaymentChannel) -> wire::PaymentChannel {
    match channel {
        PaymentChannel::MobileMoney => wire::PaymentChannel::MobileMoney,
        PaymentChannel::Manual => wire::PaymentChannel::Manual,
        PaymentChannel::BankTransfer => wire::PaymentChannel::BankTransfer,
        PaymentChannel::Card => wire::PaymentChannel::Card,
        PaymentChannel::Other => wire::PaymentChannel::Other,
    }
}
