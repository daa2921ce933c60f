//! Processes started in their own process group, stopped as a group.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on loopback (the kernel's choice, released before use: good enough for
/// tests that bind it a moment later).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// Polls `ok` every 100 ms until it holds or `timeout` passes.
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

/// A daemon that forks workers (as salt-minion and salt-master do), run as the leader of a new
/// process group so the whole tree can be signalled at once.
pub struct Group {
    child: Child,
    name: String,
}

impl Group {
    /// Starts `cmd` in its own process group with stdout and stderr appended to `output`.
    pub fn spawn(name: &str, mut cmd: Command, output: &Path) -> Group {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(output)
            .unwrap_or_else(|e| panic!("{name}: opening {}: {e}", output.display()));
        let err = out.try_clone().unwrap_or_else(|e| panic!("{name}: {e}"));
        cmd.process_group(0).stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("{name}: cannot start {cmd:?}: {e}"));
        Group { child, name: name.to_owned() }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the group leader is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Whether any process of the group is still alive.
    pub fn group_alive(&self) -> bool {
        signal_group(self.child.id(), "0")
    }

    /// SIGTERM to the group, then SIGKILL to whatever is left after 10 s. Waits until no
    /// process of the group remains.
    pub fn stop(&mut self) {
        let pgid = self.child.id();
        signal_group(pgid, "TERM");
        let graceful = wait_until(Duration::from_secs(10), || {
            let _ = self.child.try_wait();
            !signal_group(pgid, "0")
        });
        if !graceful {
            eprintln!("{}: still running 10 s after SIGTERM; killing its process group", self.name);
            signal_group(pgid, "KILL");
            let _ = self.child.wait();
            wait_until(Duration::from_secs(5), || !signal_group(pgid, "0"));
        }
        let _ = self.child.wait();
    }
}

impl Drop for Group {
    /// Teardown kills the group outright: a test that is over needs no graceful stop, and a
    /// 3008 minion can take over 10 s to honour SIGTERM while it is reconnecting.
    fn drop(&mut self) {
        if self.group_alive() {
            signal_group(self.child.id(), "KILL");
            let _ = self.child.wait();
            let pgid = self.child.id();
            wait_until(Duration::from_secs(5), || !signal_group(pgid, "0"));
        }
    }
}

/// `kill -SIG -PGID`; true when the signal was delivered to at least one process. Uses the
/// kill(1) binary rather than a libc binding: tests need nothing faster.
fn signal_group(pgid: u32, signal: &str) -> bool {
    Command::new("kill")
        .arg(format!("-{signal}"))
        .arg("--")
        .arg(format!("-{pgid}"))
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// The last `lines` lines of a text file (or a note that it is missing), for failure messages.
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("({}: {e})", path.display()),
    }
}

/// A short, fresh directory under /tmp: 3006 minions bind unix sockets below their root_dir
/// and fail with "AF_UNIX path too long" past 107 bytes.
pub(crate) fn short_tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(prefix).tempdir_in("/tmp").expect("a temp dir under /tmp")
}

pub(crate) fn current_user() -> String {
    std::env::var("USER").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| {
        let out = Command::new("id").arg("-un").output().expect("id -un");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    })
}
