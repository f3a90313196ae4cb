//! Benchmark: a reconnect storm. After a broker restart every unit reconnects at once; the
//! target is that 10,000 units are all authenticated within 2 s on this 2-core machine.
//!
//! Run: `cargo run --release -p sunledger-benches --bin reconnect-storm -- [units] [deadline_s]`
//! (defaults 10000 units, 120 s for the CONNACKs to arrive).
//!
//! The units are registered in a fresh database in one commit, each with its device key (the
//! store keeps the MQTT password's keyed hash and the key sealed), and the database is copied
//! once per scenario. Each scenario starts the real server on its copy, as after a restart
//! (broker, ingest, billing, API; the unit directory loaded from the file), and a child
//! process ([`client`]) connects every unit over raw TCP with the CONNECT a device sends
//! (client id = username = serial, the password derived from its key, a last will on its
//! `status` topic):
//!
//! 1. **storm**, production settings: every unit opens its connection and sends its CONNECT
//!    at the same moment, and like a simulated device gives up on an attempt without a
//!    CONNACK after 15 s and tries again after a backoff (0.5 s doubling up to 30 s). This is
//!    the scenario.
//! 2. **paced**: the connections are opened first, one every 1.25 ms, and the benchmark waits
//!    until the broker has accepted every one (`/proc/net/tcp`); then every CONNECT is sent
//!    at once. rumqttd 0.20 accepts at most one connection per millisecond (its accept loop
//!    sleeps `next_connection_delay_ms` after each, and tokio rounds even a zero sleep up to
//!    the next millisecond tick) into a 128-deep accept queue, so this scenario isolates what
//!    happens after the accept: authentication, rumqttd's connection setup, the CONNACK. The
//!    broker's CONNECT timeout is raised to [`PACED_CONNECT_TIMEOUT_MS`] for it, or the
//!    first connections would be dropped while the last are still being opened.
//!
//! Each scenario measures, from the first CONNECT written: when the broker's credential check
//! had decided them all (its `sunledger_broker_connect_{accepted,refused}_total` counters,
//! read in this process every [`observe::POLL_INTERVAL`]; when units retried, some decisions
//! were for attempts already given up on, and every unit is known to be authenticated only
//! once the last has its CONNACK), when the clients had all their CONNACKs and how each
//! CONNECT ended, the kernel's listen-queue overflows, and CPU time per server thread. Two micro-figures split the time: N sequential `UnitDirectory::verify_at`
//! calls (the CPU cost of authentication alone), and in-process links registered with
//! rumqttd's router one after another while the paced scenario's connections are up (the
//! round trip rumqttd's device thread blocks on for every connection before its CONNACK).

#[path = "reconnect_storm/client.rs"]
mod client;
#[path = "reconnect_storm/observe.rs"]
mod observe;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use sunledger::{Server, Settings};
use sunledger_benches::process::{
    ChildConversation, cpu_delta, raise_fd_limit, thread_cpu_seconds,
};
use sunledger_billing::store::{PLATFORM_OWNER, Store};
use sunledger_tests::free_addr;

use crate::client::Mode;
use crate::observe::{AuthPoller, AuthProgress};

/// First argument that makes this binary the storm's client process.
const CLIENT_ROLE: &str = "client";
/// What the issue asks: every unit authenticated within this long after the storm begins.
const TARGET: Duration = Duration::from_secs(2);
/// The broker's CONNECT timeout in the paced scenario (production: 5 s): longer than opening
/// every connection one by one takes.
const PACED_CONNECT_TIMEOUT_MS: u16 = 65_000;
/// Descriptors beyond one per connection: database, listeners, runtime.
const FD_SPARE: u64 = 1024;
/// Rounds of the credential-check micro-figure; the median is printed.
const VERIFY_ROUNDS: usize = 5;
/// In-process links registered for the router micro-figure.
const ROUTER_LINKS: usize = 1_000;
/// Longest wait for the broker to accept the paced scenario's connections, and for the
/// process to go quiet between scenarios.
const WAIT_MAX: Duration = Duration::from_secs(60);

/// One unit as the storm's client needs it.
struct Credentials {
    serial: String,
    password: String,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.split_first() {
        Some((role, rest)) if role == CLIENT_ROLE => client::run(rest),
        _ => server_side(args),
    }
}

