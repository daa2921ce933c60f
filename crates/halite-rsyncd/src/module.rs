//! A module as a connection uses it: its rsyncd.conf section with the uid and gid
//! resolved once at start-up, the connection slots of `max connections`, and entering
//! the module — chroot and privileges dropped for good before a byte of the transfer is
//! read.

use crate::config::{self, ConnectionLimit, Module};
use crate::tree::Tree;
use std::fs::{File, OpenOptions};
use std::net::IpAddr;
use std::os::fd::AsRawFd;

/// A module's settings, resolved.
#[derive(Debug, Clone)]
pub struct ModuleView {
    pub name: String,
    pub config: Module,
    /// The uid and gid the transfer runs as, when the daemon runs as root.
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Settings that depend on whether the chroot was made, fixed by [`ModuleView::enter`].
    pub munge_symlinks: bool,
    pub numeric_ids: bool,
    /// Chrooted into the module itself: the reference's messages then name files from
    /// the new root ("/dir/file"), and so do ours.
    pub names_from_root: bool,
    /// The `log format` parsed, when the module has `transfer logging`.
    pub transfer_log_format: Option<halite_rsync::logformat::LogFormat>,
}

#[derive(Debug, thiserror::Error)]
pub enum SlotError {
    #[error("max connections ({0}) reached")]
    Full(u32),
    #[error("{0}")]
    Lock(std::io::Error),
}

/// A held connection slot: a write lock on one 4-byte record of the lock file, released
/// when the connection's process ends (as the reference's claim_connection does, so a
/// crashed connection never leaks its slot).
pub struct Slot {
    _file: Option<File>,
}

impl ModuleView {
    /// Resolves a module's uid and gid: as set, else (when the daemon runs as root) the
    /// reference's defaults, "nobody" and the group "nobody" or "nogroup".
    pub fn new(config: Module, root: bool) -> Result<ModuleView, String> {
        let uid = match (&config.uid, root) {
            (Some(u), _) => Some(config::resolve_uid(u).map_err(|e| format!("[{}] uid: {e}", config.name))?),
            (None, true) => Some(config::resolve_uid("nobody").map_err(|e| format!("[{}] uid: {e}", config.name))?),
            (None, false) => None,
        };
        let gid = match (config.gid_list().first(), root) {
            (Some(g), _) => Some(config::resolve_gid(g).map_err(|e| format!("[{}] gid: {e}", config.name))?),
            (None, true) => Some(
                config::resolve_gid("nobody")
                    .or_else(|_| config::resolve_gid("nogroup"))
                    .map_err(|e| format!("[{}] gid: {e}", config.name))?,
            ),
            (None, false) => None,
        };
        let transfer_log_format = if config.transfer_logging {
            Some(
                halite_rsync::logformat::LogFormat::parse(&config.log_format)
                    .map_err(|e| format!("[{}] log format: {e}", config.name))?,
            )
        } else {
            None
        };
        Ok(ModuleView {
            transfer_log_format,
            name: config.name.clone(),
            munge_symlinks: config.munge_symlinks_effective(false),
            numeric_ids: config.numeric_ids_effective(false),
            names_from_root: false,
            config,
            uid,
            gid,
        })
    }

    /// `hosts allow`/`hosts deny` for the client at `peer`, known as `host` (the
    /// confirmed reverse name, or "UNKNOWN"/"UNDETERMINED").
    pub fn allows(&self, peer: IpAddr, host: &str) -> bool {
        let resolver: Option<crate::hosts::Resolver<'_>> =
            self.config.forward_lookup.then_some(&crate::hosts::system_resolver as crate::hosts::Resolver<'_>);
        crate::hosts::allows_resolving(&self.config.hosts_allow, &self.config.hosts_deny, peer, Some(host), resolver)
    }

    /// The passwords the secrets file allows for `user`, when an `auth users` rule lets
    /// the user in (its own line, and the line of the group whose rule matched).
    pub fn passwords_for(&self, user: &str) -> Vec<Vec<u8>> {
        self.secrets_of(user).unwrap_or_default()
    }

    /// The passwords for `user`, or why there are none, in the words the reference's
    /// log uses after "auth failed on module … for USER: ".
    pub fn secrets_of(&self, user: &str) -> Result<Vec<Vec<u8>>, &'static str> {
        let Some(auth) = config::authorise_user(&self.config.auth_users, user) else {
            return Err("no matching rule");
        };
        if auth.access == config::AuthAccess::Deny {
            return Err("denied by rule");
        }
        let Some(secrets_path) = self.config.secrets_file.as_ref() else {
            return Err("no secrets file");
        };
        match crate::secrets::Secrets::load(secrets_path, self.config.strict_modes) {
            Ok(s) => {
                let found: Vec<Vec<u8>> =
                    s.candidates(user, auth.group.as_deref()).into_iter().map(<[u8]>::to_vec).collect();
                if found.is_empty() {
                    Err("secret not found")
                } else {
                    Ok(found)
                }
            }
            Err(e) => {
                tracing::error!("module {}: secrets file: {e}", self.name);
                Err("ignoring secrets file")
            }
        }
    }

