//! Keypad units: units paid for with OpenPAYGO Token codes instead of (or beside) MQTT
//! commands, and the time-based billing that turns their payments into days of credit.
//!
//! Why time-based: a keypad unit cannot be told to switch off; it counts down the days it was
//! given and stops by itself. So a payment buys days at the plan's instalment rate (1 per week
//! → 2 buys 14 days) and the engine hands back a token carrying those days. The money becomes
//! time in a `TokenTime` ledger entry, so the balance shows only what is not yet turned into
//! days (a payment too small for one day waits there for the next one). Days are computed from
//! the cumulative money ever turned into time ([`KeypadBilling::money_converted`]), so no
//! fraction of a day is ever lost or given twice, however the payments are split.

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Serialize};

use crate::openpaygo::{TokenFormat, TokenKey, TokenKind};
use crate::tariff::{Period, Tariff};

/// How a unit is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum CommMode {
    /// MQTT telemetry and commands; billed as its plan's tariff says.
    #[default]
    Connected,
    /// Keypad only: billed in days of credit, paid with tokens; never on MQTT.
    Keypad,
    /// Keypad tokens for credit, MQTT for telemetry and the commands that are not about credit
    /// (manual switch, Offline Disable, plan completion).
    Both,
}

impl CommMode {
    /// Whether the unit is paid with tokens (and so billed in days).
    pub fn uses_tokens(self) -> bool {
        matches!(self, CommMode::Keypad | CommMode::Both)
    }

    /// Whether the unit talks MQTT (and so gets a device secret).
    pub fn uses_mqtt(self) -> bool {
        matches!(self, CommMode::Connected | CommMode::Both)
    }
}

/// What the platform keeps of a keypad unit's token setup, fixed at registration because it
/// is flashed into the unit. The OpenPAYGO key is stored sealed under the server master key
/// ([`crate::secrets`]), bound to the serial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeypadConfig {
    /// Keypad or both.
    pub mode: CommMode,
    /// The 16-byte OpenPAYGO key, sealed.
    pub sealed_key: Vec<u8>,
    /// The unit's 9-digit starting code.
    pub starting_code: u32,
    /// 12-digit tokens instead of 9.
    pub extended: bool,
    /// Digits 1–4 only (four-key keypads).
    pub restricted_digits: bool,
    /// The count the unit left the factory with: the first token is made after it.
    pub initial_count: u32,
}

impl KeypadConfig {
    /// The token format the unit's firmware reads.
    pub fn format(&self) -> TokenFormat {
        TokenFormat {
            extended: self.extended,
            restricted_digits: self.restricted_digits,
        }
    }
}

/// A keypad unit's token setup as given at registration, key in the clear (sealed by the
/// store before it is written).
#[derive(Debug, Clone)]
pub struct KeypadSetup {
    /// Keypad or both.
    pub mode: CommMode,
    /// The unit's OpenPAYGO key.
    pub key: TokenKey,
    /// The unit's 9-digit starting code.
    pub starting_code: u32,
    /// The unit's token format.
    pub format: TokenFormat,
    /// The unit's count as it left the factory (the OpenPAYGO reference uses 1).
    pub initial_count: u32,
}

/// Whether a plan's payments add days to a keypad unit's credit or set its remaining days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum TimeMode {
    /// ADD_TIME tokens: the days bought are added to what the unit has left.
    #[default]
    AddTime,
    /// SET_TIME tokens: the unit's remaining days are set to what the platform says it has,
    /// which also corrects a unit whose clock drifted.
    SetTime,
}

/// Why a token was issued: its audit trail, with who and when on [`IssuedToken`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TokenReason {
    /// Days bought by the payment with this provider reference.
    Payment {
        /// The payment's reference.
        provider_ref: String,
    },
    /// The plan was paid off: PAYG is disabled for good.
    PlanCompleted,
    /// An Admin moved the unit's count forward.
    CounterSync,
}

/// A token the platform issued, as stored in the unit's token log and shown to operators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedToken {
    /// The token's count: unique per unit, never reused.
    pub count: u32,
    /// What it tells the unit.
    pub kind: TokenKind,
    /// Days added or set; 0 for the commands.
    pub value: u32,
    /// What the customer types.
    pub code: String,
    /// Why it was issued.
    pub reason: TokenReason,
    /// The member or integration whose action issued it.
    pub issued_by: String,
    /// When, unix milliseconds.
    pub at_ms: i64,
}

/// A keypad account's time bookkeeping, kept in the account record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct KeypadBilling {
    /// Add or set time, from the plan.
    pub time_mode: TimeMode,
    /// All money ever turned into days, exact.
    #[serde(with = "crate::compact::decimal")]
    pub money_converted: Decimal,
    /// All days ever given in tokens: `days_for(money_converted)`.
    pub days_credited: u64,
    /// When the days given run out if the unit counts them from the moment each token was
    /// issued, unix milliseconds: what low-credit reminders are sent against.
    pub credit_until_ms: Option<i64>,
    /// Whether DISABLE_PAYG was issued (the plan completed).
    pub payg_disabled: bool,
}

/// What turning money into days gives: the days to put in tokens now and the bookkeeping
/// afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimePurchase {
    /// New whole days bought.
    pub days: u64,
    /// The bookkeeping with the purchase applied.
    pub after: KeypadBilling,
}

/// Days of credit one period of an instalment tariff stands for: a keypad unit counts days,
/// not calendar months, so a monthly plan buys 30 days per period.
pub fn days_per_period(period: Period) -> u32 {
    match period {
        Period::Daily => 1,
        Period::Weekly => 7,
        Period::Monthly => 30,
    }
}

