//! A fleet of simulated devices, one tokio task each, sharing a simulated clock, a bound on
//! concurrent CONNECTs, live counters and a shutdown signal.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::backoff::Backoff;
use crate::clock::SimClock;
use crate::config::SimConfig;
use crate::device::{DeviceCredentials, SimDevice};
use crate::device_task::{self, TaskContext};
use crate::error::SimError;
use crate::seed::{Stream, stream_seed};
use crate::stats::{FleetCounters, FleetStats};
use crate::truth::{DeviceTruth, TruthRecorder};

/// Many devices running against one broker until [`Fleet::shutdown`]. Dropping a fleet
/// without shutting it down aborts the tasks, so brokers see dropped connections and publish
/// the devices' last wills.
pub struct Fleet {
    seed: u64,
    counters: Arc<FleetCounters>,
    /// Each device's truth, in the order the credentials were given.
    truths: Vec<Arc<Mutex<TruthRecorder>>>,
    report_interval_tx: watch::Sender<Duration>,
    shutdown_tx: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Fleet {
    /// Validates `config` and the serials, then spawns one task per device on the current
    /// tokio runtime (so it must be called from within one). Devices connect at most
    /// `connect_concurrency` at a time and report at seeded offsets within the interval.
    pub fn start(config: SimConfig, devices: Vec<DeviceCredentials>) -> Result<Fleet, SimError> {
        config.validate()?;
        let mut serials = HashSet::with_capacity(devices.len());
        if let Some(duplicate) = devices.iter().find(|d| !serials.insert(d.serial.as_str())) {
            return Err(SimError::DuplicateSerial {
                serial: duplicate.serial.clone(),
            });
        }
        let clock = SimClock::start(config.sim_start_unix_s, config.time_scale);
        let counters = Arc::new(FleetCounters::default());
        let built = devices
            .into_iter()
            .map(|credentials| SimDevice::build(&config, credentials, clock, Arc::clone(&counters)))
            .collect::<Result<Vec<_>, _>>()?;

        let connect_permits = Arc::new(Semaphore::new(config.connect_concurrency));
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let (report_interval_tx, report_interval) =
            watch::channel(Duration::from_millis(config.report_interval_ms));
        let mut truths = Vec::with_capacity(built.len());
        let mut tasks = JoinSet::new();
        for device in built {
            truths.push(device.truth_handle());
            let phase_seed = stream_seed(device.seed(), Stream::ReportPhase);
            let report_phase = StdRng::seed_from_u64(phase_seed).random_range(0.0..1.0);
            let ctx = TaskContext {
                connect_permits: Arc::clone(&connect_permits),
                shutdown: shutdown_rx.clone(),
                report_interval: report_interval.clone(),
                report_phase,
                backoff: Backoff::new(
                    config.reconnect_backoff_initial_ms,
                    config.reconnect_backoff_max_ms,
                    stream_seed(device.seed(), Stream::Backoff),
                ),
            };
            tasks.spawn(device_task::run(device, ctx));
        }
        tracing::info!(
            devices = truths.len(),
            seed = config.seed,
            "sim fleet started"
        );
        Ok(Fleet {
            seed: config.seed,
            counters,
            truths,
            report_interval_tx,
            shutdown_tx,
            tasks,
        })
    }

    /// The fleet seed; print it with any failure so the run can be replayed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// How many devices the fleet runs.
    pub fn len(&self) -> usize {
        self.truths.len()
    }

    /// Whether the fleet has no devices.
    pub fn is_empty(&self) -> bool {
        self.truths.is_empty()
    }

    /// Live counters; a handful of atomic loads, cheap to call every few seconds.
    pub fn snapshot(&self) -> FleetStats {
        self.counters.snapshot()
    }

    /// Makes every device report every `interval` from now on, at its own phase of it, so a
    /// benchmark can change the offered load without reconnecting the fleet.
    pub fn set_report_interval(&self, interval: Duration) {
        // Every device task holds a receiver until it ends; none left means nothing to pace.
        let _ = self
            .report_interval_tx
            .send(interval.max(Duration::from_millis(1)));
    }

    /// Forgets the publish→PUBACK latency samples so far, so the next
    /// [`Fleet::snapshot`]'s percentiles cover only what follows.
    pub fn reset_latency(&self) {
        self.counters.reset_latency();
    }

    /// Every device's ground truth, in the order the credentials were given. Locks each
    /// device briefly; meant for the end of a run or an occasional audit.
    pub fn truth(&self) -> Vec<DeviceTruth> {
        self.truths
            .iter()
            .map(|truth| {
                truth
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .snapshot()
            })
            .collect()
    }

    /// Stops reporting, lets each device drain its queued publishes, mark itself offline and
    /// disconnect cleanly, and waits for every task. Idempotent; `snapshot` and `truth` keep
    /// working afterwards.
    pub async fn shutdown(&mut self) {
        // Receivers outlive the send: every task holds one until it ends.
        let _ = self.shutdown_tx.send(true);
        while let Some(joined) = self.tasks.join_next().await {
            if let Err(error) = joined {
                tracing::error!(%error, seed = self.seed, "sim device task failed");
            }
        }
    }
}
