//! Tokens for keypad units, made inside the transaction that calls for them.
//!
//! A token is generated, logged and its count stored on the unit in the same commit as the
//! payment that bought it, so a count is never used twice and a repeated payment finds its
//! tokens in the log instead of making new ones. The unit's OpenPAYGO key is opened from its
//! sealed form only for the moment of generation.

use chrono::{DateTime, Utc};

use super::{EngineError, Partition, Pending, Unit};
use crate::account::PlanState;
use crate::keypad::{IssuedToken, KeypadConfig, TimeMode, TokenReason};
use crate::openpaygo::{self, TokenKind};
use crate::store::{Store, WriteTxn};

/// Who and when, for every token a transaction issues.
pub(super) struct Issuer<'a> {
    /// The store, for the unit's sealed key.
    pub store: &'a Store,
    /// The unit.
    pub serial: &'a str,
    /// The member or integration acting.
    pub by: &'a str,
    /// Now.
    pub now: DateTime<Utc>,
}

/// After a change the platform noticed itself (an account opened or its sale terms changed):
/// DISABLE_PAYG if that completed a keypad account's plan, issued by "platform".
pub(super) fn settle_completion(
    store: &Store,
    serial: &str,
    now: DateTime<Utc>,
    unit: &mut Unit,
    txn: &mut WriteTxn,
    pending: &mut Pending,
) -> Result<(), EngineError> {
    let issuer = Issuer {
        store,
        serial,
        by: "platform",
        now,
    };
    issuer.settle(unit, txn, pending, None).map(drop)
}

impl Issuer<'_> {
    /// Brings a keypad account up to date after its credit or terms changed: DISABLE_PAYG once
    /// the plan is completed, otherwise, when `payment` says which payment called, the
    /// positive balance turned into days and tokens. Returns the tokens issued; none for a
    /// connected unit.
    pub fn settle(
        &self,
        unit: &mut Unit,
        txn: &mut WriteTxn,
        pending: &mut Pending,
        payment: Option<TokenReason>,
    ) -> Result<Vec<IssuedToken>, EngineError> {
        let Some(record) = unit.account.as_mut() else {
            return Ok(Vec::new());
        };
        let Some(billing) = record.keypad else {
            return Ok(Vec::new());
        };
        let config = keypad_config(txn, self.serial)?;
        if matches!(record.account.plan_state(), PlanState::Completed { .. }) {
            if billing.payg_disabled {
                return Ok(Vec::new());
            }
            record.keypad = Some(crate::keypad::KeypadBilling {
                payg_disabled: true,
                ..billing
            });
            let token = self.issue(
                unit,
                txn,
                &config,
                TokenKind::DisablePayg,
                0,
                TokenReason::PlanCompleted,
            )?;
            return Ok(vec![token]);
        }
        let money = record.account.balance();
        let Some(reason) = payment.filter(|_| money > rust_decimal::Decimal::ZERO) else {
            return Ok(Vec::new());
        };
        let tariff = record.account.tariff();
        let Some(purchase) = billing.purchase(tariff, money, self.now) else {
            return Ok(Vec::new());
        };
        record.keypad = Some(purchase.after);
        let max = u64::from(config.format().max_value());
        let tokens = match billing.time_mode {
            TimeMode::SetTime => {
                let days_left = purchase.after.days_left(self.now);
                let value = u32::try_from(days_left).unwrap_or(u32::MAX);
                vec![self.issue(unit, txn, &config, TokenKind::SetTime, value, reason)?]
            }
            TimeMode::AddTime => {
                let mut tokens = Vec::new();
                let mut days = purchase.days;
                while days > 0 {
                    let value = days.min(max);
                    days -= value;
                    let value = u32::try_from(value).expect("at most the format's maximum");
                    let kind = TokenKind::AddTime;
                    tokens.push(self.issue(unit, txn, &config, kind, value, reason.clone())?);
                }
                tokens
            }
        };
        let first = tokens.first().expect("a purchase buys at least one day");
        let record = unit.account.as_mut().expect("checked above");
        let effects =
            record
                .account
                .convert_to_time(money, purchase.days, first.count, self.now)?;
        pending.record(self.serial, unit, effects, self.now);
        Ok(tokens)
    }

    /// Generates the unit's next token of `kind`, logs it and moves the unit's count on.
    pub fn issue(
        &self,
        unit: &mut Unit,
        txn: &mut WriteTxn,
        config: &KeypadConfig,
        kind: TokenKind,
        value: u32,
        reason: TokenReason,
    ) -> Result<IssuedToken, EngineError> {
        let key = self.store.token_key(self.serial, config)?;
        let last = unit.state.token_count.unwrap_or(config.initial_count);
        let token = openpaygo::generate(
            &key,
            config.starting_code,
            last,
            kind,
            value,
            config.format(),
        )?;
        let issued = IssuedToken {
            count: token.count,
            kind,
            value,
            code: token.code,
            reason,
            issued_by: self.by.to_owned(),
            at_ms: self.now.timestamp_millis(),
        };
        txn.put_token(self.serial, &issued)?;
        unit.state.token_count = Some(token.count);
        metrics::counter!("sunledger_tokens_issued_total", "kind" => kind_label(kind)).increment(1);
        Ok(issued)
    }
}

/// The unit's token setup, or the error saying it is not a keypad unit.
pub(super) fn keypad_config(txn: &WriteTxn, serial: &str) -> Result<KeypadConfig, EngineError> {
    txn.keypad_config(serial)?
        .filter(|config| config.mode.uses_tokens())
        .ok_or_else(|| EngineError::NotKeypad(serial.to_owned()))
}

fn kind_label(kind: TokenKind) -> &'static str {
    match kind {
        TokenKind::AddTime => "add_time",
        TokenKind::SetTime => "set_time",
        TokenKind::DisablePayg => "disable_payg",
        TokenKind::CounterSync => "counter_sync",
    }
}

/// A keypad account whose days run out soon: what a low-credit reminder is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditEnding {
    /// The unit.
    pub serial: String,
    /// The account's organisation.
    pub org: String,
    /// When its days run out, unix milliseconds.
    pub credit_until_ms: i64,
}

impl Partition {
    /// The keypad accounts of this partition whose credit runs out in `(now, before_ms]`,
    /// PAYG still enabled.
    pub fn credit_ending(&self, before_ms: i64) -> Vec<CreditEnding> {
        let now_ms = self.clock.now().timestamp_millis();
        self.units
            .iter()
            .filter_map(|(serial, unit)| {
                let record = unit.account.as_ref()?;
                let keypad = record.keypad.filter(|keypad| !keypad.payg_disabled)?;
                let until = keypad.credit_until_ms?;
                (now_ms < until && until <= before_ms).then(|| CreditEnding {
                    serial: serial.to_string(),
                    org: record.org.to_string(),
                    credit_until_ms: until,
                })
            })
            .collect()
    }

    /// Issues a COUNTER_SYNC token, which moves a unit's count forward when it has fallen
    /// behind (tokens issued but never typed), durably. An Admin's action: `by` is logged.
    pub fn counter_sync(&mut self, serial: &str, by: &str) -> Result<IssuedToken, EngineError> {
        let store = self.store.clone();
        let now = self.clock.now();
        self.transact(serial, |unit, txn, _pending| {
            let config = keypad_config(txn, serial)?;
            let issuer = Issuer {
                store: &store,
                serial,
                by,
                now,
            };
            let token = issuer.issue(
                unit,
                txn,
                &config,
                TokenKind::CounterSync,
                0,
                TokenReason::CounterSync,
            )?;
            Ok((token, true))
        })
    }
}
