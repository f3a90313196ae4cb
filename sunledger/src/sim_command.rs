//! `sunledger sim`: the load simulator against a running server's broker. With `--grpc`, the
//! fleet is first enrolled through the operators' API (`sunledger_sim::enrol`) and audited
//! through it after the run (`sunledger_sim::audit`); with `--database`, simulator units are
//! instead registered in a stopped server's database. Either writes the credentials file that
//! later runs log in with. With `--keypad-units`, keypad units are enrolled beside them, paid
//! for while the fleet runs (`sunledger_sim::keypad`) and audited day by day
//! (`sunledger_sim::keypad_audit`). The run itself is `sunledger_sim::run`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use sunledger_billing::store::{PLATFORM_OWNER, Store, StoreError};
use sunledger_sim::audit::audit_over_api;
use sunledger_sim::credentials::{format_credentials, parse_credentials};
use sunledger_sim::enrol::{EnrolOptions, Enrolment, enrol};
use sunledger_sim::keypad::KeypadFleet;
use sunledger_sim::keypad_audit::audit_keypads;
use sunledger_sim::keypad_unit::KeypadSpec;
use sunledger_sim::operator::Operator;
use sunledger_sim::run::{Progress, RunLimits, RunOutcome, RunSummary, run};
use sunledger_sim::{DeviceCredentials, SimConfig};

