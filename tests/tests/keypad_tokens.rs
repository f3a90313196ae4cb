//! Keypad units end to end over gRPC: payments for a token unit return OpenPAYGO codes that a
//! unit's decoder accepts and that extend its credit exactly; a repeated payment returns the
//! same code; completing the plan yields DISABLE_PAYG; Admins can re-send and counter-sync,
//! audited; the key is never shown again and never stored in the clear.

use sunledger_billing::openpaygo::{Decoder, TokenKey, TokenKind};
use sunledger_proto::api::v1 as api;
use sunledger_tests::TestServer;
use sunledger_tests::api::{Org, assert_invalid, imei, install_with, payment};
use tonic::Code;

const KEY_HEX: &str = "bc41ec9530f6dac86b1a29ab82edc5fb";
const STARTING_CODE: u32 = 516_959_010;

fn keypad_setup() -> api::KeypadSetup {
    api::KeypadSetup {
        key: KEY_HEX.into(),
        starting_code: STARTING_CODE,
        ..Default::default()
    }
}

/// The unit's firmware: what it does with a typed code.
fn unit_firmware() -> Decoder {
    let key = TokenKey::from_hex(KEY_HEX).unwrap();
    Decoder::new(key, STARTING_CODE, false, 1, Vec::new())
}

/// Installs registered keypad unit `serial` for a customer with a phone, on a new plan of $1
/// a week with this down-payment and total system cost; returns the installation.
async fn install_keypad_unit(
    org: &Org,
    serial: &str,
    down_payment: &str,
    total_system_cost: &str,
) -> api::Installation {
    let plan = org
        .admin
        .plans()
        .create_plan(api::CreatePlanRequest {
            name: format!("Weekly keypad {serial}"),
            tariff: Some(api::create_plan_request::Tariff::Instalment(
                api::InstalmentTariff {
                    amount_per_period: "1".into(),
                    period: api::TariffPeriod::Weekly.into(),
                    token_time_mode: api::TokenTimeMode::AddTime.into(),
                },
            )),
            ..Default::default()
        })
        .await
        .expect("plan created")
        .into_inner();
    let customer = api::CustomerDetails {
        r#type: api::CustomerType::Consumer.into(),
        name: format!("Customer of {serial}"),
        phone: "0712 345678".into(),
        contact_preference: api::ContactPreference::Phone.into(),
        ..Default::default()
    };
    let choice = api::PlanChoice {
        plan_id: plan.id,
        down_payment: down_payment.into(),
        total_system_cost: total_system_cost.into(),
        ..Default::default()
    };
    install_with(&org.technician, serial, customer, choice).await
}

/// Registers keypad unit `serial` with the test key.
async fn register_keypad_unit(org: &Org, serial: &str) -> api::RegisterUnitResponse {
    org.technician
        .units()
        .register_unit(api::RegisterUnitRequest {
            serial: serial.into(),
            comm_mode: api::CommMode::Keypad.into(),
            keypad: Some(keypad_setup()),
            ..Default::default()
        })
        .await
        .expect("keypad unit registered")
        .into_inner()
}

