//! Keypad units at work: the simulator plays the mobile-money provider and the customers.
//! One task per unit waits a random while, records a payment of a random amount through the
//! operators' API (or sends an earlier reference again, as a provider retrying a notification
//! does), and types every token that comes back into the unit's firmware, recording all of it
//! in the unit's [`KeypadTruth`]. Keypad units never touch MQTT.
//!
//! A failed payment call is retried under the same reference, which is what makes retrying
//! safe; one that still fails leaves the money's fate unknown, so the unit stops paying and
//! its truth says why.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use sunledger_billing::openpaygo::{Decoder, MAX_STANDARD_VALUE};
use sunledger_proto::api::v1 as api;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tonic::Code;

use crate::config::KeypadPayments;
use crate::enrol::EnrolledKeypad;
use crate::error::SimError;
use crate::keypad_truth::{DayRate, KeypadTruth};
use crate::operator::Operator;
use crate::seed::{Stream, stream_seed};

/// Attempts at one payment call before its outcome counts as unknown.
const PAYMENT_ATTEMPTS_MAX: u32 = 4;
/// Wait before the first retry of a payment call; doubles per attempt.
const PAYMENT_RETRY_DELAY: Duration = Duration::from_millis(100);
/// Earlier payments a unit remembers for repeats: a provider resends recent notifications,
/// and the bound keeps a long run's memory flat.
const REPEATABLE_PAYMENTS_MAX: usize = 32;
/// Days of credit the largest ordinary payment buys.
const ORDINARY_DAYS_MAX: u32 = 35;
/// Days beyond one token's capacity a bulk payment buys at most.
const BULK_EXTRA_DAYS_MAX: u32 = 100;

/// Every keypad unit's driver, running until [`KeypadFleet::shutdown`].
pub struct KeypadFleet {
    shutdown_tx: watch::Sender<bool>,
    tasks: JoinSet<KeypadTruth>,
    in_flight_limit_hits: Arc<AtomicU64>,
}

/// What the keypad fleet did, for the audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeypadRun {
    /// Every unit's truth, in serial order.
    pub truths: Vec<KeypadTruth>,
    /// Payments that waited for a free slot under `payments_in_flight_max`.
    pub in_flight_limit_hits: u64,
}

impl KeypadFleet {
    /// Starts one driver per unit in `units` on the current tokio runtime, paying at `rate`'s
    /// plan through `operator` as `config` says.
    pub fn start(
        config: &KeypadPayments,
        operator: &Operator,
        rate: DayRate,
        units: &[EnrolledKeypad],
    ) -> KeypadFleet {
        let (shutdown_tx, shutdown) = watch::channel(false);
        let permits = Arc::new(Semaphore::new(config.payments_in_flight_max));
        let in_flight_limit_hits = Arc::new(AtomicU64::new(0));
        let mut tasks = JoinSet::new();
        for unit in units {
            let spec = &unit.spec;
            let driver = UnitDriver {
                operator: operator.clone(),
                config: config.clone(),
                rate,
                permits: Arc::clone(&permits),
                in_flight_limit_hits: Arc::clone(&in_flight_limit_hits),
                rng: StdRng::seed_from_u64(stream_seed(spec.seed, Stream::Payments)),
                firmware: spec.firmware(),
                truth: KeypadTruth::new(
                    spec.serial.clone(),
                    spec.seed,
                    unit.installation_id.clone(),
                ),
                repeatable: VecDeque::with_capacity(REPEATABLE_PAYMENTS_MAX),
            };
            tasks.spawn(driver.run(shutdown.clone()));
        }
        KeypadFleet {
            shutdown_tx,
            tasks,
            in_flight_limit_hits,
        }
    }

    /// Stops paying (a payment in flight completes, so its outcome is known) and returns
    /// every unit's truth.
    pub async fn shutdown(mut self) -> KeypadRun {
        // Every task holds a receiver until it ends; none left means nothing to stop.
        let _ = self.shutdown_tx.send(true);
        let mut truths = Vec::with_capacity(self.tasks.len());
        while let Some(joined) = self.tasks.join_next().await {
            truths.push(joined.expect("a keypad unit's driver does not panic"));
        }
        truths.sort_by(|a, b| a.serial.cmp(&b.serial));
        KeypadRun {
            truths,
            in_flight_limit_hits: self.in_flight_limit_hits.load(Ordering::Relaxed),
        }
    }
}

/// A payment as recorded, kept for repeats.
struct Paid {
    reference: String,
    amount: Decimal,
    tokens: Vec<api::KeypadToken>,
}

/// One unit's provider, customer and firmware.
struct UnitDriver {
    operator: Operator,
    config: KeypadPayments,
    rate: DayRate,
    /// Shared by all units: bounds payment calls in flight.
    permits: Arc<Semaphore>,
    in_flight_limit_hits: Arc<AtomicU64>,
    /// The unit's payments stream: waits, amounts and repeats.
    rng: StdRng,
    /// The unit's side of the token chain.
    firmware: Decoder,
    truth: KeypadTruth,
    /// The most recent payments, oldest first.
    repeatable: VecDeque<Paid>,
}

