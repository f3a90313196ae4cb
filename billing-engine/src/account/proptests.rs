//! Property tests: random sequences of payments, reversals, readings, clock ticks and setting
//! changes are applied both to [`Account`] and to a reference model built from plain sums
//! (instalments due every fixed 24 h or 7 × 24 h after the first deposit, which is what a
//! calendar in a zone without DST gives). After every step the two must agree on balance, total
//! paid, plan completion and desired load; a load decision must appear exactly when the model's
//! desired load changed or the plan just completed, carrying the model's new load and reason;
//! and the account's totals must equal the replay of its ledger.

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;
use rust_decimal::Decimal;

use super::*;
use crate::ledger::{PaymentChannel, ReadingId, replay};
use crate::tariff::Period;

/// One step of a random scenario.
#[derive(Debug, Clone)]
enum Op {
    Pay {
        cents: u32,
    },
    Use {
        wh: u32,
    },
    /// Advances the clock; `apply` says whether instalments are applied now (a server that is
    /// down lets them pile up and applies them later).
    Tick {
        minutes: u32,
        apply: bool,
    },
    Reverse {
        pick: usize,
    },
    SetLimit {
        cents_below_zero: u32,
    },
    SetAuto(bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1..20_000u32).prop_map(|cents| Op::Pay { cents }),
        3 => (0..5_000u32).prop_map(|wh| Op::Use { wh }),
        2 => (0..20_000u32, any::<bool>()).prop_map(|(minutes, apply)| Op::Tick { minutes, apply }),
        // Whole days, so that instalments fall due exactly at the instant of a later step.
        1 => (0..8u32, any::<bool>()).prop_map(|(days, apply)| Op::Tick { minutes: days * 1440, apply }),
        1 => any::<usize>().prop_map(|pick| Op::Reverse { pick }),
        1 => (0..5_000u32).prop_map(|cents_below_zero| Op::SetLimit { cents_below_zero }),
        1 => any::<bool>().prop_map(Op::SetAuto),
    ]
}

/// The plan of one scenario: usage, daily or weekly, with random amounts and sale terms.
#[derive(Debug, Clone)]
struct Scenario {
    kind: u8,
    price_cents: u32,
    down_payment_cents: u32,
    total_system_cost_cents: Option<u32>,
    auto_switch_off: bool,
    tz: Tz,
    ops: Vec<Op>,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    let tz = prop_oneof![
        Just(Tz::UTC),
        Just(Tz::Africa__Nairobi),
        Just(Tz::Africa__Lagos)
    ];
    (
        0..3u8,
        0..1_000u32,
        0..10_000u32,
        proptest::option::of(0..100_000u32),
        any::<bool>(),
        tz,
        proptest::collection::vec(op(), 0..60),
    )
        .prop_map(
            |(kind, price_cents, down, cost, auto_switch_off, tz, ops)| Scenario {
                kind,
                price_cents,
                down_payment_cents: down,
                total_system_cost_cents: cost,
                auto_switch_off,
                tz,
                ops,
            },
        )
}

fn cents(value: u32) -> Decimal {
    Decimal::new(i64::from(value), 2)
}

/// The reference model: plain sums and a plain list of payments.
#[derive(Debug)]
struct Model {
    usage_price: Option<Decimal>,
    instalment: Option<(Decimal, Duration)>,
    balance: Decimal,
    total_paid: Decimal,
    down_payment: Decimal,
    total_system_cost: Option<Decimal>,
    limit: Decimal,
    auto_switch_off: bool,
    first_deposit: Option<DateTime<Utc>>,
    completed_at: Option<DateTime<Utc>>,
    applied: i32,
    payments: Vec<(Decimal, bool)>,
    desired: LoadState,
    reason: Reason,
}

impl Model {
    fn desired_now(&self) -> (LoadState, Reason) {
        if self.completed_at.is_some() {
            (LoadState::On, Reason::PlanCompleted)
        } else if self.auto_switch_off && self.balance < self.limit {
            (LoadState::Off, Reason::CreditExhausted)
        } else {
            (LoadState::On, Reason::CreditRestored)
        }
    }

