//! Starting rumqttd inside the process and linking to it.
//!
//! rumqttd's `Broker::start` blocks and only serves its stock codec, so this module assembles
//! the same parts itself: the router on its own thread, and the device listeners (plain TCP,
//! and MQTT over TLS when configured) on another thread with a single-threaded runtime, each
//! with the [`DeviceAcl`] codec and one shared authentication hook. The platform talks to the
//! router through in-process links, never through a loopback TCP client.

use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttd::local::{LinkBuilder, LinkError, LinkRx, LinkTx};
use rumqttd::{Router, Server};

use crate::acl::DeviceAcl;
use crate::auth::{self, CredentialCheck};
use crate::config::{BrokerConfig, ConfigError};
use crate::tls::TlsFileError;

/// How long [`EmbeddedBroker::start`] waits for the device listener to accept connections.
const LISTEN_WAIT_MAX: Duration = Duration::from_secs(5);

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
        if let Some(tls) = &config.tls {
            tls.validate()?;
        }
        let router_tx = Router::new(0, config.router_config()).spawn();
        let mut connections = config.connection_settings();
        connections.set_auth_handler(auth::handler(check));
        let listeners = config.listeners(connections);
        let addrs: Vec<SocketAddr> = listeners.iter().map(|listener| listener.listen).collect();
        let servers: Vec<_> = listeners
            .into_iter()
            .map(|listener| Server::new(listener, router_tx.clone(), DeviceAcl::new()))
            .collect();
        std::thread::Builder::new()
            .name("mqtt-devices".to_owned())
            .spawn(move || serve_devices(servers))?;
        for addr in addrs {
            wait_until_listening(addr)?;
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
        })
    }

    /// Opens an in-process link named `client_id` (platform components only).
    pub fn link(&self, client_id: &str) -> Result<Link, Box<LinkError>> {
        let (tx, rx) = (self.make_link)(client_id)?;
        Ok(Link { tx, rx })
    }

    /// The address devices connect to.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }
}

/// Runs every device listener on this thread until they all stop.
fn serve_devices(servers: Vec<Server<DeviceAcl>>) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return tracing::error!(%error, "MQTT device listener runtime failed"),
    };
    runtime.block_on(async {
        let mut listeners = tokio::task::JoinSet::new();
        for mut server in servers {
            listeners.spawn(async move { server.start(rumqttd::LinkType::Remote).await });
        }
        while let Some(stopped) = listeners.join_next().await {
            match stopped {
                Ok(Err(error)) => tracing::error!(%error, "MQTT device listener stopped"),
                Ok(Ok(())) => tracing::error!("MQTT device listener stopped"),
                Err(error) => tracing::error!(%error, "MQTT device listener panicked"),
            }
        }
    });
}

fn wait_until_listening(listen: SocketAddr) -> Result<(), StartError> {
    let mut probe = listen;
    if probe.ip().is_unspecified() {
        probe.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let deadline = Instant::now() + LISTEN_WAIT_MAX;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&probe, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(StartError::NotListening(listen))
}
