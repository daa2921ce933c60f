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

/// Applies `change` to every key matching `patterns`; returns the ids whose key moved or was
/// removed, in Salt's order (by source state, then case-insensitively). An accept skips a file
/// that is not an RSA public key, logged as Salt logs it; a key that vanished meanwhile is
/// skipped silently, as Salt's `except OSError: pass` does.
pub fn apply(pki: &PkiDir, change: KeyChange, patterns: &[String]) -> Result<Vec<String>, PkiError> {
    let mut changed = Vec::new();
    for state in change.sources() {
        for id in name_match(pki, state, patterns)? {
            let done = match change {
                KeyChange::Accept { .. } => {
                    if !pki.holds_valid_key(state, &id)? {
                        error!(minion = %id, state = state.dir_name(), "Invalid RSA public key: not accepting it");
                        continue;
                    }
                    pki.move_key(&id, state, KeyState::Accepted)?
                }
                KeyChange::Reject { .. } => pki.move_key(&id, state, KeyState::Rejected)?,
                KeyChange::Delete => pki.remove(state, &id)?,
            };
            if done {
                changed.push(id);
            }
        }
    }
    Ok(changed)
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
        assert_eq!(apply(&pki, plain, &["web*".into()]).unwrap(), ["web1"]);
        assert_eq!(pki.list(KeyState::Rejected).unwrap(), ["web2"]);
        let all = KeyChange::Accept { include_rejected: true, include_denied: false };
        assert_eq!(apply(&pki, all, &["web*".into()]).unwrap(), ["web2"]);
        assert_eq!(pki.list(KeyState::Accepted).unwrap(), ["web1", "web2"]);
    }

    #[test]
    fn delete_takes_every_state_and_reject_leaves_accepted() {
        let (_d, pki) = pki_with(&[(KeyState::Accepted, "a"), (KeyState::Pending, "b"), (KeyState::Denied, "c")]);
        let reject = KeyChange::Reject { include_accepted: false, include_denied: false };
        assert_eq!(apply(&pki, reject, &["*".into()]).unwrap(), ["b"]);
        assert_eq!(apply(&pki, KeyChange::Delete, &["a".into(), "c".into()]).unwrap(), ["a", "c"]);
        assert_eq!(pki.list(KeyState::Rejected).unwrap(), ["b"]);
        assert!(pki.list(KeyState::Accepted).unwrap().is_empty());
    }

    #[test]
    fn accept_refuses_a_file_that_is_no_key() {
        let (_d, pki) = pki_with(&[]);
        pki.write(KeyState::Pending, "bad", "not a key").unwrap();
        let accept = KeyChange::Accept { include_rejected: false, include_denied: false };
        assert!(apply(&pki, accept, &["*".into()]).unwrap().is_empty());
        assert_eq!(pki.list(KeyState::Pending).unwrap(), ["bad"]);
    }
}
