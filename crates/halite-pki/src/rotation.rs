//! The `.dfn` dropfile: how `salt-key` asks a running master to rotate its AES key.
//!
//! Salt's protocol between the two processes is a file in the master's cachedir, created mode
//! 0400 via a rename so it appears whole; the master polls for it. halite's `salt-key` and the
//! stock Python one both write it, and the master honours either.

use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use tracing::{error, info};

use crate::PkiError;

const DROPFILE: &str = ".dfn";

/// Asks the master using `cachedir` to rotate its AES key at its next check. Returns false when
/// a rotation is already pending. `master_id` is written into the file as Salt does (Salt's
/// clustered masters use it to elect the rotating master; a single master ignores it).
pub fn request_rotation(cachedir: &Path, master_id: &str) -> Result<bool, PkiError> {
    let dfn = cachedir.join(DROPFILE);
    if dfn.exists() {
        return Ok(false);
    }
    let next = cachedir.join(".dfn-next");
    let write = || -> std::io::Result<()> {
        let _ = fs::remove_file(&next);
        let mut file = fs::OpenOptions::new().write(true).create_new(true).mode(0o400).open(&next)?;
        file.set_permissions(fs::Permissions::from_mode(0o400))?;
        file.write_all(master_id.as_bytes())?;
        file.sync_all()?;
        fs::rename(&next, &dfn)
    };
    write().map_err(PkiError::io(&dfn))?;
    Ok(true)
}

/// Consumes a pending rotation request. Only a regular file of mode 0400 counts, as in Salt:
/// anything else in its place was not written by `salt-key`, so it is logged and removed rather
/// than obeyed (leaving it would repeat the error at every poll).
pub fn take_rotation_request(cachedir: &Path) -> bool {
    let dfn = cachedir.join(DROPFILE);
    let meta = match fs::symlink_metadata(&dfn) {
        Ok(meta) => meta,
        Err(e) if e.kind() == ErrorKind::NotFound => return false,
        Err(e) => {
            error!(path = %dfn.display(), error = %e, "cannot read the AES rotation dropfile");
            return false;
        }
    };
    let honoured = meta.file_type().is_file() && meta.permissions().mode() & 0o7777 == 0o400;
    if !honoured {
        error!(path = %dfn.display(), mode = format_args!("{:o}", meta.permissions().mode()),
            "found an AES rotation dropfile with incorrect permissions; ignoring and removing it");
    } else {
        info!(path = %dfn.display(), "AES key rotation requested");
    }
    if let Err(e) = fs::remove_file(&dfn) {
        error!(path = %dfn.display(), error = %e, "cannot remove the AES rotation dropfile");
    }
    honoured
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_then_take_once() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!take_rotation_request(dir.path()));
        assert!(request_rotation(dir.path(), "m_master").unwrap());
        assert!(!request_rotation(dir.path(), "m_master").unwrap(), "already pending");
        assert_eq!(fs::read_to_string(dir.path().join(".dfn")).unwrap(), "m_master");
        assert!(take_rotation_request(dir.path()));
        assert!(!take_rotation_request(dir.path()));
    }

    #[test]
    fn a_writable_dropfile_is_not_obeyed() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(".dfn"), "x").unwrap();
        assert!(!take_rotation_request(dir.path()));
        assert!(!dir.path().join(".dfn").exists());
    }
}