async fn pay(
    org: &Org,
    installation_id: &str,
    amount: &str,
    reference: &str,
) -> api::RecordPaymentResponse {
    org.technician
        .payments()
        .record_payment(payment(installation_id, amount, reference))
        .await
        .expect("payment recorded")
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_for_a_keypad_unit_buy_days_as_codes_the_unit_accepts() {
    let server = TestServer::start().await;
    let org = Org::start(&server, "Keypad Co").await;

    // A keypad unit: no modem, so no IMEI and no device secret.
    let registered = register_keypad_unit(&org, "KP-1").await;
    assert_eq!(registered.device_secret, "");
    let unit = registered.unit.unwrap();
    assert_eq!(unit.comm_mode(), api::CommMode::Keypad);
    // A connected unit takes no keypad setup, and a keypad unit needs a valid one.
    let refused = org
        .technician
        .units()
        .register_unit(api::RegisterUnitRequest {
            serial: "KP-2".into(),
            imei: imei(2),
            keypad: Some(keypad_setup()),
            ..Default::default()
        })
        .await;
    assert_invalid(refused, "keypad");
    let refused = org
        .technician
        .units()
        .register_unit(api::RegisterUnitRequest {
            serial: "KP-2".into(),
            comm_mode: api::CommMode::Both.into(),
            imei: imei(2),
            keypad: Some(api::KeypadSetup {
                key: "00".into(),
                ..keypad_setup()
            }),
            ..Default::default()
        })
        .await;
    assert_invalid(refused, "keypad.key");

    // $1 a week, the system costs $10 after a $7 down-payment.
    let installation = install_keypad_unit(&org, "KP-1", "7", "10").await;

    let mut firmware = unit_firmware();
    let first = pay(&org, &installation.id, "2", "mpesa-001").await;
    assert!(!first.duplicate);
    assert_eq!(first.tokens.len(), 1);
    let token = &first.tokens[0];
    assert_eq!(
        (token.kind(), token.value, token.count),
        (api::KeypadTokenKind::AddTime, 14, 2)
    );
    assert_eq!(token.payment_reference, "mpesa-001");
    let typed = firmware
        .enter(&token.code)
        .expect("the unit accepts the code");
    assert_eq!((typed.kind, typed.value), (TokenKind::AddTime, 14));
    let balance = first.balance.unwrap();
    assert_eq!(balance.balance, "0");
    assert_eq!(balance.keypad.unwrap().days_credited, 14);
    // The code went to the customer's phone, digits grouped for typing.
    let texts = server.sms.sent();
    assert_eq!(texts.len(), 1);
    assert_eq!(texts[0].0, "+254712345678");
    assert!(texts[0].1.contains("14 days added"), "{}", texts[0].1);
    assert!(texts[0].1.contains(&token.code[..3]));

    // The provider calls back twice: the same code, and the unit refuses it a second time.
    let again = pay(&org, &installation.id, "2", "mpesa-001").await;
    assert!(again.duplicate);
    assert_eq!(again.tokens, first.tokens);
    assert!(firmware.enter(&again.tokens[0].code).is_err());

    // 50 cents buy 3.5 days: 3 now, the half day waits in money_converted.
    let second = pay(&org, &installation.id, "0.50", "mpesa-002").await;
    assert_eq!(second.tokens[0].value, 3);
    assert_eq!(firmware.enter(&second.tokens[0].code).unwrap().value, 3);

    // The last 50 cents reach the $10 system cost: PAYG is disabled for good.
    let last = pay(&org, &installation.id, "0.50", "mpesa-003").await;
    assert_eq!(last.tokens.len(), 1);
    assert_eq!(last.tokens[0].kind(), api::KeypadTokenKind::DisablePayg);
    assert_eq!(last.tokens[0].reason, "plan_completed");
    let typed = firmware.enter(&last.tokens[0].code).unwrap();
    assert_eq!(typed.kind, TokenKind::DisablePayg);
    let balance = last.balance.unwrap();
    assert_eq!(balance.plan_progress(), api::PlanProgress::Completed);
    assert!(balance.keypad.unwrap().payg_disabled);

    // The token log, newest first, names who issued each and why.
    let log = org
        .observer
        .units()
        .list_keypad_tokens(api::ListKeypadTokensRequest {
            serial: "KP-1".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .tokens;
    let counts: Vec<u32> = log.iter().map(|token| token.count).collect();
    assert_eq!(counts, [5, 4, 2]);
    assert!(log.iter().all(|token| token.issued_at.is_some()));

    // Admins re-send the last code and catch a unit up with COUNTER_SYNC; both are audited.
    let resend = api::ResendLastTokenRequest {
        serial: "KP-1".into(),
    };
    let refused = org
        .technician
        .units()
        .resend_last_token(resend.clone())
        .await;
    assert_eq!(refused.unwrap_err().code(), Code::PermissionDenied);
    let resent = org
        .admin
        .units()
        .resend_last_token(resend)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resent, log[0]);
    let sync = org
        .admin
        .units()
        .issue_counter_sync(api::IssueCounterSyncRequest {
            serial: "KP-1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (sync.kind(), sync.count),
        (api::KeypadTokenKind::CounterSync, 7)
    );
    let actions: Vec<String> = org
        .admin
        .audit_events()
        .await
        .into_iter()
        .map(|event| event.action)
        .collect();
    assert!(actions.contains(&"keypad.token_resent".to_owned()));
    assert!(actions.contains(&"keypad.counter_synced".to_owned()));

    // The key is shown to no role and the database file does not hold it.
    let details = org
        .admin
        .units()
        .get_unit(api::GetUnitRequest {
            serial: "KP-1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!format!("{details:?}").to_lowercase().contains(KEY_HEX));
    let dir = server.stop().await;
    let bytes = std::fs::read(dir.path().join("sunledger.redb")).unwrap();
    let key = hex::decode(KEY_HEX).unwrap();
    assert!(!bytes.windows(key.len()).any(|window| window == key));
    assert!(
        !bytes
            .windows(KEY_HEX.len())
            .any(|window| window == KEY_HEX.as_bytes())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_actions_refuse_connected_units_and_other_organisations() {
    let server = TestServer::start().await;
    let org = Org::start(&server, "Connected Co").await;
    let other = Org::start(&server, "Other Co").await;
    sunledger_tests::api::register_unit(&org.technician, "CU-1", 1).await;
    register_keypad_unit(&other, "KP-9").await;
    let sync = |serial: &str| api::IssueCounterSyncRequest {
        serial: serial.into(),
    };
    let connected = org.admin.units().issue_counter_sync(sync("CU-1")).await;
    assert_eq!(connected.unwrap_err().code(), Code::FailedPrecondition);
    let foreign = org.admin.units().issue_counter_sync(sync("KP-9")).await;
    assert_eq!(foreign.unwrap_err().code(), Code::NotFound);
    let none_yet = other
        .admin
        .units()
        .resend_last_token(api::ResendLastTokenRequest {
            serial: "KP-9".into(),
        })
        .await;
    assert_eq!(none_yet.unwrap_err().code(), Code::FailedPrecondition);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_is_reminded_once_before_the_days_run_out_restarts_included() {
    let remind_within_20_days = |settings: &mut sunledger::settings::Settings| {
        settings.reminders.days_before = 20;
        settings.reminders.check_interval_ms = 50;
    };
    let reminders = |server: &TestServer| -> Vec<(String, String)> {
        let texts = server.sms.sent();
        texts
            .into_iter()
            .filter(|(_, text)| text.contains("credit ends"))
            .collect()
    };
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(dir, remind_within_20_days).await;
    let org = Org::start(&server, "Reminder Co").await;
    register_keypad_unit(&org, "KP-R").await;
    let installation = install_keypad_unit(&org, "KP-R", "0", "").await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        reminders(&server).is_empty(),
        "no days bought, nothing ends"
    );

    // 14 days end within 20: one reminder, however many checks pass.
    pay(&org, &installation.id, "2", "r-1").await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while reminders(&server).is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no reminder sent");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let sent = reminders(&server);
    assert_eq!(
        sent,
        [(
            "+254712345678".to_owned(),
            "KP-R: your credit ends in 14 days. Pay to keep the power on.".to_owned()
        )]
    );

    // Not again after a restart: the reminder of this credit end is remembered.
    let dir = server.stop().await;
    let server = TestServer::start_with(dir, remind_within_20_days).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        reminders(&server).is_empty(),
        "a restarted server does not remind again"
    );
    server.stop().await;
}
