//! The MQTT-over-TLS listener (`[broker.tls]`): terminates TLS and relays each connection's
//! MQTT bytes to the broker's plain device listener, where the same authentication hook,
//! topic rules and limits apply as to any device.
//!
//! rumqttd 0.20 can serve TLS itself, but it runs every handshake inline in its accept loop
//! with no time limit, so one client that opens a connection and never finishes its handshake
//! stops every later TLS device from connecting (`tests/tests/tls.rs` proves this listener
//! does not). Here each connection gets its own task: the handshake must finish within the
//! broker's `connect_timeout_ms`, at most `tls.handshakes_max` run at once (more are closed at
//! once), and the relay ends as soon as either side closes, so a vanished device cannot pin a
//! task. Refusals are counted in `sunledger_broker_tls_refused_total{reason}`.
//!
//! The price of relaying is two more loopback sockets per TLS device and one more copy of each
//! message; the broker sees every TLS device as coming from loopback.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;

use crate::config::{BrokerConfig, BrokerTls};
use crate::embedded::{StartError, connection_runtime};

/// How long the accept loop pauses after a failed accept (e.g. out of file descriptors), so
/// the failure is not retried in a hot loop.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(50);
/// The name of the TLS listener's threads.
pub(crate) const TLS_THREAD: &str = "mqtt-tls";

/// A bound TLS listener, ready to run on its own thread.
pub(crate) struct TlsFront {
    listener: std::net::TcpListener,
    acceptor: TlsAcceptor,
    /// The plain device listener the decrypted bytes go to.
    upstream: SocketAddr,
    handshake_timeout: Duration,
    handshakes: Arc<Semaphore>,
    /// Threads for handshakes and relaying (`connection_threads`, as for plain devices).
    threads: usize,
}

impl TlsFront {
    /// Loads the certificate and key and binds the listener, so both fail at start.
    pub(crate) fn bind(
        tls: &BrokerTls,
        config: &BrokerConfig,
        upstream: SocketAddr,
    ) -> Result<TlsFront, StartError> {
        let identity = tls.load()?;
        let bind_error = |error| StartError::TlsBind(tls.listen, error);
        let listener = std::net::TcpListener::bind(tls.listen).map_err(bind_error)?;
        listener.set_nonblocking(true).map_err(bind_error)?;
        Ok(TlsFront {
            listener,
            acceptor: TlsAcceptor::from(identity.server_config),
            upstream,
            handshake_timeout: Duration::from_millis(config.connect_timeout_ms.into()),
            handshakes: Arc::new(Semaphore::new(tls.handshakes_max)),
            threads: config.connection_threads,
        })
    }

    /// Serves TLS devices from the calling thread, on `connection_threads` threads, until the
    /// process ends.
    pub(crate) fn run(self) {
        match connection_runtime(self.threads, TLS_THREAD) {
            Ok(runtime) => runtime.block_on(self.serve()),
            Err(error) => tracing::error!(%error, "MQTT TLS listener runtime failed"),
        }
    }

    async fn serve(self) {
        let listener = match TcpListener::from_std(self.listener) {
            Ok(listener) => listener,
            Err(error) => return tracing::error!(%error, "MQTT TLS listener failed"),
        };
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(error) => {
                    refused("accept");
                    tracing::warn!(%error, "MQTT TLS accept failed");
                    tokio::time::sleep(ACCEPT_RETRY_DELAY).await;
                    continue;
                }
            };
            let Ok(permit) = self.handshakes.clone().try_acquire_owned() else {
                refused("handshakes_max");
                continue;
            };
            tokio::spawn(relay(
                stream,
                permit,
                self.acceptor.clone(),
                self.upstream,
                self.handshake_timeout,
            ));
        }
    }
}

/// Completes the handshake in time, then copies bytes both ways until either side closes.
async fn relay(
    stream: TcpStream,
    handshake: OwnedSemaphorePermit,
    acceptor: TlsAcceptor,
    upstream: SocketAddr,
    handshake_timeout: Duration,
) {
    let _ = stream.set_nodelay(true);
    let device = match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
        Ok(Ok(device)) => device,
        Ok(Err(error)) => {
            tracing::debug!(%error, "MQTT TLS handshake failed");
            return refused("handshake");
        }
        Err(_) => return refused("handshake_timeout"),
    };
    drop(handshake);
    let broker = match TcpStream::connect(upstream).await {
        Ok(broker) => broker,
        Err(error) => {
            tracing::warn!(%error, %upstream, "MQTT TLS relay cannot reach the device listener");
            return refused("upstream");
        }
    };
    let _ = broker.set_nodelay(true);
    let (mut device_rx, mut device_tx) = tokio::io::split(device);
    let (mut broker_rx, mut broker_tx) = broker.into_split();
    tokio::select! {
        _ = tokio::io::copy(&mut device_rx, &mut broker_tx) => {}
        _ = tokio::io::copy(&mut broker_rx, &mut device_tx) => {}
    }
}

fn refused(reason: &'static str) {
    metrics::counter!("sunledger_broker_tls_refused_total", "reason" => reason).increment(1);
}
