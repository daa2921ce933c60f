//! The secrets file of an `auth users` module (`secrets file =`): `user:password` and
//! `@group:password` lines, the `strict modes` check on the file's owner and mode, and
//! which lines may authenticate a user, in the order of the reference (rsync's
//! authenticate.c).
//!
//! Lines are kept as the bytes of the file: a password is whatever follows the name
//! and its colon up to the end of the line (or a carriage return), spaces and colons
//! included, and the challenge response is a digest of exactly those bytes.

use std::fmt;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Largest secrets file read: far beyond any real one, small enough that a wrong path
/// (a log, a device) cannot exhaust memory.
pub const MAX_SECRETS_BYTES: u64 = 1 << 20;

/// Why a secrets file cannot be used. While it is refused, no login to the modules
/// naming it can succeed.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("cannot open the secrets file {}: {source}", path.display())]
    Open { path: PathBuf, source: std::io::Error },
    #[error("cannot read the secrets file {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error(
        "the secrets file {} must not be readable or writable by others (mode {mode:04o}); see `strict modes`",
        path.display()
    )]
    OtherAccessible { path: PathBuf, mode: u32 },
    #[error(
        "the secrets file {} must be owned by root when the daemon runs as root (owner uid {owner}); see `strict modes`",
        path.display()
    )]
    NotOwnedByRoot { path: PathBuf, owner: u32 },
    #[error("the secrets file {} is larger than {limit} bytes", path.display())]
    TooLarge { path: PathBuf, limit: u64 },
}

/// A loaded secrets file. Its Debug output names the file and counts its lines, never
/// showing a password, and the bytes are wiped when it is dropped.
pub struct Secrets {
    path: PathBuf,
    content: Vec<u8>,
}

impl Secrets {
    /// Reads `path`. With `strict_modes` the file is refused when "other" may read or
    /// write it, and, when the daemon runs as root, when root does not own it; the
    /// check is made on the opened file, so the path cannot be swapped after it.
    /// Symlinks on the way owned by anyone but root or the daemon's user are refused,
    /// so a planted link cannot point the daemon at another file.
    pub fn load(path: &Path, strict_modes: bool) -> Result<Secrets, SecretsError> {
        let file = crate::config::open_operator_file(path)
            .map_err(|source| SecretsError::Open { path: path.into(), source })?;
        let meta = file.metadata().map_err(|source| SecretsError::Read { path: path.into(), source })?;
        if strict_modes {
            // SAFETY: geteuid has no preconditions.
            let daemon_uid = unsafe { libc::geteuid() };
            check_strict_modes(path, meta.mode(), meta.uid(), daemon_uid)?;
        }
        let too_large = || SecretsError::TooLarge { path: path.into(), limit: MAX_SECRETS_BYTES };
        if meta.len() > MAX_SECRETS_BYTES {
            return Err(too_large());
        }
        let mut content = Vec::new();
        file.take(MAX_SECRETS_BYTES + 1)
            .read_to_end(&mut content)
            .map_err(|source| SecretsError::Read { path: path.into(), source })?;
        let secrets = Secrets { path: path.into(), content };
        if secrets.content.len() as u64 > MAX_SECRETS_BYTES {
            return Err(too_large());
        }
        Ok(secrets)
    }

