//! Benchmark: usage readings applied per second by one billing partition alone, durable
//! (every batch committed to redb with immediate durability), over many accounts. As in the
//! server, the partition's thread applies each batch while its commit thread waits for the
//! disk to sync the one before; a round's last commit is finished within the next round's
//! time, and each round prints the CPU it used (all threads' CPU seconds per wall second:
//! "cores busy").
//!
//! Run: `cargo run --release -p sunledger-benches --bin engine-throughput -- [units] [rounds]
//! [batch]` (defaults 100000 units, 5 rounds, batches of 8,192, the engine's default
//! `batch_events_max`). Each round sends one new reading per unit. Prints every round's rate
//! and the medians.
//!
//! Every unit has an account on a usage tariff, so each reading is metered, charged, appended
//! to the ledger and committed with the unit's state and account. Accounts are written to the
//! file in one transaction first, then loaded by `Partition::open` as at start-up; the
//! resident memory this adds, per account, is printed too.
//!
//! Commits append units to the unit log and checkpoint them once it holds as many entries as
//! the default [`UnitLogBound`] allows, so unmeasured warm-up rounds fill the log first:
//! every measured round pays its steady share of checkpoints. The measured rounds come twice: with
//! readings in serial order (units' order in memory, as loaded) and shuffled, as a fleet's
//! messages arrive (each event made in arrival order, as ingest makes them); the shuffled
//! median is the headline. Afterwards the full log is folded
//! into checkpoints, timed: what a restart after `kill -9` replays.
//!
//! Readings are what production sees: every unit has its own device key, is not in
//! development mode, and each round's readings are sealed (`authenticity::seal`, under the
//! unit's key and over its serial) before any clock starts, because devices do that work.
//! Ingest admits them (`UnitDirectory::admit`: the directory lookup and the MAC check) on its
//! own threads before a partition sees them; that step is timed on its own, per round, and
//! the partition's rate is timed on the admitted readings. Both medians are printed, and the
//! rate one core would reach doing both. After the rounds, every unit's metered energy is
//! checked, so a refused reading cannot pass for a fast one. The server's metrics recorder
//! is installed, so the counters each reading bumps cost what they cost in production.

use std::sync::Arc;
use std::time::Instant;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rust_decimal::Decimal;
use sunledger_benches::median;
use sunledger_benches::process::{cpu_seconds, resident_bytes};
use sunledger_billing::account::{Account, AccountSetup};
use sunledger_billing::account_record::AccountRecord;
use sunledger_billing::clock::SystemClock;
use sunledger_billing::engine::{Partition, Unit, UnitLogBound, UnitState};
use sunledger_billing::event::{DeviceEvent, EventBody};
use sunledger_billing::secrets::MasterKey;
use sunledger_billing::store::Store;
use sunledger_billing::tariff::{PlanTerms, Tariff};
use sunledger_billing::units::{Admitted, DeviceKey, UnitDirectory, UnitRecord, UnitStatus};
use sunledger_proto::authenticity;
use sunledger_proto::device::Telemetry;

/// Accounts whose ledgers are read back for the ledger-read figure (the API's ListLedger
/// reads a ledger whole).
const LEDGER_SAMPLE: usize = 1_000;
/// Watt-hours each round adds to a unit's load and USB counters: what it must be charged for.
const LOAD_WH_PER_ROUND: u64 = 20;
const USB_WH_PER_ROUND: u64 = 3;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut arg = sunledger_benches::numeric_args(std::env::args().skip(1));
    let units = usize::try_from(arg(100_000)?)?;
    let rounds = arg(5)?;
    let batch_events = usize::try_from(arg(8_192)?)?;
    // The server's recorder, so each counter a reading bumps costs what it does in production.
    sunledger::metrics_http::recorder()?;
    let dir = tempfile::tempdir()?;
    let store = Arc::new(Store::open(&dir.path().join("bench.redb"))?);
    let master = MasterKey::from_hex(&"42".repeat(32)).expect("64 hex digits");
    let serials: Vec<Box<str>> = (0..units)
        .map(|n| format!("BENCH-{n:07}").into_boxed_str())
        .collect();
    let keys: Vec<DeviceKey> = (0..units).map(|_| DeviceKey::generate()).collect();
    let directory = Arc::new(UnitDirectory::from_records(
        master.clone(),
        serials.iter().zip(&keys).map(|(serial, key)| UnitRecord {
            serial: serial.to_string(),
            key: key.stored(serial, &master),
            status: UnitStatus::Enabled,
            registered_at_ms: 0,
            owner: String::new(),
            development_mode: false,
            previous: None,
        }),
    ));
    write_accounts(&store, &serials)?;
    let rss_before = resident_bytes();
    let started = Instant::now();
    let mut partition = Partition::open(
        store.clone(),
        directory.clone(),
        Arc::new(SystemClock),
        0,
        1,
    )?;
    let load_s = started.elapsed().as_secs_f64();
    let per_account = resident_bytes().saturating_sub(rss_before) as f64 / units as f64;
    println!(
        "loaded {units} accounts in {load_s:.2} s; resident hot state {per_account:.0} bytes/account"
    );
    // Round 0 sets every unit's baseline; then the warm-up fills the unit log.
    let log_entries = UnitLogBound::default().entries(units);
    let warm_up = log_entries.div_ceil(units) as u64;
    let mut shuffle = rand::rngs::StdRng::seed_from_u64(7);
    let (mut in_order, mut shuffled, mut admit_ns) = (Vec::new(), Vec::new(), Vec::new());
    let mut busy = Vec::new();
    let mut arrival: Vec<usize> = (0..units).collect();
    let last_round = warm_up + 2 * rounds;
    for round in 0..=last_round {
        let measured = round > warm_up;
        let shuffled_round = round > warm_up + rounds;
        if shuffled_round {
            arrival.shuffle(&mut shuffle);
        }
        let sealed = sealed_readings(&serials, &keys, &arrival, round);
        let started = Instant::now();
        let admitted = admit(&directory, sealed)?;
        let admit_s = started.elapsed().as_secs_f64();
        let (started, cpu_before) = (Instant::now(), cpu_seconds());
        for batch in admitted.chunks(batch_events) {
            partition.submit_batch(batch)?;
            partition.take_outbox();
        }
        // A round's last commit is left in flight, and finished within the next round's
        // time, as a steady stream of readings would have it (the last round finishes its own).
        if round == last_round {
            partition.finish_commit()?;
        }
        let wall_s = started.elapsed().as_secs_f64();
        let rate = units as f64 / wall_s;
        let cores = (cpu_seconds() - cpu_before) / wall_s;
        if measured {
            let order = if shuffled_round {
                "shuffled"
            } else {
                "in serial order"
            };
            println!(
                "round {round}, {order}: {units} readings at {rate:.0} readings/s, {cores:.2} cores busy; admitted in {admit_s:.3} s"
            );
            match shuffled_round {
                true => shuffled.push(rate),
                false => in_order.push(rate),
            }
            busy.push(cores);
            admit_ns.push(admit_s * 1e9 / units as f64);
        }
    }
    let rounds = last_round;
    check_every_reading_was_metered(&partition, &serials, rounds)?;
    let (entries, read_us) = ledger_read_us(&store, &partition, &serials)?;
    println!(
        "ledger-read: {entries} entries of {} accounts read back in {:.1} ms ({:.2} µs per entry, each in its own journal row)",
        serials.len().min(LEDGER_SAMPLE),
        read_us / 1000.0,
        read_us / entries.max(1) as f64
    );
    drop(partition);
    let started = Instant::now();
    let folded = store.fold_unit_log()?;
    println!(
        "restart: the unit log's latest entries of {folded} units replayed into checkpoints in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let (rate, in_order, admit_ns) = (median(shuffled), median(in_order), median(admit_ns));
    println!(
        "engine-throughput: {units} units, batch {batch_events}, admitted readings, durable commits, unit log full ({log_entries} records, {warm_up} warm-up rounds): median {rate:.0} readings/s shuffled, {in_order:.0} in serial order, {:.2} cores busy",
        median(busy)
    );
    println!(
        "ingest-admit: median {admit_ns:.0} ns/message (directory lookup and MAC check, on ingest's threads); one core doing both: {:.0} readings/s",
        1e9 / (1e9 / rate + admit_ns)
    );
    Ok(())
}

