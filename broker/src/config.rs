//! Broker settings: where to listen and the limits that protect the process.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::tls::{TlsFileError, load_identity};

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
    /// Time a new TCP connection has to send CONNECT before it is dropped.
    pub connect_timeout_ms: u16,
    /// Size of one in-memory log segment holding messages not yet read by a subscriber.
    pub segment_bytes_max: usize,
    /// Segments kept per subscription; the oldest is dropped when a subscriber lags further.
    pub segments_max: usize,
    /// Messages the router hands one connection per turn, so one busy link cannot starve others.
    pub outgoing_packets_per_turn_max: u64,
    /// A second device listener speaking MQTT over TLS (`[broker.tls]`); none unless set.
    pub tls: Option<BrokerTls>,
}

/// The MQTT-over-TLS listener: the same broker, authentication and topic rules as the plain
/// listener, so a device chooses its transport without any other difference.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BrokerTls {
    /// TCP address of the TLS listener; MQTT's registered TLS port 8883 unless set.
    #[serde(default = "BrokerTls::default_listen")]
    pub listen: SocketAddr,
    /// PEM file with the server's certificate chain, leaf first. rumqttd reads it at every
    /// TLS connection, so a renewed certificate is served without a restart.
    pub cert_path: PathBuf,
    /// PEM file with the certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key_path: PathBuf,
}

impl BrokerTls {
    fn default_listen() -> SocketAddr {
        SocketAddr::from(([0, 0, 0, 0], 8883))
    }

    /// Checks that both files hold a certificate chain and its key that rustls accepts,
    /// naming the setting at fault (`broker.tls.cert_path`, `broker.tls.key_path`).
    pub fn validate(&self) -> Result<(), TlsFileError> {
        let fields = [("cert_path", &self.cert_path), ("key_path", &self.key_path)];
        if let Some((field, path)) = fields.into_iter().find(|(_, path)| path.to_str().is_none()) {
            return Err(TlsFileError {
                setting: format!("broker.tls.{field}"),
                path: path.clone(),
                reason: "rumqttd needs a UTF-8 path".to_owned(),
            });
        }
        load_identity("broker.tls", &self.cert_path, &self.key_path).map(drop)
    }

    fn rumqttd(&self) -> rumqttd::TlsConfig {
        rumqttd::TlsConfig::Rustls {
            capath: None,
            certpath: self.cert_path.to_string_lossy().into_owned(),
            keypath: self.key_path.to_string_lossy().into_owned(),
        }
    }
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 1883)),
            connections_max: 100_000,
            payload_bytes_max: 4 * 1024,
            inflight_max: 100,
            connect_timeout_ms: 5_000,
            segment_bytes_max: 64 * 1024 * 1024,
            segments_max: 8,
            outgoing_packets_per_turn_max: 1_000,
            tls: None,
        }
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
                self.tls.as_ref().is_some_and(|tls| tls.listen == self.listen),
                "tls.listen",
                "must differ from listen",
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

    pub(crate) fn connection_settings(&self) -> rumqttd::ConnectionSettings {
        rumqttd::ConnectionSettings {
            connection_timeout_ms: self.connect_timeout_ms,
            max_payload_size: self.payload_bytes_max,
            max_inflight_count: self.inflight_max,
            auth: None::<HashMap<String, String>>,
            external_auth: None,
            dynamic_filters: true,
        }
    }

    /// The plain listener, and the TLS one if configured, sharing `connections` (and so one
    /// authentication hook and its lockouts).
    pub(crate) fn listeners(
        &self,
        connections: rumqttd::ConnectionSettings,
    ) -> Vec<rumqttd::ServerSettings> {
        let listener = |name: &str, listen, tls| rumqttd::ServerSettings {
            name: name.to_owned(),
            listen,
            tls,
            next_connection_delay_ms: 0,
            connections: connections.clone(),
        };
        let plain = listener("devices-v4", self.listen, None);
        let tls = self
            .tls
            .as_ref()
            .map(|tls| listener("devices-v4-tls", tls.listen, Some(tls.rumqttd())));
        std::iter::once(plain).chain(tls).collect()
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
    }
}
