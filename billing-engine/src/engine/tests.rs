//! Partition tests against a real redb file: every assertion about durability reads the store.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use sunledger_proto::device::{CommandAck, Telemetry};

use super::*;
use crate::account::{AccountSetup, Adjustment, Payment, Reversal};
use crate::account_record::{AccountChange, AccountOpening, Movement, Receipt};
use crate::clock::ManualClock;
use crate::event::DeviceEvent;
use crate::ledger::{EntryKind, PaymentChannel};
use crate::tariff::{Period, PlanTerms, Tariff};
use crate::units::{DeviceKey, Refusal};
use sunledger_proto::authenticity;

mod disk;
mod keypad;
mod pipelined;
mod unit_log;

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

fn event(serial: &str, at: &str, body: EventBody) -> DeviceEvent {
    DeviceEvent {
        serial: serial.into(),
        received_at_ms: utc(at).timestamp_millis(),
        body,
    }
}

fn reading(seq: u64, ts: i64, load_wh: u64) -> EventBody {
    EventBody::Telemetry(Telemetry {
        seq,
        ts,
        load_wh,
        boot: 1,
        ..Telemetry::default()
    })
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    directory: Arc<UnitDirectory>,
    /// Each registered unit's device key, which its readings and acks are sealed with.
    keys: std::collections::HashMap<String, DeviceKey>,
    clock: Arc<ManualClock>,
    partition: Partition,
}

impl Fixture {
    fn new(serials: &[&str]) -> Fixture {
        Fixture::with_options(serials, crate::store::StoreOptions::default())
    }

    fn with_options(serials: &[&str], options: crate::store::StoreOptions) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open_with(&dir.path().join("db.redb"), options).unwrap());
        let keys = serials
            .iter()
            .map(|serial| {
                let (_, key) = store.register_unit(serial, 0, false).unwrap();
                (serial.to_string(), key)
            })
            .collect();
        let directory = Arc::new(store.unit_directory().unwrap());
        let clock = Arc::new(ManualClock::new(utc("2026-06-01T10:00:00Z")));
        let partition =
            Partition::open(store.clone(), directory.clone(), clock.clone(), 0, 1).unwrap();
        Fixture {
            _dir: dir,
            store,
            directory,
            keys,
            clock,
            partition,
        }
    }

    /// Applies `events` as the devices send them and ingest admits them ([`Fixture::admit`]),
    /// and waits for their commit.
    fn apply_batch(&mut self, events: &[DeviceEvent]) -> Result<(), StoreError> {
        let admitted = self.admit(events);
        self.partition.apply_batch(&admitted)
    }

    /// Applies `events` as [`Fixture::apply_batch`] does, leaving their commit in flight.
    fn submit_batch(&mut self, events: &[DeviceEvent]) -> Result<(), StoreError> {
        let admitted = self.admit(events);
        self.partition.submit_batch(&admitted)
    }

    /// `events` as ingest admits them: readings and acks of registered units sealed with their
    /// keys, the events the directory refuses (unknown serials) left out.
    fn admit(&self, events: &[DeviceEvent]) -> Vec<Admitted> {
        events
            .iter()
            .map(|event| {
                let mut event = event.clone();
                if let Some(key) = self.keys.get(&*event.serial) {
                    let serial = event.serial.clone();
                    event.body = match event.body {
                        EventBody::Telemetry(reading) => {
                            EventBody::Telemetry(authenticity::seal(key.bytes(), &serial, reading))
                        }
                        EventBody::Ack(ack) => {
                            EventBody::Ack(authenticity::seal(key.bytes(), &serial, ack))
                        }
                        other => other,
                    };
                }
                event
            })
            .filter_map(|event| self.directory.admit(event).ok())
            .collect()
    }

    /// Drops the partition's memory and loads it again from the file, as after a restart.
    fn restart(&mut self) {
        self.partition = Partition::open(
            self.store.clone(),
            self.directory.clone(),
            self.clock.clone(),
            0,
            1,
        )
        .unwrap();
    }

    fn open(&mut self, serial: &str, terms: PlanTerms, setup: AccountSetup) -> AccountRecord {
        let opening = AccountOpening {
            org: "org-1".into(),
            tz: Tz::Africa__Nairobi,
            terms,
            setup,
            time_mode: crate::keypad::TimeMode::AddTime,
        };
        self.partition.open_account(serial, opening).unwrap()
    }

    fn pay(
        &mut self,
        serial: &str,
        amount: Decimal,
        provider_ref: &str,
    ) -> Result<Receipt, EngineError> {
        let payment = Payment {
            amount,
            channel: PaymentChannel::MobileMoney,
            provider_ref: provider_ref.into(),
            entered_by: "till-7".into(),
        };
        self.partition.record(serial, Movement::Payment(payment))
    }

    fn balance(&self, serial: &str) -> Decimal {
        self.partition
            .unit(serial)
            .unwrap()
            .account
            .as_ref()
            .unwrap()
            .account
            .balance()
    }

    /// Checks that memory equals the file and the stored balance equals its ledger's sum.
    fn assert_stored_matches_ledger(&self, serial: &str) {
        let stored = self.store.account(serial).unwrap().unwrap();
        let in_memory = self
            .partition
            .unit(serial)
            .unwrap()
            .account
            .clone()
            .unwrap();
        assert_eq!(stored, in_memory);
        let ledger = self.store.ledger(serial).unwrap();
        let numbers: Vec<u64> = ledger.iter().map(|(seq, _)| *seq).collect();
        assert_eq!(numbers, (0..stored.ledger_len).collect::<Vec<_>>());
        stored
            .account
            .check_ledger(ledger.iter().map(|(_, entry)| entry))
            .unwrap();
    }

    /// The kinds of the unit's stored ledger entries, oldest first.
    fn stored_kinds(&self, serial: &str) -> Vec<EntryKind> {
        let ledger = self.store.ledger(serial).unwrap();
        ledger.into_iter().map(|(_, entry)| entry.kind).collect()
    }

    fn commands(&mut self) -> Vec<(u64, LoadState, Reason)> {
        self.partition
            .take_outbox()
            .into_iter()
            .map(|(_, command)| (command.cmd_id, command.load(), command.reason()))
            .collect()
    }
}

