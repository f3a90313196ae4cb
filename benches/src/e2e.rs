//! Benchmark: the whole platform end to end. The real server (broker, ingest, billing with
//! durable commits) runs in this process on loopback ports with a temporary database; a
//! simulated fleet of real MQTT clients reports to it from a child process
//! (`e2e/fleet_process.rs`), so each process needs one descriptor per device.
//!
//! Run: `cargo run --release -p sunledger-benches --bin e2e -- [devices] [seconds] [interval_ms]`
//! (defaults 10000 devices, 20 s per phase, the ramp starting at a report every 250 ms per
//! device).
//!
//! Phase 1 ramps the offer up (`sunledger_benches::ramp`) until the platform no longer takes
//! all of it, and keeps the step that stored the most readings per second (the billing
//! engine's `sunledger_billing_readings_total`; marked as a floor if even the last step took
//! all of its offer). Phase 2 slows the same connected fleet down to offer half that, and
//! measures publish→PUBACK latency in the devices and publish→stored latency with probe
//! devices (in this process) that poll the engine. Each phase also prints the billing
//! engine's batches and commits and the CPU time per stored message by thread, server's and
//! fleet's. Resident memory per connected device is each process's growth while the fleet
//! connects. At the end every device's ground truth is audited against the energy the
//! platform stored.

#[path = "e2e/audit.rs"]
mod audit;
#[path = "e2e/fleet_process.rs"]
mod fleet_process;
#[path = "e2e/probe.rs"]
mod probe;
#[path = "e2e/setup.rs"]
mod setup;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sunledger_benches::process::{cpu_delta, raise_fd_limit, resident_bytes, thread_cpu_seconds};
use sunledger_benches::{CONNECT_INTERVAL_MS, RAMP_START_INTERVAL_MS, Rates, offer_note, ramp};
use sunledger_sim::latency::LatencySummary;
use sunledger_sim::{SimConfig, SimDevice};

use crate::fleet_process::{FLEET_ROLE, FleetProcess, Snapshot};
use crate::probe::{ProbeResult, Probes};

/// Probe devices measuring publish→stored latency.
const PROBES: usize = 8;
/// Time given to the fleet after a change of pace before measuring.
const WARM_UP: Duration = Duration::from_secs(3);
/// How the fleet process's threads are named in the CPU figures.
const FLEET_THREADS: &str = "fleet ";
/// Descriptors beyond one per device (the server's end; the fleet's process holds the
/// other) and two per probe: database, listeners, runtime.
const FD_SPARE: u64 = 1024;

/// What one measuring window saw.
struct Phase {
    report_interval_ms: u64,
    offered_per_s: f64,
    stored_per_s: f64,
    acked_per_s: f64,
    /// Events per billing batch and milliseconds per batch commit, means over the window:
    /// what the group commit made of the load.
    batch_events: f64,
    commit_ms: f64,
    /// CPU seconds per second of the window, by thread name, largest first.
    cores: Vec<(String, f64)>,
    publish_ack: LatencySummary,
    probes: ProbeResult,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.split_first() {
        Some((role, rest)) if role == FLEET_ROLE => fleet_process::run_child(rest),
        _ => tokio::runtime::Runtime::new()?.block_on(benchmark(args)),
    }
}

