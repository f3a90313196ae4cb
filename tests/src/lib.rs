//! Harness for the end-to-end tests in `tests/tests/`: the real server on free loopback ports
//! with a temporary redb file, real MQTT devices (rumqttc), and a Prometheus scraper.
//!
//! - [`TestServer`]: starts and stops a [`sunledger::Server`]; hands out gRPC channels.
//! - [`Device`]: one MQTT client with its event loop on a task, reporting what it receives.
//! - [`metric`]: reads one sample from a `/metrics` scrape.
//! - [`burst`]: a burst of readings into a deliberately slow engine (back-pressure tests).
//! - [`api`]: the operators' gRPC API as tests drive it (clients, organisations, checks).
//! - [`tls`]: a self-signed certificate for the server's TLS listeners, and clients trusting it.
//! - [`raw_mqtt`]: MQTT packets encoded by hand, for clients no library would play.

pub mod api;
pub mod burst;
pub mod raw_mqtt;
pub mod tls;

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prost::Message;
use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS, Transport};
use sunledger::server::Hooks;
use sunledger::{Server, Settings};
use sunledger_billing::account::AccountSetup;
use sunledger_billing::account_record::{AccountOpening, AccountRecord};
use sunledger_billing::store::DiskFault;
use sunledger_billing::tariff::{PlanTerms, Tariff};
use sunledger_billing::units::DeviceKey;
use sunledger_control_api::notify::{SmsError, SmsSender};
use sunledger_proto::authenticity;
use sunledger_proto::device::{Command, CommandAck, Telemetry};
use sunledger_proto::topic::{TopicKind, device_topic};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// How long tests wait for something to happen before failing.
pub const WAIT_MAX: Duration = Duration::from_secs(10);

/// A reading of a unit's first boot with its load on: sequence number, device time
/// (seconds) and cumulative load and USB counters (Wh), not yet sealed.
pub fn reading(seq: u64, ts: i64, load_wh: u64, usb_wh: u64) -> Telemetry {
    Telemetry {
        seq,
        ts,
        load_wh,
        usb_wh,
        boot: 1,
        load_on: true,
        ..Telemetry::default()
    }
}

/// A loopback address with a port that was free a moment ago and that no other test of this
/// process was given: tests run in parallel threads, and the kernel may hand a port that one
/// test released before binding it to another test asking a moment later.
pub fn free_addr() -> SocketAddr {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding an ephemeral port");
        let addr = listener.local_addr().expect("ephemeral port address");
        if handed_out.insert(addr.port()) {
            return addr;
        }
    }
}

/// The real server on free ports with its own temporary database.
pub struct TestServer {
    /// The running server.
    pub server: Server,
    /// Where devices connect.
    pub mqtt: SocketAddr,
    /// Where `/metrics` is served.
    pub metrics: SocketAddr,
    /// Where the gRPC API is served.
    pub grpc: SocketAddr,
    /// Every text the server sent.
    pub sms: Arc<RecordingSms>,
    /// Makes the server's disk behave as full.
    pub disk_fault: DiskFault,
    dir: tempfile::TempDir,
}

/// An SMS gateway that keeps what it was asked to send, for tests to read.
#[derive(Default)]
pub struct RecordingSms(Mutex<Vec<(String, String)>>);

impl RecordingSms {
    /// The (phone, text) pairs sent so far, oldest first.
    pub fn sent(&self) -> Vec<(String, String)> {
        self.0.lock().expect("SMS log").clone()
    }
}

impl SmsSender for RecordingSms {
    fn send(&self, to: &str, text: &str) -> Result<(), SmsError> {
        self.0
            .lock()
            .expect("SMS log")
            .push((to.to_owned(), text.to_owned()));
        Ok(())
    }
}

impl TestServer {
    /// Opens a usage account (`price_per_kwh`, automatic switch-off, limit 0) for `serial`
    /// in `org` straight through the engine, for tests about devices and billing rather
    /// than registration.
    pub fn open_usage_account(
        &self,
        serial: &str,
        org: &str,
        price_per_kwh: rust_decimal::Decimal,
    ) -> AccountRecord {
        let mut terms = PlanTerms::new(Tariff::Usage { price_per_kwh });
        terms.auto_switch_off = true;
        let opening = AccountOpening {
            org: org.into(),
            tz: chrono_tz::Tz::Africa__Nairobi,
            terms,
            setup: AccountSetup::default(),
            time_mode: Default::default(),
        };
        tokio::task::block_in_place(|| self.server.engine().open_account(serial, opening))
            .expect("account opened")
    }