/// Devices registered with `--database` or `--grpc` when `--devices` is not given.
const REGISTER_DEVICES_DEFAULT: usize = 100;
/// Time between two progress lines.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// Options of `sunledger sim`.
#[derive(clap::Args, Debug)]
pub struct SimArgs {
    /// MQTT broker as host:port [default: 127.0.0.1:1883, or the --config file's].
    #[arg(long)]
    broker: Option<String>,
    /// Credentials file, one `serial,device_key[,command_key]` a line (`#` comments): read
    /// to run, written with --database and --grpc.
    #[arg(long, default_value = "sim-credentials.txt")]
    credentials: PathBuf,
    /// A STOPPED server's redb file: registers (or re-keys) units SIM-000001.. and writes
    /// the credentials file instead of running.
    #[arg(long, conflicts_with = "grpc")]
    database: Option<PathBuf>,
    /// A RUNNING server's operators' API (e.g. http://127.0.0.1:50051): enrols units
    /// SIM-000001.. through it (plan, unit, customer, registration, opening credit), merges
    /// their device keys into the credentials file, runs them, and audits the platform after.
    #[arg(long)]
    grpc: Option<String>,
    /// An Admin's API token for --grpc.
    #[arg(long, env = "SUNLEDGER_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Price of a kWh on the "sim usage" plan --grpc creates (an existing plan of that name
    /// must have this price).
    #[arg(long, default_value = "1.50")]
    price_per_kwh: String,
    /// Credit recorded once per unit by --grpc (reference `<serial>-opening`); 0 records none.
    #[arg(long, default_value = "10")]
    opening_credit: String,
    /// Keypad units to run beside the connected ones, registered fresh through --grpc
    /// (SIMK-<run>-000001..), paid for at random and audited: every day paid for must arrive.
    #[arg(long, default_value_t = 0, requires = "grpc")]
    keypad_units: usize,
    /// Price of a week on the "sim keypad weekly" plan keypad units buy days on (an existing
    /// plan of that name must have this price); amounts are paid in cents.
    #[arg(long, default_value = "100")]
    keypad_price_per_week: String,
    /// Mean milliseconds between two payments for one keypad unit.
    #[arg(long)]
    keypad_payment_interval_ms: Option<u64>,
    /// Audits the platform through --grpc after the run: energy per device against the
    /// simulator's truth, and every ledger against its balance [default: true with --grpc].
    #[arg(long, num_args = 0..=1, default_missing_value = "true", requires = "grpc")]
    audit: Option<bool>,
    /// Longest wait, seconds, for the platform to catch up with the last readings before the
    /// audit's mismatches count.
    #[arg(long, default_value_t = 15)]
    audit_settle_s: u64,
    /// Devices to register, or to run from the credentials file [default: all in the file;
    /// 100 with --database or --grpc].
    #[arg(long)]
    devices: Option<usize>,
    /// Seconds to run before a clean shutdown (Ctrl-C stops earlier).
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Milliseconds between two reports of one device.
    #[arg(long)]
    report_interval_ms: Option<u64>,
    /// Simulated seconds per real second.
    #[arg(long)]
    time_scale: Option<f64>,
    /// Seed of every random choice; the same seed replays a run.
    #[arg(long)]
    seed: Option<u64>,
    /// Chance per report that a device drops off the network for a while.
    #[arg(long)]
    offline_rate: Option<f64>,
    /// Chance per report that a device reboots (counters restart).
    #[arg(long)]
    reset_rate: Option<f64>,
    /// Chance per report that a reading is sent twice.
    #[arg(long)]
    duplicate_rate: Option<f64>,
    /// Chance per report that garbage is also sent on the telemetry topic.
    #[arg(long)]
    malformed_rate: Option<f64>,
    /// Chance per report that a tampered copy (one Wh more, far ahead in sequence, the
    /// genuine MAC) is also sent; the platform must refuse it as `bad_mac`.
    #[arg(long)]
    tampered_rate: Option<f64>,
    /// SimConfig TOML file; flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Prints the final summary as JSON on stdout instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs the subcommand on its own runtime.
pub fn execute(args: SimArgs) -> anyhow::Result<()> {
    if let Some(database) = &args.database {
        let devices = args.devices.unwrap_or(REGISTER_DEVICES_DEFAULT);
        let credentials = register_units(database, devices)?;
        write_credentials(&args.credentials, &credentials)?;
        println!(
            "registered {devices} units SIM-000001.. in {}; credentials in {}\nstart the server, then run: sunledger sim --credentials {}",
            database.display(),
            args.credentials.display(),
            args.credentials.display()
        );
        return Ok(());
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let summary = runtime.block_on(simulate(&args, async {
        let _ = tokio::signal::ctrl_c().await;
    }))?;
    print_summary(&summary, args.json)
}

/// Reads the credentials and configuration and runs the fleet until the duration passes or
/// `stop` completes, printing progress on stderr.
pub async fn simulate(
    args: &SimArgs,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<RunSummary> {
    let config = args.sim_config()?;
    let (credentials, platform) = match &args.grpc {
        Some(endpoint) => {
            let (operator, enrolment) = enrol_fleet(args, endpoint, config.seed).await?;
            (enrolment.credentials(), Some((operator, enrolment)))
        }
        None => {
            let mut credentials = read_credentials(&args.credentials)?;
            credentials.truncate(args.devices.unwrap_or(credentials.len()));
            (credentials, None)
        }
    };
    let keypads = platform.as_ref().and_then(|(operator, enrolment)| {
        let keypads = enrolment.keypads.as_ref()?;
        Some(KeypadFleet::start(
            &config.keypad,
            operator,
            keypads.rate,
            &keypads.units,
        ))
    });
    eprintln!(
        "sim: {} devices against {}:{} and {} keypad units for {} s (seed {})",
        credentials.len(),
        config.broker_host,
        config.broker_port,
        args.keypad_units,
        args.duration,
        config.seed
    );
    let limits = RunLimits {
        duration: Duration::from_secs(args.duration),
        progress_interval: PROGRESS_INTERVAL,
    };
    let mut status = StatusLine::new();
    let RunOutcome {
        mut summary,
        truths,
        keypads,
    } = run(config, credentials, keypads, limits, stop, |p| {
        status.show(p)
    })
    .await?;
    status.finish();
    if let Some(((operator, enrolment), run)) = platform.as_ref().zip(keypads) {
        let rate = enrolment.keypads.as_ref().expect("keypad units ran").rate;
        summary.keypad = Some(audit_keypads(operator, rate, &run).await?);
    }
    if let Some((operator, enrolment)) = platform.filter(|_| args.audit != Some(false)) {
        let settle_max = Duration::from_secs(args.audit_settle_s);
        let audit = audit_over_api(&operator, &enrolment.units, &truths, settle_max).await?;
        summary.audit = Some(audit);
    }
    Ok(summary)
}

/// Enrols the fleet through the operators' API at `endpoint`, taking the device keys of units
/// an earlier run registered from the credentials file, and writes every key back to it.
/// Keypad units get keys from `seed`.
async fn enrol_fleet(
    args: &SimArgs,
    endpoint: &str,
    seed: u64,
) -> anyhow::Result<(Operator, Enrolment)> {
    let token = args
        .token
        .as_deref()
        .context("--grpc needs an Admin's API token: --token or SUNLEDGER_TOKEN")?;
    let operator = Operator::connect(endpoint, token).await?;
    let known = match args.credentials.exists() {
        true => read_credentials(&args.credentials)?,
        false => Vec::new(),
    };
    let options = EnrolOptions {
        devices: args.devices.unwrap_or(REGISTER_DEVICES_DEFAULT),
        price_per_kwh: args.price_per_kwh.clone(),
        opening_credit: args.opening_credit.clone(),
        keypads: KeypadSpec::fleet(seed, args.keypad_units),
        keypad_price_per_week: args.keypad_price_per_week.clone(),
    };
    let enrolment = enrol(&operator, &options, &known).await?;
    let skipped = enrolment.already_registered().count();
    if skipped > 0 {
        eprintln!(
            "sim: {skipped} units already existed in the organisation: their registration was \
             skipped and their device keys must come from {}",
            args.credentials.display()
        );
    }
    write_credentials(
        &args.credentials,
        &merge_credentials(known, enrolment.credentials()),
    )?;
    enrolment.require_all_device_keys()?;
    eprintln!(
        "sim: {} units enrolled on plan {} ({} newly registered); credentials in {}",
        enrolment.units.len(),
        enrolment.plan_id,
        enrolment.units.len() - skipped,
        args.credentials.display()
    );
    if let Some(keypads) = &enrolment.keypads {
        eprintln!(
            "sim: {} keypad units registered on plan {}",
            keypads.units.len(),
            keypads.plan_id
        );
    }
    Ok((operator, enrolment))
}

/// `known` with every device of `fresh` replacing its entry or added, so a smaller run keeps
/// the device keys of units it did not enrol.
fn merge_credentials(
    mut known: Vec<DeviceCredentials>,
    fresh: Vec<DeviceCredentials>,
) -> Vec<DeviceCredentials> {
    for device in fresh {
        match known.iter_mut().find(|k| k.serial == device.serial) {
            Some(entry) => *entry = device,
            None => known.push(device),
        }
    }
    known
}

/// The credentials file's devices.
fn read_credentials(path: &Path) -> anyhow::Result<Vec<DeviceCredentials>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_credentials(&text).with_context(|| format!("in {}", path.display()))
}

impl SimArgs {
    /// The configuration file (or defaults) with every given flag applied, validated.
    fn sim_config(&self) -> anyhow::Result<SimConfig> {
        let mut config = match &self.config {
            Some(path) => SimConfig::from_toml_str(
                &std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?,
            )
            .with_context(|| format!("parsing {}", path.display()))?,
            None => SimConfig::default(),
        };
        if let Some(broker) = &self.broker {
            let (host, port) = broker
                .rsplit_once(':')
                .with_context(|| format!("--broker {broker:?} is not host:port"))?;
            config.broker_host = host.trim_matches(['[', ']']).to_owned();
            config.broker_port = port
                .parse()
                .with_context(|| format!("--broker {broker:?}: bad port"))?;
        }
        let set = |target: &mut _, flag: Option<_>| {
            if let Some(value) = flag {
                *target = value;
            }
        };
        set(&mut config.report_interval_ms, self.report_interval_ms);
        set(&mut config.seed, self.seed);
        set(
            &mut config.keypad.payment_interval_ms,
            self.keypad_payment_interval_ms,
        );
        let faults = &mut config.faults;
        for (target, flag) in [
            (&mut faults.offline_per_report, self.offline_rate),
            (&mut faults.reset_per_report, self.reset_rate),
            (&mut faults.duplicate_per_report, self.duplicate_rate),
            (&mut faults.malformed_per_report, self.malformed_rate),
            (&mut faults.tampered_per_report, self.tampered_rate),
            (&mut config.time_scale, self.time_scale),
        ] {
            if let Some(value) = flag {
                *target = value;
            }
        }
        config.validate()?;
        Ok(config)
    }
}

/// Registers `devices` units SIM-000001.. in a stopped server's database, re-keying those
/// that exist (the platform shows a device key only once, so an old one cannot be had again).
fn register_units(database: &Path, devices: usize) -> anyhow::Result<Vec<DeviceCredentials>> {
    let store = Store::open(database)
        .with_context(|| format!("opening {} (is the server running?)", database.display()))?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let command_key = store.command_verifying_key(PLATFORM_OWNER)?;
    (1..=devices)
        .map(|n| {
            let serial = format!("SIM-{n:06}");
            let key = match store.register_unit(&serial, now_ms, false) {
                Ok((_, key)) => key,
                Err(StoreError::UnitExists(_)) => store.rotate_device_key(&serial, now_ms, 0)?.1,
                Err(error) => return Err(error.into()),
            };
            Ok(DeviceCredentials {
                serial,
                device_key: *key.bytes(),
                command_key: Some(command_key),
            })
        })
        .collect()
}

fn write_credentials(path: &Path, credentials: &[DeviceCredentials]) -> anyhow::Result<()> {
    std::fs::write(path, format_credentials(credentials))
        .with_context(|| format!("writing {}", path.display()))
}

fn print_summary(summary: &RunSummary, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, summary)?;
        writeln!(out)?;
    } else {
        write!(out, "{}", summary.table())?;
    }
    Ok(())
}

