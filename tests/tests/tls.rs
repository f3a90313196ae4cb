//! Proves that with `[broker.tls]` and `[grpc_tls]` set, devices reach the platform over MQTT
//! with TLS and operators over gRPC with TLS, exactly as over the plain transports: a device
//! with its real credentials connects through the TLS listener and its readings are charged,
//! a wrong password is refused there too (by the same hook, counted by reason), the plain
//! listener keeps serving, and an API call over TLS with a real token succeeds. Also that a
//! client stalling its TLS handshake holds up no other device (rumqttd's own TLS listener
//! fails this), is dropped after `connect_timeout_ms`, and that handshakes beyond
//! `handshakes_max` are closed at once. The server presents a self-signed certificate
//! generated for the test; clients trust only it.

use rust_decimal::Decimal;
use std::time::Duration;
use sunledger_billing::units::DeviceKey;

use sunledger::Settings;
use sunledger::settings::GrpcTls;
use sunledger_broker::BrokerTls;
use sunledger_proto::api::v1 as api;
use sunledger_tests::api::{Api, found};
use sunledger_tests::tls::SelfSigned;
use sunledger_tests::{Device, TestServer, WAIT_MAX, free_addr};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

const SERIAL: &str = "SL-TLS-1";

/// Starts a server with both TLS switches on, with test settings changed by `adjust`.
async fn start_with_tls(
    adjust: impl FnOnce(&mut Settings),
) -> (TestServer, SelfSigned, std::net::SocketAddr) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let cert = SelfSigned::write_in(dir.path());
    let mqtt_tls = free_addr();
    let (cert_path, key_path) = (cert.cert_path.clone(), cert.key_path.clone());
    let server = TestServer::start_with(dir, |settings| {
        settings.broker.tls = Some(BrokerTls {
            listen: mqtt_tls,
            cert_path: cert_path.clone(),
            key_path: key_path.clone(),
            handshakes_max: 2,
        });
        settings.grpc_tls = Some(GrpcTls {
            cert_path,
            key_path,
            handshake_timeout_ms: 1_000,
        });
        adjust(settings);
    })
    .await;
    (server, cert, mqtt_tls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_and_operators_work_over_tls_with_the_same_credentials() {
    let (server, cert, mqtt_tls) = start_with_tls(|_| {}).await;
    let secret = server.register(SERIAL);
    // 100 per kWh: 10 Wh costs 1.00.
    server.open_usage_account(SERIAL, "org-tls", Decimal::new(100, 0));

    let mut device = Device::connect_over(cert.mqtt_transport(), mqtt_tls, SERIAL, &secret);
    device.expect_connected().await;
    device.report(1, 0).await;
    device.report(2, 10).await;
    let record = server
        .wait_for_account(SERIAL, |record| record.ledger_len == 1)
        .await;
    assert_eq!(record.account.balance(), Decimal::new(-100, 2));
    let state = server
        .wait_for_state(SERIAL, |state| state.consumed_wh == 10)
        .await;
    assert_eq!(state.consumed_wh, 10, "the reading over TLS was stored");

    let mut impostor = Device::connect_over(
        cert.mqtt_transport(),
        mqtt_tls,
        SERIAL,
        &DeviceKey::generate(),
    );
    impostor.expect_closed().await;
    server
        .wait_for_metric(
            "sunledger_broker_connect_refused_total",
            &[("reason", "wrong_secret")],
            1.0,
        )
        .await;

    let neighbour_secret = server.register("SL-PLAIN-1");
    let mut neighbour = Device::connect(server.mqtt, "SL-PLAIN-1", &neighbour_secret, None);
    neighbour.expect_connected().await;

    let founded = found(&server, "TLS Solar").await;
    let token = format!("Bearer {}", founded.token.secret.expose());
    let admin = Api::over(cert.grpc_channel(server.grpc).await, Some(&token));
    let organisation = admin
        .organisations()
        .get_organisation(api::GetOrganisationRequest {})
        .await
        .expect("GetOrganisation over TLS")
        .into_inner();
    assert_eq!(organisation.name, "TLS Solar");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_tls_handshake_holds_up_no_one_and_handshakes_are_bounded() {
    let (server, cert, mqtt_tls) =
        start_with_tls(|settings| settings.broker.connect_timeout_ms = 1_000).await;
    let secret = server.register(SERIAL);
    let _silent = TcpStream::connect(mqtt_tls).await.expect("TCP connect");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut device = Device::connect_over(cert.mqtt_transport(), mqtt_tls, SERIAL, &secret);
    device.expect_connected().await;
    let refused = "sunledger_broker_tls_refused_total";
    server
        .wait_for_metric(refused, &[("reason", "handshake_timeout")], 1.0)
        .await;

    let _flood = [
        TcpStream::connect(mqtt_tls).await.expect("TCP connect"),
        TcpStream::connect(mqtt_tls).await.expect("TCP connect"),
    ];
    let mut beyond = TcpStream::connect(mqtt_tls).await.expect("TCP connect");
    let read = tokio::time::timeout(WAIT_MAX, beyond.read(&mut [0; 1])).await;
    assert!(
        matches!(read, Ok(Ok(0) | Err(_))),
        "a handshake beyond handshakes_max is closed at once: {read:?}"
    );
    server
        .wait_for_metric(refused, &[("reason", "handshakes_max")], 1.0)
        .await;
    server.stop().await;
}
