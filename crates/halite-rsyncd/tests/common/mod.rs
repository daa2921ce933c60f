//! What the real-client tests share: a daemon (halite-rsyncd or the reference `rsync
//! --daemon`, same config) on a free loopback port, the stock `rsync` client, generated
//! trees and a comparison of two trees that reports the first difference.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Which daemon serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    Halite,
    Reference,
}

pub struct Daemon {
    pub port: u16,
    child: Child,
    pub dir: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn rsync_available() -> bool {
    Command::new("rsync").arg("--version").stdout(Stdio::null()).status().map(|s| s.success()).unwrap_or(false)
}

impl Daemon {
    /// Starts `server` with `config` (rsyncd.conf text; `@DIR@` is replaced with a
    /// scratch directory for lock and log files).
    pub fn start(server: Server, config: &str, dir: &Path) -> Daemon {
        let port = free_port();
        let conf_path = dir.join(match server {
            Server::Halite => "halite-rsyncd.conf",
            Server::Reference => "rsyncd.conf",
        });
        let text = config.replace("@DIR@", &dir.display().to_string());
        std::fs::write(&conf_path, text).unwrap();
        let child = match server {
            Server::Halite => Command::new(env!("CARGO_BIN_EXE_halite-rsyncd"))
                .arg("--config")
                .arg(&conf_path)
                .arg("--port")
                .arg(port.to_string())
                .arg("--address")
                .arg("127.0.0.1")
                .env("RUST_LOG", "info")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.join("halite-rsyncd.log")).unwrap())
                .spawn()
                .unwrap(),
            Server::Reference => Command::new("rsync")
                .arg("--daemon")
                .arg("--no-detach")
                .arg(format!("--config={}", conf_path.display()))
                .arg(format!("--port={port}"))
                .arg("--address=127.0.0.1")
                .arg(format!("--log-file={}", dir.join("rsyncd.log").display()))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "{server:?} did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Daemon { port, child, dir: dir.to_path_buf() }
    }

    pub fn url(&self, path: &str) -> String {
        format!("rsync://127.0.0.1:{}/{}", self.port, path)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("halite-rsyncd.log")).unwrap_or_default()
    }
}

/// Runs the stock client; `password` goes through RSYNC_PASSWORD.
pub fn rsync(args: &[&str], password: Option<&str>) -> Output {
    let mut cmd = Command::new("rsync");
    cmd.args(args).env_remove("RSYNC_PASSWORD");
    if let Some(p) = password {
        cmd.env("RSYNC_PASSWORD", p);
    }
    cmd.stdin(Stdio::null());
    cmd.output().unwrap()
}

pub fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A tree with what a deploy share holds: many small files, a few larger ones,
/// symlinks, empty directories and names with spaces and UTF-8.
pub fn make_tree(root: &Path, small: usize, large: &[usize]) {
    std::fs::create_dir_all(root).unwrap();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for i in 0..small {
        let dir = root.join(format!("d{}/sub{}", i % 7, i % 3));
        std::fs::create_dir_all(&dir).unwrap();
        let len = (next() % 3000) as usize;
        let data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        std::fs::write(dir.join(format!("f{i}.txt")), data).unwrap();
    }
    for (i, &len) in large.iter().enumerate() {
        let data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        std::fs::write(root.join(format!("large{i}.bin")), data).unwrap();
    }
    std::fs::create_dir_all(root.join("empty/deeper")).unwrap();
    std::fs::write(root.join("with space.txt"), b"spaced\n").unwrap();
    std::fs::write(root.join("caf\u{e9} \u{2603}.txt"), "unicode\n").unwrap();
    std::fs::write(root.join("exec.sh"), b"#!/bin/sh\n").unwrap();
    std::fs::set_permissions(root.join("exec.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(root.join("private.txt"), b"p\n").unwrap();
    std::fs::set_permissions(root.join("private.txt"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink("with space.txt", root.join("link-inside")).unwrap();
    std::os::unix::fs::symlink("d0/sub0", root.join("dirlink")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", root.join("link-outside")).unwrap();
    // Times the copy must carry over.
    set_mtime(&root.join("with space.txt"), 1_600_000_000);
}

/// Gives every entry under `root` (symlinks included, not followed) the mtime `secs`: two
/// trees made one after the other may straddle a second, and a test comparing what `-a`
/// carried over from each would see that second as a difference.
pub fn pin_times(root: &Path, secs: i64) {
    for entry in std::fs::read_dir(root).unwrap() {
        let path = entry.unwrap().path();
        if std::fs::symlink_metadata(&path).unwrap().is_dir() {
            pin_times(&path, secs);
        } else {
            set_mtime(&path, secs);
        }
    }
    // Last: setting the children's times does not touch the directory's.
    set_mtime(root, secs);
}

pub fn set_mtime(path: &Path, secs: i64) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let times = [libc::timespec { tv_sec: secs, tv_nsec: 0 }, libc::timespec { tv_sec: secs, tv_nsec: 0 }];
    // SAFETY: a valid path and two timespecs.
    let rc = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) };
    assert_eq!(rc, 0);
}

/// What a tree holds, entry by entry: type, mode, mtime (files and links), content or
/// link target.
pub fn snapshot(root: &Path, with_times: bool) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries {
            let e = e.unwrap();
            let path = rel.join(e.file_name());
            let meta = std::fs::symlink_metadata(root.join(&path)).unwrap();
            let key = path.to_string_lossy().into_owned();
            let mode = meta.mode() & 0o7777;
            let desc = if meta.file_type().is_symlink() {
                let target = std::fs::read_link(root.join(&path)).unwrap();
                let t = if with_times { format!(" mtime {}", meta.mtime()) } else { String::new() };
                format!("link -> {}{t}", target.display())
            } else if meta.is_dir() {
                stack.push(path.clone());
                format!("dir {mode:o}")
            } else {
                let data = std::fs::read(root.join(&path)).unwrap();
                let sum = data.iter().fold(0u64, |h, &b| h.wrapping_mul(1_099_511_628_211).wrapping_add(b as u64));
                let t = if with_times { format!(" mtime {}", meta.mtime()) } else { String::new() };
                format!("file {mode:o} {} bytes #{sum:x}{t}", data.len())
            };
            out.insert(key, desc);
        }
    }
    out
}

/// Panics with the first difference between two snapshots.
pub fn assert_same(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>, what: &str) {
    for (k, v) in a {
        match b.get(k) {
            None => panic!("{what}: {k} ({v}) only on the first side"),
            Some(w) if w != v => panic!("{what}: {k} differs: {v} vs {w}"),
            _ => {}
        }
    }
    for (k, v) in b {
        assert!(a.contains_key(k), "{what}: {k} ({v}) only on the second side");
    }
}

/// The sets of names under `root` that are one file (hard links), each sorted.
pub fn link_sets(root: &Path) -> std::collections::BTreeSet<Vec<String>> {
    let mut by_inode: BTreeMap<(u64, u64), Vec<String>> = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(root.join(&rel)) else { continue };
        for e in entries {
            let path = rel.join(e.unwrap().file_name());
            let meta = std::fs::symlink_metadata(root.join(&path)).unwrap();
            if meta.is_dir() {
                stack.push(path);
            } else if meta.nlink() > 1 {
                by_inode.entry((meta.dev(), meta.ino())).or_default().push(path.to_string_lossy().into_owned());
            }
        }
    }
    by_inode
        .into_values()
        .map(|mut names| {
            names.sort();
            names
        })
        .collect()
}
