//! The server master key, and sealing of secret material under it.
//!
//! Why: some secrets must be stored in a form the server can use again, not only check: a
//! keypad unit's OpenPAYGO key generates every future token. They are stored sealed
//! (XChaCha20-Poly1305 under a 256-bit master key kept in its own file, outside the database),
//! so the redb file alone reveals none of them: a copied backup or a leaked file is not a
//! working key. Each sealed value is bound to what it belongs to (the associated data, e.g.
//! the unit's serial), so moving a sealed key to another unit's record does not open.

use std::io::Write;
use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

/// Bytes of the master key.
const MASTER_KEY_BYTES: usize = 32;
/// Bytes of the random nonce stored in front of each sealed value.
const NONCE_BYTES: usize = 24;

/// The key every stored secret is sealed under. Its `Debug` never shows the bytes.
#[derive(Clone)]
pub struct MasterKey(XChaCha20Poly1305);

/// Why the master key could not be read or a sealed value not opened.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The key file could not be read or created.
    #[error("master key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The key file does not hold 64 hexadecimal characters.
    #[error("master key file {0} must hold 64 hexadecimal characters")]
    Malformed(String),
    /// The sealed value is damaged, was sealed under another key, or belongs to something
    /// else.
    #[error("sealed value does not open under this master key")]
    Unsealable,
}

impl MasterKey {
    /// Reads the key file at `path`, or, if there is none, draws a new key and writes it
    /// there readable by the owner only (0600): the first start of a fresh data directory.
    pub fn load_or_create(path: &Path) -> Result<MasterKey, SecretError> {
        let io = |source| SecretError::Io {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => MasterKey::from_hex(text.trim())
                .ok_or_else(|| SecretError::Malformed(path.display().to_string())),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; MASTER_KEY_BYTES];
                rand::rng().fill_bytes(&mut bytes);
                write_private(path, hex::encode(bytes).as_bytes()).map_err(io)?;
                Ok(MasterKey::from_bytes(&bytes))
            }
            Err(error) => Err(io(error)),
        }
    }

    /// A key given as 64 hexadecimal characters (from settings or the key file).
    pub fn from_hex(text: &str) -> Option<MasterKey> {
        let mut bytes = [0u8; MASTER_KEY_BYTES];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(MasterKey::from_bytes(&bytes))
    }

    fn from_bytes(bytes: &[u8; MASTER_KEY_BYTES]) -> MasterKey {
        MasterKey(XChaCha20Poly1305::new(bytes.into()))
    }

    /// Seals `secret` for `owner` (e.g. a serial): nonce followed by ciphertext and tag.
    pub fn seal(&self, owner: &str, secret: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rng().fill_bytes(&mut nonce);
        let payload = Payload {
            msg: secret,
            aad: owner.as_bytes(),
        };
        let sealed = self
            .0
            .encrypt(XNonce::from_slice(&nonce), payload)
            .expect("XChaCha20-Poly1305 encrypts any length a secret has");
        [nonce.as_slice(), &sealed].concat()
    }

    /// Opens what [`MasterKey::seal`] sealed for the same `owner`.
    pub fn open(&self, owner: &str, sealed: &[u8]) -> Result<Vec<u8>, SecretError> {
        if sealed.len() < NONCE_BYTES {
            return Err(SecretError::Unsealable);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
        let payload = Payload {
            msg: ciphertext,
            aad: owner.as_bytes(),
        };
        self.0
            .decrypt(XNonce::from_slice(nonce), payload)
            .map_err(|_| SecretError::Unsealable)
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// Creates `path` (never overwriting one) with owner-only permissions and writes `bytes`.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_for_its_owner_under_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let key = MasterKey::load_or_create(&path).unwrap();
        let sealed = key.seal("SL-1", b"0123456789abcdef");
        assert!(!sealed.windows(16).any(|w| w == b"0123456789abcdef"));
        assert_eq!(key.open("SL-1", &sealed).unwrap(), b"0123456789abcdef");
        assert!(matches!(
            key.open("SL-2", &sealed),
            Err(SecretError::Unsealable)
        ));

        let reloaded = MasterKey::load_or_create(&path).unwrap();
        assert_eq!(reloaded.open("SL-1", &sealed).unwrap(), b"0123456789abcdef");
        let other = MasterKey::load_or_create(&dir.path().join("other.key")).unwrap();
        assert!(other.open("SL-1", &sealed).is_err());
        assert!(key.open("SL-1", &sealed[..10]).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn the_key_file_is_created_owner_only_and_a_malformed_one_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/master.key");
        MasterKey::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(&path, "not hex").unwrap();
        assert!(matches!(
            MasterKey::load_or_create(&path),
            Err(SecretError::Malformed(_))
        ));
    }
}
