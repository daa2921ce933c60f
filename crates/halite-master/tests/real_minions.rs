//! Real salt-minion 3006, 3007 and 3008 processes against the halite-master binary on
//! loopback: acceptance through `salt-key`, auto_accept, autosign_file, rejection, a changed
//! key landing in denied, reconnection after a master restart, AES rotation after a key is
//! deleted, and a pki dir made by the real Python salt-master taken over unchanged.
//!
//! Jobs are published the way the stock `salt` CLI publishes (a clear `publish` with root's
//! key); a minion's `_return` is the proof that it holds the current AES key and session.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Master, Setup};
use halite_testkit::{Endpoints, Minion, MinionSpec, PythonMaster, SaltVersion};

const AUTH_TIMEOUT: Duration = Duration::from_secs(90);

fn endpoints(master: &Master) -> Endpoints {
    Endpoints { host: "127.0.0.1".into(), ret_port: master.ret_port, publish_port: master.publish_port }
}

fn spec(id: &str, version: SaltVersion, roles: &[&str]) -> MinionSpec {
    MinionSpec::new(id, version).with_roles(roles)
}

/// The site's VMs, one per minion version.
fn site_specs() -> Vec<MinionSpec> {
    vec![
        spec("db1-masterdb", SaltVersion::V3006, &["db", "masterdb"]),
        spec("sessions1", SaltVersion::V3007, &["sessions"]),
        spec("app1", SaltVersion::V3008, &["app"]),
    ]
}

