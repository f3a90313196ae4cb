//! The storm's devices: a child process (`reconnect-storm client <mqtt addr> <deadline_ms>
//! <mode>`) that holds one raw TCP socket per unit and speaks just enough MQTT 3.1.1 to
//! connect.
//!
//! It runs apart from the server because every in-process connection costs two descriptors
//! and this machine's hard open-file limit (20,000) is per process: 10,000 units need 10,000
//! on each side. A raw socket with a pre-encoded CONNECT costs the client almost nothing, so
//! the machine's two cores go to the broker, not to MQTT client state machines.
//!
//! Two modes ([`Mode`]). Conversation with the parent, one step at a time:
//! 1. stdin: one `serial password` line per unit, then a blank line.
//! 2. `storm`: the child prints `ready`. `paced`: it opens every TCP connection, then prints
//!    `tcp <open> <failed> <seconds>`.
//! 3. stdin: `go`. The child sends every CONNECT at once (`storm`: each right after its own
//!    TCP handshake, retrying like a simulated device when no CONNACK comes) and reads every
//!    CONNACK until the deadline, then prints its figures as `name value…` lines (times in
//!    seconds) and `done`.
//! 4. It keeps the connections open until stdin closes, so the broker is measured with all of
//!    them connected and sees no disconnects during the parent's measurements.

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sunledger_tests::raw_mqtt::connect_packet;
use tokio::net::TcpStream;
use tokio::time::MissedTickBehavior;

/// Keep-alive in the CONNECT, seconds: long enough that no PINGREQ is due while the storm and
/// the parent's measurements run, so the broker only sees CONNECTs.
const KEEP_ALIVE_S: u16 = 300;
/// Interval between TCP handshakes in `paced` mode: slower than rumqttd 0.20 accepts (one
/// connection per millisecond at best), so its 128-deep accept queue does not overflow.
const PACE: Duration = Duration::from_micros(1_250);

/// How the child connects its units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// What a broker restart looks like: every unit opens its TCP connection and sends its
    /// CONNECT at the same moment.
    Storm,
    /// Every TCP connection is opened first, paced, and the parent waits until the broker has
    /// accepted them all; then every CONNECT is sent at once. Measures the MQTT CONNECT
    /// handling (authentication, rumqttd's connection setup, CONNACK) without the accept loop.
    Paced,
}

impl Mode {
    /// The mode's name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Storm => "storm",
            Mode::Paced => "paced",
        }
    }
}

/// How one unit's CONNECT ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// CONNACK with return code 0.
    Accepted,
    /// CONNACK with another return code.
    Refused,
    /// The broker closed the connection without a CONNACK (rumqttd's answer to a failed
    /// authentication, or to a CONNECT that came too late).
    Closed,
    /// No answer before the deadline.
    TimedOut,
    /// A socket error or bytes that are not a CONNACK.
    Failed,
}

/// One unit's part in a scenario: when its TCP connection was open and its CONNECT written
/// (the last attempt's, if it retried), when its first CONNECT was written, and when and how
/// it ended.
struct Attempt {
    connected: Option<Instant>,
    first_written: Option<Instant>,
    written: Option<Instant>,
    ended: Instant,
    outcome: Outcome,
    retries: u32,
}

/// How a storm unit retries a connection that got no CONNACK, as the simulator's devices do
/// (their defaults): give up on an attempt after a timeout, wait, doubling the wait each time.
#[derive(Clone, Copy)]
struct Retry {
    timeout: Duration,
    backoff_initial: Duration,
    backoff_max: Duration,
}

impl Retry {
    /// The simulator's devices' connection timeout and reconnect backoff.
    fn like_sim_devices() -> Retry {
        let sim = sunledger_sim::SimConfig::default();
        Retry {
            timeout: Duration::from_secs(sim.connection_timeout_s),
            backoff_initial: Duration::from_millis(sim.reconnect_backoff_initial_ms),
            backoff_max: Duration::from_millis(sim.reconnect_backoff_max_ms),
        }
    }
}

