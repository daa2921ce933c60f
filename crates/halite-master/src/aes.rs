//! The shared AES key and its publish serial. A new key at every start and at every rotation;
//! the serial restarts with the key, because a minion resets its counter when its key changes.
//!
//! Only the current key opens v2 requests, as in Salt: a minion still holding a rotated-out
//! key gets "bad load", re-authenticates and retries, and a minion whose key was deleted
//! cannot re-authenticate, which is the point of rotating.

use std::sync::{Arc, Mutex};

use halite_proto::crypticle::Crypticle;
use halite_proto::rsa::PrivateKey;
use halite_proto::ProtoError;

pub struct AesKey {
    inner: Mutex<(Crypticle, u64)>,
    /// The auth reply's signature of the current key, made by the first sign-in after a
    /// (re)generation; `None` until then.
    signature: Mutex<Option<(Crypticle, Arc<Vec<u8>>)>>,
}

impl AesKey {
    pub fn generate() -> Result<Self, ProtoError> {
        Ok(Self { inner: Mutex::new((Crypticle::generate()?, 0)), signature: Mutex::new(None) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Crypticle, u64)> {
        // Every update is a single assignment, so a poisoned lock is still consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn current(&self) -> Crypticle {
        self.lock().0.clone()
    }

    /// The current key with its auth-reply signature (one private-key operation per key,
    /// not per minion). The signature is matched to the key it was made for, so a rotation
    /// racing a sign-in can never pair a key with another key's signature.
    pub fn current_signed(&self, master: &PrivateKey) -> Result<(Crypticle, Arc<Vec<u8>>), ProtoError> {
        let key = self.current();
        let mut cached = self.signature.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((signed, sig)) = cached.as_ref() {
            if signed.key_string() == key.key_string() {
                return Ok((key, sig.clone()));
            }
        }
        let sig = Arc::new(halite_proto::auth::aes_signature(master, &key)?);
        *cached = Some((key.clone(), sig.clone()));
        Ok((key, sig))
    }

    /// The key to seal a publish with and its serial, strictly increasing for that key.
    pub fn next_publish(&self) -> (Crypticle, u64) {
        let mut inner = self.lock();
        inner.1 += 1;
        (inner.0.clone(), inner.1)
    }

    pub fn rotate(&self) -> Result<(), ProtoError> {
        let fresh = Crypticle::generate()?;
        *self.lock() = (fresh, 0);
        Ok(())
    }
}
