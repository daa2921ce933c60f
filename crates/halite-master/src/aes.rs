//! The shared AES key and its publish serial. A new key at every start and at every rotation;
//! the serial restarts with the key, because a minion resets its counter when its key changes.
//!
//! Only the current key opens v2 requests, as in Salt: a minion still holding a rotated-out
//! key gets "bad load", re-authenticates and retries, and a minion whose key was deleted
//! cannot re-authenticate, which is the point of rotating.

use std::sync::Mutex;

use halite_proto::crypticle::Crypticle;
use halite_proto::ProtoError;

pub struct AesKey {
    inner: Mutex<(Crypticle, u64)>,
}

impl AesKey {
    pub fn generate() -> Result<Self, ProtoError> {
        Ok(Self { inner: Mutex::new((Crypticle::generate()?, 0)) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Crypticle, u64)> {
        // Every update is a single assignment, so a poisoned lock is still consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn current(&self) -> Crypticle {
        self.lock().0.clone()
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
