//! `sunledger`: the command line. Wiring only; everything else lives in the library crates.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sunledger::{Server, Settings};

mod sim_command;

/// Pay-as-you-go solar platform: MQTT broker, billing engine and gRPC API in one process.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Starts broker, ingest, billing, gRPC API and metrics.
    Serve(ServeArgs),
    /// Manages control units in a stopped server's database.
    Unit {
        /// The redb file.
        #[arg(
            long,
            env = "SUNLEDGER_DATABASE",
            default_value = "data/sunledger.redb"
        )]
        database: PathBuf,
        #[command(subcommand)]
        action: UnitAction,
    },
    /// Administers organisations in a stopped server's database.
    Admin {
        /// The redb file.
        #[arg(
            long,
            env = "SUNLEDGER_DATABASE",
            default_value = "data/sunledger.redb",
            global = true
        )]
        database: PathBuf,
        #[command(subcommand)]
        action: AdminAction,
    },
    /// Simulates devices against a running broker, or registers simulator units in a stopped
    /// server's database (`--database`) and writes their credentials file.
    // Boxed: its many options would otherwise set the size of every command.
    Sim(Box<sim_command::SimArgs>),
}

#[derive(Subcommand)]
enum AdminAction {
    /// Creates an organisation with its first Admin and prints the Admin's API token (shown
    /// only once).
    CreateOrg(CreateOrgArgs),
}

#[derive(clap::Args)]
struct CreateOrgArgs {
    /// The organisation's display name.
    #[arg(long)]
    name: String,
    /// ISO 3166-1 alpha-2 country code, e.g. KE.
    #[arg(long)]
    country: String,
    /// ISO 4217 currency code, e.g. KES.
    #[arg(long)]
    currency: String,
    /// IANA time zone, e.g. Africa/Nairobi.
    #[arg(long)]
    time_zone: String,
    /// The Admin accepts the platform's terms and conditions (required).
    #[arg(long)]
    accept_terms: bool,
    /// The first Admin's name.
    #[arg(long)]
    admin_name: String,
    /// The first Admin's email.
    #[arg(long)]
    admin_email: String,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML settings file; flags and environment variables override it.
    #[arg(long, env = "SUNLEDGER_CONFIG")]
    config: Option<PathBuf>,
    /// The redb file holding all durable state [default: data/sunledger.redb].
    #[arg(long, env = "SUNLEDGER_DATABASE")]
    database: Option<PathBuf>,
    /// MQTT listen address for devices [default: 0.0.0.0:1883].
    #[arg(long, env = "SUNLEDGER_MQTT_LISTEN")]
    mqtt_listen: Option<SocketAddr>,
    /// gRPC listen address [default: 0.0.0.0:50051].
    #[arg(long, env = "SUNLEDGER_GRPC_LISTEN")]
    grpc_listen: Option<SocketAddr>,
    /// Prometheus listen address, path /metrics [default: 0.0.0.0:9464].
    #[arg(long, env = "SUNLEDGER_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// Billing partitions (threads) [default: 1].
    #[arg(long, env = "SUNLEDGER_PARTITIONS")]
    partitions: Option<usize>,
    /// Seeds the "Sunledger Demo" organisation with installed demo units (once per database),
    /// prints a fresh Admin API token and runs a simulated fleet in the same process.
    #[arg(long)]
    demo: bool,
    /// Devices in the demo fleet.
    #[arg(long, default_value_t = 200, requires = "demo")]
    demo_devices: usize,
}

#[derive(Subcommand)]
enum UnitAction {
    /// Registers a unit and prints its device key and MQTT password (shown only once).
    Register {
        /// The unit's serial (client id and topic level: [A-Za-z0-9_.-], at most 64 bytes).
        serial: String,
        /// Accept the unit's telemetry and acks without a MAC (bench rigs, messages typed by
        /// hand with mosquitto_pub); never for a unit in a customer's home.
        #[arg(long)]
        development_mode: bool,
    },
    /// Takes a unit out of service.
    Decommission {
        /// The unit's serial.
        serial: String,
    },
}

