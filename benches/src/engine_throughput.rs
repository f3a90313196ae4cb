//! Benchmark: usage readings applied per second by one billing partition alone (one thread),
//! durable (every batch committed to redb with immediate durability), over many accounts.
//!
//! Run: `cargo run --release -p sunledger-benches --bin engine-throughput -- [units] [rounds]`
//! (defaults 100000 units, 5 rounds). Each round sends one new reading per unit in batches of
//! 8,192 (the engine's default `batch_events_max`). Prints every round's rate and the median.
//!
//! Scope today: metering (dedupe, counter deltas, plausibility) and unit state, not yet the
//! tariff and ledger entries of the billing rules (tracked in the billing-engine issue).

use std::sync::Arc;
use std::time::Instant;

use sunledger_billing::engine::Partition;
use sunledger_billing::event::{DeviceEvent, EventBody};
use sunledger_billing::store::Store;
use sunledger_billing::units::{DeviceSecret, UnitDirectory, UnitRecord, UnitStatus};
use sunledger_proto::device::Telemetry;

const BATCH_EVENTS: usize = 8_192;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let units: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(100_000);
    let rounds: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(5);
    let dir = tempfile::tempdir()?;
    let store = Arc::new(Store::open(&dir.path().join("bench.redb"))?);
    let secret_hash = DeviceSecret::generate().hash();
    let serials: Vec<Box<str>> = (0..units)
        .map(|n| format!("BENCH-{n:07}").into_boxed_str())
        .collect();
    let directory = Arc::new(UnitDirectory::from_records(serials.iter().map(|serial| {
        UnitRecord {
            serial: serial.to_string(),
            secret_hash,
            status: UnitStatus::Enabled,
            registered_at_ms: 0,
        }
    })));
    let mut partition = Partition::open(store, directory, 0, 1)?;
    let mut rates = Vec::new();
    // Round 0 sets every unit's baseline; the measured rounds are charged readings.
    for round in 0..=rounds {
        let events: Vec<DeviceEvent> = serials
            .iter()
            .map(|serial| DeviceEvent {
                serial: serial.clone(),
                received_at_ms: 0,
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
        for batch in events.chunks(BATCH_EVENTS) {
            partition.apply_batch(batch)?;
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
        "engine-throughput: {units} units, batch {BATCH_EVENTS}, durable commits: median {:.0} readings/s",
        rates[rates.len() / 2]
    );
    Ok(())
}
