//! The master's own key pair.

use halite_proto::rsa::{clean_key, PrivateKey};
use tracing::info;

use crate::dir::{read_optional, write_atomic};
use crate::{PkiDir, PkiError};

/// `master.pem` and the exact text of `master.pub`.
///
/// The public key is kept as the file's text, not re-encoded: minions that already trust this
/// master compare the `pub_key` of every auth reply with their cached `minion_master.pub`, so
/// halite must send what a Python master created, byte for byte.
pub struct MasterKeys {
    pub private: PrivateKey,
    pub pub_pem: String,
}

impl MasterKeys {
    /// Loads `master.pem` (PKCS#1 or PKCS#8) and `master.pub` from the pki dir, or creates the
    /// pair as Salt does (`keysize` bits, `master.pem` 0400 PKCS#1, `master.pub` 0644 SPKI).
    /// A `master.pub` that is not the public half of `master.pem` stops start-up: serving it
    /// would make every minion refuse the master.
    pub fn load_or_create(pki: &PkiDir, keysize: u32) -> Result<MasterKeys, PkiError> {
        let pem_path = pki.root().join("master.pem");
        let pub_path = pki.root().join("master.pub");
        let private = match std::fs::read(&pem_path) {
            Ok(bytes) => PrivateKey::from_pem(&bytes)
                .map_err(|e| PkiError::BadKey { path: pem_path.clone(), reason: e.to_string() })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                info!(path = %pem_path.display(), keysize, "generating the master key pair");
                let key = PrivateKey::generate(keysize)
                    .map_err(|e| PkiError::Generate { path: pki.root().to_owned(), reason: e.to_string() })?;
                let pem = key
                    .to_pkcs1_pem()
                    .map_err(|e| PkiError::Generate { path: pki.root().to_owned(), reason: e.to_string() })?;
                write_atomic(&pem_path, &pem, 0o400)?;
                key
            }
            Err(e) => return Err(PkiError::Io { path: pem_path, source: e }),
        };
        let derived = private
            .public_key()
            .and_then(|k| k.to_spki_pem())
            .map(|pem| String::from_utf8_lossy(&pem).into_owned())
            .map_err(|e| PkiError::BadKey { path: pem_path.clone(), reason: e.to_string() })?;
        let pub_pem = match read_optional(&pub_path)? {
            Some(existing) => {
                let matches = halite_proto::rsa::PublicKey::from_pem(existing.as_bytes())
                    .and_then(|k| k.to_spki_pem())
                    .map(|pem| clean_key(&String::from_utf8_lossy(&pem)) == clean_key(&derived))
                    .unwrap_or(false);
                if !matches {
                    return Err(PkiError::BadKey {
                        path: pub_path,
                        reason: "not the public half of master.pem".into(),
                    });
                }
                existing
            }
            None => {
                write_atomic(&pub_path, derived.as_bytes(), 0o644)?;
                derived
            }
        };
        Ok(MasterKeys { private, pub_pem })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn creates_then_reloads_the_same_pair() {
        let dir = tempfile::tempdir().unwrap();
        let pki = PkiDir::open(dir.path()).unwrap();
        let first = MasterKeys::load_or_create(&pki, 2048).unwrap();
        let mode = |name: &str| std::fs::metadata(dir.path().join(name)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode("master.pem"), 0o400);
        assert_eq!(mode("master.pub"), 0o644);
        assert!(std::fs::read_to_string(dir.path().join("master.pem"))
            .unwrap()
            .starts_with("-----BEGIN RSA PRIVATE KEY-----"));
        let second = MasterKeys::load_or_create(&pki, 4096).unwrap();
        assert_eq!(first.pub_pem, second.pub_pem);
        assert_eq!(second.private.bits(), 2048);
    }

    #[test]
    fn pkcs8_private_key_and_missing_pub_are_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let pki = PkiDir::open(dir.path()).unwrap();
        let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
        let pkey = openssl::pkey::PKey::from_rsa(rsa).unwrap();
        std::fs::write(dir.path().join("master.pem"), pkey.private_key_to_pem_pkcs8().unwrap()).unwrap();
        let keys = MasterKeys::load_or_create(&pki, 2048).unwrap();
        let expected = String::from_utf8(pkey.public_key_to_pem().unwrap()).unwrap();
        assert_eq!(clean_key(&keys.pub_pem), clean_key(&expected));
    }

    #[test]
    fn a_foreign_master_pub_stops_start_up() {
        let dir = tempfile::tempdir().unwrap();
        let pki = PkiDir::open(dir.path()).unwrap();
        MasterKeys::load_or_create(&pki, 2048).unwrap();
        let other = openssl::rsa::Rsa::generate(2048).unwrap();
        std::fs::write(dir.path().join("master.pub"), other.public_key_to_pem().unwrap()).unwrap();
        let err = MasterKeys::load_or_create(&pki, 2048).err().expect("mismatch refused");
        assert!(err.to_string().contains("master.pub"), "{err}");
    }
}
