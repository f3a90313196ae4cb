//! The Reports service against the running server, after a known scenario driven through the
//! other services and a real MQTT device: five units, three complete registrations, one
//! partial, customers in several approval states, payments and a reversal, one unit in
//! Offline Disable and one that consumed past its credit. The tests prove:
//!
//! - that the dashboard counts customers by approval status, partial registrations, units
//!   online and offline, switched off for credit, offline disabled and without installation;
//! - that revenue is payments net of reversals within the period, in the organisation's
//!   currency, and an invalid period is INVALID_ARGUMENT naming the field;
//! - that the portfolio at risk counts the billed accounts;
//! - that every role may read the reports and another organisation's numbers stay apart.

use std::time::{SystemTime, UNIX_EPOCH};

use rust_decimal::Decimal;
use sunledger_proto::api::v1 as api;
use sunledger_proto::api::v1::ApprovalStatus;
use sunledger_proto::topic::TopicKind;
use sunledger_tests::api::{Api, Org, assert_invalid, install, register_unit, usage_plan};
use sunledger_tests::{Device, TestServer};

/// Unix seconds now.
fn now_s() -> i64 {
    let elapsed = SystemTime::now().duration_since(UNIX_EPOCH);
    elapsed.expect("after 1970").as_secs() as i64
}

/// A revenue request for `[from_s, to_s)`, unix seconds.
fn period(from_s: i64, to_s: i64) -> api::GetRevenueRequest {
    let mut request = api::GetRevenueRequest {
        from: Some(Default::default()),
        to: Some(Default::default()),
    };
    request.from.as_mut().expect("from").seconds = from_s;
    request.to.as_mut().expect("to").seconds = to_s;
    request
}

async fn dashboard(api: &Api) -> api::Dashboard {
    let response = api
        .reports()
        .get_dashboard(api::GetDashboardRequest {})
        .await;
    response.expect("dashboard").into_inner()
}

async fn revenue(api: &Api, request: api::GetRevenueRequest) -> api::Revenue {
    let response = api.reports().get_revenue(request).await;
    response.expect("revenue").into_inner()
}

async fn portfolio_at_risk(api: &Api) -> api::PortfolioAtRisk {
    let request = api::GetPortfolioAtRiskRequest {};
    let response = api.reports().get_portfolio_at_risk(request).await;
    response.expect("portfolio at risk").into_inner()
}

/// The dashboard's customer counts in workflow order.
fn by_status(dashboard: &api::Dashboard) -> Vec<(ApprovalStatus, u64)> {
    dashboard
        .customers_by_status
        .iter()
        .map(|count| (count.status(), count.customers))
        .collect()
}

async fn approve(admin: &Api, customer_id: &str, status: ApprovalStatus, billing_ref: &str) {
    let request = api::ChangeApprovalRequest {
        customer_id: customer_id.into(),
        status: status.into(),
        billing_reference: (!billing_ref.is_empty()).then(|| billing_ref.into()),
        ..Default::default()
    };
    let response = admin.customers().change_approval(request).await;
    response.expect("approval changed");
}

async fn pay(api: &Api, installation_id: &str, amount: &str, reference: &str) {
    let request = api::RecordPaymentRequest {
        installation_id: installation_id.into(),
        amount: amount.into(),
        reference: reference.into(),
        channel: api::PaymentChannel::MobileMoney.into(),
    };
    api.payments().record_payment(request).await.expect("paid");
}

