//! The firmware of one control unit, without any I/O: energy counters that integrate demand
//! over simulated time, the load switch, the boot and sequence numbers, and the rule for
//! which commands to apply and acknowledge. The MQTT glue in `device.rs` feeds it times and
//! commands and publishes what it returns.

use sunledger_proto::device::{Command, CommandAck, LoadState, Telemetry};

use crate::energy::EnergyCounter;
use crate::load_curve::Consumption;

/// Whole watt-hour counters as a device reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Counters {
    /// Cumulative Wh through the load port since boot.
    pub load_wh: u64,
    /// Cumulative Wh through the USB ports since boot.
    pub usb_wh: u64,
}

impl Counters {
    /// Load plus USB: what the platform bills.
    pub fn total_wh(&self) -> u64 {
        self.load_wh + self.usb_wh
    }

    /// The larger of each counter; counters within a boot only grow, so this is the latest.
    pub fn max(self, other: Counters) -> Counters {
        Counters {
            load_wh: self.load_wh.max(other.load_wh),
            usb_wh: self.usb_wh.max(other.usb_wh),
        }
    }
}

/// What the device did with a command, recorded in ground truth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandOutcome {
    /// A newer command: the load switch now follows it, and an ack is due.
    Applied,
    /// The command already applied, re-sent because the platform has not seen the ack yet;
    /// the ack is due again.
    Reacked,
    /// An older command than the one applied; ignored without an ack.
    IgnoredStale,
    /// The command asks for neither ON nor OFF; ignored without an ack.
    IgnoredInvalid,
}

impl CommandOutcome {
    /// Whether the device publishes a `CommandAck` for this outcome.
    pub fn needs_ack(self) -> bool {
        matches!(self, CommandOutcome::Applied | CommandOutcome::Reacked)
    }
}

/// One control unit's state; every method takes the simulated time so tests drive it exactly.
#[derive(Debug, Clone)]
pub struct DeviceModel {
    consumption: Consumption,
    load_on: bool,
    boot: u32,
    seq: u64,
    load: EnergyCounter,
    usb: EnergyCounter,
    pv: EnergyCounter,
    /// Simulated time up to which energy has been integrated.
    accrued_to_ms: i64,
    /// Highest command id applied; 0 before any (the platform numbers from 1). Kept across
    /// reboots, as firmware keeps it in flash, so a reboot does not re-apply old commands.
    last_cmd_id: u64,
}

impl DeviceModel {
    /// A unit powered up at `now_ms` as boot number `boot`: counters zero, load on.
    pub fn new(consumption: Consumption, now_ms: i64, boot: u32) -> DeviceModel {
        DeviceModel {
            consumption,
            load_on: true,
            boot,
            seq: 0,
            load: EnergyCounter::default(),
            usb: EnergyCounter::default(),
            pv: EnergyCounter::default(),
            accrued_to_ms: now_ms,
            last_cmd_id: 0,
        }
    }

    /// Integrates demand up to `now_ms`; load and USB only count while the load is on. Time
    /// that goes backwards is ignored.
    pub fn advance_to(&mut self, now_ms: i64) {
        while self.accrued_to_ms < now_ms {
            let step_end_ms = self
                .consumption
                .next_change_ms(self.accrued_to_ms)
                .min(now_ms);
            let power = self.consumption.power_at(self.accrued_to_ms);
            // Positive because step_end_ms > accrued_to_ms.
            let step_ms = (step_end_ms - self.accrued_to_ms) as u64;
            if self.load_on {
                self.load.add(power.load_mw, step_ms);
                self.usb.add(power.usb_mw, step_ms);
            }
            self.pv.add(power.pv_mw, step_ms);
            self.accrued_to_ms = step_end_ms;
        }
    }

    /// The next reading at `now_ms`; consumes a sequence number.
    pub fn next_telemetry(&mut self, now_ms: i64) -> Telemetry {
        self.advance_to(now_ms);
        self.seq += 1;
        let power = self.consumption.power_at(now_ms);
        let drawn_mw = if self.load_on {
            power.load_mw + power.usb_mw
        } else {
            0
        };
        let battery_mv = (12_600 + power.pv_mw / 40).saturating_sub(drawn_mw / 40);
        Telemetry {
            seq: self.seq,
            ts: now_ms.div_euclid(1_000),
            load_wh: self.load.wh(),
            usb_wh: self.usb.wh(),
            boot: self.boot,
            battery_mv: Some(u32::try_from(battery_mv).unwrap_or(u32::MAX)),
            pv_wh: Some(self.pv.wh()),
            load_on: self.load_on,
            ..Telemetry::default()
        }
    }

    /// Reboots at `now_ms`: returns the counters as they stood, then starts a new boot with
    /// counters and sequence at zero. The load switch and last command survive.
    pub fn reset(&mut self, now_ms: i64) -> Counters {
        self.advance_to(now_ms);
        let before = self.counters();
        self.boot = self.boot.wrapping_add(1);
        self.seq = 0;
        self.load = EnergyCounter::default();
        self.usb = EnergyCounter::default();
        self.pv = EnergyCounter::default();
        before
    }

    /// Applies `command` at `now_ms` if it is newer than the last applied one.
    pub fn handle_command(&mut self, command: &Command, now_ms: i64) -> CommandOutcome {
        let wants_on = match LoadState::try_from(command.load) {
            Ok(LoadState::On) => true,
            Ok(LoadState::Off) => false,
            Ok(LoadState::Unspecified) | Err(_) => return CommandOutcome::IgnoredInvalid,
        };
        if command.cmd_id > self.last_cmd_id {
            self.advance_to(now_ms);
            self.load_on = wants_on;
            self.last_cmd_id = command.cmd_id;
            CommandOutcome::Applied
        } else if command.cmd_id == self.last_cmd_id && self.last_cmd_id > 0 {
            CommandOutcome::Reacked
        } else {
            CommandOutcome::IgnoredStale
        }
    }

