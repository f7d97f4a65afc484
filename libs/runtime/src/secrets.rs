//! Secrets at rest (I9): signing keys, TOTP seeds and the like are sealed with AES-256-GCM under
//! a key from configuration before they reach the database. A sealed value is
//! `PXS1 || nonce (12) || ciphertext+tag`, bound to what it is (the associated data, e.g.
//! `signing_key:<kid>`), so a sealed value copied onto another row does not open.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use std::path::Path;

const MAGIC: &[u8; 4] = b"PXS1";
const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("the secrets key must be 32 bytes, base64-encoded")]
    BadKey,
    #[error("secrets key file {0}: {1}")]
    KeyFile(String, String),
    #[error("sealed value is damaged or was sealed under another key")]
    Unsealable,
    #[error("value is not sealed")]
    NotSealed,
}

#[derive(Clone)]
pub struct Sealer {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    /// From a base64-encoded 32-byte key.
    pub fn from_base64(key: &str) -> Result<Self, SecretError> {
        let bytes = STANDARD
            .decode(key.trim())
            .map_err(|_| SecretError::BadKey)?;
        let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| SecretError::BadKey)?;
        Ok(Self { cipher })
    }

    /// Reads the key from `path`, creating it (readable by the owner only) on first use: the
    /// laptop default. Deployments pass the key itself from a secret.
    pub fn from_file(path: &Path) -> Result<Self, SecretError> {
        let fail = |e: &dyn std::fmt::Display| {
            SecretError::KeyFile(path.display().to_string(), e.to_string())
        };
        if !path.exists() {
            let mut key = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut key);
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|e| fail(&e))?;
            }
            write_private(path, STANDARD.encode(key).as_bytes()).map_err(|e| fail(&e))?;
        }
        let text = std::fs::read_to_string(path).map_err(|e| fail(&e))?;
        Self::from_base64(&text)
    }

    /// The key given in configuration (`key`, when not blank), else the one in `file`.
    pub fn from_key_or_file(key: Option<&str>, file: &Path) -> Result<Self, SecretError> {
        match key.filter(|key| !key.trim().is_empty()) {
            Some(key) => Self::from_base64(key),
            None => Self::from_file(file),
        }
    }

    pub fn seal(&self, plaintext: &[u8], context: &str) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let payload = Payload {
            msg: plaintext,
            aad: context.as_bytes(),
        };
        // Encryption with a valid key and a fresh nonce cannot fail for inputs this size.
        let ciphertext = self
            .cipher
            .encrypt(&Nonce::from(nonce), payload)
            .unwrap_or_default();
        [MAGIC.as_slice(), &nonce, &ciphertext].concat()
    }

    pub fn open(&self, sealed: &[u8], context: &str) -> Result<Vec<u8>, SecretError> {
        let body = sealed.strip_prefix(MAGIC).ok_or(SecretError::NotSealed)?;
        if body.len() < NONCE_LEN + 16 {
            return Err(SecretError::Unsealable);
        }
        let (nonce, ciphertext) = body.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SecretError::Unsealable)?;
        self.cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Unsealable)
    }

    pub fn is_sealed(value: &[u8]) -> bool {
        value.starts_with(MAGIC)
    }
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer() -> Sealer {
        Sealer::from_base64(&STANDARD.encode([7u8; 32])).expect("key")
    }

    #[test]
    fn i9_sealed_values_open_only_with_the_key_and_the_context() {
        let sealer = sealer();
        let sealed = sealer.seal(b"totp seed", "totp:u-1");
        assert!(Sealer::is_sealed(&sealed));
        assert!(!sealed.windows(9).any(|w| w == b"totp seed"));
        assert_eq!(
            sealer.open(&sealed, "totp:u-1").expect("open"),
            b"totp seed"
        );
        // Another row, another key, a flipped bit, a plain value: all refused.
        assert!(sealer.open(&sealed, "totp:u-2").is_err());
        let other = Sealer::from_base64(&STANDARD.encode([8u8; 32])).expect("key");
        assert!(other.open(&sealed, "totp:u-1").is_err());
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(sealer.open(&tampered, "totp:u-1").is_err());
        assert!(matches!(
            sealer.open(b"totp seed", "totp:u-1"),
            Err(SecretError::NotSealed)
        ));
        // Two seals of the same value differ (fresh nonces).
        assert_ne!(sealed, sealer.seal(b"totp seed", "totp:u-1"));
    }

    #[test]
    fn i9_keys_must_be_32_bytes_and_a_key_file_is_created_private() {
        assert!(Sealer::from_base64("c2hvcnQ=").is_err());
        assert!(Sealer::from_base64("not base64!").is_err());
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("keys/secrets.key");
        let first = Sealer::from_file(&path).expect("created");
        let again = Sealer::from_file(&path).expect("read");
        let sealed = first.seal(b"x", "c");
        assert_eq!(again.open(&sealed, "c").expect("same key"), b"x");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
