//! One simulated control unit as a real MQTT client: a [`DeviceModel`] for the firmware
//! logic, a rumqttc event loop for the wire, and ground truth recorded as it acts.
//!
//! The fleet drives many of these from `device_task.rs`; a test drives one directly with
//! [`SimDevice::connect`], [`SimDevice::publish_telemetry_now`] and
//! [`SimDevice::wait_for_command`], each of which polls the event loop until its effect is
//! acknowledged. Event handling lives in `device/session.rs`.

mod session;

use ed25519_dalek::VerifyingKey;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rumqttc::{AsyncClient, EventLoop, LastWill, MqttOptions, QoS};
use sunledger_proto::authenticity::{self, Authenticated, DeviceKey};
use sunledger_proto::device::{Command, LoadState, Telemetry};
use sunledger_proto::topic::{TopicKind, device_topic, validate_serial};

use crate::clock::SimClock;
use crate::config::SimConfig;
use crate::device_model::DeviceModel;
use crate::error::{DeviceError, SimError, WaitedFor};
use crate::faults::{FaultInjector, IntervalFaults};
use crate::load_curve::{Consumption, LoadCurve};
use crate::outbox::{Outbox, Tag};
use crate::seed::{Stream, device_seed, stream_seed};
use crate::stats::{FleetCounters, FleetStats};
use crate::truth::{DeviceTruth, TruthRecorder};

pub(crate) use session::{Step, TickAction};

/// Events pre-allocated per device event loop (rumqttc's default is 100).
const EVENT_BUFFER_CAPACITY: usize = 16;
/// Payload of the retained status message while the device is connected.
const STATUS_ONLINE: &str = "online";
/// Payload of the retained status message (and last will) while it is not.
const STATUS_OFFLINE: &str = "offline";

/// What a unit is flashed with: its serial (client id and username), its device key (which
/// its MQTT password is derived from and its messages are sealed under), and what it checks
/// commands with.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceCredentials {
    /// The unit's serial; also its MQTT client id and username.
    pub serial: String,
    /// The unit's device key, as `RegisterUnit` returned it: the platform refuses a reading
    /// or ack without a MAC under it, and the MQTT password is derived from it.
    pub device_key: DeviceKey,
    /// The owner's command-verification key, as flashed into the unit: a command whose
    /// signature does not verify under it is ignored. `None` accepts any (older files).
    pub command_key: Option<VerifyingKey>,
}

impl std::fmt::Debug for DeviceCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceCredentials")
            .field("serial", &self.serial)
            .field("device_key", &"<redacted>")
            .finish()
    }
}

impl DeviceCredentials {
    /// The MQTT password, derived from the device key as the unit's firmware derives it.
    pub fn mqtt_password(&self) -> String {
        authenticity::mqtt_password(&self.device_key)
    }
}

/// The four topics of one device, built once so publishing does not format strings.
#[derive(Debug)]
struct Topics {
    telemetry: String,
    cmd: String,
    ack: String,
    status: String,
}

impl Topics {
    fn for_serial(serial: &str) -> Topics {
        Topics {
            telemetry: device_topic(serial, TopicKind::Telemetry),
            cmd: device_topic(serial, TopicKind::Cmd),
            ack: device_topic(serial, TopicKind::Ack),
            status: device_topic(serial, TopicKind::Status),
        }
    }
}

/// A simulated control unit with its own MQTT connection.
pub struct SimDevice {
    serial: String,
    seed: u64,
    topics: Topics,
    client: AsyncClient,
    eventloop: EventLoop,
    model: DeviceModel,
    /// Every reading and ack is sealed under this key, as the platform requires.
    device_key: DeviceKey,
    /// Commands are accepted only if signed under this key (when known).
    command_key: Option<VerifyingKey>,
    faults: FaultInjector,
    outbox: Outbox,
    truth: Arc<Mutex<TruthRecorder>>,
    counters: Arc<FleetCounters>,
    clock: SimClock,
    /// Whether a CONNACK arrived and the session has not ended since.
    connected: bool,
    connect_timeout: Duration,
    delivery_timeout: Duration,
    shutdown_drain: Duration,
}

impl SimDevice {
    /// A device on its own clock and counters, for tests that drive one unit; validates the
    /// configuration and serial first.
    pub fn new(config: &SimConfig, credentials: DeviceCredentials) -> Result<SimDevice, SimError> {
        config.validate()?;
        let clock = SimClock::start(config.sim_start_unix_s, config.time_scale);
        SimDevice::build(config, credentials, clock, Arc::default())
    }

