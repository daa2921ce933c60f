//! halite-rsyncd against the reference `rsync --daemon` (Debian's rsync, the same
//! package the client comes from), serving the same module to the stock client, both
//! daemons up in one run and one transfer at a time.
//!
//! Workloads, each run on both daemons:
//! - **full pull**: a tree of 20,000 files totalling 1 GiB (many small files and a few
//!   large ones) into an empty directory;
//! - **no-change pull**: the same again onto the copy;
//! - **delta pull**: a 1 GiB file of which 1 MiB changed, onto the old copy;
//! - **push**: the 1 GiB tree into an empty writable module;
//! - **push, --fsync**: the same with the client's `--fsync`, so that the reference too
//!   puts each file on disk before counting it received (halite-rsyncd always does).
//!
//! For each: the wall time of the client, the server's CPU time (user + system of the
//! connection's process, read from the daemon's reaped-children counters in
//! `/proc/PID/stat`), and the peak RSS of the connection's process (its VmHWM, sampled
//! every 20 ms while it runs). The client runs with `--whole-file` off and no
//! compression; pulls land in /dev/shm when there is one (about 5 GiB of RAM at scale
//! 1: the client's writes to disk are not the server's work, and they made wall times
//! vary by 2–3×). The two daemons take each workload in turn, the first alternating, so
//! both meet the same page cache and writeback backlog. Prints a Markdown table with the
//! ratios; the only check is that every client run succeeds (a failed transfer is not a
//! measurement).
//!
//! Run: `cargo bench -p halite-rsyncd --bench transfer [-- SCALE]` where SCALE (default
//! 1.0) multiplies the file count and sizes (0.1 for a quick look).
//!
//! **Soak** (issue 20): `-- --soak MINUTES [SCALE]` (SCALE 0.05 by default: 1,000 files, 51
//! MiB) runs halite-rsyncd alone for MINUTES under `SOAK_CLIENTS` clients pulling the tree
//! in a loop, each pull into an empty directory, and samples the listener (the process that
//! outlives every connection) every 10 s: are its RSS and descriptors flat once warm, and
//! are the connections' processes all reaped?

use halite_testkit::procstat;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Clients pulling at once during the soak.
const SOAK_CLIENTS: usize = 4;