/// The benchmark proper: registers the units, runs both scenarios and prints the figures.
fn server_side(args: Vec<String>) -> anyhow::Result<()> {
    let mut arg = sunledger_benches::numeric_args(args.into_iter());
    let units = usize::try_from(arg(10_000)?)?;
    let deadline = Duration::from_secs(arg(120)?);
    let fd = raise_fd_limit(units as u64 + FD_SPARE)?;
    println!(
        "open-file limit: {} -> {} (hard {}); one per connection here, the clients are a child process",
        fd.before, fd.after, fd.hard
    );
    let dir = tempfile::tempdir()?;
    let databases =
        [dir.path().join("storm"), dir.path().join("paced")].map(|dir| dir.join("sunledger.redb"));
    let started = Instant::now();
    let credentials = register(&databases[0], units)?;
    copy_database(&databases[0], &databases[1])?;
    println!(
        "registered {units} units in {:.2} s (one commit)",
        started.elapsed().as_secs_f64()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;

    let server = runtime.block_on(start_server(&databases[0], None))?;
    let verify_ns = verify_ns_per_check(&server, &credentials)?;
    println!(
        "auth-verify: {units} sequential UnitDirectory::verify_at, median {verify_ns:.0} ns/check ({VERIFY_ROUNDS} rounds)"
    );
    let (storm, ()) = run_scenario(&server, &credentials, Mode::Storm, deadline, || Ok(()))?;
    storm.print(Mode::Storm, deadline);
    runtime.block_on(server.shutdown());
    println!(
        "settled for {:.1} s",
        observe::wait_quiet(WAIT_MAX).as_secs_f64()
    );

    let server = runtime.block_on(start_server(&databases[1], Some(PACED_CONNECT_TIMEOUT_MS)))?;
    let (paced, router_us) = run_scenario(&server, &credentials, Mode::Paced, deadline, || {
        router_us_per_link(&server)
    })?;
    paced.print(Mode::Paced, deadline);
    println!(
        "router-link: {ROUTER_LINKS} in-process links registered one after another with {} devices connected: {router_us:.1} µs per connection",
        paced.outcome(0)
    );
    runtime.block_on(server.shutdown());

    let verdict = match storm.authenticated_all() {
        Some(s) if s <= TARGET.as_secs_f64() => "met",
        _ => "NOT met",
    };
    println!(
        "reconnect-storm: {units} units; storm: all authenticated {}, all CONNACKed {}; on open connections: all authenticated {}, all CONNACKed {}; target {} s {verdict}; credential check {verify_ns:.0} ns; router {router_us:.1} µs per connection",
        storm.auth_all_text(),
        storm.connack_all_text(),
        paced.auth_all_text(),
        paced.connack_all_text(),
        TARGET.as_secs()
    );
    Ok(())
}

/// Registers `units` units in a new database at `path` in one commit and returns their MQTT
/// credentials; the store is closed again, so a server opens the file as after a restart.
fn register(path: &Path, units: usize) -> anyhow::Result<Vec<Credentials>> {
    let store = Store::open(path)?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let txn = store.begin_write()?;
    let credentials = (1..=units)
        .map(|n| {
            let serial = format!("STORM-{n:06}");
            let (_, key) = store.register_unit_in(&txn, &serial, now_ms, PLATFORM_OWNER, false)?;
            Ok(Credentials {
                serial,
                password: key.mqtt_password(),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    txn.commit()?;
    Ok(credentials)
}

/// Copies a closed database and the master key beside it, so each scenario restarts from the
/// same registered units.
fn copy_database(from: &Path, to: &Path) -> anyhow::Result<()> {
    let beside = |database: &Path, name: &str| -> PathBuf { database.with_file_name(name) };
    std::fs::create_dir_all(beside(to, ""))?;
    std::fs::copy(from, to)?;
    std::fs::copy(beside(from, "master.key"), beside(to, "master.key"))?;
    Ok(())
}

/// Starts the server with production defaults on `database`, on free loopback ports; with
/// `connect_timeout_ms`, the broker waits that long for a CONNECT instead.
async fn start_server(database: &Path, connect_timeout_ms: Option<u16>) -> anyhow::Result<Server> {
    let mut settings = Settings {
        database_path: database.to_path_buf(),
        grpc_listen: free_addr(),
        metrics_listen: free_addr(),
        ..Settings::default()
    };
    settings.broker.listen = free_addr();
    if let Some(timeout_ms) = connect_timeout_ms {
        settings.broker.connect_timeout_ms = timeout_ms;
    }
    let started = Instant::now();
    let server = Server::start(settings).await?;
    println!(
        "server started on its database in {:.2} s, as after a restart ({} units in its directory)",
        started.elapsed().as_secs_f64(),
        server.platform().units.len()
    );
    Ok(server)
}

/// Nanoseconds one credential check takes: every unit's right password checked one after
/// another through the server's own directory, as the broker's CONNECT hook does (with the
/// clock read per check); the median of [`VERIFY_ROUNDS`] rounds.
fn verify_ns_per_check(server: &Server, credentials: &[Credentials]) -> anyhow::Result<f64> {
    let directory = &server.platform().units;
    let mut per_check = Vec::with_capacity(VERIFY_ROUNDS);
    for _ in 0..VERIFY_ROUNDS {
        let started = Instant::now();
        let allowed = credentials
            .iter()
            .filter(|unit| {
                let now_ms = chrono::Utc::now().timestamp_millis();
                directory
                    .verify_at(&unit.serial, &unit.password, now_ms)
                    .as_str()
                    == "allowed"
            })
            .count();
        per_check.push(started.elapsed().as_nanos() as f64 / credentials.len().max(1) as f64);
        anyhow::ensure!(
            allowed == credentials.len(),
            "{} of {} passwords were refused",
            credentials.len() - allowed,
            credentials.len()
        );
    }
    Ok(sunledger_benches::median(per_check))
}

/// Microseconds rumqttd's router takes to register one connection, as its device thread
/// waits for it on every CONNECT: [`ROUTER_LINKS`] in-process links opened one after another.
fn router_us_per_link(server: &Server) -> anyhow::Result<f64> {
    let started = Instant::now();
    let links = (0..ROUTER_LINKS)
        .map(|n| server.broker().link(&format!("storm-router-probe-{n}")))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| anyhow::anyhow!("opening a link: {error}"))?;
    Ok(started.elapsed().as_secs_f64() * 1e6 / links.len().max(1) as f64)
}

/// What one scenario measured.
struct Scenario {
    /// The client's figures.
    report: Report,
    /// When the broker had decided the CONNECTs.
    auth: AuthProgress,
    /// CONNECTs sent: one per connection the client had.
    sent: usize,
    /// Paced only: connections opened and failed, seconds to open them, seconds more until
    /// the broker had accepted them all.
    tcp: Option<(usize, usize, f64, f64)>,
    /// Listen-queue overflows from the client's start to its last answer.
    overflows: u64,
    /// Wall-clock seconds from `go` to the client's last answer.
    wall_s: f64,
    /// Server CPU seconds per thread name over `wall_s`.
    cpu: Vec<(String, f64)>,
}

/// Runs one scenario against `server` and, while its connections are still up,
/// `while_connected`.
fn run_scenario<R>(
    server: &Server,
    credentials: &[Credentials],
    mode: Mode,
    deadline: Duration,
    while_connected: impl FnOnce() -> anyhow::Result<R>,
) -> anyhow::Result<(Scenario, R)> {
    let overflows_before = observe::listen_overflows();
    let mut clients = Clients::spawn(server, credentials, deadline, mode)?;
    let tcp = match mode {
        Mode::Storm => {
            clients.expect("ready")?;
            None
        }
        Mode::Paced => {
            let (open, failed, open_s) = clients.opened()?;
            let port = server.broker().listen_addr().port();
            Some((open, failed, open_s, wait_accepted(port)?))
        }
    };
    let sent = tcp.map_or(credentials.len(), |(open, ..)| open);
    let poller = AuthPoller::start(sent as u64)?;
    let cpu_before = thread_cpu_seconds();
    let started = Instant::now();
    let report = clients.go()?;
    let wall_s = started.elapsed().as_secs_f64();
    let cpu = cpu_delta(&cpu_before, &thread_cpu_seconds());
    let auth = poller.finish();
    let overflows = observe::listen_overflows() - overflows_before;
    let measured = while_connected()?;
    clients.close()?;
    let scenario = Scenario {
        report,
        auth,
        sent,
        tcp,
        overflows,
        wall_s,
        cpu,
    };
    Ok((scenario, measured))
}

/// Waits until the broker has taken every connection off the listener (none queued, none
/// half-open); returns the seconds it took.
fn wait_accepted(port: u16) -> anyhow::Result<f64> {
    let started = Instant::now();
    loop {
        match observe::not_yet_accepted(port) {
            Some((0, 0)) => return Ok(started.elapsed().as_secs_f64()),
            None => anyhow::bail!("no listener on port {port} in /proc/net/tcp"),
            Some(_) if started.elapsed() > WAIT_MAX => {
                anyhow::bail!("the broker did not accept every connection")
            }
            Some(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Seconds as printed, or `-` for a time not seen.
fn seconds(value: Option<f64>) -> String {
    value.map_or("-".to_owned(), |s| format!("{s:.3} s"))
}

impl Scenario {
    /// Seconds from the first CONNECT written to `at`.
    fn since_first_connect(&self, at: Option<SystemTime>) -> Option<f64> {
        let first_ns = self.report.number("first_connect_unix_ns", 0)?;
        let at_ns = at?.duration_since(UNIX_EPOCH).ok()?.as_nanos() as f64;
        // Clocks read in two processes: a decision microseconds "before" its CONNECT is 0.
        Some(((at_ns - first_ns) / 1e9).max(0.0))
    }

    /// CONNECTs the broker decided: more than were sent if units retried.
    fn decisions(&self) -> u64 {
        self.auth.accepted + self.auth.refused
    }

    /// Seconds until every unit was authenticated, if all were. Without retries that is when
    /// the broker had decided as many CONNECTs as were sent. With them, some decisions were
    /// for attempts their unit had already given up on, so the count says too little; then
    /// it is when the last unit had its CONNACK (a CONNACK is written only after the check).
    fn authenticated_all(&self) -> Option<f64> {
        match self.decisions() > self.sent as u64 {
            false => self.since_first_connect(self.auth.all),
            true => self.connack_all(),
        }
    }

    /// How many CONNECTs ended the `index`th way (accepted, refused, closed, timed out,
    /// failed).
    fn outcome(&self, index: usize) -> usize {
        self.report.number("outcomes", index).unwrap_or(0.0) as usize
    }

    /// Seconds until every CONNECT was answered with a CONNACK, if all were.
    fn connack_all(&self) -> Option<f64> {
        let answered = self.outcome(0) + self.outcome(1);
        (answered == self.sent)
            .then(|| self.report.number("connack_s", 3))
            .flatten()
    }

    /// [`Scenario::authenticated_all`] as printed, or how many were decided.
    fn auth_all_text(&self) -> String {
        let decisions = self.decisions();
        match (self.authenticated_all(), decisions > self.sent as u64) {
            (Some(s), false) => format!("{s:.3} s"),
            (Some(s), true) => format!(
                "by {s:.3} s ({decisions} decisions for {} units: as many as units at {})",
                self.sent,
                seconds(self.since_first_connect(self.auth.all))
            ),
            (None, _) => format!("not seen ({decisions} decided for {} units)", self.sent),
        }
    }

    /// [`Scenario::connack_all`] as printed, or how many were answered.
    fn connack_all_text(&self) -> String {
        self.connack_all().map_or_else(
            || {
                format!(
                    "not seen ({} of {} answered)",
                    self.outcome(0) + self.outcome(1),
                    self.sent
                )
            },
            |s| format!("{s:.3} s"),
        )
    }

    /// A client figure's p50 / p90 / p99 / max, in seconds.
    fn quantiles(&self, name: &str) -> String {
        let values: Vec<String> = (0..4)
            .map(|index| {
                self.report
                    .number(name, index)
                    .map_or("-".to_owned(), |s| format!("{s:.3}"))
            })
            .collect();
        format!("{} s", values.join(" / "))
    }

    /// Prints the scenario's figures, each line tagged with the mode's name.
    fn print(&self, mode: Mode, deadline: Duration) {
        let name = mode.as_str();
        match self.tcp {
            Some((open, failed, open_s, accepted_s)) => println!(
                "[{name}] tcp: {open} connections opened one by one in {open_s:.2} s ({failed} failed), all accepted by the broker {accepted_s:.2} s later"
            ),
            None => println!(
                "[{name}] tcp: each unit's handshake done p50 / p90 / p99 / max {} after the first CONNECT",
                self.quantiles("tcp_open_s")
            ),
        }
        println!(
            "[{name}] CONNECTs written p50 / p90 / p99 / max {} after the first",
            self.quantiles("connect_written_s")
        );
        let at = |time| seconds(self.since_first_connect(time));
        println!(
            "[{name}] auth: {} decisions for {} units ({} accepted, {} refused): first {}, half {}, as many as units {}, last {} after the first CONNECT (broker counters read every {} ms)",
            self.decisions(),
            self.sent,
            self.auth.accepted,
            self.auth.refused,
            at(self.auth.first),
            at(self.auth.half),
            at(self.auth.all),
            at(self.auth.last),
            observe::POLL_INTERVAL.as_millis()
        );
        println!(
            "[{name}] connack: {} accepted, {} refused, {} closed without one, {} timed out ({} s deadline), {} failed; {} retries by {} units; CONNACKs p50 / p90 / p99 / max {} after the first CONNECT; per connection CONNECT→CONNACK {}",
            self.outcome(0),
            self.outcome(1),
            self.outcome(2),
            self.outcome(3),
            deadline.as_secs(),
            self.outcome(4),
            self.report.number("retries", 0).unwrap_or(0.0),
            self.report.number("retries", 1).unwrap_or(0.0),
            self.quantiles("connack_s"),
            self.quantiles("connack_latency_s")
        );
        println!(
            "[{name}] listen-queue overflows {}; cpu over {:.2} s: server threads {}; clients (child process) {:.2} s",
            self.overflows,
            self.wall_s,
            self.cpu
                .iter()
                .map(|(thread, s)| format!("{thread} {s:.2} s"))
                .collect::<Vec<_>>()
                .join(", "),
            self.report.number("client_cpu_s", 0).unwrap_or(0.0)
        );
    }
}

/// The storm's client process and the pipes to it (see [`client`] for the conversation).
struct Clients(ChildConversation);

/// The client's figures: each line's first word and the numbers after it.
struct Report(HashMap<String, Vec<f64>>);

impl Report {
    /// The `index`th number of the line named `name`, if the client printed it.
    fn number(&self, name: &str, index: usize) -> Option<f64> {
        self.0.get(name)?.get(index).copied()
    }
}

impl Clients {
    /// Starts this binary as the client process in `mode` and hands it every unit's
    /// credentials.
    fn spawn(
        server: &Server,
        credentials: &[Credentials],
        deadline: Duration,
        mode: Mode,
    ) -> anyhow::Result<Clients> {
        let args = [
            CLIENT_ROLE.to_owned(),
            server.broker().listen_addr().to_string(),
            deadline.as_millis().to_string(),
            mode.as_str().to_owned(),
        ];
        let mut child = ChildConversation::spawn("client process", &args)?;
        let mut lines = String::new();
        for unit in credentials {
            lines.push_str(&format!("{} {}\n", unit.serial, unit.password));
        }
        child.send(&lines)?;
        Ok(Clients(child))
    }

    /// Waits for the client's line `expected`.
    fn expect(&mut self, expected: &str) -> anyhow::Result<()> {
        let line = self.line()?;
        anyhow::ensure!(
            line == expected,
            "expected {expected:?} from the client, got {line:?}"
        );
        Ok(())
    }

    /// Waits until the client has opened its TCP connections: (open, failed, seconds).
    fn opened(&mut self) -> anyhow::Result<(usize, usize, f64)> {
        let line = self.line()?;
        let mut words = line.split_whitespace();
        anyhow::ensure!(
            words.next() == Some("tcp"),
            "unexpected client line {line:?}"
        );
        let mut next = || words.next().context("short `tcp` line");
        Ok((next()?.parse()?, next()?.parse()?, next()?.parse()?))
    }

    /// Starts the storm and returns the client's figures once every CONNECT was answered
    /// (or the deadline passed).
    fn go(&mut self) -> anyhow::Result<Report> {
        self.0.send("go")?;
        let mut figures = HashMap::new();
        loop {
            let line = self.line()?;
            let mut words = line.split_whitespace();
            match words.next() {
                Some("done") => return Ok(Report(figures)),
                Some(name) => {
                    let numbers = words.map(str::parse).collect::<Result<Vec<f64>, _>>()?;
                    figures.insert(name.to_owned(), numbers);
                }
                None => {}
            }
        }
    }

    /// Lets the client close its connections and exit.
    fn close(self) -> anyhow::Result<()> {
        self.0.close()
    }

    fn line(&mut self) -> anyhow::Result<String> {
        self.0.line()
    }
}