/// Runs the scenario of the module documentation in `org`; returns when the device's
/// readings have been charged.
async fn run_scenario(server: &TestServer, org: &Org) {
    let plan = usage_plan(&org.admin, "100").await;
    let mut secrets = Vec::new();
    for n in 1..=5 {
        secrets.push(register_unit(&org.admin, &format!("SL-RPT-{n}"), n).await);
    }
    let mut installed = Vec::new();
    for (n, name) in [
        (1, "Customer One"),
        (2, "Customer Two"),
        (3, "Customer Three"),
    ] {
        let serial = format!("SL-RPT-{n}");
        installed.push(install(&org.technician, &serial, &plan.id, name).await);
    }
    let partial = api::StartRegistrationRequest {
        unit_serial: "SL-RPT-4".into(),
        contact: Some(api::start_registration_request::Contact::NewCustomer(
            api::CustomerDetails {
                r#type: api::CustomerType::Company.into(),
                name: "Customer Four".into(),
                phone: "0712 345678".into(),
                contact_preference: api::ContactPreference::Phone.into(),
                ..Default::default()
            },
        )),
        location: Some(api::Location {
            latitude: 0.5,
            longitude: 35.0,
        }),
    };
    let started = org
        .technician
        .installations()
        .start_registration(partial)
        .await;
    started.expect("partial registration");

    approve(
        &org.admin,
        &installed[0].customer_id,
        ApprovalStatus::Referred,
        "",
    )
    .await;
    let second = &installed[1].customer_id;
    approve(&org.admin, second, ApprovalStatus::PassedCreditRef, "").await;
    approve(&org.admin, second, ApprovalStatus::Billing, "BR-1").await;

    pay(&org.technician, &installed[0].id, "100", "MP-1").await;
    pay(&org.technician, &installed[1].id, "50", "MP-2").await;
    let reversal = api::ReversePaymentRequest {
        installation_id: installed[1].id.clone(),
        reference: "MP-2".into(),
        reason: "charge-back".into(),
    };
    let reversed = org.admin.payments().reverse_payment(reversal).await;
    reversed.expect("reversed");

    let disable = api::SetEnableStatusRequest {
        serial: "SL-RPT-1".into(),
        enable_status: api::EnableStatus::OfflineDisabled.into(),
    };
    let disabled = org.admin.units().set_enable_status(disable).await;
    disabled.expect("offline disabled");

    // Unit 3 comes online and draws 10 Wh on a zero balance: 1.00 at 100 per kWh.
    let mut device = Device::connect(server.mqtt, "SL-RPT-3", &secrets[2], None);
    device.expect_connected().await;
    device.publish(TopicKind::Status, "online").await;
    device.report(1, 0).await;
    device.report(2, 10).await;
    server
        .wait_for_account("SL-RPT-3", |record| {
            record.account.balance() == Decimal::new(-100, 2)
        })
        .await;
    server
        .wait_for_state("SL-RPT-3", |state| state.online)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_counts_a_known_scenario_for_every_role() {
    let server = TestServer::start().await;
    let org = Org::start(&server, "Reports").await;
    let empty = dashboard(&org.observer).await;
    assert_eq!(empty.partial_registrations, 0);
    assert!(by_status(&empty).iter().all(|(_, count)| *count == 0));
    run_scenario(&server, &org).await;

    use ApprovalStatus::{Billing, FailedCreditRef, New, PassedCreditRef, Referred};
    for api in [&org.observer, &org.technician, &org.admin] {
        let dashboard = dashboard(api).await;
        assert_eq!(
            by_status(&dashboard),
            [
                (New, 2),
                (PassedCreditRef, 0),
                (Referred, 1),
                (FailedCreditRef, 0),
                (Billing, 1)
            ]
        );
        assert_eq!(dashboard.partial_registrations, 1);
        assert_eq!((dashboard.units_online, dashboard.units_offline), (1, 2));
        assert_eq!(dashboard.units_switched_off_for_credit, 1);
        assert_eq!(dashboard.units_offline_disabled, 1);
        assert_eq!(dashboard.units_without_installation, 1);
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revenue_is_payments_net_of_reversals_within_the_period() {
    let server = TestServer::start().await;
    let org = Org::start(&server, "Revenue").await;
    let before_s = now_s() - 60;
    run_scenario(&server, &org).await;
    let after_s = now_s() + 60;

    let total = revenue(&org.observer, period(before_s, after_s)).await;
    assert_eq!(
        (total.amount.as_str(), total.currency.as_str()),
        ("100", "KES")
    );
    let earlier = revenue(&org.admin, period(before_s - 3_600, before_s)).await;
    assert_eq!(earlier.amount, "0");
    let later = revenue(&org.technician, period(after_s, after_s + 3_600)).await;
    assert_eq!(later.amount, "0");

    let mut reports = org.observer.reports();
    let missing = api::GetRevenueRequest {
        from: None,
        ..period(before_s, after_s)
    };
    assert_invalid(reports.get_revenue(missing).await, "from");
    let missing = api::GetRevenueRequest {
        to: None,
        ..period(before_s, after_s)
    };
    assert_invalid(reports.get_revenue(missing).await, "to");
    assert_invalid(reports.get_revenue(period(after_s, after_s)).await, "to");
    assert_invalid(reports.get_revenue(period(after_s, before_s)).await, "to");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_portfolio_at_risk_counts_billed_accounts_and_organisations_stay_apart() {
    let server = TestServer::start().await;
    let org = Org::start(&server, "Portfolio").await;
    let other = Org::start(&server, "Elsewhere").await;
    let none = portfolio_at_risk(&org.observer).await;
    assert_eq!((none.accounts, none.share_7d.as_str()), (0, "0"));
    run_scenario(&server, &org).await;

    let risk = portfolio_at_risk(&org.observer).await;
    assert_eq!(risk.accounts, 3, "the partial registration has no account");
    // Unit 3 fell below its limit moments ago: not yet 7 days.
    assert_eq!((risk.at_risk_7d, risk.at_risk_30d), (0, 0));
    assert_eq!(
        (risk.share_7d.as_str(), risk.share_30d.as_str()),
        ("0", "0")
    );

    let elsewhere = dashboard(&other.admin).await;
    assert!(by_status(&elsewhere).iter().all(|(_, count)| *count == 0));
    let unit_counts = [
        elsewhere.partial_registrations,
        elsewhere.units_online,
        elsewhere.units_offline,
        elsewhere.units_switched_off_for_credit,
        elsewhere.units_offline_disabled,
        elsewhere.units_without_installation,
    ];
    assert_eq!(unit_counts, [0; 6]);
    assert_eq!(portfolio_at_risk(&other.admin).await.accounts, 0);
    let far = period(0, now_s() + 3_600);
    assert_eq!(revenue(&other.admin, far).await.amount, "0");
    server.stop().await;
}