    /// Secrets from text already read; `path` only names them in messages.
    pub fn from_bytes(path: &Path, content: &[u8]) -> Secrets {
        Secrets { path: path.into(), content: content.to_vec() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The passwords that may authenticate `user`, in file order: the first
    /// `user:` line, and the first `@group:` line for `matched_group` — the group whose
    /// `@group` rule in `auth users` admitted the user, if it was a group rule. The
    /// reference accepts a response made with either. A user name starting with `#` has
    /// none, so that a comment line can never serve as a password.
    pub fn candidates(&self, user: &str, matched_group: Option<&str>) -> Vec<&[u8]> {
        let mut found = Vec::new();
        if user.starts_with('#') {
            return found;
        }
        let mut user_key = Some(user.as_bytes());
        let mut group_key = matched_group.map(str::as_bytes);
        for line in self.lines() {
            if user_key.is_none() && group_key.is_none() {
                break;
            }
            let (key, rest) = match line.strip_prefix(b"@") {
                Some(rest) => (&mut group_key, rest),
                None => (&mut user_key, line),
            };
            if let Some(password) = key.and_then(|name| password_after(rest, name)) {
                found.push(password);
                *key = None;
            }
        }
        found
    }

    /// The first password in file order on a line for `user` or for one of `groups`,
    /// if it is UTF-8. A daemon checking a response should try every entry of
    /// [`Secrets::candidates`] instead: the reference accepts the user's line or the
    /// matched group's line, whichever the client's password fits.
    pub fn password_for(&self, user: &str, groups: &[&str]) -> Option<&str> {
        if user.starts_with('#') {
            return None;
        }
        self.lines().find_map(|line| {
            let password = match line.strip_prefix(b"@") {
                Some(rest) => groups.iter().find_map(|g| password_after(rest, g.as_bytes())),
                None => password_after(line, user.as_bytes()),
            }?;
            std::str::from_utf8(password).ok()
        })
    }

    /// The lines as rsync reads them: leading carriage returns skipped, and the line
    /// cut at the next one; empty lines dropped.
    fn lines(&self) -> impl Iterator<Item = &[u8]> {
        self.content.split(|&b| b == b'\n').filter_map(|raw| {
            let start = raw.iter().position(|&b| b != b'\r')?;
            let line = &raw[start..];
            let end = line.iter().position(|&b| b == b'\r').unwrap_or(line.len());
            Some(&line[..end])
        })
    }
}

/// The password on `line` if the line is `name:password`.
fn password_after<'l>(line: &'l [u8], name: &[u8]) -> Option<&'l [u8]> {
    line.strip_prefix(name)?.strip_prefix(b":")
}

/// The `strict modes` rule: neither other-read nor other-write (group bits and
/// other-execute are not looked at), and owned by root when the daemon is root.
fn check_strict_modes(path: &Path, mode: u32, owner: u32, daemon_uid: u32) -> Result<(), SecretsError> {
    if mode & 0o006 != 0 {
        return Err(SecretsError::OtherAccessible { path: path.into(), mode: mode & 0o7777 });
    }
    if daemon_uid == 0 && owner != 0 {
        return Err(SecretsError::NotOwnedByRoot { path: path.into(), owner });
    }
    Ok(())
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secrets")
            .field("path", &self.path)
            .field("lines", &self.lines().count())
            .finish_non_exhaustive()
    }
}

