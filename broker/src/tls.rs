//! TLS identities (a certificate chain and its private key in PEM files) for the MQTT TLS
//! listener and the gRPC API.
//!
//! A missing file, a file that is not PEM, or a key that does not belong to the certificate
//! would otherwise only show up as failing handshakes. [`load_identity`] reads and checks the
//! pair once at start, by building the rustls configuration that will serve it, and names
//! the setting that is wrong.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A server certificate chain and its private key, checked to belong together.
#[derive(Clone, Debug)]
pub struct TlsIdentity {
    /// The certificate chain, leaf first, PEM (tonic takes PEM).
    pub cert_chain_pem: Vec<u8>,
    /// The leaf certificate's private key, PEM.
    pub key_pem: Vec<u8>,
    /// The rustls server configuration serving them (ring provider, TLS 1.2 and 1.3, no
    /// client certificates: devices authenticate with their MQTT password).
    pub server_config: Arc<rustls::ServerConfig>,
}

/// A TLS file setting that cannot work, naming the setting (e.g. `broker.tls.cert_path`).
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{setting} ({}): {reason}", path.display())]
pub struct TlsFileError {
    /// The full name of the setting, section included.
    pub setting: String,
    /// The file it names.
    pub path: PathBuf,
    /// What is wrong with the file.
    pub reason: String,
}

/// Reads `cert_path` and `key_path` (settings `{section}.cert_path` and `{section}.key_path`)
/// and checks that they hold a certificate chain and the leaf's private key that rustls
/// accepts together.
pub fn load_identity(
    section: &str,
    cert_path: &Path,
    key_path: &Path,
) -> Result<TlsIdentity, TlsFileError> {
    let cert_error = |reason: String| TlsFileError {
        setting: format!("{section}.cert_path"),
        path: cert_path.to_owned(),
        reason,
    };
    let key_error = |reason: String| TlsFileError {
        setting: format!("{section}.key_path"),
        path: key_path.to_owned(),
        reason,
    };
    let cert_chain_pem = read(cert_path).map_err(cert_error)?;
    let key_pem = read(key_path).map_err(key_error)?;
    let chain = CertificateDer::pem_slice_iter(&cert_chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| cert_error(format!("not a PEM certificate chain: {error}")))?;
    if chain.is_empty() {
        return Err(cert_error("holds no PEM CERTIFICATE block".to_owned()));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|error| {
        key_error(format!(
            "holds no PEM private key (PKCS#8, PKCS#1 or SEC1): {error}"
        ))
    })?;
    let server_config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|error| key_error(error.to_string()))?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(|error| {
        key_error(format!(
            "not usable with the certificate in {}: {error}",
            cert_path.display()
        ))
    })?;
    Ok(TlsIdentity {
        cert_chain_pem,
        key_pem,
        server_config: Arc::new(server_config),
    })
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|error| format!("cannot read: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Files {
        dir: tempfile::TempDir,
    }

    impl Files {
        fn new() -> Files {
            Files {
                dir: tempfile::tempdir().expect("temporary directory"),
            }
        }

        fn write(&self, name: &str, text: &str) -> PathBuf {
            let path = self.dir.path().join(name);
            std::fs::write(&path, text).expect("writing a test file");
            path
        }
    }

    fn self_signed() -> rcgen::CertifiedKey<rcgen::KeyPair> {
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate")
    }

    #[test]
    fn a_certificate_and_its_key_load() {
        let files = Files::new();
        let pair = self_signed();
        let cert = files.write("cert.pem", &pair.cert.pem());
        let key = files.write("key.pem", &pair.signing_key.serialize_pem());
        let identity = load_identity("grpc_tls", &cert, &key).expect("valid pair");
        assert_eq!(identity.cert_chain_pem, pair.cert.pem().into_bytes());
    }

    #[test]
    fn each_bad_file_is_refused_naming_its_setting() {
        let files = Files::new();
        let (pair, other) = (self_signed(), self_signed());
        let cert = files.write("cert.pem", &pair.cert.pem());
        let key = files.write("key.pem", &pair.signing_key.serialize_pem());
        let other_key = files.write("other.pem", &other.signing_key.serialize_pem());
        let not_pem = files.write("junk.pem", "not a certificate\n");
        let missing = files.dir.path().join("missing.pem");
        let cases = [
            (&missing, &key, "broker.tls.cert_path", "cannot read"),
            (&not_pem, &key, "broker.tls.cert_path", "no PEM CERTIFICATE"),
            (&key, &key, "broker.tls.cert_path", "no PEM CERTIFICATE"),
            (&cert, &missing, "broker.tls.key_path", "cannot read"),
            (&cert, &not_pem, "broker.tls.key_path", "no PEM private key"),
            (&cert, &cert, "broker.tls.key_path", "no PEM private key"),
            (&cert, &other_key, "broker.tls.key_path", "not usable"),
        ];
        for (cert_path, key_path, setting, reason) in cases {
            let error = load_identity("broker.tls", cert_path, key_path).unwrap_err();
            let message = error.to_string();
            assert_eq!(error.setting, setting, "{message}");
            assert!(message.starts_with(setting), "{message}");
            assert!(message.contains(reason), "{message}");
        }
    }
}