#[test]
fn readings_without_the_units_own_mac_are_not_admitted() {
    let mut fx = Fixture::new(&["A", "B"]);
    let at = "2026-06-01T10:00:00Z";
    fx.apply_batch(&[event("A", at, reading(1, 0, 100))])
        .unwrap();
    let b_key = fx.keys["B"].clone();
    let forged = [
        // No MAC at all.
        event("A", at, reading(2, 600, 5_000)),
        // B's key vouching for A's topic.
        event(
            "A",
            at,
            match reading(3, 1200, 9_000) {
                EventBody::Telemetry(r) => {
                    EventBody::Telemetry(authenticity::seal(b_key.bytes(), "B", r))
                }
                _ => unreachable!("a reading"),
            },
        ),
    ];
    for forgery in forged {
        assert_eq!(fx.directory.admit(forgery).err(), Some(Refusal::BadMac));
    }
    fx.apply_batch(&[event("A", at, reading(2, 600, 130))])
        .unwrap();
    let stored = fx.store.unit_state("A").unwrap().unwrap();
    assert_eq!(
        stored.consumed_wh, 30,
        "the genuine next reading is charged"
    );
}

fn usage(price_per_kwh: Decimal, limit: Decimal) -> PlanTerms {
    let mut terms = PlanTerms::new(Tariff::Usage { price_per_kwh });
    terms.auto_switch_off = true;
    terms.negative_charge_limit = limit;
    terms
}

#[test]
fn a_batch_is_stored_and_duplicates_are_not_counted_twice() {
    let mut fx = Fixture::new(&["A"]);
    let batch = [
        event("A", "2026-06-01T10:00:00Z", reading(1, 0, 100)),
        event("A", "2026-06-01T10:10:00Z", reading(2, 600, 130)),
        event("A", "2026-06-01T10:10:00Z", reading(2, 600, 130)),
        event("A", "2026-06-01T10:20:00Z", reading(3, 1200, 150)),
        event("ghost", "2026-06-01T10:20:00Z", reading(1, 0, 5)),
    ];
    fx.apply_batch(&batch).unwrap();
    let stored = fx.store.unit_state("A").unwrap().unwrap();
    assert_eq!(stored.consumed_wh, 50);
    assert_eq!(stored.meter.unwrap().seq, 3);
    assert_eq!(fx.store.unit_state("ghost").unwrap(), None);
}

#[test]
fn a_slot_hint_outdated_by_a_reload_still_charges_each_reading_to_its_own_unit() {
    let mut fx = Fixture::new(&["A", "B"]);
    let at = "2026-06-01T10:00:00Z";
    // B is seen first and takes the first slot; the restart loads A first.
    fx.apply_batch(&[event("B", at, reading(1, 0, 100))])
        .unwrap();
    fx.apply_batch(&[event("A", at, reading(1, 0, 500))])
        .unwrap();
    fx.restart();
    let later = "2026-06-01T10:10:00Z";
    let batch = [
        event("B", later, reading(2, 600, 130)),
        event("A", later, reading(2, 600, 510)),
    ];
    let hints = |fx: &Fixture| -> Vec<Option<Slot>> {
        let admitted = fx.admit(&batch);
        admitted.iter().map(Admitted::slot_hint).collect()
    };
    let (a, b) = (fx.partition.units.slot("A"), fx.partition.units.slot("B"));
    assert_eq!(hints(&fx), [a, b], "each hint names the other unit's slot");
    fx.apply_batch(&batch).unwrap();
    let consumed = |serial| fx.store.unit_state(serial).unwrap().unwrap().consumed_wh;
    assert_eq!((consumed("A"), consumed("B")), (10, 30));
    assert_eq!(hints(&fx), [b, a], "corrected in the directory");
}

