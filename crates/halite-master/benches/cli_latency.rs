//! CLI latency: wall time from starting `salt '*' test.ping` to its exit, with five real
//! minions answering, for halite's `salt` against halite-master and for Salt's own `salt`
//! against the Python salt-master on the same machine; and each CLI's own overhead (a target
//! matching no minion: parse, connect, publish request, answer, exit).
//!
//! Run: `cargo build --release --bins && cargo bench -p halite-master --bench cli_latency`
//! (the salt venvs of tests/install-minions.sh must exist). Prints a Markdown table for
//! docs/benchmarks.md. No assertion on speed here: this reports.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use halite_testkit::{free_port, Endpoints, Minion, MinionSpec, PythonMaster, SaltVersion};

const MINIONS: usize = 5;
const RUNS: usize = 20;

fn release_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("bench path");
    let dir = exe.parent().and_then(Path::parent).expect("target profile dir");
    let bin = dir.join(name);
    assert!(bin.is_file(), "{} missing: run `cargo build --release --bins` first", bin.display());
    bin
}

fn specs(prefix: &str) -> Vec<MinionSpec> {
    let versions = [SaltVersion::V3006, SaltVersion::V3007, SaltVersion::V3008];
    (0..MINIONS).map(|i| MinionSpec::new(&format!("{prefix}{i}"), versions[i % 3]).with_roles(&["app"])).collect()
}

/// Runs `cmd` until it succeeds with `want` returns, so every minion is connected and warm.
fn warm_up(what: &str, mut run: impl FnMut() -> Output, want: usize) {
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

/// Median and 90th percentile of `RUNS` timed runs.
fn measure(mut run: impl FnMut() -> Output) -> (Duration, Duration) {
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            let _ = run();
            t.elapsed()
        })
        .collect();
    times.sort();
    (times[RUNS / 2], times[RUNS * 9 / 10])
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() -> anyhow::Result<()> {
    // halite: master and CLI from this build, minions from the venvs.
    let root = tempfile::Builder::new().prefix("hb").tempdir_in("/tmp")?;
    let (ret_port, publish_port) = (free_port(), free_port());
    let conf_dir = root.path().join("etc");
    std::fs::create_dir_all(&conf_dir)?;
    let r = root.path().display();
    std::fs::write(
        conf_dir.join("master"),
        format!(
            "interface: 127.0.0.1\nret_port: {ret_port}\npublish_port: {publish_port}\npki_dir: {r}/pki\n\
             cachedir: {r}/cache\nsock_dir: {r}/run\nlog_file: {r}/master.log\nlog_level: warning\n\
             auto_accept: True\nuser: {}\n",
            std::env::var("USER").unwrap_or_else(|_| "root".into())
        ),
    )?;
    let mut master = Command::new(release_bin("halite-master")).arg("-c").arg(&conf_dir).spawn()?;
    std::thread::sleep(Duration::from_secs(1));
    let endpoints = Endpoints { host: "127.0.0.1".into(), ret_port, publish_port };
    let mut minions: Vec<Minion> = specs("hb").into_iter().map(|s| Minion::start(s, &endpoints)).collect();
    let salt = release_bin("salt");
    let halite_salt = |args: &[&str]| Command::new(&salt).arg("-c").arg(&conf_dir).args(args).output().expect("salt");
    warm_up("halite", || halite_salt(&["*", "test.ping", "--out", "json"]), MINIONS);
    let halite_ping = measure(|| halite_salt(&["*", "test.ping"]));
    let halite_none = measure(|| halite_salt(&["nomatch*", "test.ping"]));
    Minion::stop_all(&mut minions);
    let _ = master.kill();
    let _ = master.wait();

    // Salt: the Python master and its own CLI, same minion versions.
    let python = PythonMaster::start(&["auto_accept: True"]);
    let mut minions: Vec<Minion> = specs("pb").into_iter().map(|s| Minion::start(s, &python.endpoints())).collect();
    warm_up("python", || python.cli("salt", &["*", "test.ping", "--out", "json"]), MINIONS);
    let python_ping = measure(|| python.cli("salt", &["*", "test.ping"]));
    let python_none = measure(|| python.cli("salt", &["nomatch*", "test.ping"]));
    Minion::stop_all(&mut minions);

    println!("| measure ({MINIONS} minions, {RUNS} runs) | halite median / p90 | Salt 3007.8 median / p90 |");
    println!("|---|---|---|");
    println!(
        "| `salt '*' test.ping`, start to exit | {} / {} | {} / {} |",
        ms(halite_ping.0),
        ms(halite_ping.1),
        ms(python_ping.0),
        ms(python_ping.1)
    );
    println!(
        "| `salt 'nomatch*' test.ping` (CLI overhead) | {} / {} | {} / {} |",
        ms(halite_none.0),
        ms(halite_none.1),
        ms(python_none.0),
        ms(python_none.1)
    );
    Ok(())
}
