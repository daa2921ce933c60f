//! File-serving throughput, two ways:
//!
//! - **End to end**: one real salt-minion 3007.8 fetching a 256 MiB file with
//!   `cp.get_file salt://...` (1 MiB `_serve_file` chunks, each AES-sealed, over loopback)
//!   from halite-master and from the Python salt-master 3007.8, in the same run. The minion
//!   (Python) decrypting and writing chunks bounds both.
//! - **Master side**: halite's `_serve_file` answers in process (`Master::file_command`, no
//!   sockets, no sealing), i.e. what the file server itself can read and hand over.
//!
//! Run: `cargo build --release --bins && cargo bench -p halite-master --bench file_serving`
//! (the salt venvs of tests/install-minions.sh must exist). Prints a Markdown table for
//! docs/benchmarks.md. No assertion on speed here: this reports.

use std::io::Write;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

mod common;

use common::{warm_up, HaliteDaemon};
use halite_proto::payload::{map, Value, ValueExt};
use halite_testkit::{Minion, MinionSpec, PythonMaster, SaltVersion};

const SIZE: usize = 256 << 20;
const RUNS: usize = 3;

fn make_file(path: &Path) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let mut f = std::fs::File::create(path).expect("create");
    let mut block = vec![0u8; 1 << 20];
    let mut x: u32 = 0x9e37_79b9;
    for _ in 0..SIZE / block.len() {
        for b in block.iter_mut() {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = x as u8;
        }
        f.write_all(&block).expect("write");
    }
}

/// MB/s of `RUNS` fetches (median), each into a fresh destination.
fn fetch_rate(mut fetch: impl FnMut(&str) -> Output, out_dir: &Path) -> f64 {
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|run| {
            let dest = out_dir.join(format!("copy{run}.bin"));
            let t = Instant::now();
            let out = fetch(&dest.display().to_string());
            let took = t.elapsed();
            let size = std::fs::metadata(&dest).map(|m| m.len()).unwrap_or(0);
            assert_eq!(size as usize, SIZE, "fetch {run}: {}", String::from_utf8_lossy(&out.stdout));
            let _ = std::fs::remove_file(&dest);
            took
        })
        .collect();
    times.sort();
    SIZE as f64 / 1e6 / times[RUNS / 2].as_secs_f64()
}

/// Throughput of `_serve_file` answered in process by a master built on embedded defaults.
fn in_process_rate(states: &Path) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let (mut config, _) = halite_config::MasterConfig::load_at(None, dir.path())?;
    config.file_roots = halite_config::Roots(vec![("base".into(), vec![states.to_path_buf()])]);
    let settings = halite_master::master::Settings::from_config(&config)?;
    let pki = halite_pki::PkiDir::open(dir.path().join("pki"))?;
    let keys = halite_pki::MasterKeys::load_or_create(&pki, 2048)?;
    let store = halite_store::Store::open(&dir.path().join("halite.redb"))?;
    // Nothing is published here; the receiving end only has to outlive the master.
    let (publisher, _published) = halite_zmq::PublishSender::channel();
    let user_keys = halite_master::clear::UserKeys::load_or_create(dir.path(), &["root".to_owned()])?;
    let master = halite_master::master::Master::new(settings, keys, pki, store, user_keys, publisher)?;
    let mut best = f64::MAX;
    for _ in 0..RUNS {
        let t = Instant::now();
        let mut loc = 0u64;
        loop {
            let load =
                map([("path", Value::from("big.bin")), ("saltenv", Value::from("base")), ("loc", Value::from(loc))]);
            let reply = master.file_command(halite_master::command::FileCmd::Serve, &load);
            let n = reply.get("data").and_then(Value::as_bytes_any).map_or(0, <[u8]>::len);
            if n == 0 {
                break;
            }
            loc += n as u64;
        }
        assert_eq!(loc as usize, SIZE);
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(SIZE as f64 / 1e6 / best)
}

fn main() -> anyhow::Result<()> {
    let tree = tempfile::Builder::new().prefix("hfs").tempdir_in("/tmp")?;
    let states = tree.path().join("states");
    make_file(&states.join("big.bin"));
    let out_dir = tree.path().join("out");
    std::fs::create_dir_all(&out_dir)?;
    let roots = format!("file_roots: {{base: [{}]}}", states.display());

    let daemon = HaliteDaemon::start(&["auto_accept: True", &roots])?;
    let mut minion = Minion::start(MinionSpec::new("fetcher", SaltVersion::V3007), &daemon.endpoints());
    warm_up("halite", || daemon.cli("salt", &["*", "test.ping", "--out", "json"]), 1);
    let halite = fetch_rate(
        |dest| daemon.cli("salt", &["fetcher", "cp.get_file", "salt://big.bin", dest, "-t", "300"]),
        &out_dir,
    );
    minion.stop();
    drop(daemon);

    let python = PythonMaster::start(&["auto_accept: True", &roots]);
    let mut minion = Minion::start(MinionSpec::new("fetcher", SaltVersion::V3007), &python.endpoints());
    warm_up("python", || python.cli("salt", &["*", "test.ping", "--out", "json"]), 1);
    let salt = fetch_rate(
        |dest| python.cli("salt", &["fetcher", "cp.get_file", "salt://big.bin", dest, "-t", "300"]),
        &out_dir,
    );
    minion.stop();

    let served = in_process_rate(&states)?;
    println!("| measure (256 MiB file, median of {RUNS}) | halite | Salt 3007.8 |");
    println!("|---|---|---|");
    println!("| `cp.get_file` by a 3007.8 minion, end to end | {halite:.0} MB/s | {salt:.0} MB/s |");
    println!("| `_serve_file` answered in process (no sealing) | {served:.0} MB/s | — |");
    Ok(())
}
