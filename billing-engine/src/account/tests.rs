//! Proves the account rules by example: the worked instalment example to the day, missed
//! instalments after downtime applied exactly once, down-payment and plan completion (mid
//! period, stopping later charges), negative charge limits at their boundary, load decisions
//! exactly when the desired load changes (and always on completion), reversals, validation
//! before any state change, and that the balance always equals the replayed ledger.

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

use super::*;
use crate::ledger::{EntryKind, PaymentChannel, ReadingId};
use crate::money::AmountError;
use crate::tariff::Period;

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn weekly(amount_per_period: Decimal) -> PlanTerms {
    PlanTerms::new(Tariff::Instalment {
        amount_per_period,
        period: Period::Weekly,
    })
}

fn usage(price_per_kwh: Decimal) -> PlanTerms {
    PlanTerms::new(Tariff::Usage { price_per_kwh })
}

fn payment(amount: Decimal, provider_ref: &str) -> Payment {
    Payment {
        amount,
        channel: PaymentChannel::MobileMoney,
        provider_ref: provider_ref.to_owned(),
        entered_by: "mpesa-callback".to_owned(),
    }
}

fn wh(load_wh: u64) -> EnergyDelta {
    EnergyDelta { load_wh, usb_wh: 0 }
}

/// An account with its ledger and the load decisions it emitted, checked after every operation.
struct Books {
    account: Account,
    ledger: Vec<LedgerEntry>,
    decisions: Vec<LoadDecision>,
    next_seq: u64,
}

impl Books {
    fn open(terms: PlanTerms, setup: AccountSetup) -> Books {
        let account = Account::open(&terms, &setup, utc("2026-05-01T00:00:00Z")).unwrap();
        Books {
            account,
            ledger: Vec::new(),
            decisions: Vec::new(),
            next_seq: 0,
        }
    }

    fn record(&mut self, effects: Effects) -> Option<LoadDecision> {
        self.ledger.extend(effects.entries);
        self.decisions.extend(effects.load_change);
        self.account.check_ledger(&self.ledger).unwrap();
        effects.load_change
    }

    fn pay(&mut self, amount: Decimal, at: &str) -> Option<LoadDecision> {
        let reference = format!("P{}", self.ledger.len());
        let effects = self
            .account
            .apply_payment(&payment(amount, &reference), utc(at))
            .unwrap();
        self.record(effects)
    }

    fn use_wh(&mut self, energy_wh: u64, at: &str) -> Option<LoadDecision> {
        self.next_seq += 1;
        let reading = ReadingId {
            boot: 1,
            seq: self.next_seq,
        };
        let effects = self
            .account
            .apply_usage(reading, wh(energy_wh), utc(at))
            .unwrap();
        self.record(effects)
    }

    fn tick(&mut self, now: &str, tz: Tz) -> Option<LoadDecision> {
        let effects = self.account.apply_due_instalments(utc(now), tz).unwrap();
        self.record(effects)
    }
}

fn decision(load: LoadState, reason: Reason) -> Option<LoadDecision> {
    Some(LoadDecision { load, reason })
}

/// A completed plan: no more charges, and the load is on for good.
fn assert_completed_for_good(account: &Account) {
    assert!(matches!(account.plan_state(), PlanState::Completed { .. }));
    assert_eq!(
        account.desired_load(),
        (LoadState::On, Reason::PlanCompleted)
    );
}

#[test]
fn worked_example_one_dollar_a_week_two_dollars_on_1_june() {
    let mut terms = weekly(dec!(1));
    terms.auto_switch_off = true;
    let mut books = Books::open(terms, AccountSetup::default());
    books.pay(dec!(2), "2026-06-01T10:00:00+03:00");
    let nairobi = Tz::Africa__Nairobi;
    assert_eq!(
        books.account.next_instalment_at(nairobi),
        Some(utc("2026-06-08T10:00:00+03:00"))
    );
    let expected = [
        ("2026-06-07T12:00:00+03:00", dec!(2)),
        ("2026-06-08T09:59:59+03:00", dec!(2)),
        ("2026-06-08T12:00:00+03:00", dec!(1)),
        ("2026-06-14T12:00:00+03:00", dec!(1)),
        ("2026-06-15T12:00:00+03:00", dec!(0)),
        ("2026-06-21T12:00:00+03:00", dec!(0)),
        ("2026-06-22T12:00:00+03:00", dec!(-1)),
    ];
    for (now, balance) in expected {
        let load_change = books.tick(now, nairobi);
        assert_eq!(books.account.balance(), balance, "at {now}");
        if balance < Decimal::ZERO {
            assert_eq!(load_change, decision_off());
        } else {
            assert_eq!(load_change, None, "at {now}");
        }
    }
    assert_eq!(books.account.instalments_applied(), 3);
    assert_eq!(
        books.account.next_instalment_at(nairobi),
        Some(utc("2026-06-29T10:00:00+03:00"))
    );
    let dates: Vec<_> = books.ledger[1..].iter().map(|entry| entry.at).collect();
    assert_eq!(
        dates,
        [
            utc("2026-06-08T10:00:00+03:00"),
            utc("2026-06-15T10:00:00+03:00"),
            utc("2026-06-22T10:00:00+03:00"),
        ]
    );
}

