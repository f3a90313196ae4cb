//! The payments API against the running server, over the generated tonic client and a real
//! MQTT device, proving:
//!
//! - what each role may do with money and loads, and that a refused call writes nothing;
//! - that a payment recorded twice with the same reference is one ledger entry (and one
//!   audit event), and that the reference cannot be reused for another amount;
//! - that a reversal undoes a payment once, as its own negative entry;
//! - that each invalid field is INVALID_ARGUMENT naming it, with nothing stored — including
//!   amounts finer than the currency's minor unit and absurdly large ones;
//! - that the ledger pages return every entry once, oldest first;
//! - that partial installations are FAILED_PRECONDITION and another organisation's are
//!   NOT_FOUND;
//! - that a manual switch reaches the device with REASON_MANUAL.

use sunledger_proto::api::v1 as api;
use sunledger_proto::api::v1::Role;
use sunledger_proto::device::{LoadState, Reason};
use sunledger_tests::api::{
    Api, Org, acknowledge_command, all_pages, assert_invalid, install, payment, register_unit,
    usage_plan,
};
use sunledger_tests::{Device, Seen, TestServer};
use tonic::{Code, Status};

/// An organisation with one complete installation on unit `serial`.
struct Billed {
    org: Org,
    installation_id: String,
}

async fn billed(server: &TestServer, name: &str, serial: &str) -> Billed {
    let org = Org::start(server, name).await;
    let plan = usage_plan(&org.admin, "20").await;
    register_unit(&org.technician, serial, 7).await;
    let installation = install(&org.technician, serial, &plan.id, "Dalia").await;
    Billed {
        org,
        installation_id: installation.id,
    }
}

async fn pay(
    api: &Api,
    request: api::RecordPaymentRequest,
) -> Result<api::RecordPaymentResponse, Status> {
    Ok(api.payments().record_payment(request).await?.into_inner())
}

async fn reverse(
    api: &Api,
    installation_id: &str,
    reference: &str,
) -> Result<api::ReversePaymentResponse, Status> {
    let request = api::ReversePaymentRequest {
        installation_id: installation_id.into(),
        reference: reference.into(),
        reason: "charge-back".into(),
    };
    Ok(api.payments().reverse_payment(request).await?.into_inner())
}

async fn balance(api: &Api, installation_id: &str) -> Result<api::Balance, Status> {
    let request = api::GetBalanceRequest {
        installation_id: installation_id.into(),
    };
    Ok(api.payments().get_balance(request).await?.into_inner())
}

async fn ledger(api: &Api, installation_id: &str, page_size: i32) -> Vec<api::LedgerEntry> {
    all_pages(|page_token| async move {
        let request = api::ListLedgerRequest {
            installation_id: installation_id.into(),
            page_size,
            page_token,
        };
        let page = api
            .payments()
            .list_ledger(request)
            .await
            .expect("listing the ledger")
            .into_inner();
        (page.entries, page.next_page_token)
    })
    .await
}

