//! What the real-client tests share: a scratch site (client keys, an `authorized_keys`, one
//! `ssh_config` every hop reads), halite-jumpbox on a free loopback port, a real `sshd` as
//! the target behind it, and small TCP servers to forward to.
//!
//! Scratch directories live under the target directory, not /tmp: halite-jumpbox checks
//! the directories above an `authorized_keys` file as sshd's StrictModes does, and /tmp is
//! writable by everyone.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A scratch site: keys and files for one test.
pub struct Site {
    pub dir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Site {
    pub fn new() -> Site {
        let tmp = tempfile::Builder::new().prefix("jumpbox-").tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let dir = tmp.path().to_path_buf();
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let site = Site { dir, _tmp: tmp };
        site.keygen("client");
        site.keygen("stranger");
        site.keygen("limited");
        site.write("authorized_keys", &site.public("client"));
        site.write(
            "ssh_config",
            &format!(
                "Host *\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  BatchMode yes\n  LogLevel INFO\n  \
                 IdentityFile {}\n  IdentitiesOnly yes\n  User root\n  ConnectTimeout 10\n",
                site.path("client").display()
            ),
        );
        site
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn write(&self, name: &str, text: &str) {
        std::fs::write(self.path(name), text).unwrap();
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    pub fn keygen(&self, name: &str) {
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
            .arg(self.path(name))
            .status()
            .expect("ssh-keygen (tests/install-ssh.sh installs OpenSSH)");
        assert!(status.success());
    }

    pub fn public(&self, name: &str) -> String {
        self.read(&format!("{name}.pub"))
    }

    /// `ssh -F ssh_config` with `args`, every hop reading the same config.
    pub fn ssh(&self, args: &[&str]) -> Command {
        let mut command = Command::new("ssh");
        command.arg("-F").arg(self.path("ssh_config")).args(args).stdin(Stdio::null());
        command
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.ssh(args).output().unwrap()
    }

    /// `ssh` with another identity than the site's client key (`name`, and its
    /// `name-cert.pub` when there is one).
    pub fn run_as(&self, name: &str, args: &[&str]) -> Output {
        let config = format!("{name}_config");
        let client = self.path("client").display().to_string();
        self.write(&config, &self.read("ssh_config").replace(&client, &self.path(name).display().to_string()));
        Command::new("ssh").arg("-F").arg(self.path(&config)).args(args).stdin(Stdio::null()).output().unwrap()
    }

    /// The audit log's records.
    pub fn audit(&self) -> Vec<serde_json::Value> {
        self.read("audit.log").lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    /// Waits until the audit log holds a record `matches` accepts.
    pub fn await_audit(&self, what: &str, matches: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(record) = self.audit().into_iter().find(|r| matches(r)) {
                return record;
            }
            assert!(Instant::now() < deadline, "no audit record {what}; the log:\n{}", self.read("audit.log"));
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// halite-jumpbox, started on a free port with the site's files.
pub struct JumpBox {
    pub port: u16,
    child: Child,
    pub config: PathBuf,
    log: PathBuf,
}

impl Drop for JumpBox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A panic in a connection's or a forward's task does not stop the daemon, only
        // what that task was doing: every test fails on one.
        let log = self.log();
        if !std::thread::panicking() && log.contains("panicked") {
            panic!("halite-jumpbox panicked:\n{log}");
        }
    }
}

impl JumpBox {
    /// Starts with the site's defaults and `extra` YAML lines appended.
    pub fn start(site: &Site, extra: &str) -> JumpBox {
        let port = free_port();
        let config = site.path("jumpbox.yaml");
        site.write(
            "jumpbox.yaml",
            &format!(
                "listen: [127.0.0.1:{port}]\nhost_keys: [{dir}/host_ed25519_key]\nauthorized_keys: {dir}/%u_keys\n\
                 banner: {dir}/banner\nforward_to: [127.0.0.1/32]\naudit_log: {dir}/audit.log\n{extra}",
                dir = site.dir.display()
            ),
        );
        if !site.path("root_keys").exists() {
            site.write("root_keys", &site.public("client"));
        }
        if !site.path("banner").exists() {
            site.write("banner", "LEVEL: TEST -- reach the VMs with ssh -J\n");
        }
        JumpBox::launch(site, port, config)
    }

    fn launch(site: &Site, port: u16, config: PathBuf) -> JumpBox {
        let log = site.path("jumpbox.log");
        let out = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_halite-jumpbox"))
            .arg("-c")
            .arg(&config)
            .env("RUST_LOG", "debug,russh=info")
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let jumpbox = JumpBox { port, child, config, log };
        wait_for_port(port, &jumpbox.log);
        jumpbox
    }

    pub fn restart(self, site: &Site) -> JumpBox {
        let (port, config) = (self.port, self.config.clone());
        drop(self);
        JumpBox::launch(site, port, config)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `user@127.0.0.1:port`, as `-J` takes it.
    pub fn jump(&self) -> String {
        format!("root@127.0.0.1:{}", self.port)
    }

    pub fn hup(&self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGHUP) };
    }

    pub fn open_descriptors(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id())).map(|d| d.count()).unwrap_or(0)
    }
}

fn wait_for_port(port: u16, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "port {port} never opened; log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A real sshd on a free loopback port, signing in the site's client key.
pub struct Sshd {
    pub port: u16,
    child: Child,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sshd {
    pub fn start(site: &Site, name: &str) -> Sshd {
        let port = free_port();
        let host_key = site.path(&format!("{name}_host_key"));
        if !host_key.exists() {
            site.keygen(&format!("{name}_host_key"));
        }
        let keys = site.path(&format!("{name}_authorized_keys"));
        std::fs::write(&keys, site.public("client")).unwrap();
        let config = site.path(&format!("{name}_config"));
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nPidFile none\nUsePAM no\n\
                 PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 MaxStartups 100\nMaxSessions 100\n",
                host_key.display(),
                keys.display()
            ),
        )
        .unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let log = site.path(&format!("{name}.log"));
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-f"])
            .arg(&config)
            .arg("-E")
            .arg(&log)
            .spawn()
            .expect("/usr/sbin/sshd (tests/install-ssh.sh installs openssh-server)");
        wait_for_port(port, &log);
        Sshd { port, child }
    }
}

/// A TCP server on a free loopback port: to each connection it sends `greeting`, then
/// `stream_bytes` bytes of `x` (forever for `None`), then closes.
pub struct Server {
    pub port: u16,
}

impl Server {
    pub fn start(greeting: &'static str, stream_bytes: Option<u64>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                std::thread::spawn(move || {
                    let _ = stream.write_all(greeting.as_bytes());
                    let chunk = vec![b'x'; 64 * 1024];
                    let mut left = stream_bytes.unwrap_or(u64::MAX);
                    while left > 0 {
                        let n = left.min(chunk.len() as u64) as usize;
                        if stream.write_all(&chunk[..n]).is_err() {
                            return;
                        }
                        left -= n as u64;
                    }
                });
            }
        });
        Server { port }
    }
}

