//! Giving up root once port 53 is bound: the config's `user`, its primary group, no
//! supplementary groups. Started without root (systemd's DynamicUser with
//! CAP_NET_BIND_SERVICE, as the site's unit does), there is nothing to give up.

use std::ffi::CString;

use anyhow::{bail, Context};

/// A user's ids, from the system's user database.
struct Account {
    uid: libc::uid_t,
    gid: libc::gid_t,
}

fn lookup(user: &str) -> anyhow::Result<Account> {
    let name = CString::new(user).context("user: a name with a NUL byte")?;
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    let mut buf = vec![0 as libc::c_char; 16 << 10];
    // SAFETY: getpwnam_r writes the entry into `entry` and its strings into `buf`, both
    // owned here and large enough (ERANGE otherwise), and sets `found` to `&entry` or null.
    let rc = unsafe { libc::getpwnam_r(name.as_ptr(), &mut entry, buf.as_mut_ptr(), buf.len(), &mut found) };
    if rc != 0 {
        bail!("user: looking up {user:?}: {}", std::io::Error::from_raw_os_error(rc));
    }
    if found.is_null() {
        bail!("user: no user {user:?} on this system");
    }
    Ok(Account { uid: entry.pw_uid, gid: entry.pw_gid })
}

/// Checks at start-up that `user` exists, so a typo fails before anything is bound.
pub fn check(user: &str) -> anyhow::Result<()> {
    lookup(user).map(|_| ())
}

/// Becomes `user` if running as root; returns whether it did.
pub fn drop_to(user: &str) -> anyhow::Result<bool> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(false);
    }
    let account = lookup(user)?;
    // SAFETY: plain system calls on ids; glibc applies set*id to every thread of the
    // process (the runtime's threads exist already).
    unsafe {
        if libc::setgroups(1, &account.gid) != 0 {
            bail!("user: setgroups: {}", std::io::Error::last_os_error());
        }
        if libc::setgid(account.gid) != 0 {
            bail!("user: setgid({}): {}", account.gid, std::io::Error::last_os_error());
        }
        if libc::setuid(account.uid) != 0 {
            bail!("user: setuid({}): {}", account.uid, std::io::Error::last_os_error());
        }
        // Root must be gone for good: a setuid that left a way back is a failure.
        if account.uid != 0 && libc::setuid(0) == 0 {
            bail!("user: root could be regained after setuid({})", account.uid);
        }
    }
    Ok(true)
}
