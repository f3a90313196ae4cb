//! Crash recovery: the server is killed with SIGKILL at random moments under load and restarted
//! on the same redb file; afterwards every acknowledged payment is on the ledger exactly once,
//! every balance equals a replay of its ledger, and every unit was charged exactly the energy
//! its cumulative counter reports: no watt-hour twice, none lost.
//!
//! A server inside the test process cannot be killed without killing the test, so the test
//! binary re-executes itself: the parent test runs `current_exe() crash_child --exact --ignored`
//! with the database directory and free ports in `SUNLEDGER_CRASH_*` variables, and the ignored
//! test [`crash_child`] serves from them (payments from a loop inside the child, each appended
//! and fsynced to `acked.log` only after the engine acknowledged it). The parent drives a fleet
//! of MQTT devices against the child, kills it with `Child::kill` (SIGKILL on Unix), and repeats
//! on fresh ports. At the end it starts the server in-process on the same file, lets every
//! device report its true counter once more, and checks the committed store against what the
//! child acknowledged and what the devices metered.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::OpenOptions;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use prost::Message;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use sunledger::{Server, Settings};
use sunledger_billing::account::{AccountSetup, Payment};
use sunledger_billing::account_record::{AccountOpening, Movement};
use sunledger_billing::ledger::{EntryKind, PaymentChannel};
use sunledger_billing::store::PLATFORM_OWNER;
use sunledger_billing::tariff::{PlanTerms, Tariff};
use sunledger_billing::units::DeviceKey;
use sunledger_proto::authenticity;
use sunledger_proto::authenticity::verify_command;
use sunledger_proto::device::{Command, Telemetry};
use sunledger_proto::topic::{TopicKind, device_topic};
use sunledger_tests::{Device, TestServer, free_addr};

const ENV_DIR: &str = "SUNLEDGER_CRASH_DIR";
const ENV_MQTT: &str = "SUNLEDGER_CRASH_MQTT";
const ENV_GRPC: &str = "SUNLEDGER_CRASH_GRPC";
const ENV_METRICS: &str = "SUNLEDGER_CRASH_METRICS";
const ENV_RUN: &str = "SUNLEDGER_CRASH_RUN";
const ENV_READY: &str = "SUNLEDGER_CRASH_READY";
const ENV_ROUNDS: &str = "SUNLEDGER_CRASH_ROUNDS";
const ENV_SEED: &str = "SUNLEDGER_CRASH_SEED";

/// Lines `ref amount serial` of payments the engine acknowledged, written by the child.
const ACKED_LOG: &str = "acked.log";
/// Lines `ref serial error` of payments the engine refused, written by the child.
const FAILED_LOG: &str = "failed.log";
/// Everything the children print (libtest output, warnings and errors of the server).
const CHILD_LOG: &str = "child.log";

const UNITS: usize = 20;
/// Unit log entries the child's partition keeps (none more per unit): fewer than its units,
/// so most commits also checkpoint units and drop rows, and kills land in those commits too.
const UNIT_LOG_ENTRIES: usize = 8;
const ROUNDS_DEFAULT: usize = 20;
const ORG: &str = "org-crash";
/// 0.37 per kWh.
const PRICE_PER_KWH: (i64, u32) = (37, 2);
const BOOT: u32 = 1;
/// Device time of reading `seq` is `TS_BASE + seq * 3600`: an hour per reading, so at most
/// 50 Wh per reading is far below the 1000 W plausibility limit and nothing is held.
const TS_BASE: i64 = 1_780_000_000;
const WH_PER_READING_MAX: u64 = 50;
/// A child that outlives this (its parent died without killing it) exits on its own.
const CHILD_LIFETIME_MAX: Duration = Duration::from_secs(120);
/// How long a child may take to accept MQTT connections.
const CHILD_START_MAX: Duration = Duration::from_secs(30);