    /// A device sharing the fleet's clock and counters; `config` is already validated.
    pub(crate) fn build(
        config: &SimConfig,
        credentials: DeviceCredentials,
        clock: SimClock,
        counters: Arc<FleetCounters>,
    ) -> Result<SimDevice, SimError> {
        let password = credentials.mqtt_password();
        let DeviceCredentials {
            serial,
            device_key,
            command_key,
        } = credentials;
        if let Err(source) = validate_serial(&serial) {
            return Err(SimError::InvalidSerial { serial, source });
        }
        let seed = device_seed(config.seed, &serial);
        let topics = Topics::for_serial(&serial);
        let (client, eventloop) = mqtt_client(config, &serial, password, &topics.status);
        let mut curve_rng = StdRng::seed_from_u64(stream_seed(seed, Stream::LoadCurve));
        let curve = LoadCurve::random(&mut curve_rng, config.utc_offset_minutes);
        let model = DeviceModel::new(Consumption::Curve(curve), clock.now_ms(), power_up_boot());
        let truth = TruthRecorder::new(serial.clone(), seed, model.boot(), config.command_log_max);
        Ok(SimDevice {
            faults: FaultInjector::new(config.faults.clone(), stream_seed(seed, Stream::Faults)),
            serial,
            seed,
            topics,
            client,
            eventloop,
            model,
            device_key,
            command_key,
            outbox: Outbox::default(),
            truth: Arc::new(Mutex::new(truth)),
            counters,
            clock,
            connected: false,
            connect_timeout: Duration::from_secs(config.connection_timeout_s),
            delivery_timeout: Duration::from_millis(config.delivery_timeout_ms),
            shutdown_drain: Duration::from_millis(config.shutdown_drain_ms),
        })
    }

    /// The unit's serial.
    pub fn serial(&self) -> &str {
        &self.serial
    }

    /// The unit's seed, derived from the fleet seed and the serial; it replays the unit's
    /// load curve and fault schedule.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Whether the device has a live MQTT session.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Connects, subscribes to the command topic and marks itself online; returns once the
    /// broker acknowledged the subscription, so a retained command arrives next.
    pub async fn connect(&mut self) -> Result<(), SimError> {
        if self.connected {
            return Ok(());
        }
        let timeout = self.connect_timeout;
        self.drive_until(WaitedFor::Connect, timeout, |_, step| {
            matches!(step, Step::Subscribed)
        })
        .await
        .map(drop)
        .map_err(|cause| self.fail(cause))
    }

    /// Publishes a reading now and waits until the broker acknowledged it; returns the
    /// reading as sent, MAC included.
    pub async fn publish_telemetry_now(&mut self) -> Result<Telemetry, SimError> {
        let reading = self
            .publish_reading(IntervalFaults::default())
            .map_err(|cause| self.fail(cause))?;
        self.wait_for_delivery().await?;
        Ok(reading)
    }

    /// Waits for a command that the device applies or re-acknowledges, and for the broker to
    /// acknowledge the device's `CommandAck`; stale and invalid commands are skipped.
    pub async fn wait_for_command(&mut self, timeout: Duration) -> Result<Command, SimError> {
        let step = self
            .drive_until(
                WaitedFor::Command,
                timeout,
                |_, step| matches!(step, Step::Command(_, outcome) if outcome.needs_ack()),
            )
            .await
            .map_err(|cause| self.fail(cause))?;
        self.wait_for_delivery().await?;
        match step {
            Step::Command(command, _) => Ok(command),
            _ => unreachable!("drive_until returns the step that matched"),
        }
    }

    /// Replaces the demand source from now on, e.g. a constant power for exact counters.
    pub fn set_consumption(&mut self, consumption: Consumption) {
        self.model.set_consumption(consumption, self.clock.now_ms());
    }

    /// Whether the load output is switched on or off.
    pub fn load_state(&self) -> LoadState {
        self.model.load_state()
    }

    /// The firmware state, for assertions on counters, boot and sequence.
    pub fn model(&self) -> &DeviceModel {
        &self.model
    }

    /// This device's ground truth now.
    pub fn truth(&self) -> DeviceTruth {
        let counted = self.model.counters();
        let mut truth = self.lock_truth();
        truth.on_counted(counted);
        truth.snapshot()
    }

