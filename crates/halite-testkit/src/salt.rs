//! Salt's own daemons from the test venvs.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::process::{current_user, free_port, short_tempdir, tail, wait_until, Group};

/// The salt-minion versions halite must serve at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SaltVersion {
    V3006,
    #[default]
    V3007,
    V3008,
}

impl SaltVersion {
    pub const ALL: [SaltVersion; 3] = [SaltVersion::V3006, SaltVersion::V3007, SaltVersion::V3008];

    /// The PyPI release `tests/install-minions.sh` installs.
    pub fn as_str(self) -> &'static str {
        match self {
            SaltVersion::V3006 => "3006.30",
            SaltVersion::V3007 => "3007.8",
            SaltVersion::V3008 => "3008.5",
        }
    }
}

/// The venv of `version`: `$HALITE_MINION_CACHE/salt-<version>`, by default under
/// `~/.cache/halite/minions`, as `tests/install-minions.sh` lays them out.
pub fn venv(version: SaltVersion) -> PathBuf {
    let cache = std::env::var_os("HALITE_MINION_CACHE").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cache/halite/minions")
    });
    cache.join(format!("salt-{}", version.as_str()))
}

/// A Salt executable (`salt-minion`, `salt-key`, ...) of `version`'s venv.
pub fn salt_bin(version: SaltVersion, name: &str) -> PathBuf {
    let bin = venv(version).join("bin").join(name);
    assert!(bin.exists(), "{} is missing: run tests/install-minions.sh to install the Salt venvs", bin.display());
    bin
}

/// Where a master listens.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub host: String,
    pub ret_port: u16,
    pub publish_port: u16,
}

/// What a test minion is: id, version, `roles` grain, extra grains and config lines.
#[derive(Debug, Clone)]
pub struct MinionSpec {
    pub id: String,
    pub version: SaltVersion,
    pub roles: Vec<String>,
    /// `(name, YAML value)` pairs added to the `grains` option.
    pub extra_grains: Vec<(String, String)>,
    /// Raw YAML lines appended to the minion config.
    pub extra_config: Vec<String>,
    pub log_level: String,
}

impl Default for MinionSpec {
    fn default() -> Self {
        MinionSpec {
            id: "minion".into(),
            version: SaltVersion::default(),
            roles: Vec::new(),
            extra_grains: Vec::new(),
            extra_config: Vec::new(),
            log_level: "info".into(),
        }
    }
}

/// A running salt-minion with its own root_dir, stopped (with its workers) on drop.
pub struct Minion {
    spec: MinionSpec,
    root: tempfile::TempDir,
    process: Option<Group>,
}

impl Minion {
    pub fn start(spec: MinionSpec, master: &Endpoints) -> Minion {
        let root = short_tempdir("hk");
        let minion = Minion { spec, root, process: None };
        minion.write_config(master);
        let mut minion = minion;
        minion.spawn();
        minion
    }

    pub fn id(&self) -> &str {
        &self.spec.id
    }

    pub fn version(&self) -> SaltVersion {
        self.spec.version
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    pub fn config_dir(&self) -> PathBuf {
        self.root().join("etc/salt")
    }

    /// The minion's pki dir (Salt puts it under root_dir).
    pub fn pki_dir(&self) -> PathBuf {
        self.root().join("etc/salt/pki/minion")
    }

    fn write_config(&self, master: &Endpoints) {
        let root = self.root().display().to_string();
        let s = &self.spec;
        let mut conf = String::new();
        let _ = writeln!(
            conf,
            "id: {}\nroot_dir: {root}\nmaster: {}\nmaster_port: {}\npublish_port: {}",
            s.id, master.host, master.ret_port, master.publish_port
        );
        let _ = writeln!(
            conf,
            "user: {}\nlog_file: {root}/minion.log\nlog_level_logfile: {}\nlog_level: {}",
            current_user(),
            s.log_level,
            s.log_level
        );
        // A pending minion otherwise retries every 10 s, doubling; tests accept keys and wait.
        conf.push_str("acceptance_wait_time: 1\nacceptance_wait_time_max: 2\n");
        // 3008 masks every value of pillar.items otherwise; older minions ignore this option.
        conf.push_str("pillar_mask_output: False\n");
        conf.push_str("grains:\n  roles:\n");
        for role in &s.roles {
            let _ = writeln!(conf, "    - {role}");
        }
        for (name, value) in &s.extra_grains {
            let _ = writeln!(conf, "  {name}: {value}");
        }
        for line in &s.extra_config {
            conf.push_str(line);
            conf.push('\n');
        }
        std::fs::create_dir_all(self.config_dir()).expect("minion config dir");
        std::fs::write(self.config_dir().join("minion"), conf).expect("minion config");
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(salt_bin(self.spec.version, "salt-minion"));
        cmd.arg("-c").arg(self.config_dir()).arg("-l").arg(&self.spec.log_level);
        self.process =
            Some(Group::spawn(&format!("salt-minion {}", self.spec.id), cmd, &self.root().join("minion.out")));
    }

    /// Whether an accepted `_auth` reply reached the minion: it writes the master's public
    /// key only from one.
    pub fn master_pub_written(&self) -> bool {
        self.pki_dir().join("minion_master.pub").is_file()
    }

    /// Waits for the minion's first accepted authentication; returns the time since the call.
    pub fn wait_authenticated(&self, timeout: Duration) -> Result<Duration, String> {
        let start = Instant::now();
        if wait_until(timeout, || self.master_pub_written()) {
            Ok(start.elapsed())
        } else {
            Err(format!(
                "{} ({}) not authenticated after {timeout:?}; its log ends:\n{}",
                self.spec.id,
                self.spec.version.as_str(),
                self.log_tail(40)
            ))
        }
    }

    /// The minion's public key, once it has generated one.
    pub fn public_key_pem(&self) -> String {
        let path = self.pki_dir().join("minion.pub");
        assert!(wait_until(Duration::from_secs(60), || path.is_file()), "{}: no minion.pub", self.spec.id);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// The minion's log file and console output together.
    pub fn log(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.root().join(name)).unwrap_or_default();
        format!("{}{}", read("minion.log"), read("minion.out"))
    }

    fn log_tail(&self, lines: usize) -> String {
        format!(
            "{}\n--- console ---\n{}",
            tail(&self.root().join("minion.log"), lines),
            tail(&self.root().join("minion.out"), 10)
        )
    }

    pub fn wait_log_contains(&self, needle: &str, timeout: Duration) -> Result<(), String> {
        if wait_until(timeout, || self.log().contains(needle)) {
            Ok(())
        } else {
            Err(format!("{}: log never contained {needle:?}; it ends:\n{}", self.spec.id, self.log_tail(40)))
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.process.as_mut().is_some_and(Group::is_running)
    }

    /// Stops the minion and all its workers.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.stop();
        }
    }

