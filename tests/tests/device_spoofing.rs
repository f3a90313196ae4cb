//! Proves, with real MQTT clients, that a device can only be itself: wrong or unknown
//! credentials are refused at CONNECT, and a connected device that publishes on, subscribes
//! to, or sets its last will on another unit's topics is disconnected without effect. Each
//! refusal is counted in metrics.

use prost::Message;
use sunledger_proto::device::{LoadState, Telemetry};
use sunledger_proto::topic::TopicKind;
use sunledger_tests::{Device, Seen, TestServer};

fn reading(seq: u64, load_wh: u64) -> Vec<u8> {
    Telemetry {
        seq,
        ts: seq as i64 * 600,
        load_wh,
        boot: 1,
        ..Telemetry::default()
    }
    .encode_to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_or_unknown_credentials_are_refused_at_connect() {
    let server = TestServer::start().await;
    let secret_a = server.register("SL-A");
    let secret_b = server.register("SL-B");
    for (serial, secret, reason) in [
        ("SL-A", &secret_b, "wrong_secret"),
        ("SL-Z", &secret_a, "unknown_serial"),
    ] {
        let before = server
            .metric(
                "sunledger_broker_connect_refused_total",
                &[("reason", reason)],
            )
            .await;
        let mut device = Device::connect(server.mqtt, serial, secret, None);
        device.expect_closed().await;
        server
            .wait_for_metric(
                "sunledger_broker_connect_refused_total",
                &[("reason", reason)],
                before + 1.0,
            )
            .await;
    }
    server.server.decommission_unit("SL-B").unwrap();
    let mut device = Device::connect(server.mqtt, "SL-B", &secret_b, None);
    device.expect_closed().await;
    let mut device = Device::connect(server.mqtt, "SL-A", &secret_a, None);
    device.expect_connected().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_cannot_report_for_ack_for_or_read_the_commands_of_another() {
    let server = TestServer::start().await;
    let (secret_a, secret_b) = (server.register("SL-SPOOF-A"), server.register("SL-SPOOF-B"));
    let mut victim = Device::connect(server.mqtt, "SL-SPOOF-B", &secret_b, None);
    victim.expect_connected().await;
    victim.report(1, 100).await;
    server
        .wait_for_state("SL-SPOOF-B", |state| state.meter.is_some())
        .await;
    let command = server.switch_load("SL-SPOOF-B", LoadState::Off);

    for (attempt, packet) in [
        ("telemetry", "publish"),
        ("ack", "publish"),
        ("subscribe", "subscribe"),
        ("will", "last_will"),
    ] {
        let before = server
            .metric("sunledger_broker_acl_refused_total", &[("packet", packet)])
            .await;
        let will = (attempt == "will").then_some("SL-SPOOF-B");
        let mut attacker = Device::connect(server.mqtt, "SL-SPOOF-A", &secret_a, will);
        match attempt {
            "telemetry" => {
                attacker
                    .publish_as("SL-SPOOF-B", TopicKind::Telemetry, reading(2, 100_000))
                    .await
            }
            "ack" => {
                attacker
                    .publish_as(
                        "SL-SPOOF-B",
                        TopicKind::Ack,
                        format!(r#"{{"cmd_id":{},"load":"ON"}}"#, command.cmd_id),
                    )
                    .await
            }
            "subscribe" => attacker.subscribe_commands_of("SL-SPOOF-B").await,
            _ => {}
        }
        loop {
            match attacker.next().await {
                Seen::Closed(_) => break,
                Seen::Message(topic, ..) => panic!("{attempt}: attacker received {topic}"),
                Seen::Connected | Seen::Subscribed => assert_ne!(
                    attempt, "will",
                    "a foreign last will must be refused at CONNECT"
                ),
            }
        }
        server
            .wait_for_metric(
                "sunledger_broker_acl_refused_total",
                &[("packet", packet)],
                before + 1.0,
            )
            .await;
    }

    // The victim's own next reading is charged from its own baseline: the spoofed one never arrived.
    victim.report(2, 130).await;
    let state = server
        .wait_for_state("SL-SPOOF-B", |state| {
            state.meter.is_some_and(|meter| meter.seq == 2)
        })
        .await;
    assert_eq!(state.consumed_wh, 30);
    assert_eq!(state.confirmed, None, "the spoofed ack confirmed nothing");
    assert!(state.awaiting_ack());
}
