//! The product's core loop against the running server: a customer pays, the unit reports its
//! counters over MQTT, the balance falls with each reading (a redelivered reading is not charged
//! again), the load is switched OFF when credit runs out, and switched back ON by a payment.

use rust_decimal::Decimal;
use sunledger_billing::account::Payment;
use sunledger_billing::account_record::{Movement, Receipt};
use sunledger_billing::ledger::{EntryKind, PaymentChannel};
use sunledger_proto::device::{LoadState, Reason};
use sunledger_tests::api::acknowledge_command;
use sunledger_tests::{Device, Seen, TestServer};

const SERIAL: &str = "SL-PAY-1";

fn pay(server: &TestServer, cents: i64, provider_ref: &str) -> Receipt {
    let payment = Payment {
        amount: Decimal::new(cents, 2),
        channel: PaymentChannel::MobileMoney,
        provider_ref: provider_ref.into(),
        entered_by: "mpesa-callback".into(),
    };
    tokio::task::block_in_place(|| {
        server
            .server
            .engine()
            .record(SERIAL, Movement::Payment(payment))
    })
    .expect("payment recorded")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pay_consume_switch_off_pay_again_switch_on() {
    let server = TestServer::start().await;
    let secret = server.register(SERIAL);
    // 100 per kWh: each 10 Wh costs 1.00.
    server.open_usage_account(SERIAL, "org-e2e", Decimal::new(100, 0));

    let mut device = Device::connect(server.mqtt, SERIAL, &secret, None);
    device.expect_connected().await;
    device.subscribe_commands_of(SERIAL).await;
    assert!(matches!(device.next().await, Seen::Subscribed));
    let first = acknowledge_command(&mut device, LoadState::On, Reason::CreditRestored).await;

    let receipt = pay(&server, 150, "MP-0001");
    assert_eq!(receipt.account.account.balance(), Decimal::new(150, 2));
    assert!(
        pay(&server, 150, "MP-0001").duplicate,
        "same reference, one payment"
    );

    device.report(1, 0).await;
    device.report(2, 10).await;
    server
        .wait_for_account(SERIAL, |record| {
            record.account.balance() == Decimal::new(50, 2)
        })
        .await;
    device.report(2, 10).await;
    device.report(3, 20).await;
    let off = acknowledge_command(&mut device, LoadState::Off, Reason::CreditExhausted).await;
    assert_eq!(off.cmd_id, first.cmd_id + 1);
    let record = server
        .wait_for_account(SERIAL, |record| record.ledger_len == 3)
        .await;
    assert_eq!(
        record.account.balance(),
        Decimal::new(-50, 2),
        "the redelivered reading 2 was not charged again"
    );

    let receipt = pay(&server, 100, "MP-0002");
    assert_eq!(receipt.account.account.balance(), Decimal::new(50, 2));
    let on = acknowledge_command(&mut device, LoadState::On, Reason::CreditRestored).await;
    assert_eq!(on.cmd_id, off.cmd_id + 1);
    server
        .wait_for_state(SERIAL, |state| {
            state.confirmed == Some((on.cmd_id, LoadState::On as i32))
        })
        .await;

    let ledger = server.server.store().ledger(SERIAL).expect("ledger");
    let kinds: Vec<EntryKind> = ledger.iter().map(|(_, entry)| entry.kind).collect();
    use EntryKind::{Payment as P, UsageCharge as U};
    assert_eq!(kinds, [P, U, U, P]);
    let reasons: Vec<String> = ledger
        .iter()
        .map(|(_, entry)| entry.reason.to_string())
        .collect();
    let (paid, used) = ("payment via MobileMoney", "10 Wh at 100 per kWh");
    assert_eq!(
        reasons,
        [paid, used, used, paid],
        "as read back from the file"
    );
    let stored = server.server.store().account(SERIAL).unwrap().unwrap();
    stored
        .account
        .check_ledger(ledger.iter().map(|(_, entry)| entry))
        .expect("balance is the sum of the ledger");
    server.stop().await;
}