/// Admits every reading as ingest does; fails if the directory refuses any (a refused
/// reading would cost the partition nothing and pass for throughput).
fn admit(
    directory: &UnitDirectory,
    events: Vec<DeviceEvent>,
) -> Result<Vec<Admitted>, Box<dyn std::error::Error>> {
    let count = events.len();
    let admitted: Vec<Admitted> = events
        .into_iter()
        .filter_map(|event| directory.admit(event).ok())
        .collect();
    match count - admitted.len() {
        0 => Ok(admitted),
        refused => {
            Err(format!("the directory refused {refused} of {count} sealed readings").into())
        }
    }
}

/// Reads back the whole ledger of the first [`LEDGER_SAMPLE`] accounts from their heads in
/// memory, as the API does; returns the entries read and the time taken, microseconds.
fn ledger_read_us(
    store: &Store,
    partition: &Partition,
    serials: &[Box<str>],
) -> Result<(usize, f64), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let mut entries = 0;
    for serial in serials.iter().take(LEDGER_SAMPLE) {
        if let Some(account) = partition
            .unit(serial)
            .and_then(|unit| unit.account.as_ref())
        {
            entries += store.account_ledger(serial, account)?.len();
        }
    }
    Ok((entries, started.elapsed().as_secs_f64() * 1e6))
}

/// One reading per unit for `round`, sealed under the unit's own key over its own serial, as
/// its device would publish it, in `arrival` order (indexes into `serials`). Each event is
/// made in that order, as ingest makes them from the broker's messages, so a shuffled
/// round's events lie in memory in arrival order, not in the units' order.
fn sealed_readings(
    serials: &[Box<str>],
    keys: &[DeviceKey],
    arrival: &[usize],
    round: u64,
) -> Vec<DeviceEvent> {
    arrival
        .iter()
        .map(|&unit| {
            let (serial, key) = (&serials[unit], &keys[unit]);
            let reading = Telemetry {
                seq: round + 1,
                ts: round as i64 * 900,
                load_wh: round * LOAD_WH_PER_ROUND,
                usb_wh: round * USB_WH_PER_ROUND,
                boot: 1,
                ..Telemetry::default()
            };
            DeviceEvent {
                serial: serial.clone(),
                received_at_ms: 1_780_000_000_000 + round as i64 * 900_000,
                body: EventBody::Telemetry(authenticity::seal(key.bytes(), serial, reading)),
            }
        })
        .collect()
}

/// Fails unless every unit was charged for every measured round: a reading refused (a bad
/// MAC, say) costs the partition almost nothing and would pass for throughput.
fn check_every_reading_was_metered(
    partition: &Partition,
    serials: &[Box<str>],
    rounds: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    let expected = rounds * (LOAD_WH_PER_ROUND + USB_WH_PER_ROUND);
    let short = serials
        .iter()
        .filter(|serial| {
            partition
                .unit(serial)
                .is_none_or(|unit| unit.state.consumed_wh != expected)
        })
        .count();
    match short {
        0 => Ok(()),
        _ => Err(format!("{short} units were not metered {expected} Wh: readings refused").into()),
    }
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
