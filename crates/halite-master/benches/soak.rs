//! The soak (issue 20): halite-master under a steady swarm for a long while, to show what a
//! run of minutes cannot: that memory and descriptors stay flat, and that nothing a minion
//! saw acknowledged goes missing while keys rotate and minions restart.
//!
//! The swarm (`halite-swarm`, v2 and v3 mixed, `--minions`, default 5,000) signs in; then for
//! `--minutes` (default 30): `salt '*' test.ping` every `--ping-every` seconds (10), `salt '*'
//! state.apply` every `--state-every` seconds (60; each minion returns a highstate of 40
//! state results, about 12 KB), the AES key rotated by the master every `--rotate-every`
//! seconds (300, its `publish_session`) and one minion in `--restart-one-in` (50) restarted
//! every minute. Every `--sample-every` seconds (10) it samples the master's processes (the
//! master and its publisher): CPU, RSS, PSS, open descriptors, and the store file's size;
//! and the swarm's errors, re-authentications and resends.
//!
//! At the end, once the minions' resends are done, every job's returns in the job cache
//! (`salt-run jobs.lookup_jid`) are compared with the returns the swarm saw acknowledged:
//! one acknowledged and missing is a lost return. A minion restarting when a job is
//! published misses it (received < targeted), and one restarted between receiving a job
//! and its return being acknowledged drops it, as a real one would: both are counted apart.
//! A job received and neither acknowledged nor dropped by a restart is unaccounted: a
//! request that failed, which the master must not cause.
//!
//! Run (after `cargo build --release --bins`):
//! `cargo bench -p halite-master --bench soak -- [--minions 5000] [--minutes 30] [--write]`
//! `--write` puts the table into docs/benchmarks.md (between the soak markers), the plot into
//! docs/soak.svg and the samples into docs/soak-results.json. Nothing here asserts: it
//! measures and reports.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::swarm::{unix_now, Swarm};
use common::{splice, HaliteDaemon};
use halite_testkit::procstat::{self, spread_row, with_children, Soak};
use serde_json::{json, Value};

struct Args {
    minions: usize,
    minutes: u64,
    ping_every: u64,
    state_every: u64,
    rotate_every: u64,
    restart_one_in: usize,
    sample_every: u64,
    write: bool,
}

