//! Proves that a load command published by the engine reaches the device on its `cmd` topic,
//! is retained so a reconnecting device gets the current state, is confirmed by the device's
//! ack (protobuf or JSON), and that the device's last will marks it offline, also after it
//! connected again over its old connection.

use prost::Message;
use sunledger_billing::store::PLATFORM_OWNER;
use sunledger_billing::units::DeviceKey;
use sunledger_proto::authenticity::{self, verify_command};
use sunledger_proto::device::{Command, CommandAck, LoadState, Reason};
use sunledger_proto::topic::{TopicKind, device_topic};
use sunledger_tests::{Device, Seen, TestServer, raw_mqtt};
use tokio::io::AsyncWriteExt;

const SERIAL: &str = "SL-CMD-1";

async fn connect_and_subscribe(server: &TestServer, secret: &DeviceKey) -> Device {
    let mut device = Device::connect(server.mqtt, SERIAL, secret, None);
    device.expect_connected().await;
    device.subscribe_commands_of(SERIAL).await;
    device
}

/// The next command on the device's topic, checked to be signed with the platform's key and
/// returned without its signature, to compare with what the engine decided.
async fn next_command(server: &TestServer, device: &mut Device) -> (Command, bool) {
    let (topic, payload, retained) = device.next_message().await;
    assert_eq!(topic, device_topic(SERIAL, TopicKind::Cmd));
    let command = Command::decode(payload.as_slice()).expect("a protobuf Command");
    let key = server
        .server
        .store()
        .command_verifying_key(PLATFORM_OWNER)
        .expect("the platform's command key");
    assert!(
        verify_command(&key, SERIAL, &command),
        "{command:?} is signed"
    );
    let unsigned = Command {
        sig: Vec::new(),
        ..command
    };
    (unsigned, retained)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_reaches_the_device_is_retained_across_reconnects_and_is_confirmed_by_its_ack() {
    let server = TestServer::start().await;
    let secret = server.register(SERIAL);
    let mut device = connect_and_subscribe(&server, &secret).await;
    assert!(matches!(device.next().await, Seen::Subscribed));

    let off = server.switch_load(SERIAL, LoadState::Off);
    let (received, _) = next_command(&server, &mut device).await;
    assert_eq!(received, off);
    assert_eq!(
        (received.cmd_id, received.load(), received.reason()),
        (1, LoadState::Off, Reason::Manual)
    );

    let ack = CommandAck {
        cmd_id: 1,
        load: LoadState::Off as i32,
        ..CommandAck::default()
    };
    device.send_ack(ack).await;
    server
        .wait_for_state(SERIAL, |state| {
            state.confirmed == Some((1, LoadState::Off as i32))
        })
        .await;

    device.client.disconnect().await.unwrap();
    device.expect_closed().await;
    let mut device = connect_and_subscribe(&server, &secret).await;
    let (retained, retain_flag) = next_command(&server, &mut device).await;
    assert_eq!(
        retained, off,
        "a reconnecting device gets the current command"
    );
    assert!(retain_flag);

    let on = server.switch_load(SERIAL, LoadState::On);
    assert_eq!(on.cmd_id, 2);
    assert_eq!(next_command(&server, &mut device).await.0, on);
    // JSON carries the MAC as hex, computed over the protobuf encoding of the same values.
    let same = CommandAck {
        cmd_id: 2,
        load: LoadState::On as i32,
        ..CommandAck::default()
    };
    let mac = hex::encode(authenticity::mac(secret.bytes(), SERIAL, &same));
    let json = format!(r#"{{"cmd_id":2,"load":"LOAD_STATE_ON","mac":"{mac}"}}"#);
    device.publish(TopicKind::Ack, json).await;
    server
        .wait_for_state(SERIAL, |state| {
            state.confirmed == Some((2, LoadState::On as i32))
        })
        .await;
}

/// Connects `serial`, publishes its `online` status and waits until the platform shows it.
async fn connect_online(server: &TestServer, serial: &str, secret: &DeviceKey) -> Device {
    let mut device = Device::connect(server.mqtt, serial, secret, None);
    device.expect_connected().await;
    device.publish(TopicKind::Status, "online").await;
    server.wait_for_state(serial, |state| state.online).await;
    device
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_will_marks_a_vanished_device_offline() {
    let server = TestServer::start().await;
    let serial = "SL-WILL-1";
    let secret = server.register(serial);
    let device = connect_online(&server, serial, &secret).await;
    // Losing the connection without DISCONNECT makes the broker publish the last will.
    device.vanish();
    server.wait_for_state(serial, |state| !state.online).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_silent_past_its_keep_alive_is_marked_offline() {
    let server = TestServer::start().await;
    let serial = "SL-WILL-3";
    let key = server.register(serial);
    // A unit whose radio link died: its TCP connection is never closed (no FIN, no RST ever
    // arrives), it just stops sending. Only the keep-alive can tell.
    let mut socket = raw_mqtt::connected_socket(server.mqtt, serial, &key.mqtt_password(), 1).await;
    let online = raw_mqtt::publish_packet(&device_topic(serial, TopicKind::Status), b"online");
    socket.write_all(&online).await.expect("publishing online");
    server.wait_for_state(serial, |state| state.online).await;
    // Nothing more is sent. After 1.5 keep-alives without a packet the broker ends the
    // connection and publishes the last will, with the socket still open on this side.
    server.wait_for_state(serial, |state| !state.online).await;
    drop(socket);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_connecting_again_over_its_old_connection_keeps_its_own_will() {
    let server = TestServer::start().await;
    let serial = "SL-WILL-2";
    let secret = server.register(serial);
    let mut first = connect_online(&server, serial, &secret).await;

    // The unit comes back on a new connection while the broker still holds the old one (as
    // after a modem reset): the broker takes the old connection over and publishes its will
    // before the new CONNACK, so the new `online` is the last word.
    let mut second = Device::connect(server.mqtt, serial, &secret, None);
    second.expect_connected().await;
    first.expect_closed().await;
    server.wait_for_state(serial, |state| !state.online).await;
    second.publish(TopicKind::Status, "online").await;
    server.wait_for_state(serial, |state| state.online).await;

    // The old connection's will must not have used up the new connection's: losing this one
    // still marks the unit offline.
    second.vanish();
    server.wait_for_state(serial, |state| !state.online).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_a_device_finds_its_acknowledged_command_in_the_retained_slot() {
    let server = TestServer::start().await;
    let secret = server.register(SERIAL);
    let off = server.switch_load(SERIAL, LoadState::Off);
    let mut device = connect_and_subscribe(&server, &secret).await;
    assert_eq!(next_command(&server, &mut device).await.0, off);
    let ack = CommandAck {
        cmd_id: off.cmd_id,
        load: off.load,
        ..CommandAck::default()
    };
    device.send_ack(ack).await;
    server
        .wait_for_state(SERIAL, |state| !state.awaiting_ack())
        .await;
    device.vanish();

    // The embedded broker keeps retained messages in memory: the restarted platform must
    // fill the slot again, though nothing is awaiting an ack.
    let server = TestServer::start_in(server.stop().await).await;
    let mut device = connect_and_subscribe(&server, &secret).await;
    let (retained, retain_flag) = next_command(&server, &mut device).await;
    assert_eq!(retained, off, "the current command, not a new one");
    assert!(retain_flag);
}