impl ServeArgs {
    fn settings(&self) -> anyhow::Result<Settings> {
        let mut settings = match &self.config {
            Some(path) => Settings::from_file(path)?,
            None => Settings::default(),
        };
        if let Some(database) = &self.database {
            settings.database_path = database.clone();
        }
        if let Some(listen) = self.mqtt_listen {
            settings.broker.listen = listen;
        }
        if let Some(listen) = self.grpc_listen {
            settings.grpc_listen = listen;
        }
        if let Some(listen) = self.metrics_listen {
            settings.metrics_listen = listen;
        }
        if let Some(partitions) = self.partitions {
            settings.engine.partitions = partitions;
        }
        Ok(settings)
    }
}

fn main() -> anyhow::Result<()> {
    // Logs go to stderr, so stdout carries only what a command prints for its caller
    // (tokens, `sim --json`).
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rumqttd=off".into()),
        )
        .init();
    match Cli::parse().command {
        Command::Serve(args) => serve(args),
        Command::Unit { database, action } => unit(&database, action),
        Command::Admin { database, action } => admin(&database, action),
        Command::Sim(args) => sim_command::execute(*args),
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let settings = args.settings()?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let server = Server::start(settings).await?;
        let demo = match args.demo {
            true => Some(sunledger::demo::Demo::start(&server, args.demo_devices).await?),
            false => None,
        };
        shutdown_signal().await;
        tracing::info!("shutting down");
        if let Some(demo) = demo {
            demo.stop().await;
        }
        server.shutdown().await;
        Ok(())
    })
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::warn!(%error, "SIGTERM handler unavailable; only Ctrl-C stops the server");
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

fn unit(database: &std::path::Path, action: UnitAction) -> anyhow::Result<()> {
    let store = sunledger_billing::store::Store::open(database)
        .with_context(|| format!("opening {} (is the server running?)", database.display()))?;
    match action {
        UnitAction::Register {
            serial,
            development_mode,
        } => {
            let now_ms = chrono::Utc::now().timestamp_millis();
            let (_, key) = store.register_unit(&serial, now_ms, development_mode)?;
            let mode = match development_mode {
                true => " in development mode (messages accepted without a MAC)",
                false => "",
            };
            println!(
                "registered {serial}{mode}\ndevice key (shown once): {}\nMQTT password (derived from the key): {}",
                key.hex(),
                key.mqtt_password()
            );
        }
        UnitAction::Decommission { serial } => {
            store.set_unit_status(
                &serial,
                sunledger_billing::units::UnitStatus::Decommissioned,
            )?;
            println!("decommissioned {serial}");
        }
    }
    Ok(())
}

fn admin(database: &std::path::Path, action: AdminAction) -> anyhow::Result<()> {
    let store = sunledger_billing::store::Store::open(database)
        .with_context(|| format!("opening {} (is the server running?)", database.display()))?;
    let directory = sunledger_control_api::Directory::open(
        std::sync::Arc::new(store),
        std::sync::Arc::new(sunledger_billing::clock::SystemClock),
    )?;
    match action {
        AdminAction::CreateOrg(args) => {
            let founded =
                directory.create_organisation(&sunledger_control_api::NewOrganisation {
                    name: args.name,
                    country: args.country,
                    currency: args.currency,
                    time_zone: args.time_zone,
                    accept_terms: args.accept_terms,
                    admin_name: args.admin_name,
                    admin_email: args.admin_email,
                })?;
            println!(
                "created organisation {} ({})\nAdmin {} <{}>: member {}\nAPI token (shown once): {}",
                founded.organisation.name,
                founded.organisation.id,
                founded.admin.name,
                founded.admin.email,
                founded.admin.id,
                founded.token.secret.expose()
            );
        }
    }
    Ok(())
}