/// Reads everything from `addr` and returns it.
pub fn fetch(port: u16) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut out = Vec::new();
    stream.read_to_end(&mut out)?;
    Ok(out)
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Starts `ssh -N -L` in the background, and waits until its local port answers.
pub fn local_forward(site: &Site, jumpbox: &JumpBox, spec: &str, local_port: u16) -> Child {
    let port = jumpbox.port.to_string();
    let child =
        site.ssh(&["-N", "-o", "ExitOnForwardFailure=yes", "-L", spec, "-p", &port, "127.0.0.1"]).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !listening(local_port) {
        assert!(Instant::now() < deadline, "ssh -L {spec} never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// Whether something listens on loopback `port`, asked of the kernel rather than by
/// connecting (a connection to an `ssh -L` port would open a forward).
pub fn listening(port: u16) -> bool {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let wanted = format!(":{port:04X}");
    table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.len() > 3 && fields[1].ends_with(&wanted) && fields[3] == "0A"
    })
}

pub fn assert_ok(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what}: {:?}\nstdout: {}\nstderr: {}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    );
}

/// A TCP server that accepts and never reads: a destination that stalls its forwards.
pub fn sink() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    port
}

/// Waits for `done` for up to `secs` seconds.
pub fn eventually(secs: u64, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "{what} did not happen within {secs}s");
        std::thread::sleep(Duration::from_millis(50));
    }
}
