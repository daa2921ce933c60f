//! The mine end to end: real salt-minion 3006, 3007 and 3008 (all speaking request version 3) store
//! data with `mine_functions` and `mine.send`, read each other's with `mine.get` through every
//! common target form, are held to an `allow_tgt` ACL, drop data with `mine.delete` and
//! `mine.flush`; a pillar template on the master reads the mine; `salt-run mine.get` prints
//! what Salt's own nested outputter prints for the same data; and the same `mine.get`
//! commands print the same with Salt 3007.8's master and CLIs as with halite's.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{describe, json, json_returns, pinged, salt, salt_run, start_minions, text, Master, Setup};
use halite_testkit::{venv, wait_until, Minion, MinionSpec, PythonMaster, SaltVersion};
use serde_json::json;

const MINIONS: &[(&str, SaltVersion, &[&str])] = &[
    ("web1", SaltVersion::V3006, &["web"]),
    ("db1", SaltVersion::V3007, &["db"]),
    ("app1", SaltVersion::V3008, &["app"]),
];

/// Every minion mines its roles (under an alias) and `test.ping`.
const MINE_FUNCTIONS: &str = "mine_functions: {roles: {mine_function: grains.get, key: roles}, test.ping: []}";

const WAIT: Duration = Duration::from_secs(60);

fn write(path: &Path, contents: &str) {
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
    std::fs::write(path, contents).expect("write a test file");
}

/// `salt <tgt> <args...> --out json` on one minion: its return.
fn on(master: &Master, minion: &str, args: &[&str]) -> serde_json::Value {
    let mut full = vec![minion];
    full.extend_from_slice(args);
    full.extend_from_slice(&["--out", "json", "-t", "30"]);
    let out = salt(master, &full);
    let mut returns = json_returns(&out);
    returns.remove(minion).unwrap_or_else(|| panic!("no return from {minion}: {}", describe(&out)))
}

fn run_mine_get(master: &Master, args: &[&str]) -> serde_json::Value {
    let mut full = vec!["mine.get"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["--out", "json"]);
    json(&salt_run(master, &full))
}

/// Polls `salt-run mine.get` until it answers `want` (minions send mine data asynchronously).
fn wait_mine(master: &Master, args: &[&str], want: &serde_json::Value) {
    let mut last = serde_json::Value::Null;
    let reached = wait_until(WAIT, || {
        last = run_mine_get(master, args);
        last == *want
    });
    assert!(reached, "salt-run mine.get {args:?}: want {want}, last got {last}\n{}", master.log());
}

