//! The swarm against both masters: the same simulated minions (`halite-swarm`, v2 and v3
//! mixed) against halite and against the Python salt-master 3007.8, for each size, on this
//! machine, in one run. Per size and master: seconds until all authenticated and all ready,
//! `salt '*' test.ping` and `salt -G roles:db grains.get roles` from publish to last return
//! (median of three, as the swarm saw them) and the CLI's own wall time, returns per
//! second, returns lost, master CPU seconds and memory (RSS and PSS summed over the
//! master's processes); for halite also a restart storm, a key-delete rotation, a kill -9
//! of the master while a job's returns arrive (acknowledged returns lost, time until all
//! are ready again) and a kill -9 of its publisher process.
//!
//! Per size and master also the master's CPU per minion brought up (authenticated, pillar
//! compiled and sealed, subscribed, start event fired): its CPU seconds from the swarm's
//! `go` to all ready, divided by the minions; comparable across machines whatever the
//! swarm costs, and alone on its cores with `--pin-master` / `--pin-swarm` (CPU lists as
//! `taskset -c` reads them; the publisher process and the swarm's own child processes
//! inherit the pinning).
//!
//! `HALITE_TEST_ROOT=/dev/shm` puts both masters' roots on tmpfs: the first contact then pays
//! no inode allocation for its key file, which on this machine's ext4 varied with what the
//! previous runs had deleted (docs/decisions.md, "Sign-in cost").
//!
//! Run (after `cargo build --release --bins`):
//! `cargo bench -p halite-master --bench swarm -- [--sizes 100,1000,5000,10000]
//!  [--targets halite,salt] [--pin-master 0] [--pin-swarm 1] [--write] [--merge]`
//! `--merge` keeps the rows of docs/swarm-results.json for the (master, size) pairs this run
//! does not measure, so halite can be re-measured without re-running Python's hour.
//! `--write` puts the table into docs/benchmarks.md (between the swarm markers), the plot
//! into docs/swarm.svg and the raw figures into docs/swarm-results.json. Nothing here
//! asserts a speed: it measures and reports.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::swarm::{unix_now, usage, Swarm};
use common::{splice, Cpus, HaliteDaemon};
use halite_testkit::procstat::{children_of, processes_in_group};
use halite_testkit::{PythonMaster, SaltVersion};
use serde_json::{json, Value};

enum Target {
    Halite(HaliteDaemon),
    Salt(PythonMaster),
}

/// Where the master and the swarm run (`--pin-master`, `--pin-swarm`): unpinned, they share
/// every core, and the master's CPU per minion is still its own.
#[derive(Default)]
struct Pins {
    master: Option<Cpus>,
    swarm: Option<Cpus>,
}

impl Target {
    fn start(name: &str, pins: &Pins) -> Target {
        match name {
            "halite" => Target::Halite(
                // Half the swarm speaks v2, which Salt 3007.8 serves and halite only at 2.
                HaliteDaemon::start_on(&["auto_accept: True", "minimum_auth_version: 2"], pins.master.clone())
                    .expect("start halite-master"),
            ),
            "salt" => {
                let master = PythonMaster::start_version(
                    SaltVersion::V3007,
                    &["auto_accept: True", "log_level_logfile: warning"],
                );
                // Salt's processes are all forked by the time it serves; later ones inherit.
                if let (Some(cpus), Some(group)) = (&pins.master, master.pgid()) {
                    cpus.move_processes(&processes_in_group(group));
                }
                Target::Salt(master)
            }
            other => panic!("unknown target {other}: halite or salt"),
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Target::Halite(_) => "halite",
            Target::Salt(_) => "salt 3007.8",
        }
    }

    fn ports(&self) -> (u16, u16) {
        let e = match self {
            Target::Halite(d) => d.endpoints(),
            Target::Salt(m) => m.endpoints(),
        };
        (e.ret_port, e.publish_port)
    }

