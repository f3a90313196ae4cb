//! Proves that telemetry published over real MQTT, as protobuf and as JSON, is counted in
//! metrics and stored durably; that redeliveries are not counted twice; that bad payloads are
//! refused and counted by reason; that the stored state survives a restart; and that each
//! QoS 1 publish gets one PUBACK.

use prost::Message;
use sunledger_proto::authenticity;
use sunledger_proto::topic::{TopicKind, device_topic};
use sunledger_tests::{Device, TestServer, WAIT_MAX, raw_mqtt, reading};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SERIAL: &str = "SL-TELEMETRY-1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_in_both_encodings_is_counted_stored_and_survives_a_restart() {
    let server = TestServer::start().await;
    let secret = server.register(SERIAL);
    let mut device = Device::connect(server.mqtt, SERIAL, &secret, None);
    device.expect_connected().await;
    let protobuf = [("kind", "telemetry"), ("encoding", "protobuf")];
    let json = [("kind", "telemetry"), ("encoding", "json")];
    let (protobuf_before, json_before) = (
        server
            .metric("sunledger_ingest_messages_total", &protobuf)
            .await,
        server
            .metric("sunledger_ingest_messages_total", &json)
            .await,
    );

    device.publish(TopicKind::Status, "online").await;
    device.send_reading(reading(1, 1_000, 100, 10)).await;
    // JSON carries the MAC as hex, computed over the protobuf encoding of the same values.
    let mac = hex::encode(authenticity::mac(
        secret.bytes(),
        SERIAL,
        &reading(2, 4_600, 150, 12),
    ));
    let payload = format!(
        r#"{{"seq":2,"ts":4600,"load_wh":150,"usb_wh":12,"boot":1,"load_on":true,"mac":"{mac}"}}"#
    );
    device.publish(TopicKind::Telemetry, payload).await;
    device.send_reading(reading(2, 4_600, 150, 12)).await; // a redelivery of seq 2
    device.send_reading(reading(3, 8_200, 180, 20)).await;

    let state = server
        .wait_for_state(SERIAL, |state| {
            state.meter.is_some_and(|meter| meter.seq == 3)
        })
        .await;
    assert_eq!(
        state.consumed_wh,
        (180 + 20) - (100 + 10),
        "the first reading is the baseline; the duplicate adds nothing"
    );
    assert!(state.online);
    server
        .wait_for_metric(
            "sunledger_ingest_messages_total",
            &protobuf,
            protobuf_before + 3.0,
        )
        .await;
    server
        .wait_for_metric("sunledger_ingest_messages_total", &json, json_before + 1.0)
        .await;
    server
        .wait_for_metric(
            "sunledger_billing_readings_total",
            &[("outcome", "duplicate")],
            1.0,
        )
        .await;

    let malformed = server
        .metric(
            "sunledger_ingest_rejected_total",
            &[("reason", "malformed")],
        )
        .await;
    let bad_status = server
        .metric(
            "sunledger_ingest_rejected_total",
            &[("reason", "bad_status")],
        )
        .await;
    device
        .publish(TopicKind::Telemetry, vec![0xff, 0xff, 0xff])
        .await;
    device
        .publish(TopicKind::Telemetry, "{\"seq\": \"many\"}")
        .await;
    device.publish(TopicKind::Ack, "{}").await;
    device.publish(TopicKind::Status, "sleepy").await;
    server
        .wait_for_metric(
            "sunledger_ingest_rejected_total",
            &[("reason", "malformed")],
            malformed + 3.0,
        )
        .await;
    server
        .wait_for_metric(
            "sunledger_ingest_rejected_total",
            &[("reason", "bad_status")],
            bad_status + 1.0,
        )
        .await;
    assert_eq!(
        server.server.store().unit_state(SERIAL).unwrap(),
        Some(state.clone()),
        "bad input changed nothing"
    );

    let dir = server.stop().await;
    let server = TestServer::start_in(dir).await;
    assert_eq!(
        server.server.store().unit_state(SERIAL).unwrap(),
        Some(state),
        "state survives a restart"
    );
    let mut device = Device::connect(server.mqtt, SERIAL, &secret, None);
    device.expect_connected().await;
    device.send_reading(reading(4, 11_800, 200, 20)).await;
    let state = server
        .wait_for_state(SERIAL, |state| {
            state.meter.is_some_and(|meter| meter.seq == 4)
        })
        .await;
    assert_eq!(
        state.consumed_wh, 110,
        "counting continues from the stored baseline"
    );
}

/// The broker sends each QoS 1 publish's PUBACK from the connection's own task, once the
/// router has the publish (a vendored-rumqttd patch that saves a round trip through the
/// router per message); the router must then not ack it a second time, which rumqttc
/// devices treat as an error. Two publishes and a PINGREQ in one write: the replies are
/// exactly PUBACK 1, PUBACK 2, PINGRESP (a second PUBACK would come before the PINGRESP,
/// which the router sends), and both readings are stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_qos_1_publish_is_acked_once_in_order_and_stored() {
    let server = TestServer::start().await;
    let serial = "SL-TELEMETRY-ACK";
    let secret = server.register(serial);
    let mut socket =
        raw_mqtt::connected_socket(server.mqtt, serial, &secret.mqtt_password(), 60).await;

    let topic = device_topic(serial, TopicKind::Telemetry);
    let mut burst = Vec::new();
    for seq in 1..=2 {
        let sealed = authenticity::seal(
            secret.bytes(),
            serial,
            reading(seq, 3_600 * i64::try_from(seq).unwrap(), seq * 10, 0),
        );
        let packet_id = u16::try_from(seq).expect("a small packet id");
        burst.extend(raw_mqtt::publish_qos1_packet(
            &topic,
            packet_id,
            &sealed.encode_to_vec(),
        ));
    }
    burst.extend(raw_mqtt::PINGREQ);
    socket.write_all(&burst).await.expect("sending the burst");

    let mut replies = [0; 10];
    tokio::time::timeout(WAIT_MAX, socket.read_exact(&mut replies))
        .await
        .expect("the replies in time")
        .expect("reading the replies");
    let mut expected = Vec::from(raw_mqtt::puback(1));
    expected.extend(raw_mqtt::puback(2));
    expected.extend(raw_mqtt::PINGRESP);
    assert_eq!(replies.as_slice(), expected, "PUBACK 1, PUBACK 2, PINGRESP");

    let state = server
        .wait_for_state(serial, |state| {
            state.meter.is_some_and(|meter| meter.seq == 2)
        })
        .await;
    assert_eq!(state.consumed_wh, 10, "the second reading counted once");
}