#[test]
fn usage_drains_the_balance_switches_off_below_the_limit_and_a_payment_restores() {
    let mut fx = Fixture::new(&["A"]);
    fx.open("A", usage(dec!(0.5), dec!(-1)), AccountSetup::default());
    assert_eq!(fx.commands(), [(1, LoadState::On, Reason::CreditRestored)]);
    fx.pay("A", dec!(1), "MP-1").unwrap();
    assert_eq!(fx.commands(), [], "already on");
    let at = "2026-06-01T11:00:00Z";
    // Three readings of 1 kWh at 0.5 each: 1 → -0.5, still above the limit of -1; then
    // 1.001 kWh → -1.0005, below it: off.
    let batch = [
        event("A", at, reading(1, 0, 0)),
        event("A", at, reading(2, 3600, 1000)),
        event("A", at, reading(3, 7200, 2000)),
        event("A", at, reading(4, 10800, 3000)),
        event("A", at, reading(4, 10800, 3000)),
    ];
    fx.apply_batch(&batch).unwrap();
    assert_eq!(fx.balance("A"), dec!(-0.5));
    assert_eq!(fx.commands(), []);
    fx.apply_batch(&[event("A", at, reading(5, 14400, 4001))])
        .unwrap();
    assert_eq!(fx.balance("A"), dec!(-1.0005));
    assert_eq!(
        fx.commands(),
        [(2, LoadState::Off, Reason::CreditExhausted)]
    );
    fx.pay("A", dec!(0.0005), "MP-2").unwrap();
    assert_eq!(fx.balance("A"), dec!(-1));
    assert_eq!(fx.commands(), [(3, LoadState::On, Reason::CreditRestored)]);
    fx.assert_stored_matches_ledger("A");
    use EntryKind::{Payment as P, UsageCharge as U};
    assert_eq!(fx.stored_kinds("A"), [P, U, U, U, U, P]);
    let desired = fx.store.unit_state("A").unwrap().unwrap().desired.unwrap();
    assert_eq!(desired.cmd_id, 3);
}

#[test]
fn a_payment_reference_is_one_payment_per_organisation() {
    let mut fx = Fixture::new(&["A", "B"]);
    fx.open("A", usage(dec!(1), dec!(0)), AccountSetup::default());
    fx.open("B", usage(dec!(1), dec!(0)), AccountSetup::default());
    let first = fx.pay("A", dec!(5), "MP-1").unwrap();
    assert!(!first.duplicate);
    let again = fx.pay("A", dec!(5), "MP-1").unwrap();
    assert!(again.duplicate);
    assert_eq!(
        (again.ledger_seq, &again.entry),
        (first.ledger_seq, &first.entry)
    );
    assert_eq!(fx.balance("A"), dec!(5));
    assert!(matches!(
        fx.pay("A", dec!(6), "MP-1"),
        Err(EngineError::ReferenceReused(_))
    ));
    assert!(matches!(
        fx.pay("B", dec!(5), "MP-1"),
        Err(EngineError::ReferenceReused(_))
    ));
    assert_eq!(fx.balance("B"), dec!(0));
    assert!(matches!(
        fx.pay("B", dec!(-5), "MP-9"),
        Err(EngineError::Payment(crate::account::PaymentError::Amount(
            _
        )))
    ));
    assert!(matches!(
        fx.pay("nobody", dec!(1), "MP-3"),
        Err(EngineError::UnitNotFound(_))
    ));
    fx.restart();
    assert!(
        fx.pay("A", dec!(5), "MP-1").unwrap().duplicate,
        "the index is durable"
    );
    assert_eq!(fx.store.ledger("A").unwrap().len(), 1);
    fx.assert_stored_matches_ledger("A");
    fx.assert_stored_matches_ledger("B");
}