    fn cli(&self, name: &str, args: &[&str]) -> Output {
        match self {
            Target::Halite(d) => d.cli(name, args),
            Target::Salt(m) => m.cli(name, args),
        }
    }

    /// Pids of the master's processes.
    fn pids(&self) -> Vec<u32> {
        match self {
            // The master and its publisher process.
            Target::Halite(d) => {
                let mut pids = children_of(d.pid());
                pids.push(d.pid());
                pids
            }
            Target::Salt(m) => m.pgid().map(processes_in_group).unwrap_or_default(),
        }
    }

    fn restart(&mut self) {
        match self {
            Target::Halite(d) => d.restart().expect("restart halite-master"),
            Target::Salt(m) => m.restart(),
        }
    }
}

/// One job as the swarm saw it: (received, returned, publish → last return).
fn job_figures(report: &Value, jid: &str) -> (u64, u64, Option<f64>) {
    let jobs = report["jobs"].as_array().into_iter().flatten();
    let Some(job) = jobs.into_iter().find(|j| j["jid"] == jid) else { return (0, 0, None) };
    (
        job["received"].as_u64().unwrap_or(0),
        job["returned"].as_u64().unwrap_or(0),
        job["publish_to_last_return_s"].as_f64(),
    )
}

fn jids(report: &Value) -> std::collections::BTreeSet<String> {
    let jobs = report["jobs"].as_array().into_iter().flatten();
    jobs.filter_map(|j| j["jid"].as_str().map(str::to_owned)).collect()
}

/// Runs one CLI job and reads what the swarm saw of it. Returns the figures as JSON.
fn run_job(target: &Target, swarm: &mut Swarm, args: &[&str], targeted: usize) -> Value {
    let before = jids(&swarm.report());
    let started = Instant::now();
    let out = target.cli("salt", &[args, &["--out", "json", "--static", "-t", "120"]].concat());
    let cli_s = started.elapsed().as_secs_f64();
    let cli_returns =
        serde_json::from_slice::<Value>(&out.stdout).ok().and_then(|v| v.as_object().map(|m| m.len())).unwrap_or(0);
    // Returns still in flight when the CLI gave up are counted by the swarm a moment later.
    std::thread::sleep(Duration::from_millis(500));
    let report = swarm.report();
    let new: Vec<String> = jids(&report).difference(&before).cloned().collect();
    let figures = new.iter().map(|jid| job_figures(&report, jid)).max_by_key(|f| f.0);
    let (received, returned, latency) = figures.unwrap_or((0, 0, None));
    json!({
        "targeted": targeted, "received": received, "returned": returned, "cli_returns": cli_returns,
        "lost": targeted.saturating_sub(cli_returns.min(returned as usize)),
        "publish_to_last_return_s": latency, "cli_s": cli_s,
        "returns_per_s": latency.map(|l| returned as f64 / l.max(1e-6)),
    })
}

fn median_by_latency(mut runs: Vec<Value>) -> Value {
    runs.sort_by(|a, b| {
        let l = |v: &Value| v["publish_to_last_return_s"].as_f64().unwrap_or(f64::INFINITY);
        l(a).total_cmp(&l(b))
    });
    let mut mid = runs[runs.len() / 2].clone();
    mid["lost_in_any_run"] = json!(runs.iter().map(|r| r["lost"].as_u64().unwrap_or(0)).max());
    mid
}