async fn switch(
    api: &Api,
    installation_id: &str,
    load: api::UnitLoad,
) -> Result<api::SwitchLoadResponse, Status> {
    let request = api::SwitchLoadRequest {
        installation_id: installation_id.into(),
        load: load.into(),
    };
    Ok(api.payments().switch_load(request).await?.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_may_make_exactly_its_payment_calls_and_refused_calls_write_nothing() {
    let server = TestServer::start().await;
    let Billed {
        org,
        installation_id: id,
    } = billed(&server, "Roles", "SL-PAYROLE-1").await;
    pay(&org.admin, payment(&id, "10", "R-ADMIN"))
        .await
        .expect("paid");

    use Code::{Ok as Allowed, PermissionDenied as Denied};
    for (index, role) in [Role::Observer, Role::Technician, Role::Admin]
        .into_iter()
        .enumerate()
    {
        let api = org.as_role(role);
        let before = org.admin.newest_audit_sequence().await;
        let reference = format!("R-{role:?}");
        let outcomes = [
            (
                "RecordPayment",
                pay(api, payment(&id, "5", &reference)).await.map(drop),
                [Denied, Allowed, Allowed],
            ),
            (
                "ReversePayment",
                reverse(api, &id, "R-ADMIN").await.map(drop),
                [Denied, Denied, Allowed],
            ),
            (
                "GetBalance",
                balance(api, &id).await.map(drop),
                [Allowed, Allowed, Allowed],
            ),
            (
                "ListLedger",
                api.payments()
                    .list_ledger(api::ListLedgerRequest {
                        installation_id: id.clone(),
                        ..Default::default()
                    })
                    .await
                    .map(drop),
                [Allowed, Allowed, Allowed],
            ),
            (
                "SwitchLoad",
                switch(api, &id, api::UnitLoad::Off).await.map(drop),
                [Denied, Denied, Allowed],
            ),
        ];
        for (call, outcome, expected) in outcomes {
            let code = outcome.err().map_or(Code::Ok, |status| status.code());
            assert_eq!(code, expected[index], "{call} as {role:?}");
        }
        if role == Role::Observer {
            assert_eq!(
                org.admin.newest_audit_sequence().await,
                before,
                "Observer wrote"
            );
        }
    }
    let references: Vec<String> = ledger(&org.observer, &id, 0)
        .await
        .into_iter()
        .map(|entry| entry.reference)
        .collect();
    assert_eq!(
        references,
        ["R-ADMIN", "R-Technician", "R-Admin", "R-ADMIN"]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_recorded_twice_with_the_same_reference_is_one_ledger_entry() {
    let server = TestServer::start().await;
    let Billed {
        org,
        installation_id: id,
    } = billed(&server, "Twice", "SL-TWICE-1").await;
    let first = pay(&org.technician, payment(&id, "150.50", "MP-1"))
        .await
        .expect("paid");
    assert!(!first.duplicate);
    let entry = first.entry.expect("entry");
    assert_eq!(
        (
            entry.sequence,
            entry.kind(),
            entry.amount.as_str(),
            entry.currency.as_str()
        ),
        (0, api::LedgerEntryKind::Payment, "150.5", "KES")
    );
    assert_eq!(entry.channel(), api::PaymentChannel::MobileMoney);
    assert_eq!(first.balance.as_ref().expect("balance").balance, "150.5");

    let sequence = org.admin.newest_audit_sequence().await;
    let again = pay(&org.technician, payment(&id, "150.50", "MP-1"))
        .await
        .expect("replayed");
    assert!(again.duplicate);
    assert_eq!(again.entry.expect("entry"), entry);
    assert_eq!(again.balance.expect("balance").balance, "150.5");
    assert_eq!(
        org.admin.newest_audit_sequence().await,
        sequence,
        "a replay records nothing"
    );

    let reused = pay(&org.technician, payment(&id, "99", "MP-1"))
        .await
        .unwrap_err();
    assert_eq!(reused.code(), Code::AlreadyExists);
    let entries = ledger(&org.observer, &id, 0).await;
    assert_eq!(entries.len(), 1);
    let account = balance(&org.observer, &id).await.expect("balance");
    assert_eq!(
        (
            account.balance.as_str(),
            account.total_paid.as_str(),
            account.ledger_entries
        ),
        ("150.5", "150.5", 1)
    );
    assert_eq!(account.plan_progress(), api::PlanProgress::Active);
    let recorded: Vec<_> = org
        .admin
        .audit_events()
        .await
        .into_iter()
        .filter(|event| event.action == "payment.recorded")
        .collect();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].target_id, id);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reversal_undoes_a_payment_once() {
    let server = TestServer::start().await;
    let Billed {
        org,
        installation_id: id,
    } = billed(&server, "Reversal", "SL-REV-1").await;
    pay(&org.technician, payment(&id, "300", "MP-R1"))
        .await
        .expect("paid");
    pay(&org.technician, payment(&id, "50", "MP-R2"))
        .await
        .expect("paid");
    let reversed = reverse(&org.admin, &id, "MP-R1").await.expect("reversed");
    let entry = reversed.entry.expect("entry");
    assert_eq!(
        (
            entry.kind(),
            entry.amount.as_str(),
            entry.reference.as_str()
        ),
        (api::LedgerEntryKind::Reversal, "-300", "MP-R1")
    );
    let account = reversed.balance.expect("balance");
    assert_eq!(
        (account.balance.as_str(), account.total_paid.as_str()),
        ("50", "50")
    );

    let again = reverse(&org.admin, &id, "MP-R1").await.unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    let unknown = reverse(&org.admin, &id, "MP-NEVER").await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let kinds: Vec<api::LedgerEntryKind> = ledger(&org.observer, &id, 0)
        .await
        .iter()
        .map(|entry| entry.kind())
        .collect();
    use api::LedgerEntryKind::{Payment as P, Reversal as R};
    assert_eq!(kinds, [P, P, R]);
    let events = org.admin.audit_events().await;
    assert_eq!(events[0].action, "payment.reversed");
    assert!(events[0].description.contains("charge-back"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_invalid_payment_field_is_refused_naming_it_and_nothing_is_stored() {
    let server = TestServer::start().await;
    let Billed {
        org,
        installation_id: id,
    } = billed(&server, "Invalid", "SL-BAD-1").await;
    pay(&org.technician, payment(&id, "1", "MP-OK"))
        .await
        .expect("paid");
    let mut unspecified_channel = payment(&id, "5", "MP-X");
    unspecified_channel.channel = api::PaymentChannel::Unspecified.into();
    let cases = [
        (payment("", "5", "MP-X"), "installation_id"),
        (payment(&id, "", "MP-X"), "amount"),
        (payment(&id, "five", "MP-X"), "amount"),
        (payment(&id, "0", "MP-X"), "amount"),
        (payment(&id, "-5", "MP-X"), "amount"),
        (payment(&id, "10.001", "MP-X"), "amount"),
        (payment(&id, "1e30", "MP-X"), "amount"),
        (
            payment(&id, "1000000000000000000000000000000", "MP-X"),
            "amount",
        ),
        (payment(&id, "1000000000000.01", "MP-X"), "amount"),
        (payment(&id, "5", " "), "reference"),
        (payment(&id, "5", &"r".repeat(257)), "reference"),
        (unspecified_channel, "channel"),
    ];
    let before = org.admin.newest_audit_sequence().await;
    for (request, field) in cases {
        assert_invalid(pay(&org.technician, request).await, field);
    }
    let mut payments = org.admin.payments();
    let reversal = |reference: &str, reason: &str| api::ReversePaymentRequest {
        installation_id: id.clone(),
        reference: reference.into(),
        reason: reason.into(),
    };
    assert_invalid(
        payments.reverse_payment(reversal("", "why")).await,
        "reference",
    );
    assert_invalid(
        payments.reverse_payment(reversal("MP-OK", "")).await,
        "reason",
    );
    assert_invalid(
        switch(&org.admin, &id, api::UnitLoad::Unspecified).await,
        "load",
    );
    assert_invalid(balance(&org.admin, "").await, "installation_id");
    let request = api::ListLedgerRequest {
        installation_id: id.clone(),
        page_size: 0,
        page_token: "not-a-token".into(),
    };
    assert_invalid(payments.list_ledger(request).await, "page_token");

    assert_eq!(org.admin.newest_audit_sequence().await, before);
    let entries = ledger(&org.observer, &id, 0).await;
    assert_eq!(entries.len(), 1, "only the valid payment is on the ledger");
    assert_eq!(
        balance(&org.observer, &id).await.expect("balance").balance,
        "1"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_pages_return_every_entry_once_oldest_first() {
    let server = TestServer::start().await;
    let Billed {
        org,
        installation_id: id,
    } = billed(&server, "Pages", "SL-PAGES-1").await;
    for n in 1..=7 {
        pay(
            &org.technician,
            payment(&id, &n.to_string(), &format!("MP-P{n}")),
        )
        .await
        .expect("paid");
    }
    for page_size in [1, 3, 7, 0] {
        let entries = ledger(&org.observer, &id, page_size).await;
        let sequences: Vec<u64> = entries.iter().map(|entry| entry.sequence).collect();
        assert_eq!(
            sequences,
            (0..7).collect::<Vec<_>>(),
            "page size {page_size}"
        );
        let amounts: Vec<&str> = entries.iter().map(|entry| entry.amount.as_str()).collect();
        assert_eq!(amounts, ["1", "2", "3", "4", "5", "6", "7"]);
    }
    assert_eq!(
        balance(&org.observer, &id).await.expect("balance").balance,
        "28"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_installations_have_no_account_and_foreign_ones_are_not_found() {
    let server = TestServer::start().await;
    let Billed {
        org,
        installation_id: id,
    } = billed(&server, "Owner", "SL-OWN-1").await;
    register_unit(&org.technician, "SL-PART-1", 8).await;
    let start = api::StartRegistrationRequest {
        unit_serial: "SL-PART-1".into(),
        contact: Some(api::start_registration_request::Contact::NewCustomer(
            api::CustomerDetails {
                r#type: api::CustomerType::Consumer.into(),
                name: "Partial".into(),
                email: "partial@example.com".into(),
                contact_preference: api::ContactPreference::Email.into(),
                ..Default::default()
            },
        )),
        location: Some(api::Location {
            latitude: 0.5,
            longitude: 34.0,
        }),
    };
    let partial = org
        .technician
        .installations()
        .start_registration(start)
        .await
        .expect("partial registration")
        .into_inner();
    let status = pay(&org.technician, payment(&partial.id, "5", "MP-PART"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(
        balance(&org.admin, &partial.id).await.unwrap_err().code(),
        Code::FailedPrecondition
    );

    pay(&org.technician, payment(&id, "5", "MP-SHARED"))
        .await
        .expect("paid");
    let other = Org::start(&server, "Other").await;
    let refusals = [
        pay(&other.admin, payment(&id, "5", "MP-SHARED"))
            .await
            .map(drop),
        reverse(&other.admin, &id, "MP-SHARED").await.map(drop),
        balance(&other.admin, &id).await.map(drop),
        switch(&other.admin, &id, api::UnitLoad::Off)
            .await
            .map(drop),
        other
            .admin
            .payments()
            .list_ledger(api::ListLedgerRequest {
                installation_id: id.clone(),
                ..Default::default()
            })
            .await
            .map(drop),
    ];
    for refusal in refusals {
        assert_eq!(refusal.unwrap_err().code(), Code::NotFound);
    }
    assert_eq!(ledger(&org.observer, &id, 0).await.len(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_switch_reaches_the_device_with_reason_manual() {
    let server = TestServer::start().await;
    let org = Org::start(&server, "Switch").await;
    let plan = usage_plan(&org.admin, "20").await;
    let secret = register_unit(&org.technician, "SL-SW-1", 3).await;
    let mut device = Device::connect(server.mqtt, "SL-SW-1", &secret, None);
    device.expect_connected().await;
    device.subscribe_commands_of("SL-SW-1").await;
    assert!(matches!(device.next().await, Seen::Subscribed));
    let installation = install(&org.technician, "SL-SW-1", &plan.id, "Eshe").await;
    acknowledge_command(&mut device, LoadState::On, Reason::CreditRestored).await;

    let switched = switch(&org.admin, &installation.id, api::UnitLoad::Off)
        .await
        .expect("switched");
    assert_eq!(
        (
            switched.unit_serial.as_str(),
            switched.load(),
            switched.reason()
        ),
        ("SL-SW-1", api::UnitLoad::Off, api::LoadReason::Manual)
    );
    let command = acknowledge_command(&mut device, LoadState::Off, Reason::Manual).await;
    assert_eq!(command.cmd_id, switched.command_id);
    let events = org.admin.audit_events().await;
    assert_eq!(events[0].action, "load.switched");
    assert_eq!(events[0].target_id, installation.id);
    server.stop().await;
}
