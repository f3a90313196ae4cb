//! Smoke test against a real broker: an embedded rumqttd with static passwords (each
//! device's derived from its device key, as the platform derives it) on a free port, a
//! "platform" rumqttc client that publishes a retained command and listens to every device
//! topic, one [`SimDevice`] driven step by step and a small [`Fleet`] with faults.
//! It proves the wire contract end to end: credentials and refusals, the retained command
//! and its ack, telemetry that decodes with a valid MAC (garbage that does not decode, and
//! tampered copies whose MAC fails), the last will, and that ground truth matches what the
//! platform side actually received.

use std::collections::HashMap;
use std::net::TcpListener;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use prost::Message;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use sunledger_proto::authenticity::{DeviceKey, mqtt_password, sign_command, verify};
use sunledger_proto::device::{Command, LoadState};
use sunledger_proto::payload::{decode_ack, decode_telemetry};
use sunledger_proto::topic::{
    ALL_ACKS, ALL_STATUS, ALL_TELEMETRY, DeviceTopic, TopicKind, device_topic,
};
use tokio::sync::mpsc;

use crate::{DeviceCredentials, FaultRates, Fleet, SimConfig, SimDevice};

/// 19:00 UTC on a day in 2026: the evening peak, so counters move quickly.
const EVENING_UNIX_S: i64 = 1_779_994_800;

/// The device key of test unit `serial`: its bytes, zero-padded (test serials are short), so
/// every unit has its own.
fn device_key(serial: &str) -> DeviceKey {
    let mut key = [0u8; 16];
    key[..serial.len()].copy_from_slice(serial.as_bytes());
    key
}

fn credentials(serial: &str) -> DeviceCredentials {
    DeviceCredentials {
        serial: serial.into(),
        device_key: device_key(serial),
        command_key: None,
    }
}

/// Starts rumqttd on a free port with, for each serial, the password derived from its device
/// key, plus `platform`.
fn start_broker(serials: &[&str]) -> u16 {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let auth: String = serials
        .iter()
        .map(|s| (*s, mqtt_password(&device_key(s))))
        .chain([("platform", "secret-platform".to_owned())])
        .map(|(user, password)| format!("\"{user}\" = \"{password}\"\n"))
        .collect();
    let toml = format!(
        r#"
id = 0
[router]
max_connections = 100
max_outgoing_packet_count = 200
max_segment_size = 1048576
max_segment_count = 10
[v4.1]
name = "v4-1"
listen = "127.0.0.1:{port}"
next_connection_delay_ms = 0
[v4.1.connections]
connection_timeout_ms = 5000
max_payload_size = 20480
max_inflight_count = 100
dynamic_filters = true
[v4.1.connections.auth]
{auth}"#
    );
    let config: rumqttd::Config = toml::from_str(&toml).unwrap();
    std::thread::spawn(move || rumqttd::Broker::new(config).start().unwrap());
    port
}

/// The platform side: publishes commands and forwards every device message it sees.
async fn platform(port: u16) -> (AsyncClient, mpsc::UnboundedReceiver<(String, Vec<u8>)>) {
    let mut options = MqttOptions::new("platform", "127.0.0.1", port);
    options.set_credentials("platform", "secret-platform");
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    for filter in [ALL_TELEMETRY, ALL_ACKS, ALL_STATUS] {
        client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let mut subacks = 0;
    while subacks < 3 {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::SubAck(_))) => subacks += 1,
            Ok(_) => {}
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    tokio::spawn(async move {
        while let Ok(event) = eventloop.poll().await {
            if let Event::Incoming(Packet::Publish(p)) = event {
                let _ = tx.send((p.topic.clone(), p.payload.to_vec()));
            }
        }
    });
    (client, rx)
}

