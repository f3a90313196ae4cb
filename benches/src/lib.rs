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

/// Report interval the load ramp of `e2e` and `relay` starts from by default: 9,000–10,000
/// devices then offer 36,000–40,000 msgs/s.
pub const RAMP_START_INTERVAL_MS: u64 = 250;
/// Each ramp step's report interval is this share of the previous one's (a quarter more load).
const RAMP_STEP: f64 = 0.8;
/// The shortest report interval a ramp tries.
const RAMP_MIN_INTERVAL_MS: u64 = 20;
/// Share of the offered rate from which a step counts as having taken its whole offer.
const TOOK_ALL: f64 = 0.97;

/// What one ramp step offered and achieved, msgs/s.
pub trait Rates {
    /// Messages per second the fleet was asked to send.
    fn offered_per_s(&self) -> f64;
    /// Messages per second the system under test took.
    fn achieved_per_s(&self) -> f64;
}

/// A step that is nothing but its two rates (the relay's; the ramp's tests).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Measured {
    /// Messages per second the fleet was asked to send.
    pub offered_per_s: f64,
    /// Messages per second the system under test took.
    pub achieved_per_s: f64,
}

impl Rates for Measured {
    fn offered_per_s(&self) -> f64 {
        self.offered_per_s
    }

    fn achieved_per_s(&self) -> f64 {
        self.achieved_per_s
    }
}

/// Finds a capacity: measures at `start_interval_ms`, then at ever shorter report intervals
/// while each step still takes all of its offer, and returns the step that achieved the most
/// with one line per step; the first step that fails ends the ramp with its error. Offering
/// far beyond the capacity would not find it: the fleet shares the machine, and clients
/// retrying a swamped server take CPU from it (both ours and Mosquitto's rates fall by half
/// when offered 60,000 msgs/s here).
pub async fn ramp<P: Rates, E>(
    start_interval_ms: u64,
    mut measure: impl AsyncFnMut(u64) -> Result<P, E>,
) -> Result<(P, Vec<String>), E> {
    let mut interval_ms = start_interval_ms.max(RAMP_MIN_INTERVAL_MS);
    let (mut best, mut lines): (Option<P>, Vec<String>) = (None, Vec::new());
    loop {
        let step = measure(interval_ms).await?;
        lines.push(format!(
            "ramp: {interval_ms} ms, offered {:.0} msgs/s, took {:.0} msgs/s",
            step.offered_per_s(),
            step.achieved_per_s()
        ));
        let took_all = took_all(&step);
        if best
            .as_ref()
            .is_none_or(|best| step.achieved_per_s() > best.achieved_per_s())
        {
            best = Some(step);
        }
        let next_ms = (interval_ms as f64 * RAMP_STEP) as u64;
        if !took_all || next_ms < RAMP_MIN_INTERVAL_MS {
            return Ok((best.expect("the loop measured a step"), lines));
        }
        interval_ms = next_ms;
    }
}

fn took_all(step: &impl Rates) -> bool {
    step.achieved_per_s() >= TOOK_ALL * step.offered_per_s()
}

/// A note for a rate that took (nearly) all that was offered: it is then a floor of the
/// capacity, not the capacity, and comparing two such rates says nothing.
pub fn offer_note(step: &impl Rates) -> &'static str {
    if took_all(step) {
        " (took all that was offered: a floor, not the capacity)"
    } else {
        ""
    }
}

/// The middle value of `values` (the upper one of an even count): the figure a benchmark
/// prints of its rounds.
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What 10,000 devices offer at `interval_ms`, msgs/s.
    fn offered(interval_ms: u64) -> f64 {
        10_000.0 * 1000.0 / interval_ms as f64
    }

    /// Steps against a system that takes up to `capacity` msgs/s.
    fn against(capacity: f64) -> impl AsyncFnMut(u64) -> anyhow::Result<Measured> {
        async move |interval_ms| {
            Ok(Measured {
                offered_per_s: offered(interval_ms),
                achieved_per_s: offered(interval_ms).min(capacity),
            })
        }
    }

    #[tokio::test]
    async fn the_ramp_climbs_while_every_offer_is_taken_and_keeps_the_best_step() {
        // 40,000 → 50,000 → 62,500 offered: the third step is the first not taken whole.
        let (best, lines) = ramp(250, against(55_000.0)).await.unwrap();
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(best.achieved_per_s(), 55_000.0);
        assert_eq!(offer_note(&best), "");
    }

    #[tokio::test]
    async fn a_step_past_the_knee_that_takes_less_does_not_replace_the_best() {
        let mut collapse = async |interval_ms: u64| {
            let offered_per_s = offered(interval_ms);
            // Takes all up to 50,000 offered; overloaded, it takes half.
            let achieved_per_s = if offered_per_s <= 50_000.0 {
                offered_per_s
            } else {
                offered_per_s / 2.0
            };
            anyhow::Ok(Measured {
                offered_per_s,
                achieved_per_s,
            })
        };
        let (best, lines) = ramp(250, &mut collapse).await.unwrap();
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(best.achieved_per_s(), 50_000.0);
        assert!(offer_note(&best).contains("a floor"));
    }

    #[tokio::test]
    async fn a_system_that_takes_everything_stops_the_ramp_at_the_shortest_interval() {
        let (best, lines) = ramp(250, against(f64::INFINITY)).await.unwrap();
        assert!(
            lines.last().unwrap().starts_with("ramp: 20 ms,"),
            "{lines:?}"
        );
        assert_eq!(best.offered_per_s(), best.achieved_per_s());
        assert!(offer_note(&best).contains("a floor"));
    }
}
