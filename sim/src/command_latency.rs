//! OFF-command latency measured from outside the platform: from the platform deciding a
//! device's load goes OFF to the device receiving that command. The platform stamps each
//! command with its clock in whole seconds (`Command.ts`, rounded down) and the device notes
//! its wall clock on receipt, so each sample is the receive time less the stamp: never below
//! the true latency and at most one second above it, when both clocks agree (same host, or
//! NTP). Only commands that switched a device OFF count; re-deliveries and stale ones do not,
//! nor retained commands the platform issued before the run (a decision a reconnecting device
//! merely learns).

use serde::Serialize;
use sunledger_proto::device::LoadState;

use crate::device_model::CommandOutcome;
use crate::truth::DeviceTruth;

/// Resolution of every sample: the platform's stamp is in whole seconds.
pub const RESOLUTION_MS: u64 = 1_000;

/// Percentiles of the OFF-command latency over a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OffCommandLatency {
    /// OFF commands a device applied, each one sample.
    pub commands: usize,
    /// Median latency, milliseconds; `None` without samples.
    pub p50_ms: Option<i64>,
    /// 99th percentile latency, milliseconds; `None` without samples.
    pub p99_ms: Option<i64>,
    /// How coarse every sample is ([`RESOLUTION_MS`]): each overstates the true latency by
    /// less than this.
    pub resolution_ms: u64,
}

impl OffCommandLatency {
    /// The latency of every OFF command issued at or after `since_unix_s` (the run's start,
    /// platform clock) that the devices in `truths` applied.
    pub fn from_truths(truths: &[DeviceTruth], since_unix_s: i64) -> OffCommandLatency {
        let mut samples: Vec<i64> = truths
            .iter()
            .flat_map(|truth| &truth.commands)
            .filter(|c| c.load == LoadState::Off && c.outcome == CommandOutcome::Applied)
            .filter(|c| c.issued_unix_s >= since_unix_s)
            .map(|c| c.received_unix_ms - c.issued_unix_s.saturating_mul(1_000))
            .collect();
        samples.sort_unstable();
        // Nearest rank: the smallest sample with at least `quantile` of them at or below it.
        let at = |quantile: f64| {
            let rank = (quantile * samples.len() as f64).ceil() as usize;
            samples.get(rank.saturating_sub(1)).copied()
        };
        OffCommandLatency {
            commands: samples.len(),
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            resolution_ms: RESOLUTION_MS,
        }
    }

    /// One line for the summary table, saying how coarse the figures are.
    pub fn describe(&self) -> String {
        match (self.p50_ms, self.p99_ms) {
            (Some(p50), Some(p99)) => format!(
                "{p50} / {p99} ms over {} commands (resolution {} s: platform stamps whole seconds)",
                self.commands,
                self.resolution_ms / 1_000
            ),
            _ => "no device was switched off".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::truth::CommandReceipt;

    fn receipt(
        load: LoadState,
        outcome: CommandOutcome,
        issued_s: i64,
        received_ms: i64,
    ) -> CommandReceipt {
        CommandReceipt {
            cmd_id: 1,
            load,
            outcome,
            received_at: Instant::now(),
            received_sim_ms: 0,
            issued_unix_s: issued_s,
            received_unix_ms: received_ms,
        }
    }

    #[test]
    fn only_applied_off_commands_count_and_percentiles_use_nearest_rank() {
        let mut truth = crate::truth::TruthRecorder::new("SL-1".into(), 1, 1, 16).snapshot();
        truth.commands = vec![
            receipt(LoadState::Off, CommandOutcome::Applied, 100, 100_250),
            receipt(LoadState::Off, CommandOutcome::Applied, 200, 200_900),
            receipt(LoadState::Off, CommandOutcome::Reacked, 200, 260_000),
            receipt(LoadState::On, CommandOutcome::Applied, 300, 300_100),
            receipt(LoadState::Off, CommandOutcome::Applied, 99, 100_000),
        ];
        let latency = OffCommandLatency::from_truths(&[truth], 100);
        assert_eq!(latency.commands, 2);
        assert_eq!((latency.p50_ms, latency.p99_ms), (Some(250), Some(900)));
        assert_eq!(latency.resolution_ms, 1_000);
        assert!(latency.describe().contains("resolution 1 s"));
        let none = OffCommandLatency::from_truths(&[], 0);
        assert_eq!((none.commands, none.p50_ms), (0, None));
    }
}
