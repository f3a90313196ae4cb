//! Keypad units against a real redb file: payments buy days as tokens a unit accepts, a
//! repeated payment gets the same tokens, counts survive restarts, completion disables PAYG.

use super::*;
use crate::keypad::{CommMode, KeypadSetup, TimeMode, TokenReason};
use crate::openpaygo::{Decoder, TokenFormat, TokenKey, TokenKind};

const KEY_HEX: &str = "a29ab82edc5fbbc41ec9530f6dac86b1";
const STARTING_CODE: u32 = 123_456_789;

impl Fixture {
    /// Records unit `serial` as a keypad unit (as registration does) with the test key.
    fn make_keypad(&self, serial: &str, mode: CommMode) {
        let setup = KeypadSetup {
            mode,
            key: TokenKey::from_hex(KEY_HEX).unwrap(),
            starting_code: STARTING_CODE,
            format: TokenFormat::STANDARD,
            initial_count: 1,
        };
        let txn = self.store.begin_write().unwrap();
        self.store.put_keypad_in(&txn, serial, &setup).unwrap();
        txn.commit().unwrap();
    }

    fn open_keypad(&mut self, serial: &str, terms: PlanTerms, setup: AccountSetup, mode: TimeMode) {
        let opening = AccountOpening {
            org: "org-1".into(),
            tz: Tz::Africa__Nairobi,
            terms,
            setup,
            time_mode: mode,
        };
        self.partition.open_account(serial, opening).unwrap();
    }

    /// A keypad-only unit on an ADD_TIME plan of `per_week` a week with `setup`.
    fn keypad_unit(&mut self, serial: &str, per_week: Decimal, setup: AccountSetup) {
        self.make_keypad(serial, CommMode::Keypad);
        self.open_keypad(serial, instalments(per_week), setup, TimeMode::AddTime);
    }

    fn keypad_billing(&self, serial: &str) -> crate::keypad::KeypadBilling {
        let unit = self.partition.unit(serial).unwrap();
        unit.account.as_ref().unwrap().keypad.unwrap()
    }
}

/// The unit's side: what its firmware does with typed codes.
fn unit_decoder() -> Decoder {
    Decoder::new(
        TokenKey::from_hex(KEY_HEX).unwrap(),
        STARTING_CODE,
        false,
        1,
        Vec::new(),
    )
}

#[test]
fn a_payment_buys_days_as_a_token_the_unit_accepts_and_a_repeat_gets_the_same_token() {
    let mut fx = Fixture::new(&["K"]);
    fx.keypad_unit("K", dec!(1), AccountSetup::default());
    let mut unit = unit_decoder();

    let receipt = fx.pay("K", dec!(2), "mpesa-1").unwrap();
    assert_eq!(receipt.tokens.len(), 1);
    let token = &receipt.tokens[0];
    assert_eq!(
        (token.kind, token.value, token.count),
        (TokenKind::AddTime, 14, 2)
    );
    assert_eq!(
        token.reason,
        TokenReason::Payment {
            provider_ref: "mpesa-1".into()
        }
    );
    assert_eq!(token.issued_by, "till-7");
    let typed = unit.enter(&token.code).unwrap();
    assert_eq!((typed.kind, typed.value), (TokenKind::AddTime, 14));
    // The money became time: the balance is what is not yet a whole day.
    assert_eq!(fx.balance("K"), dec!(0));
    assert_eq!(
        fx.stored_kinds("K"),
        [EntryKind::Payment, EntryKind::TokenTime]
    );

    let again = fx.pay("K", dec!(2), "mpesa-1").unwrap();
    assert!(again.duplicate);
    assert_eq!(again.tokens, receipt.tokens);
    assert!(unit.enter(&token.code).is_err(), "a used token is refused");

    // Instalments are never charged: the unit counts its days down itself.
    fx.clock.set(utc("2026-09-01T10:00:00Z"));
    assert_eq!(fx.partition.apply_due_instalments(100).unwrap(), 0);

    // The count is durable: after a restart the next token is the next count.
    fx.restart();
    let next = fx.pay("K", dec!(0.5), "mpesa-2").unwrap();
    assert_eq!(next.tokens[0].count, 4);
    assert_eq!(next.tokens[0].value, 3);
    assert_eq!(unit.enter(&next.tokens[0].code).unwrap().value, 3);
    assert_eq!(fx.store.tokens("K").unwrap().len(), 2);
    assert_eq!(fx.keypad_billing("K").days_credited, 17);
    fx.assert_stored_matches_ledger("K");
}

#[test]
fn small_payments_wait_on_the_balance_until_they_buy_a_whole_day() {
    let mut fx = Fixture::new(&["K"]);
    fx.keypad_unit("K", dec!(7), AccountSetup::default());
    let first = fx.pay("K", dec!(0.5), "p1").unwrap();
    assert!(first.tokens.is_empty());
    assert_eq!(fx.balance("K"), dec!(0.5));
    let second = fx.pay("K", dec!(0.5), "p2").unwrap();
    assert_eq!(second.tokens[0].value, 1);
    assert_eq!(fx.balance("K"), dec!(0));
    fx.assert_stored_matches_ledger("K");
}