fn decision_off() -> Option<LoadDecision> {
    decision(LoadState::Off, Reason::CreditExhausted)
}

#[test]
fn instalments_missed_during_downtime_are_applied_once_on_restart() {
    let mut books = Books::open(weekly(dec!(1)), AccountSetup::default());
    books.pay(dec!(10), "2026-06-01T10:00:00Z");
    books.tick("2026-06-30T00:00:00Z", Tz::UTC);
    let indices: Vec<_> = books
        .ledger
        .iter()
        .filter_map(LedgerEntry::instalment_index)
        .collect();
    assert_eq!(indices, [1, 2, 3, 4]);
    assert_eq!(books.account.balance(), dec!(6));
    let again = books
        .account
        .apply_due_instalments(utc("2026-06-30T00:00:00Z"), Tz::UTC)
        .unwrap();
    assert_eq!(again, Effects::default());
    assert_eq!(books.account.balance(), dec!(6));
}

#[test]
fn instalments_wait_for_the_first_credit_deposit() {
    let mut books = Books::open(weekly(dec!(1)), AccountSetup::default());
    books.tick("2027-01-01T00:00:00Z", Tz::UTC);
    assert_eq!(books.account.plan_state(), PlanState::PendingFirstDeposit);
    assert!(books.ledger.is_empty());
    books.pay(dec!(1), "2027-01-01T00:00:00Z");
    assert_eq!(
        books.account.first_deposit_at(),
        Some(utc("2027-01-01T00:00:00Z"))
    );
    assert_eq!(books.account.plan_state(), PlanState::Active);
    books.pay(dec!(1), "2027-01-03T00:00:00Z");
    assert_eq!(
        books.account.first_deposit_at(),
        Some(utc("2027-01-01T00:00:00Z"))
    );
}

#[test]
fn each_tariff_charges_only_its_own_kind() {
    let mut books = Books::open(weekly(dec!(1)), AccountSetup::default());
    books.pay(dec!(5), "2026-06-01T00:00:00Z");
    books.use_wh(5000, "2026-06-02T00:00:00Z");
    assert_eq!(books.account.balance(), dec!(5));
    let mut books = Books::open(usage(dec!(0.5)), AccountSetup::default());
    books.pay(dec!(5), "2026-06-01T00:00:00Z");
    books.tick("2027-06-01T00:00:00Z", Tz::UTC);
    assert_eq!(books.account.balance(), dec!(5));
}

#[test]
fn usage_is_charged_exactly_for_load_plus_usb() {
    let mut books = Books::open(usage(dec!(0.37)), AccountSetup::default());
    let reading = ReadingId { boot: 2, seq: 9 };
    let energy = EnergyDelta {
        load_wh: 100,
        usb_wh: 23,
    };
    let effects = books
        .account
        .apply_usage(reading, energy, utc("2026-06-01T00:00:00Z"))
        .unwrap();
    assert_eq!(effects.entries[0].amount, dec!(-0.04551));
    assert_eq!(effects.entries[0].reading_id(), Some(reading));
    assert_eq!(effects.entries[0].kind, EntryKind::UsageCharge);
    books.record(effects);
    assert_eq!(books.account.balance(), dec!(-0.04551));
    assert_eq!(books.use_wh(0, "2026-06-01T00:00:00Z"), None);
    assert_eq!(books.ledger.len(), 1, "a zero charge appends nothing");
    let overflow = EnergyDelta {
        load_wh: u64::MAX,
        usb_wh: 1,
    };
    let refused = books
        .account
        .apply_usage(reading, overflow, utc("2026-06-01T00:00:00Z"));
    assert_eq!(refused, Err(ChargeError::WouldOverflow));
}

