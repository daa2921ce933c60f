//! A real salt-minion in its own root dir.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::config::SaltConfig;
use crate::process::{current_user, short_tempdir, tail, wait_until, Group};
use crate::salt::{salt_bin, Endpoints, SaltVersion};

/// What a test minion is. Build one with struct update syntax over `Default`, or with
/// [`MinionSpec::new`] and the `with_*` methods.
#[derive(Debug, Clone)]
pub struct MinionSpec {
    pub id: String,
    pub version: SaltVersion,
    /// The `roles` grain, which halite's targeting and pillar are keyed on. `None` leaves it to
    /// the minion's grain modules (the site's `_grains/roles.py` derives it from the id):
    /// a static grain in the config would override any module.
    pub roles: Option<Vec<String>>,
    /// More static grains, beside `roles`.
    pub extra_grains: Vec<(String, Value)>,
    /// Raw YAML lines appended to the minion config. A line setting a top-level key the kit
    /// also sets (`grains:` included) replaces the kit's value.
    pub extra_config: Vec<String>,
    /// Salt's log level for the log file and the console (`info`, `debug`, `trace`, ...).
    pub log_level: String,
    /// Whether `pkg` states may refresh the host's package database (`apt-get update`).
    pub package_refresh: bool,
    /// The execution modules (file names under `salt/modules`) the minion may load; `None`
    /// for all of them. See [`MinionSpec::loading_only`].
    pub modules: Option<Vec<String>>,
}

impl Default for MinionSpec {
    fn default() -> Self {
        MinionSpec {
            id: "minion".into(),
            version: SaltVersion::default(),
            roles: Some(Vec::new()),
            extra_grains: Vec::new(),
            extra_config: Vec::new(),
            log_level: "info".into(),
            package_refresh: true,
            modules: None,
        }
    }
}

impl MinionSpec {
    pub fn new(id: &str, version: SaltVersion) -> MinionSpec {
        MinionSpec { id: id.into(), version, ..MinionSpec::default() }
    }

    pub fn with_roles(mut self, roles: &[&str]) -> MinionSpec {
        self.roles = Some(roles.iter().map(|r| r.to_string()).collect());
        self
    }

    /// No static `roles` grain: the minion's grain modules provide it.
    pub fn with_derived_roles(mut self) -> MinionSpec {
        self.roles = None;
        self
    }

    /// Keeps `pkg` states from running `apt-get update`. Salt's apt module refreshes the
    /// package database for every `pkg.installed` of a missing package, dry runs included
    /// (`pkg.latest_version` defaults to `refresh=True`): minions sharing a host then queue
    /// for minutes on the apt lock, and need the network. The minion runs with an `apt-get`
    /// first on its PATH that does nothing for `update` and hands anything else to the real one.
    pub fn without_package_refresh(mut self) -> MinionSpec {
        self.package_refresh = false;
        self
    }

    /// Lets the minion load only these execution modules (file names under `salt/modules`,
    /// `aptpkg` for `pkg`): the others go to `disable_modules`. A state run reloads every
    /// module after each `pkg` state with changes (dry runs included), and the next lookup of
    /// a function no module has (`pkg.installed` asks for `pkg.resolve_capabilities` and
    /// `pkg.check_db`) imports all of Salt's ~500 modules to look for it: 1.4 s of CPU each
    /// time, two thirds of a site role's dry run. A module left out either fails the state
    /// that calls it ("'disk.blkid' is not available") or, where a state checks
    /// `"file.check_managed_changes" in __salt__` first, quietly skips a check: compare a
    /// dry run with every module before shortening a list.
    pub fn loading_only(mut self, modules: &[&str]) -> MinionSpec {
        self.modules = Some(modules.iter().map(|m| m.to_string()).collect());
        self
    }

    pub fn with_grain(mut self, name: &str, value: impl Into<Value>) -> MinionSpec {
        self.extra_grains.push((name.into(), value.into()));
        self
    }