/// Runs the child's side of the conversation; `args` are the MQTT address, the deadline for
/// the CONNACKs in milliseconds and the [`Mode`].
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let [addr, deadline_ms, mode] = args else {
        anyhow::bail!("usage: reconnect-storm client <mqtt addr> <deadline_ms> <storm|paced>");
    };
    let addr: SocketAddr = addr.parse()?;
    let deadline = Duration::from_millis(deadline_ms.parse()?);
    let mode = [Mode::Storm, Mode::Paced]
        .into_iter()
        .find(|known| known.as_str() == mode)
        .ok_or_else(|| anyhow::anyhow!("unknown mode {mode:?}"))?;
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let mut packets = Vec::new();
    for line in lines.by_ref() {
        let line = line?;
        let Some((serial, password)) = line.split_once(' ') else {
            break;
        };
        packets.push(connect_packet(serial, password, KEEP_ALIVE_S));
    }
    sunledger_benches::process::raise_fd_limit_for_connections(packets.len() as u64)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut out = std::io::stdout().lock();
    let units: Vec<(Option<TcpStream>, Vec<u8>)> = match mode {
        Mode::Storm => {
            writeln!(out, "ready")?;
            packets.into_iter().map(|packet| (None, packet)).collect()
        }
        Mode::Paced => {
            let started = Instant::now();
            let opened = runtime.block_on(open_paced(addr, packets.len()));
            let failed = opened.iter().filter(|stream| stream.is_none()).count();
            writeln!(
                out,
                "tcp {} {failed} {:.6}",
                opened.len() - failed,
                started.elapsed().as_secs_f64()
            )?;
            opened
                .into_iter()
                .zip(packets)
                .filter(|(stream, _)| stream.is_some())
                .collect()
        }
    };
    out.flush()?;
    match lines.next().transpose()? {
        Some(go) if go == "go" => {}
        other => anyhow::bail!("expected `go` from the parent, got {other:?}"),
    }
    let cpu_before = sunledger_benches::process::cpu_seconds();
    let (first_unix_ns, attempts, _open) = runtime.block_on(storm(addr, units, deadline));
    report(&mut out, first_unix_ns, &attempts)?;
    writeln!(
        out,
        "client_cpu_s {:.6}",
        sunledger_benches::process::cpu_seconds() - cpu_before
    )?;
    writeln!(out, "done")?;
    out.flush()?;
    // Hold the connections (`_open`) until the parent has measured what it wants with them up.
    for line in lines {
        line?;
    }
    Ok(())
}

/// Opens `count` TCP connections to `addr`, one every [`PACE`]; `None` where one failed.
async fn open_paced(addr: SocketAddr, count: usize) -> Vec<Option<TcpStream>> {
    let mut ticks = tokio::time::interval(PACE);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut tasks = Vec::with_capacity(count);
    for _ in 0..count {
        ticks.tick().await;
        tasks.push(tokio::spawn(open(addr)));
    }
    let mut streams = Vec::with_capacity(count);
    for task in tasks {
        streams.push(task.await.ok().flatten());
    }
    streams
}

/// One TCP connection to `addr`, with Nagle off as a device would have it for small packets.
async fn open(addr: SocketAddr) -> Option<TcpStream> {
    let stream = TcpStream::connect(addr).await.ok()?;
    stream.set_nodelay(true).ok()?;
    Some(stream)
}

