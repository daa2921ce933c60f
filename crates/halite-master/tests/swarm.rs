//! The swarm as a correctness test: 200 simulated minions (request versions 2 and 3 mixed)
//! against the halite-master binary. Every one authenticates, gets its pillar and subscribes;
//! every return of `salt '*' test.ping` and of a grain-targeted `grains.get` arrives; after a
//! key is deleted (which rotates the AES key) the rest re-authenticate and answer again.
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