    pub fn with_config(mut self, yaml_line: &str) -> MinionSpec {
        self.extra_config.push(yaml_line.into());
        self
    }

    pub fn with_log_level(mut self, level: &str) -> MinionSpec {
        self.log_level = level.into();
        self
    }

    fn config(&self, root: &Path, master: &Endpoints) -> SaltConfig {
        let mut grains = serde_json::Map::new();
        if let Some(roles) = &self.roles {
            grains.insert("roles".into(), roles.clone().into());
        }
        grains.extend(self.extra_grains.iter().cloned());
        let root_str = root.to_str().unwrap_or_else(|| panic!("{}: root dir {root:?} is not UTF-8", self.id));
        let mut c = SaltConfig::default();
        c.set("id", self.id.as_str())
            .set("root_dir", root_str)
            .set("master", master.host.as_str())
            .set("master_port", master.ret_port)
            .set("publish_port", master.publish_port)
            .set("user", current_user())
            .set("log_file", format!("{root_str}/minion.log"))
            .set("log_level", self.log_level.as_str())
            .set("log_level_logfile", self.log_level.as_str())
            // A pending minion otherwise retries after 10 s, then longer; tests accept a key
            // and expect the minion in within a couple of seconds.
            .set("acceptance_wait_time", 1)
            .set("acceptance_wait_time_max", 2)
            // After a fatal auth error the minion sleeps randint(1, this) s before restarting
            // itself (default 10). 0 is not "no delay": randint(1, 0) raises and the minion
            // exits for good.
            .set("random_reauth_delay", 1)
            // ZeroMQ reconnect interval (ms) after a master restart. Only 3006 reads these;
            // 3007 and 3008 hard-code 1000/10000 in their transport.
            .set("recon_default", 200)
            .set("recon_max", 1000)
            // 3008 masks every pillar value in pillar.items output otherwise; older minions
            // do not know the option and ignore it.
            .set("pillar_mask_output", false)
            .set("grains", Value::Object(grains));
        if let Some(modules) = &self.modules {
            c.set("disable_modules", execution_modules_but(self.version, modules));
        }
        c
    }
}

/// Every execution module of `version`'s Salt (the files and packages of `salt/modules`)
/// whose name is not in `keep`.
fn execution_modules_but(version: SaltVersion, keep: &[String]) -> Vec<String> {
    let lib = crate::salt::venv(version).join("lib");
    let python = std::fs::read_dir(&lib)
        .unwrap_or_else(|e| panic!("{}: {e}", lib.display()))
        .flatten()
        .map(|entry| entry.path())
        .find(|path| path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("python")))
        .unwrap_or_else(|| panic!("no python directory in {}", lib.display()));
    let dir = python.join("site-packages/salt/modules");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let module = if entry.path().is_dir() { name } else { name.strip_suffix(".py")?.to_owned() };
            (!module.starts_with('_') && !keep.contains(&module)).then_some(module)
        })
        .collect();
    names.sort();
    names
}

/// A running salt-minion with its own short temp root (config, keys, cache, logs), stopped
/// with all its workers on drop. The root lives as long as the `Minion`, across restarts.
pub struct Minion {
    spec: MinionSpec,
    root: tempfile::TempDir,
    process: Option<Group>,
}

impl Minion {
    /// Writes `<root>/etc/salt/minion` pointing at `master` and starts
    /// `salt-minion -c <root>/etc/salt`. Does not wait for anything: the minion generates
    /// its key and starts authenticating on its own.
    pub fn start(spec: MinionSpec, master: &Endpoints) -> Minion {
        let root = short_tempdir("hk");
        let mut minion = Minion { spec, root, process: None };
        minion.spec.config(minion.root(), master).write(&minion.config_dir().join("minion"), &minion.spec.extra_config);
        minion.spawn();
        minion
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(salt_bin(self.spec.version, "salt-minion"));
        cmd.arg("-c").arg(self.config_dir()).arg("-l").arg(&self.spec.log_level);
        if !self.spec.package_refresh {
            let bin = self.root().join("bin");
            write_apt_get_without_update(&bin).unwrap_or_else(|e| panic!("{}: {}: {e}", self.spec.id, bin.display()));
            let path = std::env::var("PATH").unwrap_or_default();
            cmd.env("PATH", format!("{}:{path}", bin.display()));
            if let Some(config) = apt_with_a_cache() {
                cmd.env("APT_CONFIG", config);
            }
        }
        let name = format!("salt-minion {} ({})", self.spec.id, self.spec.version);
        self.process = Some(Group::spawn(&name, cmd, &self.root().join("minion.out")));
    }