fn drain(rx: &mut mpsc::UnboundedReceiver<(String, Vec<u8>)>) -> Vec<(String, Vec<u8>)> {
    std::iter::from_fn(|| rx.try_recv().ok()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_applies_only_its_owners_signed_commands_and_never_an_old_one() {
    let port = start_broker(&["SL-9"]);
    let (platform, _seen) = platform(port).await;
    let owner = SigningKey::from_bytes(&[3; 32]);
    let forger = SigningKey::from_bytes(&[4; 32]);
    let command = |cmd_id: u64, load: LoadState| Command {
        cmd_id,
        load: load as i32,
        reason: 1,
        ..Command::default()
    };
    let signed = |key: &SigningKey, cmd_id, load| sign_command(key, "SL-9", command(cmd_id, load));
    let config = SimConfig {
        broker_port: port,
        ..SimConfig::for_tests()
    };
    let keyed = DeviceCredentials {
        command_key: Some(owner.verifying_key()),
        ..credentials("SL-9")
    };
    let mut device = SimDevice::new(&config, keyed).unwrap();
    device.connect().await.unwrap();
    let topic = device_topic("SL-9", TopicKind::Cmd);
    let send = |command: Command| {
        let (platform, topic) = (platform.clone(), topic.clone());
        async move {
            platform
                .publish(topic, QoS::AtLeastOnce, false, command.encode_to_vec())
                .await
                .unwrap()
        }
    };
    send(signed(&owner, 1, LoadState::On)).await;
    device
        .wait_for_command(Duration::from_secs(5))
        .await
        .unwrap();
    let genuine_on = signed(&owner, 1, LoadState::On);
    send(signed(&owner, 2, LoadState::Off)).await;
    device
        .wait_for_command(Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(device.load_state(), LoadState::Off);

    // Someone else's signature, none at all, and the owner's own old ON replayed: all ignored.
    send(signed(&forger, 3, LoadState::On)).await;
    send(command(4, LoadState::On)).await;
    send(genuine_on).await;
    send(signed(&owner, 3, LoadState::Off)).await;
    let next = device
        .wait_for_command(Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        next.cmd_id, 3,
        "the next command the device acted on is the genuine one"
    );
    assert_eq!(device.load_state(), LoadState::Off);
    assert_eq!(device.stats().commands_forged, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_receives_the_retained_command_acks_it_and_reports() {
    let port = start_broker(&["SL-1"]);
    let (platform, mut seen) = platform(port).await;
    let command = Command {
        cmd_id: 1,
        load: LoadState::Off as i32,
        reason: 1,
        ts: 0,
        ..Command::default()
    };
    let cmd_topic = device_topic("SL-1", TopicKind::Cmd);
    platform
        .publish(cmd_topic, QoS::AtLeastOnce, true, command.encode_to_vec())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let config = SimConfig {
        broker_port: port,
        sim_start_unix_s: Some(EVENING_UNIX_S),
        time_scale: 3_600.0,
        ..SimConfig::for_tests()
    };
    let mut device = SimDevice::new(&config, credentials("SL-1")).unwrap();
    device.connect().await.unwrap();
    let received = device
        .wait_for_command(Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!((received.cmd_id, device.load_state()), (1, LoadState::Off));
    let reading = device.publish_telemetry_now().await.unwrap();
    assert_eq!(
        (reading.seq, reading.boot, reading.load_on),
        (1, device.model().boot(), false)
    );
    assert!(
        reading.boot > 1,
        "a run powers up at a wall-clock boot number"
    );
    device.simulate_network_loss();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let messages = drain(&mut seen);
    let kinds: Vec<(TopicKind, &[u8])> = messages
        .iter()
        .map(|(topic, payload)| (DeviceTopic::parse(topic).unwrap().kind, payload.as_slice()))
        .collect();
    let ack = kinds
        .iter()
        .find(|(k, _)| *k == TopicKind::Ack)
        .expect("an ack");
    let ack = decode_ack(ack.1).unwrap();
    assert_eq!((ack.cmd_id, ack.load()), (1, LoadState::Off));
    assert!(verify(&device_key("SL-1"), "SL-1", &ack), "sealed ack");
    let telemetry = kinds
        .iter()
        .find(|(k, _)| *k == TopicKind::Telemetry)
        .expect("telemetry");
    assert_eq!(decode_telemetry(telemetry.1).unwrap(), reading);
    assert!(
        verify(&device_key("SL-1"), "SL-1", &reading),
        "sealed reading"
    );
    assert!(
        !verify(&device_key("SL-2"), "SL-1", &reading),
        "under its own key only"
    );
    let statuses: Vec<&[u8]> = kinds
        .iter()
        .filter(|(k, _)| *k == TopicKind::Status)
        .map(|(_, p)| *p)
        .collect();
    assert_eq!(
        statuses,
        [&b"online"[..], b"offline"],
        "online, then the last will"
    );

    let truth = device.truth();
    assert_eq!(
        (
            truth.telemetry_acked,
            truth.acks_sent,
            truth.offline_periods
        ),
        (1, 1, 1)
    );
    assert_eq!(truth.commands.len(), 1);
    assert_eq!(truth.reported_load_wh, reading.load_wh);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_with_faults_reports_what_its_truth_says_and_counts_refusals() {
    let port = start_broker(&["SL-2", "SL-3"]);
    let (_platform, mut seen) = platform(port).await;
    let config = SimConfig {
        broker_port: port,
        sim_start_unix_s: Some(EVENING_UNIX_S),
        time_scale: 3_600.0,
        seed: 77,
        faults: FaultRates {
            duplicate_per_report: 0.3,
            malformed_per_report: 0.3,
            tampered_per_report: 0.3,
            reset_per_report: 0.1,
            ..FaultRates::default()
        },
        ..SimConfig::for_tests()
    };
    let mut devices = vec![credentials("SL-2"), credentials("SL-3")];
    devices.push(DeviceCredentials {
        device_key: [0xAA; 16],
        ..credentials("SL-BAD")
    });
    let mut fleet = Fleet::start(config, devices).unwrap();
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    let live = fleet.snapshot();
    assert_eq!(live.connected, 2, "seed {}: {live:?}", fleet.seed());
    assert!(live.auth_failures >= 2, "retried with backoff: {live:?}");
    fleet.shutdown().await;
    let stats = fleet.snapshot();
    assert_eq!(stats.connected, 0, "{stats:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;

    let messages = drain(&mut seen);
    for truth in fleet.truth().into_iter().filter(|t| t.serial != "SL-BAD") {
        let topic = device_topic(&truth.serial, TopicKind::Telemetry);
        let payloads: Vec<&Vec<u8>> = messages
            .iter()
            .filter(|(t, _)| *t == topic)
            .map(|(_, p)| p)
            .collect();
        let decoded: Vec<_> = payloads
            .iter()
            .filter_map(|p| decode_telemetry(p).ok())
            .collect();
        let garbage = payloads.len() - decoded.len();
        assert_eq!(
            garbage as u64, truth.telemetry_malformed_sent,
            "seed 77: {truth:?}"
        );
        // Every reading and duplicate verifies under the unit's key; a tampered copy never.
        let key = device_key(&truth.serial);
        let (decoded, tampered): (Vec<_>, Vec<_>) = decoded
            .into_iter()
            .partition(|reading| verify(&key, &truth.serial, reading));
        assert_eq!(
            tampered.len() as u64,
            truth.telemetry_tampered_sent,
            "seed 77: {truth:?}"
        );
        assert!(truth.telemetry_tampered_sent > 0, "seed 77: {truth:?}");
        let sent = truth.telemetry_valid_sent + truth.telemetry_duplicates_sent;
        assert_eq!(decoded.len() as u64, sent, "seed 77: {truth:?}");
        // What the platform can bill: per boot, the largest reading it received.
        let mut per_boot: HashMap<u32, u64> = HashMap::new();
        for reading in &decoded {
            let best = per_boot.entry(reading.boot).or_default();
            *best = (*best).max(reading.load_wh + reading.usb_wh);
        }
        assert_eq!(
            per_boot.values().sum::<u64>(),
            truth.reported_wh(),
            "seed 77: {truth:?}"
        );
        assert!(
            truth.reported_wh() > 0,
            "evening demand at 3600x: {truth:?}"
        );
        assert!(truth.reported_wh() + truth.unreported_wh_lost_to_reset <= truth.consumed_wh);
    }
}