    /// The counters this device contributes to (its own unless built by a fleet).
    pub fn stats(&self) -> FleetStats {
        self.counters.snapshot()
    }

    /// Reboots the unit now, as the reset fault does.
    pub fn reset_now(&mut self) {
        self.inject_reset();
    }

    /// Drops the TCP connection without a DISCONNECT, as a unit losing its network does, so
    /// the broker publishes the last will.
    pub fn simulate_network_loss(&mut self) {
        self.drop_connection();
    }

    /// Marks itself offline, waits for queued publishes to be acknowledged, and disconnects
    /// cleanly.
    pub async fn disconnect(&mut self) -> Result<(), SimError> {
        if !self.connected {
            return Ok(());
        }
        let status = self.topics.status.clone();
        // A full queue only loses the status update; the disconnect still proceeds.
        let _ = self.enqueue(status, STATUS_OFFLINE.into(), true, Tag::Other);
        let drain = self.shutdown_drain;
        let _ = self
            .drive_until(WaitedFor::Delivery, drain, |device, _| {
                device.outbox.is_empty()
            })
            .await;
        let result = match self.client.try_disconnect() {
            Ok(()) => self
                .drive_until(WaitedFor::Disconnect, drain, |_, step| {
                    matches!(step, Step::DisconnectSent)
                })
                .await
                .map(drop),
            Err(e) => Err(DeviceError::from(e)),
        };
        self.drop_session();
        result.map_err(|cause| self.fail(cause))
    }

    async fn wait_for_delivery(&mut self) -> Result<(), SimError> {
        if self.outbox.is_empty() {
            return Ok(());
        }
        let timeout = self.delivery_timeout;
        self.drive_until(WaitedFor::Delivery, timeout, |device, _| {
            device.outbox.is_empty()
        })
        .await
        .map(drop)
        .map_err(|cause| self.fail(cause))
    }

    /// Wraps a device error with the serial and seed that replay it.
    fn fail(&self, cause: DeviceError) -> SimError {
        SimError::Device {
            serial: self.serial.clone(),
            seed: self.seed,
            cause,
        }
    }

    /// `message` with the MAC this unit's firmware puts on it before publishing.
    fn seal<M: Authenticated>(&self, message: M) -> M {
        authenticity::seal(&self.device_key, &self.serial, message)
    }

    fn lock_truth(&self) -> MutexGuard<'_, TruthRecorder> {
        // The recorder holds plain counters; a panic mid-update cannot break an invariant
        // that matters more than losing the run's truth.
        self.truth.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn truth_handle(&self) -> Arc<Mutex<TruthRecorder>> {
        Arc::clone(&self.truth)
    }
}

/// A rumqttc client sized for thousands per process: few in-flight publishes, a short
/// request queue, small packets; last will marks the unit offline.
fn mqtt_client(
    config: &SimConfig,
    serial: &str,
    password: String,
    status_topic: &str,
) -> (AsyncClient, EventLoop) {
    let mut options = MqttOptions::new(serial, config.broker_host.clone(), config.broker_port);
    options
        .set_credentials(serial, password)
        .set_keep_alive(Duration::from_secs(config.keep_alive_s))
        .set_clean_session(true)
        .set_inflight(config.inflight_max)
        .set_request_channel_capacity(config.request_channel_capacity)
        .set_max_packet_size(config.packet_bytes_max, config.packet_bytes_max)
        .set_last_will(LastWill::new(
            status_topic,
            STATUS_OFFLINE,
            QoS::AtLeastOnce,
            true,
        ));
    let (client, mut eventloop) = AsyncClient::new(options, config.request_channel_capacity);
    eventloop
        .network_options
        .set_connection_timeout(config.connection_timeout_s);
    // rumqttc pre-sizes its event buffer for 100 events; one read yields at most ten
    // packets, so a small buffer that grows on demand saves kilobytes per device.
    eventloop.state.events.shrink_to(EVENT_BUFFER_CAPACITY);
    (client, eventloop)
}

/// The boot number a simulated unit starts with: the wall-clock second it powers up. A
/// simulator run is a power-up of its units; starting every run at boot 1 would repeat the
/// (boot, seq) pairs an earlier run against the same platform already sent, and the platform
/// rightly ignores those as old readings. A later run starts at a higher boot.
fn power_up_boot() -> u32 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    u32::try_from(since_epoch.as_secs()).unwrap_or(u32::MAX)
}
