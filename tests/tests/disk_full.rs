//! A full disk against the running server: gRPC writes fail with UNAVAILABLE and store
//! nothing, reads keep answering, readings taken meanwhile are not lost (the next one's
//! cumulative counter carries them) and everything resumes when space returns.

use sunledger_proto::api::v1 as api;
use sunledger_tests::api::{Org, install, payment, register_unit, usage_plan};
use sunledger_tests::{Device, TestServer};
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_makes_writes_unavailable_keeps_reads_and_loses_nothing() {
    let server = TestServer::start().await;
    let org = Org::start(&server, "Full Disk Co").await;
    let plan = usage_plan(&org.admin, "1").await;
    let secret = register_unit(&org.technician, "FD-1", 3).await;
    let installation = install(&org.technician, "FD-1", &plan.id, "Baraka").await;
    let payments = || org.technician.payments();
    payments()
        .record_payment(payment(&installation.id, "10", "p-1"))
        .await
        .expect("paid before the disk fills");
    let device = Device::connect(server.mqtt, "FD-1", &secret, None);
    device.report(1, 0).await;
    server
        .wait_for_state("FD-1", |state| state.meter.is_some())
        .await;

    server.disk_fault.fill();
    let refused = payments()
        .record_payment(payment(&installation.id, "5", "p-2"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    let refused = org
        .admin
        .plans()
        .create_plan(api::CreatePlanRequest {
            name: "Written nowhere".into(),
            tariff: Some(api::create_plan_request::Tariff::Usage(api::UsageTariff {
                price_per_kwh: "2".into(),
            })),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable);
    // A reading while the disk is full is acknowledged by the broker but not stored.
    device.report(2, 60).await;
    // Reads keep answering.
    let balance = payments()
        .get_balance(api::GetBalanceRequest {
            installation_id: installation.id.clone(),
        })
        .await
        .expect("balance readable on a full disk")
        .into_inner();
    assert_eq!(balance.balance, "10");
    let ledger = payments()
        .list_ledger(api::ListLedgerRequest {
            installation_id: installation.id.clone(),
            ..Default::default()
        })
        .await
        .expect("ledger readable on a full disk")
        .into_inner();
    assert_eq!(ledger.entries.len(), 1);

    server.disk_fault.free();
    let paid = payments()
        .record_payment(payment(&installation.id, "5", "p-2"))
        .await
        .expect("space is back")
        .into_inner();
    assert!(!paid.duplicate);
    // The next reading carries the counter: 60 Wh held back by the full disk and 40 more,
    // charged once at 1 per kWh.
    device.report(3, 100).await;
    // (Whether the held-back reading reached the engine before or after space returned, the
    // energy is charged exactly once.)
    server
        .wait_for_account("FD-1", |record| {
            record.account.balance() == rust_decimal::Decimal::new(149, 1)
        })
        .await;
    let plans = org
        .admin
        .plans()
        .list_plans(api::ListPlansRequest::default())
        .await
        .unwrap()
        .into_inner()
        .plans;
    assert!(plans.iter().all(|plan| plan.name != "Written nowhere"));
    server.stop().await;
}