    /// Applies a step's state change; returns whether a load decision is expected.
    fn step(&mut self, op: &Op, now: DateTime<Utc>) -> bool {
        let mut completed_now = false;
        match *op {
            Op::Pay { cents: amount } => {
                self.balance += cents(amount);
                self.total_paid += cents(amount);
                self.payments.push((cents(amount), false));
                self.first_deposit.get_or_insert(now);
                let covered = self
                    .total_system_cost
                    .is_some_and(|cost| self.down_payment + self.total_paid >= cost);
                if covered && self.completed_at.is_none() {
                    self.completed_at = Some(now);
                    completed_now = true;
                }
            }
            Op::Use { wh } => {
                if let (Some(price), None) = (self.usage_price, self.completed_at) {
                    self.balance -= Decimal::from(wh) * price / Decimal::from(1000);
                }
            }
            Op::Tick { apply, .. } => {
                if apply {
                    self.charge_instalments(now);
                }
            }
            Op::Reverse { pick } => {
                if let Some(payment) = self.payments.iter_mut().filter(|p| !p.1).nth(pick % 4) {
                    payment.1 = true;
                    self.balance -= payment.0;
                    self.total_paid -= payment.0;
                }
            }
            Op::SetLimit { cents_below_zero } => self.limit = -cents(cents_below_zero),
            Op::SetAuto(enabled) => self.auto_switch_off = enabled,
        }
        let (desired, reason) = self.desired_now();
        let changed = desired != self.desired;
        (self.desired, self.reason) = (desired, reason);
        changed || completed_now
    }

    fn charge_instalments(&mut self, now: DateTime<Utc>) {
        let (Some((amount, period)), Some(anchor)) = (self.instalment, self.first_deposit) else {
            return;
        };
        loop {
            let due = anchor + period * (self.applied + 1);
            if due > now || self.completed_at.is_some_and(|at| due >= at) {
                return;
            }
            self.balance -= amount;
            self.applied += 1;
        }
    }
}

fn setup(s: &Scenario) -> (PlanTerms, AccountSetup, Model) {
    let price = cents(s.price_cents);
    let (tariff, usage_price, instalment) = match s.kind {
        0 => (
            Tariff::Usage {
                price_per_kwh: price,
            },
            Some(price),
            None,
        ),
        1 => (
            Tariff::Instalment {
                amount_per_period: price,
                period: Period::Daily,
            },
            None,
            Some((price, Duration::days(1))),
        ),
        _ => (
            Tariff::Instalment {
                amount_per_period: price,
                period: Period::Weekly,
            },
            None,
            Some((price, Duration::days(7))),
        ),
    };
    let mut terms = PlanTerms::new(tariff);
    terms.auto_switch_off = s.auto_switch_off;
    let account_setup = AccountSetup {
        down_payment: cents(s.down_payment_cents),
        total_system_cost: s.total_system_cost_cents.map(cents),
        ..AccountSetup::default()
    };
    let model = Model {
        usage_price,
        instalment,
        balance: Decimal::ZERO,
        total_paid: Decimal::ZERO,
        down_payment: account_setup.down_payment,
        total_system_cost: account_setup.total_system_cost,
        limit: Decimal::ZERO,
        auto_switch_off: s.auto_switch_off,
        first_deposit: None,
        completed_at: None,
        applied: 0,
        payments: Vec::new(),
        desired: LoadState::On,
        reason: Reason::CreditRestored,
    };
    (terms, account_setup, model)
}

/// Applies one step to the account; `ledger` is its history so far, for references and
/// reversals.
fn apply(
    account: &mut Account,
    ledger: &[LedgerEntry],
    op: &Op,
    now: DateTime<Utc>,
    tz: Tz,
) -> Effects {
    match *op {
        Op::Pay { cents: amount } => {
            let payment = Payment {
                amount: cents(amount),
                channel: PaymentChannel::Manual,
                provider_ref: format!("P{}", ledger.len()),
                entered_by: "cashier".into(),
            };
            account.apply_payment(&payment, now).unwrap()
        }
        Op::Use { wh } => {
            let reading = ReadingId {
                boot: 0,
                seq: ledger.len() as u64,
            };
            account
                .apply_usage(
                    reading,
                    EnergyDelta {
                        load_wh: u64::from(wh) / 2,
                        usb_wh: u64::from(wh) - u64::from(wh) / 2,
                    },
                    now,
                )
                .unwrap()
        }
        Op::Tick { apply: true, .. } => account.apply_due_instalments(now, tz).unwrap(),
        Op::Tick { apply: false, .. } => Effects::default(),
        Op::Reverse { pick } => {
            let unreversed: Vec<&LedgerEntry> = ledger
                .iter()
                .filter(|e| e.kind == crate::ledger::EntryKind::Payment)
                .filter(|e| !crate::ledger::is_reversed(ledger, e.payment_ref().unwrap()))
                .collect();
            let Some(original) = unreversed.get(pick % 4).map(|e| (*e).clone()) else {
                return Effects::default();
            };
            let reversal = Reversal {
                reason: "test".into(),
                entered_by: "ops".into(),
            };
            account
                .reverse_payment(&original, false, &reversal, now)
                .unwrap()
        }
        Op::SetLimit { cents_below_zero } => account
            .set_negative_charge_limit(-cents(cents_below_zero))
            .unwrap(),
        Op::SetAuto(enabled) => account.set_auto_switch_off(enabled),
    }
}

