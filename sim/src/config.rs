//! Typed simulator configuration with defaults, validated once before any device starts.

use serde::Deserialize;

use crate::error::SimError;

/// The built-in configuration as TOML; parses to [`SimConfig::default`] (a unit test holds
/// them equal), so an operator can copy it and change one line.
pub const DEFAULT_TOML: &str = r#"
broker_host = "127.0.0.1"
broker_port = 1883
report_interval_ms = 10000
time_scale = 60.0
seed = 1
utc_offset_minutes = 0
connect_concurrency = 64
keep_alive_s = 30
connection_timeout_s = 15
inflight_max = 4
request_channel_capacity = 10
packet_bytes_max = 4096
reconnect_backoff_initial_ms = 500
reconnect_backoff_max_ms = 30000
delivery_timeout_ms = 5000
shutdown_drain_ms = 2000
command_log_max = 256

[faults]
offline_per_report = 0.0
offline_reports_max = 10
reset_per_report = 0.0
duplicate_per_report = 0.0
malformed_per_report = 0.0
tampered_per_report = 0.0

[keypad]
payment_interval_ms = 5000
small_per_payment = 0.25
bulk_per_payment = 0.01
repeat_per_payment = 0.1
payments_in_flight_max = 16
"#;

/// Why a rate is refused.
const PROBABILITY: &str = "must be a probability in [0, 1]";

/// How a simulated fleet behaves: where the broker is, how fast simulated time runs, how
/// hard connections are throttled, and how often faults are injected.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// Host name or address of the MQTT broker the devices connect to.
    pub broker_host: String,
    /// TCP port of the broker's plain MQTT listener.
    pub broker_port: u16,
    /// Real time between two telemetry reports of one device.
    pub report_interval_ms: u64,
    /// Simulated seconds per real second; 60 makes one real second a simulated minute so a
    /// daily load curve plays out in 24 real minutes.
    pub time_scale: f64,
    /// Root of every random choice (load scales, faults, jitter); the same seed replays a run.
    pub seed: u64,
    /// Simulated unix time, in seconds, when the fleet starts; `None` starts at the real clock.
    pub sim_start_unix_s: Option<i64>,
    /// Offset of the devices' local time from UTC, so the evening peak falls in local evening.
    pub utc_offset_minutes: i32,
    /// Most devices connecting at once; a broker that authenticates every CONNECT is swamped
    /// by 10,000 simultaneous handshakes otherwise.
    pub connect_concurrency: usize,
    /// MQTT keep-alive; the broker publishes the last will after 1.5 times this of silence.
    pub keep_alive_s: u64,
    /// Longest wait for TCP connect plus CONNACK before the attempt counts as failed. Generous:
    /// an abandoned handshake the broker later completes is wasted work in a connect storm.
    pub connection_timeout_s: u64,
    /// Most unacknowledged QoS 1 publishes per device; small keeps per-device memory small.
    pub inflight_max: u16,
    /// Capacity of each device's request queue into its MQTT event loop; a full queue drops
    /// the publish and is counted in `publish_queue_full`.
    pub request_channel_capacity: usize,
    /// Largest MQTT packet a device sends or accepts; commands and telemetry are tiny.
    pub packet_bytes_max: usize,
    /// First reconnect delay after a failed or dropped connection; doubles per failure.
    pub reconnect_backoff_initial_ms: u64,
    /// Cap of the reconnect delay, so a device refused for bad credentials keeps retrying
    /// at a bounded rate.
    pub reconnect_backoff_max_ms: u64,
    /// How long a single-device call (`publish_telemetry_now`) waits for the broker's PUBACK.
    pub delivery_timeout_ms: u64,
    /// How long shutdown waits for queued publishes to be acknowledged before disconnecting.
    pub shutdown_drain_ms: u64,
    /// Most command receipts kept per device in ground truth; more are counted, not stored.
    pub command_log_max: usize,
    /// Fault injection rates; all zero by default.
    pub faults: FaultRates,
    /// How keypad units are paid for, when the run has any.
    pub keypad: KeypadPayments,
}

/// How the simulated mobile-money provider pays for keypad units: when, how much, and how
/// often it sends a payment notification twice.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeypadPayments {
    /// Mean real time between two payments for one unit; each wait is drawn from zero to
    /// twice this, so units do not pay in step.
    pub payment_interval_ms: u64,
    /// Chance that a payment is smaller than a day's price: it buys nothing until a later
    /// payment completes the day, which the ground truth must follow exactly.
    pub small_per_payment: f64,
    /// Chance that a payment buys more days than one token carries (995), so the platform
    /// splits it over several tokens.
    pub bulk_per_payment: f64,
    /// Chance that the provider sends an earlier payment's reference again instead of a new
    /// payment; the platform must return the same tokens, and the unit refuse them as used.
    pub repeat_per_payment: f64,
    /// Most payment calls in flight at once across all keypad units, since each waits for a
    /// durable commit; a payment that has to wait for a slot is counted.
    pub payments_in_flight_max: usize,
}

