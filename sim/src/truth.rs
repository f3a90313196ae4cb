//! Ground truth per device: what the platform should have been told, computed from what the
//! device actually sent, so an auditor can compare it with the platform's ledger.
//!
//! Counters are cumulative per boot, so what the platform learns of a boot is the largest
//! reading of that boot it received; duplicates, tampered copies (which the platform refuses
//! for their MAC) and garbage add nothing. A reading counts as
//! *reported* once the broker acknowledged it (PUBACK), and as *possibly reported* once it was
//! written to the socket (the connection may have dropped before the PUBACK). Energy counted
//! after a boot's last reported reading and before the reboot never reaches the platform:
//! that is `unreported_wh_lost_to_reset`.

use std::time::Instant;

use sunledger_proto::device::LoadState;

use crate::device_model::{CommandOutcome, Counters};

/// One command as the device received it. The platform's exact publish time is not knowable
/// here; its `ts` (the platform clock when it decided, whole seconds) against the wall-clock
/// receive time bounds the command latency from above within one second.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandReceipt {
    /// The command's id.
    pub cmd_id: u64,
    /// The state it asked for.
    pub load: LoadState,
    /// What the device did with it.
    pub outcome: CommandOutcome,
    /// Real instant the device received it.
    pub received_at: Instant,
    /// Simulated unix time, in milliseconds, when it was received.
    pub received_sim_ms: i64,
    /// The command's `ts`: the platform clock when it issued the command, unix seconds
    /// (rounded down).
    pub issued_unix_s: i64,
    /// Wall-clock unix time, in milliseconds, when it was received; comparable with
    /// `issued_unix_s` when the platform runs on a clock that agrees with this one.
    pub received_unix_ms: i64,
}

/// What one boot of a device reported and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BootLedger {
    boot: u32,
    /// Largest counters the broker acknowledged.
    acked: Counters,
    /// Counters of the first acknowledged reading: the platform's baseline for this boot
    /// unless neither counter is below the previous boot's last (see [`baseline_wh`]).
    first_acked: Option<Counters>,
    /// Counters of the first reading handed to the MQTT client. When its PUBACK was lost
    /// with the connection, the platform may still have it (or get it again, as the client
    /// resends what was in flight), and then that reading is its baseline, not the first
    /// acknowledged one.
    first_handed: Option<Counters>,
    /// Largest counters written to the socket, acknowledged or not.
    written: Counters,
    /// The device's counters: final once the boot ended, latest observed otherwise.
    counted: Counters,
}

impl BootLedger {
    fn new(boot: u32) -> BootLedger {
        let zero = Counters::default();
        BootLedger {
            boot,
            acked: zero,
            first_acked: None,
            first_handed: None,
            written: zero,
            counted: zero,
        }
    }
}

/// A snapshot of one device's ground truth, for auditors and test assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceTruth {
    /// The device's serial.
    pub serial: String,
    /// The device's seed; rerun with it to replay the load curve and faults.
    pub seed: u64,
    /// The current boot counter.
    pub boot: u32,
    /// Whether the load output is on now.
    pub load_on: bool,
    /// Load Wh the broker acknowledged receiving, summed over boots.
    pub reported_load_wh: u64,
    /// USB Wh the broker acknowledged receiving, summed over boots.
    pub reported_usb_wh: u64,
    /// Wh (load plus USB) the platform charges nothing for, summed over boots: a unit's first
    /// reading is its baseline, and so is the first after a reboot whose counters went down;
    /// if neither counter went down (the previous boot reported less than the new one counted
    /// before reporting), the platform charges the increase, and only the previous boot's
    /// last reading is baseline.
    pub baseline_wh: u64,
    /// Wh (load plus USB) of the first acknowledged reading of this run: the platform's
    /// baseline for a unit that never reported before, and at most what it charged for it
    /// otherwise (the increase over the last reading of an earlier run, unknown here).
    pub first_reported_wh: u64,
    /// Upper bound of Wh (load plus USB) the platform may have received, counting readings
    /// written before a connection dropped without their PUBACK.
    pub possibly_reported_wh: u64,
    /// Wh (load plus USB) between each boot's first reading handed to the client and its
    /// first acknowledged one: what the platform may also have charged if an earlier,
    /// unacknowledged reading reached it and became its baseline.
    pub unacked_baseline_wh: u64,
    /// Wh (load plus USB) counted after a boot's last acknowledged reading and lost when the
    /// device rebooted.
    pub unreported_wh_lost_to_reset: u64,
    /// Wh (load plus USB) the device counted, summed over boots (whole Wh per boot).
    pub consumed_wh: u64,
    /// Valid readings handed to the MQTT client (each consumed a sequence number).
    pub telemetry_valid_sent: u64,
    /// Repeated copies of a reading handed to the MQTT client.
    pub telemetry_duplicates_sent: u64,
    /// Garbage payloads handed to the MQTT client; never counted as energy.
    pub telemetry_malformed_sent: u64,
    /// Tampered copies of readings handed to the MQTT client; never counted as energy,
    /// since their MAC does not match.
    pub telemetry_tampered_sent: u64,
    /// Valid readings and copies the broker acknowledged.
    pub telemetry_acked: u64,
    /// Command acknowledgements handed to the MQTT client.
    pub acks_sent: u64,
    /// Reboots injected.
    pub resets: u32,
    /// Offline periods injected.
    pub offline_periods: u32,
    /// Commands received, oldest first, up to `command_log_max`.
    pub commands: Vec<CommandReceipt>,
    /// Commands received beyond `command_log_max`, counted but not kept.
    pub commands_not_logged: u64,
}