proptest! {
    #[test]
    fn account_agrees_with_a_plain_sums_model(s in scenario()) {
        let (terms, account_setup, mut model) = setup(&s);
        let mut now = DateTime::parse_from_rfc3339("2026-06-01T07:13:00Z").unwrap().with_timezone(&Utc);
        let mut account = Account::open(&terms, &account_setup, now).unwrap();
        if account_setup.total_system_cost.is_some_and(|cost| account_setup.down_payment >= cost) {
            model.completed_at = Some(now);
            model.reason = Reason::PlanCompleted;
        }
        prop_assert_eq!(account.desired_load(), (model.desired, model.reason));
        let mut ledger = Vec::new();
        for op in &s.ops {
            if let Op::Tick { minutes, .. } = *op {
                now += Duration::minutes(i64::from(minutes));
            }
            let expect_decision = model.step(op, now);
            let effects = apply(&mut account, &ledger, op, now, s.tz);
            prop_assert_eq!(effects.load_change.is_some(), expect_decision, "{:?}", op);
            if let Some(decision) = effects.load_change {
                prop_assert_eq!(decision.load, model.desired);
                prop_assert_eq!(decision.reason, model.reason);
            }
            ledger.extend(effects.entries);
            prop_assert_eq!(account.balance(), model.balance);
            prop_assert_eq!(account.total_paid(), model.total_paid);
            prop_assert_eq!(account.desired_load(), (model.desired, model.reason));
            prop_assert_eq!(
                matches!(account.plan_state(), PlanState::Completed { .. }),
                model.completed_at.is_some()
            );
            let totals = replay(&ledger).unwrap();
            prop_assert_eq!(totals.balance, account.balance());
            prop_assert_eq!(totals.total_paid, account.total_paid());
        }
        prop_assert_eq!(account.instalments_applied() as i32, model.applied);
    }

    #[test]
    fn instalments_are_applied_once_however_the_clock_is_ticked(
        steps in proptest::collection::vec(0..3_000u32, 1..40),
        monthly in any::<bool>(),
    ) {
        let period = if monthly { Period::Monthly } else { Period::Daily };
        let terms = PlanTerms::new(Tariff::Instalment { amount_per_period: Decimal::ONE, period });
        let start = DateTime::parse_from_rfc3339("2027-01-31T21:30:00Z").unwrap().with_timezone(&Utc);
        let tz = Tz::America__New_York;
        let mut stepped = Account::open(&terms, &AccountSetup::default(), start).unwrap();
        let payment = Payment { amount: Decimal::ONE, channel: PaymentChannel::Other, provider_ref: "P".into(), entered_by: "x".into() };
        stepped.apply_payment(&payment, start).unwrap();
        let mut at_once = stepped.clone();
        let mut now = start;
        let mut indices = Vec::new();
        for hours in steps {
            now += Duration::hours(i64::from(hours));
            let effects = stepped.apply_due_instalments(now, tz).unwrap();
            indices.extend(effects.entries.iter().filter_map(LedgerEntry::instalment_index));
        }
        let once = at_once.apply_due_instalments(now, tz).unwrap();
        let expected: Vec<u32> = (1..=once.entries.len() as u32).collect();
        prop_assert_eq!(indices, expected);
        prop_assert_eq!(stepped, at_once);
    }
}
