//! What the storm benchmark watches besides the clients' answers: the broker's own count of
//! decided CONNECTs, and the kernel's listen-queue overflows. Together
//! they say where the time goes: authentication, rumqttd's connection setup, or TCP.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

/// How often the poller reads the broker's counters: the resolution of the figures it gives.
pub const POLL_INTERVAL: Duration = Duration::from_millis(2);

/// The broker's counters of CONNECTs its credential check decided.
const ACCEPTED: &str = "sunledger_broker_connect_accepted_total";
const REFUSED: &str = "sunledger_broker_connect_refused_total";

/// Connections the kernel dropped because a listener's accept queue was full
/// (`TcpExt: ListenOverflows` in `/proc/net/netstat`, for this network namespace); 0 where
/// unavailable. A dropped handshake is retried by the client a second or more later.
pub fn listen_overflows() -> u64 {
    let text = std::fs::read_to_string("/proc/net/netstat").unwrap_or_default();
    let mut lines = text.lines().filter(|line| line.starts_with("TcpExt:"));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(name, _)| *name == "ListenOverflows")
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0)
}

/// TCP connections to the IPv4 listener on `port` that the kernel holds but the broker has
/// not taken yet: those waiting in the accept queue, and handshakes not finished
/// (`SYN_RECV`, e.g. after the queue overflowed). Read from `/proc/net/tcp`; `None` where
/// that is unavailable or no listener is on `port`.
pub fn not_yet_accepted(port: u16) -> Option<(u64, u64)> {
    /// `/proc/net/tcp` state numbers.
    const SYN_RECV: &str = "03";
    const LISTEN: &str = "0A";
    let text = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let port = format!(":{port:04X}");
    let mut queued = None;
    let mut handshaking = 0;
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().take(5).collect();
        let [_, local, _, state, queues] = fields[..] else {
            continue;
        };
        if !local.ends_with(&port) {
            continue;
        }
        match state {
            LISTEN => {
                let rx_queue = queues.split(':').nth(1)?;
                queued = Some(u64::from_str_radix(rx_queue, 16).ok()?);
            }
            SYN_RECV => handshaking += 1,
            _ => {}
        }
    }
    Some((queued?, handshaking))
}

/// CONNECTs decided so far by the broker's credential check (accepted, refused).
fn decided() -> (u64, u64) {
    let text = sunledger::metrics_http::recorder()
        .map(|handle| handle.render())
        .unwrap_or_default();
    (
        sunledger_tests::metric(&text, ACCEPTED, &[]) as u64,
        sunledger_tests::metric(&text, REFUSED, &[]) as u64,
    )
}

/// When the broker had decided the first, half and all of the CONNECTs it was waiting for.
#[derive(Debug, Default)]
pub struct AuthProgress {
    /// CONNECTs accepted by the credential check.
    pub accepted: u64,
    /// CONNECTs refused (any reason).
    pub refused: u64,
    /// When the first decision was seen.
    pub first: Option<SystemTime>,
    /// When half were decided.
    pub half: Option<SystemTime>,
    /// When as many were decided as expected. A unit that gave up on an attempt and retried
    /// may be decided twice, so this can come before every unit was decided.
    pub all: Option<SystemTime>,
    /// When the last decision before the poller stopped was seen.
    pub last: Option<SystemTime>,
}

/// Watches the broker's counters from its own thread, from its start until stopped, for
/// `expected` more CONNECTs decided than at the start.
pub struct AuthPoller {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<AuthProgress>,
}

impl AuthPoller {
    /// Starts watching for `expected` decisions.
    pub fn start(expected: u64) -> std::io::Result<AuthPoller> {
        let stop = Arc::new(AtomicBool::new(false));
        let (base_accepted, base_refused) = decided();
        let thread = std::thread::Builder::new()
            .name("storm-poller".to_owned())
            .spawn({
                let stop = stop.clone();
                move || {
                    let mut progress = AuthProgress::default();
                    let mut seen = 0;
                    loop {
                        let (accepted, refused) = decided();
                        let now = SystemTime::now();
                        progress.accepted = accepted - base_accepted;
                        progress.refused = refused - base_refused;
                        let count = progress.accepted + progress.refused;
                        if count > seen {
                            progress.last = Some(now);
                        }
                        seen = count;
                        if count > 0 {
                            progress.first.get_or_insert(now);
                        }
                        if count >= expected.div_ceil(2) {
                            progress.half.get_or_insert(now);
                        }
                        if count >= expected {
                            progress.all.get_or_insert(now);
                        }
                        if stop.load(Ordering::Relaxed) {
                            return progress;
                        }
                        std::thread::sleep(POLL_INTERVAL);
                    }
                }
            })?;
        Ok(AuthPoller { stop, thread })
    }

    /// Stops watching (if it has not finished) and returns what it saw.
    pub fn finish(self) -> AuthProgress {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// Waits until this process has been nearly idle (under 10% of a core) for a quarter of a
/// second, at most `max`, so that the work one scenario left behind (wills published when
/// its clients left, say) does not run into the next; returns how long it waited.
pub fn wait_quiet(max: Duration) -> Duration {
    let started = std::time::Instant::now();
    while started.elapsed() < max {
        let before = sunledger_benches::process::cpu_seconds();
        std::thread::sleep(Duration::from_millis(250));
        if sunledger_benches::process::cpu_seconds() - before < 0.025 {
            break;
        }
    }
    started.elapsed()
}