fn measure(target_name: &str, minions: usize, pins: &Pins) -> Value {
    let mut target = Target::start(target_name, pins);
    let label = target.label();
    eprintln!("== {label}, {minions} minions");
    let ready_timeout = Duration::from_secs((60 + minions as u64 / 10).min(900));
    let mut swarm = Swarm::spawn(minions, target.ports(), ready_timeout, pins.swarm.as_ref());
    swarm.next(&["loaded"], Duration::from_secs(3600));
    let (cpu0, _, _) = usage(&target.pids());
    let (swarm_cpu0, _, _) = usage(&swarm.pids());
    // Taken just before the come-up: this machine's speed wanders by a fifth within minutes.
    let sign_ms = rsa_sign_ms(pins.master.as_ref());
    swarm.send("go");
    let ready = swarm.next(&["ready", "not_ready"], ready_timeout + Duration::from_secs(90));
    let all_ready = ready["event"] == "ready";
    let (cpu1, rss1, pss1) = usage(&target.pids());
    // The swarm's share of the same two cores: what the master could not have used.
    let (swarm_cpu1, _, _) = usage(&swarm.pids());
    let mut result = json!({
        "master": label, "minions": minions, "all_ready": all_ready,
        "authenticated": ready["authenticated"], "ready": ready["ready"],
        "swarm_processes": ready["processes"].as_u64().unwrap_or(1),
        "all_authenticated_s": if all_ready { ready["all_authenticated_s"].clone() } else { Value::Null },
        "all_ready_s": if all_ready { ready["all_ready_s"].clone() } else { Value::Null },
        "coming_up_cpu_s": cpu1 - cpu0, "swarm_coming_up_cpu_s": swarm_cpu1 - swarm_cpu0,
        "master_cpu_ms_per_minion": (cpu1 - cpu0) * 1000.0 / minions as f64,
        // Two signatures per sign-in are the floor; in these units machines compare.
        "rsa_sign_ms": sign_ms, "master_cpu_in_signatures": (cpu1 - cpu0) * 1000.0 / minions as f64 / sign_ms,
        "pinned": { "master": pins.master.as_ref().map(Cpus::list), "swarm": pins.swarm.as_ref().map(Cpus::list) },
        "ready_rss_mb": rss1, "ready_pss_mb": pss1,
    });
    eprintln!("   ready: {result}");
    if all_ready {
        let dbs = (0..minions).filter(|i| halite_swarm::ROLES[i % halite_swarm::ROLES.len()].contains(&"db")).count();
        let ping: Vec<Value> = (0..3).map(|_| run_job(&target, &mut swarm, &["*", "test.ping"], minions)).collect();
        let grains: Vec<Value> =
            (0..3).map(|_| run_job(&target, &mut swarm, &["-G", "roles:db", "grains.get", "roles"], dbs)).collect();
        // Memory at rest after the jobs, not in the middle of freeing them: halite gives
        // freed heap back every 10 s (`return_freed_memory`), Python when its GC runs.
        let (cpu2, _, _) = usage(&target.pids());
        std::thread::sleep(Duration::from_secs(11));
        let (_, rss2, pss2) = usage(&target.pids());
        result["ping"] = median_by_latency(ping);
        result["grains_db"] = median_by_latency(grains);
        result["jobs_cpu_s"] = json!(cpu2 - cpu1);
        result["rss_mb"] = json!(rss2);
        result["pss_mb"] = json!(pss2);
        eprintln!("   jobs: ping {} grains {}", result["ping"], result["grains_db"]);
        if target_name == "halite" {
            result["restart_storm"] = restart_storm(&mut target, &mut swarm, minions);
            result["key_delete_rotation"] = rotation(&target, &mut swarm, minions);
            eprintln!("   restart {} rotation {}", result["restart_storm"], result["key_delete_rotation"]);
            if let Target::Halite(daemon) = &mut target {
                result["killed_during_returns"] = killed_during_returns(daemon, &mut swarm, minions);
                result["publisher_killed"] = publisher_killed(daemon, &mut swarm, minions);
                eprintln!("   kill -9 {} publisher {}", result["killed_during_returns"], result["publisher_killed"]);
            }
        }
    }
    let last = swarm.stop();
    result["swarm_errors"] = last["errors"].clone();
    result["error_samples"] = json!(last["error_samples"].as_array().into_iter().flatten().take(3).collect::<Vec<_>>());
    result
}