/// Sends every unit's CONNECT at once and waits for every answer until `deadline` after the
/// start. Units with an open connection (`paced`) have their CONNECTs written right here, one
/// after another without waiting; the others (`storm`) each open their connection in their
/// own task, write, and retry as [`Retry::like_sim_devices`] says. Returns the wall-clock
/// time of the first CONNECT written in unix nanoseconds (the parent compares it with when
/// its broker had decided them all), each unit's attempt, and the open connections.
async fn storm(
    addr: SocketAddr,
    units: Vec<(Option<TcpStream>, Vec<u8>)>,
    deadline: Duration,
) -> (u128, Vec<Attempt>, Vec<TcpStream>) {
    let wall = SystemTime::now();
    let started = Instant::now();
    let until = tokio::time::Instant::from_std(started + deadline);
    let written: Vec<(Option<TcpStream>, Vec<u8>, Option<Instant>)> = units
        .into_iter()
        .map(|(stream, packet)| match &stream {
            Some(open) => {
                let (rest, written) = write_now(open, packet);
                (stream, rest, written)
            }
            None => (stream, packet, None),
        })
        .collect();
    let tasks: Vec<_> = written
        .into_iter()
        .map(|(stream, packet, written)| {
            let retry = stream.is_none().then(Retry::like_sim_devices);
            tokio::spawn(unit(addr, stream, packet, written, until, retry))
        })
        .collect();
    let mut attempts = Vec::with_capacity(tasks.len());
    let mut open = Vec::with_capacity(tasks.len());
    for task in tasks {
        match task.await {
            Ok((attempt, stream)) => {
                attempts.push(attempt);
                open.extend(stream);
            }
            Err(_) => attempts.push(Attempt {
                connected: None,
                first_written: None,
                written: None,
                ended: Instant::now(),
                outcome: Outcome::Failed,
                retries: 0,
            }),
        }
    }
    let first = attempts.iter().filter_map(|a| a.first_written).min();
    let first_wall = wall + first.map_or(Duration::ZERO, |first| first - started);
    let unix_ns = first_wall.duration_since(UNIX_EPOCH).unwrap_or_default();
    (unix_ns.as_nanos(), attempts, open)
}

/// Writes `packet` on `stream` if the socket takes it without waiting (a fresh socket takes a
/// CONNECT whole) and returns what is left to write and, if nothing is, when it was written.
fn write_now(stream: &TcpStream, packet: Vec<u8>) -> (Vec<u8>, Option<Instant>) {
    match stream.try_write(&packet) {
        Ok(written) if written == packet.len() => (Vec::new(), Some(Instant::now())),
        Ok(written) => (packet[written..].to_vec(), None),
        Err(_) => (packet, None),
    }
}

/// One unit until `until`: opens its connection unless `stream` is given, writes what is
/// left of its CONNECT unless `written` says it is out, reads the answer, and with `retry`
/// starts over on a new connection when that fails. Hands the stream back so the connection
/// stays open.
async fn unit(
    addr: SocketAddr,
    mut stream: Option<TcpStream>,
    packet: Vec<u8>,
    mut written: Option<Instant>,
    until: tokio::time::Instant,
    retry: Option<Retry>,
) -> (Attempt, Option<TcpStream>) {
    let mut connected = None;
    let mut first_written = written;
    let mut rest = packet.clone();
    let mut backoff = retry.map(|retry| retry.backoff_initial);
    let mut retries = 0;
    loop {
        let attempt_until = retry.map_or(until, |retry| {
            until.min(tokio::time::Instant::now() + retry.timeout)
        });
        let exchange = exchange(addr, &mut stream, &rest, &mut written, &mut connected);
        let outcome = match tokio::time::timeout_at(attempt_until, exchange).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Outcome::Failed,
            Err(_) => Outcome::TimedOut,
        };
        first_written = first_written.or(written);
        let answered = matches!(outcome, Outcome::Accepted | Outcome::Refused);
        let again = match (answered, retry, backoff) {
            (false, Some(retry), Some(delay)) if tokio::time::Instant::now() + delay < until => {
                Some((retry, delay))
            }
            _ => None,
        };
        if let Some((retry, delay)) = again {
            tokio::time::sleep(delay).await;
            backoff = Some((delay * 2).min(retry.backoff_max));
            retries += 1;
            (stream, written, rest) = (None, None, packet.clone());
            continue;
        }
        let attempt = Attempt {
            connected,
            first_written,
            written,
            ended: Instant::now(),
            outcome,
            retries,
        };
        return (attempt, stream);
    }
}