impl Default for KeypadPayments {
    fn default() -> Self {
        KeypadPayments {
            payment_interval_ms: 5_000,
            small_per_payment: 0.25,
            bulk_per_payment: 0.01,
            repeat_per_payment: 0.1,
            payments_in_flight_max: 16,
        }
    }
}

impl KeypadPayments {
    fn validate(&self) -> Result<(), SimError> {
        let rates = [
            (self.small_per_payment, "keypad.small_per_payment"),
            (self.bulk_per_payment, "keypad.bulk_per_payment"),
            (self.repeat_per_payment, "keypad.repeat_per_payment"),
        ];
        let checks = rates
            .map(|(rate, field)| ((0.0..=1.0).contains(&rate), field, PROBABILITY))
            .into_iter()
            .chain([
                (
                    self.small_per_payment + self.bulk_per_payment <= 1.0,
                    "keypad.bulk_per_payment",
                    "plus keypad.small_per_payment must be at most 1",
                ),
                (
                    self.payment_interval_ms >= 1,
                    "keypad.payment_interval_ms",
                    "must be at least 1",
                ),
                (
                    self.payments_in_flight_max >= 1,
                    "keypad.payments_in_flight_max",
                    "must be at least 1",
                ),
            ]);
        for (ok, field, reason) in checks {
            if !ok {
                return Err(SimError::InvalidConfig { field, reason });
            }
        }
        Ok(())
    }
}

/// Probabilities, per report interval of one device, of each injected fault.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultRates {
    /// Chance that a connected device drops off the network (abruptly, so its last will
    /// fires) instead of reporting; it keeps counting energy while away.
    pub offline_per_report: f64,
    /// Longest offline period, in report intervals; each period lasts 1..=this many.
    pub offline_reports_max: u32,
    /// Chance that the device reboots: `boot` increments, counters and `seq` restart.
    pub reset_per_report: f64,
    /// Chance that a report is published twice with the same `(boot, seq)`.
    pub duplicate_per_report: f64,
    /// Chance that garbage bytes are also published on the telemetry topic.
    pub malformed_per_report: f64,
    /// Chance that a tampered copy of the report is also published, as someone rewriting
    /// the unit's traffic would send it: its MAC no longer matches, so the platform must
    /// refuse it (`bad_mac`) and the audit finds out if it did not.
    pub tampered_per_report: f64,
}

impl Default for FaultRates {
    fn default() -> Self {
        FaultRates {
            offline_per_report: 0.0,
            offline_reports_max: 10,
            reset_per_report: 0.0,
            duplicate_per_report: 0.0,
            malformed_per_report: 0.0,
            tampered_per_report: 0.0,
        }
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            broker_host: "127.0.0.1".to_owned(),
            broker_port: 1883,
            report_interval_ms: 10_000,
            time_scale: 60.0,
            seed: 1,
            sim_start_unix_s: None,
            utc_offset_minutes: 0,
            connect_concurrency: 64,
            keep_alive_s: 30,
            connection_timeout_s: 15,
            inflight_max: 4,
            request_channel_capacity: 10,
            packet_bytes_max: 4096,
            reconnect_backoff_initial_ms: 500,
            reconnect_backoff_max_ms: 30_000,
            delivery_timeout_ms: 5_000,
            shutdown_drain_ms: 2_000,
            command_log_max: 256,
            faults: FaultRates::default(),
            keypad: KeypadPayments::default(),
        }
    }
}

impl SimConfig {
    /// A preset for tests: fast reports and retries, tiny queues and logs, so tests reach
    /// the limits quickly.
    pub fn for_tests() -> Self {
        SimConfig {
            report_interval_ms: 100,
            time_scale: 600.0,
            connect_concurrency: 4,
            keep_alive_s: 5,
            connection_timeout_s: 2,
            inflight_max: 2,
            request_channel_capacity: 4,
            packet_bytes_max: 512,
            reconnect_backoff_initial_ms: 20,
            reconnect_backoff_max_ms: 200,
            delivery_timeout_ms: 2_000,
            shutdown_drain_ms: 500,
            command_log_max: 8,
            keypad: KeypadPayments {
                payment_interval_ms: 20,
                payments_in_flight_max: 2,
                ..KeypadPayments::default()
            },
            ..SimConfig::default()
        }
    }

    /// Parses TOML; missing fields take their defaults. Call [`SimConfig::validate`] after.
    pub fn from_toml_str(text: &str) -> Result<SimConfig, SimError> {
        Ok(toml::from_str(text)?)
    }

