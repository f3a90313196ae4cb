//! Settings of the whole process, validated once at start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sunledger_billing::worker::EngineConfig;
use sunledger_broker::BrokerConfig;
use sunledger_broker::tls::{TlsFileError, load_identity};
use sunledger_control_api::ApiTls;
use sunledger_control_api::reminders::ReminderSettings;

/// Everything `sunledger serve` needs. The TOML file has the same shape, e.g.
/// `grpc_listen = "0.0.0.0:50051"` and a `[broker]` table.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The redb file holding all durable state.
    pub database_path: PathBuf,
    /// Free bytes the disk must keep for a write to start: below it, writes are refused
    /// (UNAVAILABLE) and reads go on, so a full disk never half-writes anything.
    pub storage_reserve_bytes: u64,
    /// Memory the database may use as its page cache: with the hot state in the billing
    /// partitions, this is what bounds the process's growth under a steady load.
    pub storage_cache_bytes: usize,
    /// Address of the gRPC API.
    pub grpc_listen: SocketAddr,
    /// TLS for the gRPC API (`[grpc_tls]`); plain HTTP/2 unless set.
    pub grpc_tls: Option<GrpcTls>,
    /// Address of the Prometheus endpoint (path `/metrics`).
    pub metrics_listen: SocketAddr,
    /// The embedded MQTT broker.
    pub broker: BrokerConfig,
    /// The billing engine.
    pub engine: EngineConfig,
    /// Low-credit reminders to keypad units' customers.
    pub reminders: ReminderSettings,
}

/// The gRPC API's certificate and key: with them, the API accepts only TLS connections, so
/// operators' tokens never cross the network in clear.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GrpcTls {
    /// PEM file with the server's certificate chain, leaf first.
    pub cert_path: PathBuf,
    /// PEM file with the certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key_path: PathBuf,
    /// How long a client has to finish its TLS handshake before it is dropped.
    #[serde(default = "GrpcTls::default_handshake_timeout_ms")]
    pub handshake_timeout_ms: u32,
}

impl GrpcTls {
    fn default_handshake_timeout_ms() -> u32 {
        10_000
    }

    /// Reads both files and checks they belong together (errors name `grpc_tls.cert_path` or
    /// `grpc_tls.key_path`), giving what the API serves TLS with.
    pub fn load(&self) -> Result<ApiTls, TlsFileError> {
        Ok(ApiTls {
            identity: load_identity("grpc_tls", &self.cert_path, &self.key_path)?,
            handshake_timeout: Duration::from_millis(self.handshake_timeout_ms.into()),
        })
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            database_path: PathBuf::from("data/sunledger.redb"),
            storage_reserve_bytes: 64 * 1024 * 1024,
            storage_cache_bytes: 256 * 1024 * 1024,
            grpc_listen: SocketAddr::from(([0, 0, 0, 0], 50051)),
            grpc_tls: None,
            metrics_listen: SocketAddr::from(([0, 0, 0, 0], 9464)),
            broker: BrokerConfig::default(),
            engine: EngineConfig::default(),
            reminders: ReminderSettings::default(),
        }
    }
}

impl Settings {
    /// Reads a TOML settings file; absent keys keep their defaults.
    pub fn from_file(path: &Path) -> anyhow::Result<Settings> {
        use anyhow::Context;
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// Settings for a test: loopback ports picked by the caller, a temporary database.
    pub fn for_tests(
        database_path: PathBuf,
        mqtt: SocketAddr,
        grpc: SocketAddr,
        metrics: SocketAddr,
    ) -> Settings {
        Settings {
            database_path,
            // Tests share the machine's disk; the disk-full test uses a fault switch instead.
            storage_reserve_bytes: 0,
            storage_cache_bytes: 64 * 1024 * 1024,
            grpc_listen: grpc,
            grpc_tls: None,
            metrics_listen: metrics,
            broker: BrokerConfig::for_tests(mqtt),
            engine: EngineConfig {
                partitions: 2,
                command_resend_interval_ms: 1_000,
                ..EngineConfig::default()
            },
            reminders: ReminderSettings::default(),
        }
    }

    /// Checks every section once, TLS files included.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.broker.validate()?;
        if let Some(tls) = &self.broker.tls {
            tls.load()?;
        }
        if let Some(tls) = &self.grpc_tls {
            anyhow::ensure!(
                tls.handshake_timeout_ms > 0,
                "grpc_tls.handshake_timeout_ms must be at least 1"
            );
            tls.load()?;
        }
        self.engine.validate()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_file_keeps_the_other_defaults_and_unknown_keys_are_refused() {
        let settings: Settings =
            toml::from_str("grpc_listen = \"127.0.0.1:1\"\n[broker]\ninflight_max = 5\n").unwrap();
        assert_eq!(
            settings.grpc_listen,
            "127.0.0.1:1".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(settings.broker.inflight_max, 5);
        assert_eq!(settings.metrics_listen, Settings::default().metrics_listen);
        assert!(toml::from_str::<Settings>("grpc_port = 1").is_err());
        assert!(Settings::default().validate().is_ok());
        let mut settings = Settings::default();
        settings.engine.partitions = 0;
        let error = settings.validate().unwrap_err().to_string();
        assert_eq!(error, "engine.partitions must be at least 1");
    }

    #[test]
    fn tls_sections_parse_and_a_missing_file_is_refused_naming_its_setting() {
        let settings: Settings = toml::from_str(
            "[broker.tls]\ncert_path = \"/nonexistent/mqtt.pem\"\nkey_path = \"/k.pem\"\n\
             [grpc_tls]\ncert_path = \"/nonexistent/grpc.pem\"\nkey_path = \"/k.pem\"\n",
        )
        .unwrap();
        let broker_tls = settings.broker.tls.clone().expect("[broker.tls] parsed");
        assert_eq!(broker_tls.listen, SocketAddr::from(([0, 0, 0, 0], 8883)));
        let error = settings.validate().unwrap_err().to_string();
        assert!(
            error.starts_with("broker.tls.cert_path (/nonexistent/mqtt.pem): cannot read"),
            "{error}"
        );
        let settings = Settings {
            broker: BrokerConfig::default(),
            ..settings
        };
        let error = settings.validate().unwrap_err().to_string();
        assert!(
            error.starts_with("grpc_tls.cert_path (/nonexistent/grpc.pem): cannot read"),
            "{error}"
        );
        assert!(toml::from_str::<Settings>("[grpc_tls]\ncert = \"x\"\n").is_err());
    }
}
