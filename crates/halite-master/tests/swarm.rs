//! The swarm as a correctness test: 200 simulated minions (request versions 2 and 3 mixed)
//! against the halite-master binary. Every one authenticates, gets its pillar and subscribes;
//! every return of `salt '*' test.ping` and of a grain-targeted `grains.get` arrives; after a
//! key is deleted (which rotates the AES key) the rest re-authenticate and answer again.
//! Then the `halite-swarm` binary under a descriptor limit too small for its minions: it
//! splits itself into processes and still brings every minion up.
//! Timings are the benchmark's business (docs/benchmarks.md), not asserted here.

mod common;

use std::time::Duration;

use common::{describe, json_returns, pinged, salt, Master};
use halite_swarm::{keys, Protocol, Swarm, ROLES};

const MINIONS: usize = 200;

#[test]
fn two_hundred_simulated_minions_authenticate_and_return_everything() {
    // Half the swarm speaks v2 (shared AES key, `tok` on every load naming an id).
    let master = Master::start(&["auto_accept: True", "minimum_auth_version: 2"]);
    let keys = keys::load_or_generate(&common::swarm_keys_dir(), 0..MINIONS, 2).expect("swarm keys");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let config = common::swarm_config(&master, "sw", Protocol::Mixed, Duration::from_secs(60));
    let swarm = runtime.block_on(async { Swarm::start(config, keys) });
    let ready = runtime.block_on(swarm.wait_ready(Duration::from_secs(240)));
    assert!(ready, "only {} of {MINIONS} ready: {}\n{}", swarm.ready(), swarm.report().0, master.log());

    // Publishes sent right after the last SUB connected can miss a subscriber still
    // joining (ZeroMQ's slow joiner), as with real minions; the first ping may be short.
    let mut ping = salt(&master, &["*", "test.ping", "--out", "json", "-t", "30"]);
    for _ in 0..3 {
        if pinged(&ping) == MINIONS {
            break;
        }
        ping = salt(&master, &["*", "test.ping", "--out", "json", "-t", "30"]);
    }
    let returns = json_returns(&ping);
    assert_eq!(pinged(&ping), MINIONS, "every minion returns test.ping: {returns:?}");

    let dbs = (0..MINIONS).filter(|i| ROLES[i % ROLES.len()].contains(&"db")).count();
    let out = salt(&master, &["-G", "roles:db", "grains.get", "roles", "--out", "json", "-t", "30"]);
    let got = json_returns(&out);
    assert_eq!(got.len(), dbs, "{}", describe(&out));
    assert!(got.values().all(|roles| roles.as_array().is_some_and(|r| r.iter().any(|x| x == "db"))));

    // Deleting a key rotates the AES key: publishes stop opening, the swarm re-authenticates.
    let deleted = master.salt_key(&["-d", "sw0", "-y"]);
    assert!(deleted.status.success(), "{}", String::from_utf8_lossy(&deleted.stderr));
    // The master takes salt-key's request within a second; a publish before that still goes
    // out under the old key and would prove nothing about re-authentication.
    master.wait_log_contains("AES key rotated", Duration::from_secs(10));
    // sw0 itself signs in again and, under auto_accept, is accepted anew, as with Salt.
    let others_all_answered = |r: &std::collections::BTreeMap<String, serde_json::Value>| {
        (1..MINIONS).all(|i| r.contains_key(&format!("sw{i}")))
    };
    let mut again = json_returns(&salt(&master, &["*", "test.ping", "--out", "json", "-t", "30"]));
    for _ in 0..10 {
        if others_all_answered(&again) {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
        again = json_returns(&salt(&master, &["*", "test.ping", "--out", "json", "-t", "30"]));
    }
    assert!(others_all_answered(&again), "every remaining minion answers after the rotation: {} did", again.len());
    let report = swarm.report().0;
    assert!(report["reauths"].as_u64().unwrap_or(0) > 0, "the rotation made the swarm re-authenticate: {report}");
    runtime.block_on(swarm.stop());
}

/// The swarm binary under a limit of 1,024 descriptors (soft) and 2,048 (hard), as a login
/// shell often has: it raises the soft limit to the hard one, and since 2,048 cannot hold
/// 1,000 minions at three descriptors each either, runs them in two processes of itself
/// (four had it not raised the limit) and reports for all of them as one swarm.
#[test]
fn a_thousand_minions_under_a_1024_descriptor_limit_all_become_ready() {
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::process::CommandExt;
    const THOUSAND: usize = 1000;
    // The master (a child of this test) needs a descriptor per minion on each port, beyond
    // what a 1,024 limit holds: it inherits this process's limit, raised to the hard one.
    let mut own = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut own);
        own.rlim_cur = own.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &own);
    }
    if own.rlim_max < 2 * THOUSAND as u64 + 512 {
        eprintln!("SKIPPED: the hard descriptor limit ({}) cannot hold the master's 2,000 connections", own.rlim_max);
        return;
    }
    let master = Master::start(&["auto_accept: True", "minimum_auth_version: 2"]);
    // Generated (once per machine) before the clock of the ready timeout starts.
    keys::load_or_generate(&common::swarm_keys_dir(), 0..THOUSAND, 2).expect("swarm keys");
    let mut command = std::process::Command::new(common::workspace_bin("halite-swarm"));
    command
        .args(["--control", "--minions", &THOUSAND.to_string(), "--protocol", "mixed", "--prefix", "lim"])
        .args(["--ret-port", &master.ret_port.to_string(), "--publish-port", &master.publish_port.to_string()])
        .args(["--ready-timeout", "300", "--keys-dir"])
        .arg(common::swarm_keys_dir())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe, and nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit { rlim_cur: 1024, rlim_max: 2048 };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    // Killed if an assertion fails first; its own processes die with it.
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut swarm = KillOnDrop(command.spawn().expect("start halite-swarm"));
    let swarm = &mut swarm.0;
    let mut stdin = swarm.stdin.take().expect("swarm stdin");
    let mut lines = BufReader::new(swarm.stdout.take().expect("swarm stdout")).lines().map_while(Result::ok);
    let mut next_event = |kind: &str| -> serde_json::Value {
        for line in lines.by_ref() {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
            if v["event"] == kind || (kind == "ready" && v["event"] == "not_ready") {
                return v;
            }
        }
        panic!("the swarm exited before {kind}:\n{}", master.log());
    };
    next_event("loaded");
    writeln!(stdin, "go").unwrap();
    let ready = next_event("ready");
    assert_eq!(ready["event"], "ready", "{ready}\n{}", master.log());
    assert_eq!(ready["ready"], THOUSAND, "{ready}");
    assert_eq!(ready["processes"], 2, "the soft limit raised to 2,048, then two processes: {ready}");

    let mut ping = salt(&master, &["*", "test.ping", "--out", "json", "-t", "60"]);
    for _ in 0..3 {
        if pinged(&ping) == THOUSAND {
            break;
        }
        ping = salt(&master, &["*", "test.ping", "--out", "json", "-t", "60"]);
    }
    assert_eq!(pinged(&ping), THOUSAND, "every minion of both processes returns test.ping");
    writeln!(stdin, "report").unwrap();
    let report = next_event("report");
    let returned: u64 =
        report["jobs"].as_array().unwrap().iter().map(|j| j["returned"].as_u64().unwrap()).max().unwrap();
    assert_eq!(returned, THOUSAND as u64, "the merged report counts both processes' returns: {report}");
    writeln!(stdin, "stop").unwrap();
    let last = next_event("final");
    assert_eq!(last["minions"], THOUSAND, "{last}");
    drop(stdin);
    assert!(swarm.wait().expect("the swarm exits").success(), "the swarm and both its processes exit cleanly");
}
