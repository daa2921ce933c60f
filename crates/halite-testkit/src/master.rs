//! The real Python salt-master, the oracle halite is compared against.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::config::SaltConfig;
use crate::process::{current_user, free_port, short_tempdir, tail, wait_until, Group};
use crate::salt::{salt_bin, Endpoints, SaltVersion};

/// A salt-master needs tens of seconds at worst on a loaded CI machine (key generation,
/// forking its workers).
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// A running Python salt-master on 127.0.0.1 with free ports and its own short temp root,
/// stopped with all its workers on drop.
pub struct PythonMaster {
    version: SaltVersion,
    root: tempfile::TempDir,
    endpoints: Endpoints,
    process: Option<Group>,
}

impl PythonMaster {
    /// Starts salt-master 3007.8 with `extra_config` (raw YAML lines, e.g.
    /// `"auto_accept: True"`) and waits until it serves.
    pub fn start(extra_config: &[&str]) -> PythonMaster {
        PythonMaster::start_version(SaltVersion::V3007, extra_config)
    }

    /// Like [`PythonMaster::start`] with another release's salt-master. A line of
    /// `extra_config` setting a top-level key the kit also sets replaces the kit's value.
    pub fn start_version(version: SaltVersion, extra_config: &[&str]) -> PythonMaster {
        let root = short_tempdir("hp");
        let endpoints = Endpoints { host: "127.0.0.1".into(), ret_port: free_port(), publish_port: free_port() };
        let root_str = root.path().to_str().unwrap_or_else(|| panic!("master root {:?} is not UTF-8", root.path()));
        let mut c = SaltConfig::default();
        c.set("interface", endpoints.host.as_str())
            .set("ret_port", endpoints.ret_port)
            .set("publish_port", endpoints.publish_port)
            .set("root_dir", root_str)
            .set("user", current_user())
            .set("log_file", format!("{root_str}/master.log"))
            .set("log_level_logfile", "info")
            // 3006.30 and 3008.5 masters refuse requests below protocol version 3 by default
            // (3007.8 has no such check and ignores the key). The test minions all send 3, but
            // the oracle should not be stricter than any site it stands for.
            .set("minimum_auth_version", 0);
        let mut master = PythonMaster { version, root, endpoints, process: None };
        c.write(&master.config_dir().join("master"), extra_config);
        master.spawn();
        master
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(salt_bin(self.version, "salt-master"));
        cmd.arg("-c").arg(self.config_dir()).arg("-l").arg("info");
        let name = format!("salt-master {}", self.version);
        let group = Group::spawn(&name, cmd, &self.root().join("master.out"));
        // master.pub alone is written before the request server binds; the port alone could
        // in theory be someone else's, since free_port released it.
        let ret = (self.endpoints.host.as_str(), self.endpoints.ret_port);
        let ready = wait_until(READY_TIMEOUT, || {
            group.exit_status().is_some()
                || (self.pki_dir().join("master.pub").is_file() && std::net::TcpStream::connect(ret).is_ok())
        });
        if let Some(status) = group.exit_status() {
            panic!("{name} exited ({status}) while starting in {}; {}", self.root().display(), self.log_tail());
        }
        assert!(ready, "{name} not serving after {READY_TIMEOUT:?} in {}; {}", self.root().display(), self.log_tail());
        self.process = Some(group);
    }

    pub fn version(&self) -> SaltVersion {
        self.version
    }

    pub fn endpoints(&self) -> Endpoints {
        self.endpoints.clone()
    }

    /// The master's root_dir.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The `-c` dir, holding the `master` config file; pass it to Salt's CLIs.
    pub fn config_dir(&self) -> PathBuf {
        self.root().join("etc/salt")
    }

    /// Salt's pki dir under root_dir: master.pem/master.pub and minions*/ key dirs.
    pub fn pki_dir(&self) -> PathBuf {
        self.root().join("etc/salt/pki/master")
    }

    /// `salt-key -c <config_dir> <args>` from the master's venv.
    pub fn salt_key(&self, args: &[&str]) -> Output {
        self.cli("salt-key", args)
    }

    /// Runs one of the venv's CLIs (`salt`, `salt-key`, `salt-run`, ...) against this master.
    pub fn cli(&self, name: &str, args: &[&str]) -> Output {
        let bin = salt_bin(self.version, name);
        Command::new(&bin)
            .arg("-c")
            .arg(self.config_dir())
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {} {args:?}: {e}", bin.display()))
    }

    /// The master's log file followed by its console output.
    pub fn log(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.root().join(name)).unwrap_or_default();
        format!("{}{}", read("master.log"), read("master.out"))
    }

    /// Stops the master and all its workers: SIGTERM to the group, SIGKILL after 15 s.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.stop();
        }
    }

    /// Stops the master and starts it again on the same root (keys, cache, config), as an
    /// operator's restart does; returns once it serves again.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// The process group of the master and every process it forked (for CPU and memory).
    pub fn pgid(&self) -> Option<u32> {
        self.process.as_ref().map(Group::pgid)
    }

    fn log_tail(&self) -> String {
        format!(
            "its log ends:\n{}\n--- console (master.out) ---\n{}",
            tail(&self.root().join("master.log"), 40),
            tail(&self.root().join("master.out"), 15)
        )
    }
}
