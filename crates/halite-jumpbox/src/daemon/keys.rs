//! Host keys and users' `authorized_keys` files: the daemon's only reads of key material.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use halite_authkeys::AuthorizedKeys;
use rand::RngCore;
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::ssh_key::LineEnding;
use russh::keys::PrivateKey;
use tracing::{info, warn};

/// Largest `authorized_keys` file read: hundreds of keys fit in a few hundred KiB.
pub const MAX_AUTHORIZED_KEYS_BYTES: u64 = 1 << 20;

/// The configured host keys, generating an ed25519 key at a missing path whose name does
/// not say another type (sshd's `ssh-keygen -A` makes the others on the VM), so the key
/// clients pinned in `known_hosts` stays the same across restarts.
pub fn host_keys(paths: &[PathBuf]) -> anyhow::Result<Vec<PrivateKey>> {
    let mut keys = Vec::new();
    for path in paths {
        if !path.exists() {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if ["rsa", "ecdsa", "dsa"]
                .iter()
                .any(|t| name.contains(&format!("_{t}_")) || name.contains(&format!("{t}_key")))
            {
                warn!(path = %path.display(), "host key file missing, and only ed25519 keys are generated: skipped");
                continue;
            }
            generate(path).with_context(|| format!("generating host key {}", path.display()))?;
        }
        let key =
            russh::keys::load_secret_key(path, None).with_context(|| format!("reading host key {}", path.display()))?;
        info!(path = %path.display(), algorithm = %key.algorithm(), fingerprint = %key.public_key().fingerprint(Default::default()), "host key");
        keys.push(key);
    }
    if keys.is_empty() {
        bail!("host_keys: none of {} could be read or made", paths.len());
    }
    Ok(keys)
}

fn generate(path: &Path) -> anyhow::Result<()> {
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    let key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
    let private = key.to_openssh(LineEnding::LF)?;
    let public = key.public_key().to_openssh()?;
    write_new(path, private.as_bytes(), 0o600)?;
    let mut pub_path = path.as_os_str().to_owned();
    pub_path.push(".pub");
    write_new(Path::new(&pub_path), format!("{public}\n").as_bytes(), 0o644)?;
    info!(path = %path.display(), "generated a new ed25519 host key");
    Ok(())
}

/// Writes a file whole or not at all: a temporary file beside it, synced, then renamed.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{}.tmp", path.file_name().and_then(|n| n.to_str()).unwrap_or("key")));
    let mut file = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path)?;
    fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// The CA keys of a `trusted_user_ca_keys` file.
