//! Starting and stopping everything in one process.

use std::sync::Arc;

use anyhow::Context;
use sunledger_billing::clock::SystemClock;
use sunledger_billing::commands::BrokerCommandSink;
use sunledger_billing::store::{DiskFault, Store, StoreError, StoreOptions};
use sunledger_billing::units::{DeviceKey, UnitStatus};
use sunledger_billing::worker::Engine;
use sunledger_broker::EmbeddedBroker;
use sunledger_control_api::Platform;
use sunledger_control_api::notify::{LoggingSms, SmsSender};
use sunledger_ingest::Ingest;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::settings::Settings;

/// What a server can be given beside its settings: parts an operator (or a test) plugs in.
pub struct Hooks {
    /// The SMS gateway keypad tokens and reminders go out through (default: the log).
    pub sms: Arc<dyn SmsSender>,
    /// A switch that makes the disk behave as full (tests).
    pub disk_fault: DiskFault,
}

impl Default for Hooks {
    fn default() -> Self {
        Hooks {
            sms: Arc::new(LoggingSms),
            disk_fault: DiskFault::default(),
        }
    }
}

/// A running Sunledger: broker, ingest, billing engine, gRPC API and metrics endpoint.
pub struct Server {
    settings: Settings,
    /// Store, billing engine, broker credential check and API directory: the gRPC services
    /// get a clone, and in-process callers (the demo) act through the same operations.
    platform: Platform,
    broker: EmbeddedBroker,
    ingest: Option<Ingest>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Server {
    /// Opens the database and starts every part; returns once all ports accept connections.
    /// Must be called inside a multi-threaded tokio runtime. Texts go to the log.
    pub async fn start(settings: Settings) -> anyhow::Result<Server> {
        Server::start_with(settings, Hooks::default()).await
    }

    /// [`Server::start`] with `hooks` plugged in (an SMS gateway, a disk fault for tests).
    pub async fn start_with(settings: Settings, hooks: Hooks) -> anyhow::Result<Server> {
        settings.validate()?;
        let grpc_tls = settings
            .grpc_tls
            .as_ref()
            .map(|tls| tls.load())
            .transpose()?;
        let metrics = crate::metrics_http::recorder()?;
        let options = StoreOptions {
            master_key: None,
            reserve_bytes: settings.storage_reserve_bytes,
            fault: hooks.disk_fault,
            cache_bytes: Some(settings.storage_cache_bytes),
        };
        let store = Arc::new(
            Store::open_with(&settings.database_path, options)
                .with_context(|| format!("opening {}", settings.database_path.display()))?,
        );
        let directory = Arc::new(store.unit_directory()?);
        let broker = EmbeddedBroker::start(&settings.broker, directory.clone())?;
        let mut sinks = Vec::new();
        for index in 0..settings.engine.partitions {
            sinks.push(BrokerCommandSink::new(
                broker.link(&format!("sunledger-commands-{index}"))?,
            ));
        }
        let mut sinks = sinks.into_iter();
        let engine = Arc::new(Engine::start(
            store.clone(),
            directory.clone(),
            Arc::new(SystemClock),
            &settings.engine,
            |_| Box::new(sinks.next().expect("one sink per partition")),
        )?);
        let ingest = Ingest::start(&broker, directory.clone(), engine.clone())?;

        let platform = Platform {
            directory: sunledger_control_api::Directory::open(
                store.clone(),
                Arc::new(SystemClock),
            )?,
            engine: engine.clone(),
            units: directory.clone(),
            store: store.clone(),
            sms: hooks.sms,
        };
        let (stop, stopped) = watch::channel(false);
        let grpc = TcpListener::bind(settings.grpc_listen)
            .await
            .with_context(|| format!("binding gRPC on {}", settings.grpc_listen))?;
        let metrics_listener = TcpListener::bind(settings.metrics_listen)
            .await
            .with_context(|| format!("binding metrics on {}", settings.metrics_listen))?;
        let tasks = vec![
            tokio::spawn(log_exit(
                "gRPC API",
                sunledger_control_api::serve(
                    grpc,
                    platform.clone(),
                    grpc_tls,
                    wait_for(stopped.clone()),
                ),
            )),
            tokio::spawn(log_exit(
                "metrics endpoint",
                crate::metrics_http::serve(metrics_listener, metrics, wait_for(stopped.clone())),
            )),
            tokio::spawn(sunledger_control_api::reminders::run(
                platform.clone(),
                settings.reminders.clone(),
                wait_for(stopped),
            )),
        ];
        metrics::gauge!("sunledger_units_registered").set(directory.len() as f64);
        tracing::info!(
            mqtt = %settings.broker.listen, mqtt_tls = ?settings.broker.tls.as_ref().map(|tls| tls.listen),
            grpc = %settings.grpc_listen, grpc_tls = settings.grpc_tls.is_some(), metrics = %settings.metrics_listen,
            database = %settings.database_path.display(), units = directory.len(), "sunledger serving"
        );
        Ok(Server {
            settings,
            platform,
            broker,
            ingest: Some(ingest),
            stop,
            tasks,
        })
    }

    /// Registers a new control unit outside any organisation and returns its device key
    /// (shown only this once). A `development_mode` unit's messages are accepted without a MAC.
    pub fn register_unit(
        &self,
        serial: &str,
        development_mode: bool,
    ) -> Result<DeviceKey, StoreError> {
        let (record, key) = self.platform.store.register_unit(
            serial,
            chrono::Utc::now().timestamp_millis(),
            development_mode,
        )?;
        self.platform.units.upsert(&record);
        metrics::gauge!("sunledger_units_registered").set(self.platform.units.len() as f64);
        Ok(key)
    }

    /// Issues a new device key for a unit; the old one keeps working for `grace_ms`.
    pub fn rotate_device_key(&self, serial: &str, grace_ms: i64) -> Result<DeviceKey, StoreError> {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let (record, key) = self
            .platform
            .store
            .rotate_device_key(serial, now_ms, grace_ms)?;
        self.platform.units.upsert(&record);
        Ok(key)
    }

    /// Takes a unit out of service: its CONNECTs and messages are refused from now on.
    pub fn decommission_unit(&self, serial: &str) -> Result<(), StoreError> {
        let record = self
            .platform
            .store
            .set_unit_status(serial, UnitStatus::Decommissioned)?;
        self.platform.units.upsert(&record);
        Ok(())
    }

    /// The billing engine.
    pub fn engine(&self) -> &Engine {
        &self.platform.engine
    }

    /// A shared handle on the billing engine, for tasks that outlive a borrow of the server.
    pub fn engine_handle(&self) -> Arc<Engine> {
        self.platform.engine.clone()
    }

    /// The durable store.
    pub fn store(&self) -> &Store {
        &self.platform.store
    }

    /// A shared handle to the durable store, for tasks that outlive a borrow.
    pub fn store_handle(&self) -> Arc<Store> {
        self.platform.store.clone()
    }

    /// What the gRPC services act on (directory, engine, credential check, store), so an
    /// in-process caller such as the demo goes through the same operations as the API.
    pub fn platform(&self) -> &Platform {
        &self.platform
    }

    /// The embedded broker.
    pub fn broker(&self) -> &EmbeddedBroker {
        &self.broker
    }

    /// The settings the server runs with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Stops taking messages, applies and commits everything queued, and stops the API.
    pub async fn shutdown(mut self) {
        if let Some(ingest) = self.ingest.take() {
            ingest.shutdown();
        }
        let engine = self.platform.engine.clone();
        if tokio::task::spawn_blocking(move || engine.shutdown())
            .await
            .is_err()
        {
            tracing::error!("billing engine shutdown panicked");
        }
        let _ = self.stop.send(true);
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        tracing::info!("sunledger stopped");
    }
}

async fn wait_for(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}

async fn log_exit<E: std::fmt::Display>(
    what: &'static str,
    task: impl std::future::Future<Output = Result<(), E>>,
) {
    if let Err(error) = task.await {
        tracing::error!(%error, "{what} stopped");
    }
}