/// One attempt: opens the connection if `stream` has none, writes `packet` unless `written`
/// is set, and reads the CONNACK.
async fn exchange(
    addr: SocketAddr,
    stream: &mut Option<TcpStream>,
    packet: &[u8],
    written: &mut Option<Instant>,
    connected: &mut Option<Instant>,
) -> std::io::Result<Outcome> {
    let stream = match stream {
        Some(open) => open,
        none => {
            let open = TcpStream::connect(addr).await?;
            open.set_nodelay(true)?;
            *connected = Some(Instant::now());
            none.insert(open)
        }
    };
    if written.is_none() {
        write_all(stream, packet).await?;
        *written = Some(Instant::now());
    }
    let mut connack = [0u8; 4];
    Ok(match read_exact(stream, &mut connack).await? {
        false => Outcome::Closed,
        true => match connack {
            [0x20, 0x02, _, 0] => Outcome::Accepted,
            [0x20, 0x02, _, _] => Outcome::Refused,
            _ => Outcome::Failed,
        },
    })
}

/// Writes all of `bytes` (a CONNECT fits a fresh socket's buffer, so this does not wait).
async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        stream.writable().await?;
        match stream.try_write(bytes) {
            Ok(written) => bytes = &bytes[written..],
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Fills `buf`; `false` if the peer closed the connection first.
async fn read_exact(stream: &TcpStream, buf: &mut [u8]) -> std::io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        stream.readable().await?;
        match stream.try_read(&mut buf[filled..]) {
            Ok(0) => return Ok(false),
            Ok(read) => filled += read,
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(error) => return Err(error),
        }
    }
    Ok(true)
}

/// Prints the storm's figures for the parent: outcomes, and times in seconds from the first
/// CONNECT written.
fn report(out: &mut impl Write, first_unix_ns: u128, attempts: &[Attempt]) -> std::io::Result<()> {
    let count = |outcome| attempts.iter().filter(|a| a.outcome == outcome).count();
    writeln!(
        out,
        "outcomes {} {} {} {} {}",
        count(Outcome::Accepted),
        count(Outcome::Refused),
        count(Outcome::Closed),
        count(Outcome::TimedOut),
        count(Outcome::Failed)
    )?;
    writeln!(
        out,
        "retries {} {}",
        attempts.iter().map(|a| u64::from(a.retries)).sum::<u64>(),
        attempts.iter().filter(|a| a.retries > 0).count()
    )?;
    let Some(first) = attempts.iter().filter_map(|a| a.first_written).min() else {
        return Ok(());
    };
    writeln!(out, "first_connect_unix_ns {first_unix_ns}")?;
    let since_first = |at: Instant| at.saturating_duration_since(first).as_secs_f64();
    let mut connected: Vec<f64> = attempts
        .iter()
        .filter_map(|a| a.connected.map(since_first))
        .collect();
    let mut written: Vec<f64> = attempts
        .iter()
        .filter_map(|a| a.written.map(since_first))
        .collect();
    let answered: Vec<(Instant, Instant)> = attempts
        .iter()
        .filter(|a| matches!(a.outcome, Outcome::Accepted | Outcome::Refused))
        .filter_map(|a| Some((a.written?, a.ended)))
        .collect();
    let mut connacked: Vec<f64> = answered
        .iter()
        .map(|(_, ended)| since_first(*ended))
        .collect();
    let mut latency: Vec<f64> = answered
        .iter()
        .map(|(written, ended)| (*ended - *written).as_secs_f64())
        .collect();
    for (name, values) in [
        ("tcp_open_s", &mut connected),
        ("connect_written_s", &mut written),
        ("connack_s", &mut connacked),
        ("connack_latency_s", &mut latency),
    ] {
        if values.is_empty() {
            continue;
        }
        values.sort_by(f64::total_cmp);
        let at = |fraction: f64| {
            let index = ((values.len() as f64 * fraction).ceil() as usize).clamp(1, values.len());
            values[index - 1]
        };
        writeln!(
            out,
            "{name} {:.6} {:.6} {:.6} {:.6}",
            at(0.5),
            at(0.9),
            at(0.99),
            at(1.0)
        )?;
    }
    Ok(())
}