/// What Salt 3007.8's own `nested` outputter prints for `data`, without colour.
fn salt_nested(data: &serde_json::Value) -> String {
    let script = "import json, sys, salt.config, salt.output\n\
                  opts = salt.config.minion_config(None)\nopts['color'] = False\n\
                  salt.output.display_output(json.loads(sys.argv[1]), 'nested', opts)\n";
    let out = Command::new(venv(SaltVersion::V3007).join("bin/python"))
        .args(["-c", script, &data.to_string()])
        // Salt's package shadows stdlib names when run from inside its tree.
        .current_dir("/")
        .output()
        .expect("run Salt's outputter");
    assert!(out.status.success(), "Salt's outputter failed: {}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn minions_share_data_through_the_mine() {
    let tree = tempfile::Builder::new().prefix("hmine").tempdir_in("/tmp").expect("temp dir");
    let pillar = tree.path().join("pillar");
    write(&pillar.join("top.sls"), "base:\n  '*':\n    - peers\n");
    write(
        &pillar.join("peers.sls"),
        "peers: {{ salt['mine.get']('*', 'roles')|json }}\n\
         others: {{ salt['mine.get']('*', 'roles', exclude_minion=True)|json }}\n\
         dbs: {{ salt['mine.get']('roles:db', 'roles,test.ping', tgt_type='grain')|json }}\n",
    );
    let master =
        Master::start(&["auto_accept: True", "pillar_roots:", "  base:", &format!("    - {}", pillar.display())]);
    let _minions = start_minions(&master, MINIONS, |spec| spec.with_config(MINE_FUNCTIONS));
    let roles = json!({"app1": ["app"], "db1": ["db"], "web1": ["web"]});

    // mine_functions run at minion start (mine.update); the master keeps each minion's data.
    wait_mine(&master, &["*", "roles"], &roles);
    // Each first entry is a change the site's reactor rebuilds /etc/hosts on.
    for id in ["web1", "db1", "app1"] {
        master.wait_log_contains(&format!("halite/mine/{id}/changed"), Duration::from_secs(10));
    }

    // Every version reads the mine, with each target form Salt's mine.get takes.
    assert_eq!(on(&master, "web1", &["mine.get", "*", "roles"]), roles, "3006, glob");
    assert_eq!(
        on(&master, "db1", &["mine.get", "web1,app1", "roles", "list"]),
        json!({"app1": ["app"], "web1": ["web"]})
    );
    assert_eq!(on(&master, "app1", &["mine.get", "roles:db", "roles", "grain"]), json!({"db1": ["db"]}), "3008, grain");
    assert_eq!(
        on(&master, "web1", &["mine.get", "G@roles:db or app1", "roles", "compound"]),
        json!({"app1": ["app"], "db1": ["db"]}),
        "3006, compound"
    );
    assert_eq!(
        on(&master, "db1", &["mine.get", "web1", "roles,test.ping"]),
        json!({"roles": {"web1": ["web"]}, "test.ping": {"web1": true}}),
        "several functions: by function, then minion"
    );
    assert_eq!(on(&master, "db1", &["mine.get", "nobody*", "roles"]), json!({}));
    assert_eq!(
        on(&master, "app1", &["mine.get", "*", "roles", "exclude_minion=True"]),
        json!({"db1": ["db"], "web1": ["web"]})
    );

    // mine.send with a minion-side ACL: only web1 may read db1's secret.
    let sent = on(&master, "db1", &["mine.send", "secret", "s3cr3t", "mine_function=test.echo", "allow_tgt=web1"]);
    assert_eq!(sent, json!(true));
    let read_by_web1 =
        wait_until(WAIT, || on(&master, "web1", &["mine.get", "db1", "secret"]) == json!({"db1": "s3cr3t"}));
    assert!(read_by_web1, "web1 never read db1's secret\n{}", master.log());
    assert_eq!(on(&master, "app1", &["mine.get", "db1", "secret"]), json!({}), "app1 is not in allow_tgt");
    assert_eq!(run_mine_get(&master, &["db1", "secret"]), json!({}), "nor is the master");

    // A pillar template on the master reads the mine as the minion it compiles for.
    let shown = json(&salt_run(&master, &["pillar.show_pillar", "app1", "--out", "json"]));
    assert_eq!(shown["peers"], roles, "{shown}");
    assert_eq!(shown["others"], json!({"db1": ["db"], "web1": ["web"]}), "{shown}");
    assert_eq!(shown["dbs"], json!({"roles": {"db1": ["db"]}, "test.ping": {"db1": true}}), "{shown}");
    // And the minion gets it in its own pillar (3006 included).
    on(&master, "web1", &["saltutil.refresh_pillar", "wait=True"]);
    assert_eq!(on(&master, "web1", &["pillar.get", "others"]), json!({"app1": ["app"], "db1": ["db"]}));

    // salt-run mine.get prints as Salt prints the same data.
    let out = salt_run(&master, &["mine.get", "*", "roles"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(text(&out.stdout), salt_nested(&roles));
    let out = salt_run(&master, &["mine.get", "web1,db1", "roles,test.ping", "tgt_type=list"]);
    let both = json!({"roles": {"db1": ["db"], "web1": ["web"]}, "test.ping": {"db1": true, "web1": true}});
    assert_eq!(text(&out.stdout), salt_nested(&both), "{}", describe(&out));
    let out = salt_run(&master, &["mine.get", "nobody", "roles"]);
    assert_eq!(text(&out.stdout), salt_nested(&json!({})), "{}", describe(&out));

    // mine.delete drops one function, mine.flush all of a minion's.
    on(&master, "db1", &["mine.delete", "secret"]);
    let deleted = wait_until(WAIT, || on(&master, "web1", &["mine.get", "db1", "secret"]) == json!({}));
    assert!(deleted, "db1's secret is still in the mine\n{}", master.log());
    assert_eq!(run_mine_get(&master, &["db1", "roles"]), json!({"db1": ["db"]}), "the other functions stay");
    on(&master, "web1", &["mine.flush"]);
    wait_mine(
        &master,
        &["*", "roles,test.ping"],
        &json!({"roles": {"app1": ["app"], "db1": ["db"]}, "test.ping": {"app1": true, "db1": true}}),
    );

    // mine.update puts it back.
    on(&master, "web1", &["mine.update"]);
    wait_mine(&master, &["*", "roles"], &roles);
}

#[test]
fn mine_data_is_not_kept_without_the_minion_data_cache() {
    let master = Master::start(&["auto_accept: True", "minion_data_cache: False"]);
    let _minions = start_minions(&master, &MINIONS[1..2], |spec| spec.with_config(MINE_FUNCTIONS));
    assert_eq!(on(&master, "db1", &["mine.send", "x", "mine_function=test.echo", "hello"]), json!(true));
    // The minion's _mine is answered (True) but nothing is stored, as Salt does.
    master.wait_log_contains("mine data not kept", WAIT);
    assert_eq!(run_mine_get(&master, &["*", "x"]), json!({}));
}

#[test]
fn enforce_mine_cache_keeps_it_and_the_master_acl_filters_it() {
    let master = Master::start(&[
        "auto_accept: True",
        "minion_data_cache: False",
        "enforce_mine_cache: True",
        "mine_get: {'db.*': ['^rol']}",
    ]);
    let _db = start_minions(&master, &MINIONS[1..2], |spec| spec.with_config(MINE_FUNCTIONS));
    let wanted = json!({"roles": {"db1": ["db"]}});
    let reached = wait_until(WAIT, || on(&master, "db1", &["mine.get", "db1", "roles,test.ping"]) == wanted);
    assert!(reached, "db1 never read its roles alone\n{}", master.log());
    // The runner asks as the master's id, which the ACL does not list.
    assert_eq!(run_mine_get(&master, &["db1", "roles"]), json!({}));
    assert!(!master.log().contains("unknown option 'mine_get'"), "mine_get is an option:\n{}", master.log());
}

/// `salt-run` commands whose output is compared with Salt's.
const RUN_CASES: &[&[&str]] = &[
    &["mine.get", "*", "roles"],
    &["mine.get", "*", "roles,test.ping"],
    &["mine.get", "*", "[roles, test.ping]"],
    &["mine.get", "roles:db", "roles", "grain"],
    &["mine.get", "G@roles:web or app1", "roles", "compound"],
    &["mine.get", "web1,db1", "roles", "tgt_type=list"],
    &["mine.get", "*", "roles", "--out", "json"],
    &["mine.get", "db1", "secret"],
    &["mine.get", "nobody", "roles"],
];

/// `salt` commands (one minion each, so the output is deterministic) compared with Salt's.
const MINION_CASES: &[&[&str]] = &[
    &["web1", "mine.get", "*", "roles"],
    &["web1", "mine.get", "db1", "secret"],
    &["db1", "mine.get", "db1", "secret"],
    &["app1", "mine.get", "roles:web", "roles", "grain"],
    &["db1", "mine.get", "*", "[roles, test.ping]", "--out", "json"],
    &["app1", "mine.get", "*", "roles", "exclude_minion=True"],
    &["web1", "mine.get", "G@roles:db and not app1", "roles,test.ping", "compound"],
];

const SECRET: &[&str] = &["db1", "mine.send", "secret", "s3cr3t", "mine_function=test.echo", "allow_tgt=web1"];

/// Every minion's roles and test.ping, and db1's secret for web1: what the cases read.
fn mine_complete(
    run: impl Fn(&[&str]) -> std::process::Output,
    salt: impl Fn(&[&str]) -> std::process::Output,
) -> bool {
    let all = json!({"roles": {"app1": ["app"], "db1": ["db"], "web1": ["web"]},
                     "test.ping": {"app1": true, "db1": true, "web1": true}});
    let mined = serde_json::from_slice::<serde_json::Value>(
        &run(&["mine.get", "*", "roles,test.ping", "--out", "json"]).stdout,
    );
    let secret = json_returns(&salt(&["web1", "mine.get", "db1", "secret", "--out", "json"]));
    mined.is_ok_and(|m| m == all) && secret.get("web1") == Some(&json!({"db1": "s3cr3t"}))
}

fn outputs(
    run: impl Fn(&[&str]) -> std::process::Output,
    salt: impl Fn(&[&str]) -> std::process::Output,
) -> Vec<String> {
    let shown = |kind: &str, args: &[&str], out: std::process::Output| {
        format!("{kind} {args:?}: exit {:?}\n{}", out.status.code(), text(&out.stdout))
    };
    let runs = RUN_CASES.iter().map(|args| shown("salt-run", args, run(args)));
    let minions = MINION_CASES.iter().map(|args| shown("salt", args, salt(args)));
    runs.chain(minions).collect()
}

/// The master's and every minion's log from the publish of every job the CLI printed a
/// `lookup_jid` hint for: what tells a lost publish, a slow minion and an unanswered request
/// apart.
fn jid_lines(outputs: &[String], master: &Master, minions: &[Minion]) -> String {
    let jids: Vec<&str> = outputs
        .iter()
        .filter_map(|o| o.split("lookup_jid ").nth(1))
        .filter_map(|r| r.split_whitespace().next())
        .collect();
    let excerpt = |name: &str, log: String| {
        let lines: Vec<&str> = log.lines().collect();
        let from = |jid: &&str| lines.iter().position(|l| l.contains(jid)).map(|at| lines[at..].iter().take(80));
        let shown: Vec<&str> = jids.iter().filter_map(from).flatten().copied().collect();
        format!("--- {name}\n{}", shown.join("\n"))
    };
    let minion_logs = minions.iter().map(|m| excerpt(m.id(), m.log()));
    std::iter::once(excerpt("master", master.log())).chain(minion_logs).collect::<Vec<_>>().join("\n")
}

#[test]
fn mine_get_prints_what_salt_3007_prints() {
    let python = PythonMaster::start(&["auto_accept: True"]);
    let endpoints = python.endpoints();
    let specs = MINIONS.iter().map(|(id, v, roles)| {
        MinionSpec::new(id, *v).with_roles(roles).with_config(MINE_FUNCTIONS).with_log_level("debug")
    });
    let mut minions: Vec<Minion> = specs.map(|s| Minion::start(s, &endpoints)).collect();
    for m in &minions {
        m.wait_authenticated(WAIT).unwrap_or_else(|e| panic!("{e}"));
    }
    let py_run = |args: &[&str]| python.cli("salt-run", args);
    let py_salt = |args: &[&str]| python.cli("salt", args);
    let ready = wait_until(Duration::from_secs(90), || {
        if pinged(&py_salt(&["*", "test.ping", "--out", "json"])) < MINIONS.len() {
            return false;
        }
        py_salt(SECRET);
        mine_complete(py_run, py_salt)
    });
    assert!(ready, "Salt's master never had every minion's mine\n{}", python.log());
    let want = outputs(py_run, py_salt);
    let setup = Setup::taking_over(&python);
    let mut python = python;
    python.stop();

    // halite takes over the master's keys and ports; the minions send their mine again.
    // A request a minion had in flight to the stopping master is lost with its connection
    // (a ZeroMQ REQ socket does not send it again), and the minion's main channel waits
    // out that request's 60 s timeout, as after any master restart: until every minion
    // has returned a ping through halite, its returns may still be stuck.
    let master = Master::start_with(setup);
    let run = |args: &[&str]| salt_run(&master, args);
    let halite_salt = |args: &[&str]| salt(&master, args);
    let ready = wait_until(Duration::from_secs(90), || {
        if pinged(&halite_salt(&["*", "test.ping", "--out", "json"])) < MINIONS.len() {
            return false;
        }
        halite_salt(&["*", "mine.update"]);
        halite_salt(SECRET);
        mine_complete(run, halite_salt)
    });
    assert!(ready, "halite never had every minion's mine\n{}", master.log());
    let got = outputs(run, halite_salt);
    let differ: Vec<String> =
        want.iter().zip(&got).filter(|(w, g)| w != g).map(|(w, g)| format!("Salt:\n{w}\nhalite:\n{g}")).collect();
    let logs = if differ.is_empty() { String::new() } else { jid_lines(&got, &master, &minions) };
    Minion::stop_all(&mut minions);
    assert!(differ.is_empty(), "{} cases differ:\n{}\n{logs}", differ.len(), differ.join("\n"));
    // The comparison means something only if Salt answered with data.
    assert!(want.iter().any(|w| w.contains("s3cr3t")) && want.iter().any(|w| w.contains("- web")), "{want:?}");
    assert!(!want.iter().any(|w| w.contains("did not return") || w.contains("not available")), "{want:?}");
}