    /// Whether `user`'s `auth users` rule makes the transfer read-only (`:ro`/`:rw`).
    pub fn read_only_for(&self, user: Option<&str>) -> bool {
        match user.and_then(|u| config::authorise_user(&self.config.auth_users, u)) {
            Some(a) => a.access.read_only(self.config.read_only).unwrap_or(true),
            None => self.config.read_only,
        }
    }

    pub fn claim_slot(&self) -> Result<Slot, SlotError> {
        let max = match self.config.max_connections {
            ConnectionLimit::Unlimited => return Ok(Slot { _file: None }),
            ConnectionLimit::Refused => return Err(SlotError::Full(0)),
            ConnectionLimit::AtMost(n) => n,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.config.lock_file)
            .map_err(SlotError::Lock)?;
        for i in 0..max {
            // SAFETY: a zeroed flock is valid; the fields set describe a write lock on
            // record i.
            let mut lock: libc::flock = unsafe { std::mem::zeroed() };
            lock.l_type = libc::F_WRLCK as libc::c_short;
            lock.l_whence = libc::SEEK_SET as libc::c_short;
            lock.l_start = (i as libc::off_t) * 4;
            lock.l_len = 4;
            // SAFETY: fcntl on an open descriptor with a valid flock.
            if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &lock) } == 0 {
                return Ok(Slot { _file: Some(file) });
            }
        }
        Err(SlotError::Full(max))
    }

    /// A file in messages to the client, as the reference's full_fname() writes it:
    /// `"dir/file" (in module)`.
    pub fn full_fname(&self, rel: &[u8]) -> String {
        self.full_fname_in(b"", rel)
    }

    /// [`ModuleView::full_fname`] of `rel` in directory `cwd` (module-relative): the
    /// reference names a file from its working directory's place in the module, so a
    /// push into `web1/` says `"/web1/file"`.
    pub fn full_fname_in(&self, cwd: &[u8], rel: &[u8]) -> String {
        let (lead, sep) = match (cwd.is_empty(), self.names_from_root) {
            (true, false) => ("", ""),
            (true, true) => ("/", ""),
            (false, _) => ("/", "/"),
        };
        format!("\"{lead}{}{sep}{}\" (in {})", String::from_utf8_lossy(cwd), String::from_utf8_lossy(rel), self.name)
    }

    /// Confines this process to the module: chroot when wanted and possible, then the
    /// module's gid and uid when running as root. Returns the module's tree; whatever
    /// the chroot, every path is resolved beneath the module by the tree itself.
    pub fn enter(&mut self) -> Result<Tree, String> {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let chroot = self.config.chroot_wanted() && root;
        if self.config.chroot_required() && !root {
            return Err("chroot failed".into());
        }
        let (chroot_dir, inner) = match self.config.chroot_split() {
            Some((outer, inner)) => (outer.to_string(), inner.to_string()),
            None => (self.config.path.display().to_string(), "/".to_string()),
        };
        let tree = if chroot {
            let path = std::ffi::CString::new(chroot_dir).map_err(|_| "invalid path".to_string())?;
            // SAFETY: chroot and chdir with valid C strings.
            if unsafe { libc::chroot(path.as_ptr()) } != 0 || unsafe { libc::chdir(c"/".as_ptr()) } != 0 {
                return Err("chroot failed".into());
            }
            Tree::open(std::path::Path::new(&inner))
        } else {
            Tree::open(&self.config.path)
        }
        .map_err(|e| format!("chdir failed: {e}"))?;
        self.names_from_root = chroot && inner == "/";
        self.munge_symlinks = self.config.munge_symlinks_effective(chroot);
        self.numeric_ids = self.config.numeric_ids_effective(chroot);
        if root {
            if let Some(gid) = self.gid {
                // SAFETY: setgroups with one valid gid, then setgid.
                if unsafe { libc::setgroups(1, &gid) } != 0 || unsafe { libc::setgid(gid) } != 0 {
                    return Err("setgid failed".into());
                }
            }
            if let Some(uid) = self.uid {
                // SAFETY: setuid has no memory preconditions.
                if unsafe { libc::setuid(uid) } != 0 {
                    return Err("setuid failed".into());
                }
            }
        }
        Ok(tree)
    }
}
