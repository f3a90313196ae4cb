//! `serve --demo`: demo units and a simulated fleet in the same process, so a newcomer sees
//! telemetry arrive and get stored without any hardware.
//!
//! Demo units are named `DEMO-000001`... On every start their device secrets are rotated (a
//! secret is never stored, so a previous run's cannot be recovered) and handed to the fleet.

use std::sync::Arc;
use std::time::Duration;

use sunledger_billing::store::Store;
use sunledger_billing::store::StoreError;
use sunledger_sim::config::SimConfig;
use sunledger_sim::device::DeviceCredentials;
use sunledger_sim::fleet::Fleet;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::server::Server;

/// How often the one-line summary is printed.
const SUMMARY_INTERVAL: Duration = Duration::from_secs(5);

/// A running demo fleet and its summary printer.
pub struct Demo {
    fleet: Arc<Mutex<Fleet>>,
    summary: JoinHandle<()>,
}

impl Demo {
    /// Registers (or re-keys) `devices` demo units and starts the simulated fleet.
    pub async fn start(server: &Server, devices: usize) -> anyhow::Result<Demo> {
        let mut credentials = Vec::with_capacity(devices);
        for n in 1..=devices {
            let serial = format!("DEMO-{n:06}");
            let secret = match server.register_unit(&serial) {
                Ok(secret) => secret,
                Err(StoreError::UnitExists(_)) => server.rotate_secret(&serial)?,
                Err(error) => return Err(error.into()),
            };
            credentials.push(DeviceCredentials {
                serial,
                secret: secret.expose().to_owned(),
            });
        }
        let mut mqtt = server.settings().broker.listen;
        if mqtt.ip().is_unspecified() {
            mqtt.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let config = SimConfig {
            broker_host: mqtt.ip().to_string(),
            broker_port: mqtt.port(),
            report_interval_ms: 5_000,
            // One real second is 12 simulated minutes: a report every simulated hour, a day
            // of load curve every two real minutes.
            time_scale: 720.0,
            ..SimConfig::default()
        };
        let fleet = Arc::new(Mutex::new(Fleet::start(config, credentials)?));
        println!(
            "demo: {devices} simulated units DEMO-000001.. connecting to MQTT {mqtt}; metrics on http://{}/metrics",
            server.settings().metrics_listen
        );
        let summary = tokio::spawn(print_summaries(fleet.clone(), server.store_handle()));
        Ok(Demo { fleet, summary })
    }

    /// Stops the summary and disconnects the fleet cleanly.
    pub async fn stop(self) {
        self.summary.abort();
        self.fleet.lock().await.shutdown().await;
    }
}

async fn print_summaries(fleet: Arc<Mutex<Fleet>>, store: Arc<Store>) {
    let mut ticker = tokio::time::interval(SUMMARY_INTERVAL);
    loop {
        ticker.tick().await;
        let fleet = fleet.lock().await.snapshot();
        let units = store
            .unit_states(|serial| serial.starts_with("DEMO-"))
            .unwrap_or_default();
        let consumed_wh: u64 = units.iter().map(|(_, unit)| unit.consumed_wh).sum();
        let online = units.iter().filter(|(_, unit)| unit.online).count();
        println!(
            "demo: {} connected, {} readings sent, {} acked by broker | platform: {} units online, {}.{:03} kWh consumed in total, {} devices off",
            fleet.connected,
            fleet.telemetry_sent,
            fleet.telemetry_acked,
            online,
            consumed_wh / 1000,
            consumed_wh % 1000,
            fleet.devices_off
        );
    }
}
