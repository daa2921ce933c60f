//! Daemons started as process-group leaders and stopped as whole groups.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A free TCP port on loopback. The kernel picks it and it is released before use, so another
/// process could take it in between; tests bind it a moment later, which is good enough.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0 for a free port")
}

/// Polls `ok` every 100 ms until it holds (true) or `timeout` passes (false). `ok` is always
/// tried at least once, so a zero timeout is a plain check.
pub fn wait_until(timeout: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if ok() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// How long `stop` gives a group to honour SIGTERM before it is killed. A salt-minion sleeps
/// 5 s on SIGTERM before it even starts shutting down (to flush returns, `stop_async` in
/// salt/minion.py), then stops its workers; 3008 was measured at up to 10 s in all.
const TERM_GRACE: Duration = Duration::from_secs(15);
/// After SIGKILL only the kernel is left to act; this bounds waiting for it.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// A daemon that forks workers (salt-minion and salt-master both do), run as the leader of a
/// new process group so that the whole tree can be signalled and checked at once.
pub struct Group {
    name: String,
    pgid: libc::pid_t,
    // Behind a lock so that `&self` waits (which need try_wait) work from shared references.
    leader: Mutex<Child>,
}

impl Group {
    /// Starts `cmd` as the leader of a new process group, stdin closed, stdout and stderr
    /// appended to `output`. `name` identifies it in panics and warnings.
    pub fn spawn(name: &str, mut cmd: Command, output: &Path) -> Group {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(output)
            .unwrap_or_else(|e| panic!("{name}: cannot open {} for its output: {e}", output.display()));
        let err = out.try_clone().unwrap_or_else(|e| panic!("{name}: cannot duplicate the output fd: {e}"));
        cmd.process_group(0).stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("{name}: cannot start {cmd:?}: {e}"));
        let pgid = libc::pid_t::try_from(child.id()).expect("pids fit in pid_t");
        Group { name: name.to_owned(), pgid, leader: Mutex::new(child) }
    }

    /// The process group id, which is the leader's pid.
    pub fn pgid(&self) -> u32 {
        self.pgid as u32
    }

    /// The leader's exit status once it has exited (reaping it), None while it runs.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.lock().try_wait().ok().flatten()
    }

    /// Whether the group leader is still running; its workers may outlive it.
    pub fn is_running(&self) -> bool {
        self.exit_status().is_none()
    }

    /// Whether any process of the group has yet to exit; exited workers do not count (see
    /// `group_running`). Once none is left the leader, ours to reap, is reaped.
    pub fn any_alive(&self) -> bool {
        self.exit_status();
        let running = group_running(self.pgid);
        if !running {
            // It exited (the scan saw it a zombie or gone), so this does not block.
            let _ = self.lock().wait();
        }
        running
    }

    /// SIGTERM to the whole group, SIGKILL to whatever remains after 15 s; returns once every
    /// process of the group has exited (or warns if they have not 5 s after SIGKILL).
    pub fn stop(&mut self) {
        if !self.any_alive() {
            return;
        }
        signal_group(self.pgid, libc::SIGTERM);
        if wait_until(TERM_GRACE, || !self.any_alive()) {
            return;
        }
        eprintln!("{}: still running {TERM_GRACE:?} after SIGTERM; killing process group {}", self.name, self.pgid);
        self.kill();
    }

    /// SIGKILL to the whole group; returns once every process of it has exited (or warns if
    /// they have not 5 s later).
    pub fn kill(&self) {
        signal_group(self.pgid, libc::SIGKILL);
        if !wait_until(KILL_GRACE, || !self.any_alive()) {
            // A process in uninterruptible sleep (stuck I/O) is the usual cause.
            eprintln!("{}: process group {} still running {KILL_GRACE:?} after SIGKILL", self.name, self.pgid);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Child> {
        // A panic while holding the lock cannot leave the Child inconsistent.
        self.leader.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Group {
    /// Kills outright: a test that is over needs no clean shutdown, and a graceful one costs
    /// a minion at least 5 s (see TERM_GRACE), which every test would pay per minion.
    fn drop(&mut self) {
        if self.any_alive() {
            self.kill();
        }
    }
}

fn signal_group(pgid: libc::pid_t, signal: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions. ESRCH (group already gone) is the
    // only expected error and needs no handling.
    unsafe { libc::kill(-pgid, signal) };
}

/// Whether process group `pgid` has a member that has not exited. Exited members stay in the
/// process table as zombies until reaped: the leader by us, its workers, orphaned, by pid 1,
/// which in this sandbox reaps about once a second, so waiting until the group is gone cost a
/// second or two a minion (a minute when a test drops 32). An exited process holds nothing a
/// test waits for: its descriptors, sockets, locks and memory went when it exited. Read from
/// `/proc` when it is this process's own; otherwise any member counts, zombies included.
fn group_running(pgid: libc::pid_t) -> bool {
    if !group_exists(pgid) {
        return false;
    }
    if !procfs_is_ours() {
        return true;
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return true;
    };
    entries.flatten().any(|entry| {
        let is_pid = entry.file_name().to_str().is_some_and(|name| name.bytes().all(|b| b.is_ascii_digit()));
        is_pid
            && std::fs::read_to_string(entry.path().join("stat")).is_ok_and(|stat| match member_state(&stat, pgid) {
                Member::Running => true,
                // The stat line is the main thread's: a process whose main thread has exited
                // while other threads still hold its descriptors shows as a zombie.
                Member::Exited => threads(&entry.path()) > 1,
                Member::Other => false,
            })
    })
}

/// Whether `/proc` is mounted and shows this process's namespace: `/proc/self` is us.
fn procfs_is_ours() -> bool {
    std::fs::read_to_string("/proc/self/stat")
        .is_ok_and(|stat| stat.split(' ').next().and_then(|pid| pid.parse::<u32>().ok()) == Some(std::process::id()))
}

/// The `Threads:` count of `/proc/<pid>/status` (0 once it has gone).
fn threads(proc_dir: &Path) -> usize {
    let status = std::fs::read_to_string(proc_dir.join("status")).unwrap_or_default();
    let count = status.lines().find_map(|line| line.strip_prefix("Threads:"));
    count.and_then(|n| n.trim().parse().ok()).unwrap_or(0)
}

#[derive(Debug, PartialEq)]
enum Member {
    Running,
    Exited,
    Other,
}

/// What a `/proc/<pid>/stat` line ("pid (comm) state ppid pgrp ...") says of group `pgid`:
/// a member that runs, one that has exited (a zombie), or a process of another group. The
/// command name may hold spaces and parentheses, so the fields are counted from the last ')'.
fn member_state(stat: &str, pgid: libc::pid_t) -> Member {
    let Some((_, fields)) = stat.rsplit_once(')') else {
        return Member::Other;
    };
    let mut fields = fields.split_whitespace();
    let state = fields.next();
    let group = fields.nth(1).and_then(|field| field.parse::<libc::pid_t>().ok());
    match (group == Some(pgid), state) {
        (false, _) => Member::Other,
        (true, Some("Z" | "X" | "x")) => Member::Exited,
        (true, _) => Member::Running,
    }
}

/// Whether process group `pgid` has any member, zombies included (signal 0 checks only).
fn group_exists(pgid: libc::pid_t) -> bool {
    // SAFETY: as above; signal 0 sends nothing.
    let rc = unsafe { libc::kill(-pgid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// The last `lines` lines of a text file (or why it cannot be read), for failure messages.
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("({}: {e})", path.display()),
    }
}

/// A fresh directory directly under /tmp. It must stay short: a 3006 minion binds unix
/// sockets below its root_dir and dies with "AF_UNIX path too long" past 107 bytes, which a
/// root under a cargo target dir or a long $TMPDIR easily exceeds.
/// Where test and bench roots go: `$HALITE_TEST_ROOT` when set (a bench with its masters on
/// tmpfs leaves the disk out of what it measures), else `/tmp`; either must be short enough
/// for the Unix socket paths under it.
pub fn temp_root() -> std::path::PathBuf {
    std::env::var_os("HALITE_TEST_ROOT")
        .filter(|d| !d.is_empty())
        .map_or_else(|| "/tmp".into(), std::path::PathBuf::from)
}

pub(crate) fn short_tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        // To read a failed run's minion and master logs afterwards.
        .disable_cleanup(std::env::var_os("HALITE_KEEP_TEST_DIRS").is_some_and(|v| !v.is_empty() && v != "0"))
        .tempdir_in(temp_root())
        .unwrap_or_else(|e| panic!("cannot create a temp dir under {}: {e}", temp_root().display()))
}

/// The effective user's name, for Salt's `user` option: a daemon told to run as anyone else
/// tries to switch to that user and, not being root, exits. $USER is not trusted because
/// sudo and containers leave it stale or unset.
pub(crate) fn current_user() -> &'static str {
    static USER: OnceLock<String> = OnceLock::new();
    USER.get_or_init(|| {
        let out = Command::new("id").arg("-un").output().unwrap_or_else(|e| panic!("cannot run `id -un`: {e}"));
        let name = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert!(out.status.success() && !name.is_empty(), "`id -un` gave no user name: {out:?}");
        name
    })
}

#[cfg(test)]
mod tests {
    use super::{member_state, Member};

    #[test]
    fn stat_lines_are_read_from_the_last_parenthesis() {
        assert_eq!(member_state("4242 (salt-minion) S 1 4242 4242 0 -1", 4242), Member::Running);
        assert_eq!(member_state("4242 (salt-minion) S 1 4243 4243 0 -1", 4242), Member::Other);
        assert_eq!(member_state("4250 (python3) Z 1 4242 4242 0 -1", 4242), Member::Exited);
        assert_eq!(member_state("4251 (a) b (c) R 1 4242 4242 0 -1", 4242), Member::Running, "a name with ') '");
        assert_eq!(member_state("garbage", 4242), Member::Other);
    }

    #[test]
    fn this_process_reads_its_own_procfs() {
        assert!(super::procfs_is_ours());
        assert!(super::threads(std::path::Path::new("/proc/self")) >= 1);
    }
}