#[test]
fn down_payment_is_not_credit_but_counts_toward_the_total_system_cost() {
    let setup = AccountSetup {
        down_payment: dec!(30),
        total_system_cost: Some(dec!(100)),
        ..AccountSetup::default()
    };
    let mut books = Books::open(usage(dec!(1)), setup);
    assert_eq!(books.account.balance(), Decimal::ZERO);
    assert_eq!(books.account.total_paid(), Decimal::ZERO);
    assert_eq!(books.pay(dec!(69.99), "2026-06-01T00:00:00Z"), None);
    assert_eq!(books.account.plan_state(), PlanState::Active);
    let completing = books.pay(dec!(0.01), "2026-06-02T00:00:00Z");
    assert_eq!(completing, decision(LoadState::On, Reason::PlanCompleted));
    assert_eq!(
        books.account.plan_state(),
        PlanState::Completed {
            at: utc("2026-06-02T00:00:00Z")
        }
    );
    assert_eq!(books.account.balance(), dec!(70));
}

#[test]
fn a_down_payment_covering_the_cost_completes_the_plan_at_opening() {
    let setup = AccountSetup {
        down_payment: dec!(100),
        total_system_cost: Some(dec!(100)),
        ..AccountSetup::default()
    };
    let books = Books::open(weekly(dec!(1)), setup);
    assert_completed_for_good(&books.account);
}

#[test]
fn completion_mid_period_stops_later_instalments_and_switches_on_for_good() {
    let mut terms = weekly(dec!(10));
    terms.auto_switch_off = true;
    let setup = AccountSetup {
        total_system_cost: Some(dec!(50)),
        ..AccountSetup::default()
    };
    let mut books = Books::open(terms, setup);
    books.pay(dec!(5), "2026-06-01T10:00:00Z");
    assert_eq!(books.tick("2026-06-08T10:00:00Z", Tz::UTC), decision_off());
    // Instalment 2 falls due on 15 June, but the server only ticks after the completing payment.
    let completing = books.pay(dec!(45), "2026-06-18T00:00:00Z");
    assert_eq!(completing, decision(LoadState::On, Reason::PlanCompleted));
    books.tick("2026-09-01T00:00:00Z", Tz::UTC);
    let indices: Vec<_> = books
        .ledger
        .iter()
        .filter_map(LedgerEntry::instalment_index)
        .collect();
    assert_eq!(indices, [1, 2], "only instalments due before completion");
    assert_eq!(books.account.balance(), dec!(30));
    assert_eq!(books.account.next_instalment_at(Tz::UTC), None);
    assert!(
        books
            .account
            .due_instalments(utc("2030-01-01T00:00:00Z"), Tz::UTC)
            .instalments
            .is_empty()
    );
    // Nothing switches a completed plan off, not even a reversal or a lowered balance.
    let original = books.ledger[0].clone();
    let reversal = Reversal {
        reason: "charge-back".into(),
        entered_by: "ops".into(),
    };
    let effects =
        books
            .account
            .reverse_payment(&original, false, &reversal, utc("2026-09-02T00:00:00Z"));
    assert_eq!(books.record(effects.unwrap()), None);
    assert_completed_for_good(&books.account);
}

#[test]
fn completion_stops_usage_charges_dated_at_or_after_it() {
    let setup = AccountSetup {
        total_system_cost: Some(dec!(10)),
        ..AccountSetup::default()
    };
    let mut books = Books::open(usage(dec!(1)), setup);
    books.pay(dec!(10), "2026-06-10T00:00:00Z");
    books.use_wh(1000, "2026-06-09T23:00:00Z");
    assert_eq!(
        books.account.balance(),
        dec!(9),
        "a reading dated before completion is charged"
    );
    books.use_wh(1000, "2026-06-10T00:00:00Z");
    books.use_wh(5000, "2026-07-10T00:00:00Z");
    assert_eq!(books.account.balance(), dec!(9));
}

