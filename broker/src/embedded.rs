//! Starting rumqttd inside the process and linking to it.
//!
//! rumqttd's `Broker::start` blocks and only serves its stock codec, so this module assembles
//! the same parts itself: the router on its own thread, and the device TCP server on another
//! thread with a single-threaded runtime and the [`DeviceAcl`] codec. With `[broker.tls]`, a
//! third thread runs the [`crate::tls_front`] that terminates TLS for devices and relays to
//! the device server. The platform talks to the router through in-process links, never
//! through a loopback TCP client.

use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttd::local::{LinkBuilder, LinkError, LinkRx, LinkTx};
use rumqttd::{Router, Server};

use crate::acl::DeviceAcl;
use crate::auth::{self, CredentialCheck};
use crate::config::{BrokerConfig, ConfigError};
use crate::tap::TapSlot;
use crate::tls::TlsFileError;
use crate::tls_front::{TLS_THREAD, TlsFront};

/// How long [`EmbeddedBroker::start`] waits for the device listener to accept connections.
const LISTEN_WAIT_MAX: Duration = Duration::from_secs(5);
/// The name of the threads serving device connections, as profilers and `/proc` show it.
const CONNECTION_THREAD: &str = "mqtt-devices";

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A setting is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The TLS listener's certificate or key file cannot be used.
    #[error(transparent)]
    Tls(#[from] TlsFileError),
    /// The TLS listener's address could not be bound (in use?).
    #[error("binding the MQTT TLS listener on {0}: {1}")]
    TlsBind(SocketAddr, std::io::Error),
    /// A thread could not be spawned.
    #[error("spawning a broker thread: {0}")]
    Thread(#[from] std::io::Error),
    /// Nothing accepted connections on the listen address in time (port in use?).
    #[error("MQTT listener on {0} did not come up (is the port in use?)")]
    NotListening(SocketAddr),
}

/// rumqttd's `LinkError` is over 800 bytes, so it travels boxed.
type LinkFactory = dyn Fn(&str) -> Result<(LinkTx, LinkRx), Box<LinkError>> + Send + Sync;

/// A running embedded broker. Cloning is cheap; all clones talk to the same router.
#[derive(Clone)]
pub struct EmbeddedBroker {
    make_link: Arc<LinkFactory>,
    listen: SocketAddr,
    tap: Arc<TapSlot>,
}

/// An in-process connection to the router: `tx` publishes and subscribes, `rx` receives.
pub struct Link {
    /// Publishes and subscribes.
    pub tx: LinkTx,
    /// Receives forwarded publishes and acks.
    pub rx: LinkRx,
}

impl EmbeddedBroker {
    /// Starts the router and the device listeners, and returns once devices can connect.
    pub fn start(
        config: &BrokerConfig,
        check: Arc<dyn CredentialCheck>,
    ) -> Result<EmbeddedBroker, StartError> {
        config.validate()?;
        let tls_front = match &config.tls {
            Some(tls) => Some(TlsFront::bind(tls, config, reachable(config.listen))?),
            None => None,
        };
        let router_tx = Router::new(0, config.router_config()).spawn();
        let mut settings = config.server_settings();
        settings.set_auth_handler(auth::handler(check));
        let tap = Arc::new(TapSlot::default());
        settings.connections.publish_tap = Some(tap.clone());
        let mut server = Server::new(settings, router_tx.clone(), DeviceAcl::new());
        let connection_threads = config.connection_threads;
        std::thread::Builder::new()
            .name(CONNECTION_THREAD.to_owned())
            .spawn(
                move || match connection_runtime(connection_threads, CONNECTION_THREAD) {
                    Ok(runtime) => runtime.block_on(async {
                        if let Err(error) = server.start(rumqttd::LinkType::Remote).await {
                            tracing::error!(%error, "MQTT device listener stopped");
                        }
                    }),
                    Err(error) => tracing::error!(%error, "MQTT device listener runtime failed"),
                },
            )?;
        wait_until_listening(config.listen)?;
        if let Some(front) = tls_front {
            std::thread::Builder::new()
                .name(TLS_THREAD.to_owned())
                .spawn(move || front.run())?;
        }
        let make_link = Arc::new(move |client_id: &str| {
            let (tx, rx, _connack) = LinkBuilder::new(client_id, router_tx.clone())
                .build()
                .map_err(Box::new)?;
            Ok((tx, rx))
        });
        Ok(EmbeddedBroker {
            make_link,
            listen: config.listen,
            tap,
        })
    }

    /// Opens an in-process link named `client_id` (platform components only).
    pub fn link(&self, client_id: &str) -> Result<Link, Box<LinkError>> {
        let (tx, rx) = (self.make_link)(client_id)?;
        Ok(Link { tx, rx })
    }

    /// The slot for the tap that takes device publishes before the router; until it is
    /// filled, devices' publishes wait on their connections.
    pub fn tap(&self) -> &TapSlot {
        &self.tap
    }

    /// The address devices connect to.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }
}

/// A runtime serving device connections on threads named `name`: tokio's current-thread
/// scheduler for one thread (the least overhead per message), its multi-thread one for more.
pub(crate) fn connection_runtime(
    threads: usize,
    name: &str,
) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(threads);
        builder
    };
    builder.thread_name(name).enable_all().build()
}

/// Where a client in this process reaches a listener bound to `listen` (the unspecified
/// address becomes loopback).
fn reachable(mut listen: SocketAddr) -> SocketAddr {
    if listen.ip().is_unspecified() {
        listen.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    listen
}

fn wait_until_listening(listen: SocketAddr) -> Result<(), StartError> {
    let probe = reachable(listen);
    let deadline = Instant::now() + LISTEN_WAIT_MAX;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&probe, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(StartError::NotListening(listen))
}
