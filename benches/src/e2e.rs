//! Benchmark: the whole platform end to end. The real server (broker, ingest, billing with
//! durable commits) runs in this process on loopback ports with a temporary database; a
//! simulated fleet of real MQTT clients reports to it.
//!
//! Run: `cargo run --release -p sunledger-benches --bin e2e -- [devices] [seconds] [interval_ms]`
//! (defaults 10000 devices, 20 s per phase, the ramp starting at a report every 250 ms per
//! device).
//!
//! Phase 1 ramps the offer up (`sunledger_benches::ramp`) until the platform no longer takes
//! all of it, and keeps the step that stored the most readings per second (the billing
//! engine's `sunledger_billing_readings_total`; marked as a floor if even the last step took
//! all of its offer). Phase 2 slows
//! the same connected fleet down to offer half that, and measures publish→PUBACK latency in
//! the devices and publish→stored latency with probe devices that poll the engine. Resident
//! memory per connected device is the process's growth while the fleet connects: client and
//! server share the process, so it includes both ends of every connection. At the end every
//! device's ground truth is audited against the energy the platform stored.

#[path = "e2e/audit.rs"]
mod audit;
#[path = "e2e/probe.rs"]
mod probe;
#[path = "e2e/setup.rs"]
mod setup;

use std::time::{Duration, Instant};

use sunledger_benches::process::{raise_fd_limit, resident_bytes};
use sunledger_benches::{CONNECT_INTERVAL_MS, RAMP_START_INTERVAL_MS, Rates, offer_note, ramp};
use sunledger_sim::latency::LatencySummary;
use sunledger_sim::{Fleet, SimConfig, SimDevice};

use crate::probe::{ProbeResult, Probes};

/// Probe devices measuring publish→stored latency.
const PROBES: usize = 8;
/// Time given to the fleet after a change of pace before measuring.
const WARM_UP: Duration = Duration::from_secs(3);
/// Descriptors beyond two per device: database, listeners, runtime.
const FD_SPARE: u64 = 1024;

/// What one measuring window saw.
struct Phase {
    report_interval_ms: u64,
    offered_per_s: f64,
    stored_per_s: f64,
    acked_per_s: f64,
    publish_ack: LatencySummary,
    probes: ProbeResult,
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let mut arg = sunledger_benches::numeric_args(std::env::args().skip(1));
    let (devices, seconds, interval_ms) = (
        arg(10_000)? as usize,
        arg(20)?,
        arg(RAMP_START_INTERVAL_MS)?,
    );
    let window = Duration::from_secs(seconds);
    let fds_wanted = 2 * (devices + PROBES) as u64 + FD_SPARE;
    let fd = raise_fd_limit(fds_wanted)?;
    println!(
        "open-file limit: {} -> {} (hard {}); two per in-process connection, {fds_wanted} wanted",
        fd.before, fd.after, fd.hard
    );
    if fd.after < fds_wanted {
        println!(
            "warning: at most about {} devices can connect under this limit",
            fd.after.saturating_sub(FD_SPARE) / 2
        );
    }

    let dir = tempfile::tempdir()?;
    let server = setup::start_server(dir.path()).await?;
    let serials: Vec<String> = (1..=devices).map(|n| format!("E2E-{n:06}")).collect();
    let probe_serials: Vec<String> = (1..=PROBES).map(|n| format!("PROBE-{n:02}")).collect();
    let started = Instant::now();
    let credentials = setup::register(&server, &serials)?;
    let probe_credentials = setup::register(&server, &probe_serials)?;
    let all: Vec<String> = serials.iter().chain(&probe_serials).cloned().collect();
    tokio::task::block_in_place(|| setup::open_accounts(&server, &all))?;
    println!(
        "registered {} units and opened their accounts in {:.1} s",
        all.len(),
        started.elapsed().as_secs_f64()
    );

    let mqtt = server.settings().broker.listen;
    let config = SimConfig {
        broker_host: mqtt.ip().to_string(),
        broker_port: mqtt.port(),
        report_interval_ms: CONNECT_INTERVAL_MS,
        ..SimConfig::default()
    };
    let rss_before = resident_bytes();
    let mut fleet = Fleet::start(config.clone(), credentials)?;
    let (connected, connect_time) = setup::wait_connected(&fleet).await;
    let rss_per_device =
        resident_bytes().saturating_sub(rss_before) as f64 / connected.max(1) as f64;
    println!(
        "{connected} of {devices} devices connected in {:.1} s ({} connection errors)",
        connect_time.as_secs_f64(),
        fleet.snapshot().connection_errors
    );
    let probe_devices = probe_credentials
        .into_iter()
        .map(|c| SimDevice::new(&config, c))
        .collect::<Result<Vec<_>, _>>()?;
    let mut probes = Probes::connect(probe_devices, server.engine_handle()).await?;

    let (max, ramp_lines) = ramp(interval_ms, async |interval_ms| {
        measure(&fleet, &mut probes, connected, interval_ms, window).await
    })
    .await;
    for line in ramp_lines {
        println!("{line}");
    }
    let half_interval_ms = interval_for(connected, max.stored_per_s / 2.0);
    let half = measure(&fleet, &mut probes, connected, half_interval_ms, window).await;

