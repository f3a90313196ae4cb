//! Ground truth of a keypad unit: the money the simulator paid for it, which decides the whole
//! days the platform owes it, and what its firmware did with every token typed, which decides
//! the days that arrived. The auditor compares the two, and both with the platform's account.
//!
//! Days owed are recomputed here from the money alone, `floor(paid × 7 ÷ price of a week)`,
//! rather than taken from the billing engine, so the auditor cannot share a bug with what it
//! audits. A payment too small for a whole day buys nothing yet; the money waits on the
//! account's balance until a later payment completes a day, so what the platform has turned
//! into days is everything paid up to the last payment that bought one.

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use sunledger_billing::openpaygo::{DecodeError, Decoded, TokenKind};
use sunledger_proto::api::v1 as api;

/// Days of credit in one period of the weekly plan keypad units are sold on.
const DAYS_PER_WEEK: u32 = 7;
/// Problems kept per unit; more are counted in [`KeypadTruth::problems_dropped`], so a unit
/// gone badly wrong cannot fill memory.
const PROBLEMS_KEPT_MAX: usize = 16;

/// What a day of credit costs on the keypad units' weekly plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayRate {
    /// Price of a week, greater than zero.
    pub amount_per_week: Decimal,
}

impl DayRate {
    /// Whole days `money` buys, exactly: `floor(money × 7 ÷ amount_per_week)`; saturates at
    /// `u64::MAX` for sums no run reaches.
    pub fn days_for(&self, money: Decimal) -> u64 {
        money
            .checked_mul(Decimal::from(DAYS_PER_WEEK))
            .and_then(|week_days| week_days.checked_div(self.amount_per_week))
            .and_then(|days| days.floor().to_u64())
            .unwrap_or(u64::MAX)
    }

    /// What one day costs, not rounded.
    pub fn day_price(&self) -> Decimal {
        self.amount_per_week / Decimal::from(DAYS_PER_WEEK)
    }
}

/// One keypad unit's ground truth, recorded by its driver as payments and typing happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeypadTruth {
    /// The unit's serial.
    pub serial: String,
    /// The unit's seed; replays its key, starting code and payments.
    pub seed: u64,
    /// The unit's account, for the platform's view of it.
    pub installation_id: String,
    /// Distinct payments recorded.
    pub payments: u64,
    /// Earlier references sent again, as a provider retrying a notification does.
    pub repeats: u64,
    /// Money of the distinct payments.
    pub paid: Decimal,
    /// Money the platform should have turned into days: all paid up to the last payment that
    /// completed a new whole day. The rest should still be on the balance.
    pub converted: Decimal,
    /// Tokens the firmware accepted.
    pub tokens_accepted: u64,
    /// Days those tokens added, as the firmware decoded them.
    pub days_accepted: u64,
    /// Re-entries of a repeated payment's tokens that the firmware refused as used.
    pub reentries_refused: u64,
    /// The highest count the firmware accepted; counts must rise with every token.
    pub last_count: Option<u32>,
    /// Everything that went against expectation, one line each, with the unit named.
    pub problems: Vec<String>,
    /// Problems beyond [`PROBLEMS_KEPT_MAX`], counted only.
    pub problems_dropped: u64,
}

impl KeypadTruth {
    /// A unit with nothing paid and nothing typed.
    pub fn new(serial: String, seed: u64, installation_id: String) -> KeypadTruth {
        KeypadTruth {
            serial,
            seed,
            installation_id,
            payments: 0,
            repeats: 0,
            paid: Decimal::ZERO,
            converted: Decimal::ZERO,
            tokens_accepted: 0,
            days_accepted: 0,
            reentries_refused: 0,
            last_count: None,
            problems: Vec::new(),
            problems_dropped: 0,
        }
    }

    /// Whole days the platform owes for everything paid.
    pub fn days_owed(&self, rate: DayRate) -> u64 {
        rate.days_for(self.paid)
    }

    /// Money that should still be on the account's balance, waiting to complete a day.
    pub fn balance_expected(&self) -> Decimal {
        self.paid - self.converted
    }