/// The live progress line on stderr: rewritten in place on a terminal, one line per report
/// otherwise (logs and pipes keep every line).
struct StatusLine {
    terminal: bool,
    shown: bool,
}

impl StatusLine {
    fn new() -> StatusLine {
        StatusLine {
            terminal: std::io::stderr().is_terminal(),
            shown: false,
        }
    }

    fn show(&mut self, progress: &Progress) {
        let mut err = std::io::stderr().lock();
        // A lost progress line is not worth failing the run for.
        let _ = match self.terminal {
            true => write!(err, "\r\x1b[2K{}", progress.line()).and_then(|()| err.flush()),
            false => writeln!(err, "{}", progress.line()),
        };
        self.shown = true;
    }

    fn finish(&self) {
        if self.terminal && self.shown {
            eprintln!();
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use sunledger::{Server, Settings};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        sim: SimArgs,
    }

    fn args(extra: &[&str]) -> SimArgs {
        let argv = ["sim"].iter().chain(extra);
        Cli::try_parse_from(argv).expect("valid flags").sim
    }

    fn free_addr() -> std::net::SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    }

    #[test]
    fn flags_override_the_config_file_and_bad_values_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sim.toml");
        std::fs::write(&file, "seed = 9\nreport_interval_ms = 50\n").unwrap();
        let path = file.to_str().unwrap();
        let config = args(&["--config", path, "--broker", "10.0.0.1:1999", "--seed", "4"])
            .sim_config()
            .unwrap();
        assert_eq!((config.seed, config.report_interval_ms), (4, 50));
        assert_eq!(
            (config.broker_host.as_str(), config.broker_port),
            ("10.0.0.1", 1999)
        );
        assert!(args(&["--reset-rate", "2"]).sim_config().is_err());
        assert!(args(&["--broker", "nohost"]).sim_config().is_err());
    }

    #[test]
    fn database_mode_registers_then_rekeys_and_writes_a_parsable_file() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("s.redb");
        let first = register_units(&database, 3).unwrap();
        let again = register_units(&database, 3).unwrap();
        assert_eq!(first.len(), 3);
        assert_eq!(first[2].serial, "SIM-000003");
        assert_ne!(
            first[0].device_key, again[0].device_key,
            "existing units are re-keyed"
        );
        let file = dir.path().join("creds.txt");
        write_credentials(&file, &again).unwrap();
        let parsed = parse_credentials(&std::fs::read_to_string(file).unwrap()).unwrap();
        assert_eq!(parsed, again);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_short_run_against_the_real_server_reports_and_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let (mqtt, grpc, metrics) = (free_addr(), free_addr(), free_addr());
        let settings = Settings::for_tests(dir.path().join("db.redb"), mqtt, grpc, metrics);
        let server = Server::start(settings).await.unwrap();
        let credentials: Vec<_> = (1..=3)
            .map(|n| {
                let serial = format!("SIM-{n:06}");
                let device_key = *server.register_unit(&serial, false).unwrap().bytes();
                let command_key = server.store().command_verifying_key(PLATFORM_OWNER).ok();
                DeviceCredentials {
                    serial,
                    device_key,
                    command_key,
                }
            })
            .collect();
        let file = dir.path().join("creds.txt");
        write_credentials(&file, &credentials).unwrap();
        let broker = mqtt.to_string();
        let args = args(&[
            "--broker",
            &broker,
            "--credentials",
            file.to_str().unwrap(),
            "--duration",
            "3",
            "--report-interval-ms",
            "200",
        ]);
        let summary = simulate(&args, std::future::pending()).await.unwrap();
        assert_eq!(summary.devices, 3);
        assert!(summary.totals.telemetry_acked >= 3 * 5, "{summary:?}");
        assert_eq!(
            summary.publish_ack_latency_ms.p50 > 0.0,
            summary.totals.publish_ack_latency.count > 0
        );
        assert_eq!(summary.totals.auth_failures, 0);
        for device in &credentials {
            let state = server.store().unit_state(&device.serial).unwrap();
            assert!(state.is_some_and(|s| s.meter.is_some_and(|m| m.seq >= 5)));
        }
        server.shutdown().await;
    }

    /// Proves the `--grpc` path end to end: enrolment through the API alone (plan, units with
    /// Luhn-valid IMEIs, registrations, opening credits), a run whose tiny credit at a high
    /// price switches devices OFF, an audit that finds nothing, and the OFF latency figures.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_fleet_enrolled_over_grpc_runs_switches_off_and_passes_the_audit() {
        let dir = tempfile::tempdir().unwrap();
        let platform = TestPlatform::start(dir.path()).await;
        let file = dir.path().join("creds.txt");
        let flags = [
            &platform.connection_flags(&file)[..],
            &[
                "--devices",
                "4",
                "--price-per-kwh",
                "1000",
                "--opening-credit",
                "0.01",
                "--duration",
                "4",
                "--report-interval-ms",
                "200",
                "--time-scale",
                "3600",
                "--tampered-rate",
                "0.3",
            ],
        ]
        .concat();
        let summary = simulate(&args(&flags), std::future::pending())
            .await
            .unwrap();
        assert_eq!(summary.devices, 4);
        let audit = summary
            .audit
            .as_ref()
            .expect("audited by default with --grpc");
        assert_eq!((audit.checked, audit.ledgers_checked), (4, 4), "{audit:?}");
        assert!(
            audit.mismatches.is_empty(),
            "seed {}: {audit:?}",
            summary.seed
        );
        assert!(audit.stored_wh > 0, "{audit:?}");
        let latency = summary.off_command_latency;
        assert!(latency.commands >= 1, "nothing switched off: {summary:?}");
        assert!(latency.p50_ms.is_some() && latency.p99_ms >= latency.p50_ms);
        assert_eq!(latency.resolution_ms, 1_000);
        assert!(summary.table().contains("resolution 1 s"));
        // The devices checked every command's signature with the organisation's key.
        assert_eq!(summary.totals.commands_forged, 0, "{summary:?}");
        // The platform billed none of the tampered copies (else the audit would not pass).
        assert!(summary.totals.tampered_sent > 0, "{summary:?}");
        let written = parse_credentials(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(written.len(), 4);
        assert!(written.iter().all(|unit| unit.command_key.is_some()));

        // A second enrolment registers nothing and takes the device keys from the file.
        let again = simulate(&args(&flags), std::future::pending())
            .await
            .unwrap();
        assert_eq!(again.totals.auth_failures, 0);
        assert_eq!(
            again.off_command_latency.commands, 0,
            "a retained OFF decided before the run is no latency sample"
        );
        assert!(again.audit.is_some_and(|a| a.mismatches.is_empty()));
        assert!(again.keypad.is_none(), "no keypad units asked for");
        platform.server.shutdown().await;
    }

    /// Proves keypad units end to end over gRPC: registered with random keys beside a
    /// connected unit, paid for at random (small payments, bulk ones, repeated references)
    /// for two seconds, every token typed into the unit's firmware, and an audit that finds
    /// every day paid for accepted by the units and credited by the platform.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keypad_units_receive_every_day_paid_for_and_refuse_reused_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let platform = TestPlatform::start(dir.path()).await;
        let file = dir.path().join("creds.txt");
        let config = dir.path().join("sim.toml");
        std::fs::write(
            &config,
            "[keypad]\nbulk_per_payment = 0.05\nrepeat_per_payment = 0.2\n",
        )
        .unwrap();
        let flags = [
            &platform.connection_flags(&file)[..],
            &[
                "--config",
                config.to_str().unwrap(),
                "--devices",
                "1",
                "--keypad-units",
                "3",
                "--keypad-payment-interval-ms",
                "20",
                "--duration",
                "2",
            ],
        ]
        .concat();
        let summary = simulate(&args(&flags), std::future::pending())
            .await
            .unwrap();
        let keypad = summary.keypad.as_ref().expect("keypad units ran");
        let seed = summary.seed;
        assert!(keypad.mismatches.is_empty(), "seed {seed}: {keypad:#?}");
        assert_eq!(keypad.units, 3);
        assert!(keypad.payments >= 10, "{keypad:?}");
        assert!(keypad.days_owed > 0, "{keypad:?}");
        assert_eq!(
            (keypad.days_accepted, keypad.days_credited),
            (keypad.days_owed, keypad.days_owed)
        );
        assert!(
            keypad.tokens_accepted > 0 && keypad.reentries_refused > 0,
            "{keypad:?}"
        );
        assert!(
            summary
                .audit
                .as_ref()
                .is_some_and(|audit| audit.mismatches.is_empty())
        );
        assert!(
            summary
                .table()
                .contains("keypad days owed / accepted / credited")
        );
        platform.server.shutdown().await;
    }

    /// A running server with one organisation, and what `sunledger sim --grpc` needs of it.
    struct TestPlatform {
        server: Server,
        /// The Admin's API token.
        token: String,
        /// `http://` address of the operators' API.
        endpoint: String,
        /// `host:port` of the MQTT broker.
        broker: String,
    }

    impl TestPlatform {
        /// The flags that point a run at this platform with the credentials `file`.
        fn connection_flags<'a>(&'a self, file: &'a Path) -> Vec<&'a str> {
            vec![
                "--grpc",
                &self.endpoint,
                "--token",
                &self.token,
                "--broker",
                &self.broker,
                "--credentials",
                file.to_str().unwrap(),
            ]
        }

        async fn start(dir: &Path) -> TestPlatform {
            let (mqtt, grpc, metrics) = (free_addr(), free_addr(), free_addr());
            let settings = Settings::for_tests(dir.join("db.redb"), mqtt, grpc, metrics);
            let server = Server::start(settings).await.unwrap();
            let new = sunledger_control_api::NewOrganisation {
                name: "Sim Org".into(),
                country: "KE".into(),
                currency: "KES".into(),
                time_zone: "Africa/Nairobi".into(),
                accept_terms: true,
                admin_name: "Sim Admin".into(),
                admin_email: "admin@example.com".into(),
            };
            let founded = tokio::task::block_in_place(|| {
                server.platform().directory.create_organisation(&new)
            })
            .unwrap();
            TestPlatform {
                server,
                token: founded.token.secret.expose().to_owned(),
                endpoint: format!("http://{grpc}"),
                broker: mqtt.to_string(),
            }
        }
    }
}