/// Seconds until `want` minions are ready again after `since`, polling the swarm.
fn back_after(swarm: &mut Swarm, since: f64, want: usize, timeout: Duration) -> Option<f64> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if swarm.ready_since(since) >= want {
            return Some(unix_now() - since);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

fn errors_and_resends(swarm: &mut Swarm) -> (u64, u64) {
    let report = swarm.report();
    (report["errors"].as_u64().unwrap_or(0), report["auth_resends"].as_u64().unwrap_or(0))
}

fn restart_storm(target: &mut Target, swarm: &mut Swarm, minions: usize) -> Value {
    let since = unix_now();
    target.restart();
    eprintln!("   restarted; waiting for {minions} minions to be back");
    let back = back_after(swarm, since, minions, Duration::from_secs(600));
    // The restarted master's CPU from its start (reading its config, keys and store
    // included) until all are back: what signing in costs for minions it already knows.
    let (cpu, _, _) = usage(&target.pids());
    let ping = run_job(target, swarm, &["*", "test.ping"], minions);
    json!({ "all_ready_again_s": back, "master_cpu_ms_per_minion": cpu * 1000.0 / minions as f64, "ping_after": ping })
}

/// kill -9 of halite-master while the returns of a `test.ping` arrive (issue 20): once half
/// of them are acknowledged it is killed and started again on the same root. Reports how
/// many returns were acknowledged at the kill and how many of those the restarted master's
/// job cache lacks (`salt-run jobs.lookup_jid`; must be 0), the seconds from the restart
/// until every minion is ready again, and how many returns the cache holds once the
/// minions' resends are in.
fn killed_during_returns(daemon: &mut HaliteDaemon, swarm: &mut Swarm, minions: usize) -> Value {
    let out = daemon.cli("salt", &["*", "test.ping", "--async"]);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    let Some(jid) = said.trim().strip_prefix("Executed command with job ID: ").map(str::to_owned) else {
        panic!("salt --async: {said}{}", String::from_utf8_lossy(&out.stderr));
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while swarm.acknowledged(&jid).map_or(0, |ids| ids.len()) < minions / 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    eprintln!("   kill -9 of halite-master during the returns of {jid}");
    daemon.kill_and_start().expect("kill and start halite-master");
    let since = unix_now();
    // Read after the kill: nothing more can have been acknowledged by the killed master.
    let at_kill = swarm.acknowledged(&jid).expect("the swarm says which returns it saw acknowledged");
    // A simulated minion whose return was in flight at the kill waits out its request
    // timeout (60 s, Salt's) before it sends the return again and only then signs in anew;
    // a real minion returns from a job process while its main process reconnects. So the
    // master's own recovery shows as the time until as many minions as had nothing in
    // flight are ready again, and the last ones follow the timeout.
    let back_idle = back_after(swarm, since, at_kill.len(), Duration::from_secs(600));
    let back = back_after(swarm, since, minions, Duration::from_secs(600));
    let cached = |daemon: &HaliteDaemon| -> std::collections::BTreeSet<String> {
        let out = daemon.cli("salt-run", &["jobs.lookup_jid", &jid, "--out", "json"]);
        let returns: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        returns.as_object().map(|r| r.keys().cloned().collect()).unwrap_or_default()
    };
    let stored = cached(daemon);
    let lost = at_kill.iter().filter(|id| !stored.contains(*id)).count();
    // The unacknowledged returns come back with the minions' resends.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut stored_later = stored.len();
    while stored_later < minions && Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(1));
        stored_later = cached(daemon).len();
    }
    json!({
        "acknowledged_at_kill": at_kill.len(), "acknowledged_lost": lost,
        "idle_ready_again_s": back_idle, "all_ready_again_s": back, "stored_after_resends": stored_later,
    })
}

