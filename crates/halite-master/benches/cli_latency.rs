//! CLI latency: wall time from starting `salt '*' test.ping` to its exit, with five real
//! minions answering, for halite's `salt` against halite-master and for Salt's own `salt`
//! against the Python salt-master on the same machine; and each CLI's own overhead (a target
//! matching no minion: parse, connect, publish request, answer, exit).
//!
//! Run: `cargo build --release --bins && cargo bench -p halite-master --bench cli_latency`
//! (the salt venvs of tests/install-minions.sh must exist). Prints a Markdown table for
//! docs/benchmarks.md. No assertion on speed here: this reports.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

mod common;

use common::{release_bin, warm_up, HaliteDaemon};
use halite_testkit::{Minion, MinionSpec, PythonMaster, SaltVersion};

const MINIONS: usize = 5;
const RUNS: usize = 20;

fn specs(prefix: &str) -> Vec<MinionSpec> {
    let versions = [SaltVersion::V3006, SaltVersion::V3007, SaltVersion::V3008];
    (0..MINIONS).map(|i| MinionSpec::new(&format!("{prefix}{i}"), versions[i % 3]).with_roles(&["app"])).collect()
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
    let daemon = HaliteDaemon::start(&["auto_accept: True"])?;
    let (conf_dir, endpoints) = (daemon.config_dir(), daemon.endpoints());
    let mut minions: Vec<Minion> = specs("hb").into_iter().map(|s| Minion::start(s, &endpoints)).collect();
    let salt = release_bin("salt");
    let halite_salt = |args: &[&str]| Command::new(&salt).arg("-c").arg(&conf_dir).args(args).output().expect("salt");
    warm_up("halite", || halite_salt(&["*", "test.ping", "--out", "json"]), MINIONS);
    let halite_ping = measure(|| halite_salt(&["*", "test.ping"]));
    let halite_none = measure(|| halite_salt(&["nomatch*", "test.ping"]));
    Minion::stop_all(&mut minions);
    drop(daemon);

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