/// Whole days `money` buys under `tariff` (an instalment tariff; `None` for usage tariffs, a
/// zero rate, or a result beyond `u64`). Exact: `floor(money × days per period ÷ amount)`.
pub fn days_for(tariff: Tariff, money: Decimal) -> Option<u64> {
    let Tariff::Instalment {
        amount_per_period,
        period,
    } = tariff
    else {
        return None;
    };
    if amount_per_period <= Decimal::ZERO {
        return None;
    }
    let days = money
        .checked_mul(Decimal::from(days_per_period(period)))?
        .checked_div(amount_per_period)?
        .floor();
    days.to_u64()
}

impl KeypadBilling {
    /// Turns `money` (the account's positive balance) into days at `now`, or `None` if it buys
    /// no new whole day yet (it then stays on the balance) or the tariff cannot price days.
    pub fn purchase(
        &self,
        tariff: Tariff,
        money: Decimal,
        now: DateTime<Utc>,
    ) -> Option<TimePurchase> {
        let converted = self.money_converted.checked_add(money)?;
        let days = days_for(tariff, converted)?.checked_sub(self.days_credited)?;
        if days == 0 {
            return None;
        }
        let from = self
            .credit_until_ms
            .filter(|until| *until > now.timestamp_millis())
            .unwrap_or(now.timestamp_millis());
        let until =
            from.checked_add(Duration::days(i64::try_from(days).ok()?).num_milliseconds())?;
        Some(TimePurchase {
            days,
            after: KeypadBilling {
                money_converted: converted,
                days_credited: self.days_credited + days,
                credit_until_ms: Some(until),
                ..*self
            },
        })
    }

    /// Whole days left at `now`, rounded up (a unit given a token today has today): the value
    /// of a SET_TIME token.
    pub fn days_left(&self, now: DateTime<Utc>) -> u64 {
        let left_ms = self
            .credit_until_ms
            .map_or(0, |until| until.saturating_sub(now.timestamp_millis()));
        let day_ms = Duration::days(1).num_milliseconds();
        u64::try_from(left_ms.max(0))
            .unwrap_or(0)
            .div_ceil(day_ms as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn weekly(amount: Decimal) -> Tariff {
        Tariff::Instalment {
            amount_per_period: amount,
            period: Period::Weekly,
        }
    }

    #[test]
    fn two_dollars_at_one_dollar_a_week_buy_fourteen_days() {
        let now = DateTime::from_timestamp(1_780_000_000, 0).unwrap();
        let purchase = KeypadBilling::default()
            .purchase(weekly(dec!(1)), dec!(2), now)
            .unwrap();
        assert_eq!(purchase.days, 14);
        assert_eq!(purchase.after.days_credited, 14);
        assert_eq!(
            purchase.after.credit_until_ms,
            Some((now + Duration::days(14)).timestamp_millis())
        );
        assert_eq!(purchase.after.days_left(now), 14);
    }

    #[test]
    fn fractions_of_a_day_carry_over_and_are_never_given_twice() {
        let now = DateTime::from_timestamp(1_780_000_000, 0).unwrap();
        let tariff = weekly(dec!(1));
        let billing = KeypadBilling::default();
        // 0.10 buys 0.7 days: nothing yet.
        assert_eq!(billing.purchase(tariff, dec!(0.10), now), None);
        // 0.20 buys 1.4 days: one day, 0.4 day carried in money_converted.
        let first = billing.purchase(tariff, dec!(0.20), now).unwrap();
        assert_eq!(first.days, 1);
        // 0.10 more: 0.30 is 2.1 days in all, one new day.
        let second = first.after.purchase(tariff, dec!(0.10), now).unwrap();
        assert_eq!(second.days, 1);
        assert_eq!(second.after.days_credited, 2);
        // The total is what the total money buys, however it was split: money that buys no
        // whole day stays on the balance for the next purchase, as the engine keeps it.
        let mut split = KeypadBilling::default();
        let (mut days, mut balance) = (0, Decimal::ZERO);
        for _ in 0..100 {
            balance += dec!(0.01);
            if let Some(purchase) = split.purchase(tariff, balance, now) {
                days += purchase.days;
                split = purchase.after;
                balance = Decimal::ZERO;
            }
        }
        assert_eq!(days, 7);
        assert_eq!(days_for(tariff, dec!(1)), Some(7));
    }

    #[test]
    fn monthly_plans_buy_thirty_days_a_period_and_usage_plans_none() {
        let monthly = Tariff::Instalment {
            amount_per_period: dec!(30),
            period: Period::Monthly,
        };
        assert_eq!(days_for(monthly, dec!(45)), Some(45));
        let usage = Tariff::Usage {
            price_per_kwh: dec!(1),
        };
        assert_eq!(days_for(usage, dec!(45)), None);
        assert_eq!(days_for(weekly(Decimal::ZERO), dec!(1)), None);
    }

    #[test]
    fn time_bought_while_credit_remains_extends_it() {
        let now = DateTime::from_timestamp(1_780_000_000, 0).unwrap();
        let tariff = weekly(dec!(7));
        let first = KeypadBilling::default()
            .purchase(tariff, dec!(7), now)
            .unwrap();
        let later = now + Duration::hours(36);
        assert_eq!(first.after.days_left(later), 6);
        let second = first.after.purchase(tariff, dec!(3), later).unwrap();
        assert_eq!(
            second.after.credit_until_ms,
            Some((now + Duration::days(10)).timestamp_millis())
        );
        let expired = now + Duration::days(30);
        let third = second.after.purchase(tariff, dec!(1), expired).unwrap();
        assert_eq!(
            third.after.credit_until_ms,
            Some((expired + Duration::days(1)).timestamp_millis())
        );
    }
}