#[test]
fn limit_zero_switches_off_just_below_zero_and_a_payment_restores() {
    let mut terms = usage(dec!(1));
    terms.auto_switch_off = true;
    let mut books = Books::open(terms, AccountSetup::default());
    books.pay(dec!(1), "2026-06-01T00:00:00Z");
    assert_eq!(
        books.use_wh(1000, "2026-06-01T01:00:00Z"),
        None,
        "exactly 0 stays on"
    );
    assert_eq!(books.use_wh(10, "2026-06-01T02:00:00Z"), decision_off());
    assert_eq!(
        books.use_wh(10, "2026-06-01T03:00:00Z"),
        None,
        "already off"
    );
    assert_eq!(
        books.pay(dec!(0.01), "2026-06-01T04:00:00Z"),
        None,
        "−0.01 still below 0"
    );
    let restored = books.pay(dec!(0.01), "2026-06-01T05:00:00Z");
    assert_eq!(restored, decision(LoadState::On, Reason::CreditRestored));
    assert_eq!(books.account.balance(), Decimal::ZERO);
}

#[test]
fn limit_minus_100_allows_exactly_minus_100() {
    let mut terms = usage(dec!(1));
    terms.auto_switch_off = true;
    let setup = AccountSetup {
        negative_charge_limit: Some(dec!(-100)),
        ..AccountSetup::default()
    };
    let mut books = Books::open(terms, setup);
    assert_eq!(books.use_wh(100_000, "2026-06-01T00:00:00Z"), None);
    assert_eq!(books.account.balance(), dec!(-100));
    assert_eq!(books.account.desired_load().0, LoadState::On);
    assert_eq!(books.use_wh(10, "2026-06-01T01:00:00Z"), decision_off());
    assert_eq!(books.account.balance(), dec!(-100.01));
}

#[test]
fn without_auto_switch_off_no_balance_switches_the_load() {
    let mut books = Books::open(usage(dec!(1)), AccountSetup::default());
    assert_eq!(books.use_wh(1_000_000, "2026-06-01T00:00:00Z"), None);
    assert_eq!(books.account.balance(), dec!(-1000));
    assert!(books.decisions.is_empty());
    assert_eq!(
        books.account.desired_load(),
        (LoadState::On, Reason::CreditRestored)
    );
}

#[test]
fn settings_changes_switch_the_load_when_they_change_the_outcome() {
    let mut books = Books::open(usage(dec!(1)), AccountSetup::default());
    books.use_wh(5000, "2026-06-01T00:00:00Z");
    assert_eq!(
        books.account.set_auto_switch_off(true).load_change,
        decision_off()
    );
    assert_eq!(books.account.set_auto_switch_off(true).load_change, None);
    let lowered = books.account.set_negative_charge_limit(dec!(-5)).unwrap();
    assert_eq!(
        lowered.load_change,
        decision(LoadState::On, Reason::CreditRestored)
    );
    let refused = books.account.set_negative_charge_limit(dec!(1));
    assert_eq!(
        refused,
        Err(SettingsError::NegativeChargeLimit(AmountError::Positive))
    );
    assert_eq!(books.account.negative_charge_limit(), dec!(-5));
    let raised = books
        .account
        .set_negative_charge_limit(dec!(-4.99))
        .unwrap();
    assert_eq!(raised.load_change, decision_off());
    assert_eq!(
        books.account.set_auto_switch_off(false).load_change,
        decision(LoadState::On, Reason::CreditRestored)
    );
}

#[test]
fn sale_terms_filled_in_later_can_complete_the_plan() {
    let mut books = Books::open(usage(dec!(1)), AccountSetup::default());
    books.pay(dec!(60), "2026-06-01T00:00:00Z");
    let at = utc("2026-06-02T00:00:00Z");
    let effects = books
        .account
        .set_sale_terms(dec!(40), Some(dec!(100)), at)
        .unwrap();
    assert_eq!(
        effects.load_change,
        decision(LoadState::On, Reason::PlanCompleted)
    );
    assert_eq!(books.account.plan_state(), PlanState::Completed { at });
    let refused = books.account.set_sale_terms(dec!(-1), None, at);
    assert_eq!(
        refused,
        Err(SettingsError::DownPayment(AmountError::NotPositive))
    );
}

#[test]
fn decisions_are_emitted_exactly_when_the_desired_load_changes() {
    let mut terms = usage(dec!(1));
    terms.auto_switch_off = true;
    let mut books = Books::open(terms, AccountSetup::default());
    for hour in 0..6 {
        let at = format!("2026-06-01T{:02}:00:00Z", hour);
        for step in 0..4 {
            let before = books.account.desired_load();
            let load_change = if step < 2 {
                books.use_wh(1000, &at)
            } else {
                books.pay(dec!(1), &at)
            };
            let after = books.account.desired_load();
            let expected = (after != before).then_some(LoadDecision {
                load: after.0,
                reason: after.1,
            });
            assert_eq!(load_change, expected, "hour {hour} step {step}");
        }
    }
    assert_eq!(books.decisions.len(), 12);
    for pair in books.decisions.windows(2) {
        assert_ne!(pair[0].load, pair[1].load);
    }
}