    /// Runs `salt-call <args>` with this minion's config: a second, short-lived client of the
    /// same master under the same id and key, as an admin on the minion's host would run it.
    pub fn salt_call(&self, args: &[&str]) -> std::process::Output {
        Command::new(salt_bin(self.spec.version, "salt-call"))
            .arg("-c")
            .arg(self.config_dir())
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("salt-call for {}: {e}", self.spec.id))
    }

    pub fn id(&self) -> &str {
        &self.spec.id
    }

    pub fn version(&self) -> SaltVersion {
        self.spec.version
    }

    pub fn spec(&self) -> &MinionSpec {
        &self.spec
    }

    /// The minion's root_dir.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The `-c` dir, holding the `minion` config file.
    pub fn config_dir(&self) -> PathBuf {
        self.root().join("etc/salt")
    }

    /// Where Salt keeps the minion's keys once root_dir is set: `minion.pem`, `minion.pub`
    /// and, after an accepted authentication, `minion_master.pub`.
    pub fn pki_dir(&self) -> PathBuf {
        self.root().join("etc/salt/pki/minion")
    }

    /// The minion's public key (PEM), waiting up to 60 s for the minion to generate it.
    pub fn public_key_pem(&self) -> String {
        let path = self.pki_dir().join("minion.pub");
        if let Err(e) = self.wait_for("its key pair (minion.pub)", Duration::from_secs(60), || path.is_file()) {
            panic!("{e}");
        }
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: reading {}: {e}", self.spec.id, path.display()))
    }

    /// Whether an accepted authentication reply has reached the minion: it writes the
    /// master's public key to `minion_master.pub` only from one.
    pub fn master_pub_written(&self) -> bool {
        self.pki_dir().join("minion_master.pub").is_file()
    }

    /// Waits until the minion has been accepted ([`Minion::master_pub_written`]); returns
    /// how long that took from this call. The error names the minion and ends with its log.
    pub fn wait_authenticated(&self, timeout: Duration) -> Result<Duration, String> {
        self.wait_for("an accepted authentication (minion_master.pub)", timeout, || self.master_pub_written())
    }

    /// The minion's log file followed by its console output.
    pub fn log(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.root().join(name)).unwrap_or_default();
        format!("{}{}", read("minion.log"), read("minion.out"))
    }

    pub fn wait_log_contains(&self, needle: &str, timeout: Duration) -> Result<(), String> {
        self.wait_for(&format!("{needle:?} in its log"), timeout, || self.log().contains(needle)).map(|_| ())
    }

    /// Whether the salt-minion main process is running (false once stopped).
    pub fn is_running(&mut self) -> bool {
        self.process.as_ref().is_some_and(Group::is_running)
    }

    /// The process group of the running minion, for checks that no worker outlived a stop.
    pub fn pgid(&self) -> Option<u32> {
        self.process.as_ref().map(Group::pgid)
    }

    /// Stops the minion and all its workers: SIGTERM to the group, SIGKILL after 15 s.
    /// Takes 5 to 10 s, Salt's own shutdown delay; see [`Minion::stop_all`] for several.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.stop();
        }
    }

    /// Stops several minions at once, so their shutdown delays overlap instead of adding up.
    pub fn stop_all(minions: &mut [Minion]) {
        std::thread::scope(|s| {
            for m in minions.iter_mut() {
                s.spawn(|| m.stop());
            }
        });
    }

    /// SIGKILL to the minion's whole process group, as a crash or power loss would: no
    /// shutdown delay, nothing flushed.
    pub fn kill(&mut self) {
        if let Some(p) = self.process.take() {
            p.kill();
        }
    }

    /// Stops and starts again on the same root: same keys, same cached master key.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Restarts with a fresh key pair under the same id, as a re-imaged host (or an
    /// impostor) presents itself; the cached master key is kept. A master that knows the old
    /// key must deny this one.
    pub fn replace_key(&mut self) {
        self.stop();
        for name in ["minion.pem", "minion.pub"] {
            let path = self.pki_dir().join(name);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => panic!("{}: cannot delete {}: {e}", self.spec.id, path.display()),
            }
        }
        self.spawn();
    }

    /// Polls `ok` for up to `timeout`, giving up early if the minion's main process exits.
    fn wait_for(&self, what: &str, timeout: Duration, ok: impl Fn() -> bool) -> Result<Duration, String> {
        let started = std::time::Instant::now();
        let mut exited = None;
        let done = wait_until(timeout, || {
            if ok() {
                return true;
            }
            exited = match &self.process {
                None => Some("it is stopped".to_owned()),
                Some(p) => p.exit_status().map(|s| format!("salt-minion exited ({s})")),
            };
            exited.is_some()
        });
        match (done, exited) {
            (true, None) => Ok(started.elapsed()),
            (_, why) => Err(format!(
                "minion {} ({}) gave no {what}: {}; root {}, its log ends:\n{}",
                self.spec.id,
                self.spec.version,
                why.unwrap_or_else(|| format!("timed out after {timeout:?}")),
                self.root().display(),
                self.log_tail()
            )),
        }
    }

    fn log_tail(&self) -> String {
        format!(
            "{}\n--- console (minion.out) ---\n{}",
            tail(&self.root().join("minion.log"), 40),
            tail(&self.root().join("minion.out"), 15)
        )
    }
}

