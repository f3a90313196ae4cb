//! A timed simulator run, independent of any command line: start a [`Fleet`] (beside a
//! [`KeypadFleet`] when the run has keypad units), report [`Progress`] every interval, stop
//! after a duration (or earlier on request), and sum it up in a [`RunSummary`] that prints as
//! a table or serialises as JSON, handed back with every device's truth for an audit.

use std::fmt::Write as _;
use std::future::Future;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::audit::Audit;
use crate::clock::real_unix_ms;
use crate::command_latency::OffCommandLatency;
use crate::config::SimConfig;
use crate::device::DeviceCredentials;
use crate::error::SimError;
use crate::fleet::Fleet;
use crate::keypad::{KeypadFleet, KeypadRun};
use crate::keypad_audit::KeypadSummary;
use crate::latency::LatencySummary;
use crate::stats::FleetStats;
use crate::truth::DeviceTruth;

/// One progress report: the counters now and the rates since the previous report.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Time since the fleet started.
    pub elapsed: Duration,
    /// The fleet's counters now.
    pub stats: FleetStats,
    /// Valid readings handed to the clients per second since the previous report.
    pub sent_per_s: f64,
    /// Readings acknowledged by the broker per second since the previous report.
    pub acked_per_s: f64,
}

impl Progress {
    /// A one-line rendering for a terminal status line or a log.
    pub fn line(&self) -> String {
        format!(
            "{:>6.1}s  connected {}  sent {:.0}/s  acked {:.0}/s  commands {}  devices off {}",
            self.elapsed.as_secs_f64(),
            self.stats.connected,
            self.sent_per_s,
            self.acked_per_s,
            self.stats.commands_received,
            self.stats.devices_off
        )
    }
}

/// Publish→PUBACK percentiles in milliseconds, as the summary prints them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencyMs {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
}

impl From<LatencySummary> for LatencyMs {
    fn from(summary: LatencySummary) -> Self {
        LatencyMs {
            p50: LatencySummary::ms(summary.p50_us),
            p90: LatencySummary::ms(summary.p90_us),
            p99: LatencySummary::ms(summary.p99_us),
        }
    }
}

/// What a run did, for the final table or `--json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    /// Devices in the fleet.
    pub devices: usize,
    /// The fleet seed that replays the run.
    pub seed: u64,
    /// Real seconds from start to the shutdown request.
    pub duration_s: f64,
    /// Valid readings handed to the clients per second over the run.
    pub telemetry_per_s: f64,
    /// Readings the broker acknowledged per second over the run.
    pub acked_per_s: f64,
    /// Publish→PUBACK latency of readings, measured in the devices.
    pub publish_ack_latency_ms: LatencyMs,
    /// Every counter at the end, after the clean shutdown.
    pub totals: FleetStats,
    /// Platform decision → device receipt of the OFF commands devices applied.
    pub off_command_latency: OffCommandLatency,
    /// The audit against the platform, when one was made after the run.
    pub audit: Option<Audit>,
    /// The keypad units' figures and audit, when the run had keypad units.
    pub keypad: Option<KeypadSummary>,
}

/// A finished run: its summary, and every device's truth for auditing the platform.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    /// What the run did.
    pub summary: RunSummary,
    /// Every device's ground truth, in the order the credentials were given.
    pub truths: Vec<DeviceTruth>,
    /// What the keypad units did, when the run had any.
    pub keypads: Option<KeypadRun>,
}

