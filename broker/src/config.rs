//! Broker settings: where to listen and the limits that protect the process.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::tls::{TlsFileError, TlsIdentity, load_identity};

/// Settings of the embedded broker. Every limit is named after what it bounds.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// TCP address devices connect to (MQTT 3.1.1).
    pub listen: SocketAddr,
    /// Most simultaneous connections the router accepts; beyond it CONNECTs are refused.
    pub connections_max: usize,
    /// Largest MQTT packet a device may send; larger ones close the connection.
    pub payload_bytes_max: usize,
    /// QoS 1 messages in flight to one device before the broker waits for its acks.
    pub inflight_max: usize,
    /// Time a new TCP connection has to send CONNECT (and, on the TLS listener, to finish its
    /// handshake first) before it is dropped.
    pub connect_timeout_ms: u16,
    /// Size of one segment of a subscription's in-memory log, counting each message's topic,
    /// payload and the broker's bookkeeping of it (about 230 bytes). A log keeps its latest
    /// `segments_max` segments whether read or not, so the two bound its memory.
    pub segment_bytes_max: usize,
    /// Segments kept per subscription; the oldest is dropped when a subscriber lags further.
    pub segments_max: usize,
    /// Messages the router hands one connection per turn, so one busy link cannot starve others.
    pub outgoing_packets_per_turn_max: u64,
    /// Threads serving device connections (reading and parsing MQTT, authentication, ingest's
    /// tap, PUBACKs). One thread has the least overhead per message and carries about
    /// 40,000 msgs/s on one core of the benchmark machine, far beyond a real fleet's load;
    /// more let a larger machine spread its connections over more cores. The TLS listener, if
    /// set, gets as many threads of its own for handshakes and decryption.
    pub connection_threads: usize,
    /// A second device listener speaking MQTT over TLS (`[broker.tls]`); none unless set.
    pub tls: Option<BrokerTls>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 1883)),
            connections_max: 100_000,
            payload_bytes_max: 4 * 1024,
            inflight_max: 100,
            connect_timeout_ms: 5_000,
            segment_bytes_max: 16 * 1024 * 1024,
            segments_max: 8,
            outgoing_packets_per_turn_max: 1_000,
            connection_threads: 1,
            tls: None,
        }
    }
}

/// The MQTT-over-TLS listener: TLS is terminated in the process and the MQTT bytes are relayed
/// to the plain listener, so TLS devices get the same authentication, topic rules and limits
/// (see [`crate::tls_front`]).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BrokerTls {
    /// TCP address of the TLS listener; MQTT's registered TLS port 8883 unless set.
    #[serde(default = "BrokerTls::default_listen")]
    pub listen: SocketAddr,
    /// PEM file with the server's certificate chain, leaf first (read at start).
    pub cert_path: PathBuf,
    /// PEM file with the certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key_path: PathBuf,
    /// TLS handshakes in progress at once; beyond it new connections are closed at once and
    /// counted, so a flood of stalled handshakes holds at most this many sockets (each for at
    /// most `connect_timeout_ms`).
    #[serde(default = "BrokerTls::default_handshakes_max")]
    pub handshakes_max: usize,
}

impl BrokerTls {
    fn default_listen() -> SocketAddr {
        SocketAddr::from(([0, 0, 0, 0], 8883))
    }

    fn default_handshakes_max() -> usize {
        1_024
    }

    /// Reads the certificate and key and checks they belong together, naming the setting at
    /// fault (`broker.tls.cert_path`, `broker.tls.key_path`).
    pub fn load(&self) -> Result<TlsIdentity, TlsFileError> {
        load_identity("broker.tls", &self.cert_path, &self.key_path)
    }
}

/// A broker setting that cannot work.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("broker.{field}: {reason}")]
pub struct ConfigError {
    /// The offending field.
    pub field: &'static str,
    /// Why it is refused.
    pub reason: &'static str,
}

impl BrokerConfig {
    /// Small limits so tests reach the boundaries quickly.
    pub fn for_tests(listen: SocketAddr) -> BrokerConfig {
        BrokerConfig {
            listen,
            connections_max: 1_000,
            segment_bytes_max: 1024 * 1024,
            segments_max: 4,
            ..BrokerConfig::default()
        }
    }

    /// Checks every field once, before anything starts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let checks = [
            (
                self.connections_max == 0,
                "connections_max",
                "must be at least 1",
            ),
            (
                self.payload_bytes_max < 64,
                "payload_bytes_max",
                "must be at least 64",
            ),
            (
                self.inflight_max == 0 || self.inflight_max > u16::MAX as usize,
                "inflight_max",
                "must be 1..=65535",
            ),
            (
                self.connect_timeout_ms == 0,
                "connect_timeout_ms",
                "must be at least 1",
            ),
            (
                self.segment_bytes_max < 1024,
                "segment_bytes_max",
                "must be at least 1024",
            ),
            (self.segments_max < 2, "segments_max", "must be at least 2"),
            (
                self.connection_threads == 0,
                "connection_threads",
                "must be at least 1",
            ),
            (
                self.tls
                    .as_ref()
                    .is_some_and(|tls| tls.listen == self.listen),
                "tls.listen",
                "must differ from listen",
            ),
            (
                self.tls.as_ref().is_some_and(|tls| tls.handshakes_max == 0),
                "tls.handshakes_max",
                "must be at least 1",
            ),
            (
                self.outgoing_packets_per_turn_max == 0,
                "outgoing_packets_per_turn_max",
                "must be at least 1",
            ),
        ];
        match checks.into_iter().find(|(bad, ..)| *bad) {
            Some((_, field, reason)) => Err(ConfigError { field, reason }),
            None => Ok(()),
        }
    }

    pub(crate) fn router_config(&self) -> rumqttd::RouterConfig {
        rumqttd::RouterConfig {
            max_connections: self.connections_max,
            max_outgoing_packet_count: self.outgoing_packets_per_turn_max,
            max_segment_size: self.segment_bytes_max,
            max_segment_count: self.segments_max,
            ..rumqttd::RouterConfig::default()
        }
    }

    pub(crate) fn server_settings(&self) -> rumqttd::ServerSettings {
        rumqttd::ServerSettings {
            name: "devices-v4".to_owned(),
            listen: self.listen,
            tls: None,
            next_connection_delay_ms: 0,
            connections: rumqttd::ConnectionSettings {
                connection_timeout_ms: self.connect_timeout_ms,
                max_payload_size: self.payload_bytes_max,
                max_inflight_count: self.inflight_max,
                auth: None::<HashMap<String, String>>,
                external_auth: None,
                dynamic_filters: true,
                publish_tap: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_zero_limits_are_refused_by_name() {
        assert_eq!(BrokerConfig::default().validate(), Ok(()));
        let config = BrokerConfig {
            segments_max: 1,
            ..BrokerConfig::default()
        };
        assert_eq!(config.validate().unwrap_err().field, "segments_max");
        let config = BrokerConfig {
            inflight_max: 0,
            ..BrokerConfig::default()
        };
        assert_eq!(config.validate().unwrap_err().field, "inflight_max");
        let config = BrokerConfig {
            connection_threads: 0,
            ..BrokerConfig::default()
        };
        assert_eq!(config.validate().unwrap_err().field, "connection_threads");
    }
}
