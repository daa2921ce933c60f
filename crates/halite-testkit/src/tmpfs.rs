//! A small filesystem of a test's own, to fill up: a tmpfs mounted under a temp dir and
//! unmounted on drop. Mounting needs root (CI runs as root); a test that cannot mount fails
//! saying so rather than passing untested.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Tmpfs {
    mount: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (mount(8)'s `size=` syntax: `24m`).
    pub fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::Builder::new().prefix("halite-fs").tempdir_in("/tmp").expect("temp dir");
        let mount = dir.path().join("fs");
        std::fs::create_dir(&mount).expect("mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&mount)
            .status()
            .expect("running mount(8)");
        assert!(status.success(), "mounting a {size} tmpfs at {} (this test needs root)", mount.display());
        Tmpfs { mount, _dir: dir }
    }

    pub fn path(&self) -> &Path {
        &self.mount
    }

    /// Bytes free on it.
    pub fn free_bytes(&self) -> u64 {
        let out = Command::new("df").args(["--output=avail", "-B1"]).arg(&self.mount).output().expect("df");
        String::from_utf8_lossy(&out.stdout).lines().nth(1).and_then(|l| l.trim().parse().ok()).expect("df's answer")
    }

    /// Writes a file of `bytes` real bytes (tmpfs allocates no holes): the disk filler a
    /// test removes to give the room back.
    pub fn ballast(&self, name: &str, bytes: u64) -> PathBuf {
        let path = self.mount.join(name);
        std::fs::write(&path, vec![0x5a; bytes as usize]).expect("writing ballast");
        path
    }

    /// Fills it to `leave` bytes free, or as close as a file can (the ballast's path).
    pub fn fill_leaving(&self, name: &str, leave: u64) -> PathBuf {
        let free = self.free_bytes();
        self.ballast(name, free.saturating_sub(leave))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a daemon the test has not reaped yet may still hold files in it.
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
    }
}
