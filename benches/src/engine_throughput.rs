//! Benchmark: usage readings applied per second by one billing partition alone (one thread),
//! durable (every batch committed to redb with immediate durability), over many accounts.
//!
//! Run: `cargo run --release -p sunledger-benches --bin engine-throughput -- [units] [rounds]
//! [batch]` (defaults 100000 units, 5 rounds, batches of 8,192, the engine's default
//! `batch_events_max`). Each round sends one new reading per unit. Prints every round's rate and the median.
//!
//! Every unit has an account on a usage tariff, so each reading is metered, charged, appended
//! to the ledger and committed with the unit's state and account. Accounts are written to the
//! file in one transaction first, then loaded by `Partition::open` as at start-up; the
//! resident memory this adds, per account, is printed too.

use std::sync::Arc;
use std::time::Instant;

use rust_decimal::Decimal;
use sunledger_benches::process::resident_bytes;
use sunledger_billing::account::{Account, AccountSetup};
use sunledger_billing::account_record::AccountRecord;
use sunledger_billing::clock::SystemClock;
use sunledger_billing::engine::{Partition, Unit, UnitState};
use sunledger_billing::event::{DeviceEvent, EventBody};
use sunledger_billing::secrets::MasterKey;
use sunledger_billing::store::Store;
use sunledger_billing::tariff::{PlanTerms, Tariff};
use sunledger_billing::units::{DeviceKey, UnitDirectory, UnitRecord, UnitStatus};
use sunledger_proto::device::Telemetry;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut arg = sunledger_benches::numeric_args(std::env::args().skip(1));
    let units = usize::try_from(arg(100_000)?)?;
    let rounds = arg(5)?;
    let batch_events = usize::try_from(arg(8_192)?)?;
    let dir = tempfile::tempdir()?;
    let store = Arc::new(Store::open(&dir.path().join("bench.redb"))?);
    let master = MasterKey::from_hex(&"42".repeat(32)).expect("64 hex digits");
    let key = DeviceKey::generate();
    let serials: Vec<Box<str>> = (0..units)
        .map(|n| format!("BENCH-{n:07}").into_boxed_str())
        .collect();
    let directory = Arc::new(UnitDirectory::from_records(
        master.clone(),
        serials.iter().map(|serial| UnitRecord {
            serial: serial.to_string(),
            key: key.stored(serial, &master),
            status: UnitStatus::Enabled,
            registered_at_ms: 0,
            owner: String::new(),
            development_mode: true,
            previous: None,
        }),
    ));
    write_accounts(&store, &serials)?;
    let rss_before = resident_bytes();
    let started = Instant::now();
    let mut partition = Partition::open(store, directory, Arc::new(SystemClock), 0, 1)?;
    let load_s = started.elapsed().as_secs_f64();
    let per_account = resident_bytes().saturating_sub(rss_before) as f64 / units as f64;
    println!(
        "loaded {units} accounts in {load_s:.2} s; resident hot state {per_account:.0} bytes/account"
    );
    let mut rates = Vec::new();
    // Round 0 sets every unit's baseline; the measured rounds are charged readings.
    for round in 0..=rounds {
        let events: Vec<DeviceEvent> = serials
            .iter()
            .map(|serial| DeviceEvent {
                serial: serial.clone(),
                received_at_ms: 1_780_000_000_000 + round as i64 * 900_000,
                body: EventBody::Telemetry(Telemetry {
                    seq: round + 1,
                    ts: round as i64 * 900,
                    load_wh: round * 20,
                    usb_wh: round * 3,
                    boot: 1,
                    ..Telemetry::default()
                }),
            })
            .collect();
        let started = Instant::now();
        for batch in events.chunks(batch_events) {
            partition.apply_batch(batch)?;
            partition.take_outbox();
        }
        let rate = units as f64 / started.elapsed().as_secs_f64();
        if round > 0 {
            println!(
                "round {round}: {units} readings in {:.3} s = {rate:.0} readings/s",
                started.elapsed().as_secs_f64()
            );
            rates.push(rate);
        }
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "engine-throughput: {units} units, batch {batch_events}, durable commits: median {:.0} readings/s",
        rates[rates.len() / 2]
    );
    Ok(())
}

/// Opens a usage-tariff account for every unit, funded so no load switches, in one commit.
fn write_accounts(store: &Store, serials: &[Box<str>]) -> Result<(), Box<dyn std::error::Error>> {
    let mut terms = PlanTerms::new(Tariff::Usage {
        price_per_kwh: Decimal::new(37, 2),
    });
    terms.auto_switch_off = true;
    terms.negative_charge_limit = Decimal::new(-1_000_000_000, 0);
    let account = Account::open(&terms, &AccountSetup::default(), chrono::Utc::now())?;
    let record = AccountRecord {
        org: "bench".into(),
        tz: chrono_tz::Tz::Africa__Nairobi,
        rated_power_w: terms.rated_power_w,
        account,
        ledger_len: 0,
        ledger_head: None,
        below_limit_since_ms: None,
        keypad: None,
    };
    let unit = Unit {
        state: UnitState::default(),
        account: Some(record),
    };
    let mut txn = store.begin()?;
    txn.put_units(serials.iter().map(|serial| (&**serial, &unit)))?;
    txn.commit()?;
    Ok(())
}