/// kill -9 of the publisher process alone: the master starts another. A simulated minion
/// whose subscription breaks signs in again and subscribes anew (a real minion's libzmq only
/// reconnects its SUB socket, which is less work). Seconds from the kill until every minion
/// is ready again, then one `test.ping`, which must reach them all.
fn publisher_killed(daemon: &HaliteDaemon, swarm: &mut Swarm, minions: usize) -> Value {
    let Some(publisher) = children_of(daemon.pid()).into_iter().next() else {
        return json!({ "error": "no publisher process" });
    };
    let since = unix_now();
    let _ = Command::new("kill").args(["-KILL", &publisher.to_string()]).status();
    let back = back_after(swarm, since, minions, Duration::from_secs(600));
    let out = daemon.cli("salt", &["*", "test.ping", "--out", "json", "--static", "-t", "60"]);
    let answered =
        serde_json::from_slice::<Value>(&out.stdout).ok().and_then(|v| v.as_object().map(|m| m.len())).unwrap_or(0);
    json!({ "all_ready_again_s": back, "ping_after_answered": answered })
}

/// `salt-key -d` of one minion until every other has signed in again: the auth storm of
/// Salt issue #64035. Once the master has rotated, one `test.ping` goes out — what
/// `ping_on_rotate` sends (it targets the minions Salt's presence rule finds connected,
/// and the swarm's all share this host's loopback, so the bench publishes it itself). Every
/// minion fails to open it, signs in at once, and answers. Counts the sign-ins the swarm
/// re-sent after `auth_timeout` on a new connection, as real minions do.
fn rotation(target: &Target, swarm: &mut Swarm, minions: usize) -> Value {
    let (errors_before, resends_before) = errors_and_resends(swarm);
    eprintln!("   deleting swarm0's key");
    let out = target.cli("salt-key", &["-d", "swarm0", "-y"]);
    assert!(out.status.success(), "salt-key -d: {}", String::from_utf8_lossy(&out.stderr));
    if let Target::Halite(d) = target {
        // halite takes salt-key's dropfile within a second; publishing before that would
        // measure the wait for the next ping rather than the re-authentication.
        let dropfile = d.root().join("cache/.dfn");
        let deadline = Instant::now() + Duration::from_secs(5);
        while dropfile.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let since = unix_now();
    let storm = run_job(target, swarm, &["*", "test.ping"], minions - 1);
    let back = back_after(swarm, since, minions - 1, Duration::from_secs(600));
    let (errors_after, resends_after) = errors_and_resends(swarm);
    json!({
        "all_reauthenticated_s": back,
        "swarm_errors": errors_after - errors_before,
        "auth_resends": resends_after - resends_before,
        "ping_during": storm,
    })
}

fn main() {
    let mut sizes = vec![100, 1000, 5000, 10000];
    let mut targets = vec!["halite".to_owned(), "salt".to_owned()];
    let mut write = false;
    let mut merge = false;
    let mut pins = Pins::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--sizes" => {
                sizes = args.next().unwrap_or_default().split(',').filter_map(|s| s.parse().ok()).collect();
            }
            "--targets" => targets = args.next().unwrap_or_default().split(',').map(str::to_owned).collect(),
            "--write" => write = true,
            // Keeps the rows of docs/swarm-results.json this run does not measure (the Python
            // master's take most of an hour at 5,000 minions and do not change with halite).
            "--merge" => merge = true,
            "--pin-master" => pins.master = Some(Cpus::parse(&args.next().unwrap_or_default()).expect("--pin-master")),
            "--pin-swarm" => pins.swarm = Some(Cpus::parse(&args.next().unwrap_or_default()).expect("--pin-swarm")),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs");
    let mut results = Vec::new();
    for &n in &sizes {
        for t in &targets {
            results.push(measure(t, n, &pins));
        }
    }
    if merge {
        let previous: Vec<Value> = std::fs::read(docs.join("swarm-results.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let measured = |r: &Value| results.iter().any(|m| m["master"] == r["master"] && m["minions"] == r["minions"]);
        let kept: Vec<Value> = previous.into_iter().filter(|r| !measured(r)).collect();
        results.extend(kept);
        results.sort_by_key(|r| (r["minions"].as_u64().unwrap_or(0), r["master"].as_str().unwrap_or("").to_owned()));
    }
    let table = table(&results);
    println!("{table}");
    if write {
        std::fs::write(docs.join("swarm-results.json"), serde_json::to_string_pretty(&results).unwrap()).unwrap();
        std::fs::write(docs.join("swarm.svg"), plot(&results)).unwrap();
        let body = format!("{table}\n![all ready and test.ping latency by swarm size](swarm.svg)");
        splice(&docs.join("benchmarks.md"), "swarm", &body);
    }
}

fn fmt(v: &Value, digits: usize) -> String {
    v.as_f64().map_or("—".to_owned(), |x| format!("{x:.digits$}"))
}

/// CPU milliseconds of one PKCS#1 v1.5 SHA-1 signature with a 2,048-bit key (what the
/// master does twice per sign-in, as `openssl speed rsa2048` measures it): the unit in which
/// a sign-in's cost compares across machines and days (the bench machine varies).
fn rsa_sign_ms(on: Option<&Cpus>) -> f64 {
    // Measured on a thread of its own, moved to the master's CPUs when it is pinned: the
    // unit must come from the cores the master ran on.
    let on = on.cloned();
    std::thread::spawn(move || {
        if let Some(cpus) = &on {
            cpus.pin_this_thread();
        }
        sign_cost_ms()
    })
    .join()
    .expect("the signature measurement")
}

fn sign_cost_ms() -> f64 {
    let key = halite_proto::rsa::PrivateKey::generate(2048).expect("a 2048-bit key");
    let thread_cpu = || {
        let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: clock_gettime writes the struct passed, nothing else.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
        t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
    };
    let rounds = 200;
    let start = thread_cpu();
    for i in 0..rounds {
        let data = format!("nonce {i}");
        key.sign(data.as_bytes(), halite_proto::rsa::SigAlgo::Pkcs1v15Sha1).expect("sign");
    }
    (thread_cpu() - start) * 1000.0 / rounds as f64
}

/// `0 / 1` for a master pinned to CPU 0 and a swarm to CPU 1; `—` for a run not pinned.
fn pinning(pinned: &Value) -> String {
    let list = |cpus: &Value| match cpus.as_array() {
        Some(cpus) => cpus.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(","),
        None => "any".to_owned(),
    };
    if pinned["master"].is_null() && pinned["swarm"].is_null() {
        return "—".to_owned();
    }
    format!("{} / {}", list(&pinned["master"]), list(&pinned["swarm"]))
}

fn table(results: &[Value]) -> String {
    let mut out = String::from(
        "| N | master | all authenticated (s) | all ready (s) | `test.ping` publish→last return (s) | CLI (s) | returns/s | `-G roles:db grains.get` (s) | lost | CPU coming up, master / swarm (s) | master CPU per minion brought up (ms) | pinned master / swarm | RSS / PSS (MB) |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in results {
        let lost = r["ping"]["lost_in_any_run"].as_u64().unwrap_or(0)
            + r["grains_db"]["lost_in_any_run"].as_u64().unwrap_or(0);
        let cpu = format!("{} / {}", fmt(&r["coming_up_cpu_s"], 1), fmt(&r["swarm_coming_up_cpu_s"], 1));
        out += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} |\n",
            r["minions"],
            r["master"].as_str().unwrap_or(""),
            fmt(&r["all_authenticated_s"], 2),
            if r["all_ready"] == true { fmt(&r["all_ready_s"], 2) } else { format!("not all ({} ready)", r["ready"]) },
            fmt(&r["ping"]["publish_to_last_return_s"], 3),
            fmt(&r["ping"]["cli_s"], 2),
            fmt(&r["ping"]["returns_per_s"], 0),
            fmt(&r["grains_db"]["publish_to_last_return_s"], 3),
            if r["ping"].is_null() { "—".to_owned() } else { lost.to_string() },
            cpu,
            match r["master_cpu_in_signatures"].as_f64() {
                Some(n) => format!("{} ({n:.1} signatures)", fmt(&r["master_cpu_ms_per_minion"], 2)),
                None => fmt(&r["master_cpu_ms_per_minion"], 2),
            },
            pinning(&r["pinned"]),
            fmt(&r["rss_mb"], 0),
            fmt(&r["pss_mb"], 0),
        );
    }
    let mut ratios = String::from("\n| N | all ready: Python / halite | `test.ping`: Python / halite | PSS: Python / halite |\n|---|---|---|---|\n");
    for h in results.iter().filter(|r| r["master"] == "halite") {
        let Some(p) = results.iter().find(|r| r["master"] != "halite" && r["minions"] == h["minions"]) else {
            continue;
        };
        let ratio = |a: &Value, b: &Value| match (a.as_f64(), b.as_f64()) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.1}×", a / b),
            _ => "—".to_owned(),
        };
        ratios += &format!(
            "| {} | {} | {} | {} |\n",
            h["minions"],
            ratio(&p["all_ready_s"], &h["all_ready_s"]),
            ratio(&p["ping"]["publish_to_last_return_s"], &h["ping"]["publish_to_last_return_s"]),
            ratio(&p["pss_mb"], &h["pss_mb"]),
        );
    }
    let mut storms = String::from("\n| N | restart: all ready again (s) / master CPU per minion (ms) | key delete, then one ping: all re-authenticated (s) | sign-ins re-sent after `auth_timeout` | swarm errors during rotation | kill -9 during a ping's returns: acknowledged at the kill / of those lost / as many ready again (s) / all ready again (s) / stored after resends | publisher kill -9: all ready again (s) / a ping then answered by |\n|---|---|---|---|---|---|---|\n");
    for h in results.iter().filter(|r| !r["restart_storm"].is_null()) {
        let killed = &h["killed_during_returns"];
        let kill = if killed.is_null() {
            "—".to_owned()
        } else {
            format!(
                "{} / {} / {} / {} / {}",
                killed["acknowledged_at_kill"],
                killed["acknowledged_lost"],
                fmt(&killed["idle_ready_again_s"], 2),
                fmt(&killed["all_ready_again_s"], 2),
                killed["stored_after_resends"]
            )
        };
        let restart = format!(
            "{} / {}",
            fmt(&h["restart_storm"]["all_ready_again_s"], 2),
            fmt(&h["restart_storm"]["master_cpu_ms_per_minion"], 2)
        );
        storms += &format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            h["minions"],
            restart,
            fmt(&h["key_delete_rotation"]["all_reauthenticated_s"], 2),
            fmt(&h["key_delete_rotation"]["auth_resends"], 0),
            fmt(&h["key_delete_rotation"]["swarm_errors"], 0),
            kill,
            if h["publisher_killed"].is_null() {
                "—".to_owned()
            } else {
                let killed = &h["publisher_killed"];
                format!("{} / {}", fmt(&killed["all_ready_again_s"], 2), killed["ping_after_answered"])
            },
        );
    }
    out + &ratios + &storms
}