    /// Starts a server on a fresh database.
    pub async fn start() -> TestServer {
        let dir = tempfile::tempdir().expect("temporary directory");
        Self::start_in(dir).await
    }

    /// Starts a server on the database in `dir` (reused across restarts).
    pub async fn start_in(dir: tempfile::TempDir) -> TestServer {
        Self::start_with(dir, |_| {}).await
    }

    /// Starts a server on the database in `dir` with test settings changed by `adjust`.
    pub async fn start_with(
        dir: tempfile::TempDir,
        adjust: impl FnOnce(&mut Settings),
    ) -> TestServer {
        let (mqtt, grpc, metrics) = (free_addr(), free_addr(), free_addr());
        let disk_fault = DiskFault::default();
        let mut settings =
            Settings::for_tests(dir.path().join("sunledger.redb"), mqtt, grpc, metrics);
        adjust(&mut settings);
        let grpc = settings.grpc_listen;
        let sms = Arc::new(RecordingSms::default());
        let hooks = Hooks {
            sms: sms.clone(),
            disk_fault: disk_fault.clone(),
        };
        let server = Server::start_with(settings, hooks)
            .await
            .expect("server starts");
        TestServer {
            server,
            mqtt,
            metrics,
            grpc,
            sms,
            disk_fault,
            dir,
        }
    }

    /// Shuts the server down gracefully and hands back its data directory.
    pub async fn stop(self) -> tempfile::TempDir {
        self.server.shutdown().await;
        self.dir
    }

    /// Switches `serial`'s load by hand (`REASON_MANUAL`) through the engine, as an Admin's
    /// `SwitchLoad` does, and returns the command issued.
    pub fn switch_load(&self, serial: &str, load: sunledger_proto::device::LoadState) -> Command {
        let reason = sunledger_proto::device::Reason::Manual;
        tokio::task::block_in_place(|| self.server.engine().set_load(serial, load, reason))
            .expect("load switched")
    }

    /// Registers a unit and returns its device key.
    pub fn register(&self, serial: &str) -> DeviceKey {
        self.server
            .register_unit(serial, false)
            .expect("registering unit")
    }

    /// Registers a unit in development mode (messages accepted without a MAC).
    pub fn register_in_development_mode(&self, serial: &str) -> DeviceKey {
        self.server
            .register_unit(serial, true)
            .expect("registering unit")
    }

    /// A connected gRPC channel to the API, for the generated tonic clients.
    pub async fn grpc_channel(&self) -> tonic::transport::Channel {
        tonic::transport::Endpoint::from_shared(format!("http://{}", self.grpc))
            .expect("gRPC endpoint")
            .connect()
            .await
            .expect("connecting to the gRPC API")
    }

    /// Scrapes `/metrics` and returns the value of one sample (0 if absent).
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        metric(&scrape(self.metrics).await, name, labels)
    }

    /// Polls the committed state of `serial` until `done` holds for it, or fails the test.
    pub async fn wait_for_state(
        &self,
        serial: &str,
        done: impl Fn(&sunledger_billing::engine::UnitState) -> bool,
    ) -> sunledger_billing::engine::UnitState {
        let store = self.server.store();
        let probe = || store.unit_state(serial).expect("reading state");
        wait_until(&format!("state of {serial}"), probe, done).await
    }

    /// Polls the committed account of `serial` until `done` holds for it, or fails the test.
    pub async fn wait_for_account(
        &self,
        serial: &str,
        done: impl Fn(&sunledger_billing::account_record::AccountRecord) -> bool,
    ) -> sunledger_billing::account_record::AccountRecord {
        let store = self.server.store();
        let probe = || store.account(serial).expect("reading account");
        wait_until(&format!("account of {serial}"), probe, done).await
    }
}