impl UnitDriver {
    async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> KeypadTruth {
        loop {
            let wait_ms = self
                .rng
                .random_range(0..=self.config.payment_interval_ms.saturating_mul(2));
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(wait_ms)) => {}
                _ = shutdown.changed() => break,
            }
            let repeat =
                !self.repeatable.is_empty() && self.rng.random_bool(self.config.repeat_per_payment);
            let done = match repeat {
                true => self.repeat().await,
                false => self.pay().await,
            };
            if let Err(error) = done {
                self.truth
                    .problem(format_args!("stopped paying, outcome unknown: {error}"));
                break;
            }
        }
        self.truth
    }

    /// A new payment: its tokens must carry the days it newly owes, and the unit must accept
    /// each of them.
    async fn pay(&mut self) -> Result<(), SimError> {
        let reference = format!("{}-pay-{}", self.truth.serial, self.truth.payments + 1);
        let amount = draw_amount(&mut self.rng, &self.config, self.rate);
        let (response, attempts) = self.record(&reference, amount).await?;
        if response.duplicate && attempts == 1 {
            self.truth
                .problem(format_args!("new payment {reference} taken as a duplicate"));
        }
        self.truth
            .on_paid(self.rate, &reference, amount, &response.tokens);
        for token in &response.tokens {
            let answer = self.firmware.enter(&token.code);
            self.truth.on_typed(token, answer);
        }
        if self.repeatable.len() == REPEATABLE_PAYMENTS_MAX {
            self.repeatable.pop_front();
        }
        self.repeatable.push_back(Paid {
            reference,
            amount,
            tokens: response.tokens,
        });
        Ok(())
    }

    /// An earlier payment's reference again: the same tokens must come back, and the unit
    /// must refuse them as used when the customer types them again.
    async fn repeat(&mut self) -> Result<(), SimError> {
        let index = self.rng.random_range(0..self.repeatable.len());
        let first = &self.repeatable[index];
        let (reference, amount) = (first.reference.clone(), first.amount);
        let (response, _) = self.record(&reference, amount).await?;
        let first = &self.repeatable[index];
        self.truth.on_repeat(&reference, &first.tokens, &response);
        for token in &first.tokens {
            let answer = self.firmware.enter(&token.code);
            self.truth.on_retyped(token, answer);
        }
        Ok(())
    }

    /// Records the payment, retrying transient failures under the same reference; returns
    /// the response and the attempts it took.
    async fn record(
        &self,
        reference: &str,
        amount: Decimal,
    ) -> Result<(api::RecordPaymentResponse, u32), SimError> {
        let request = api::RecordPaymentRequest {
            installation_id: self.truth.installation_id.clone(),
            amount: amount.to_string(),
            reference: reference.to_owned(),
            channel: api::PaymentChannel::MobileMoney.into(),
        };
        let mut attempt = 1;
        loop {
            let permit = match Arc::clone(&self.permits).try_acquire_owned() {
                Ok(permit) => permit,
                Err(_) => {
                    self.in_flight_limit_hits.fetch_add(1, Ordering::Relaxed);
                    Arc::clone(&self.permits)
                        .acquire_owned()
                        .await
                        .expect("the semaphore is never closed")
                }
            };
            let result = self
                .operator
                .payments()
                .record_payment(request.clone())
                .await;
            drop(permit);
            match result {
                Ok(response) => return Ok((response.into_inner(), attempt)),
                Err(status) if attempt < PAYMENT_ATTEMPTS_MAX && is_transient(status.code()) => {
                    tokio::time::sleep(PAYMENT_RETRY_DELAY * 2_u32.pow(attempt - 1)).await;
                    attempt += 1;
                }
                Err(status) => {
                    return Err(SimError::api(format!("RecordPayment {reference}"), status));
                }
            }
        }
    }
}

/// Whether a failed call may succeed if repeated: the server or the connection was briefly
/// unable, not the request refused.
fn is_transient(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted | Code::Unknown
    )
}

/// A random payment in cents: with `small_per_payment` less than a day's price, with
/// `bulk_per_payment` more days than one token carries, otherwise one day to five weeks.
fn draw_amount(rng: &mut StdRng, config: &KeypadPayments, rate: DayRate) -> Decimal {
    let cents_for_days = |days: u32| {
        (rate.day_price() * Decimal::from(days) * Decimal::ONE_HUNDRED)
            .ceil()
            .to_i64()
            .unwrap_or(i64::MAX)
            .max(1)
    };
    let day_cents = cents_for_days(1);
    let roll: f64 = rng.random();
    let (low, high) = if roll < config.small_per_payment {
        (1, day_cents - 1)
    } else if roll < config.small_per_payment + config.bulk_per_payment {
        let more_than_a_token = MAX_STANDARD_VALUE + 1;
        (
            cents_for_days(more_than_a_token),
            cents_for_days(more_than_a_token + BULK_EXTRA_DAYS_MAX),
        )
    } else {
        (day_cents, cents_for_days(ORDINARY_DAYS_MAX))
    };
    Decimal::new(rng.random_range(low..=high.max(low)), 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_payments_buy_no_day_and_bulk_ones_more_than_a_token_carries() {
        let rate = DayRate {
            amount_per_week: Decimal::ONE_HUNDRED,
        };
        let only = |small_per_payment, bulk_per_payment| KeypadPayments {
            small_per_payment,
            bulk_per_payment,
            ..KeypadPayments::default()
        };
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..200 {
            let small = draw_amount(&mut rng, &only(1.0, 0.0), rate);
            assert!(
                small > Decimal::ZERO && rate.days_for(small) == 0,
                "{small}"
            );
            let bulk = draw_amount(&mut rng, &only(0.0, 1.0), rate);
            let days = rate.days_for(bulk);
            assert!(
                days > u64::from(MAX_STANDARD_VALUE) && days <= 1_096,
                "{bulk}"
            );
            let ordinary = draw_amount(&mut rng, &only(0.0, 0.0), rate);
            let days = rate.days_for(ordinary);
            assert!(
                (1..=u64::from(ORDINARY_DAYS_MAX)).contains(&days),
                "{ordinary}"
            );
            assert_eq!(ordinary.scale(), 2);
        }
    }
}