/// An APT configuration that keeps a binary package cache, for the minions' `pkg` states.
///
/// Why: Debian's container images turn APT's cache off (`docker-clean` sets
/// `Dir::Cache::pkgcache ""`), so every `apt-cache policy` a dry-run `pkg.installed` makes
/// parses every package list again: 1.6 s of CPU each, most of the site test's time with 32
/// minions on two cores. With a cache it is 0.05 s, reading the same lists. The file given
/// as `APT_CONFIG` only names a main configuration file, which APT reads after its parts
/// directory, so its cache paths win over `docker-clean`'s. Built once per test process
/// (`apt-cache gencaches`) so that the minions do not all build it at once. `None` when it
/// cannot be built: the minions then use APT as configured.
fn apt_with_a_cache() -> Option<&'static Path> {
    static CONFIG: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let dir = std::env::temp_dir().join("halite-apt-cache");
            std::fs::create_dir_all(&dir).ok()?;
            let main = dir.join("main.conf");
            std::fs::write(
                &main,
                format!(
                    "Dir::Cache::pkgcache \"{0}/pkgcache.bin\";\nDir::Cache::srcpkgcache \"{0}/srcpkgcache.bin\";\n",
                    dir.display()
                ),
            )
            .ok()?;
            let config = dir.join("apt.conf");
            std::fs::write(&config, format!("Dir::Etc::main \"{}\";\n", main.display())).ok()?;
            let built = Command::new("apt-cache").arg("gencaches").env("APT_CONFIG", &config).output().ok()?;
            built.status.success().then_some(config)
        })
        .as_deref()
}

/// An `apt-get` for `dir` that succeeds at once for `update` and runs the real one otherwise.
fn write_apt_get_without_update(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    let script = dir.join("apt-get");
    std::fs::write(
        &script,
        "#!/bin/sh\n# halite-testkit: no package database refresh from tests (MinionSpec::without_package_refresh).\n\
         for arg in \"$@\"; do [ \"$arg\" = update ] && exit 0; done\nexec /usr/bin/apt-get \"$@\"\n",
    )?;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
}