/// Polls `probe` until it yields a value `done` accepts, or fails the test naming `what`.
async fn wait_until<T>(what: &str, probe: impl Fn() -> Option<T>, done: impl Fn(&T) -> bool) -> T {
    let deadline = tokio::time::Instant::now() + WAIT_MAX;
    loop {
        if let Some(value) = probe().filter(|value| done(value)) {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} never reached the expected value"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Fetches the Prometheus text from `addr`.
pub async fn scrape(addr: SocketAddr) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connecting to /metrics");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await
        .expect("request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("response");
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "metrics endpoint answered: {response:.80}"
    );
    response
}

/// The value of the sample `name{labels}` in a Prometheus text scrape, 0 if absent. Every
/// given label must match; other labels are ignored.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .filter(|(series, _)| series.split('{').next() == Some(name))
        .filter(|(series, _)| {
            labels
                .iter()
                .all(|(key, value)| series.contains(&format!("{key}=\"{value}\"")))
        })
        .filter_map(|(_, value)| value.parse::<f64>().ok())
        .sum()
}

/// A device's options: client id = username = serial, password = secret, last will `offline`
/// on the status topic of `will_serial` (its own unless given).
fn options(
    mqtt: SocketAddr,
    serial: &str,
    key: &DeviceKey,
    will_serial: Option<&str>,
) -> MqttOptions {
    let mut options = MqttOptions::new(serial, mqtt.ip().to_string(), mqtt.port());
    options
        .set_credentials(serial, key.mqtt_password())
        .set_keep_alive(Duration::from_secs(5));
    let will_topic = device_topic(will_serial.unwrap_or(serial), TopicKind::Status);
    options.set_last_will(LastWill::new(will_topic, "offline", QoS::AtLeastOnce, true));
    options
}

/// What a test device's event loop observed.
#[derive(Debug)]
pub enum Seen {
    /// The broker accepted the CONNECT.
    Connected,
    /// A message arrived: (topic, payload, retained).
    Message(String, Vec<u8>, bool),
    /// The broker acknowledged a subscription.
    Subscribed,
    /// The connection ended (refused, closed by the broker, or I/O error).
    Closed(String),
}

/// A real MQTT device: client id = username = serial, password derived from its device key,
/// readings and acks MAC'd under the key as a firmware does.
pub struct Device {
    /// The serial it connects as.
    pub serial: String,
    /// What it MACs its messages under (and derives its MQTT password from).
    key: DeviceKey,
    /// Publishes and subscribes.
    pub client: AsyncClient,
    seen: mpsc::UnboundedReceiver<Seen>,
    eventloop: tokio::task::JoinHandle<()>,
}

impl Device {
    /// Connects (without waiting for the CONNACK; see [`Device::expect_connected`]). The last
    /// will is `offline` on the device's own status topic unless `will_serial` names another.
    pub fn connect(
        mqtt: SocketAddr,
        serial: &str,
        key: &DeviceKey,
        will_serial: Option<&str>,
    ) -> Device {
        Device::start(options(mqtt, serial, key, will_serial), serial, key)
    }

    /// Connects over `transport` (MQTT over TLS, see [`tls::SelfSigned::mqtt_transport`]),
    /// otherwise as [`Device::connect`] does.
    pub fn connect_over(
        transport: Transport,
        mqtt: SocketAddr,
        serial: &str,
        key: &DeviceKey,
    ) -> Device {
        let mut options = options(mqtt, serial, key, None);
        options.set_transport(transport);
        Device::start(options, serial, key)
    }