    /// Checks every field once, so devices never meet a value they cannot run with.
    pub fn validate(&self) -> Result<(), SimError> {
        let checks: [(bool, &'static str, &'static str); 13] = [
            (
                !self.broker_host.is_empty(),
                "broker_host",
                "must not be empty",
            ),
            (self.broker_port != 0, "broker_port", "must not be 0"),
            (
                self.report_interval_ms >= 1,
                "report_interval_ms",
                "must be at least 1",
            ),
            (
                self.time_scale.is_finite() && self.time_scale > 0.0 && self.time_scale <= 1e6,
                "time_scale",
                "must be a finite number in (0, 1e6]",
            ),
            (
                self.connect_concurrency >= 1,
                "connect_concurrency",
                "must be at least 1",
            ),
            (self.keep_alive_s >= 1, "keep_alive_s", "must be at least 1"),
            (
                self.connection_timeout_s >= 1,
                "connection_timeout_s",
                "must be at least 1",
            ),
            (self.inflight_max >= 1, "inflight_max", "must be at least 1"),
            (
                self.request_channel_capacity >= 1,
                "request_channel_capacity",
                "must be at least 1",
            ),
            (
                self.packet_bytes_max >= 128,
                "packet_bytes_max",
                "must be at least 128",
            ),
            (
                self.reconnect_backoff_initial_ms >= 1,
                "reconnect_backoff_initial_ms",
                "must be at least 1",
            ),
            (
                self.reconnect_backoff_max_ms >= self.reconnect_backoff_initial_ms,
                "reconnect_backoff_max_ms",
                "must be at least reconnect_backoff_initial_ms",
            ),
            (
                self.command_log_max >= 1,
                "command_log_max",
                "must be at least 1",
            ),
        ];
        for (ok, field, reason) in checks {
            if !ok {
                return Err(SimError::InvalidConfig { field, reason });
            }
        }
        self.faults.validate()?;
        self.keypad.validate()
    }
}

impl FaultRates {
    fn validate(&self) -> Result<(), SimError> {
        let rates = [
            (self.offline_per_report, "faults.offline_per_report"),
            (self.reset_per_report, "faults.reset_per_report"),
            (self.duplicate_per_report, "faults.duplicate_per_report"),
            (self.malformed_per_report, "faults.malformed_per_report"),
            (self.tampered_per_report, "faults.tampered_per_report"),
        ];
        for (rate, field) in rates {
            if !(0.0..=1.0).contains(&rate) {
                return Err(SimError::InvalidConfig {
                    field,
                    reason: PROBABILITY,
                });
            }
        }
        if self.offline_reports_max == 0 {
            return Err(SimError::InvalidConfig {
                field: "faults.offline_reports_max",
                reason: "must be at least 1",
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_toml_parses_to_the_default_config() {
        let parsed = SimConfig::from_toml_str(DEFAULT_TOML).unwrap();
        assert_eq!(parsed, SimConfig::default());
        parsed.validate().unwrap();
        SimConfig::for_tests().validate().unwrap();
    }

    #[test]
    fn validate_names_the_offending_field() {
        let faults = FaultRates {
            duplicate_per_report: 1.5,
            ..FaultRates::default()
        };
        let cases = [
            (
                SimConfig {
                    broker_port: 0,
                    ..SimConfig::default()
                },
                "broker_port",
            ),
            (
                SimConfig {
                    time_scale: f64::NAN,
                    ..SimConfig::default()
                },
                "time_scale",
            ),
            (
                SimConfig {
                    connect_concurrency: 0,
                    ..SimConfig::default()
                },
                "connect_concurrency",
            ),
            (
                SimConfig {
                    inflight_max: 0,
                    ..SimConfig::default()
                },
                "inflight_max",
            ),
            (
                SimConfig {
                    reconnect_backoff_max_ms: 1,
                    ..SimConfig::default()
                },
                "reconnect_backoff_max_ms",
            ),
            (
                SimConfig {
                    faults,
                    ..SimConfig::default()
                },
                "faults.duplicate_per_report",
            ),
            (
                SimConfig {
                    keypad: KeypadPayments {
                        small_per_payment: 0.6,
                        bulk_per_payment: 0.5,
                        ..KeypadPayments::default()
                    },
                    ..SimConfig::default()
                },
                "keypad.bulk_per_payment",
            ),
            (
                SimConfig {
                    keypad: KeypadPayments {
                        payments_in_flight_max: 0,
                        ..KeypadPayments::default()
                    },
                    ..SimConfig::default()
                },
                "keypad.payments_in_flight_max",
            ),
        ];
        for (config, expected) in cases {
            match config.validate() {
                Err(SimError::InvalidConfig { field, .. }) => assert_eq!(field, expected),
                other => panic!("{expected}: expected InvalidConfig, got {other:?}"),
            }
        }
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(SimConfig::from_toml_str("brokr_port = 1").is_err());
    }
}