impl RunSummary {
    /// A plain-text table of the run, one figure a row.
    pub fn table(&self) -> String {
        let t = &self.totals;
        let l = &self.publish_ack_latency_ms;
        let mut rows: Vec<(&str, String)> = vec![
            ("devices", self.devices.to_string()),
            ("seed", self.seed.to_string()),
            ("duration", format!("{:.1} s", self.duration_s)),
            ("connects (incl. reconnects)", t.connects.to_string()),
            ("connection errors", t.connection_errors.to_string()),
            ("telemetry sent", t.telemetry_sent.to_string()),
            ("telemetry acked", t.telemetry_acked.to_string()),
            ("telemetry/s sent", format!("{:.1}", self.telemetry_per_s)),
            ("telemetry/s acked", format!("{:.1}", self.acked_per_s)),
            (
                "publish→PUBACK p50/p90/p99",
                format!("{:.2} / {:.2} / {:.2} ms", l.p50, l.p90, l.p99),
            ),
            ("commands received", t.commands_received.to_string()),
            (
                "commands refused (bad signature)",
                t.commands_forged.to_string(),
            ),
            ("devices off", t.devices_off.to_string()),
            (
                "OFF command decided→received p50/p99",
                self.off_command_latency.describe(),
            ),
        ];
        if let Some(audit) = &self.audit {
            rows.extend([
                (
                    "audit: devices, ledgers, mismatches",
                    format!(
                        "{}, {}, {}",
                        audit.checked,
                        audit.ledgers_checked,
                        audit.mismatches.len()
                    ),
                ),
                (
                    "audit: billable / stored energy",
                    format!("{} / {} Wh", audit.billable_wh, audit.stored_wh),
                ),
            ]);
            rows.extend(
                audit
                    .mismatches
                    .iter()
                    .map(|line| ("audit mismatch", line.clone())),
            );
        }
        if let Some(keypad) = &self.keypad {
            rows.extend(keypad_rows(keypad));
        }
        let width = rows
            .iter()
            .map(|(k, _)| k.chars().count())
            .max()
            .unwrap_or(0);
        let mut table = String::new();
        for (key, value) in rows {
            let _ = writeln!(table, "{key:<width$}  {value}");
        }
        table
    }
}

/// How long to run and how often to report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunLimits {
    /// How long the fleet runs before a clean shutdown.
    pub duration: Duration,
    /// Time between two progress reports.
    pub progress_interval: Duration,
}

/// Runs `devices` under `config`, and the started `keypads`, until `limits.duration` passes or
/// `stop` completes, calling `on_progress` every progress interval, then shuts both down
/// cleanly and sums up (no audit: that needs the platform). Must be called inside a tokio
/// runtime.
pub async fn run(
    config: SimConfig,
    devices: Vec<DeviceCredentials>,
    keypads: Option<KeypadFleet>,
    limits: RunLimits,
    stop: impl Future<Output = ()>,
    mut on_progress: impl FnMut(&Progress),
) -> Result<RunOutcome, SimError> {
    let seed = config.seed;
    let started = Instant::now();
    let started_unix_s = real_unix_ms().div_euclid(1_000);
    let mut fleet = Fleet::start(config, devices)?;
    let deadline = tokio::time::Instant::now() + limits.duration;
    let mut ticker = tokio::time::interval(limits.progress_interval);
    ticker.tick().await;
    let mut previous = (Instant::now(), fleet.snapshot());
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => break,
            () = &mut stop => break,
            _ = ticker.tick() => {
                let now = (Instant::now(), fleet.snapshot());
                on_progress(&progress(started, &previous, &now));
                previous = now;
            }
        }
    }
    let duration_s = started.elapsed().as_secs_f64();
    fleet.shutdown().await;
    let keypads = match keypads {
        Some(keypads) => Some(keypads.shutdown().await),
        None => None,
    };
    let totals = fleet.snapshot();
    let truths = fleet.truth();
    let per_s = |count: u64| count as f64 / duration_s.max(f64::EPSILON);
    let summary = RunSummary {
        devices: fleet.len(),
        seed,
        duration_s,
        telemetry_per_s: per_s(totals.telemetry_sent),
        acked_per_s: per_s(totals.telemetry_acked),
        publish_ack_latency_ms: totals.publish_ack_latency.into(),
        totals,
        off_command_latency: OffCommandLatency::from_truths(&truths, started_unix_s),
        audit: None,
        keypad: None,
    };
    Ok(RunOutcome {
        summary,
        truths,
        keypads,
    })
}

