//! Pillar compiles per second: the site's `pillar/` tree compiled for 1,000 minions (the
//! VM-roles document's roles spread over them, production and staging mixed), by halite's
//! `Compiler` (one and two threads) and by Salt 3007.8's own `compile_pillar` in its venv's
//! Python, one process, the same minions — what a master does when every minion refreshes.
//!
//! Run: `cargo bench -p halite-pillar --bench pillar_compile [-- <minions>]` (the Salt venvs
//! of tests/install-minions.sh must exist). Prints a Markdown table for docs/benchmarks.md.
//! No assertion on speed here: this reports.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use halite_pillar::{Compiler, Request, Settings};
use halite_testkit::SaltVersion;
use halite_yaml::Value;

const ROLES: &[&[&str]] = &[
    &["app"],
    &["app"],
    &["app"],
    &["db"],
    &["db", "masterdb"],
    &["sessions"],
    &["memcache"],
    &["elastic"],
    &["mail"],
    &["blog"],
    &["project"],
    &["notes"],
    &["bots"],
    &["jobrunner"],
    &["accounts"],
    &["salt"],
    &["source"],
];

/// `(id, grains)` of minion `i`.
fn minion(i: usize) -> (String, Value) {
    let roles = ROLES[i % ROLES.len()];
    let level = if i % 4 == 3 { "staging" } else { "production" };
    let id = format!("{}{}", roles.last().unwrap_or(&"vm"), i);
    let grains = format!(
        "{{roles: [{}], level: {level}, os: Debian, os_family: Debian, osrelease: '12', num_cpus: {}, \
         ipv4: [10.10.10.{}], fqdn: {id}.{level}.wpdn, kernel: Linux, mem_total: 3951}}",
        roles.join(", "),
        2 + i % 6,
        i % 250
    );
    (id, halite_yaml::load(&grains).expect("grains"))
}

fn site_pillar() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pillar").canonicalize().expect("the repository's pillar/")
}

fn halite_rate(compiler: &Compiler, minions: &[(String, Value)], threads: usize) -> f64 {
    let empty = Value::Map(Vec::new());
    let started = Instant::now();
    std::thread::scope(|s| {
        for chunk in minions.chunks(minions.len().div_ceil(threads)) {
            let empty = &empty;
            s.spawn(move || {
                for (id, grains) in chunk {
                    let req = Request { minion_id: id, grains, saltenv: None, pillarenv: None, pillar_override: empty };
                    let compiled = compiler.compile(&req);
                    assert!(compiled.errors.is_empty(), "{id}: {:?}", compiled.details);
                }
            });
        }
    });
    minions.len() as f64 / started.elapsed().as_secs_f64()
}

const SALT_COMPILE: &str = r#"
import json, sys, time
import salt.config, salt.pillar
opts = salt.config.master_config(sys.argv[1])
minions = json.load(open(sys.argv[2]))
start = time.perf_counter()
for mid, grains in minions:
    grains = dict(grains, id=mid)
    pillar = salt.pillar.get_pillar(opts, grains, mid, None).compile_pillar()
    assert "_errors" not in pillar, (mid, pillar["_errors"])
print(len(minions) / (time.perf_counter() - start))
"#;

fn salt_rate(pillar: &Path, minions: &[(String, Value)]) -> f64 {
    let python = halite_testkit::venv(SaltVersion::V3007).join("bin/python");
    assert!(python.is_file(), "{} is missing: run tests/install-minions.sh", python.display());
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().display();
    let config = format!(
        "pillar_roots:\n  base:\n    - {}\ncachedir: {root}/cache\npki_dir: {root}/pki\nsock_dir: {root}/run\n\
         log_file: {root}/master.log\n",
        pillar.display()
    );
    std::fs::write(dir.path().join("master"), config).expect("master config");
    let json_style = halite_yaml::dump::JsonStyle::default();
    let list: Vec<String> =
        minions.iter().map(|(id, g)| format!("[{:?}, {}]", id, halite_yaml::dump::json(g, &json_style))).collect();
    std::fs::write(dir.path().join("minions.json"), format!("[{}]", list.join(", "))).expect("minions");
    let out = Command::new(python)
        .arg("-c")
        .arg(SALT_COMPILE)
        .arg(dir.path().join("master"))
        .arg(dir.path().join("minions.json"))
        .output()
        .expect("run Salt's compile");
    assert!(out.status.success(), "Salt's compile failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().parse().expect("a rate")
}

fn main() {
    let count: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(1000);
    let pillar = site_pillar();
    let minions: Vec<(String, Value)> = (0..count).map(minion).collect();
    let compiler = Compiler::new(Settings::with_roots(vec![("base".into(), vec![pillar.clone()])])).expect("compiler");
    // Warm the file lists and the page cache, as a running master has them.
    halite_rate(&compiler, &minions[..count.min(50)], 1);
    let one = halite_rate(&compiler, &minions, 1);
    let two = halite_rate(&compiler, &minions, 2);
    let salt = salt_rate(&pillar, &minions);
    println!("| case | halite | Salt 3007.8 |");
    println!("|---|---|---|");
    println!("| {count} minions, site pillar, 1 thread | {one:.0} compiles/s | {salt:.1} compiles/s |");
    println!("| {count} minions, site pillar, 2 threads | {two:.0} compiles/s | — |");
}