fn main() {
    let (soak_minutes, words) = procstat::soak_args();
    let scale: f64 = words
        .first()
        .map(|a| a.parse().expect("usage: transfer [--soak MINUTES] [SCALE]"))
        .unwrap_or(if soak_minutes.is_some() { 0.05 } else { 1.0 });
    let dir = tempfile::tempdir().expect("a temporary directory");
    let root = dir.path();
    let files = ((20_000.0 * scale) as usize).max(10);
    let total: u64 = ((1u64 << 30) as f64 * scale) as u64;
    eprintln!("generating {files} files, {} MiB ...", total >> 20);
    let tree = root.join("tree");
    make_tree(&tree, files, total);
    let halite = PathBuf::from(env!("CARGO_BIN_EXE_halite-rsyncd"));
    if let Some(minutes) = soak_minutes {
        let conf =
            format!("use chroot = no\nlock file = {0}/lock\n[tree]\n    path = {1}\n", root.display(), tree.display());
        return soak(&Daemon::start(Server::Halite, &halite, &conf, root), files, total, minutes);
    }
    let big_dir = root.join("big");
    std::fs::create_dir_all(&big_dir).unwrap();
    let big_len = total as usize;
    write_random(&big_dir.join("big.bin"), big_len, 7);

    let mut daemons = Vec::new();
    for server in [Server::Reference, Server::Halite] {
        let work = root.join(format!("{server:?}"));
        std::fs::create_dir_all(work.join("push")).unwrap();
        std::fs::create_dir_all(work.join("durable")).unwrap();
        // SAFETY: geteuid has no preconditions.
        let who = if unsafe { libc::geteuid() } == 0 { "uid = root\ngid = root\n" } else { "" };
        let conf = format!(
            "use chroot = no\n{who}lock file = {0}/lock\n[tree]\n    path = {1}\n[big]\n    path = {2}\n[push]\n    path = {0}/push\n    read only = no\n[durable]\n    path = {0}/durable\n    read only = no\n",
            work.display(),
            tree.display(),
            big_dir.display()
        );
        daemons.push((server, Daemon::start(server, &halite, &conf, &work)));
    }
    const WORKLOADS: [&str; 5] =
        ["full pull", "no-change pull", "1 MiB changed in a large file", "push", "push, --fsync"];
    // The pulls' destinations are the client's, in memory when /dev/shm is there: the
    // client's writes to this VM's disk varied the wall time of the same pull by 2–3×,
    // and they are no part of the server's work.
    let client_side = tempfile::tempdir_in("/dev/shm").or_else(|_| tempfile::tempdir()).unwrap();
    let mut rows = Vec::new();
    // Workload by workload, both daemons in turn, the one going first alternating: each
    // pair meets the same page cache and the same backlog of writeback (measured one
    // daemon after the other, the second paid for the first's 5 GiB of writes).
    for (k, name) in WORKLOADS.iter().enumerate() {
        let order: [usize; 2] = if k % 2 == 0 { [0, 1] } else { [1, 0] };
        for &i in &order {
            let (server, d) = &daemons[i];
            let client_dir = client_side.path().join(format!("{server:?}"));
            std::fs::create_dir_all(&client_dir).unwrap();
            let dst = client_dir.join("dst");
            let args: Vec<String> = match *name {
                "full pull" | "no-change pull" => vec!["-a".into(), d.url("tree/"), dst.display().to_string()],
                "1 MiB changed in a large file" => {
                    // The old copy of the big file, then 1 MiB of it changed at the source.
                    let big_copy = client_dir.join("bigcopy");
                    std::fs::create_dir_all(&big_copy).unwrap();
                    std::fs::copy(big_dir.join("big.bin"), big_copy.join("big.bin")).unwrap();
                    // An older time than the source's, so the client's quick check sees a change.
                    let old = std::fs::File::options().write(true).open(big_copy.join("big.bin")).unwrap();
                    old.set_modified(std::time::UNIX_EPOCH + Duration::from_secs(1_600_000_000)).unwrap();
                    change_middle(&big_dir.join("big.bin"), 1 << 20, *server as u64 + 11);
                    vec!["-a".into(), "--no-whole-file".into(), d.url("big/"), big_copy.display().to_string()]
                }
                "push" => vec!["-a".into(), format!("{}/", tree.display()), d.url("push/")],
                // The same push with the reference also putting each file on disk before
                // it counts as received (halite-rsyncd always does): durability priced alike.
                _ => vec!["-a".into(), "--fsync".into(), format!("{}/", tree.display()), d.url("durable/")],
            };
            rows.push((name.to_string(), *server, d.run(&args)));
        }
    }
    rows.sort_by_key(|r| r.1 as u8);
    println!("| workload | server | wall s | server CPU s | server peak RSS MiB |");
    println!("|---|---|---:|---:|---:|");
    for (name, server, m) in &rows {
        println!(
            "| {name} | {} | {:.2} | {:.2} | {:.1} |",
            server.label(),
            m.wall,
            m.cpu,
            m.peak_rss_kib as f64 / 1024.0
        );
    }
    println!();
    println!("| workload | wall (ref/halite) | CPU (ref/halite) | RSS (halite/ref) |");
    println!("|---|---:|---:|---:|");
    let names: Vec<&String> = rows.iter().filter(|r| r.1 == Server::Reference).map(|r| &r.0).collect();
    for name in names {
        let get = |s: Server| &rows.iter().find(|r| &r.0 == name && r.1 == s).unwrap().2;
        let (r, h) = (get(Server::Reference), get(Server::Halite));
        println!(
            "| {name} | {:.2}× | {:.2}× | {:.2}× |",
            r.wall / h.wall,
            r.cpu / h.cpu.max(0.001),
            h.peak_rss_kib as f64 / r.peak_rss_kib.max(1) as f64
        );
    }
}

/// `SOAK_CLIENTS` clients pull the tree from `daemon` over and over for `minutes`, each into
/// an empty directory; the listener is sampled every 10 s. Prints the flatness table, the
/// pulls done and failed, and the most connection processes seen at once.
fn soak(daemon: &Daemon, files: usize, total: u64, minutes: u64) {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let duration = Duration::from_secs(minutes * 60);
    let (done, failed, stop) = (AtomicUsize::new(0), AtomicUsize::new(0), AtomicBool::new(false));
    let most_children = AtomicUsize::new(0);
    let client_side = tempfile::tempdir_in("/dev/shm").or_else(|_| tempfile::tempdir()).unwrap();
    let listener = daemon.child.id();
    let cpu_before = daemon.children_cpu();
    eprintln!("halite-rsyncd: {minutes} min of {SOAK_CLIENTS} clients pulling {files} files ({} MiB)", total >> 20);
    let soak = std::thread::scope(|scope| {
        for client in 0..SOAK_CLIENTS {
            let dst = client_side.path().join(format!("client{client}"));
            let (done, failed, stop) = (&done, &failed, &stop);
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let _ = std::fs::remove_dir_all(&dst);
                    let status = Command::new("rsync")
                        .args(["-a", &daemon.url("tree/"), dst.to_str().unwrap()])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status();
                    let counter = if status.is_ok_and(|s| s.success()) { done } else { failed };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        let soak = procstat::Soak::run(duration, Duration::from_secs(10), || {
            most_children.fetch_max(procstat::descendants_of(listener).len(), Ordering::Relaxed);
            procstat::usage(&[listener])
        });
        stop.store(true, Ordering::Relaxed);
        soak
    });
    // The last pulls' processes are reaped a moment after their clients end.
    std::thread::sleep(Duration::from_secs(2));
    println!("halite-rsyncd, {minutes} min, {SOAK_CLIENTS} clients pulling {files} files ({} MiB) in a loop; the listener after the first fifth:\n", total >> 20);
    print!("{}", soak.flatness_table());
    println!(
        "\n{} pulls done, {} failed; at most {} connection processes at a sample, {} left after the clients ended; {:.1} s of connection CPU per pull",
        done.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        most_children.load(Ordering::Relaxed),
        procstat::descendants_of(listener).len(),
        (daemon.children_cpu() - cpu_before) / done.load(Ordering::Relaxed).max(1) as f64
    );
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    Reference = 0,
    Halite = 1,
}

impl Server {
    fn label(self) -> &'static str {
        match self {
            Server::Reference => "rsync --daemon 3.x",
            Server::Halite => "halite-rsyncd",
        }
    }
}