/// The keypad units' rows of the summary table.
fn keypad_rows(keypad: &KeypadSummary) -> Vec<(&'static str, String)> {
    let mut rows = vec![
        (
            "keypad units, payments (repeats)",
            format!("{}, {} ({})", keypad.units, keypad.payments, keypad.repeats),
        ),
        (
            "keypad tokens accepted, re-entries refused",
            format!("{}, {}", keypad.tokens_accepted, keypad.reentries_refused),
        ),
        (
            "keypad days owed / accepted / credited",
            format!(
                "{} / {} / {}",
                keypad.days_owed, keypad.days_accepted, keypad.days_credited
            ),
        ),
        (
            "keypad payments that waited for a slot",
            keypad.in_flight_limit_hits.to_string(),
        ),
        ("keypad mismatches", keypad.mismatches.len().to_string()),
    ];
    rows.extend(
        keypad
            .mismatches
            .iter()
            .map(|line| ("keypad mismatch", line.clone())),
    );
    rows
}

fn progress(
    started: Instant,
    (then, before): &(Instant, FleetStats),
    (now, after): &(Instant, FleetStats),
) -> Progress {
    let seconds = now.duration_since(*then).as_secs_f64().max(f64::EPSILON);
    let rate = |a: u64, b: u64| a.saturating_sub(b) as f64 / seconds;
    Progress {
        elapsed: now.duration_since(started),
        stats: *after,
        sent_per_s: rate(after.telemetry_sent, before.telemetry_sent),
        acked_per_s: rate(after.telemetry_acked, before.telemetry_acked),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_serialises_with_every_figure_the_table_prints() {
        let summary = RunSummary {
            devices: 3,
            seed: 7,
            duration_s: 2.0,
            telemetry_per_s: 10.0,
            acked_per_s: 9.5,
            publish_ack_latency_ms: LatencyMs {
                p50: 1.0,
                p90: 2.0,
                p99: 3.0,
            },
            totals: FleetStats {
                telemetry_sent: 20,
                commands_received: 1,
                ..FleetStats::default()
            },
            off_command_latency: OffCommandLatency {
                commands: 2,
                p50_ms: Some(400),
                p99_ms: Some(900),
                resolution_ms: 1_000,
            },
            audit: Some(Audit {
                checked: 3,
                mismatches: vec!["SIM-000001: off".into()],
                ..Audit::default()
            }),
            keypad: Some(KeypadSummary {
                units: 2,
                payments: 9,
                repeats: 1,
                tokens_accepted: 6,
                reentries_refused: 1,
                days_owed: 40,
                days_accepted: 40,
                days_credited: 40,
                in_flight_limit_hits: 0,
                mismatches: Vec::new(),
            }),
        };
        let json = serde_json::to_value(&summary).unwrap();
        for key in [
            "devices",
            "seed",
            "duration_s",
            "telemetry_per_s",
            "acked_per_s",
            "publish_ack_latency_ms",
            "totals",
            "off_command_latency",
            "audit",
            "keypad",
        ] {
            assert!(json.get(key).is_some(), "missing {key}: {json}");
        }
        assert_eq!(json["publish_ack_latency_ms"]["p99"], 3.0);
        assert_eq!(json["totals"]["telemetry_sent"], 20);
        assert_eq!(json["totals"]["devices_off"], 0);
        assert_eq!(json["totals"]["publish_ack_latency"]["p50_us"], 0);
        let table = summary.table();
        assert!(table.contains("1.00 / 2.00 / 3.00 ms"), "{table}");
        assert!(table.contains("telemetry/s sent"), "{table}");
        assert!(table.contains("400 / 900 ms over 2 commands"), "{table}");
        assert!(table.contains("SIM-000001: off"), "{table}");
        assert_eq!(json["off_command_latency"]["resolution_ms"], 1_000);
        assert_eq!(json["audit"]["mismatches"][0], "SIM-000001: off");
        assert_eq!(json["keypad"]["days_accepted"], 40);
        assert_eq!(
            json["keypad"]["mismatches"].as_array().map(Vec::len),
            Some(0)
        );
        assert!(table.contains("40 / 40 / 40"), "{table}");
        assert!(table.contains("2, 9 (1)"), "{table}");
    }
}
