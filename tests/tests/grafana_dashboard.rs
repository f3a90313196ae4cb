//! The Grafana dashboard in `deploy/grafana/` must only query what a running server exports.
//! This test drives a server through a day in miniature (a device connects and reports, a bad
//! message and a bad CONNECT are refused, the load is switched and acked, a payment is made
//! and reversed, gRPC calls succeed and fail), scrapes `/metrics`, and checks every metric
//! name in every panel's query against the scrape.

use std::collections::BTreeSet;
use sunledger_billing::units::DeviceKey;

use rust_decimal::Decimal;
use sunledger_billing::account::{Payment, Reversal};
use sunledger_billing::account_record::Movement;
use sunledger_billing::ledger::PaymentChannel;
use sunledger_proto::api::v1 as api;
use sunledger_proto::device::{LoadState, Reason};
use sunledger_proto::topic::TopicKind;
use sunledger_tests::api::{Api, acknowledge_command, found};
use sunledger_tests::{Device, Seen, TestServer, scrape};
use tonic::Code;

const DASHBOARD: &str = include_str!("../../deploy/grafana/sunledger.json");
const SERIAL: &str = "SL-GRAFANA-1";

/// Every `sunledger_*` metric name in the dashboard's queries.
fn queried_metrics() -> BTreeSet<String> {
    let dashboard: serde_json::Value = serde_json::from_str(DASHBOARD).expect("dashboard JSON");
    let mut names = BTreeSet::new();
    let panels = dashboard["panels"].as_array().expect("panels");
    for target in panels
        .iter()
        .flat_map(|panel| panel["targets"].as_array().into_iter().flatten())
    {
        let expr = target["expr"].as_str().expect("every target has a query");
        let mut rest = expr;
        while let Some(start) = rest.find("sunledger_") {
            let tail = &rest[start..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            names.insert(tail[..end].to_owned());
            rest = &tail[end..];
        }
    }
    names
}

/// The metric names of the samples in a Prometheus text scrape.
fn exported_metrics(scrape: &str) -> BTreeSet<String> {
    scrape
        .lines()
        .filter(|line| line.starts_with("sunledger_"))
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

async fn run_through_a_day(server: &TestServer) {
    let secret = server.register(SERIAL);
    server.open_usage_account(SERIAL, "org-grafana", Decimal::new(100, 0));
    let engine = server.server.engine_handle();

    let mut device = Device::connect(server.mqtt, SERIAL, &secret, None);
    device.expect_connected().await;
    device.publish(TopicKind::Status, "online").await;
    device.subscribe_commands_of(SERIAL).await;
    assert!(matches!(device.next().await, Seen::Subscribed));
    acknowledge_command(&mut device, LoadState::On, Reason::CreditRestored).await;
    device.report(1, 0).await;
    device.report(2, 30).await;
    device
        .publish(TopicKind::Telemetry, b"\xff not protobuf".to_vec())
        .await;
    server
        .wait_for_metric("sunledger_billing_readings_total", &[], 2.0)
        .await;

    let payment = Payment {
        amount: Decimal::new(500, 2),
        channel: PaymentChannel::MobileMoney,
        provider_ref: "MP-GRAFANA".into(),
        entered_by: "test".into(),
    };
    let reversal = Reversal {
        reason: "charge-back".into(),
        entered_by: "test".into(),
    };
    tokio::task::block_in_place(|| {
        engine.record(SERIAL, Movement::Payment(payment))?;
        engine.reverse_payment("org-grafana", "MP-GRAFANA", reversal)
    })
    .expect("payment and reversal");

    let mut intruder = Device::connect(server.mqtt, SERIAL, &DeviceKey::generate(), None);
    intruder.expect_closed().await;

    let founded = found(server, "Grafana Solar").await;
    let admin = Api::bearer(server, founded.token.secret.expose()).await;
    let refused = admin
        .team()
        .add_member(api::AddMemberRequest {
            name: "Nobody".into(),
            email: "not an address".into(),
            role: api::Role::Observer.into(),
        })
        .await
        .expect_err("invalid email");
    assert_eq!(refused.code(), Code::InvalidArgument);
    let stranger = Api::with_authorization(server, None)
        .await
        .team()
        .list_members(api::ListMembersRequest::default())
        .await
        .expect_err("no token");
    assert_eq!(stranger.code(), Code::Unauthenticated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboard_queries_is_exported() {
    let server = TestServer::start().await;
    run_through_a_day(&server).await;
    let queried = queried_metrics();
    assert!(queried.len() >= 20, "the dashboard queries {queried:?}");
    let exported = exported_metrics(&scrape(server.metrics).await);
    let missing: Vec<&String> = queried.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries metrics the server does not export: {missing:?}"
    );
}

#[test]
fn the_prometheus_example_scrapes_the_default_metrics_port() {
    let config = include_str!("../../deploy/prometheus/prometheus.yml");
    let default_port = sunledger::Settings::default().metrics_listen.port();
    assert!(
        config.contains("metrics_path: /metrics") && config.contains(&format!(":{default_port}")),
        "deploy/prometheus/prometheus.yml should scrape /metrics on port {default_port}"
    );
}