#[test]
fn a_reversal_is_its_own_entry_and_happens_once() {
    let mut fx = Fixture::new(&["A"]);
    fx.open("A", usage(dec!(1), dec!(0)), AccountSetup::default());
    fx.pay("A", dec!(5), "MP-1").unwrap();
    fx.commands();
    let reversal = Reversal {
        reason: "charge-back".into(),
        entered_by: "ops".into(),
    };
    let reverse = |fx: &mut Fixture, provider_ref: &str| {
        let movement = Movement::Reversal {
            provider_ref: provider_ref.into(),
            reversal: reversal.clone(),
        };
        fx.partition.record("A", movement)
    };
    let receipt = reverse(&mut fx, "MP-1").unwrap();
    assert_eq!(
        (receipt.ledger_seq, receipt.entry.kind, receipt.entry.amount),
        (1, EntryKind::Reversal, dec!(-5))
    );
    assert_eq!(fx.balance("A"), dec!(0));
    assert!(matches!(
        reverse(&mut fx, "MP-1"),
        Err(EngineError::Reversal(
            crate::account::ReversalError::AlreadyReversed
        ))
    ));
    assert!(matches!(
        reverse(&mut fx, "MP-404"),
        Err(EngineError::PaymentNotFound(_))
    ));
    assert_eq!(fx.commands(), [], "limit 0 and balance 0: still on");
    let adjustment = Adjustment {
        amount: dec!(-0.01),
        reference: "ADJ-1".into(),
        reason: "meter fault".into(),
        entered_by: "ops".into(),
    };
    fx.partition
        .record("A", Movement::Adjustment(adjustment.clone()))
        .unwrap();
    assert!(
        fx.partition
            .record("A", Movement::Adjustment(adjustment))
            .unwrap()
            .duplicate
    );
    assert_eq!(
        fx.commands(),
        [(2, LoadState::Off, Reason::CreditExhausted)]
    );
    fx.assert_stored_matches_ledger("A");
}

#[test]
fn revenue_counts_payments_net_of_reversals_in_the_period_once() {
    let mut fx = Fixture::new(&["A", "B"]);
    fx.open("A", usage(dec!(1), dec!(0)), AccountSetup::default());
    fx.open("B", usage(dec!(1), dec!(0)), AccountSetup::default());
    fx.pay("A", dec!(5), "MP-1").unwrap();
    fx.pay("A", dec!(5), "MP-1").unwrap();
    fx.clock.set(utc("2026-06-02T10:00:00Z"));
    fx.pay("B", dec!(2.25), "MP-2").unwrap();
    let reversal = Movement::Reversal {
        provider_ref: "MP-1".into(),
        reversal: Reversal {
            reason: "charge-back".into(),
            entered_by: "ops".into(),
        },
    };
    fx.partition.record("A", reversal).unwrap();
    let ms = |at: &str| utc(at).timestamp_millis();
    let revenue = |from: &str, to: &str| fx.store.revenue("org-1", ms(from), ms(to)).unwrap();
    assert_eq!(
        revenue("2026-06-01T00:00:00Z", "2026-06-02T00:00:00Z"),
        dec!(5)
    );
    assert_eq!(
        revenue("2026-06-02T00:00:00Z", "2026-06-03T00:00:00Z"),
        dec!(-2.75)
    );
    assert_eq!(
        revenue("2026-06-01T00:00:00Z", "2026-06-03T00:00:00Z"),
        dec!(2.25)
    );
    assert_eq!(
        revenue("2026-06-03T00:00:00Z", "2026-06-01T00:00:00Z"),
        dec!(0)
    );
    let other_org = fx.store.revenue("org-2", 0, i64::MAX).unwrap();
    assert_eq!(other_org, dec!(0));
}

#[test]
fn offline_disable_holds_the_load_off_whatever_the_credit_until_enabled() {
    let mut fx = Fixture::new(&["A"]);
    fx.open("A", usage(dec!(1), dec!(0)), AccountSetup::default());
    assert_eq!(fx.commands(), [(1, LoadState::On, Reason::CreditRestored)]);
    let state = fx.partition.set_offline_disabled("A", true).unwrap();
    assert!(state.offline_disabled);
    assert_eq!(fx.commands(), [(2, LoadState::Off, Reason::OfflineDisable)]);
    fx.partition.set_offline_disabled("A", true).unwrap();
    assert_eq!(fx.commands(), [], "already held");
    // Credit runs out and comes back while held: the rules decide, nothing is sent.
    fx.apply_batch(&[
        event("A", "2026-06-01T11:00:00Z", reading(1, 0, 0)),
        event("A", "2026-06-01T11:00:00Z", reading(2, 3600, 500)),
    ])
    .unwrap();
    fx.pay("A", dec!(1), "MP-1").unwrap();
    assert_eq!(fx.commands(), []);
    assert!(matches!(
        fx.partition.set_load("A", LoadState::On, Reason::Manual),
        Err(EngineError::OfflineDisabled(_))
    ));
    fx.restart();
    assert!(fx.store.unit_state("A").unwrap().unwrap().offline_disabled);
    fx.partition.set_offline_disabled("A", false).unwrap();
    assert_eq!(fx.commands(), [(3, LoadState::On, Reason::CreditRestored)]);
    // Enabled again while the balance is below the limit: the rules' OFF is sent.
    fx.partition.set_offline_disabled("A", true).unwrap();
    fx.apply_batch(&[event("A", "2026-06-01T12:00:00Z", reading(3, 7200, 1100))])
        .unwrap();
    fx.partition.set_offline_disabled("A", false).unwrap();
    assert_eq!(
        fx.commands(),
        [
            (4, LoadState::Off, Reason::OfflineDisable),
            (5, LoadState::Off, Reason::CreditExhausted)
        ]
    );
    fx.assert_stored_matches_ledger("A");
}

