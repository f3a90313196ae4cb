//! Fleet-wide counters: atomics every device task bumps, read as a [`FleetStats`] snapshot
//! cheaply enough to poll every few seconds during a 10,000-device run, plus the fleet's
//! publish→PUBACK latency histogram.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::latency::{LatencyRecorder, LatencySummary};

/// Shared live counters; each device holds an `Arc` of the fleet's.
#[derive(Debug, Default)]
pub struct FleetCounters {
    connected: AtomicU64,
    connects: AtomicU64,
    connection_errors: AtomicU64,
    auth_failures: AtomicU64,
    telemetry_sent: AtomicU64,
    duplicates_sent: AtomicU64,
    malformed_sent: AtomicU64,
    tampered_sent: AtomicU64,
    telemetry_acked: AtomicU64,
    acks_sent: AtomicU64,
    commands_received: AtomicU64,
    commands_forged: AtomicU64,
    devices_off: AtomicU64,
    publish_queue_full: AtomicU64,
    resets: AtomicU64,
    offline_periods: AtomicU64,
    publish_ack_latency: LatencyRecorder,
}

/// A point-in-time view of the fleet's counters; gauges say "now", the rest are totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetStats {
    /// Devices with a live MQTT session now.
    pub connected: u64,
    /// Successful CONNECTs, including reconnects.
    pub connects: u64,
    /// Connections that failed or dropped, including refusals.
    pub connection_errors: u64,
    /// CONNECTs refused for bad credentials: a CONNACK saying so, or the broker closing the
    /// connection before any CONNACK (how rumqttd's auth hook refuses).
    pub auth_failures: u64,
    /// Valid readings handed to the MQTT client.
    pub telemetry_sent: u64,
    /// Duplicate copies of readings handed to the MQTT client.
    pub duplicates_sent: u64,
    /// Garbage payloads handed to the MQTT client.
    pub malformed_sent: u64,
    /// Tampered copies of readings (a MAC that does not match) handed to the MQTT client;
    /// the platform should count each as `bad_mac`.
    pub tampered_sent: u64,
    /// Readings (valid or duplicate) the broker acknowledged.
    pub telemetry_acked: u64,
    /// Command acknowledgements handed to the MQTT client.
    pub acks_sent: u64,
    /// Commands received, including retained re-deliveries.
    pub commands_received: u64,
    /// Commands refused because their signature did not verify under the owner's key.
    pub commands_forged: u64,
    /// Devices whose load is switched off now.
    pub devices_off: u64,
    /// Publishes dropped because a device's bounded request queue was full.
    pub publish_queue_full: u64,
    /// Injected reboots.
    pub resets: u64,
    /// Injected offline periods.
    pub offline_periods: u64,
    /// Time from handing a reading to the MQTT client to the broker's PUBACK, since the
    /// start or the last [`Fleet::reset_latency`](crate::Fleet::reset_latency).
    pub publish_ack_latency: LatencySummary,
}

/// A counter a device bumps by one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Count {
    Connects,
    ConnectionErrors,
    AuthFailures,
    TelemetrySent,
    DuplicatesSent,
    MalformedSent,
    TamperedSent,
    TelemetryAcked,
    AcksSent,
    CommandsReceived,
    CommandsForged,
    PublishQueueFull,
    Resets,
    OfflinePeriods,
}

/// A gauge a device moves up and down in pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gauge {
    Connected,
    DevicesOff,
}

impl FleetCounters {
    fn counter(&self, count: Count) -> &AtomicU64 {
        match count {
            Count::Connects => &self.connects,
            Count::ConnectionErrors => &self.connection_errors,
            Count::AuthFailures => &self.auth_failures,
            Count::TelemetrySent => &self.telemetry_sent,
            Count::DuplicatesSent => &self.duplicates_sent,
            Count::MalformedSent => &self.malformed_sent,
            Count::TamperedSent => &self.tampered_sent,
            Count::TelemetryAcked => &self.telemetry_acked,
            Count::AcksSent => &self.acks_sent,
            Count::CommandsReceived => &self.commands_received,
            Count::CommandsForged => &self.commands_forged,
            Count::PublishQueueFull => &self.publish_queue_full,
            Count::Resets => &self.resets,
            Count::OfflinePeriods => &self.offline_periods,
        }
    }

    fn gauge(&self, gauge: Gauge) -> &AtomicU64 {
        match gauge {
            Gauge::Connected => &self.connected,
            Gauge::DevicesOff => &self.devices_off,
        }
    }

    pub(crate) fn bump(&self, count: Count) {
        self.counter(count).fetch_add(1, Ordering::Relaxed);
    }

    /// Moves a gauge by one; every decrement pairs with an earlier increment by the same
    /// device, so the gauge never goes below zero.
    pub(crate) fn set(&self, gauge: Gauge, up: bool) {
        if up {
            self.gauge(gauge).fetch_add(1, Ordering::Relaxed);
        } else {
            self.gauge(gauge).fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// A reading was acknowledged `latency` after it was handed to the client.
    pub(crate) fn record_ack_latency(&self, latency: Duration) {
        self.publish_ack_latency.record(latency);
    }

    /// Forgets the latency samples so far.
    pub(crate) fn reset_latency(&self) {
        self.publish_ack_latency.reset();
    }

    /// The counters now. Each is read independently, so totals may be off by the few events
    /// that happened during the read.
    pub fn snapshot(&self) -> FleetStats {
        let read = |a: &AtomicU64| a.load(Ordering::Relaxed);
        FleetStats {
            connected: read(&self.connected),
            connects: read(&self.connects),
            connection_errors: read(&self.connection_errors),
            auth_failures: read(&self.auth_failures),
            telemetry_sent: read(&self.telemetry_sent),
            duplicates_sent: read(&self.duplicates_sent),
            malformed_sent: read(&self.malformed_sent),
            tampered_sent: read(&self.tampered_sent),
            telemetry_acked: read(&self.telemetry_acked),
            acks_sent: read(&self.acks_sent),
            commands_received: read(&self.commands_received),
            commands_forged: read(&self.commands_forged),
            devices_off: read(&self.devices_off),
            publish_queue_full: read(&self.publish_queue_full),
            resets: read(&self.resets),
            offline_periods: read(&self.offline_periods),
            publish_ack_latency: self.publish_ack_latency.summary(),
        }
    }
}
