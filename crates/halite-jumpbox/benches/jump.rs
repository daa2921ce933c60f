//! halite-jumpbox against OpenSSH's sshd as the jump host, in one run: the stock `ssh`
//! client reaches a real sshd target through each, same keys, same cipher on both hops.
//!
//! Workloads, each on both jump hosts, alternating which goes first:
//! - **throughput**: `head -c SIZE /dev/zero | ssh -J jump target 'cat > /dev/null'`
//!   (SIZE 1 GiB by default), aes128-gcm@openssh.com on both hops; wall time of the client
//!   and the jump host's CPU time (halite-jumpbox: its process's user + system; sshd: its
//!   listener's own plus its reaped children's, read from `/proc/PID/stat`);
//! - **setup**: `ssh -J jump target true`, RUNS times; the median wall time;
//! - **idle connections**: CONNS (50) `ssh -N` connections held open to the jump host,
//!   measured first, on fresh processes; the memory they add (halite-jumpbox: the growth
//!   of its PSS; sshd: the PSS of the processes each connection forks), per connection.
//!
//! Prints a Markdown table with the ratios; the only checks are that every client run
//! succeeds (a failed transfer is not a measurement).
//!
//! Run: `cargo bench -p halite-jumpbox --bench jump [-- SIZE_MIB RUNS CONNS]`.
//!
//! **Soak** (issue 20): `-- --soak MINUTES` runs only halite-jumpbox for MINUTES under
//! `SOAK_CLIENTS` clients that each open a forward through it to the sshd target over and
//! over (`ssh -J jump target 'head -c 1M /dev/zero'`: a new session, a forward, 1 MiB back),
//! beside `SOAK_HELD` forwards held open for the whole soak (`ssh -J jump target cat`, a
//! line sent and echoed back every 5 s), and samples the jump host every 10 s: are its RSS
//! and descriptors flat once warm, and do the long-lived forwards keep carrying data?

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CIPHER: &str = "aes128-gcm@openssh.com";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_for(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "port {port} never opened");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn keygen(path: &Path) {
    let ok = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(path).status().unwrap();
    assert!(ok.success());
}

/// An sshd on a free port: the target, or the reference jump host.
fn sshd(dir: &Path, name: &str, authorized: &Path) -> (Child, u16) {
    let port = free_port();
    let key = dir.join(format!("{name}_host"));
    keygen(&key);
    let config = dir.join(format!("{name}_config"));
    std::fs::write(
        &config,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nPidFile none\nUsePAM no\n\
             PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             AllowTcpForwarding yes\nCiphers {CIPHER},chacha20-poly1305@openssh.com\nMaxStartups 200\nMaxSessions 200\n\
             LogLevel ERROR\n",
            key.display(),
            authorized.display()
        ),
    )
    .unwrap();
    std::fs::create_dir_all("/run/sshd").unwrap();
    let child = Command::new("/usr/sbin/sshd").args(["-D", "-f"]).arg(&config).spawn().expect("/usr/sbin/sshd");
    wait_for(port);
    (child, port)
}

use halite_testkit::procstat;

/// CPU seconds of `pid` and of its reaped children (sshd's per-connection processes).
fn cpu_seconds(pid: u32) -> f64 {
    procstat::usage(&[pid]).cpu_s + procstat::reaped_cpu_s(pid)
}