#[test]
fn the_org_summary_counts_presence_switch_offs_holds_and_days_below_the_limit() {
    let mut fx = Fixture::new(&["A", "B", "C", "D"]);
    for serial in ["A", "B", "C"] {
        fx.open(serial, usage(dec!(1), dec!(0)), AccountSetup::default());
    }
    let opening = AccountOpening {
        org: "org-2".into(),
        tz: Tz::Africa__Nairobi,
        terms: usage(dec!(1), dec!(0)),
        setup: AccountSetup::default(),
        time_mode: crate::keypad::TimeMode::AddTime,
    };
    fx.partition.open_account("D", opening).unwrap();
    let at = "2026-06-01T10:00:00Z";
    fx.apply_batch(&[
        event("A", at, EventBody::Status { online: true }),
        event("B", at, reading(1, 0, 0)),
        event("B", at, reading(2, 3600, 100)),
    ])
    .unwrap();
    fx.partition.set_offline_disabled("C", true).unwrap();
    let summary = |fx: &Fixture| fx.partition.org_summary("org-1");
    let expected = OrgSummary {
        accounts: 3,
        online: 1,
        offline: 2,
        switched_off_for_credit: 1,
        offline_disabled: 1,
        below_limit_7d: 0,
        below_limit_30d: 0,
    };
    assert_eq!(summary(&fx), expected);
    fx.clock.set(utc("2026-06-08T10:00:00Z"));
    assert_eq!(summary(&fx).below_limit_7d, 1);
    fx.restart();
    fx.clock.set(utc("2026-07-01T10:00:00Z"));
    assert_eq!(
        (summary(&fx).below_limit_7d, summary(&fx).below_limit_30d),
        (1, 1)
    );
    fx.pay("B", dec!(0.1), "MP-1").unwrap();
    assert_eq!(
        (
            summary(&fx).below_limit_7d,
            summary(&fx).switched_off_for_credit
        ),
        (0, 0),
        "back at the limit"
    );
    assert_eq!(fx.partition.org_summary("org-2").accounts, 1);
}

#[test]
fn instalments_fall_due_on_the_timer_and_missed_ones_are_charged_once_after_a_restart() {
    let mut fx = Fixture::new(&["A"]);
    let mut terms = PlanTerms::new(Tariff::Instalment {
        amount_per_period: dec!(1),
        period: Period::Weekly,
    });
    terms.auto_switch_off = true;
    fx.open("A", terms, AccountSetup::default());
    fx.clock.set(utc("2026-06-01T10:00:00+03:00"));
    fx.pay("A", dec!(2), "MP-1").unwrap();
    fx.clock.set(utc("2026-06-08T09:59:59+03:00"));
    assert!(!fx.partition.instalments_due());
    assert_eq!(fx.partition.apply_due_instalments(100).unwrap(), 0);
    fx.clock.set(utc("2026-06-08T10:00:00+03:00"));
    assert!(fx.partition.instalments_due());
    assert_eq!(fx.partition.apply_due_instalments(100).unwrap(), 1);
    assert!(
        !fx.partition.instalments_due(),
        "the next falls due on 15 June"
    );
    assert_eq!(fx.balance("A"), dec!(1));
    fx.commands();
    // Down from 9 June to 23 June: 15 and 22 June are missed, then charged once at start-up.
    fx.clock.set(utc("2026-06-23T00:00:00+03:00"));
    fx.restart();
    assert_eq!(fx.partition.apply_due_instalments(100).unwrap(), 1);
    assert_eq!(fx.balance("A"), dec!(-1));
    assert_eq!(
        fx.commands(),
        [(2, LoadState::Off, Reason::CreditExhausted)]
    );
    fx.restart();
    assert_eq!(fx.partition.apply_due_instalments(100).unwrap(), 0);
    assert_eq!(fx.balance("A"), dec!(-1));
    let due: Vec<DateTime<Utc>> = fx
        .store
        .ledger("A")
        .unwrap()
        .into_iter()
        .filter(|(_, entry)| entry.kind == EntryKind::InstalmentCharge)
        .map(|(_, entry)| entry.at)
        .collect();
    assert_eq!(
        due,
        [
            utc("2026-06-08T10:00:00+03:00"),
            utc("2026-06-15T10:00:00+03:00"),
            utc("2026-06-22T10:00:00+03:00")
        ]
    );
    fx.assert_stored_matches_ledger("A");
}

