//! The life of one device in a fleet, as a small state machine on one tokio task: wait to
//! (re)connect with backoff, connect under the fleet's connect permits, report every interval
//! while online, stay away during an injected offline period, and disconnect on shutdown.
//!
//! A connect attempt is never cancelled by a report tick (under load a CONNECT can take
//! longer than an interval); energy accrues from the simulated clock, so a missed tick loses
//! nothing. The fleet can change the report interval while running ([`Pacer`]), so a
//! benchmark can offer a different load without reconnecting every device.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, watch};
use tokio::time::{Instant, Interval, MissedTickBehavior, interval_at, sleep_until};

use crate::backoff::Backoff;
use crate::device::{SimDevice, TickAction};
use crate::faults::IntervalFaults;

/// What a device task shares with its fleet, and its own pacing.
pub(crate) struct TaskContext {
    /// Bounds concurrent CONNECT handshakes across the fleet.
    pub(crate) connect_permits: Arc<Semaphore>,
    /// Becomes `true` when the fleet shuts down.
    pub(crate) shutdown: watch::Receiver<bool>,
    /// The fleet's report interval, now and after every change.
    pub(crate) report_interval: watch::Receiver<Duration>,
    /// Where in each interval this device reports, as a fraction in [0, 1): spreads the
    /// fleet's reports over the interval instead of all at once.
    pub(crate) report_phase: f64,
    pub(crate) backoff: Backoff,
}

/// Where the device is in its connection life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    /// Not connected; the next attempt is due at this instant.
    Waiting { retry_at: Instant },
    /// Connected and reporting.
    Online,
    /// Dropped on purpose; back after this many report intervals.
    Offline { reports_left: u32 },
}

/// The device's report ticks at its phase of the fleet's current interval.
pub(crate) struct Pacer {
    ticker: Interval,
    interval: watch::Receiver<Duration>,
    phase: f64,
}

impl Pacer {
    fn new(mut interval: watch::Receiver<Duration>, phase: f64) -> Pacer {
        let ticker = Pacer::ticker(*interval.borrow_and_update(), phase);
        Pacer {
            ticker,
            interval,
            phase,
        }
    }

    fn ticker(period: Duration, phase: f64) -> Interval {
        let mut ticker = interval_at(Instant::now() + period.mul_f64(phase), period);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        ticker
    }

    /// The next report tick; cancel-safe, so it can sit in a `select!`. A new interval
    /// restarts the ticker at this device's phase of it.
    async fn tick(&mut self) {
        loop {
            tokio::select! {
                _ = self.ticker.tick() => return,
                changed = self.interval.changed() => match changed {
                    Ok(()) => {
                        let period = *self.interval.borrow_and_update();
                        self.ticker = Pacer::ticker(period, self.phase);
                    }
                    // The fleet is gone; keep the interval we have.
                    Err(_) => {
                        self.ticker.tick().await;
                        return;
                    }
                },
            }
        }
    }
}

/// Runs one device until the fleet shuts down, then disconnects it cleanly.
pub(crate) async fn run(mut device: SimDevice, mut ctx: TaskContext) {
    let mut ticker = Pacer::new(ctx.report_interval.clone(), ctx.report_phase);
    let mut link = Link::Waiting {
        retry_at: Instant::now(),
    };
    while !*ctx.shutdown.borrow() {
        let next = match link {
            Link::Waiting { retry_at } => {
                waiting(&mut device, &mut ctx, &mut ticker, retry_at).await
            }
            Link::Online => online(&mut device, &mut ctx, &mut ticker).await,
            Link::Offline { reports_left } => {
                offline(&mut device, &mut ctx, &mut ticker, reports_left).await
            }
        };
        match next {
            Some(next) => link = next,
            None => break,
        }
    }
    if let Err(error) = device.disconnect().await {
        tracing::debug!(%error, "device did not disconnect cleanly");
    }
}

/// Waits out the backoff (still ticking energy and reboots), then tries one connect.
/// `None` means shut down.
async fn waiting(
    device: &mut SimDevice,
    ctx: &mut TaskContext,
    ticker: &mut Pacer,
    retry_at: Instant,
) -> Option<Link> {
    loop {
        tokio::select! {
            _ = ctx.shutdown.changed() => return None,
            _ = ticker.tick() => device.on_idle_tick(),
            () = sleep_until(retry_at) => break,
        }
    }
    let permits = Arc::clone(&ctx.connect_permits);
    let connected = tokio::select! {
        _ = ctx.shutdown.changed() => return None,
        result = async {
            // The semaphore is never closed, so acquiring only fails if it is; then connect
            // unthrottled rather than not at all.
            let _permit = permits.acquire().await;
            device.connect_once().await
        } => result,
    };
    match connected {
        Ok(()) => {
            ctx.backoff.reset();
            // Catch up at once: the platform learns what accrued while away.
            let _ = device.publish_reading(IntervalFaults::default());
            Some(Link::Online)
        }
        Err(_) => Some(Link::Waiting {
            retry_at: Instant::now() + ctx.backoff.next_delay(),
        }),
    }
}

/// Reports every interval and handles commands until the connection drops, an offline
/// fault fires, or the fleet shuts down.
async fn online(device: &mut SimDevice, ctx: &mut TaskContext, ticker: &mut Pacer) -> Option<Link> {
    loop {
        tokio::select! {
            _ = ctx.shutdown.changed() => return None,
            _ = ticker.tick() => {
                if let TickAction::GoOffline(reports) = device.on_online_tick() {
                    return Some(Link::Offline { reports_left: reports });
                }
            }
            polled = device.poll_once() => {
                if polled.is_err() {
                    let retry_at = Instant::now() + ctx.backoff.next_delay();
                    return Some(Link::Waiting { retry_at });
                }
            }
        }
    }
}

/// Stays away for `reports_left` intervals, counting energy, then reconnects at once.
async fn offline(
    device: &mut SimDevice,
    ctx: &mut TaskContext,
    ticker: &mut Pacer,
    mut reports_left: u32,
) -> Option<Link> {
    while reports_left > 0 {
        tokio::select! {
            _ = ctx.shutdown.changed() => return None,
            _ = ticker.tick() => {
                device.on_idle_tick();
                reports_left -= 1;
            }
        }
    }
    Some(Link::Waiting {
        retry_at: Instant::now(),
    })
}
