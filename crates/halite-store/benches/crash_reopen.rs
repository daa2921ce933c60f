//! What redb's quick repair costs on every commit, and what it saves when the master is
//! killed: the store is filled to `--mib` MiB with returns, killed (SIGKILL) while it still
//! writes, and opened again, once with quick repair and once without.
//!
//! The writer is this binary run again as a child (`HALITE_CRASH_FILL` set): `--threads`
//! threads (default 10, as the master's workers) store returns of `--bytes` bytes (default
//! 20,000: a large `state.apply`) through the group commit, one job per round. It reports its
//! rate and CPU once the file has reached the size, and goes on writing until the parent kills
//! it. The parent then times `Store::open` on what is left, which is what stands between a
//! restarted master and its first answer.
//!
//! Run: `cargo bench -p halite-store --bench crash_reopen [-- --mib N --bytes B --threads T
//! --dir DIR]`. DIR defaults to the system's temp dir: the commits' fsyncs are part of what is
//! measured, so not a tmpfs. Nothing here asserts: it measures and prints.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use halite_proto::payload::{map, Value};
use halite_store::jobs::Job;
use halite_store::{Options, Store};

const FILL: &str = "HALITE_CRASH_FILL";

#[derive(Clone)]
struct Args {
    mib: u64,
    bytes: usize,
    threads: usize,
    dir: PathBuf,
}

fn args() -> Args {
    let mut a = Args { mib: 256, bytes: 20_000, threads: 10, dir: std::env::temp_dir() };
    for flag in common::flags() {
        match flag.name.as_str() {
            "--mib" => a.mib = flag.number(),
            "--bytes" => a.bytes = flag.number() as usize,
            "--threads" => a.threads = flag.number() as usize,
            "--dir" => a.dir = PathBuf::from(&flag.value),
            other => panic!("unknown option {other}"),
        }
    }
    a
}

/// User + system CPU seconds of this process so far.
fn cpu_seconds() -> f64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes only into the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// The child: fills the store, reports, and writes on until killed.
fn fill(a: &Args, path: &Path, quick_repair: bool) {
    let store = Store::open_with(path, Options { quick_repair, ..Options::default() }).expect("store");
    let ret = map([("fun", Value::from("state.apply")), ("return", Value::from("x".repeat(a.bytes)))]);
    let (started, cpu_at_start) = (Instant::now(), cpu_seconds());
    let mut reported = false;
    let mut stored = 0u64;
    // The parent kills this long before; the limit only keeps a lost child from running on.
    let until = Instant::now() + Duration::from_secs(900);
    for round in 0u64.. {
        if Instant::now() > until {
            break;
        }
        let jid = format!("20261207{round:012}");
        let minions: Vec<String> = (0..a.threads).map(|m| format!("minion{m}")).collect();
        let job =
            Job { jid: jid.clone(), load: map([("fun", Value::from("state.apply"))]), minions, started_micros: 0 };
        store.put_job(&job).expect("put_job");
        std::thread::scope(|s| {
            for m in 0..a.threads {
                let (store, jid, ret) = (&store, &jid, &ret);
                s.spawn(move || store.put_return(jid, &format!("minion{m}"), ret, 0).expect("put_return"));
            }
        });
        stored += a.threads as u64;
        if !reported && std::fs::metadata(path).map(|m| m.len()).unwrap_or(0) >= a.mib << 20 {
            let (wall, cpu) = (started.elapsed().as_secs_f64(), cpu_seconds() - cpu_at_start);
            let mut out = std::io::stdout().lock();
            writeln!(out, "filled {stored} {wall} {cpu}").and_then(|()| out.flush()).expect("stdout");
            reported = true;
        }
    }
}

struct Outcome {
    returns: u64,
    wall_s: f64,
    cpu_s: f64,
    file_mib: f64,
    opened: halite_store::Opened,
}

fn crash_and_reopen(a: &Args, quick_repair: bool) -> Outcome {
    let dir = tempfile::Builder::new().prefix("crash-reopen").tempdir_in(&a.dir).expect("temp dir");
    let path = dir.path().join("halite.redb");
    let mut child = Command::new(std::env::current_exe().expect("bench binary"))
        .args(["--mib", &a.mib.to_string(), "--bytes", &a.bytes.to_string(), "--threads", &a.threads.to_string()])
        .env(FILL, if quick_repair { "quick" } else { "full" })
        .env("HALITE_CRASH_PATH", &path)
        .stdout(Stdio::piped())
        .spawn()
        .expect("writer");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let line = lines.next().expect("the writer ended before filling the store").expect("stdout");
    let fields: Vec<&str> = line.split(' ').collect();
    let number = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or_else(|| panic!("{line}"));
    let (returns, wall_s, cpu_s) = (number(1) as u64, number(2), number(3));
    // Let it commit a while past the size, so the kill lands among commits.
    std::thread::sleep(Duration::from_millis(500));
    child.kill().expect("SIGKILL");
    child.wait().expect("writer reaped");
    let file_mib = std::fs::metadata(&path).expect("store file").len() as f64 / (1 << 20) as f64;
    // Drop what the kernel caches of the file, as a rebooted machine would have it cold, if
    // this runs as root; otherwise the file is read warm and the figure is a floor.
    let _ = std::fs::write("/proc/sys/vm/drop_caches", "1");
    let store = Store::open(&path).expect("the store opens after the kill");
    Outcome { returns, wall_s, cpu_s, file_mib, opened: store.opened() }
}

fn main() {
    let a = args();
    if let Ok(mode) = std::env::var(FILL) {
        let path = PathBuf::from(std::env::var_os("HALITE_CRASH_PATH").expect("HALITE_CRASH_PATH"));
        fill(&a, &path, mode == "quick");
        return;
    }
    println!(
        "store filled to {} MiB with returns of {} B from {} threads, in {}; killed while writing",
        a.mib,
        a.bytes,
        a.threads,
        a.dir.display()
    );
    println!("| commits | returns/s while filling | CPU ms per 1,000 returns | file at the kill (MiB) | open after kill -9 (s) | full repair |");
    println!("|---|---|---|---|---|---|");
    for quick_repair in [false, true] {
        let o = crash_and_reopen(&a, quick_repair);
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.3} | {} |",
            if quick_repair { "quick repair (two-phase)" } else { "redb's default" },
            o.returns as f64 / o.wall_s,
            o.cpu_s * 1e6 / o.returns as f64,
            o.file_mib,
            o.opened.took.as_secs_f64(),
            if o.opened.full_repair { "yes" } else { "no" },
        );
    }
}