    /// Records a problem, naming the unit and its seed.
    pub fn problem(&mut self, what: impl std::fmt::Display) {
        match self.problems.len() < PROBLEMS_KEPT_MAX {
            true => self.problems.push(format!(
                "keypad {} (seed {}): {what}",
                self.serial, self.seed
            )),
            false => self.problems_dropped += 1,
        }
    }

    /// A new payment of `amount` was recorded and returned `tokens`: they must carry exactly
    /// the days it newly owes.
    pub fn on_paid(
        &mut self,
        rate: DayRate,
        reference: &str,
        amount: Decimal,
        tokens: &[api::KeypadToken],
    ) {
        let owed_before = self.days_owed(rate);
        self.payments += 1;
        self.paid += amount;
        let owed_now = self.days_owed(rate);
        if owed_now > owed_before {
            self.converted = self.paid;
        }
        let carried: u64 = tokens.iter().map(|token| u64::from(token.value)).sum();
        if carried != owed_now - owed_before {
            self.problem(format_args!(
                "payment {reference} of {amount} owes {} new days, its tokens carry {carried}",
                owed_now - owed_before
            ));
        }
    }

    /// An earlier reference was sent again: the platform must say so and return the tokens it
    /// returned the first time.
    pub fn on_repeat(
        &mut self,
        reference: &str,
        first: &[api::KeypadToken],
        response: &api::RecordPaymentResponse,
    ) {
        self.repeats += 1;
        if !response.duplicate {
            self.problem(format_args!(
                "repeat of {reference} not reported as a duplicate"
            ));
        }
        if response.tokens != first {
            self.problem(format_args!(
                "repeat of {reference} returned tokens {:?}, first {:?}",
                counts(&response.tokens),
                counts(first)
            ));
        }
    }

    /// The firmware's answer to `token` typed for the first time: it must take it as the
    /// add-time token the platform said it was, at a count above every earlier one.
    pub fn on_typed(&mut self, token: &api::KeypadToken, answer: Result<Decoded, DecodeError>) {
        let decoded = match answer {
            Ok(decoded) => decoded,
            Err(error) => {
                return self.problem(format_args!(
                    "token {} (count {}) refused: {error}",
                    token.code, token.count
                ));
            }
        };
        let expected = (TokenKind::AddTime, token.value, token.count);
        let seen = (decoded.kind, decoded.value, decoded.count);
        if seen != expected || token.kind() != api::KeypadTokenKind::AddTime {
            self.problem(format_args!(
                "token {} decoded as {seen:?}, the platform issued {:?} {} days at count {}",
                token.code,
                token.kind(),
                token.value,
                token.count
            ));
        }
        if decoded.count % 2 != 0 {
            self.problem(format_args!(
                "add-time token at odd count {}",
                decoded.count
            ));
        }
        if let Some(last) = self.last_count.filter(|last| decoded.count <= *last) {
            self.problem(format_args!(
                "count {} accepted after count {last}",
                decoded.count
            ));
        }
        self.last_count = Some(decoded.count);
        self.tokens_accepted += 1;
        self.days_accepted += u64::from(decoded.value);
    }

    /// The firmware's answer to `token` typed again: it must refuse it as used.
    pub fn on_retyped(&mut self, token: &api::KeypadToken, answer: Result<Decoded, DecodeError>) {
        match answer {
            Err(DecodeError::AlreadyUsed) => self.reentries_refused += 1,
            Err(error) => self.problem(format_args!(
                "used token {} refused as \"{error}\", not as used",
                token.code
            )),
            Ok(decoded) => self.problem(format_args!(
                "used token {} accepted again ({} days at count {})",
                token.code, decoded.value, decoded.count
            )),
        }
    }
}

/// The counts of `tokens`, for a short message.
fn counts(tokens: &[api::KeypadToken]) -> Vec<u32> {
    tokens.iter().map(|token| token.count).collect()
}

#[cfg(test)]
mod tests {
    use sunledger_billing::openpaygo::{TokenFormat, TokenKey, generate};

    use super::*;
    use crate::keypad_unit::KeypadSpec;

    const RATE: DayRate = DayRate {
        amount_per_week: Decimal::ONE_HUNDRED,
    };

    fn cents(cents: i64) -> Decimal {
        Decimal::new(cents, 2)
    }

