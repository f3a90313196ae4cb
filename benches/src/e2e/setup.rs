//! Bringing the whole platform up in-process for the benchmark: the real server on free
//! loopback ports with a temporary database, units registered, a usage account opened for
//! each.

use rust_decimal::Decimal;
use sunledger::{Server, Settings};
use sunledger_billing::account::AccountSetup;
use sunledger_billing::account_record::AccountOpening;
use sunledger_billing::store::PLATFORM_OWNER;
use sunledger_billing::tariff::{PlanTerms, Tariff};
use sunledger_sim::DeviceCredentials;
use sunledger_tests::free_addr;

/// Threads opening accounts at once: each `open_account` is a durable commit, and concurrent
/// calls share group commits in the partition.
const ACCOUNT_OPENERS: usize = 32;

/// Starts the server with production defaults, except loopback ports and a fresh database.
pub async fn start_server(dir: &std::path::Path) -> anyhow::Result<Server> {
    let mut settings = Settings {
        database_path: dir.join("sunledger.redb"),
        grpc_listen: free_addr(),
        metrics_listen: free_addr(),
        ..Settings::default()
    };
    settings.broker.listen = free_addr();
    Server::start(settings).await
}

/// Registers `serials` and returns their credentials.
pub fn register(server: &Server, serials: &[String]) -> anyhow::Result<Vec<DeviceCredentials>> {
    serials
        .iter()
        .map(|serial| {
            let key = server.register_unit(serial, false)?;
            Ok(DeviceCredentials {
                serial: serial.clone(),
                device_key: *key.bytes(),
                command_key: Some(server.store().command_verifying_key(PLATFORM_OWNER)?),
            })
        })
        .collect()
}

/// Opens a funded usage-tariff account for every serial, without automatic switch-off, so
/// every reading is metered, charged and journaled and no load command interferes.
pub fn open_accounts(server: &Server, serials: &[String]) -> anyhow::Result<()> {
    let mut terms = PlanTerms::new(Tariff::Usage {
        price_per_kwh: Decimal::new(150, 2),
    });
    terms.auto_switch_off = false;
    let opening = AccountOpening {
        org: "bench".into(),
        tz: chrono_tz::Tz::Africa__Nairobi,
        terms,
        setup: AccountSetup::default(),
        time_mode: Default::default(),
    };
    let engine = server.engine();
    let chunk = serials.len().div_ceil(ACCOUNT_OPENERS).max(1);
    std::thread::scope(|scope| {
        let openers: Vec<_> = serials
            .chunks(chunk)
            .map(|serials| {
                let opening = opening.clone();
                scope.spawn(move || -> anyhow::Result<()> {
                    for serial in serials {
                        engine.open_account(serial, opening.clone())?;
                    }
                    Ok(())
                })
            })
            .collect();
        openers
            .into_iter()
            .try_for_each(|opener| opener.join().expect("account opener panicked"))
    })
}
