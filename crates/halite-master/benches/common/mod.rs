//! What the benches that run real daemons share: release binaries, a halite-master process
//! on loopback, and waiting for minions to answer.
#![allow(dead_code)]

pub mod swarm;

use std::os::unix::process::CommandExt;
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

/// CPUs to run a process on, read as `taskset -c` reads them (`0`, `2-3`, `0,4-7`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cpus(Vec<usize>);

impl Cpus {
    pub fn parse(list: &str) -> Result<Cpus, String> {
        let mut cpus = Vec::new();
        let number = |n: &str| match n.trim().parse::<usize>() {
            Ok(cpu) if cpu < libc::CPU_SETSIZE as usize => Ok(cpu),
            _ => Err(format!("{list:?}: {n:?} is not a CPU number below {}", libc::CPU_SETSIZE)),
        };
        for part in list.split(',').filter(|p| !p.is_empty()) {
            match part.split_once('-') {
                Some((a, b)) if number(a)? <= number(b)? => cpus.extend(number(a)?..=number(b)?),
                Some(_) => return Err(format!("{list:?}: {part:?} runs backwards")),
                None => cpus.push(number(part)?),
            }
        }
        if cpus.is_empty() {
            return Err(format!("{list:?}: no CPUs"));
        }
        Ok(Cpus(cpus))
    }

    pub fn list(&self) -> &[usize] {
        &self.0
    }

    /// The CPU set, built before any fork: nothing allocates between fork and exec.
    fn set(&self) -> libc::cpu_set_t {
        // SAFETY: a cpu_set_t is plain bits; zero is the empty set. `parse` kept every CPU
        // below CPU_SETSIZE, which CPU_SET needs.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            for &cpu in &self.0 {
                libc::CPU_SET(cpu, &mut set);
            }
            set
        }
    }

    /// Makes `cmd`'s process (and so every process it starts) run on these CPUs only.
    pub fn apply(&self, cmd: &mut Command) {
        let set = self.set();
        // SAFETY: between fork and exec only sched_setaffinity runs, on a set copied into
        // the closure; it is async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
    }

    /// Moves the calling thread onto these CPUs.
    pub fn pin_this_thread(&self) {
        let set = self.set();
        // SAFETY: sched_setaffinity reads the set passed; 0 is the calling thread.
        if unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) } != 0 {
            eprintln!("   could not pin the measuring thread to CPUs {:?}", self.0);
        }
    }

    /// Moves running processes (every thread of each) onto these CPUs: `taskset -a -p`.
    pub fn move_processes(&self, pids: &[u32]) {
        let list: Vec<String> = self.0.iter().map(usize::to_string).collect();
        for pid in pids {
            let status = Command::new("taskset").args(["-a", "-p", "-c", &list.join(","), &pid.to_string()]).output();
            if !status.is_ok_and(|o| o.status.success()) {
                eprintln!("   could not pin process {pid} to CPUs {list:?}");
            }
        }
    }
}

/// A release halite-master in its own temp root on loopback, killed on drop.
pub struct HaliteDaemon {
    root: tempfile::TempDir,
    child: Child,
    endpoints: Endpoints,
    /// The CPUs the master (and its publisher process) run on, if pinned.
    cpus: Option<Cpus>,
}

impl HaliteDaemon {
    /// Starts it with `extra_config` lines after the kit's own (ports, paths, user).
    pub fn start(extra_config: &[&str]) -> anyhow::Result<HaliteDaemon> {
        HaliteDaemon::start_on(extra_config, None)
    }

    /// [`HaliteDaemon::start`], the processes pinned to `cpus` (again after a restart).
    pub fn start_on(extra_config: &[&str], cpus: Option<Cpus>) -> anyhow::Result<HaliteDaemon> {
        let root = tempfile::Builder::new().prefix("hb").tempdir_in(halite_testkit::temp_root())?;
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
        let child = HaliteDaemon::spawn(&conf_dir, cpus.as_ref())?;
        let endpoints = Endpoints { host: "127.0.0.1".into(), ret_port, publish_port };
        Ok(HaliteDaemon { root, child, endpoints, cpus })
    }

    /// SIGKILL, as a crash or the OOM killer would, then start again on the same root at
    /// once (without [`HaliteDaemon::spawn`]'s settling second, so that a caller can time
    /// how soon the minions are back).
    pub fn kill_and_start(&mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        self.child = HaliteDaemon::command(&self.config_dir(), self.cpus.as_ref()).spawn()?;
        Ok(())
    }

    fn command(conf_dir: &Path, cpus: Option<&Cpus>) -> Command {
        let mut cmd = Command::new(release_bin("halite-master"));
        cmd.arg("-c").arg(conf_dir);
        if let Some(cpus) = cpus {
            cpus.apply(&mut cmd);
        }
        cmd
    }

    fn spawn(conf_dir: &Path, cpus: Option<&Cpus>) -> anyhow::Result<Child> {
        let child = HaliteDaemon::command(conf_dir, cpus).spawn()?;
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
        self.child = HaliteDaemon::spawn(&self.config_dir(), self.cpus.as_ref())?;
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
