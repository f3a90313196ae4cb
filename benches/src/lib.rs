//! Shared pieces of the benchmark binaries, which print figures rather than assert them:
//!
//! - [`process`]: this process's resident memory and open-file limit, which every
//!   benchmark that holds many accounts or connections reports.
//!
//! The binaries: `engine-throughput` (one billing partition alone), `e2e` (the whole server
//! in-process under a simulated fleet), `relay` (the same fleet against an external broker,
//! for comparison), `reconnect-storm` (every unit reconnecting at once after a restart: how
//! long until all are authenticated). `run.sh` runs them all and writes `RESULTS.md`.

pub mod process;

/// Report interval while a benchmark fleet connects: a connect storm under full telemetry
/// load times CONNECTs out (the broker is busy relaying), so fleets connect calmly first and
/// then speed up with `Fleet::set_report_interval`.
pub const CONNECT_INTERVAL_MS: u64 = 10_000;

/// Report interval of the measuring phase of `e2e` and `relay` by default: 9,000–10,000
/// devices then offer 60,000–67,000 msgs/s, more than either side takes on two cores, so
/// what each achieves is its capacity rather than the offer.
pub const MAX_INTERVAL_MS: u64 = 150;

/// Share of the offered rate from which a phase counts as having taken its whole offer.
const TOOK_ALL: f64 = 0.97;

/// A note for a rate that took (nearly) all that was offered: it is then a floor of the
/// capacity, not the capacity, and comparing two such rates says nothing.
pub fn offer_note(offered_per_s: f64, achieved_per_s: f64) -> &'static str {
    if achieved_per_s >= TOOK_ALL * offered_per_s {
        " (took all that was offered: a floor, not the capacity)"
    } else {
        ""
    }
}

/// Reads the positional numeric arguments of a benchmark binary one at a time: each call
/// takes the next argument, or `default` when there are no more; a non-number is an error.
pub fn numeric_args(
    mut args: impl Iterator<Item = String>,
) -> impl FnMut(u64) -> anyhow::Result<u64> {
    move |default| {
        Ok(args
            .next()
            .map(|arg| arg.parse())
            .transpose()?
            .unwrap_or(default))
    }
}
