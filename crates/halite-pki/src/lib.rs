//! Salt's pki directory, read and written exactly as Salt lays it out.
//!
//! Owns: the master key pair (`master.pem`/`master.pub`), the minion key states
//! (`minions`, `minions_pre`, `minions_rejected`, `minions_denied`) and Salt's accept/reject/delete
//! of them by glob (`keyops`), the acceptance policy of
//! `_auth` (open_mode, auto_accept, autosign_file, autoreject_file, autosign_grains_dir,
//! `minions_autosign`), key fingerprints, and the `.dfn` dropfile through which `salt-key` asks
//! a running master to rotate its AES key. Both the master and `salt-key` use this crate, so a
//! pki dir written by one is read identically by the other, and by Python Salt.
//!
//! Must not: speak the wire protocol, hold sockets, or cache key state across calls — the pki
//! dir is shared with other processes (`salt-key`, Python tools), so every decision reads the
//! files as they are now. (The one cache, of parsed accepted keys, is checked against a `stat`
//! of the file on every use, so it only saves re-parsing an unchanged file.) Files are replaced atomically (write to a dot-file, then rename):
//! a crash never leaves a half-written key, and listings skip dot-files as Salt's do.

mod dir;
pub mod keyops;
mod keys;
mod policy;
mod rotation;

pub use dir::{finger, KeyState, PkiDir};
pub use keyops::KeyChange;
pub use keys::MasterKeys;
pub use policy::{decide_auth, AuthDecision, AuthPolicy};
pub use rotation::{request_rotation, take_rotation_request};

use std::path::PathBuf;

/// A pki operation that failed; every variant names the file or minion involved.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("invalid minion id {0:?}: it would name a file outside the pki dir")]
    InvalidId(String),
    #[error("{path}: not a usable RSA key: {reason}")]
    BadKey { path: PathBuf, reason: String },
    #[error("cannot generate the master key pair in {path}: {reason}")]
    Generate { path: PathBuf, reason: String },
}

impl PkiError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> PkiError {
        let path = path.into();
        move |source| PkiError::Io { path, source }
    }
}
