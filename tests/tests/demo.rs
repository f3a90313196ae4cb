//! `serve --demo` seeds a real organisation through the directory: what it creates is what
//! the gRPC API shows, a restart on the same database finds it again without duplicating
//! anything, and every start hands out a fresh Admin token and fresh device keys while
//! the previous ones stop working.
//!
//! How: the real server on a temporary database, seeded with a handful of demo units by
//! `sunledger::demo::seed` (what `serve --demo` runs before starting its fleet, without the
//! fleet), then inspected through the API with the token the seeding returned; then stopped,
//! started again on the same directory and seeded again.

use sunledger::demo::{Seeded, seed};
use sunledger_proto::api::v1 as api;
use sunledger_tests::api::{Api, all_pages};
use sunledger_tests::{Device, TestServer};
use tonic::Code;

/// Demo units seeded: enough to walk more than one page of a small list.
const DEVICES: usize = 3;

/// What the API shows of the demo organisation, to compare across restarts.
#[derive(Debug, PartialEq)]
struct Shown {
    /// (serial, current installation id) of every unit, by serial (the list orders by
    /// customer, whose ids are random).
    units: Vec<(String, String)>,
    /// Customer ids.
    customers: Vec<String>,
    /// Plan names.
    plans: Vec<String>,
    /// Welcome-credit payments per unit, in unit order.
    welcome_payments: Vec<usize>,
}

async fn shown(api: &Api) -> Shown {
    let mut units = all_pages(|page_token| async move {
        let request = api::ListUnitsRequest {
            page_size: 2,
            page_token,
            ..Default::default()
        };
        let page = api.units().list_units(request).await.unwrap().into_inner();
        (page.units, page.next_page_token)
    })
    .await;
    let customers = all_pages(|page_token| async move {
        let request = api::ListCustomersRequest {
            page_token,
            ..Default::default()
        };
        let page = api.customers().list_customers(request).await;
        let page = page.unwrap().into_inner();
        (page.customers, page.next_page_token)
    })
    .await;
    let request = api::ListPlansRequest::default();
    let plans = api.plans().list_plans(request).await.unwrap();
    let plans = plans.into_inner().plans;
    units.sort_by(|a, b| a.serial.cmp(&b.serial));
    let mut welcome_payments = Vec::new();
    for unit in &units {
        let request = api::ListLedgerRequest {
            installation_id: unit.current_installation_id.clone(),
            ..Default::default()
        };
        let ledger = api.payments().list_ledger(request).await.unwrap();
        let welcome = format!("{}-welcome", unit.serial);
        let entries = ledger.into_inner().entries;
        welcome_payments.push(entries.iter().filter(|e| e.reference == welcome).count());
    }
    Shown {
        units: units
            .into_iter()
            .map(|unit| (unit.serial, unit.current_installation_id))
            .collect(),
        customers: customers.into_iter().map(|customer| customer.id).collect(),
        plans: plans.into_iter().map(|plan| plan.name).collect(),
        welcome_payments,
    }
}

async fn seeded_api(server: &TestServer) -> (Seeded, Api) {
    let seeded = seed(&server.server, DEVICES).await.expect("demo seeded");
    let api = Api::bearer(server, seeded.token.expose()).await;
    (seeded, api)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_organisation_is_seeded_once_and_each_start_issues_a_fresh_token() {
    let server = TestServer::start().await;
    let (first, api) = seeded_api(&server).await;
    let before = shown(&api).await;
    let serials: Vec<&str> = before.units.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(serials, ["DEMO-000001", "DEMO-000002", "DEMO-000003"]);
    assert!(
        before
            .units
            .iter()
            .all(|(_, installation)| !installation.is_empty())
    );
    assert_eq!(before.customers.len(), DEVICES);
    assert_eq!(before.plans.len(), 2, "a usage and an instalment plan");
    assert_eq!(before.welcome_payments, [1; DEVICES]);
    let request = api::GetDashboardRequest {};
    let dashboard = api.reports().get_dashboard(request).await.unwrap();
    let dashboard = dashboard.into_inner();
    assert_eq!(dashboard.units_online + dashboard.units_offline, 3);
    assert_eq!(dashboard.units_without_installation, 0);
    assert_eq!(dashboard.partial_registrations, 0);
    let customers: u64 = dashboard
        .customers_by_status
        .iter()
        .map(|c| c.customers)
        .sum();
    assert_eq!(customers, 3);
    let balance = api::GetBalanceRequest {
        installation_id: before.units[0].1.clone(),
    };
    let balance = api
        .payments()
        .get_balance(balance)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (balance.total_paid.as_str(), balance.currency.as_str()),
        ("0.5", "KES")
    );

    let server = TestServer::start_in(server.stop().await).await;
    let (second, api) = seeded_api(&server).await;
    assert_eq!(second.organisation.id, first.organisation.id);
    assert_ne!(second.token.expose(), first.token.expose());
    assert_eq!(shown(&api).await, before, "nothing seeded twice");
    let stale = Api::bearer(&server, first.token.expose()).await;
    let refused = stale
        .reports()
        .get_dashboard(api::GetDashboardRequest {})
        .await;
    assert_eq!(refused.unwrap_err().code(), Code::Unauthenticated);

    let unit = &second.units[0];
    let stale_key = &first.units[0].device_key;
    assert_ne!(&unit.device_key, stale_key, "device keys re-issued");
    let mut device = Device::connect(server.mqtt, &unit.serial, &unit.device_key, None);
    device.expect_connected().await;
    let mut stale = Device::connect(server.mqtt, &unit.serial, stale_key, None);
    stale.expect_closed().await;
    server.stop().await;
}
