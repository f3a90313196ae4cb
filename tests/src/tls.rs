//! TLS for the end-to-end tests: a fresh self-signed certificate for `localhost` and
//! `127.0.0.1`, written to files the server's `[broker.tls]` and `[grpc_tls]` settings name,
//! and MQTT and gRPC clients that trust that certificate alone (ring provider, as the server).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rumqttc::{TlsConfiguration, Transport};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

/// A self-signed server certificate and its key, as PEM files.
pub struct SelfSigned {
    /// The certificate, PEM: clients trust it as their only root.
    pub cert_pem: String,
    /// The certificate file, for `cert_path` settings.
    pub cert_path: PathBuf,
    /// The private key file, for `key_path` settings.
    pub key_path: PathBuf,
}

impl SelfSigned {
    /// Generates a certificate for `localhost` and `127.0.0.1` and writes it and its key into
    /// `dir` (which must outlive the server reading them).
    pub fn write_in(dir: &Path) -> SelfSigned {
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let pair = rcgen::generate_simple_self_signed(names).expect("self-signed certificate");
        let cert_path = dir.join("server-cert.pem");
        let key_path = dir.join("server-key.pem");
        std::fs::write(&cert_path, pair.cert.pem()).expect("writing the certificate");
        std::fs::write(&key_path, pair.signing_key.serialize_pem()).expect("writing the key");
        SelfSigned {
            cert_pem: pair.cert.pem(),
            cert_path,
            key_path,
        }
    }

    /// MQTT over TLS to a broker presenting this certificate (the host is checked against its
    /// names, so devices connect to `127.0.0.1`).
    pub fn mqtt_transport(&self) -> Transport {
        let mut roots = rustls::RootCertStore::empty();
        let cert = CertificateDer::from_pem_slice(self.cert_pem.as_bytes()).expect("PEM");
        roots.add(cert).expect("trusting the certificate");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Transport::tls_with_config(TlsConfiguration::Rustls(Arc::new(config)))
    }

    /// A gRPC channel over TLS to `grpc`, trusting only this certificate.
    pub async fn grpc_channel(&self, grpc: SocketAddr) -> Channel {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.cert_pem))
            .domain_name("localhost");
        Endpoint::from_shared(format!("https://{grpc}"))
            .expect("gRPC endpoint")
            .tls_config(tls)
            .expect("client TLS settings")
            .connect()
            .await
            .expect("connecting to the gRPC API over TLS")
    }
}