impl DeviceTruth {
    /// Wh (load plus USB) the broker acknowledged: what the platform should bill at least.
    pub fn reported_wh(&self) -> u64 {
        self.reported_load_wh + self.reported_usb_wh
    }

    /// Wh the platform should have charged: everything acknowledged past each boot's
    /// baseline. Exact when every reading written was acknowledged; otherwise the platform
    /// may have charged up to [`Self::unacked_wh`] more.
    pub fn billable_wh(&self) -> u64 {
        self.reported_wh().saturating_sub(self.baseline_wh)
    }

    /// Wh the platform may have charged beyond [`Self::billable_wh`]: readings written whose
    /// PUBACK never came, and earlier baselines from first readings whose PUBACK never came.
    pub fn unacked_wh(&self) -> u64 {
        self.possibly_reported_wh.saturating_sub(self.reported_wh()) + self.unacked_baseline_wh
    }

    /// The real instants commands arrived, for latency measurement against publish times.
    pub fn command_receive_instants(&self) -> Vec<Instant> {
        self.commands.iter().map(|c| c.received_at).collect()
    }
}

/// Kinds of telemetry payload, for the sent counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SentKind {
    /// A fresh reading.
    Valid,
    /// A repeat of the previous reading.
    Duplicate,
    /// Garbage bytes.
    Malformed,
    /// A reading altered after it was sealed.
    Tampered,
}

/// Accumulates one device's ground truth as the device acts.
#[derive(Debug)]
pub struct TruthRecorder {
    serial: String,
    seed: u64,
    /// Boots oldest first; never empty. Reboots are rare, so this stays short.
    boots: Vec<BootLedger>,
    load_on: bool,
    sent_valid: u64,
    sent_duplicate: u64,
    sent_malformed: u64,
    sent_tampered: u64,
    acked: u64,
    acks_sent: u64,
    resets: u32,
    offline_periods: u32,
    commands: Vec<CommandReceipt>,
    command_log_max: usize,
    commands_not_logged: u64,
}

impl TruthRecorder {
    /// Truth for a device starting in `boot` with the load on.
    pub fn new(serial: String, seed: u64, boot: u32, command_log_max: usize) -> TruthRecorder {
        TruthRecorder {
            serial,
            seed,
            boots: vec![BootLedger::new(boot)],
            load_on: true,
            sent_valid: 0,
            sent_duplicate: 0,
            sent_malformed: 0,
            sent_tampered: 0,
            acked: 0,
            acks_sent: 0,
            resets: 0,
            offline_periods: 0,
            commands: Vec::new(),
            command_log_max,
            commands_not_logged: 0,
        }
    }

    fn ledger(&mut self, boot: u32) -> Option<&mut BootLedger> {
        self.boots
            .iter_mut()
            .rev()
            .find(|ledger| ledger.boot == boot)
    }