impl Drop for Secrets {
    fn drop(&mut self) {
        for byte in self.content.iter_mut() {
            // SAFETY: a valid, exclusively borrowed byte; the volatile write keeps the
            // wipe from being optimised away as a store to memory about to be freed.
            unsafe { std::ptr::write_volatile(byte, 0) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    const SAMPLE: &[u8] = b"# backups\nbackup:s3cret\n@deployers:team pass\ndeploy:d:with:colons\r\n\nbackup:second\n";

    fn sample() -> Secrets {
        Secrets::from_bytes(Path::new("/etc/rsyncd.secrets"), SAMPLE)
    }

    fn write_secrets(dir: &tempfile::TempDir, mode: u32) -> PathBuf {
        let path = dir.path().join("rsyncd.secrets");
        let mut file = std::fs::File::create(&path).expect("create");
        file.write_all(SAMPLE).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        path
    }

    #[test]
    fn passwords_are_the_rest_of_the_line() {
        let secrets = sample();
        assert_eq!(secrets.password_for("backup", &[]), Some("s3cret"));
        assert_eq!(secrets.password_for("deploy", &[]), Some("d:with:colons"));
        assert_eq!(secrets.password_for("nobody", &[]), None);
        assert_eq!(secrets.password_for("nobody", &["deployers"]), Some("team pass"));
        assert_eq!(secrets.password_for("back", &[]), None);
        assert_eq!(secrets.password_for("deployers", &[]), None);
    }

    #[test]
    fn candidates_are_the_first_user_line_and_the_first_matched_group_line() {
        let secrets = sample();
        assert_eq!(secrets.candidates("backup", None), vec![&b"s3cret"[..]]);
        assert_eq!(secrets.candidates("backup", Some("deployers")), vec![&b"s3cret"[..], &b"team pass"[..]]);
        assert_eq!(secrets.candidates("deploy", Some("deployers")), vec![&b"team pass"[..], &b"d:with:colons"[..]]);
        assert!(secrets.candidates("ghost", Some("others")).is_empty());
    }

    #[test]
    fn comment_lines_never_authenticate() {
        let secrets = Secrets::from_bytes(Path::new("s"), b"# backups:oops\n#x:y\n");
        assert!(secrets.candidates("# backups", None).is_empty());
        assert!(secrets.candidates("#x", None).is_empty());
        assert_eq!(secrets.password_for("#x", &[]), None);
    }

    #[test]
    fn carriage_returns_end_lines() {
        let secrets = Secrets::from_bytes(Path::new("s"), b"\r\ralice:pw\r\nbob:p\rtail\n");
        assert_eq!(secrets.password_for("alice", &[]), Some("pw"));
        assert_eq!(secrets.password_for("bob", &[]), Some("p"));
    }

    #[test]
    fn debug_never_shows_passwords() {
        let shown = format!("{:?}", sample());
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(!shown.contains("team pass"), "{shown}");
        assert!(shown.contains("rsyncd.secrets"), "{shown}");
    }

    #[test]
    fn strict_modes_rules() {
        let p = Path::new("/etc/rsyncd.secrets");
        assert!(check_strict_modes(p, 0o100600, 0, 0).is_ok());
        assert!(check_strict_modes(p, 0o100640, 0, 0).is_ok());
        assert!(check_strict_modes(p, 0o100601, 0, 0).is_ok());
        assert!(matches!(
            check_strict_modes(p, 0o100644, 0, 0),
            Err(SecretsError::OtherAccessible { mode: 0o644, .. })
        ));
        assert!(matches!(check_strict_modes(p, 0o100602, 0, 0), Err(SecretsError::OtherAccessible { .. })));
        assert!(matches!(
            check_strict_modes(p, 0o100600, 1000, 0),
            Err(SecretsError::NotOwnedByRoot { owner: 1000, .. })
        ));
        assert!(check_strict_modes(p, 0o100600, 1000, 1000).is_ok());
        assert!(check_strict_modes(p, 0o100600, 0, 1000).is_ok());
    }

    #[test]
    fn load_checks_the_file_on_disk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_secrets(&dir, 0o600);
        let secrets = Secrets::load(&path, true).expect("mode 600 passes");
        assert_eq!(secrets.password_for("backup", &[]), Some("s3cret"));

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        assert!(Secrets::load(&path, true).is_ok());

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = Secrets::load(&path, true).expect_err("mode 644 is refused");
        assert!(matches!(err, SecretsError::OtherAccessible { .. }));
        assert!(err.to_string().contains(&path.display().to_string()), "{err}");
        assert!(Secrets::load(&path, false).is_ok(), "strict modes off skips the check");

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o606)).expect("chmod");
        assert!(matches!(Secrets::load(&path, true), Err(SecretsError::OtherAccessible { .. })));
    }

    #[test]
    fn load_requires_root_ownership_when_root() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_secrets(&dir, 0o600);
        std::os::unix::fs::chown(&path, Some(65534), None).expect("chown");
        assert!(matches!(Secrets::load(&path, true), Err(SecretsError::NotOwnedByRoot { owner: 65534, .. })));
        assert!(Secrets::load(&path, false).is_ok());
    }

    #[test]
    fn missing_and_oversized_files_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("absent");
        assert!(matches!(Secrets::load(&missing, true), Err(SecretsError::Open { .. })));
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; MAX_SECRETS_BYTES as usize + 1]).expect("write");
        std::fs::set_permissions(&big, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert!(matches!(Secrets::load(&big, true), Err(SecretsError::TooLarge { .. })));
    }

    #[test]
    fn untrusted_symlinks_are_refused() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let target = write_secrets(&dir, 0o600);
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        assert!(Secrets::load(&link, true).is_ok(), "a link of our own is followed");
        std::os::unix::fs::lchown(&link, Some(65534), None).expect("lchown");
        assert!(matches!(Secrets::load(&link, true), Err(SecretsError::Open { .. })));
    }
}