struct Measure {
    wall: f64,
    cpu: f64,
    peak_rss_kib: u64,
}

struct Daemon {
    child: Child,
    port: u16,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    fn start(server: Server, halite: &Path, conf: &str, work: &Path) -> Daemon {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let conf_path = work.join("rsyncd.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = match server {
            Server::Halite => Command::new(halite)
                .args(["--config", conf_path.to_str().unwrap(), "--address", "127.0.0.1"])
                .args(["--port", &port.to_string()])
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
            Server::Reference => Command::new("rsync")
                .args(["--daemon", "--no-detach", "--address=127.0.0.1"])
                .arg(format!("--config={}", conf_path.display()))
                .arg(format!("--port={port}"))
                .arg(format!("--log-file={}/rsyncd.log", work.display()))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        };
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            std::thread::sleep(Duration::from_millis(20));
        }
        // Let the probe connection end and be reaped before measuring.
        std::thread::sleep(Duration::from_millis(1200));
        Daemon { child, port }
    }

    fn url(&self, path: &str) -> String {
        format!("rsync://127.0.0.1:{}/{path}", self.port)
    }

    /// Children CPU (reaped) of the daemon, in seconds.
    fn children_cpu(&self) -> f64 {
        procstat::reaped_cpu_s(self.child.id())
    }

    fn run(&self, args: &[String]) -> Measure {
        // What the previous run left dirty goes to disk now, not during this one: each
        // run pays for its own writes only.
        // SAFETY: sync has no preconditions.
        unsafe { libc::sync() };
        let cpu_before = self.children_cpu();
        let started = Instant::now();
        let mut client = Command::new("rsync").args(args).stdout(Stdio::null()).spawn().unwrap();
        let mut peak = 0u64;
        loop {
            for pid in procstat::descendants_of(self.child.id()) {
                peak = peak.max(procstat::peak_rss_kib(pid) as u64);
            }
            if let Some(status) = client.try_wait().unwrap() {
                // A failed transfer is not a measurement.
                assert!(status.success(), "rsync {args:?}: {status}");
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let wall = started.elapsed().as_secs_f64();
        // Wait until the connection's process has been reaped (its CPU counted).
        let deadline = Instant::now() + Duration::from_secs(10);
        while !procstat::descendants_of(self.child.id()).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(1100));
        Measure { wall, cpu: self.children_cpu() - cpu_before, peak_rss_kib: peak }
    }
}

fn write_random(path: &Path, len: usize, seed: u64) {
    use std::io::Write;
    let mut x = seed | 1;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        for chunk in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let b = x.to_le_bytes();
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
        let n = left.min(buf.len());
        f.write_all(&buf[..n]).unwrap();
        left -= n;
    }
}

/// `files` files, 95% of them small (about 4 KiB on average), the rest sharing what is
/// left of `total` bytes.
fn make_tree(root: &Path, files: usize, total: u64) {
    let small = files * 95 / 100;
    let large = (files - small).max(1);
    let small_bytes: u64 = 4096 * small as u64;
    let large_each = (total.saturating_sub(small_bytes) / large as u64) as usize;
    for i in 0..small {
        let dir = root.join(format!("d{:02}/s{:02}", i % 50, (i / 50) % 20));
        std::fs::create_dir_all(&dir).unwrap();
        write_random(&dir.join(format!("f{i}.txt")), 1024 + (i * 7919) % 6144, i as u64 + 1);
    }
    for i in 0..large {
        let dir = root.join(format!("large{:02}", i % 10));
        std::fs::create_dir_all(&dir).unwrap();
        write_random(&dir.join(format!("l{i}.bin")), large_each, 1_000_003 + i as u64);
    }
}

/// Overwrites `len` bytes in the middle of the file with new data.
fn change_middle(path: &Path, len: usize, seed: u64) {
    use std::io::{Seek, SeekFrom, Write};
    let size = std::fs::metadata(path).unwrap().len();
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(size / 2)).unwrap();
    let mut x = seed | 1;
    let data: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    f.write_all(&data).unwrap();
}
