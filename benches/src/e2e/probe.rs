//! Publish→stored latency, measured honestly from outside the platform: a few probe devices
//! take turns publishing one reading and then poll the billing engine until the unit's meter
//! shows that reading's sequence number. A partition answers between batches, after the
//! previous batch's commit, so what it shows is durable. The time from handing the reading to
//! the MQTT client to seeing it committed is one sample. Probes are ordinary registered units
//! with accounts, so their readings take the same path as the fleet's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use sunledger_billing::worker::Engine;
use sunledger_sim::SimDevice;

/// Pause between two probe readings (across all probes); keeps the probes' own load
/// negligible next to the fleet's.
const PROBE_GAP: Duration = Duration::from_millis(50);
/// Pause between two questions to the engine while waiting for a reading to be committed.
const POLL_GAP: Duration = Duration::from_millis(1);
/// A reading not committed after this long counts as lost for the probe.
const STORED_WAIT_MAX: Duration = Duration::from_secs(30);

/// Probe devices and the engine they watch.
pub struct Probes {
    devices: Vec<SimDevice>,
    engine: Arc<Engine>,
}

/// What the probes measured in one window.
pub struct ProbeResult {
    /// Publish→stored latency of every reading that was committed, in microseconds.
    pub stored_us: Histogram<u64>,
    /// Readings not seen committed within [`STORED_WAIT_MAX`], or not acknowledged.
    pub lost: u64,
}

impl Probes {
    /// Connects every probe device.
    pub async fn connect(mut devices: Vec<SimDevice>, engine: Arc<Engine>) -> anyhow::Result<Self> {
        for device in &mut devices {
            device.connect().await?;
        }
        Ok(Probes { devices, engine })
    }

    /// Takes turns publishing and waiting for the commit until `window` has passed.
    pub async fn measure(&mut self, window: Duration) -> ProbeResult {
        let histogram = Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
        let mut result = ProbeResult {
            stored_us: histogram,
            lost: 0,
        };
        let deadline = Instant::now() + window;
        let mut turn = 0;
        while Instant::now() < deadline {
            let index = turn % self.devices.len();
            turn += 1;
            match self.one_reading(index).await {
                Some(latency) => {
                    let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
                    result.stored_us.saturating_record(us.max(1));
                }
                None => result.lost += 1,
            }
            tokio::time::sleep(PROBE_GAP).await;
        }
        result
    }

    async fn one_reading(&mut self, index: usize) -> Option<Duration> {
        let device = &mut self.devices[index];
        let started = Instant::now();
        if !device.is_connected() {
            device.connect().await.ok()?;
        }
        let reading = device.publish_telemetry_now().await.ok()?;
        let serial = device.serial().to_owned();
        while started.elapsed() < STORED_WAIT_MAX {
            let (engine, asked) = (self.engine.clone(), serial.clone());
            let state = tokio::task::spawn_blocking(move || engine.unit(&asked))
                .await
                .ok()
                .and_then(Result::ok)
                .flatten();
            let meter = state.and_then(|state| state.meter);
            if meter.is_some_and(|m| (m.boot, m.seq) >= (reading.boot, reading.seq)) {
                return Some(started.elapsed());
            }
            tokio::time::sleep(POLL_GAP).await;
        }
        None
    }

    /// Disconnects every probe cleanly and hands the devices back for the audit.
    pub async fn finish(mut self) -> Vec<SimDevice> {
        for device in &mut self.devices {
            let _ = device.disconnect().await;
        }
        self.devices
    }
}