    /// The acknowledgement of the last applied command, if any.
    pub fn current_ack(&self) -> Option<CommandAck> {
        (self.last_cmd_id > 0).then(|| CommandAck {
            cmd_id: self.last_cmd_id,
            load: self.load_state() as i32,
            ..CommandAck::default()
        })
    }

    /// Whether the load output is switched on or off.
    pub fn load_state(&self) -> LoadState {
        if self.load_on {
            LoadState::On
        } else {
            LoadState::Off
        }
    }

    /// Whether the load output is on.
    pub fn load_on(&self) -> bool {
        self.load_on
    }

    /// The whole-Wh counters of the current boot, up to the last `advance_to`.
    pub fn counters(&self) -> Counters {
        Counters {
            load_wh: self.load.wh(),
            usb_wh: self.usb.wh(),
        }
    }

    /// The current boot counter.
    pub fn boot(&self) -> u32 {
        self.boot
    }

    /// The sequence number of the last reading of this boot (0 before the first).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Switches the demand source at `now_ms`, integrating the old one up to then.
    pub fn set_consumption(&mut self, consumption: Consumption, now_ms: i64) {
        self.advance_to(now_ms);
        self.consumption = consumption;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load_curve::{LoadCurve, Power};

    const HOUR_MS: i64 = 3_600_000;

    fn constant(load_mw: u64, usb_mw: u64) -> Consumption {
        Consumption::Constant(Power {
            load_mw,
            usb_mw,
            pv_mw: 0,
        })
    }

    fn command(cmd_id: u64, load: LoadState) -> Command {
        Command {
            cmd_id,
            load: load as i32,
            reason: 0,
            ts: 0,
            ..Command::default()
        }
    }

    #[test]
    fn counters_and_seq_are_monotonic_within_a_boot() {
        let mut model = DeviceModel::new(Consumption::Curve(LoadCurve::nominal()), 0, 1);
        let mut previous = model.next_telemetry(0);
        for step in 1..=2_000 {
            let reading = model.next_telemetry(step * 90_000);
            assert_eq!(reading.seq, previous.seq + 1);
            assert!(reading.load_wh >= previous.load_wh && reading.usb_wh >= previous.usb_wh);
            assert!(reading.pv_wh >= previous.pv_wh);
            assert_eq!(reading.boot, 1);
            previous = reading;
        }
        assert!(previous.load_wh > 300, "two days of demand: {previous:?}");
    }

    #[test]
    fn off_stops_load_and_usb_counting_and_on_resumes() {
        let mut model = DeviceModel::new(constant(10_000, 5_000), 0, 1);
        let off = model.handle_command(&command(1, LoadState::Off), HOUR_MS);
        assert_eq!(off, CommandOutcome::Applied);
        assert_eq!(
            model.counters(),
            Counters {
                load_wh: 10,
                usb_wh: 5
            }
        );
        let reading = model.next_telemetry(5 * HOUR_MS);
        assert_eq!(
            (reading.load_wh, reading.usb_wh, reading.load_on),
            (10, 5, false)
        );
        model.handle_command(&command(2, LoadState::On), 5 * HOUR_MS);
        model.advance_to(6 * HOUR_MS);
        assert_eq!(
            model.counters(),
            Counters {
                load_wh: 20,
                usb_wh: 10
            }
        );
    }

    #[test]
    fn commands_apply_once_reack_when_repeated_and_ignore_stale_ones() {
        let mut model = DeviceModel::new(constant(0, 0), 0, 1);
        let cases = [
            (
                command(0, LoadState::Off),
                CommandOutcome::IgnoredStale,
                LoadState::On,
            ),
            (
                command(3, LoadState::Unspecified),
                CommandOutcome::IgnoredInvalid,
                LoadState::On,
            ),
            (
                command(3, LoadState::Off),
                CommandOutcome::Applied,
                LoadState::Off,
            ),
            (
                command(3, LoadState::Off),
                CommandOutcome::Reacked,
                LoadState::Off,
            ),
            (
                command(2, LoadState::On),
                CommandOutcome::IgnoredStale,
                LoadState::Off,
            ),
            (
                command(4, LoadState::On),
                CommandOutcome::Applied,
                LoadState::On,
            ),
        ];
        for (cmd, outcome, state) in cases {
            assert_eq!(model.handle_command(&cmd, 0), outcome, "{cmd:?}");
            assert_eq!(model.load_state(), state, "{cmd:?}");
        }
        let ack = model.current_ack().unwrap();
        assert_eq!((ack.cmd_id, ack.load()), (4, LoadState::On));
    }

    #[test]
    fn reset_restarts_counters_and_seq_but_keeps_switch_and_last_command() {
        let mut model = DeviceModel::new(constant(2_000, 0), 0, 1);
        model.next_telemetry(HOUR_MS);
        model.handle_command(&command(7, LoadState::Off), 2 * HOUR_MS);
        let before = model.reset(3 * HOUR_MS);
        assert_eq!(
            before,
            Counters {
                load_wh: 4,
                usb_wh: 0
            }
        );
        let first = model.next_telemetry(3 * HOUR_MS);
        assert_eq!(
            (first.boot, first.seq, first.load_wh, first.load_on),
            (2, 1, 0, false)
        );
        assert_eq!(
            model.handle_command(&command(7, LoadState::Off), 0),
            CommandOutcome::Reacked
        );
    }
}