/// The benchmark proper: the server in this process, the fleet in a child process.
async fn benchmark(args: Vec<String>) -> anyhow::Result<()> {
    let mut arg = sunledger_benches::numeric_args(args.into_iter());
    let (devices, seconds, interval_ms) = (
        arg(10_000)? as usize,
        arg(20)?,
        arg(RAMP_START_INTERVAL_MS)?,
    );
    let window = Duration::from_secs(seconds);
    let fds_wanted = (devices + 2 * PROBES) as u64 + FD_SPARE;
    let fd = raise_fd_limit(fds_wanted)?;
    println!(
        "open-file limit: {} -> {} (hard {}); one per device here (the fleet's process holds \
         the other end), {fds_wanted} wanted",
        fd.before, fd.after, fd.hard
    );
    if fd.after < fds_wanted {
        println!(
            "warning: at most about {} devices can connect under this limit",
            fd.after.saturating_sub(FD_SPARE)
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
    let rss_before = resident_bytes();
    let (mut fleet, connect) = tokio::task::block_in_place(|| {
        FleetProcess::spawn(mqtt, CONNECT_INTERVAL_MS, &credentials)
    })?;
    let memory = Memory {
        server_per_device: resident_bytes().saturating_sub(rss_before) as f64
            / connect.connected.max(1) as f64,
        fleet_per_device: connect.rss_per_device,
    };
    println!(
        "{} of {devices} devices connected in {:.1} s ({} connection errors)",
        connect.connected, connect.seconds, connect.errors
    );
    let config = SimConfig {
        broker_host: mqtt.ip().to_string(),
        broker_port: mqtt.port(),
        ..SimConfig::default()
    };
    let probe_devices = probe_credentials
        .into_iter()
        .map(|c| SimDevice::new(&config, c))
        .collect::<Result<Vec<_>, _>>()?;
    let mut probes = Probes::connect(probe_devices, server.engine_handle()).await?;

    let connected = connect.connected;
    let (max, ramp_lines) = ramp(interval_ms, async |interval_ms| {
        measure(&mut fleet, &mut probes, connected, interval_ms, window).await
    })
    .await?;
    for line in ramp_lines {
        println!("{line}");
    }
    let half_interval_ms = interval_for(connected, max.stored_per_s / 2.0);
    let half = measure(&mut fleet, &mut probes, connected, half_interval_ms, window).await?;

    tokio::task::block_in_place(|| fleet.shutdown())?;
    let probe_devices = probes.finish().await;
    settle().await;
    let stored_wh = audit::stored_wh(server.store())?;
    let mut audit = tokio::task::block_in_place(|| fleet.audit(&stored_wh))?;
    let probe_truths: Vec<_> = probe_devices.iter().map(SimDevice::truth).collect();
    audit::check(&mut audit, &probe_truths, &stored_wh);
    tokio::task::block_in_place(|| fleet.close())?;
    let skipped = counter("sunledger_ingest_broker_skipped_total");
    print_table(
        devices,
        connected,
        connect.seconds,
        &memory,
        &[&max, &half],
        &audit,
    );
    println!("broker evictions before ingest read them: {skipped}");
    println!("fleet seed: {} (replays load curves)", config.seed);
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
    fleet: &mut FleetProcess,
    probes: &mut Probes,
    devices: u64,
    report_interval_ms: u64,
    window: Duration,
) -> anyhow::Result<Phase> {
    tokio::task::block_in_place(|| fleet.set_report_interval(report_interval_ms))?;
    tokio::time::sleep(WARM_UP).await;
    let before = tokio::task::block_in_place(|| {
        fleet.reset_latency()?;
        WindowEdge::read(fleet)
    })?;
    let probes = probes.measure(window).await;
    let after = tokio::task::block_in_place(|| WindowEdge::read(fleet))?;
    let seconds = after.at.duration_since(before.at).as_secs_f64();
    let (batches, commits) = (
        after.batches - before.batches,
        after.commits - before.commits,
    );
    let mut cores = cpu_delta(&before.server_cpu, &after.server_cpu);
    cores.extend(
        cpu_delta(&before.fleet.cpu, &after.fleet.cpu)
            .into_iter()
            .map(|(name, cpu)| (format!("{FLEET_THREADS}{name}"), cpu)),
    );
    cores.iter_mut().for_each(|(_, cpu)| *cpu /= seconds);
    cores.sort_by(|a, b| b.1.total_cmp(&a.1));
    let acked = after.fleet.stats.telemetry_acked - before.fleet.stats.telemetry_acked;
    Ok(Phase {
        report_interval_ms,
        offered_per_s: devices as f64 * 1000.0 / report_interval_ms as f64,
        stored_per_s: (after.stored - before.stored) / seconds,
        acked_per_s: acked as f64 / seconds,
        batch_events: batches.mean(),
        commit_ms: commits.mean() * 1000.0,
        cores,
        publish_ack: after.fleet.stats.publish_ack_latency,
        probes,
    })
}

/// Everything read at one edge of a measuring window; the window's figures are the
/// differences between its two edges.
struct WindowEdge {
    at: Instant,
    stored: f64,
    batches: SumCount,
    commits: SumCount,
    server_cpu: HashMap<String, f64>,
    fleet: Snapshot,
}

impl WindowEdge {
    fn read(fleet: &mut FleetProcess) -> anyhow::Result<WindowEdge> {
        let metrics = rendered_metrics();
        Ok(WindowEdge {
            at: Instant::now(),
            stored: sunledger_tests::metric(&metrics, "sunledger_billing_readings_total", &[]),
            batches: BATCHES.read(&metrics),
            commits: COMMITS.read(&metrics),
            server_cpu: thread_cpu_seconds(),
            fleet: fleet.snapshot()?,
        })
    }
}

/// Resident memory per connected device, bytes: the server's growth while the fleet
/// connected, and the fleet process's.
struct Memory {
    server_per_device: f64,
    fleet_per_device: f64,
}

/// This process's metrics, as `/metrics` would serve them.
fn rendered_metrics() -> String {
    sunledger::metrics_http::recorder()
        .map(|handle| handle.render())
        .unwrap_or_default()
}

/// A counter of this process's metrics recorder, summed over its labels.
fn counter(name: &str) -> f64 {
    sunledger_tests::metric(&rendered_metrics(), name, &[])
}

/// CPU microseconds per stored message, the server's threads' and the fleet's, and the
/// cores each used.
fn cpu_per_message(phase: &Phase) -> String {
    let (mut server, mut fleet) = (0.0, 0.0);
    for (name, cores) in &phase.cores {
        if name.starts_with(FLEET_THREADS) {
            fleet += cores;
        } else {
            server += cores;
        }
    }
    let per_message_us = |cores: f64| cores * 1e6 / phase.stored_per_s.max(1.0);
    format!(
        "{:.1} / {:.1} µs ({server:.2} / {fleet:.2} cores)",
        per_message_us(server),
        per_message_us(fleet)
    )
}

/// The busiest threads and their cores, the fleet process's named `fleet ...`.
fn busiest_threads(phase: &Phase) -> String {
    phase
        .cores
        .iter()
        .filter(|(_, cores)| *cores >= 0.005)
        .take(10)
        .map(|(name, cores)| format!("{name} {cores:.2}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A histogram of the metrics recorder, by its sum and count.
struct Histogram(&'static str);

/// Billing batches, by events per batch.
const BATCHES: Histogram = Histogram("sunledger_billing_batch_events");
/// Batch commits, by seconds each took.
const COMMITS: Histogram = Histogram("sunledger_billing_commit_seconds");

/// A histogram's sum and count at one moment; subtract two to get a window's.
#[derive(Clone, Copy)]
struct SumCount(f64, f64);

impl Histogram {
    /// Its sum and count in `metrics` (rendered Prometheus text).
    fn read(&self, metrics: &str) -> SumCount {
        let sample =
            |suffix: &str| sunledger_tests::metric(metrics, &format!("{}_{suffix}", self.0), &[]);
        SumCount(sample("sum"), sample("count"))
    }
}

impl std::ops::Sub for SumCount {
    type Output = SumCount;

    fn sub(self, before: SumCount) -> SumCount {
        SumCount(self.0 - before.0, self.1 - before.1)
    }
}

impl SumCount {
    fn mean(self) -> f64 {
        self.0 / self.1.max(1.0)
    }
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
    connect_seconds: f64,
    memory: &Memory,
    phases: &[&Phase],
    audit: &sunledger_sim::audit::Audit,
) {
    let ms = LatencySummary::ms;
    let mut rows = vec![
        (
            "devices (connected)".to_owned(),
            format!("{devices} ({connected})"),
        ),
        ("connect time".to_owned(), format!("{connect_seconds:.1} s")),
        (
            "RSS per connected device: server / fleet process".to_owned(),
            format!(
                "{:.1} / {:.1} KiB",
                memory.server_per_device / 1024.0,
                memory.fleet_per_device / 1024.0
            ),
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
                format!("[{name}] billing: events per batch / ms per commit (means)"),
                format!("{:.1} / {:.2}", phase.batch_events, phase.commit_ms),
            ),
            (
                format!("[{name}] CPU per stored message: server, fleet process"),
                cpu_per_message(phase),
            ),
            (format!("[{name}] cores by thread"), busiest_threads(phase)),
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