#[test]
fn completing_the_plan_switches_on_for_good_and_stops_charges() {
    let mut fx = Fixture::new(&["A"]);
    let setup = AccountSetup {
        down_payment: dec!(10),
        total_system_cost: Some(dec!(20)),
        ..AccountSetup::default()
    };
    fx.open("A", usage(dec!(1), dec!(0)), setup);
    let at = "2026-06-01T11:00:00Z";
    fx.apply_batch(&[
        event("A", at, reading(1, 0, 0)),
        event("A", at, reading(2, 3600, 500)),
    ])
    .unwrap();
    assert_eq!(
        fx.commands(),
        [
            (1, LoadState::On, Reason::CreditRestored),
            (2, LoadState::Off, Reason::CreditExhausted)
        ]
    );
    fx.pay("A", dec!(10), "MP-1").unwrap();
    assert_eq!(fx.commands(), [(3, LoadState::On, Reason::PlanCompleted)]);
    let later = "2026-06-02T11:00:00Z";
    fx.apply_batch(&[event("A", later, reading(3, 7200, 1500))])
        .unwrap();
    assert_eq!(
        fx.balance("A"),
        dec!(9.5),
        "no usage charged after completion"
    );
    let record = fx
        .partition
        .change_account("A", AccountChange::NegativeChargeLimit(dec!(-5)))
        .unwrap();
    assert!(matches!(
        record.account.plan_state(),
        crate::account::PlanState::Completed { .. }
    ));
    assert_eq!(fx.commands(), []);
    fx.assert_stored_matches_ledger("A");
}

#[test]
fn counter_resets_and_implausible_readings_are_recorded_as_unit_events() {
    let mut fx = Fixture::new(&["A"]);
    fx.open("A", usage(dec!(1), dec!(-100)), AccountSetup::default());
    let at = "2026-06-01T11:00:00Z";
    let reset = EventBody::Telemetry(Telemetry {
        seq: 1,
        ts: 7200,
        load_wh: 5,
        boot: 2,
        ..Telemetry::default()
    });
    fx.apply_batch(&[
        event("A", at, reading(1, 0, 100)),
        event("A", at, reading(2, 60, 5000)),
        event("A", at, reset),
    ])
    .unwrap();
    let kinds: Vec<UnitEventKind> = fx
        .store
        .unit_events("A")
        .unwrap()
        .into_iter()
        .map(|(_, event)| event.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            UnitEventKind::HeldForReview { wh: 4900 },
            UnitEventKind::CounterReset
        ]
    );
    assert_eq!(fx.balance("A"), dec!(0), "nothing charged for either");
    assert_eq!(
        fx.store.unit_state("A").unwrap().unwrap().events_recorded,
        2
    );
}

#[test]
fn a_command_is_confirmed_only_by_an_ack_of_its_id_and_state() {
    let mut fx = Fixture::new(&["A"]);
    let off = fx
        .partition
        .set_load("A", LoadState::Off, Reason::Manual)
        .unwrap();
    assert_eq!((off.cmd_id, off.load()), (1, LoadState::Off));
    assert_eq!(
        fx.partition
            .set_load("A", LoadState::Off, Reason::Manual)
            .unwrap(),
        off,
        "same state: no new command"
    );
    assert_eq!(
        fx.partition.unacknowledged().count(),
        0,
        "not re-sent while offline: its retained slot serves it when it connects"
    );
    let at = "2026-06-01T11:00:00Z";
    fx.apply_batch(&[event("A", at, EventBody::Status { online: true })])
        .unwrap();
    assert_eq!(fx.partition.unacknowledged().count(), 1);
    let wrong = CommandAck {
        cmd_id: 1,
        load: LoadState::On as i32,
        ..CommandAck::default()
    };
    fx.apply_batch(&[event("A", at, EventBody::Ack(wrong))])
        .unwrap();
    assert_eq!(fx.partition.unacknowledged().count(), 1);
    let right = CommandAck {
        cmd_id: 1,
        load: LoadState::Off as i32,
        ..CommandAck::default()
    };
    fx.apply_batch(&[event("A", at, EventBody::Ack(right))])
        .unwrap();
    assert_eq!(fx.partition.unacknowledged().count(), 0);
    assert_eq!(
        fx.store.unit_state("A").unwrap().unwrap().confirmed,
        Some((1, LoadState::Off as i32))
    );
    assert_eq!(
        fx.partition
            .set_load("A", LoadState::On, Reason::Manual)
            .unwrap()
            .cmd_id,
        2
    );
    assert!(matches!(
        fx.partition.set_load("B", LoadState::On, Reason::Manual),
        Err(EngineError::UnitNotFound(_))
    ));
}