pub fn authorities(path: &Path) -> Result<Vec<Vec<u8>>, String> {
    let file = open_regular(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut text = String::new();
    file.take(MAX_AUTHORIZED_KEYS_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if text.len() as u64 > MAX_AUTHORIZED_KEYS_BYTES {
        return Err(format!("{} is larger than {MAX_AUTHORIZED_KEYS_BYTES} bytes", path.display()));
    }
    halite_jumpbox::certs::read_authorities(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// A local account, as `%u` and `%h` need it.
#[derive(Debug, Clone)]
pub struct Account {
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
    /// Past the expiry date of its shadow entry (`chage -E`), as pam_unix refuses it.
    pub expired: bool,
}

pub fn account(user: &str) -> Option<Account> {
    let name = std::ffi::CString::new(user).ok()?;
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is to a live local of the size given; getpwnam_r fills `pwd`
    // with pointers into `buf`, read below while `buf` lives.
    let rc = unsafe { libc::getpwnam_r(name.as_ptr(), &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() || pwd.pw_dir.is_null() {
        return None;
    }
    // SAFETY: pw_dir points to a NUL-terminated string inside `buf`.
    let home = unsafe { std::ffi::CStr::from_ptr(pwd.pw_dir) }.to_str().ok()?.to_owned();
    Some(Account { uid: pwd.pw_uid, gid: pwd.pw_gid, home: PathBuf::from(home), expired: expired(&name) })
}

/// Whether the shadow entry's account expiry (days since the epoch) has come.
fn expired(name: &std::ffi::CStr) -> bool {
    let mut spwd: libc::spwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut result: *mut libc::spwd = std::ptr::null_mut();
    // SAFETY: as for getpwnam_r above.
    let rc = unsafe { libc::getspnam_r(name.as_ptr(), &mut spwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() || spwd.sp_expire < 0 {
        return false;
    }
    let today = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() / 86_400);
    today as i64 >= spwd.sp_expire as i64
}

/// A user's parsed `authorized_keys`, and where it was read.
#[derive(Debug)]
pub struct AuthorizedFile {
    pub path: PathBuf,
    pub keys: AuthorizedKeys,
}

/// Opens a file for reading without following a final symlink and without waiting on a
/// FIFO a user may have put in its place; only a regular file is returned.
pub fn open_regular(path: &Path) -> std::io::Result<fs::File> {
    let file = fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW).open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other(format!("{} is not a regular file", path.display())));
    }
    Ok(file)
}

/// Opens `path` with the user's file-system identity, as sshd opens the file with the
/// user's uid: a link to a file only root may read (root's own `authorized_keys`,
/// /etc/shadow) is refused, not read for the user. setfsuid(2) applies to the calling
/// thread only, a thread of the blocking pool, and is restored before it returns.
fn open_as(account: &Account, path: &Path) -> std::io::Result<fs::File> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || account.uid == 0 {
        return open_regular(path);
    }
    // SAFETY: setfsgid/setfsuid change only this thread's file-system ids, and the
    // previous ids they return are put back below whatever the open did.
    let (old_gid, old_uid) = unsafe { (libc::setfsgid(account.gid), libc::setfsuid(account.uid)) };
    let opened = open_regular(path);
    unsafe {
        libc::setfsuid(old_uid as libc::uid_t);
        libc::setfsgid(old_gid as libc::gid_t);
    }
    opened
}

/// Reads a user's `authorized_keys` as sshd's `StrictModes yes` would: the file and every
/// directory above it, up to the home directory (or the root), must belong to the user or
/// root and be writable by nobody else, so another local user cannot slip a key in. The
/// path is resolved first, so a symlink cannot hide the directories the file is really in.
pub fn authorized_keys(path: &Path, account: &Account) -> Result<AuthorizedFile, String> {
    let real = fs::canonicalize(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let home = fs::canonicalize(&account.home).unwrap_or_else(|_| account.home.clone());
    let mut file = open_as(account, &real).map_err(|e| format!("{}: {e}", real.display()))?;
    let meta = file.metadata().map_err(|e| format!("{}: {e}", real.display()))?;
    strict_modes(&real, &meta, account)?;
    for dir in real.ancestors().skip(1) {
        let dmeta = fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        strict_modes(dir, &dmeta, account)?;
        if dir == home {
            break;
        }
    }
    let mut bytes = Vec::new();
    (&mut file)
        .take(MAX_AUTHORIZED_KEYS_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{}: {e}", real.display()))?;
    if bytes.len() as u64 > MAX_AUTHORIZED_KEYS_BYTES {
        return Err(format!("{} is larger than {MAX_AUTHORIZED_KEYS_BYTES} bytes", real.display()));
    }
    // Keys are ASCII; a stray byte elsewhere must not void every line.
    let keys = halite_authkeys::parse(&String::from_utf8_lossy(&bytes));
    Ok(AuthorizedFile { path: path.to_owned(), keys })
}

fn strict_modes(path: &Path, meta: &fs::Metadata, account: &Account) -> Result<(), String> {
    if meta.uid() != account.uid && meta.uid() != 0 {
        return Err(format!("bad ownership of {}: uid {}", path.display(), meta.uid()));
    }
    if meta.permissions().mode() & 0o022 != 0 {
        return Err(format!(
            "bad modes for {}: {:o} (writable by group or others)",
            path.display(),
            meta.permissions().mode() & 0o7777
        ));
    }
    Ok(())
}