    fleet.shutdown().await;
    let probe_devices = probes.finish().await;
    settle().await;
    let mut truths = fleet.truth();
    truths.extend(probe_devices.iter().map(SimDevice::truth));
    let audit = audit::audit(server.store(), &truths)?;
    let skipped = counter("sunledger_ingest_broker_skipped_total");
    print_table(
        devices,
        connected,
        connect_time,
        rss_per_device,
        &[&max, &half],
        &audit,
    );
    println!("broker evictions before ingest read them: {skipped}");
    println!("fleet seed: {} (replays load curves)", fleet.seed());
    for line in audit.mismatches.iter().take(10) {
        println!("mismatch: {line}");
    }
    server.shutdown().await;
    Ok(())
}

impl Rates for Phase {
    fn offered_per_s(&self) -> f64 {
        self.offered_per_s
    }

    fn achieved_per_s(&self) -> f64 {
        self.stored_per_s
    }
}

/// Report interval at which `devices` offer `per_s` readings per second.
fn interval_for(devices: u64, per_s: f64) -> u64 {
    (devices as f64 * 1000.0 / per_s.max(1.0)).round().max(1.0) as u64
}

/// Sets the pace, warms up, then measures one window.
async fn measure(
    fleet: &Fleet,
    probes: &mut Probes,
    devices: u64,
    report_interval_ms: u64,
    window: Duration,
) -> Phase {
    fleet.set_report_interval(Duration::from_millis(report_interval_ms));
    tokio::time::sleep(WARM_UP).await;
    fleet.reset_latency();
    let (stored_before, stats_before, started) = (
        counter("sunledger_billing_readings_total"),
        fleet.snapshot(),
        Instant::now(),
    );
    let probes = probes.measure(window).await;
    let seconds = started.elapsed().as_secs_f64();
    let stats = fleet.snapshot();
    Phase {
        report_interval_ms,
        offered_per_s: devices as f64 * 1000.0 / report_interval_ms as f64,
        stored_per_s: (counter("sunledger_billing_readings_total") - stored_before) / seconds,
        acked_per_s: (stats.telemetry_acked - stats_before.telemetry_acked) as f64 / seconds,
        publish_ack: stats.publish_ack_latency,
        probes,
    }
}

/// A counter of this process's metrics recorder, summed over its labels.
fn counter(name: &str) -> f64 {
    let text = sunledger::metrics_http::recorder()
        .map(|handle| handle.render())
        .unwrap_or_default();
    sunledger_tests::metric(&text, name, &[])
}

/// Waits until the engine stored every queued reading: the count stops moving.
async fn settle() {
    let mut last = counter("sunledger_billing_readings_total");
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = counter("sunledger_billing_readings_total");
        if now == last {
            return;
        }
        last = now;
    }
}

fn print_table(
    devices: usize,
    connected: u64,
    connect_time: Duration,
    rss_per_device: f64,
    phases: &[&Phase],
    audit: &sunledger_sim::audit::Audit,
) {
    let ms = LatencySummary::ms;
    let mut rows = vec![
        (
            "devices (connected)".to_owned(),
            format!("{devices} ({connected})"),
        ),
        (
            "connect time".to_owned(),
            format!("{:.1} s", connect_time.as_secs_f64()),
        ),
        (
            "RSS per connected device (client + server in one process)".to_owned(),
            format!("{:.1} KiB", rss_per_device / 1024.0),
        ),
    ];
    for (name, phase) in ["max", "half"].iter().zip(phases) {
        let stored = &phase.probes.stored_us;
        // The half phase is meant to take all of its offer.
        let took_all = match *name {
            "max" => offer_note(*phase),
            _ => "",
        };
        rows.extend([
            (
                format!("[{name}] report interval, offered"),
                format!(
                    "{} ms, {:.0} msgs/s",
                    phase.report_interval_ms, phase.offered_per_s
                ),
            ),
            (
                format!("[{name}] stored by the platform"),
                format!("{:.0} msgs/s{took_all}", phase.stored_per_s),
            ),
            (
                format!("[{name}] PUBACKed to the devices"),
                format!("{:.0} msgs/s", phase.acked_per_s),
            ),
            (
                format!("[{name}] publish→PUBACK p50 / p99"),
                format!(
                    "{:.2} / {:.2} ms",
                    ms(phase.publish_ack.p50_us),
                    ms(phase.publish_ack.p99_us)
                ),
            ),
            (
                format!("[{name}] publish→stored p50 / p99 (probes)"),
                format!(
                    "{:.2} / {:.2} ms ({} samples, {} lost)",
                    ms(stored.value_at_quantile(0.5)),
                    ms(stored.value_at_quantile(0.99)),
                    stored.len(),
                    phase.probes.lost
                ),
            ),
        ]);
    }
    rows.extend([
        (
            "audit: devices, mismatches".to_owned(),
            format!("{}, {}", audit.checked, audit.mismatches.len()),
        ),
        (
            "audit: billable / stored energy".to_owned(),
            format!("{} / {} Wh", audit.billable_wh, audit.stored_wh),
        ),
    ]);
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    println!(
        "\n| {:<width$} | value |\n|{}|---|",
        "figure",
        "-".repeat(width + 2)
    );
    for (key, value) in rows {
        println!("| {key:<width$} | {value} |");
    }
}