fn pss_kib(pid: u32) -> f64 {
    procstat::usage(&[pid]).pss_mib * 1024.0
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Jump {
    Sshd,
    Halite,
}

struct Site {
    dir: PathBuf,
    target: u16,
    jumps: Vec<(Jump, u16, u32)>,
}

impl Site {
    fn ssh(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ssh");
        c.arg("-F").arg(self.dir.join("ssh_config")).args(args);
        c
    }

    fn jump(&self, which: Jump) -> (u16, u32) {
        self.jumps.iter().find(|j| j.0 == which).map(|j| (j.1, j.2)).unwrap()
    }

    fn throughput(&self, which: Jump, size_mib: u64) -> (f64, f64) {
        let (port, pid) = self.jump(which);
        let cpu = cpu_seconds(pid);
        let started = Instant::now();
        let command = format!(
            "head -c {}M /dev/zero | ssh -F {} -J root@127.0.0.1:{port} -p {} 127.0.0.1 'cat > /dev/null'",
            size_mib,
            self.dir.join("ssh_config").display(),
            self.target
        );
        let out = Command::new("sh").args(["-c", &command]).output().unwrap();
        assert!(out.status.success(), "{which:?}: {}", String::from_utf8_lossy(&out.stderr));
        let wall = started.elapsed().as_secs_f64();
        // sshd's children are reaped a moment after the client ends.
        std::thread::sleep(Duration::from_millis(300));
        (wall, cpu_seconds(pid) - cpu)
    }

    fn setup(&self, which: Jump, runs: usize) -> f64 {
        let (port, _) = self.jump(which);
        let jump = format!("root@127.0.0.1:{port}");
        let mut times: Vec<f64> = (0..runs)
            .map(|_| {
                let started = Instant::now();
                let out =
                    self.ssh(&["-J", &jump, "-p", &self.target.to_string(), "127.0.0.1", "true"]).output().unwrap();
                assert!(out.status.success(), "{which:?}: {}", String::from_utf8_lossy(&out.stderr));
                started.elapsed().as_secs_f64()
            })
            .collect();
        times.sort_by(f64::total_cmp);
        times[times.len() / 2]
    }

    /// `SOAK_CLIENTS` clients forward through halite-jumpbox over and over for `minutes`
    /// beside `SOAK_HELD` forwards held open throughout; the jump host is sampled every
    /// 10 s. Prints the flatness table, the sessions done and failed, and the echoes the
    /// held forwards carried and missed.
    fn soak(&self, minutes: u64) {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let (port, pid) = self.jump(Jump::Halite);
        let jump = format!("root@127.0.0.1:{port}");
        let target = self.target.to_string();
        let (done, failed, stop) = (AtomicUsize::new(0), AtomicUsize::new(0), AtomicBool::new(false));
        let (echoed, missed) = (AtomicUsize::new(0), AtomicUsize::new(0));
        eprintln!(
            "halite-jumpbox: {minutes} min of {SOAK_CLIENTS} clients forwarding 1 MiB each in a loop, \
             {SOAK_HELD} forwards held open"
        );
        let soak = std::thread::scope(|scope| {
            for held in 0..SOAK_HELD {
                let (echoed, missed, stop) = (&echoed, &missed, &stop);
                // Keepalives through the forward: one that stalls without closing makes ssh
                // exit, so the read below ends and the tick counts as missed.
                let mut child = self
                    .ssh(&["-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3"])
                    .args(["-J", &jump, "-p", &target, "127.0.0.1", "cat"])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()
                    .unwrap();
                scope.spawn(move || {
                    use std::io::{BufRead, Write};
                    let mut input = child.stdin.take().unwrap();
                    let mut output = std::io::BufReader::new(child.stdout.take().unwrap());
                    let mut line = String::new();
                    let mut tick = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let sent = format!("forward {held} tick {tick}\n");
                        line.clear();
                        let back = input.write_all(sent.as_bytes()).and_then(|()| output.read_line(&mut line));
                        if back.is_ok() && line == sent {
                            echoed.fetch_add(1, Ordering::Relaxed);
                        } else {
                            // A forward that broke stays broken: count every tick it misses.
                            missed.fetch_add(1, Ordering::Relaxed);
                        }
                        tick += 1;
                        for _ in 0..50 {
                            if stop.load(Ordering::Relaxed) {
                                break;
                            }
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    }
                    drop(input);
                    if !child.wait().is_ok_and(|s| s.success()) {
                        missed.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
            for _ in 0..SOAK_CLIENTS {
                let (done, failed, stop, jump, target) = (&done, &failed, &stop, &jump, &target);
                scope.spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let out = self
                            .ssh(&["-J", jump, "-p", target, "127.0.0.1", "head -c 1M /dev/zero"])
                            .stdin(Stdio::null())
                            .output();
                        let whole = out.is_ok_and(|o| o.status.success() && o.stdout.len() == 1 << 20);
                        (if whole { done } else { failed }).fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
            let every = Duration::from_secs(10);
            let soak = procstat::Soak::run(Duration::from_secs(minutes * 60), every, || procstat::usage(&[pid]));
            stop.store(true, Ordering::Relaxed);
            soak
        });
        let done = done.load(Ordering::Relaxed);
        println!("halite-jumpbox, {minutes} min, {SOAK_CLIENTS} clients each forwarding 1 MiB per session in a loop; after the first fifth:\n");
        print!("{}", soak.flatness_table());
        println!(
            "\n{done} sessions done, {} failed; {:.1} ms of jump host CPU per session",
            failed.load(Ordering::Relaxed),
            soak.cpu_s() * 1000.0 / done.max(1) as f64
        );
        println!(
            "{SOAK_HELD} forwards held open throughout: {} lines echoed, {} missed (a failed exit counts as one)",
            echoed.load(Ordering::Relaxed),
            missed.load(Ordering::Relaxed)
        );
    }

    /// KiB per idle connection.
    fn idle(&self, which: Jump, conns: usize) -> f64 {
        let (port, pid) = self.jump(which);
        let before_children = procstat::descendants_of(pid);
        let before = pss_kib(pid);
        let mut clients: Vec<Child> = (0..conns)
            .map(|_| self.ssh(&["-N", "-p", &port.to_string(), "127.0.0.1"]).stdin(Stdio::null()).spawn().unwrap())
            .collect();
        std::thread::sleep(Duration::from_secs(3));
        let grown = match which {
            Jump::Halite => (pss_kib(pid) - before).max(0.0),
            Jump::Sshd => {
                let new: Vec<u32> =
                    procstat::descendants_of(pid).into_iter().filter(|c| !before_children.contains(c)).collect();
                assert!(new.len() >= conns, "sshd forked {} processes for {conns} connections", new.len());
                new.iter().map(|p| pss_kib(*p)).sum()
            }
        };
        for c in &mut clients {
            let _ = c.kill();
            let _ = c.wait();
        }
        std::thread::sleep(Duration::from_millis(500));
        grown / conns as f64
    }
}

/// Clients forwarding at once during the soak.
const SOAK_CLIENTS: usize = 4;
/// Forwards held open for the whole soak beside them.
const SOAK_HELD: usize = 20;

fn main() {
    let (soak_minutes, words) = procstat::soak_args();
    let args: Vec<u64> =
        words.iter().map(|a| a.parse().expect("usage: jump [--soak MINUTES] [SIZE_MIB RUNS CONNS]")).collect();
    let size_mib = args.first().copied().unwrap_or(1024);
    let runs = args.get(1).copied().unwrap_or(20) as usize;
    let conns = args.get(2).copied().unwrap_or(50) as usize;

    let tmp = tempfile::Builder::new().prefix("jump-bench-").tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let dir = tmp.path().to_path_buf();
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    keygen(&dir.join("client"));
    let authorized = dir.join("authorized_keys");
    std::fs::copy(dir.join("client.pub"), &authorized).unwrap();
    std::fs::write(
        dir.join("ssh_config"),
        format!(
            "Host *\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  BatchMode yes\n  LogLevel ERROR\n  \
             IdentityFile {}\n  IdentitiesOnly yes\n  User root\n  Ciphers {CIPHER}\n  ControlMaster no\n",
            dir.join("client").display()
        ),
    )
    .unwrap();
    let (target_child, target) = sshd(&dir, "target", &authorized);
    let (reference, reference_port) = sshd(&dir, "reference", &authorized);
    let halite_port = free_port();
    keygen(&dir.join("halite_host"));
    std::fs::write(
        dir.join("jumpbox.yaml"),
        format!(
            "listen: [127.0.0.1:{halite_port}]\nhost_keys: [{d}/halite_host]\nauthorized_keys: {d}/authorized_keys\n\
             forward_to: [127.0.0.0/8]\nmax_startups: 200\nthrottle: {{failures: 0}}\n",
            d = dir.display()
        ),
    )
    .unwrap();
    let halite = Command::new(env!("CARGO_BIN_EXE_halite-jumpbox"))
        .arg("-c")
        .arg(dir.join("jumpbox.yaml"))
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    wait_for(halite_port);
    let site = Site {
        dir,
        target,
        jumps: vec![(Jump::Sshd, reference_port, reference.id()), (Jump::Halite, halite_port, halite.id())],
    };

    if let Some(minutes) = soak_minutes {
        site.soak(minutes);
        for mut child in [halite, reference, target_child] {
            let _ = child.kill();
            let _ = child.wait();
        }
        return;
    }
    let orders = [[Jump::Sshd, Jump::Halite], [Jump::Halite, Jump::Sshd]];
    // Idle connections first, on fresh processes: after a transfer, freed heap would hold
    // the new connections and hide what they cost.
    let idle: Vec<(Jump, f64)> = orders[1].iter().map(|w| (*w, site.idle(*w, conns))).collect();
    let setup: Vec<(Jump, f64)> = orders[0].iter().map(|w| (*w, site.setup(*w, runs))).collect();
    let mut throughput = std::collections::HashMap::new();
    for (round, order) in orders.iter().cycle().take(4).enumerate() {
        for which in order {
            let (wall, cpu) = site.throughput(*which, size_mib);
            eprintln!("round {round} throughput {which:?}: {wall:.2} s, jump CPU {cpu:.2} s");
            throughput.entry(*which).or_insert_with(Vec::new).push((wall, cpu));
        }
    }
    let best = |which: Jump| {
        let runs = &throughput[&which];
        let wall = runs.iter().map(|r| r.0).fold(f64::INFINITY, f64::min);
        let cpu = runs.iter().map(|r| r.1).fold(f64::INFINITY, f64::min);
        (wall, cpu)
    };
    let find = |v: &[(Jump, f64)], w: Jump| v.iter().find(|x| x.0 == w).unwrap().1;

    let (s_wall, s_cpu) = best(Jump::Sshd);
    let (h_wall, h_cpu) = best(Jump::Halite);
    let mib = size_mib as f64;
    println!("| workload | sshd (OpenSSH) | halite-jumpbox | ratio (halite/sshd) |");
    println!("|---|---|---|---|");
    println!(
        "| {size_mib} MiB through `ssh -J`, {CIPHER}: throughput (best of 4) | {:.0} MiB/s | {:.0} MiB/s | {:.2}× |",
        mib / s_wall,
        mib / h_wall,
        s_wall / h_wall
    );
    println!("| same: jump host CPU (best of 4) | {s_cpu:.2} s | {h_cpu:.2} s | {:.2}× |", h_cpu / s_cpu);
    let (s_setup, h_setup) = (find(&setup, Jump::Sshd), find(&setup, Jump::Halite));
    println!(
        "| `ssh -J jump target true`, median of {runs} | {:.0} ms | {:.0} ms | {:.2}× |",
        s_setup * 1000.0,
        h_setup * 1000.0,
        h_setup / s_setup
    );
    let (s_idle, h_idle) = (find(&idle, Jump::Sshd), find(&idle, Jump::Halite));
    println!(
        "| memory per idle connection ({conns} held, PSS) | {s_idle:.0} KiB | {h_idle:.0} KiB | {:.2}× |",
        h_idle / s_idle
    );

    for mut child in [halite, reference, target_child] {
        let _ = child.kill();
        let _ = child.wait();
    }
}
