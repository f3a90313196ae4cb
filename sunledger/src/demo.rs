//! `serve --demo`: demo units and a simulated fleet in the same process, so a newcomer sees
//! telemetry arrive and get stored without any hardware.
//!
//! Demo units are named `DEMO-000001`... On every start their device secrets are rotated (a
//! secret is never stored, so a previous run's cannot be recovered) and handed to the fleet.
//! Each has an account on a usage plan with automatic switch-off and a small welcome credit,
//! so units run out and are switched off within minutes; [`top_up`] pays for some of those
//! every minute so they come back on.

use std::sync::Arc;
use std::time::Duration;

use rust_decimal::Decimal;
use sunledger_billing::account::{AccountSetup, Payment};
use sunledger_billing::account_record::{AccountOpening, Movement};
use sunledger_billing::engine::EngineError;
use sunledger_billing::ledger::PaymentChannel;
use sunledger_billing::store::Store;
use sunledger_billing::store::StoreError;
use sunledger_billing::tariff::{PlanTerms, Tariff};
use sunledger_billing::worker::Engine;
use sunledger_sim::config::SimConfig;
use sunledger_sim::device::DeviceCredentials;
use sunledger_sim::fleet::Fleet;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::server::Server;

/// How often the one-line summary is printed.
const SUMMARY_INTERVAL: Duration = Duration::from_secs(5);

/// How often switched-off demo units are topped up.
const TOP_UP_INTERVAL: Duration = Duration::from_secs(60);

/// The organisation demo accounts belong to.
const DEMO_ORG: &str = "demo";

/// A running demo fleet and its summary printer.
pub struct Demo {
    fleet: Arc<Mutex<Fleet>>,
    summary: JoinHandle<()>,
    top_up: JoinHandle<()>,
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
            open_demo_account(server, &serial)?;
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
        let top_up = tokio::spawn(top_up(server.engine_handle(), server.store_handle()));
        Ok(Demo {
            fleet,
            summary,
            top_up,
        })
    }

    /// Stops the summary and disconnects the fleet cleanly.
    pub async fn stop(self) {
        self.summary.abort();
        self.top_up.abort();
        self.fleet.lock().await.shutdown().await;
    }
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

fn is_demo(serial: &str) -> bool {
    serial.starts_with("DEMO-")
}

/// Opens the demo unit's account (once: a restart keeps the existing one) with a welcome
/// credit whose reference makes it a single payment however often the demo starts.
fn open_demo_account(server: &Server, serial: &str) -> anyhow::Result<()> {
    let mut terms = PlanTerms::new(Tariff::Usage {
        price_per_kwh: Decimal::new(150, 2),
    });
    terms.auto_switch_off = true;
    let opening = AccountOpening {
        org: DEMO_ORG.into(),
        tz: chrono_tz::Tz::Africa__Nairobi,
        terms,
        setup: AccountSetup::default(),
    };
    let engine = server.engine();
    match tokio::task::block_in_place(|| engine.open_account(serial, opening)) {
        Ok(_) | Err(EngineError::AccountExists(_)) => {}
        Err(error) => return Err(error.into()),
    }
    let welcome = Payment {
        amount: Decimal::new(50, 2),
        channel: PaymentChannel::Other,
        provider_ref: format!("{serial}-welcome"),
        entered_by: "demo".into(),
    };
    tokio::task::block_in_place(|| engine.record(serial, Movement::Payment(welcome)))?;
    Ok(())
}

/// Every minute, pays 1.00 for up to five switched-off demo units, as customers would.
async fn top_up(engine: Arc<Engine>, store: Arc<Store>) {
    let mut ticker = tokio::time::interval(TOP_UP_INTERVAL);
    let mut round = 0u64;
    loop {
        ticker.tick().await;
        round += 1;
        let units = store.units_hot(is_demo).unwrap_or_default();
        let off = units.into_iter().filter(|(_, unit)| {
            unit.state.desired.is_some_and(|desired| {
                desired.load == sunledger_proto::device::LoadState::Off as i32
            })
        });
        for (serial, _) in off.take(5) {
            let payment = Payment {
                amount: Decimal::ONE,
                channel: PaymentChannel::MobileMoney,
                provider_ref: format!("{serial}-top-up-{round}"),
                entered_by: "demo".into(),
            };
            let engine = engine.clone();
            let paid = tokio::task::spawn_blocking(move || {
                engine.record(&serial, Movement::Payment(payment))
            })
            .await;
            if let Ok(Err(error)) = paid {
                tracing::warn!(%error, "demo top-up refused");
            }
        }
    }
}