#[test]
fn a_payment_is_reversed_once_and_reduces_total_paid() {
    let mut terms = usage(dec!(1));
    terms.auto_switch_off = true;
    let mut books = Books::open(terms, AccountSetup::default());
    books.pay(dec!(10), "2026-06-01T00:00:00Z");
    books.pay(dec!(5), "2026-06-02T00:00:00Z");
    books.use_wh(12_000, "2026-06-03T00:00:00Z");
    let reversal = Reversal {
        reason: "duplicate".into(),
        entered_by: "ops".into(),
    };
    let at = utc("2026-06-04T00:00:00Z");
    let original = crate::ledger::find_payment(&books.ledger, "P1")
        .unwrap()
        .clone();
    let already = crate::ledger::is_reversed(&books.ledger, "P1");
    let effects = books
        .account
        .reverse_payment(&original, already, &reversal, at)
        .unwrap();
    assert_eq!(effects.entries[0].amount, dec!(-5));
    assert_eq!(effects.entries[0].kind, EntryKind::Reversal);
    assert_eq!(effects.entries[0].payment_ref(), Some("P1"));
    assert_eq!(books.record(effects), decision_off());
    assert_eq!(books.account.balance(), dec!(-2));
    assert_eq!(books.account.total_paid(), dec!(10));
    let already = crate::ledger::is_reversed(&books.ledger, "P1");
    let twice = books
        .account
        .reverse_payment(&original, already, &reversal, at);
    assert_eq!(twice, Err(ReversalError::AlreadyReversed));
    let charge = books.ledger[2].clone();
    let not_payment = books.account.reverse_payment(&charge, false, &reversal, at);
    assert_eq!(not_payment, Err(ReversalError::NotAPayment));
    let mut foreign = original.clone();
    foreign.amount = dec!(11);
    let foreign = books
        .account
        .reverse_payment(&foreign, false, &reversal, at);
    assert_eq!(foreign, Err(ReversalError::ExceedsTotalPaid));
    assert_eq!(books.account.total_paid(), dec!(10));
}

#[test]
fn invalid_payments_are_refused_without_changing_the_account() {
    let mut account = Account::open(
        &usage(dec!(1)),
        &AccountSetup::default(),
        utc("2026-06-01T00:00:00Z"),
    )
    .unwrap();
    let before = account.clone();
    let mut long = payment(dec!(1), &"x".repeat(TEXT_BYTES_MAX + 1));
    let mut anonymous = payment(dec!(1), "R");
    anonymous.entered_by = " ".into();
    long.amount = dec!(-1);
    let table = [
        (
            payment(dec!(0), "R"),
            PaymentError::Amount(AmountError::NotPositive),
        ),
        (
            payment(dec!(-5), ""),
            PaymentError::Amount(AmountError::NotPositive),
        ),
        (
            payment(dec!(1000000000000.01), "R"),
            PaymentError::Amount(AmountError::TooLarge),
        ),
        (
            payment(Decimal::new(1, 13), "R"),
            PaymentError::Amount(AmountError::TooPrecise),
        ),
        (
            payment(dec!(1), ""),
            PaymentError::ProviderRef(TextError::Empty),
        ),
        (
            payment(dec!(1), &"x".repeat(TEXT_BYTES_MAX + 1)),
            PaymentError::ProviderRef(TextError::TooLong),
        ),
        (anonymous, PaymentError::EnteredBy(TextError::Empty)),
        (long, PaymentError::Amount(AmountError::NotPositive)),
    ];
    for (payment, error) in table {
        assert_eq!(
            account.apply_payment(&payment, utc("2026-06-01T00:00:00Z")),
            Err(error)
        );
        assert!(!error.is_transient());
        assert_eq!(account, before);
    }
}