fn instalments(amount_per_period: Decimal) -> PlanTerms {
    let mut terms = PlanTerms::new(Tariff::Instalment {
        amount_per_period,
        period: Period::Weekly,
    });
    terms.auto_switch_off = true;
    terms
}

#[test]
fn a_closed_account_keeps_its_ledger_and_references_and_the_unit_opens_a_fresh_one() {
    let mut fx = Fixture::new(&["A"]);
    fx.open("A", usage(dec!(1), dec!(-10)), AccountSetup::default());
    fx.pay("A", dec!(5), "MP-1").unwrap();
    let at = "2026-06-01T11:00:00Z";
    fx.apply_batch(&[
        event("A", at, reading(1, 0, 0)),
        event("A", at, reading(2, 3600, 1000)),
    ])
    .unwrap();
    let old_ledger = fx.store.ledger("A").unwrap();
    fx.commands();

    let closed = fx.partition.close_account("A").unwrap();
    assert_eq!(
        closed.record.account.balance(),
        dec!(4),
        "final balance kept"
    );
    assert_eq!(closed.closed_at_ms, fx.clock.now().timestamp_millis());
    assert_eq!(fx.partition.unit("A").unwrap().account, None);
    assert_eq!(fx.store.account("A").unwrap(), None);
    assert_eq!(fx.commands(), [], "the load stays as last commanded");
    assert!(matches!(
        fx.partition.close_account("A"),
        Err(EngineError::AccountNotFound(_))
    ));
    assert!(matches!(
        fx.pay("A", dec!(1), "MP-2"),
        Err(EngineError::AccountNotFound(_))
    ));
    fx.apply_batch(&[event("A", at, reading(3, 7200, 2000))])
        .unwrap();
    assert_eq!(fx.store.unit_state("A").unwrap().unwrap().consumed_wh, 2000);

    fx.restart();
    let opened = fx.open("A", usage(dec!(1), dec!(-10)), AccountSetup::default());
    assert_eq!((opened.account.balance(), opened.ledger_len), (dec!(0), 0));
    assert!(fx.store.ledger("A").unwrap().is_empty(), "a fresh ledger");
    assert!(matches!(
        fx.pay("A", dec!(5), "MP-1"),
        Err(EngineError::ReferenceReused(_))
    ));
    let reversal = Movement::Reversal {
        provider_ref: "MP-1".into(),
        reversal: Reversal {
            reason: "charge-back".into(),
            entered_by: "ops".into(),
        },
    };
    assert!(matches!(
        fx.partition.record("A", reversal),
        Err(EngineError::PaymentOnClosedAccount(_))
    ));
    let receipt = fx.pay("A", dec!(2), "MP-2").unwrap();
    assert_eq!((receipt.ledger_seq, fx.balance("A")), (0, dec!(2)));
    fx.apply_batch(&[event("A", at, reading(4, 10800, 3000))])
        .unwrap();
    assert_eq!(fx.balance("A"), dec!(1), "only the new account is charged");

    fx.restart();
    fx.assert_stored_matches_ledger("A");
    let stored = fx.store.closed_accounts("A").unwrap();
    assert_eq!(stored, std::slice::from_ref(&closed));
    let closed_ledger = fx.store.account_ledger("A", &stored[0].record).unwrap();
    assert_eq!(closed_ledger, old_ledger, "nothing charged after closing");
    stored[0]
        .record
        .account
        .check_ledger(closed_ledger.iter().map(|(_, entry)| entry))
        .unwrap();
    let again = fx.partition.close_account("A").unwrap();
    assert_eq!(
        again.closed_at_ms,
        closed.closed_at_ms + 1,
        "closed in the same millisecond: the key still increases"
    );
    assert_eq!(fx.store.closed_accounts("A").unwrap(), [closed, again]);
}