/// The server of one round: runs until killed. Not a test of its own; see the module docs.
#[test]
#[ignore = "child process of crash_recovery; started by the parent test"]
fn crash_child() {
    let Some(dir) = std::env::var_os(ENV_DIR).map(PathBuf::from) else {
        eprintln!("crash_child runs only as the child of the crash_recovery test; nothing to do");
        return;
    };
    let addr = |name: &str| -> SocketAddr {
        std::env::var(name)
            .unwrap_or_else(|_| panic!("{name} is set by the parent"))
            .parse()
            .unwrap_or_else(|error| panic!("{name}: {error}"))
    };
    let mut settings = Settings::for_tests(
        dir.join("sunledger.redb"),
        addr(ENV_MQTT),
        addr(ENV_GRPC),
        addr(ENV_METRICS),
    );
    // A small unit log, so kills land while commits checkpoint units and drop rows too.
    settings.engine.unit_log_entries_min = UNIT_LOG_ENTRIES;
    settings.engine.unit_log_entries_per_unit = 0;
    let run = std::env::var(ENV_RUN).expect("SUNLEDGER_CRASH_RUN is set by the parent");
    let ready = std::env::var_os(ENV_READY).expect("SUNLEDGER_CRASH_READY is set by the parent");
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("child runtime")
        .block_on(serve_and_pay(&dir, &run, Path::new(&ready), settings));
}