    fn current(&mut self) -> &mut BootLedger {
        let last = self.boots.len() - 1;
        &mut self.boots[last]
    }

    /// The device's counters in the current boot now stand at `counted`.
    pub fn on_counted(&mut self, counted: Counters) {
        let current = self.current();
        current.counted = current.counted.max(counted);
    }

    /// The device rebooted: the current boot ended at `final_counted`, `new_boot` begins.
    pub fn on_reset(&mut self, final_counted: Counters, new_boot: u32) {
        self.on_counted(final_counted);
        self.resets += 1;
        self.boots.push(BootLedger::new(new_boot));
    }

    /// A telemetry payload was handed to the MQTT client.
    pub fn on_sent(&mut self, kind: SentKind) {
        match kind {
            SentKind::Valid => self.sent_valid += 1,
            SentKind::Duplicate => self.sent_duplicate += 1,
            SentKind::Malformed => self.sent_malformed += 1,
            SentKind::Tampered => self.sent_tampered += 1,
        }
    }

    /// A reading of `boot` was handed to the MQTT client, which sends it when it can.
    pub fn on_handed(&mut self, boot: u32, counters: Counters) {
        if let Some(ledger) = self.ledger(boot) {
            ledger.first_handed.get_or_insert(counters);
        }
    }

    /// A reading of `boot` was written to the socket.
    pub fn on_written(&mut self, boot: u32, counters: Counters) {
        if let Some(ledger) = self.ledger(boot) {
            ledger.written = ledger.written.max(counters);
        }
    }

    /// The broker acknowledged a reading of `boot`.
    pub fn on_acked(&mut self, boot: u32, counters: Counters) {
        self.acked += 1;
        if let Some(ledger) = self.ledger(boot) {
            ledger.written = ledger.written.max(counters);
            ledger.acked = ledger.acked.max(counters);
            // QoS 1 publishes are acknowledged in order, so the first ack is the first reading.
            ledger.first_acked.get_or_insert(counters);
        }
    }

    /// A command acknowledgement was handed to the MQTT client.
    pub fn on_ack_sent(&mut self) {
        self.acks_sent += 1;
    }

    /// The device dropped off the network on purpose.
    pub fn on_offline(&mut self) {
        self.offline_periods += 1;
    }

    /// A command arrived; `load_on` is the switch state after handling it.
    pub fn on_command(&mut self, receipt: CommandReceipt, load_on: bool) {
        self.load_on = load_on;
        if self.commands.len() < self.command_log_max {
            self.commands.push(receipt);
        } else {
            self.commands_not_logged += 1;
        }
    }

    /// The current truth, as plain data.
    pub fn snapshot(&self) -> DeviceTruth {
        let (last, ended) = self.boots.split_last().expect("boots is never empty");
        let sum = |f: fn(&BootLedger) -> u64| self.boots.iter().map(f).sum::<u64>();
        DeviceTruth {
            serial: self.serial.clone(),
            seed: self.seed,
            boot: last.boot,
            load_on: self.load_on,
            reported_load_wh: sum(|b| b.acked.load_wh),
            reported_usb_wh: sum(|b| b.acked.usb_wh),
            baseline_wh: baseline_wh(&self.boots),
            first_reported_wh: self
                .boots
                .iter()
                .find_map(|boot| boot.first_acked)
                .map_or(0, |first| first.total_wh()),
            possibly_reported_wh: sum(|b| b.written.total_wh()),
            unacked_baseline_wh: sum(|b| match (b.first_handed, b.first_acked) {
                (Some(handed), Some(acked)) => acked.total_wh().saturating_sub(handed.total_wh()),
                _ => 0,
            }),
            unreported_wh_lost_to_reset: ended
                .iter()
                .map(|b| b.counted.total_wh().saturating_sub(b.acked.total_wh()))
                .sum(),
            consumed_wh: sum(|b| b.counted.total_wh()),
            telemetry_valid_sent: self.sent_valid,
            telemetry_duplicates_sent: self.sent_duplicate,
            telemetry_malformed_sent: self.sent_malformed,
            telemetry_tampered_sent: self.sent_tampered,
            telemetry_acked: self.acked,
            acks_sent: self.acks_sent,
            resets: self.resets,
            offline_periods: self.offline_periods,
            commands: self.commands.clone(),
            commands_not_logged: self.commands_not_logged,
        }
    }
}

