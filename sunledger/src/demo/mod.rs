//! `serve --demo`: a real organisation seeded through the operators' API operations and a
//! simulated fleet of its units in the same process, so a newcomer sees the whole product
//! (telemetry, billing, switch-offs, the gRPC API) without any hardware.
//!
//! - [`seed`]: the organisation "Sunledger Demo", its plans, units `DEMO-000001`…, their
//!   customers and installations and welcome credits, created once and found again on later
//!   starts; returns a fresh Admin API token and fresh device keys.
//! - [`record`]: what the demo remembers between starts (in the database itself).
//! - `top_up`: payments through the directory, as the Payments service makes them.
//!
//! [`Demo::start`] seeds, prints the token with ready-to-paste `grpcurl` calls, connects the
//! fleet with the fresh device keys (which seal every reading and ack), prints a one-line
//! summary every few seconds and pays for some switched-off units every minute so they come
//! back on.

pub mod record;
pub mod seed;
mod top_up;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rust_decimal::Decimal;
use sunledger_billing::store::Store;
use sunledger_sim::config::SimConfig;
use sunledger_sim::device::DeviceCredentials;
use sunledger_sim::fleet::Fleet;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

pub use seed::{Seeded, SeededUnit, seed};

use crate::server::Server;

/// What every demo unit's serial starts with; the unit number follows in six digits.
const SERIAL_PREFIX: &str = "DEMO-";

/// How often the one-line summary is printed.
const SUMMARY_INTERVAL: Duration = Duration::from_secs(5);

/// A running demo fleet, its summary printer and its top-ups.
pub struct Demo {
    fleet: Arc<Mutex<Fleet>>,
    summary: JoinHandle<()>,
    top_up: JoinHandle<()>,
}

impl Demo {
    /// Seeds (or finds and re-keys) `devices` demo units, prints how to call the API, and
    /// starts the simulated fleet.
    pub async fn start(server: &Server, devices: usize) -> anyhow::Result<Demo> {
        let seeded = seed(server, devices).await?;
        print_access(server, &seeded);
        let command_key = server
            .store()
            .command_verifying_key(&seeded.organisation.id)?;
        let credentials = seeded
            .units
            .iter()
            .map(|unit| DeviceCredentials {
                serial: unit.serial.clone(),
                device_key: *unit.device_key.bytes(),
                command_key: Some(command_key),
            })
            .collect();
        let mqtt = reachable(server.settings().broker.listen);
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
        let installations = seeded
            .units
            .into_iter()
            .map(|unit| (unit.serial, unit.installation_id))
            .collect();
        let top_up = tokio::spawn(top_up::top_up(
            server.platform().clone(),
            seeded.admin,
            installations,
        ));
        Ok(Demo {
            fleet,
            summary,
            top_up,
        })
    }

    /// Stops the summary and top-ups and disconnects the fleet cleanly.
    pub async fn stop(self) {
        self.summary.abort();
        self.top_up.abort();
        self.fleet.lock().await.shutdown().await;
    }
}

/// Where a client on this machine reaches a listener bound to `listen` (the unspecified
/// address is not connectable everywhere, so it becomes loopback).
fn reachable(mut listen: SocketAddr) -> SocketAddr {
    if listen.ip().is_unspecified() {
        listen.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    listen
}

/// Prints the demo organisation, the Admin token and `grpcurl` calls to paste.
fn print_access(server: &Server, seeded: &Seeded) {
    let grpc = reachable(server.settings().grpc_listen);
    let token = seeded.token.expose();
    let transport = match &server.settings().grpc_tls {
        Some(tls) => format!("-cacert {}", tls.cert_path.display()),
        None => "-plaintext".to_owned(),
    };
    let call = format!("grpcurl {transport} -H \"authorization: Bearer {token}\"");
    println!(
        "demo: organisation {:?} ({}): {} units, each installed for a customer on a usage plan",
        seeded.organisation.name,
        seeded.organisation.id,
        seeded.units.len()
    );
    println!(
        "demo: Admin API token (new at every start; the previous one is revoked):\n\n    {token}\n"
    );
    println!(
        "demo: try\n    {call} {grpc} sunledger.api.v1.Reports/GetDashboard\n    {call} -d '{{\"page_size\": 5}}' {grpc} sunledger.api.v1.Units/ListUnits\n"
    );
}

async fn print_summaries(fleet: Arc<Mutex<Fleet>>, store: Arc<Store>) {
    let mut ticker = tokio::time::interval(SUMMARY_INTERVAL);
    loop {
        ticker.tick().await;
        let fleet = fleet.lock().await.snapshot();
        let units = store.units_hot(is_demo).unwrap_or_default();
        let consumed_wh: u64 = units.iter().map(|(_, unit)| unit.state.consumed_wh).sum();
        let online = units.iter().filter(|(_, unit)| unit.state.online).count();
        let balance: Decimal = units
            .iter()
            .filter_map(|(_, unit)| Some(unit.account.as_ref()?.account.balance()))
            .sum();
        println!(
            "demo: {} connected, {} readings sent, {} acked by broker | platform: {} units online, {}.{:03} kWh consumed, balances total {}, {} devices off",
            fleet.connected,
            fleet.telemetry_sent,
            fleet.telemetry_acked,
            online,
            consumed_wh / 1000,
            consumed_wh % 1000,
            balance.round_dp(2),
            fleet.devices_off
        );
    }
}

/// Whether `serial` names a demo unit.
fn is_demo(serial: &str) -> bool {
    serial.starts_with(SERIAL_PREFIX)
}
