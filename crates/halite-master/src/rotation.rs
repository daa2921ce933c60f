//! When the shared AES key changes, and what follows.
//!
//! Two causes, checked once a second by the daemon's maintenance loop:
//! - salt-key deleted or rejected an accepted key and left Salt's `.dfn` dropfile: the key
//!   must change at once, so the removed minion cannot open the next publish;
//! - the key is `publish_session` seconds old. Salt 3006 rotates on this schedule; 3007 and
//!   3008 only do it for master clusters (their `handle_key_rotate` checks the cluster key's
//!   age only), so a single 3007 master keeps one AES key until it restarts. halite keeps the
//!   3006 behaviour, which is what the option's documentation still describes.
//!
//! After a rotation every minion re-authenticates the first time it cannot open a publish.
//! `ping_on_rotate` makes that happen at once (a `test.ping` to the connected minions) instead
//! of at the next job. What keeps 10,000 simultaneous sign-ins from collapsing the master is
//! in `workers.rs` (a sign-in whose connection is gone is skipped, not computed) and
//! `aes.rs` (one signature per key, not per minion).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use halite_proto::payload::{map, Value};
use tracing::{error, info, warn};

use crate::jobs::PublishRequest;
use crate::master::Master;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationCause {
    /// salt-key removed an accepted key (Salt's dropfile).
    KeyRemoved,
    /// The key reached `publish_session` seconds.
    Schedule,
}

impl Master {
    /// Rotates the AES key if salt-key asked for it or the key has served its
    /// `publish_session`; the daemon calls this once a second.
    pub fn maintain_aes_key(&self) {
        if halite_pki::take_rotation_request(&self.settings.cachedir) {
            self.rotate_aes_key(RotationCause::KeyRemoved);
        } else if self.aes_key_expired(Instant::now()) {
            self.rotate_aes_key(RotationCause::Schedule);
        }
    }

    fn aes_key_expired(&self, now: Instant) -> bool {
        let session = self.settings.publish_session;
        if session == 0 {
            return false;
        }
        let since = *self.aes_since.lock().unwrap_or_else(|p| p.into_inner());
        now.saturating_duration_since(since) >= Duration::from_secs(session)
    }

    pub fn rotate_aes_key(&self, cause: RotationCause) {
        // No publish sealed under the old key is queued after the new key is in force.
        let rotated = {
            let _in_order = self.publish_order.lock().unwrap_or_else(|p| p.into_inner());
            self.aes.rotate()
        };
        if let Err(e) = rotated {
            error!(error = %e, ?cause, "AES key rotation failed; keeping the old key");
            return;
        }
        *self.aes_since.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        match cause {
            RotationCause::KeyRemoved => info!("AES key rotated: a minion key was deleted or rejected"),
            RotationCause::Schedule => {
                info!(publish_session = self.settings.publish_session, "AES key rotated: publish_session elapsed")
            }
        }
        // Every minion signs in again under the new key, so the count `max_minions` limits
        // starts over.
        self.connected.lock().unwrap_or_else(|p| p.into_inner()).clear();
        if cause == RotationCause::KeyRemoved {
            self.forget_unaccepted_minions();
        }
        self.events.fire("key", map([("rotate_aes_key", Value::Boolean(true))]));
        if self.settings.ping_on_rotate {
            self.ping_connected_minions();
        }
    }

    /// Salt's `ping_all_connected_minions`: a `test.ping` to the minions connected to the
    /// publish port, which each fail to open and so re-authenticate now rather than at the
    /// next real job.
    fn ping_connected_minions(&self) {
        let ids = self.connected_ids();
        if ids.is_empty() {
            info!("ping_on_rotate: no minion is connected");
            return;
        }
        let count = ids.len();
        let tgt = Value::Array(ids.into_iter().map(Value::from).collect());
        match self.publish_job(&PublishRequest::from_master(
            "root",
            tgt,
            "list",
            Value::from("test.ping"),
            Value::Array(vec![]),
        )) {
            Ok(job) => info!(jid = %job.jid, minions = count, "ping_on_rotate: pinged the connected minions"),
            Err(e) => warn!(error = %e, "ping_on_rotate: cannot ping the connected minions"),
        }
    }

    /// What Salt's `check_minion_cache` does after salt-key deletes or rejects a key: drop the
    /// cached data and session key of every minion whose key is no longer accepted. salt-key
    /// cannot do it itself here, because the redb file belongs to the running master.
    fn forget_unaccepted_minions(&self) {
        let accepted: HashSet<String> = match self.pki.list(halite_pki::KeyState::Accepted) {
            Ok(ids) => ids.into_iter().collect(),
            Err(e) => {
                error!(error = %e, "cannot list accepted keys; keeping the minion data cache as is");
                return;
            }
        };
        let cached = match self.store.known_minions() {
            Ok(ids) => ids,
            Err(e) => {
                error!(error = %e, "cannot list the minion data cache");
                return;
            }
        };
        for id in cached.into_iter().filter(|id| !accepted.contains(id)) {
            match self.store.forget_minion(&id) {
                Ok(()) => info!(minion = %id, "minion data and session key dropped: key no longer accepted"),
                Err(e) => error!(minion = %id, error = %e, "cannot drop minion data"),
            }
        }
    }
}