/// One plotted line: its legend, colour and (minions, seconds) points.
type Series = (String, &'static str, Vec<(f64, f64)>);

/// A log-log chart of all-ready time and ping latency against N, one line per master.
fn plot(results: &[Value]) -> String {
    let (w, h, left, right, top, bottom) = (720.0, 420.0, 70.0, 180.0, 30.0, 50.0);
    let series: Vec<Series> = ["halite", "salt 3007.8"]
        .iter()
        .flat_map(|m| {
            let pts = |field: &dyn Fn(&Value) -> Option<f64>| {
                results
                    .iter()
                    .filter(|r| r["master"] == *m)
                    .filter_map(|r| Some((r["minions"].as_f64()?, field(r)?)))
                    .collect::<Vec<_>>()
            };
            let colour = if *m == "halite" { "#c0392b" } else { "#2c6fbb" };
            vec![
                (format!("{m}: all ready"), colour, pts(&|r: &Value| r["all_ready_s"].as_f64())),
                (format!("{m}: test.ping"), colour, pts(&|r: &Value| r["ping"]["publish_to_last_return_s"].as_f64())),
            ]
        })
        .collect();
    let all: Vec<(f64, f64)> = series.iter().flat_map(|s| s.2.clone()).collect();
    let (xmin, xmax) =
        (all.iter().map(|p| p.0).fold(f64::INFINITY, f64::min), all.iter().map(|p| p.0).fold(1.0, f64::max));
    let (ymin, ymax) =
        (all.iter().map(|p| p.1).fold(f64::INFINITY, f64::min).min(0.1), all.iter().map(|p| p.1).fold(1.0, f64::max));
    let (lx0, lx1) = (xmin.max(1.0).log10().floor(), xmax.log10().ceil().max(xmin.max(1.0).log10().floor() + 1.0));
    let (ly0, ly1) = (ymin.max(1e-3).log10().floor(), ymax.log10().ceil());
    let x = |v: f64| left + (v.log10() - lx0) / (lx1 - lx0) * (w - left - right);
    let y = |v: f64| h - bottom - (v.max(1e-3).log10() - ly0) / (ly1 - ly0).max(1.0) * (h - top - bottom);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    // One grid line and its label per decade on each axis.
    let grid = |(x1, y1, x2, y2): (f64, f64, f64, f64), (tx, ty): (f64, f64), anchor: &str, label: f64| {
        format!(
            "<line x1=\"{x1}\" y1=\"{y1}\" x2=\"{x2}\" y2=\"{y2}\" stroke=\"#ddd\"/><text x=\"{tx}\" y=\"{ty}\" text-anchor=\"{anchor}\">{label}</text>\n"
        )
    };
    for e in lx0 as i32..=lx1 as i32 {
        let v = 10f64.powi(e);
        svg += &grid((x(v), top, x(v), h - bottom), (x(v), h - bottom + 18.0), "middle", v);
    }
    for e in ly0 as i32..=ly1 as i32 {
        let v = 10f64.powi(e);
        svg += &grid((left, y(v), w - right, y(v)), (left - 6.0, y(v) + 4.0), "end", v);
    }
    svg += &format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">minions (log)</text><text x=\"16\" y=\"{}\" transform=\"rotate(-90 16 {})\" text-anchor=\"middle\">seconds (log)</text>\n",
        (left + w - right) / 2.0,
        h - 10.0,
        h / 2.0,
        h / 2.0
    );
    for (i, (name, colour, pts)) in series.iter().enumerate() {
        let dash = if name.ends_with("test.ping") { " stroke-dasharray=\"6 4\"" } else { "" };
        let path: Vec<String> = pts.iter().map(|(a, b)| format!("{:.1},{:.1}", x(*a), y(*b))).collect();
        svg += &format!(
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"{dash} points=\"{}\"/>\n",
            path.join(" ")
        );
        for (a, b) in pts {
            svg += &format!("<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\"/>\n", x(*a), y(*b));
        }
        let ly = top + 18.0 * i as f64;
        svg += &format!(
            "<line x1=\"{0}\" y1=\"{ly}\" x2=\"{1}\" y2=\"{ly}\" stroke=\"{colour}\" stroke-width=\"2\"{dash}/><text x=\"{2}\" y=\"{3}\">{name}</text>\n",
            w - right + 10.0,
            w - right + 34.0,
            w - right + 40.0,
            ly + 4.0
        );
    }
    svg + "</svg>\n"
}