/// The Wh of `boots` the platform takes as baselines and charges nothing for, as its meter
/// does: each reading after the first is charged its increase over the last accepted one,
/// unless a counter went down (a reset), when it becomes the new baseline.
fn baseline_wh(boots: &[BootLedger]) -> u64 {
    let mut last_reported: Option<Counters> = None;
    let mut baseline = 0;
    for boot in boots {
        let Some(first) = boot.first_acked else {
            continue;
        };
        baseline += match last_reported {
            Some(last) if first.load_wh >= last.load_wh && first.usb_wh >= last.usb_wh => {
                last.total_wh()
            }
            _ => first.total_wh(),
        };
        last_reported = Some(boot.acked);
    }
    baseline
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wh(load_wh: u64, usb_wh: u64) -> Counters {
        Counters { load_wh, usb_wh }
    }

    #[test]
    fn duplicates_tampered_copies_and_garbage_add_no_energy() {
        let mut truth = TruthRecorder::new("SL-1".into(), 5, 1, 4);
        for kind in [
            SentKind::Valid,
            SentKind::Duplicate,
            SentKind::Malformed,
            SentKind::Tampered,
        ] {
            truth.on_sent(kind);
        }
        truth.on_counted(wh(10, 2));
        truth.on_acked(1, wh(10, 2));
        truth.on_acked(1, wh(10, 2));
        let snapshot = truth.snapshot();
        assert_eq!(snapshot.reported_wh(), 12);
        assert_eq!(snapshot.telemetry_acked, 2);
        let sent = (
            snapshot.telemetry_valid_sent,
            snapshot.telemetry_duplicates_sent,
            snapshot.telemetry_malformed_sent,
            snapshot.telemetry_tampered_sent,
        );
        assert_eq!(sent, (1, 1, 1, 1));
    }

    #[test]
    fn reset_keeps_reported_energy_and_counts_the_unreported_tail_as_lost() {
        let mut truth = TruthRecorder::new("SL-1".into(), 5, 1, 4);
        truth.on_acked(1, wh(10, 2));
        truth.on_reset(wh(13, 3), 2);
        truth.on_acked(2, wh(4, 1));
        truth.on_counted(wh(6, 1));
        let snapshot = truth.snapshot();
        assert_eq!(snapshot.reported_wh(), 12 + 5);
        assert_eq!(
            snapshot.baseline_wh,
            12 + 5,
            "one reading per boot is all baseline"
        );
        assert_eq!(snapshot.billable_wh(), 0);
        assert_eq!(snapshot.unreported_wh_lost_to_reset, 4);
        assert_eq!(snapshot.consumed_wh, 16 + 7);
        let pending_wh = 2;
        let accounted = snapshot.reported_wh() + snapshot.unreported_wh_lost_to_reset + pending_wh;
        assert_eq!(snapshot.consumed_wh, accounted);
        assert_eq!((snapshot.boot, snapshot.resets), (2, 1));
    }

    #[test]
    fn a_reboot_whose_counters_did_not_go_down_is_charged_from_the_last_reading() {
        let mut truth = TruthRecorder::new("SL-1".into(), 5, 1, 4);
        truth.on_acked(1, wh(2, 1));
        truth.on_acked(1, wh(3, 1));
        truth.on_reset(wh(3, 1), 2);
        // Offline long enough after the reboot to count past the last report.
        truth.on_acked(2, wh(9, 1));
        truth.on_acked(2, wh(11, 2));
        truth.on_reset(wh(11, 2), 3);
        truth.on_acked(3, wh(12, 0));
        let snapshot = truth.snapshot();
        assert_eq!(snapshot.reported_wh(), 4 + 13 + 12);
        assert_eq!(
            snapshot.baseline_wh,
            3 + 4 + 12,
            "boot 2 is charged from boot 1's last reading; boot 3's USB counter went down"
        );
        assert_eq!(snapshot.billable_wh(), 1 + 9);
        assert_eq!(snapshot.first_reported_wh, 3);
    }

    #[test]
    fn a_first_reading_whose_ack_was_lost_widens_the_range_by_its_gap_to_the_first_acked() {
        let mut truth = TruthRecorder::new("SL-1".into(), 5, 1, 4);
        truth.on_handed(1, wh(4, 1));
        truth.on_written(1, wh(4, 1));
        // The connection dropped before the PUBACK; the next session's readings get theirs.
        truth.on_handed(1, wh(9, 1));
        truth.on_acked(1, wh(9, 1));
        truth.on_handed(1, wh(12, 2));
        truth.on_acked(1, wh(12, 2));
        let snapshot = truth.snapshot();
        assert_eq!(
            snapshot.billable_wh(),
            4,
            "from the first acknowledged reading"
        );
        assert_eq!(
            snapshot.unacked_wh(),
            5,
            "or from the first reading, had it arrived"
        );
    }

    #[test]
    fn a_late_ack_of_the_previous_boot_shrinks_the_loss() {
        let mut truth = TruthRecorder::new("SL-1".into(), 5, 1, 4);
        truth.on_written(1, wh(9, 0));
        truth.on_reset(wh(9, 0), 2);
        assert_eq!(truth.snapshot().unreported_wh_lost_to_reset, 9);
        assert_eq!(truth.snapshot().possibly_reported_wh, 9);
        truth.on_acked(1, wh(9, 0));
        assert_eq!(truth.snapshot().unreported_wh_lost_to_reset, 0);
        assert_eq!(truth.snapshot().reported_wh(), 9);
    }

    #[test]
    fn consumed_energy_is_reported_lost_to_reset_or_pending_under_seeded_faults() {
        use crate::config::FaultRates;
        use crate::device_model::DeviceModel;
        use crate::faults::FaultInjector;
        use crate::load_curve::{Consumption, LoadCurve};

        let rates = FaultRates {
            reset_per_report: 0.05,
            duplicate_per_report: 0.2,
            ..FaultRates::default()
        };
        let mut faults = FaultInjector::new(rates, 11);
        let mut model = DeviceModel::new(Consumption::Curve(LoadCurve::nominal()), 0, 1);
        let mut truth = TruthRecorder::new("SL-1".into(), 11, model.boot(), 4);
        for tick in 1..=5_000_i64 {
            let now_ms = tick * 600_000;
            let interval = faults.roll();
            if interval.reset {
                let final_counted = model.reset(now_ms);
                truth.on_reset(final_counted, model.boot());
            }
            let reading = model.next_telemetry(now_ms);
            truth.on_counted(model.counters());
            truth.on_sent(SentKind::Valid);
            // The broker acknowledges one reading in three; the rest are lost in transit.
            let copies = if interval.duplicate { 2 } else { 1 };
            if tick % 3 == 0 {
                for _ in 0..copies {
                    truth.on_acked(reading.boot, model.counters());
                }
            }
        }
        let snapshot = truth.snapshot();
        let accounted = snapshot.reported_wh() + snapshot.unreported_wh_lost_to_reset;
        let pending_wh = snapshot.consumed_wh - accounted;
        assert!(
            pending_wh <= model.counters().total_wh(),
            "seed 11: {snapshot:?}"
        );
        assert!(
            (200..=300).contains(&snapshot.resets),
            "seed 11: {snapshot:?}"
        );
        assert!(
            snapshot.unreported_wh_lost_to_reset > 0,
            "seed 11: {snapshot:?}"
        );
        assert!(
            snapshot.reported_wh() > snapshot.consumed_wh / 2,
            "seed 11: {snapshot:?}"
        );
    }

    #[test]
    fn command_log_is_bounded_and_counts_the_overflow() {
        let mut truth = TruthRecorder::new("SL-1".into(), 5, 1, 2);
        for cmd_id in 1..=5 {
            let receipt = CommandReceipt {
                cmd_id,
                load: LoadState::Off,
                outcome: CommandOutcome::Applied,
                received_at: Instant::now(),
                received_sim_ms: 0,
                issued_unix_s: 0,
                received_unix_ms: 0,
            };
            truth.on_command(receipt, false);
        }
        let snapshot = truth.snapshot();
        assert_eq!(
            (snapshot.commands.len(), snapshot.commands_not_logged),
            (2, 3)
        );
        assert!(!snapshot.load_on);
        assert_eq!(snapshot.command_receive_instants().len(), 2);
    }
}