fn args() -> Args {
    let mut a = Args {
        minions: 5_000,
        minutes: 30,
        ping_every: 10,
        state_every: 60,
        rotate_every: 300,
        restart_one_in: 50,
        sample_every: 10,
        write: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut number = || -> u64 {
            let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
            value.parse().unwrap_or_else(|_| panic!("{flag}: not a number: {value}"))
        };
        match flag.as_str() {
            "--minions" => a.minions = number() as usize,
            "--minutes" => a.minutes = number(),
            "--ping-every" => a.ping_every = number(),
            "--state-every" => a.state_every = number(),
            "--rotate-every" => a.rotate_every = number(),
            "--restart-one-in" => a.restart_one_in = number() as usize,
            "--sample-every" => a.sample_every = number(),
            "--write" => a.write = true,
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    for (name, value) in [
        ("--ping-every", a.ping_every),
        ("--state-every", a.state_every),
        ("--rotate-every", a.rotate_every),
        ("--restart-one-in", a.restart_one_in as u64),
        ("--sample-every", a.sample_every),
        ("--minions", a.minions as u64),
    ] {
        assert!(value > 0, "{name} must be at least 1");
    }
    a
}

/// Publishes `args` without waiting for returns; the job's id, or `None` (printed) when the
/// CLI did not give one.
fn publish(daemon: &HaliteDaemon, args: &[&str]) -> Option<String> {
    let out = daemon.cli("salt", &[args, &["--async"]].concat());
    let said = String::from_utf8_lossy(&out.stdout);
    let jid = said.trim().strip_prefix("Executed command with job ID: ").map(str::to_owned);
    if jid.is_none() {
        eprintln!("   publish {args:?} failed: {said}{}", String::from_utf8_lossy(&out.stderr));
    }
    jid
}

/// The swarm's counters and its report.
fn swarm_counters(swarm: &mut Swarm) -> (Value, Value) {
    let report = swarm.report();
    let sum = |field: &str| report[field].as_u64().unwrap_or(0);
    let counters = json!({
        "errors": sum("errors"), "reauths": sum("reauths"), "restarts": sum("restarts"),
        "auth_resends": sum("auth_resends"), "return_resends": sum("return_resends"),
    });
    (counters, report)
}

fn main() {
    let a = args();
    let publish_session = format!("publish_session: {}", a.rotate_every);
    let daemon = HaliteDaemon::start(&["auto_accept: True", "minimum_auth_version: 2", &publish_session])
        .expect("start halite-master");
    let store_file = daemon.root().join("cache/halite.redb");
    let e = daemon.endpoints();
    let ready_timeout = Duration::from_secs(60 + a.minions as u64 / 10);
    let mut swarm = Swarm::spawn(a.minions, (e.ret_port, e.publish_port), ready_timeout, None);
    swarm.next(&["loaded"], Duration::from_secs(3600));
    swarm.send("go");
    let ready = swarm.next(&["ready", "not_ready"], ready_timeout + Duration::from_secs(90));
    assert!(ready["event"] == "ready", "the swarm did not come up: {ready}");
    eprintln!("== soak: {} minions ready; {} minutes", a.minions, a.minutes);

    let started = Instant::now();
    let started_unix = unix_now();
    let mut soak = Soak::new(procstat::usage(&with_children(daemon.pid())));
    let swarm_cpu0 = procstat::usage(&swarm.pids()).cpu_s;
    let mut jobs: Vec<(String, &'static str)> = Vec::new();
    let mut publishes_failed = 0;
    let mut samples: Vec<Value> = Vec::new();
    let mut next = (0u64, 0u64, 60u64, 0u64); // ping, state, restart, sample: due at these seconds
    let end = a.minutes * 60;
    loop {
        let now = started.elapsed().as_secs();
        if now >= end {
            break;
        }
        if now >= next.0 {
            match publish(&daemon, &["*", "test.ping"]) {
                Some(jid) => jobs.push((jid, "test.ping")),
                None => publishes_failed += 1,
            }
            next.0 += a.ping_every;
        }
        if now >= next.1 {
            match publish(&daemon, &["*", "state.apply"]) {
                Some(jid) => jobs.push((jid, "state.apply")),
                None => publishes_failed += 1,
            }
            next.1 += a.state_every;
        }
        if now >= next.2 {
            swarm.send(&format!("restart {}", a.minions.div_ceil(a.restart_one_in)));
            next.2 += 60;
        }
        if now >= next.3 {
            let (t, u) = soak.record(procstat::usage(&with_children(daemon.pid())));
            let (counters, _) = swarm_counters(&mut swarm);
            let sample = json!({
                "t_s": t, "master_cpu_s": soak.cpu_s(), "rss_mib": u.rss_mib, "pss_mib": u.pss_mib,
                "fds": u.fds, "processes": u.processes,
                "store_mib": std::fs::metadata(&store_file).map(|m| m.len() as f64 / 1048576.0).unwrap_or(0.0),
                "swarm": counters,
            });
            eprintln!("   {sample}");
            samples.push(sample);
            next.3 += a.sample_every;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let master_cpu = soak.cpu_s();
    let swarm_cpu = procstat::usage(&swarm.pids()).cpu_s;

    // A return whose connection broke is sent again after the request timeout (60 s), at
    // most three times: wait them out before reading the cache (a return still unanswered
    // after this shows as unaccounted, not as lost).
    eprintln!("== soak over; waiting for the minions' last resends");
    std::thread::sleep(Duration::from_secs(240));
    let (counters, report) = swarm_counters(&mut swarm);
    let mut per_fun: BTreeMap<&str, Value> = BTreeMap::new();
    let mut lost_samples = Vec::new();
    let mut unknown = 0;
    for (jid, fun) in &jobs {
        let Some(acknowledged) = swarm.acknowledged(jid) else {
            eprintln!("   {jid}: the swarm did not say which returns it saw acknowledged");
            unknown += 1;
            continue;
        };
        let out = daemon.cli("salt-run", &["jobs.lookup_jid", jid, "--out", "json"]);
        let cached: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let cached = cached.as_object().cloned().unwrap_or_default();
        let lost: Vec<&String> = acknowledged.iter().filter(|id| !cached.contains_key(*id)).collect();
        lost_samples.extend(lost.iter().take(3).map(|id| format!("{jid} {id}")));
        let jobs = report["jobs"].as_array().into_iter().flatten();
        let seen = jobs.into_iter().find(|j| j["jid"] == jid.as_str()).cloned().unwrap_or_default();
        let sum = |field: &str| seen[field].as_u64().unwrap_or(0);
        let (received, dropped) = (sum("received"), sum("dropped_by_restart"));
        let entry = per_fun.entry(fun).or_insert_with(|| {
            json!({"jobs": 0, "targeted": 0, "received": 0, "dropped_by_restart": 0, "acknowledged": 0,
                   "unaccounted": 0, "cached": 0, "lost": 0})
        });
        let add = |v: &mut Value, k: &str, n: u64| v[k] = json!(v[k].as_u64().unwrap_or(0) + n);
        add(entry, "jobs", 1);
        add(entry, "targeted", a.minions as u64);
        add(entry, "received", received);
        add(entry, "dropped_by_restart", dropped);
        add(entry, "acknowledged", acknowledged.len() as u64);
        // Received, neither acknowledged nor dropped by a restart: a request that failed or
        // was still unanswered at the end.
        add(entry, "unaccounted", received.saturating_sub(dropped + acknowledged.len() as u64));
        add(entry, "cached", cached.len() as u64);
        add(entry, "lost", lost.len() as u64);
    }
    let log = std::fs::read_to_string(daemon.root().join("master.log")).unwrap_or_default();
    let log_lines: Vec<&str> = log.lines().collect();
    let last = swarm.stop();
    let result = json!({
        "minions": a.minions, "minutes": a.minutes, "ping_every_s": a.ping_every, "state_every_s": a.state_every,
        "rotate_every_s": a.rotate_every, "restart_one_in": a.restart_one_in, "started_unix": started_unix,
        "master_cpu_s": master_cpu, "swarm_cpu_s": swarm_cpu - swarm_cpu0, "sample_every_s": a.sample_every,
        "jobs": per_fun, "swarm": counters, "lost_samples": lost_samples,
        "publishes_failed": publishes_failed, "jobs_not_reported": unknown,
        "error_samples": last["error_samples"].as_array().into_iter().flatten().take(5).collect::<Vec<_>>(),
        "master_log_lines": log_lines.len(),
        "master_log_samples": log_lines.iter().take(10).collect::<Vec<_>>(),
        "samples": samples,
    });
    eprintln!("   swarm errors: {}", result["error_samples"]);
    eprintln!("   master log: {}", result["master_log_samples"]);
    let table = table(&result, &soak);
    println!("{table}");
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs");
    if a.write {
        std::fs::write(docs.join("soak-results.json"), serde_json::to_string_pretty(&result).unwrap()).unwrap();
        std::fs::write(docs.join("soak.svg"), plot(&result)).unwrap();
        let body = format!("{table}\n![master RSS and descriptors over the soak](soak.svg)");
        splice(&docs.join("benchmarks.md"), "soak", &body);
    }
}

fn table(r: &Value, soak: &Soak) -> String {
    let samples = r["samples"].as_array().map(Vec::as_slice).unwrap_or_default();
    let stores: Vec<f64> = samples[samples.len() / 5..].iter().filter_map(|s| s["store_mib"].as_f64()).collect();
    let mut out = format!(
        "{} minions for {} min: `test.ping` every {} s, `state.apply` (40 states) every {} s, AES key \
         rotated every {} s (`publish_session`), one minion in {} restarted every minute. Master \
         (both processes) after the first fifth of the run, sampled every {} s:\n\n",
        r["minions"],
        r["minutes"],
        r["ping_every_s"],
        r["state_every_s"],
        r["rotate_every_s"],
        r["restart_one_in"],
        r["sample_every_s"]
    );
    out += &soak.flatness_table();
    out += &spread_row("store file (MiB; the job cache, kept 24 h, grows)", &stores, 0);
    out += "\n| job | jobs | returns targeted | received | dropped by a restart | acknowledged | unaccounted | in the job cache | acknowledged and lost |\n|---|---|---|---|---|---|---|---|---|\n";
    for (fun, j) in r["jobs"].as_object().into_iter().flatten() {
        out += &format!(
            "| `{fun}` | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            j["jobs"],
            j["targeted"],
            j["received"],
            j["dropped_by_restart"],
            j["acknowledged"],
            j["unaccounted"],
            j["cached"],
            j["lost"]
        );
    }
    let s = &r["swarm"];
    out += &format!(
        "\nSwarm: {} request errors, {} re-authentications (rotations, restarts and replies that did not open), \
         {} restarts, {} sign-ins sent again after a timeout, {} returns sent again after a timeout or a broken \
         connection. Publishes the CLI refused: {}; jobs the swarm could not report on: {}. Master CPU {:.0} s \
         ({:.2} ms per stored return, sign-ins included), swarm CPU {:.0} s; {} lines in the master's log \
         (level warning).\n",
        s["errors"],
        s["reauths"],
        s["restarts"],
        s["auth_resends"],
        s["return_resends"],
        r["publishes_failed"],
        r["jobs_not_reported"],
        r["master_cpu_s"].as_f64().unwrap_or(0.0),
        {
            let returns: u64 =
                r["jobs"].as_object().into_iter().flatten().filter_map(|(_, j)| j["cached"].as_u64()).sum();
            r["master_cpu_s"].as_f64().unwrap_or(0.0) * 1000.0 / returns.max(1) as f64
        },
        r["swarm_cpu_s"].as_f64().unwrap_or(0.0),
        r["master_log_lines"],
    );
    out
}

/// RSS (MiB) and open descriptors against minutes, one polyline each on its own scale.
fn plot(r: &Value) -> String {
    let (w, h, left, right, top, bottom) = (720.0, 360.0, 60.0, 60.0, 30.0, 45.0);
    let samples = r["samples"].as_array().cloned().unwrap_or_default();
    let points = |field: &str| -> Vec<(f64, f64)> {
        samples.iter().filter_map(|s| Some((s["t_s"].as_f64()? / 60.0, s[field].as_f64()?))).collect()
    };
    let (rss, fds) = (points("rss_mib"), points("fds"));
    let tmax = rss.iter().map(|p| p.0).fold(1.0, f64::max);
    let top_of = |pts: &[(f64, f64)]| pts.iter().map(|p| p.1).fold(1.0, f64::max) * 1.2;
    let (rss_max, fds_max) = (top_of(&rss), top_of(&fds));
    let x = |t: f64| left + t / tmax * (w - left - right);
    let y = |v: f64, max: f64| h - bottom - v / max * (h - top - bottom);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    for i in 0..=4 {
        let f = f64::from(i) / 4.0;
        let yy = y(f * rss_max, rss_max);
        svg += &format!(
            "<line x1=\"{left}\" y1=\"{yy:.1}\" x2=\"{}\" y2=\"{yy:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#c0392b\">{:.0}</text>\
             <text x=\"{}\" y=\"{:.1}\" fill=\"#2c6fbb\">{:.0}</text>\n",
            w - right,
            left - 6.0,
            yy + 4.0,
            f * rss_max,
            w - right + 6.0,
            yy + 4.0,
            f * fds_max
        );
    }
    for m in (0..=tmax as u64).step_by(5) {
        svg +=
            &format!("<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{m}</text>\n", x(m as f64), h - bottom + 18.0);
    }
    svg += &format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">minutes</text>\
         <text x=\"{left}\" y=\"18\" fill=\"#c0392b\">master RSS (MiB)</text>\
         <text x=\"{}\" y=\"18\" text-anchor=\"end\" fill=\"#2c6fbb\">open descriptors</text>\n",
        (left + w - right) / 2.0,
        h - 10.0,
        w - right
    );
    for (pts, max, colour) in [(&rss, rss_max, "#c0392b"), (&fds, fds_max, "#2c6fbb")] {
        let line: Vec<String> = pts.iter().map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v, max))).collect();
        svg += &format!(
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>\n",
            line.join(" ")
        );
    }
    svg + "</svg>\n"
}