/// Starts the server, creates the `ready` marker, and records payments on random units until
/// the process is killed.
async fn serve_and_pay(dir: &Path, run: &str, ready: &Path, settings: Settings) {
    let born = Instant::now();
    let server = Server::start(settings).await.expect("child server starts");
    std::fs::write(ready, b"").expect("creating the ready marker");
    let serials: Vec<String> = server
        .store()
        .units()
        .expect("reading units")
        .into_iter()
        .map(|unit| unit.serial)
        .collect();
    assert!(!serials.is_empty(), "the parent registers the fleet first");
    let append = |name: &str| {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(name))
            .unwrap_or_else(|error| panic!("opening {name}: {error}"))
    };
    let (mut acked, mut failed) = (append(ACKED_LOG), append(FAILED_LOG));
    let mut rng = rand::rng();
    for i in 0u64.. {
        if orphaned() || born.elapsed() > CHILD_LIFETIME_MAX {
            eprintln!("crash_child: parent gone or lifetime over; exiting");
            std::process::exit(0);
        }
        let amount = Decimal::new(rng.random_range(1..=500), 2);
        let serial = &serials[rng.random_range(0..serials.len())];
        let provider_ref = format!("P-{run}-{i}");
        let payment = Payment {
            amount,
            channel: PaymentChannel::MobileMoney,
            provider_ref: provider_ref.clone(),
            entered_by: "crash-test".into(),
        };
        let recorded = tokio::task::block_in_place(|| {
            server.engine().record(serial, Movement::Payment(payment))
        });
        // Each line is fsynced before the next payment starts, so at most the payment in
        // flight when the kill lands is on the ledger without its line.
        let (file, line) = match recorded {
            Ok(receipt) => {
                assert!(!receipt.duplicate, "{provider_ref} is a fresh reference");
                (&mut acked, format!("{provider_ref} {amount} {serial}\n"))
            }
            Err(error) => (&mut failed, format!("{provider_ref} {serial} {error}\n")),
        };
        file.write_all(line.as_bytes()).expect("appending to a log");
        file.sync_data().expect("fsyncing a log");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Whether the parent died and the child was re-parented.
fn orphaned() -> bool {
    #[cfg(unix)]
    {
        static PARENT: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
        let parent = std::os::unix::process::parent_id();
        *PARENT.get_or_init(|| parent) != parent
    }
    #[cfg(not(unix))]
    {
        false
    }
}

/// One unit of the fleet and the truth about its meter.
struct Unit {
    serial: String,
    secret: DeviceKey,
    /// Sequence number of the last reading sent (or attempted).
    seq: u64,
    /// The device's cumulative load counter: the highest value it reported.
    load_wh: u64,
}

impl Unit {
    /// The unit's current reading, MAC'd as its firmware sends it.
    fn reading(&self) -> Vec<u8> {
        let reading = Telemetry {
            seq: self.seq,
            ts: TS_BASE + self.seq as i64 * 3600,
            load_wh: self.load_wh,
            boot: BOOT,
            ..Telemetry::default()
        };
        authenticity::seal(self.secret.bytes(), &self.serial, reading).encode_to_vec()
    }
}

/// The server running as a child process; killed when dropped, so a failing test leaves no
/// server behind.
struct ChildServer {
    process: Child,
    mqtt: SocketAddr,
}

impl ChildServer {
    /// Starts run `run` on the database in `dir` and waits until it accepts MQTT connections
    /// and its server has started (ingest subscribed, engine loaded). Picks new ports if the
    /// child dies at start (a port taken between picking and binding).
    async fn start(dir: &Path, run: usize) -> ChildServer {
        for attempt in 0..3 {
            // Payment references are `P-{launch}-{i}`: unique even if a launch dies at start.
            let launch = format!("{run}.{attempt}");
            let ready = dir.join(format!("ready-{launch}"));
            let (mqtt, grpc, metrics) = (free_addr(), free_addr(), free_addr());
            let mut log = OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(CHILD_LOG))
                .expect("opening the child log");
            writeln!(log, "=== launch {launch}: mqtt {mqtt} ===").expect("writing the child log");
            let process = std::process::Command::new(
                std::env::current_exe().expect("path of the test binary"),
            )
            .args(["crash_child", "--exact", "--ignored", "--nocapture"])
            .env(ENV_DIR, dir)
            .env(ENV_MQTT, mqtt.to_string())
            .env(ENV_GRPC, grpc.to_string())
            .env(ENV_METRICS, metrics.to_string())
            .env(ENV_RUN, &launch)
            .env(ENV_READY, &ready)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("cloning the log handle"))
            .stderr(log)
            .spawn()
            .expect("starting the child server");
            let mut child = ChildServer { process, mqtt };
            let deadline = Instant::now() + CHILD_START_MAX;
            loop {
                if ready.exists() && tokio::net::TcpStream::connect(mqtt).await.is_ok() {
                    return child;
                }
                if let Some(status) = child.process.try_wait().expect("polling the child") {
                    eprintln!("child of run {run} exited at start ({status}); new ports");
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "child of run {run} did not accept MQTT in time; log:\n{}",
                    log_tail(dir)
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        panic!(
            "child of run {run} failed to start three times; log:\n{}",
            log_tail(dir)
        );
    }

    /// Kills the child with SIGKILL, failing the test if it had already exited on its own.
    fn kill_9(mut self, dir: &Path) {
        if let Some(status) = self.process.try_wait().expect("polling the child") {
            panic!(
                "the child server exited by itself ({status}) before the kill; log:\n{}",
                log_tail(dir)
            );
        }
        self.process.kill().expect("killing the child");
        tokio::task::block_in_place(|| self.process.wait()).expect("reaping the child");
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// The last lines the children printed.
fn log_tail(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join(CHILD_LOG)).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Connects every unit's device to `mqtt` and waits for all CONNACKs.
async fn connect_fleet(mqtt: SocketAddr, fleet: &[Unit]) -> Vec<Device> {
    let mut devices: Vec<Device> = fleet
        .iter()
        .map(|unit| Device::connect(mqtt, &unit.serial, &unit.secret, None))
        .collect();
    for device in &mut devices {
        device.expect_connected().await;
    }
    devices
}

/// Drops every device's connection without waiting for anything.
fn vanish(devices: Vec<Device>) {
    devices.into_iter().for_each(Device::vanish);
}

/// Every device reports new readings for `duration`: strictly increasing `seq`, the counter up
/// by 0..=50 Wh each, some readings sent twice. Returns the number of messages queued.
async fn publish_load(
    devices: &[Device],
    fleet: &mut [Unit],
    rng: &mut StdRng,
    duration: Duration,
) -> usize {
    let deadline = Instant::now() + duration;
    let mut queued = 0;
    while Instant::now() < deadline {
        for (unit, device) in fleet.iter_mut().zip(devices) {
            if !rng.random_bool(0.7) {
                continue;
            }
            // The counter is the device's truth whether or not this message arrives: the next
            // accepted reading covers a lost one.
            unit.seq += 1;
            unit.load_wh += rng.random_range(0..=WH_PER_READING_MAX);
            let copies = if rng.random_bool(0.1) { 2 } else { 1 };
            for _ in 0..copies {
                if device
                    .try_publish(TopicKind::Telemetry, unit.reading())
                    .await
                {
                    queued += 1;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    queued
}

/// As a QoS 1 session does after reconnecting, about half of the devices send their last
/// reading again (the killed server may or may not have committed it). Returns the number of
/// messages queued.
async fn redeliver_last(devices: &[Device], fleet: &[Unit], rng: &mut StdRng) -> usize {
    let mut queued = 0;
    for (unit, device) in fleet.iter().zip(devices) {
        if rng.random_bool(0.5)
            && device
                .try_publish(TopicKind::Telemetry, unit.reading())
                .await
        {
            queued += 1;
        }
    }
    queued
}

/// Opens the usage account every unit of the fleet is billed on.
fn open_account(server: &TestServer, serial: &str) {
    let mut terms = PlanTerms::new(Tariff::Usage {
        price_per_kwh: Decimal::new(PRICE_PER_KWH.0, PRICE_PER_KWH.1),
    });
    terms.auto_switch_off = true;
    let opening = AccountOpening {
        org: ORG.into(),
        tz: chrono_tz::Tz::Africa__Nairobi,
        terms,
        setup: AccountSetup::default(),
        time_mode: Default::default(),
    };
    tokio::task::block_in_place(|| server.server.engine().open_account(serial, opening))
        .expect("account opened");
}

/// A payment the child acknowledged, from one line of `acked.log`.
#[derive(Debug)]
struct Acked {
    amount: Decimal,
    serial: String,
}

/// The complete lines of a log the child wrote (a line cut by the kill has no newline).
fn log_lines(dir: &Path, name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete
        .lines()
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `(launch, i)` of a reference `P-{launch}-{i}`: the child that made it, and its number there.
fn parse_ref(provider_ref: &str) -> (&str, u64) {
    let parsed = provider_ref
        .strip_prefix("P-")
        .and_then(|rest| rest.split_once('-'))
        .and_then(|(launch, i)| Some((launch, i.parse().ok()?)));
    parsed.unwrap_or_else(|| panic!("unexpected payment reference {provider_ref:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_payments_and_metered_energy_survive_kill_9() {
    let began = Instant::now();
    let rounds: usize = std::env::var(ENV_ROUNDS)
        .ok()
        .map_or(ROUNDS_DEFAULT, |rounds| rounds.parse().expect(ENV_ROUNDS));
    let seed: u64 = std::env::var(ENV_SEED)
        .ok()
        .map_or_else(rand::random, |seed| seed.parse().expect(ENV_SEED));
    println!("crash_recovery: {rounds} rounds, {ENV_SEED}={seed}");
    let mut rng = StdRng::seed_from_u64(seed);

    // 1. The fleet: registered units on usage accounts, each with a committed baseline reading.
    let server = TestServer::start_in(tempfile::tempdir().expect("temporary directory")).await;
    let mut fleet: Vec<Unit> = (0..UNITS)
        .map(|n| {
            let serial = format!("CRASH-{n:02}");
            let secret = server.register(&serial);
            open_account(&server, &serial);
            Unit {
                serial,
                secret,
                seq: 1,
                load_wh: 0,
            }
        })
        .collect();
    let devices = connect_fleet(server.mqtt, &fleet).await;
    for (unit, device) in fleet.iter().zip(&devices) {
        device.publish(TopicKind::Telemetry, unit.reading()).await;
    }
    for unit in &fleet {
        server
            .wait_for_state(&unit.serial, |state| state.meter.is_some())
            .await;
    }
    vanish(devices);
    let dir = server.stop().await;

    // 2. Rounds: the server in a child process, readings from every device and payments from
    // the child itself, then SIGKILL at a random moment.
    let (mut kills, mut queued) = (0, 0);
    for run in 0..rounds {
        let child = ChildServer::start(dir.path(), run).await;
        let devices = connect_fleet(child.mqtt, &fleet).await;
        queued += redeliver_last(&devices, &fleet, &mut rng).await;
        let load_for = Duration::from_millis(rng.random_range(200..=800));
        queued += publish_load(&devices, &mut fleet, &mut rng, load_for).await;
        child.kill_9(dir.path());
        kills += 1;
        vanish(devices);
    }

    // 3. Restart in-process on the same file; every device reports its true counter once
    // more, with a new seq and no new energy.
    let dir_path = dir.path().to_path_buf();
    let server = TestServer::start_in(dir).await;
    // The engine publishes every unit's current command, retained, as its partition starts,
    // and re-sends unacknowledged ones to units online one interval after this.
    let restarted = Instant::now();
    let devices = connect_fleet(server.mqtt, &fleet).await;
    for (unit, device) in fleet.iter_mut().zip(&devices) {
        unit.seq += 1;
        device.publish(TopicKind::Telemetry, unit.reading()).await;
    }
    for unit in &fleet {
        server
            .wait_for_state(&unit.serial, |state| {
                state.meter.map(|meter| (meter.boot, meter.seq)) == Some((BOOT, unit.seq))
            })
            .await;
    }

    // 4. The committed store against the child's acknowledgements and the devices' truth.
    let store = server.server.store();
    let acked_lines = log_lines(&dir_path, ACKED_LOG);
    let failed_lines = log_lines(&dir_path, FAILED_LOG);
    let mut acked: HashMap<String, Acked> = HashMap::new();
    for line in &acked_lines {
        let [provider_ref, amount, serial] = line.split(' ').collect::<Vec<_>>()[..] else {
            panic!("malformed acked.log line {line:?}");
        };
        let previous = acked.insert(
            provider_ref.to_owned(),
            Acked {
                amount: Decimal::from_str(amount).expect("an amount"),
                serial: serial.to_owned(),
            },
        );
        assert!(previous.is_none(), "{provider_ref} acknowledged twice");
    }
    let failed: HashSet<&str> = failed_lines
        .iter()
        .filter_map(|line| line.split(' ').next())
        .collect();

    // Every payment on any ledger, by reference: (serial, amount, ledger seq).
    let mut on_ledger: HashMap<String, Vec<(String, Decimal, u64)>> = HashMap::new();
    let (mut usage_entries, mut payment_entries) = (0, 0);
    let price = Decimal::new(PRICE_PER_KWH.0, PRICE_PER_KWH.1);
    for unit in &fleet {
        let serial = unit.serial.as_str();
        let record = store
            .account(serial)
            .expect("reading account")
            .expect("account exists");
        let ledger = store.ledger(serial).expect("reading ledger");
        let keys: Vec<u64> = ledger.iter().map(|(seq, _)| *seq).collect();
        assert_eq!(
            keys,
            (0..record.ledger_len).collect::<Vec<_>>(),
            "{serial}: ledger numbered 0..ledger_len without gaps"
        );
        if let Err(mismatch) = record
            .account
            .check_ledger(ledger.iter().map(|(_, entry)| entry))
        {
            panic!("{serial}: stored balance differs from the ledger's replay: {mismatch:?}");
        }

        let mut charged = Decimal::ZERO;
        let mut readings = HashSet::new();
        for (seq, entry) in &ledger {
            match entry.kind {
                EntryKind::Payment => {
                    payment_entries += 1;
                    let provider_ref = entry.payment_ref().expect("a payment has a reference");
                    on_ledger.entry(provider_ref.to_owned()).or_default().push((
                        serial.to_owned(),
                        entry.amount,
                        *seq,
                    ));
                }
                EntryKind::UsageCharge => {
                    usage_entries += 1;
                    charged += entry.amount;
                    let reading = entry.reading_id().expect("a usage charge has a reading");
                    assert!(
                        readings.insert(reading),
                        "{serial}: reading {reading:?} charged twice"
                    );
                    assert!(
                        reading.boot == BOOT && reading.seq <= unit.seq,
                        "{serial}: charge for a reading never sent: {reading:?}"
                    );
                }
                other => panic!("{serial}: unexpected {other:?} entry {entry:?}"),
            }
        }

        let state = store
            .unit_state(serial)
            .expect("reading state")
            .expect("state exists");
        assert_eq!(
            (state.consumed_wh, state.held_wh),
            (unit.load_wh, 0),
            "{serial}: consumed Wh must equal the device's counter, none held"
        );
        assert_eq!(
            state.meter.map(|meter| meter.load_wh),
            Some(unit.load_wh),
            "{serial}: the baseline is the last reading"
        );
        assert_eq!(
            charged,
            -(Decimal::from(unit.load_wh) * price / Decimal::from(1000)),
            "{serial}: usage charges must add up to exactly {} Wh at {price}",
            unit.load_wh
        );
    }

    let mut last_acked: BTreeMap<&str, u64> = BTreeMap::new();
    for provider_ref in acked.keys() {
        let (launch, i) = parse_ref(provider_ref);
        let last = last_acked.entry(launch).or_insert(i);
        *last = (*last).max(i);
    }
    let mut extra_per_launch: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (provider_ref, copies) in &on_ledger {
        assert_eq!(
            copies.len(),
            1,
            "payment {provider_ref} is on the ledgers more than once: {copies:?}"
        );
        let (serial, amount, _) = &copies[0];
        match acked.get(provider_ref) {
            Some(ack) => assert_eq!(
                (serial, amount),
                (&ack.serial, &ack.amount),
                "payment {provider_ref} differs from what was acknowledged"
            ),
            None => {
                // Committed, but the kill landed before its line was logged: only the payment
                // after the child's last logged one can be in that state.
                let (launch, i) = parse_ref(provider_ref);
                let next = last_acked.get(launch).map_or(0, |last| last + 1);
                assert!(
                    i == next && !failed.contains(provider_ref.as_str()),
                    "payment {provider_ref} is on the ledger but was never acknowledged \
                     (the child's next unlogged payment is {next})"
                );
                extra_per_launch
                    .entry(launch)
                    .or_default()
                    .push(provider_ref);
            }
        }
    }
    for (provider_ref, ack) in &acked {
        assert!(
            on_ledger.contains_key(provider_ref),
            "acknowledged payment {provider_ref} ({} on {}) is missing after the crashes",
            ack.amount,
            ack.serial
        );
    }
    assert_eq!(
        payment_entries,
        on_ledger.len(),
        "one payment entry per reference"
    );
    let extras: usize = extra_per_launch.values().map(Vec::len).sum();
    assert!(
        extras <= kills,
        "{extras} unlogged payments after {kills} kills"
    );

    // Not vacuous: every round was killed, and payments and readings went through the children.
    assert_eq!(kills, rounds);
    assert!(
        acked.len() > rounds,
        "only {} payments acknowledged in {rounds} rounds",
        acked.len()
    );
    assert!(
        usage_entries >= rounds,
        "only {usage_entries} usage charges in {rounds} rounds"
    );

    // A device subscribing now gets the stored desired state, retained: the restarted engine
    // republished every unit's current command (the devices never ack in this test), and
    // whatever it published since must not have replaced it with anything else.
    let resend = Duration::from_millis(server.server.settings().engine.command_resend_interval_ms);
    tokio::time::sleep(
        (restarted + resend + Duration::from_millis(500)).saturating_duration_since(Instant::now()),
    )
    .await;
    let mut devices = devices;
    let mut commands_checked = 0;
    let platform_key = store
        .command_verifying_key(PLATFORM_OWNER)
        .expect("the platform's command key");
    for (unit, device) in fleet.iter().zip(&mut devices) {
        let state = store
            .unit_state(&unit.serial)
            .expect("reading state")
            .expect("state exists");
        let Some(desired) = state.desired else {
            continue;
        };
        device.subscribe_commands_of(&unit.serial).await;
        let (topic, payload, retained) = device.next_message().await;
        assert_eq!(topic, device_topic(&unit.serial, TopicKind::Cmd));
        assert!(retained, "{}: the command is retained", unit.serial);
        let command = Command::decode(payload.as_slice()).expect("a protobuf Command");
        assert!(
            verify_command(&platform_key, &unit.serial, &command),
            "{}: the retained command is signed",
            unit.serial
        );
        assert_eq!(
            Command {
                sig: Vec::new(),
                ..command
            },
            desired.to_proto(),
            "{}: the retained command is the stored desired state",
            unit.serial
        );
        commands_checked += 1;
    }
    vanish(devices);

    // The readiness probes' connections that never send CONNECT are logged as errors by the
    // broker; anything else the children logged as an error is worth a look.
    let child_log = std::fs::read_to_string(dir_path.join(CHILD_LOG)).unwrap_or_default();
    let child_errors: Vec<&str> = child_log
        .lines()
        .filter(|line| line.contains("ERROR"))
        .filter(|line| !line.contains("Error while handling MQTT connect packet"))
        .collect();
    for line in child_errors.iter().take(10) {
        println!("child error: {line}");
    }
    println!(
        "crash_recovery: {kills} kills, {} payments acknowledged, {extras} committed but \
         unlogged, {} refused; {queued} readings queued, {usage_entries} usage charges; \
         {commands_checked} retained commands checked; {} other ERROR lines from the \
         children; {:.1} s",
        acked.len(),
        failed.len(),
        child_errors.len(),
        began.elapsed().as_secs_f64()
    );
    server.stop().await;
}
