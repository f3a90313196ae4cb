//! The MQTT session of a [`SimDevice`]: turning event-loop events into model calls and
//! ground truth, and model output into publishes. Kept thin; the decisions are the model's.

use std::time::{Duration, Instant};
use sunledger_proto::authenticity::verify_command;

use prost::Message;
use rumqttc::{ConnectionError, Event, Outgoing, Packet, Publish, QoS};
use sunledger_proto::device::{Command, LoadState, Telemetry};

use super::{STATUS_ONLINE, SimDevice};
use crate::clock::real_unix_ms;
use crate::device_model::CommandOutcome;
use crate::error::{DeviceError, WaitedFor, is_login_refusal};
use crate::faults::IntervalFaults;
use crate::outbox::Tag;
use crate::stats::{Count, Gauge};
use crate::truth::{CommandReceipt, SentKind};

/// How far ahead in sequence a tampered copy claims to be: far enough that, were it accepted,
/// the platform would ignore the unit's genuine readings for the rest of a run as old ones.
const TAMPERED_SEQ_AHEAD: u64 = 1_000_000;
/// How much later a tampered copy claims to be taken (seconds): long enough that its extra
/// watt-hour is well within any rated power, so a platform that took it would bill it.
const TAMPERED_LATER_S: i64 = 60;

/// What one event-loop event meant to the device.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    /// The broker accepted the CONNECT.
    Connected,
    /// The broker accepted the command-topic subscription.
    Subscribed,
    /// A command arrived and was handled with this outcome.
    Command(Command, CommandOutcome),
    /// The broker acknowledged a publish.
    Delivered,
    /// The DISCONNECT was written.
    DisconnectSent,
    /// Nothing the device cares about (pings, outgoing bookkeeping).
    Nothing,
}

/// What the fleet loop should do after a report interval of a connected device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TickAction {
    /// Keep the session.
    Stay,
    /// The connection was dropped on purpose; stay away for this many intervals.
    GoOffline(u32),
}