#[test]
fn adjustments_change_the_balance_but_not_total_paid() {
    let mut books = Books::open(usage(dec!(1)), AccountSetup::default());
    let adjustment = Adjustment {
        amount: dec!(-2.5),
        reference: "ADJ-1".into(),
        reason: "meter fault refund reversed".into(),
        entered_by: "ops".into(),
    };
    let effects = books
        .account
        .apply_adjustment(&adjustment, utc("2026-06-01T00:00:00Z"))
        .unwrap();
    books.record(effects);
    assert_eq!(books.account.balance(), dec!(-2.5));
    assert_eq!(books.account.total_paid(), Decimal::ZERO);
    let zero = Adjustment {
        amount: Decimal::ZERO,
        ..adjustment
    };
    let refused = books
        .account
        .apply_adjustment(&zero, utc("2026-06-01T00:00:00Z"));
    assert_eq!(refused, Err(AdjustmentError::AmountZero));
}

#[test]
fn a_new_account_desires_the_load_on_until_the_rules_switch_it_off() {
    let mut terms = usage(dec!(1));
    terms.auto_switch_off = true;
    let mut books = Books::open(terms, AccountSetup::default());
    assert_eq!(
        books.account.desired_load(),
        (LoadState::On, Reason::CreditRestored)
    );
    assert_eq!(books.use_wh(10, "2026-06-01T00:00:00Z"), decision_off());
    assert_eq!(
        books.account.desired_load(),
        (LoadState::Off, Reason::CreditExhausted)
    );
}

#[test]
fn stored_totals_that_disagree_with_the_ledger_are_reported() {
    let mut books = Books::open(usage(dec!(1)), AccountSetup::default());
    books.pay(dec!(3), "2026-06-01T00:00:00Z");
    let missing_entry = &books.ledger[..0];
    assert!(matches!(
        books.account.check_ledger(missing_entry),
        Err(LedgerMismatch::Totals { .. })
    ));
}

#[test]
fn the_hot_state_fits_in_one_kibibyte() {
    assert!(
        std::mem::size_of::<Account>() <= 1024,
        "{}",
        std::mem::size_of::<Account>()
    );
}

#[test]
fn opening_refuses_invalid_terms() {
    let at = utc("2026-06-01T00:00:00Z");
    let bad_limit = AccountSetup {
        negative_charge_limit: Some(dec!(0.5)),
        ..AccountSetup::default()
    };
    let refused = Account::open(&usage(dec!(1)), &bad_limit, at);
    assert_eq!(
        refused,
        Err(SettingsError::NegativeChargeLimit(AmountError::Positive))
    );
    let bad_cost = AccountSetup {
        total_system_cost: Some(dec!(-1)),
        ..AccountSetup::default()
    };
    let refused = Account::open(&usage(dec!(1)), &bad_cost, at);
    assert_eq!(
        refused,
        Err(SettingsError::TotalSystemCost(AmountError::NotPositive))
    );
    let refused = Account::open(&usage(dec!(-1)), &AccountSetup::default(), at);
    assert!(matches!(refused, Err(SettingsError::Terms(_))));
}

#[test]
fn a_monthly_plan_charges_on_clamped_dates_for_two_years_without_drift() {
    let terms = PlanTerms::new(Tariff::Instalment {
        amount_per_period: dec!(3),
        period: Period::Monthly,
    });
    let mut books = Books::open(terms, AccountSetup::default());
    books.pay(dec!(100), "2027-01-31T08:00:00Z");
    let mut now = utc("2027-01-31T08:00:00Z");
    for _ in 0..110 {
        now += Duration::days(7);
        books
            .account
            .apply_due_instalments(now, Tz::UTC)
            .map(|e| books.ledger.extend(e.entries))
            .unwrap();
    }
    let days: Vec<_> = books.ledger[1..25]
        .iter()
        .map(|e| e.at.format("%m-%d").to_string())
        .collect();
    assert_eq!(&days[..3], ["02-28", "03-31", "04-30"]);
    assert_eq!(days[12], "02-29", "2028 is a leap year");
    assert_eq!(days[23], "01-31");
    assert_eq!(books.account.check_ledger(&books.ledger), Ok(()));
}

#[test]
fn an_instalment_due_at_the_completion_instant_is_not_charged() {
    let setup = AccountSetup {
        total_system_cost: Some(dec!(20)),
        ..AccountSetup::default()
    };
    let mut books = Books::open(weekly(dec!(1)), setup);
    books.pay(dec!(10), "2026-06-01T10:00:00Z");
    books.pay(dec!(10), "2026-06-08T10:00:00Z");
    books.tick("2026-06-08T10:00:00Z", Tz::UTC);
    assert_eq!(books.account.instalments_applied(), 0);
    assert_eq!(books.account.balance(), dec!(20));
}