    /// Restarts with the same root: same keys, same cached master key.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Restarts with a new key pair under the same id, as a re-imaged VM (or an impostor)
    /// would present. The cached master key is kept.
    pub fn replace_key(&mut self) {
        self.stop();
        for name in ["minion.pem", "minion.pub"] {
            let _ = std::fs::remove_file(self.pki_dir().join(name));
        }
        self.spawn();
    }

    /// The process group id, for checks that no worker outlived a stop.
    pub fn pgid(&self) -> Option<u32> {
        self.process.as_ref().map(Group::pid)
    }
}

/// The real Python salt-master 3007.8, in its own short root, as the oracle and as the
/// "existing site" halite takes over from.
pub struct PythonMaster {
    root: tempfile::TempDir,
    endpoints: Endpoints,
    process: Option<Group>,
}

impl PythonMaster {
    pub fn start(extra_config: &[&str]) -> PythonMaster {
        let root = short_tempdir("hp");
        let endpoints = Endpoints { host: "127.0.0.1".into(), ret_port: free_port(), publish_port: free_port() };
        let dir = root.path().display().to_string();
        let mut conf = format!(
            "interface: 127.0.0.1\npublish_port: {}\nret_port: {}\nroot_dir: {dir}\nuser: {}\n\
             log_file: {dir}/master.log\nlog_level_logfile: info\n",
            endpoints.publish_port,
            endpoints.ret_port,
            current_user()
        );
        for line in extra_config {
            conf.push_str(line);
            conf.push('\n');
        }
        let master = PythonMaster { root, endpoints, process: None };
        std::fs::create_dir_all(master.config_dir()).expect("master config dir");
        std::fs::write(master.config_dir().join("master"), conf).expect("master config");
        let mut master = master;
        master.spawn();
        master
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(salt_bin(SaltVersion::V3007, "salt-master"));
        cmd.arg("-c").arg(self.config_dir()).arg("-l").arg("info");
        self.process = Some(Group::spawn("salt-master", cmd, &self.root().join("master.out")));
        let ret = format!("127.0.0.1:{}", self.endpoints.ret_port);
        let ready = wait_until(Duration::from_secs(90), || {
            self.pki_dir().join("master.pub").is_file() && std::net::TcpStream::connect(&ret).is_ok()
        });
        assert!(
            ready,
            "the Python salt-master did not come up; its log ends:\n{}",
            tail(&self.root().join("master.out"), 40)
        );
    }

    pub fn endpoints(&self) -> Endpoints {
        self.endpoints.clone()
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    pub fn config_dir(&self) -> PathBuf {
        self.root().join("etc/salt")
    }

    /// Salt's default pki dir under root_dir.
    pub fn pki_dir(&self) -> PathBuf {
        self.root().join("etc/salt/pki/master")
    }

    /// Runs the venv's salt-key against this master.
    pub fn salt_key(&self, args: &[&str]) -> std::process::Output {
        Command::new(salt_bin(SaltVersion::V3007, "salt-key"))
            .arg("-c")
            .arg(self.config_dir())
            .args(args)
            .output()
            .expect("run salt-key")
    }

    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.stop();
        }
    }
}