#[test]
fn set_time_plans_send_the_days_left_and_more_days_than_a_token_carries_are_split() {
    let mut fx = Fixture::new(&["S", "A"]);
    fx.make_keypad("S", CommMode::Keypad);
    fx.make_keypad("A", CommMode::Both);
    fx.open_keypad(
        "S",
        instalments(dec!(1)),
        AccountSetup::default(),
        TimeMode::SetTime,
    );
    fx.open_keypad(
        "A",
        instalments(dec!(1)),
        AccountSetup::default(),
        TimeMode::AddTime,
    );
    let first = fx.pay("S", dec!(1), "s1").unwrap();
    assert_eq!(
        (first.tokens[0].kind, first.tokens[0].value),
        (TokenKind::SetTime, 7)
    );
    assert_eq!(
        first.tokens[0].count % 2,
        1,
        "set-time tokens take odd counts"
    );
    fx.clock.set(utc("2026-06-03T10:00:00Z"));
    let second = fx.pay("S", dec!(1), "s2").unwrap();
    assert_eq!(second.tokens[0].value, 12, "5 days left plus 7 bought");

    // 150 weeks are 1050 days: a standard token carries at most 995.
    let big = fx.pay("A", dec!(150), "a1").unwrap();
    let values: Vec<u32> = big.tokens.iter().map(|token| token.value).collect();
    assert_eq!(values, [995, 55]);
    let mut unit = unit_decoder();
    let days: u32 = big
        .tokens
        .iter()
        .map(|token| unit.enter(&token.code).unwrap().value)
        .sum();
    assert_eq!(days, 1050);
}

#[test]
fn completing_the_plan_issues_disable_payg_once() {
    let mut fx = Fixture::new(&["K"]);
    let setup = AccountSetup {
        down_payment: dec!(10),
        total_system_cost: Some(dec!(13)),
        ..AccountSetup::default()
    };
    fx.keypad_unit("K", dec!(1), setup);
    let mut unit = unit_decoder();
    let days = fx.pay("K", dec!(2), "p1").unwrap();
    unit.enter(&days.tokens[0].code).unwrap();
    let last = fx.pay("K", dec!(1), "p2").unwrap();
    assert_eq!(last.tokens.len(), 1);
    assert_eq!(last.tokens[0].kind, TokenKind::DisablePayg);
    assert_eq!(last.tokens[0].reason, TokenReason::PlanCompleted);
    assert_eq!(
        unit.enter(&last.tokens[0].code).unwrap().kind,
        TokenKind::DisablePayg
    );
    let after = fx.pay("K", dec!(1), "p3").unwrap();
    assert!(after.tokens.is_empty(), "PAYG is disabled once");
    assert!(fx.keypad_billing("K").payg_disabled);
}

#[test]
fn a_down_payment_covering_the_cost_disables_payg_at_opening() {
    let mut fx = Fixture::new(&["K"]);
    let setup = AccountSetup {
        down_payment: dec!(10),
        total_system_cost: Some(dec!(10)),
        ..AccountSetup::default()
    };
    fx.keypad_unit("K", dec!(1), setup);
    let tokens = fx.store.tokens("K").unwrap();
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].kind, TokenKind::DisablePayg);
    assert_eq!(tokens[0].issued_by, "platform");
}

#[test]
fn counter_sync_takes_the_next_odd_count_and_only_keypad_units_take_tokens() {
    let mut fx = Fixture::new(&["K", "C"]);
    fx.keypad_unit("K", dec!(1), AccountSetup::default());
    fx.pay("K", dec!(1), "p1").unwrap();
    let sync = fx.partition.counter_sync("K", "admin@example.org").unwrap();
    assert_eq!((sync.kind, sync.count), (TokenKind::CounterSync, 3));
    assert_eq!(sync.issued_by, "admin@example.org");
    assert!(matches!(
        fx.partition.counter_sync("C", "admin"),
        Err(EngineError::NotKeypad(_))
    ));
    let usage_opening = AccountOpening {
        org: "org-1".into(),
        tz: Tz::Africa__Nairobi,
        terms: usage(dec!(1), dec!(0)),
        setup: AccountSetup::default(),
        time_mode: TimeMode::AddTime,
    };
    fx.make_keypad("C", CommMode::Keypad);
    assert!(matches!(
        fx.partition.open_account("C", usage_opening),
        Err(EngineError::KeypadNeedsInstalmentPlan(_))
    ));
}

#[test]
fn the_database_file_never_holds_the_token_key() {
    let fx = Fixture::new(&["K"]);
    fx.make_keypad("K", CommMode::Keypad);
    let path = fx._dir.path().join("db.redb");
    let bytes = std::fs::read(path).unwrap();
    let key = hex::decode(KEY_HEX).unwrap();
    assert!(!bytes.windows(key.len()).any(|window| window == key));
    assert!(
        !bytes
            .windows(KEY_HEX.len())
            .any(|window| window == KEY_HEX.as_bytes())
    );
    let config = fx.store.keypad_config("K").unwrap().unwrap();
    assert_eq!(fx.store.token_key("K", &config).unwrap().bytes(), &key[..]);
}
