//! What the benches that run real daemons share: release binaries, a halite-master process
//! on loopback, and waiting for minions to answer.
#![allow(dead_code)]

pub mod swarm;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use halite_testkit::{free_port, Endpoints};

pub fn release_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("bench path");
    let dir = exe.parent().and_then(Path::parent).expect("target profile dir");
    let bin = dir.join(name);
    assert!(bin.is_file(), "{} missing: run `cargo build --release --bins` first", bin.display());
    bin
}

/// Runs `cmd` until it succeeds with `want` returns, so every minion is connected and warm.
pub fn warm_up(what: &str, mut run: impl FnMut() -> Output, want: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let out = run();
        let text = String::from_utf8_lossy(&out.stdout);
        if out.status.success() && text.matches(": true").count() + text.matches(":\n    True").count() >= want {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: minions never all answered:\n{text}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A release halite-master in its own temp root on loopback, killed on drop.
pub struct HaliteDaemon {
    root: tempfile::TempDir,
    child: Child,
    endpoints: Endpoints,
}

impl HaliteDaemon {
    /// Starts it with `extra_config` lines after the kit's own (ports, paths, user).
    pub fn start(extra_config: &[&str]) -> anyhow::Result<HaliteDaemon> {
        let root = tempfile::Builder::new().prefix("hb").tempdir_in("/tmp")?;
        let (ret_port, publish_port) = (free_port(), free_port());
        let conf_dir = root.path().join("etc");
        std::fs::create_dir_all(&conf_dir)?;
        let r = root.path().display();
        let mut config = format!(
            "interface: 127.0.0.1\nret_port: {ret_port}\npublish_port: {publish_port}\npki_dir: {r}/pki\n\
             cachedir: {r}/cache\nsock_dir: {r}/run\nlog_file: {r}/master.log\nlog_level: warning\nuser: {}\n",
            std::env::var("USER").unwrap_or_else(|_| "root".into())
        );
        for line in extra_config {
            config.push_str(line);
            config.push('\n');
        }
        std::fs::write(conf_dir.join("master"), config)?;
        let child = HaliteDaemon::spawn(&conf_dir)?;
        Ok(HaliteDaemon { root, child, endpoints: Endpoints { host: "127.0.0.1".into(), ret_port, publish_port } })
    }

    /// SIGKILL, as a crash or the OOM killer would, then start again on the same root at
    /// once (without [`HaliteDaemon::spawn`]'s settling second, so that a caller can time
    /// how soon the minions are back).
    pub fn kill_and_start(&mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        self.child = Command::new(release_bin("halite-master")).arg("-c").arg(self.config_dir()).spawn()?;
        Ok(())
    }

    fn spawn(conf_dir: &Path) -> anyhow::Result<Child> {
        let child = Command::new(release_bin("halite-master")).arg("-c").arg(conf_dir).spawn()?;
        std::thread::sleep(Duration::from_secs(1));
        Ok(child)
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, wait for the exit, start again on the same root.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        self.child.wait()?;
        self.child = HaliteDaemon::spawn(&self.config_dir())?;
        Ok(())
    }

    pub fn config_dir(&self) -> PathBuf {
        self.root.path().join("etc")
    }

    pub fn endpoints(&self) -> Endpoints {
        self.endpoints.clone()
    }

    /// Runs one of this build's CLIs (`salt`, `salt-run`, `salt-key`) against the daemon.
    pub fn cli(&self, name: &str, args: &[&str]) -> Output {
        Command::new(release_bin(name)).arg("-c").arg(self.config_dir()).args(args).output().expect("run a halite CLI")
    }
}

impl Drop for HaliteDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Replaces what lies between `<!-- {name}:begin -->` and `<!-- {name}:end -->` in the
/// markdown file at `path` with `body` (appended with the markers if they are missing), by
/// rename, so a reader never sees half a file.
pub fn splice(path: &Path, name: &str, body: &str) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let (begin, end) = (format!("<!-- {name}:begin -->"), format!("<!-- {name}:end -->"));
    let block = format!("{begin}\n{body}\n{end}");
    let new = match (text.find(&begin), text.find(&end)) {
        (Some(b), Some(e)) if e > b => format!("{}{block}{}", &text[..b], &text[e + end.len()..]),
        _ => format!("{text}\n{block}\n"),
    };
    let tmp = path.with_extension("md.tmp");
    std::fs::write(&tmp, new).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}
