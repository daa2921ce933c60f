//! A busy job cache under `keep_jobs_seconds`: is the redb file bounded in bytes?
//!
//! Writes `--jobs` jobs (default 100,000), each with `--returns` returns (default 10) of
//! `--bytes` bytes (default 2,000: a `state.apply` of a few states), one job per simulated
//! second, and expires as the master does every `loop_interval` (here every 60 simulated
//! seconds) the jobs older than `--keep` simulated seconds (default 3,600). Prints the file's
//! size and allocated bytes at checkpoints, and the largest size after the first window
//! against the size at the end of the first window: the ratio a busy cache grows by once
//! expiry runs (1.0 = bounded). Returns go through the group commit from 10 writer threads,
//! as the master's workers hand them over.
//!
//! Run: `cargo bench -p halite-store --bench job_cache [-- --jobs N --returns R --bytes B
//! --keep SECS --dir DIR --cache-mib MIB]`; `--cache-mib` sets redb's page cache (default
//! halite's, [`halite_store::DEFAULT_CACHE_BYTES`]), whose cost is the RSS column and the
//! time to read back every return of the last 1,000 jobs kept. The store is put in DIR (default: a temp dir in /dev/shm, since
//! what is measured is bytes, not fsyncs). Nothing here asserts: it measures and prints.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Instant;

use halite_proto::payload::{map, Value};
use halite_store::jobs::Job;
use halite_store::Store;

struct Args {
    jobs: u64,
    returns: u64,
    bytes: usize,
    keep: u64,
    dir: Option<PathBuf>,
    cache_bytes: usize,
}

fn args() -> Args {
    let mut a = Args {
        jobs: 100_000,
        returns: 10,
        bytes: 2_000,
        keep: 3_600,
        dir: None,
        cache_bytes: halite_store::DEFAULT_CACHE_BYTES,
    };
    for flag in common::flags() {
        match flag.name.as_str() {
            "--jobs" => a.jobs = flag.number(),
            "--returns" => a.returns = flag.number(),
            "--bytes" => a.bytes = flag.number() as usize,
            "--keep" => a.keep = flag.number(),
            "--dir" => a.dir = Some(PathBuf::from(&flag.value)),
            "--cache-mib" => a.cache_bytes = flag.number() as usize * 1024 * 1024,
            other => panic!("unknown option {other}"),
        }
    }
    a
}

fn jid(n: u64) -> String {
    format!("2026120700{n:010}")
}

fn sizes(path: &std::path::Path) -> (f64, f64) {
    let meta = std::fs::metadata(path).expect("store file");
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    (mib(meta.len()), mib(meta.blocks() * 512))
}

/// This process's resident memory, from /proc.
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib =
        status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next()?.parse().ok());
    kib.unwrap_or(0.0) / 1024.0
}

fn main() {
    let a = args();
    let temp = tempfile::Builder::new().prefix("job-cache").tempdir_in(a.dir.clone().unwrap_or("/dev/shm".into()));
    let temp = temp.expect("temp dir");
    let path = temp.path().join("halite.redb");
    let options = halite_store::Options { cache_bytes: a.cache_bytes, ..Default::default() };
    let store = Store::open_with(&path, options).expect("store");
    let text: String = (0..a.bytes).map(|i| char::from(b'a' + (i * 7 % 26) as u8)).collect();
    let ret = map([("fun", Value::from("state.apply")), ("return", Value::from(text)), ("retcode", Value::from(0))]);
    let second = 1_000_000u64;
    let started = Instant::now();
    println!(
        "jobs {} × {} returns of {} B, keep {} s (one job a second), redb cache {} MiB",
        a.jobs,
        a.returns,
        a.bytes,
        a.keep,
        a.cache_bytes >> 20
    );
    println!("{:>9} {:>10} {:>12} {:>10} {:>8}", "jobs", "file MiB", "on disk MiB", "wall s", "RSS MiB");
    let mut at_first_window = None;
    let mut largest_after = 0.0f64;
    for n in 0..a.jobs {
        let now = n * second;
        let jid = jid(n);
        let minions: Vec<String> = (0..a.returns).map(|m| format!("minion{m}")).collect();
        let job =
            Job { jid: jid.clone(), load: map([("fun", Value::from("state.apply"))]), minions, started_micros: now };
        store.put_job(&job).expect("put_job");
        std::thread::scope(|s| {
            for m in 0..a.returns {
                let (store, jid, ret) = (&store, &jid, &ret);
                s.spawn(move || store.put_return(jid, &format!("minion{m}"), ret, now).expect("put_return"));
            }
        });
        if n % 60 == 59 {
            store.expire_jobs(now.saturating_sub(a.keep * second)).expect("expire");
        }
        let checkpoint = (n + 1) % (a.jobs / 20).max(1) == 0;
        if n + 1 == a.keep {
            at_first_window = Some(sizes(&path).0);
        }
        if n + 1 > a.keep {
            largest_after = largest_after.max(sizes(&path).0);
        }
        if checkpoint {
            let (file, disk) = sizes(&path);
            let (wall, rss) = (started.elapsed().as_secs_f64(), rss_mib());
            println!("{:>9} {:>10.1} {:>12.1} {:>10.1} {:>8.0}", n + 1, file, disk, wall, rss);
        }
    }
    let kept = store.jobs().expect("jobs");
    let reading = Instant::now();
    let read: usize = kept.iter().rev().take(1_000).map(|job| store.returns(&job.jid).expect("returns").len()).sum();
    println!("read {read} returns of the last 1,000 jobs in {:.2} s", reading.elapsed().as_secs_f64());
    let kept = kept.len();
    println!("jobs kept at the end: {kept} (keep window {} s)", a.keep);
    if let Some(first) = at_first_window {
        println!(
            "file at the end of the first window {first:.1} MiB, largest after it {largest_after:.1} MiB: ratio {:.2}",
            largest_after / first
        );
    }
}