#[test]
fn instalments_of_a_closed_account_stop_and_a_new_account_keeps_its_own_schedule() {
    let mut fx = Fixture::new(&["A"]);
    fx.open("A", instalments(dec!(1)), AccountSetup::default());
    fx.clock.set(utc("2026-06-01T10:00:00+03:00"));
    fx.pay("A", dec!(2), "MP-1").unwrap();
    fx.clock.set(utc("2026-06-08T10:00:00+03:00"));
    assert_eq!(fx.partition.apply_due_instalments(100).unwrap(), 1);
    let closed = fx.partition.close_account("A").unwrap();
    fx.clock.set(utc("2026-06-15T10:00:00+03:00"));
    assert_eq!(fx.partition.apply_due_instalments(100).unwrap(), 0);
    fx.restart();
    assert_eq!(fx.partition.apply_due_instalments(100).unwrap(), 0);
    let charged = fx.store.account_ledger("A", &closed.record).unwrap();
    assert_eq!(
        charged.len(),
        2,
        "the payment and one instalment, none after closing"
    );

    fx.open("A", instalments(dec!(3)), AccountSetup::default());
    fx.pay("A", dec!(10), "MP-2").unwrap();
    fx.clock.set(utc("2026-06-22T10:00:00+03:00"));
    assert_eq!(fx.partition.apply_due_instalments(100).unwrap(), 1);
    assert_eq!(fx.balance("A"), dec!(7), "one instalment of the new plan");
    fx.assert_stored_matches_ledger("A");
}

#[test]
fn closing_an_account_keeps_the_offline_disable_hold() {
    let mut fx = Fixture::new(&["A"]);
    fx.open("A", usage(dec!(1), dec!(0)), AccountSetup::default());
    fx.partition.set_offline_disabled("A", true).unwrap();
    assert_eq!(
        fx.commands(),
        [
            (1, LoadState::On, Reason::CreditRestored),
            (2, LoadState::Off, Reason::OfflineDisable)
        ]
    );
    fx.partition.close_account("A").unwrap();
    fx.restart();
    assert!(fx.store.unit_state("A").unwrap().unwrap().offline_disabled);
    fx.open("A", usage(dec!(1), dec!(0)), AccountSetup::default());
    assert_eq!(fx.commands(), [], "still held");
    fx.partition.set_offline_disabled("A", false).unwrap();
    assert_eq!(fx.commands(), [(3, LoadState::On, Reason::CreditRestored)]);
    assert!(matches!(
        fx.partition.close_account("ghost"),
        Err(EngineError::UnitNotFound(_))
    ));
}

#[test]
fn partition_ownership_is_stable_and_covers_every_partition() {
    assert_eq!(partition_of("SL-000001", 8), partition_of("SL-000001", 8));
    let mut seen = [false; 8];
    for i in 0..200 {
        seen[partition_of(&format!("SL-{i:06}"), 8)] = true;
    }
    assert!(seen.iter().all(|hit| *hit));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

    /// Readings delivered in any order with redeliveries, with the partition restarted from
    /// the file part-way, charge exactly the counter increase from the first reading applied to
    /// the newest one, once, and the stored balance stays the sum of the stored ledger.
    #[test]
    fn readings_in_any_order_across_a_restart_are_charged_exactly_once(
        steps in proptest::collection::vec(0u64..40, 2..30),
        order in proptest::collection::vec(proptest::prelude::any::<proptest::sample::Index>(), 1..60),
        restart in proptest::prelude::any::<proptest::sample::Index>(),
    ) {
        let mut fx = Fixture::new(&["A"]);
        fx.open("A", usage(dec!(0.37), dec!(-1000)), AccountSetup::default());
        let mut counter = 0;
        let readings: Vec<(u64, u64)> = steps
            .iter()
            .enumerate()
            .map(|(i, step)| {
                counter += step;
                (i as u64 + 1, counter)
            })
            .collect();
        let restart_at = restart.index(order.len());
        // (seq, cumulative Wh) of the first reading applied and of the newest one.
        let mut first: Option<(u64, u64)> = None;
        let mut newest: Option<(u64, u64)> = None;
        for (i, pick) in order.iter().enumerate() {
            if i == restart_at {
                fx.restart();
            }
            let (seq, load_wh) = *pick.get(&readings);
            let body = reading(seq, seq as i64 * 3600, load_wh);
            fx.apply_batch(&[event("A", "2026-06-01T11:00:00Z", body)]).unwrap();
            first.get_or_insert((seq, load_wh));
            if newest.is_none_or(|(newest_seq, _)| seq > newest_seq) {
                newest = Some((seq, load_wh));
            }
        }
        let charged_wh = newest.unwrap().1 - first.unwrap().1;
        let ledger = fx.store.ledger("A").unwrap();
        let usage: Decimal = ledger.iter().map(|(_, entry)| entry.amount).sum();
        proptest::prop_assert_eq!(usage, -Decimal::from(charged_wh) * dec!(0.37) / dec!(1000));
        let mut readings_charged: Vec<_> = ledger.iter().filter_map(|(_, entry)| entry.reading_id()).collect();
        let charged_count = readings_charged.len();
        readings_charged.dedup();
        proptest::prop_assert_eq!(readings_charged.len(), charged_count);
        fx.assert_stored_matches_ledger("A");
    }
}
