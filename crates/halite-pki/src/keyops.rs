//! Salt's `salt.key.Key.accept` / `reject` / `delete` with a `match` glob, as the `key.*`
//! wheel functions (and so reactor `wheel.key.*` reactions) run them: which keys move, in
//! which order, and which ids changed. Telling the event bus and asking for an AES rotation is
//! the caller's part (the master fires `salt/key` itself; salt-key goes over the local channel).

use halite_target::fnmatch;
use tracing::error;

use crate::{KeyState, PkiDir, PkiError};

/// A key change and the extra states it may take keys from (`include_*` of the wheel).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyChange {
    Accept { include_rejected: bool, include_denied: bool },
    Reject { include_accepted: bool, include_denied: bool },
    Delete,
}

impl KeyChange {
    /// The `act` of the `salt/key` event Salt fires for each changed key.
    pub fn act(self) -> &'static str {
        match self {
            KeyChange::Accept { .. } => "accept",
            KeyChange::Reject { .. } => "reject",
            KeyChange::Delete => "delete",
        }
    }

    /// Whether Salt writes the rotation dropfile after this change (when `rotate_aes_key`).
    pub fn rotates_aes_key(self) -> bool {
        !matches!(self, KeyChange::Accept { .. })
    }

    /// The states keys are taken from, in Salt's order.
    fn sources(self) -> Vec<KeyState> {
        let mut from = Vec::new();
        match self {
            KeyChange::Accept { include_rejected, include_denied } => {
                from.push(KeyState::Pending);
                if include_rejected {
                    from.push(KeyState::Rejected);
                }
                if include_denied {
                    from.push(KeyState::Denied);
                }
            }
            KeyChange::Reject { include_accepted, include_denied } => {
                from.push(KeyState::Pending);
                if include_accepted {
                    from.push(KeyState::Accepted);
                }
                if include_denied {
                    from.push(KeyState::Denied);
                }
            }
            KeyChange::Delete => from.extend(KeyState::ALL),
        }
        from
    }
}

/// Salt's `name_match`: the ids of `state` matching any of `patterns` (an id matching two
/// patterns is listed twice, as Salt lists it).
pub fn name_match(pki: &PkiDir, state: KeyState, patterns: &[String]) -> Result<Vec<String>, PkiError> {
    let mut hits = Vec::new();
    for id in pki.list(state)? {
        let n = patterns.iter().filter(|p| fnmatch(&id, p)).count();
        hits.extend(std::iter::repeat_n(id, n));
    }
    Ok(hits)
}

/// What [`apply`] did: the keys that moved or went, each with the state it left, in Salt's
/// order (by source state, then case-insensitively), and the keys it could not change.
#[derive(Debug, Default)]
pub struct Applied {
    pub changed: Vec<(String, KeyState)>,
    pub failed: Vec<(String, PkiError)>,
}

impl Applied {
    pub fn ids(&self) -> Vec<&str> {
        self.changed.iter().map(|(id, _)| id.as_str()).collect()
    }

    /// Whether an accepted key went: what makes the AES key rotate, so its minion can no
    /// longer read publishes (moving a pending or denied key changes nobody's access).
    pub fn removed_an_accepted_key(&self) -> bool {
        self.changed.iter().any(|(_, from)| *from == KeyState::Accepted)
    }
}

/// Applies `change` to every key matching `patterns`. An accept skips a file that is not an
/// RSA public key, logged as Salt logs it; a key that vanished meanwhile is skipped silently,
/// as Salt's `except OSError: pass` does; a key that cannot be moved is logged and listed in
/// [`Applied::failed`] while the others still change, so no change already made goes
/// unreported. Only failing to list a key directory is an error.
pub fn apply(pki: &PkiDir, change: KeyChange, patterns: &[String]) -> Result<Applied, PkiError> {
    let mut applied = Applied::default();
    for state in change.sources() {
        for id in name_match(pki, state, patterns)? {
            let done = match change {
                KeyChange::Accept { .. } => match pki.holds_valid_key(state, &id) {
                    Ok(false) => {
                        error!(minion = %id, state = state.dir_name(), "Invalid RSA public key: not accepting it");
                        continue;
                    }
                    Ok(true) => pki.move_key(&id, state, KeyState::Accepted),
                    Err(e) => Err(e),
                },
                KeyChange::Reject { .. } => pki.move_key(&id, state, KeyState::Rejected),
                KeyChange::Delete => pki.remove(state, &id),
            };
            match done {
                Ok(true) => applied.changed.push((id, state)),
                Ok(false) => {}
                Err(e) => {
                    error!(minion = %id, state = state.dir_name(), error = %e, "key.{} failed for this key", change.act());
                    applied.failed.push((id, e));
                }
            }
        }
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pki_with(keys: &[(KeyState, &str)]) -> (tempfile::TempDir, PkiDir) {
        let dir = tempfile::tempdir().unwrap();
        let pki = PkiDir::open(dir.path()).unwrap();
        let key = halite_proto::rsa::PrivateKey::generate(2048).unwrap();
        let pem = String::from_utf8(key.public_key().unwrap().to_spki_pem().unwrap()).unwrap();
        for (state, id) in keys {
            pki.write(*state, id, &pem).unwrap();
        }
        (dir, pki)
    }

    #[test]
    fn accept_moves_pending_only_unless_included() {
        let (_d, pki) = pki_with(&[(KeyState::Pending, "web1"), (KeyState::Rejected, "web2")]);
        let plain = KeyChange::Accept { include_rejected: false, include_denied: false };
        assert_eq!(apply(&pki, plain, &["web*".into()]).unwrap().ids(), ["web1"]);
        assert_eq!(pki.list(KeyState::Rejected).unwrap(), ["web2"]);
        let all = KeyChange::Accept { include_rejected: true, include_denied: false };
        assert_eq!(apply(&pki, all, &["web*".into()]).unwrap().ids(), ["web2"]);
        assert_eq!(pki.list(KeyState::Accepted).unwrap(), ["web1", "web2"]);
    }

    #[test]
    fn delete_takes_every_state_and_reject_leaves_accepted() {
        let (_d, pki) = pki_with(&[(KeyState::Accepted, "a"), (KeyState::Pending, "b"), (KeyState::Denied, "c")]);
        let reject = KeyChange::Reject { include_accepted: false, include_denied: false };
        let rejected = apply(&pki, reject, &["*".into()]).unwrap();
        assert_eq!(rejected.ids(), ["b"]);
        assert!(!rejected.removed_an_accepted_key(), "a pending key rejected changes nobody's access");
        let deleted = apply(&pki, KeyChange::Delete, &["a".into(), "c".into()]).unwrap();
        assert_eq!(deleted.ids(), ["a", "c"]);
        assert!(deleted.removed_an_accepted_key());
        assert_eq!(pki.list(KeyState::Rejected).unwrap(), ["b"]);
        assert!(pki.list(KeyState::Accepted).unwrap().is_empty());
    }

    #[test]
    fn accept_refuses_a_file_that_is_no_key() {
        let (_d, pki) = pki_with(&[]);
        pki.write(KeyState::Pending, "bad", "not a key").unwrap();
        let accept = KeyChange::Accept { include_rejected: false, include_denied: false };
        assert!(apply(&pki, accept, &["*".into()]).unwrap().changed.is_empty());
        assert_eq!(pki.list(KeyState::Pending).unwrap(), ["bad"]);
    }
}