    /// The add-time token after count `after` for `spec`'s unit, as the platform sends it.
    fn token(spec: &KeypadSpec, after: u32, days: u32) -> api::KeypadToken {
        let key = TokenKey::from_hex(&spec.setup().key).unwrap();
        let format = TokenFormat::STANDARD;
        let made = generate(
            &key,
            spec.starting_code,
            after,
            TokenKind::AddTime,
            days,
            format,
        );
        let made = made.unwrap();
        api::KeypadToken {
            count: made.count,
            kind: api::KeypadTokenKind::AddTime.into(),
            value: days,
            code: made.code,
            ..Default::default()
        }
    }

    #[test]
    fn days_are_owed_on_the_total_paid_and_the_rest_waits_on_the_balance() {
        assert_eq!(RATE.days_for(cents(1_428)), 0, "14.28 is 0.9996 days");
        assert_eq!(RATE.days_for(cents(1_429)), 1);
        assert_eq!(RATE.days_for(Decimal::ONE_HUNDRED), 7);
        let mut truth = KeypadTruth::new("K".into(), 1, "inst".into());
        truth.on_paid(RATE, "p1", cents(1_000), &[]);
        assert_eq!(
            (truth.days_owed(RATE), truth.balance_expected()),
            (0, cents(1_000))
        );
        let one_day = api::KeypadToken {
            value: 1,
            ..Default::default()
        };
        truth.on_paid(RATE, "p2", cents(500), std::slice::from_ref(&one_day));
        assert_eq!(
            (truth.days_owed(RATE), truth.balance_expected()),
            (1, Decimal::ZERO)
        );
        assert!(truth.problems.is_empty(), "{:?}", truth.problems);
        truth.on_paid(RATE, "p3", Decimal::ONE_HUNDRED, &[one_day]);
        assert_eq!(truth.days_owed(RATE), 8);
        assert_eq!(truth.problems.len(), 1);
        assert!(truth.problems[0].contains("p3 of 100 owes 7 new days, its tokens carry 1"));
    }

    #[test]
    fn the_firmware_must_accept_new_tokens_once_at_rising_counts() {
        let spec = KeypadSpec::new(3, 1, 1);
        let mut firmware = spec.firmware();
        let mut truth = KeypadTruth::new(spec.serial.clone(), spec.seed, "inst".into());
        let (first, second) = (token(&spec, 1, 7), token(&spec, 3, 14));
        assert_eq!((first.count, second.count), (2, 4));
        for typed in [&second, &first] {
            let answer = firmware.enter(&typed.code);
            truth.on_typed(typed, answer);
        }
        assert_eq!((truth.tokens_accepted, truth.days_accepted), (2, 21));
        assert_eq!(truth.problems.len(), 1, "{:?}", truth.problems);
        assert!(truth.problems[0].contains("count 2 accepted after count 4"));

        let answer = firmware.enter(&second.code);
        truth.on_retyped(&second, answer);
        assert_eq!(truth.reentries_refused, 1);
        let stranger = token(&KeypadSpec::new(3, 1, 2), 5, 7);
        let answer = firmware.enter(&stranger.code);
        truth.on_typed(&stranger, answer);
        assert!(
            truth.problems[1].contains("refused: invalid token"),
            "{:?}",
            truth.problems
        );
        assert_eq!(truth.days_accepted, 21);
    }

    #[test]
    fn a_repeat_must_be_a_duplicate_with_the_first_tokens() {
        let spec = KeypadSpec::new(3, 1, 1);
        let first = vec![token(&spec, 1, 7)];
        let mut truth = KeypadTruth::new(spec.serial.clone(), spec.seed, "inst".into());
        let same = api::RecordPaymentResponse {
            duplicate: true,
            tokens: first.clone(),
            ..Default::default()
        };
        truth.on_repeat("p1", &first, &same);
        assert!(truth.problems.is_empty());
        truth.on_repeat("p1", &first, &api::RecordPaymentResponse::default());
        assert_eq!(truth.repeats, 2);
        assert!(truth.problems[0].contains("not reported as a duplicate"));
        assert!(truth.problems[1].contains("returned tokens [], first [2]"));
        for n in 0..PROBLEMS_KEPT_MAX {
            truth.problem(n);
        }
        assert_eq!(
            (truth.problems.len(), truth.problems_dropped),
            (PROBLEMS_KEPT_MAX, 2)
        );
    }
}