    fn start(options: MqttOptions, serial: &str, key: &DeviceKey) -> Device {
        let (client, mut eventloop) = AsyncClient::new(options, 16);
        let (report, seen) = mpsc::unbounded_channel();
        let eventloop = tokio::spawn(async move {
            loop {
                let event = match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => Seen::Connected,
                    Ok(Event::Incoming(Packet::SubAck(_))) => Seen::Subscribed,
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        Seen::Message(p.topic.to_string(), p.payload.to_vec(), p.retain)
                    }
                    Ok(_) => continue,
                    Err(error) => {
                        let _ = report.send(Seen::Closed(error.to_string()));
                        return;
                    }
                };
                if report.send(event).is_err() {
                    return;
                }
            }
        });
        Device {
            serial: serial.to_owned(),
            key: key.clone(),
            client,
            seen,
            eventloop,
        }
    }

    /// Drops the TCP connection without an MQTT DISCONNECT, as a device losing power does.
    pub fn vanish(self) {
        self.eventloop.abort();
    }

    /// Waits for the next observation.
    pub async fn next(&mut self) -> Seen {
        tokio::time::timeout(WAIT_MAX, self.seen.recv())
            .await
            .expect("device saw nothing in time")
            .unwrap_or(Seen::Closed("event loop ended".to_owned()))
    }

    /// Waits for the CONNACK, failing the test if the connection is refused.
    pub async fn expect_connected(&mut self) {
        match self.next().await {
            Seen::Connected => {}
            other => panic!("{} expected to connect, saw {other:?}", self.serial),
        }
    }

    /// Waits until the broker closes the connection, skipping other observations.
    pub async fn expect_closed(&mut self) -> String {
        loop {
            if let Seen::Closed(reason) = self.next().await {
                return reason;
            }
        }
    }

    /// Waits for the next message, skipping acks.
    pub async fn next_message(&mut self) -> (String, Vec<u8>, bool) {
        loop {
            match self.next().await {
                Seen::Message(topic, payload, retained) => return (topic, payload, retained),
                Seen::Closed(reason) => panic!(
                    "{} closed while waiting for a message: {reason}",
                    self.serial
                ),
                _ => {}
            }
        }
    }

    /// Publishes a protobuf reading of `load_wh` cumulative load watt-hours as reading `seq`
    /// of boot 1, ten minutes after the previous one, as a device's firmware does.
    pub async fn report(&self, seq: u64, load_wh: u64) {
        let reading = Telemetry {
            seq,
            ts: 1_780_000_000 + seq as i64 * 600,
            load_wh,
            boot: 1,
            ..Telemetry::default()
        };
        self.send_reading(reading).await;
    }

    /// Publishes `reading` MAC'd under the device's key.
    pub async fn send_reading(&self, reading: Telemetry) {
        let sealed = authenticity::seal(self.key.bytes(), &self.serial, reading);
        self.publish(TopicKind::Telemetry, sealed.encode_to_vec())
            .await;
    }

    /// Publishes `ack` MAC'd under the device's key.
    pub async fn send_ack(&self, ack: CommandAck) {
        let sealed = authenticity::seal(self.key.bytes(), &self.serial, ack);
        self.publish(TopicKind::Ack, sealed.encode_to_vec()).await;
    }

    /// `reading` MAC'd under the device's key, encoded, for tests that publish it themselves.
    pub fn sealed_reading(&self, reading: Telemetry) -> Vec<u8> {
        authenticity::seal(self.key.bytes(), &self.serial, reading).encode_to_vec()
    }

    /// Publishes `payload` at QoS 1 on this device's topic of `kind`.
    pub async fn publish(&self, kind: TopicKind, payload: impl Into<Vec<u8>>) {
        self.publish_as(&self.serial.clone(), kind, payload).await;
    }

    /// Publishes at QoS 1 on another serial's topic (for spoofing tests).
    pub async fn publish_as(&self, serial: &str, kind: TopicKind, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(device_topic(serial, kind), QoS::AtLeastOnce, false, payload)
            .await
            .expect("queueing publish");
    }

    /// Subscribes to `serial`'s command topic.
    pub async fn subscribe_commands_of(&self, serial: &str) {
        self.client
            .subscribe(device_topic(serial, TopicKind::Cmd), QoS::AtLeastOnce)
            .await
            .expect("queueing subscribe");
    }
}

impl TestServer {
    /// Polls `/metrics` until `name{labels}` reaches at least `value`, or fails the test.
    pub async fn wait_for_metric(&self, name: &str, labels: &[(&str, &str)], value: f64) {
        let deadline = tokio::time::Instant::now() + WAIT_MAX;
        loop {
            let now = self.metric(name, labels).await;
            if now >= value {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name}{labels:?} stayed at {now}, expected at least {value}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Device {
    /// Publishes at QoS 1 on this device's topic of `kind`, like [`Device::publish`], but
    /// returns `false` instead of failing the test when the client cannot queue the message
    /// within [`WAIT_MAX`] (its connection ended, e.g. because the server was killed).
    pub async fn try_publish(&self, kind: TopicKind, payload: impl Into<Vec<u8>>) -> bool {
        let publish = self.client.publish(
            device_topic(&self.serial, kind),
            QoS::AtLeastOnce,
            false,
            payload,
        );
        matches!(tokio::time::timeout(WAIT_MAX, publish).await, Ok(Ok(())))
    }
}