impl SimDevice {
    /// Polls the event loop, handling every event, until `done` holds or `timeout` passes;
    /// returns the step that satisfied `done`.
    pub(crate) async fn drive_until(
        &mut self,
        what: WaitedFor,
        timeout: Duration,
        done: impl Fn(&SimDevice, &Step) -> bool,
    ) -> Result<Step, DeviceError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let event = match tokio::time::timeout_at(deadline, self.eventloop.poll()).await {
                Err(_elapsed) => {
                    let after_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
                    return Err(DeviceError::Timeout { what, after_ms });
                }
                Ok(Err(error)) => {
                    self.on_connection_lost(&error);
                    return Err(error.into());
                }
                Ok(Ok(event)) => event,
            };
            let step = self.on_event(event);
            if done(self, &step) {
                return Ok(step);
            }
        }
    }

    /// Polls once for the CONNACK; the fleet loop holds a connect permit meanwhile.
    pub(crate) async fn connect_once(&mut self) -> Result<(), DeviceError> {
        let timeout = self.connect_timeout;
        self.drive_until(WaitedFor::Connect, timeout, |_, step| {
            matches!(step, Step::Connected)
        })
        .await
        .map(drop)
    }

    /// Polls the event loop once and handles the event; for the fleet loop's `select!`.
    pub(crate) async fn poll_once(&mut self) -> Result<Step, ConnectionError> {
        match self.eventloop.poll().await {
            Ok(event) => Ok(self.on_event(event)),
            Err(error) => {
                self.on_connection_lost(&error);
                Err(error)
            }
        }
    }

    pub(crate) fn on_event(&mut self, event: Event) -> Step {
        match event {
            Event::Incoming(Packet::ConnAck(_)) => {
                self.on_connected();
                Step::Connected
            }
            Event::Incoming(Packet::SubAck(_)) => Step::Subscribed,
            Event::Incoming(Packet::Publish(publish)) => self.on_publish(&publish),
            Event::Incoming(Packet::PubAck(ack)) => {
                if let Some((Tag::Reading { boot, counters }, latency)) =
                    self.outbox.on_acked(ack.pkid)
                {
                    self.lock_truth().on_acked(boot, counters);
                    self.counters.bump(Count::TelemetryAcked);
                    self.counters.record_ack_latency(latency);
                }
                Step::Delivered
            }
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                if let Some(Tag::Reading { boot, counters }) = self.outbox.on_written(pkid) {
                    self.lock_truth().on_written(boot, counters);
                }
                Step::Nothing
            }
            Event::Outgoing(Outgoing::Disconnect) => Step::DisconnectSent,
            Event::Incoming(_) | Event::Outgoing(_) => Step::Nothing,
        }
    }

    fn on_connected(&mut self) {
        if !self.connected {
            self.connected = true;
            self.counters.set(Gauge::Connected, true);
        }
        self.counters.bump(Count::Connects);
        // The queue was emptied when the last session ended, so these fit; if not, the
        // failure is counted and the next reconnect tries again.
        if self
            .client
            .try_subscribe(self.topics.cmd.clone(), QoS::AtLeastOnce)
            .is_err()
        {
            self.counters.bump(Count::PublishQueueFull);
        }
        let status = self.topics.status.clone();
        let _ = self.enqueue(status, STATUS_ONLINE.into(), true, Tag::Other);
    }

    /// Records a failed or dropped connection; the event loop reconnects on the next poll.
    pub(crate) fn on_connection_lost(&mut self, error: &ConnectionError) {
        let was_connected = self.connected;
        self.drop_session();
        self.counters.bump(Count::ConnectionErrors);
        if !was_connected && is_login_refusal(error) {
            self.counters.bump(Count::AuthFailures);
        }
        tracing::debug!(serial = %self.serial, seed = self.seed, %error, "connection lost");
    }

    /// Forgets the session: a clean-session reconnect will not retransmit what was queued.
    pub(crate) fn drop_session(&mut self) {
        if self.connected {
            self.connected = false;
            self.counters.set(Gauge::Connected, false);
        }
        self.outbox.clear();
    }

    /// Closes the socket without a DISCONNECT, so the broker publishes the last will.
    pub(crate) fn drop_connection(&mut self) {
        self.eventloop.clean();
        self.drop_session();
        self.lock_truth().on_offline();
        self.counters.bump(Count::OfflinePeriods);
    }

    fn on_publish(&mut self, publish: &Publish) -> Step {
        if publish.topic != self.topics.cmd {
            return Step::Nothing;
        }
        let Ok(command) = Command::decode(publish.payload.as_ref()) else {
            tracing::debug!(serial = %self.serial, "undecodable command ignored");
            return Step::Nothing;
        };
        // As firmware does: only the owner's signed commands count; a forged one is ignored
        // and not acknowledged (the platform re-publishes the genuine one).
        if let Some(key) = &self.command_key
            && !verify_command(key, &self.serial, &command)
        {
            self.counters.bump(Count::CommandsForged);
            tracing::debug!(serial = %self.serial, cmd_id = command.cmd_id, "command with a bad signature ignored");
            return Step::Nothing;
        }
        let now_ms = self.clock.now_ms();
        let was_on = self.model.load_on();
        let outcome = self.model.handle_command(&command, now_ms);
        let load_on = self.model.load_on();
        if was_on != load_on {
            self.counters.set(Gauge::DevicesOff, !load_on);
        }
        self.counters.bump(Count::CommandsReceived);
        let receipt = CommandReceipt {
            cmd_id: command.cmd_id,
            load: LoadState::try_from(command.load).unwrap_or(LoadState::Unspecified),
            outcome,
            received_at: Instant::now(),
            received_sim_ms: now_ms,
            issued_unix_s: command.ts,
            received_unix_ms: real_unix_ms(),
        };
        self.lock_truth().on_command(receipt, load_on);
        if let (true, Some(ack)) = (outcome.needs_ack(), self.model.current_ack()) {
            let topic = self.topics.ack.clone();
            let payload = self.seal(ack).encode_to_vec();
            if self.enqueue(topic, payload, false, Tag::Other).is_ok() {
                self.lock_truth().on_ack_sent();
                self.counters.bump(Count::AcksSent);
            }
        }
        Step::Command(command, outcome)
    }

    /// Hands a QoS 1 publish to the client without waiting: the same task polls the event
    /// loop, so awaiting queue space would deadlock. A full queue is counted and refused.
    pub(crate) fn enqueue(
        &mut self,
        topic: String,
        payload: Vec<u8>,
        retain: bool,
        tag: Tag,
    ) -> Result<(), DeviceError> {
        match self
            .client
            .try_publish(topic, QoS::AtLeastOnce, retain, payload)
        {
            Ok(()) => {
                self.outbox.push(tag);
                Ok(())
            }
            Err(error) => {
                self.counters.bump(Count::PublishQueueFull);
                Err(error.into())
            }
        }
    }

    /// Takes the next reading and publishes it sealed under the device key, plus the copy,
    /// garbage and tampered copy `faults` asks for (its other faults are the fleet loop's).
    /// Only the reading's own failure is an error; a lost extra is just counted.
    pub(crate) fn publish_reading(
        &mut self,
        faults: IntervalFaults,
    ) -> Result<Telemetry, DeviceError> {
        if !self.connected {
            return Err(DeviceError::NotConnected);
        }
        let reading = self.model.next_telemetry(self.clock.now_ms());
        let reading = self.seal(reading);
        let counters = self.model.counters();
        self.lock_truth().on_counted(counters);
        let tag = Tag::Reading {
            boot: reading.boot,
            counters,
        };
        let payload = reading.encode_to_vec();
        let copy = faults.duplicate.then(|| payload.clone());
        self.send_telemetry(payload, tag, SentKind::Valid)?;
        self.lock_truth().on_handed(reading.boot, counters);
        if let Some(copy) = copy {
            let _ = self.send_telemetry(copy, tag, SentKind::Duplicate);
        }
        if faults.malformed {
            let garbage = self.faults.garbage();
            let _ = self.send_telemetry(garbage, Tag::Other, SentKind::Malformed);
        }
        if faults.tampered {
            let forged = tampered(&reading).encode_to_vec();
            let _ = self.send_telemetry(forged, Tag::Other, SentKind::Tampered);
        }
        Ok(reading)
    }

    fn send_telemetry(
        &mut self,
        payload: Vec<u8>,
        tag: Tag,
        kind: SentKind,
    ) -> Result<(), DeviceError> {
        let topic = self.topics.telemetry.clone();
        self.enqueue(topic, payload, false, tag)?;
        self.lock_truth().on_sent(kind);
        self.counters.bump(match kind {
            SentKind::Valid => Count::TelemetrySent,
            SentKind::Duplicate => Count::DuplicatesSent,
            SentKind::Malformed => Count::MalformedSent,
            SentKind::Tampered => Count::TamperedSent,
        });
        Ok(())
    }

    pub(crate) fn inject_reset(&mut self) {
        let final_counters = self.model.reset(self.clock.now_ms());
        self.lock_truth()
            .on_reset(final_counters, self.model.boot());
        self.counters.bump(Count::Resets);
    }

    /// Integrates demand up to now and records the counters in ground truth.
    fn accrue(&mut self) {
        self.model.advance_to(self.clock.now_ms());
        let counters = self.model.counters();
        self.lock_truth().on_counted(counters);
    }

    /// A report interval while connected: roll faults, then report unless going offline.
    pub(crate) fn on_online_tick(&mut self) -> TickAction {
        let faults = self.faults.roll();
        self.accrue();
        if faults.reset {
            self.inject_reset();
        }
        if let Some(reports) = faults.offline_reports {
            self.drop_connection();
            return TickAction::GoOffline(reports);
        }
        // A full queue is already counted; the next reading carries the counters anyway.
        let _ = self.publish_reading(faults);
        TickAction::Stay
    }

    /// A report interval while not connected: energy and reboots go on, reports do not.
    pub(crate) fn on_idle_tick(&mut self) {
        let faults = self.faults.roll();
        self.accrue();
        if faults.reset {
            self.inject_reset();
        }
    }
}

/// `reading` as someone rewriting the unit's traffic would send it: a watt-hour more, a
/// minute later and far ahead in sequence, under the genuine reading's MAC, which no longer
/// matches. Were the platform to take it, it would bill the extra watt-hour and then ignore
/// the unit's genuine readings as old: the audit finds either.
fn tampered(reading: &Telemetry) -> Telemetry {
    Telemetry {
        seq: reading.seq + TAMPERED_SEQ_AHEAD,
        ts: reading.ts + TAMPERED_LATER_S,
        load_wh: reading.load_wh + 1,
        ..reading.clone()
    }
}