fn key_list(master: &Master, which: &str) -> Vec<String> {
    let out = master.salt_key(&["-l", which, "--out", "json"]);
    assert!(out.status.success(), "salt-key -l {which}: {}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("salt-key --out json");
    json.as_object()
        .and_then(|o| o.values().next())
        .and_then(|v| v.as_array())
        .map(|ids| ids.iter().filter_map(|i| i.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    assert!(halite_testkit::wait_until(timeout, &mut ok), "timed out waiting for {what}");
}

/// Publishes `test.ping` until every one of `ids` has returned the same job. A minion that
/// has just (re)connected may miss a publish sent before its SUB socket joined (ZeroMQ's slow
/// joiner), so one lost publish is not a failure; never getting a return within the timeout is.
fn ping_until_returned(master: &Master, ids: &[&str]) -> String {
    let deadline = Instant::now() + AUTH_TIMEOUT;
    loop {
        let (jid, expected) = master.publish("*", "test.ping");
        for id in ids {
            assert!(expected.iter().any(|e| e == id), "{id} expected for job {jid}: {expected:?}");
        }
        let round = Instant::now() + Duration::from_secs(5);
        while Instant::now() < round {
            let got = master.returned(&jid);
            if ids.iter().all(|id| got.iter().any(|g| g == id)) {
                return jid;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(
            Instant::now() < deadline,
            "no complete return from {ids:?}; last job {jid} got {:?}\n{}",
            master.returned(&jid),
            master.log()
        );
    }
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn master_pubs(minions: &[Minion]) -> BTreeMap<String, Vec<u8>> {
    minions.iter().map(|m| (m.id().to_owned(), read(&m.pki_dir().join("minion_master.pub")))).collect()
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

#[test]
fn three_versions_are_accepted_survive_a_restart_and_lose_access_when_deleted() {
    let mut master = Master::start(&[]);
    let minions: Vec<Minion> = site_specs().into_iter().map(|s| Minion::start(s, &endpoints(&master))).collect();
    let ids: Vec<&str> = minions.iter().map(Minion::id).collect();

    // New keys wait in pending, and no minion gets the AES key before acceptance.
    wait_for("three pending keys", AUTH_TIMEOUT, || {
        let pending = key_list(&master, "un");
        ids.iter().all(|id| pending.iter().any(|p| p == id))
    });
    assert!(minions.iter().all(|m| !m.master_pub_written()), "nothing accepted before salt-key -a");

    let accepted_at = Instant::now();
    let out = master.salt_key(&["-a", "db1-masterdb,sessions1,app1", "-y"]);
    assert!(out.status.success(), "salt-key -a: {}", String::from_utf8_lossy(&out.stderr));
    for m in &minions {
        let took = m.wait_authenticated(AUTH_TIMEOUT).unwrap_or_else(|e| panic!("{}: {e}", m.id()));
        println!(
            "auth: {} ({}) authenticated {:?} after salt-key -a (waited {took:?})",
            m.id(),
            m.version().as_str(),
            accepted_at.elapsed()
        );
    }
    assert_eq!(key_list(&master, "acc"), ["app1", "db1-masterdb", "sessions1"]);
    for id in &ids {
        master.wait_log_contains(&format!("salt/minion/{id}/start"), AUTH_TIMEOUT);
    }
    ping_until_returned(&master, &ids);
    if let Some(pid) = master.pid() {
        println!("master RSS with 3 minions connected: {} KiB", rss_kib(pid));
    }

    // Restart: a new AES key; every minion reconnects by itself with the keys it has.
    let trusted = master_pubs(&minions);
    assert!(master.restart(), "the master stops cleanly on SIGTERM");
    ping_until_returned(&master, &ids);
    assert_eq!(master_pubs(&minions), trusted, "no minion re-learned the master key");
    assert!(key_list(&master, "un").is_empty(), "nobody went back to pending");

    // Deleting a key rotates the AES key: app1 can no longer read publishes, and when it
    // tries to authenticate again its key waits in pending like a stranger's.
    let out = master.salt_key(&["-d", "app1", "-y"]);
    assert!(out.status.success(), "salt-key -d: {}", String::from_utf8_lossy(&out.stderr));
    master.wait_log_contains("AES key rotated", Duration::from_secs(10));
    let jid = ping_until_returned(&master, &["db1-masterdb", "sessions1"]);
    wait_for("app1 back in pending", AUTH_TIMEOUT, || key_list(&master, "un") == ["app1"]);
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !master.returned(&jid).iter().any(|id| id == "app1"),
        "a deleted minion returned a job published after its deletion"
    );
}

#[test]
fn auto_accept_autosign_rejection_and_changed_keys() {
    // auto_accept: no salt-key at all.
    let auto = Master::start(&["auto_accept: True"]);
    let notes = Minion::start(spec("notes", SaltVersion::V3008, &["notes"]), &endpoints(&auto));
    let took = notes.wait_authenticated(AUTH_TIMEOUT).expect("auto_accept lets notes in");
    println!("auth: notes (3008.5) auto-accepted {took:?} after its process started");
    assert_eq!(key_list(&auto, "acc"), ["notes"]);

    // autosign_file: matching ids are accepted, others wait; a rejected key never gets the AES key.
    let signing = tempfile::tempdir().expect("temp dir");
    let autosign = signing.path().join("autosign.conf");
    std::fs::write(&autosign, "# the web tier\nweb*\n").expect("autosign file");
    // Salt ignores a signing file others can write to.
    std::fs::set_permissions(&autosign, std::os::unix::fs::PermissionsExt::from_mode(0o600)).expect("chmod");
    let master = Master::start(&[&format!("autosign_file: {}", autosign.display())]);
    let mut web1 = Minion::start(spec("web1", SaltVersion::V3006, &["app"]), &endpoints(&master));
    let bots = Minion::start(spec("bots", SaltVersion::V3007, &["bots"]), &endpoints(&master));
    web1.wait_authenticated(AUTH_TIMEOUT).expect("autosign_file lets web1 in");
    wait_for("bots pending", AUTH_TIMEOUT, || key_list(&master, "un") == ["bots"]);
    let out = master.salt_key(&["-r", "bots", "-y"]);
    assert!(out.status.success(), "salt-key -r: {}", String::from_utf8_lossy(&out.stderr));
    master.wait_log_contains("public key rejected", AUTH_TIMEOUT);
    assert!(!bots.master_pub_written(), "a rejected minion never receives an accept reply");
    assert_eq!(key_list(&master, "rej"), ["bots"]);

    // The same id with a new key pair lands in denied; the accepted key is untouched.
    let accepted = read(&master.pki_dir().join("minions/web1"));
    web1.replace_key();
    wait_for("web1's new key in denied", AUTH_TIMEOUT, || master.pki_dir().join("minions_denied/web1").is_file());
    assert_eq!(read(&master.pki_dir().join("minions/web1")), accepted);
    assert_ne!(read(&master.pki_dir().join("minions_denied/web1")), accepted);
    master.wait_log_contains("does not match the accepted one", Duration::from_secs(5));
}

#[test]
fn a_python_masters_pki_dir_is_taken_over_unchanged() {
    let mut python = PythonMaster::start(&["auto_accept: True"]);
    let py_endpoints = python.endpoints();
    let minions: Vec<Minion> = site_specs().into_iter().map(|s| Minion::start(s, &py_endpoints)).collect();
    for m in &minions {
        m.wait_authenticated(AUTH_TIMEOUT).unwrap_or_else(|e| panic!("{} against the Python master: {e}", m.id()));
    }
    // A request in flight when a master dies stalls that minion's request channel for Salt's
    // 60 s request timeout, whichever master answers next; the minions' first scheduled mine
    // update runs a second after start, so let it finish before the switch, as an operator
    // swapping masters on a settled site would.
    for m in &minions {
        m.wait_log_contains("__mine_interval", AUTH_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    }
    std::thread::sleep(Duration::from_secs(2));
    let trusted = master_pubs(&minions);
    let pki = python.pki_dir();
    let listing = |dir: &Path| -> Vec<String> {
        let mut names: Vec<String> = ["minions", "minions_pre", "minions_rejected", "minions_denied"]
            .iter()
            .flat_map(|state| {
                std::fs::read_dir(dir.join(state))
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(move |e| format!("{state}/{}", e.file_name().to_string_lossy()))
            })
            .collect();
        names.sort();
        names
    };
    let before = listing(&pki);
    let master_pem = read(&pki.join("master.pem"));
    python.stop();

    let master = Master::start_with(Setup {
        pki_dir: Some(pki.clone()),
        ports: Some((py_endpoints.ret_port, py_endpoints.publish_port)),
        ..Setup::default()
    });
    let ids: Vec<&str> = minions.iter().map(Minion::id).collect();
    ping_until_returned(&master, &ids);
    assert_eq!(master_pubs(&minions), trusted, "minion_master.pub untouched");
    assert_eq!(listing(&pki), before, "key states untouched");
    assert_eq!(read(&pki.join("master.pem")), master_pem, "master.pem untouched");
}

/// `publish_session` rotates the AES key on schedule (as Salt 3006 does), and with
/// `ping_on_rotate` the master pings the connected minions at once: each fails to open the
/// ping under its old key, signs in again, and answers it, with no job from anyone else.
#[test]
fn the_aes_key_rotates_on_schedule_and_ping_on_rotate_brings_minions_over() {
    const ROTATED: &str = "AES key rotated: publish_session elapsed";
    let master = Master::start(&["auto_accept: True", "publish_session: 10", "ping_on_rotate: True"]);
    let minions = common::start_minions(
        &master,
        &[("db1-masterdb", SaltVersion::V3006, &["db"]), ("app1", SaltVersion::V3007, &["app"])],
        |s| s,
    );
    let ids: Vec<&str> = minions.iter().map(Minion::id).collect();

    // A rotation after every minion is up, and the ping that followed it.
    let rotations_before = master.log().matches(ROTATED).count();
    wait_for("a scheduled rotation", Duration::from_secs(30), || {
        master.log().matches(ROTATED).count() > rotations_before
    });
    // The ping is logged a moment after the rotation (the connected minions are looked up
    // first), so the log is read until it shows the ping, not once.
    const PINGED: &str = "ping_on_rotate: pinged the connected minions";
    let after = master.log().rmatch_indices(ROTATED).next().map_or(0, |(at, _)| at);
    let pinged = halite_testkit::wait_until(Duration::from_secs(10), || master.log()[after..].contains(PINGED));
    let log = master.log();
    assert!(pinged, "no ping after the rotation:\n{log}");
    let ping = log[after..].lines().find(|l| l.contains(PINGED)).expect("the ping's line");
    let jid = ping.split("jid=").nth(1).and_then(|r| r.split([' ', '}']).next()).expect("the ping's jid");
    master.wait_returns(jid, &ids, AUTH_TIMEOUT);
    let reauthenticated = master.log()[after..].matches("authentication accepted").count();
    assert!(reauthenticated >= ids.len(), "every minion signs in again after the rotation");
    ping_until_returned(&master, &ids);
}
