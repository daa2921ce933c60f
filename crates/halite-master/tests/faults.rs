//! Faults the master must survive without losing what it acknowledged: `kill -9` while keys
//! are being accepted, while minions return a job, while they write their mine and while
//! they fetch their pillar; and a cachedir whose disk fills up.
//!
//! The minions are the swarm (`halite-swarm`), whose returns and mine writes are retried as
//! a real minion's are (`return_retry_tries`), with a short request timeout so a retry comes
//! within seconds; the swarm records which of them the master acknowledged.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Master, Setup};
use halite_swarm::{keys, Protocol, Swarm};
use halite_testkit::Tmpfs;

const MINIONS: usize = 60;

fn swarm_config(master: &Master, prefix: &str) -> halite_swarm::Config {
    common::swarm_config(master, prefix, Protocol::V3, Duration::from_secs(6))
}

fn cached(master: &Master, jid: &str) -> BTreeSet<String> {
    common::cached_returners(master, jid)
}

fn cached_returns(master: &Master, jid: &str) -> usize {
    cached(master, jid).len()
}

/// The store opened at every start, and each start after a kill said that redb repaired
/// the file first (what made that start slower; see halite-store's `health`).
fn assert_store_reopened(master: &Master, kills: usize) {
    let (repaired, clean) = (master.log_count("not closed cleanly"), master.log_count("store opened"));
    assert_eq!((repaired, clean), (kills, 1), "one start, then {kills} after a kill:\n{}", master.log());
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

#[test]
fn a_master_killed_while_accepting_keys_and_storing_returns_loses_nothing_it_acknowledged() {
    let mut master = Master::start(&[]);
    let keys = keys::load_or_generate(&common::swarm_keys_dir(), 0..MINIONS, 2).expect("swarm keys");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let swarm = runtime.block_on(async { Swarm::start(swarm_config(&master, "kill"), keys) });
    let deadline = Instant::now() + Duration::from_secs(60);
    while master.salt_key(&["-l", "pre"]).stdout.split(|b| *b == b'\n').filter(|l| l.starts_with(b"kill")).count()
        < MINIONS
    {
        assert!(Instant::now() < deadline, "the swarm's keys never all arrived:\n{}", master.log());
        std::thread::sleep(Duration::from_millis(200));
    }

    // Accept every key, and kill the master while salt-key tells it so.
    let accept = std::process::Command::new(common::workspace_bin("salt-key"))
        .arg("-c")
        .arg(master.config_dir())
        .args(["-A", "-y"])
        .spawn()
        .expect("salt-key -A");
    std::thread::sleep(Duration::from_millis(20));
    master.kill();
    master.start_again();
    let accepted = accept.wait_with_output().expect("salt-key -A finished");
    assert!(accepted.status.success(), "salt-key -A: {accepted:?}");
    let listed = master.salt_key(&["-l", "acc"]);
    let accepted_ids = String::from_utf8_lossy(&listed.stdout).lines().filter(|l| l.starts_with("kill")).count();
    assert_eq!(accepted_ids, MINIONS, "every key salt-key accepted stays accepted");
    assert_store_reopened(&master, 1);
    assert!(runtime.block_on(swarm.wait_ready(Duration::from_secs(120))), "{}", swarm.report().0);
    ping_all(&master);

    // Kill it while the returns of a job arrive (at the publish, a few milliseconds after,
    // and once the first return is in): every return the swarm saw acknowledged must be in
    // the job cache of the restarted master, and the minions come back by themselves.
    for (round, delay_ms) in [(0, 0), (1, 4), (2, u64::MAX)].into_iter() {
        let (jid, _) = master.publish("*", "test.ping");
        if delay_ms == u64::MAX {
            let deadline = Instant::now() + Duration::from_secs(10);
            let returning = |log: String| log.lines().any(|l| l.contains("job return") && l.contains(&jid));
            while !returning(master.log()) {
                assert!(Instant::now() < deadline, "no return of {jid} arrived:\n{}", master.log());
                std::thread::sleep(Duration::from_millis(10));
            }
        } else {
            std::thread::sleep(Duration::from_millis(delay_ms));
        }
        master.kill();
        let acknowledged_at_kill = swarm.acknowledged(&jid);
        // Before the start: a minion may be back before start_again returns.
        let restarted = unix_now();
        master.start_again();
        assert_store_reopened(&master, 2 + round);
        let stored = cached(&master, &jid);
        let lost: Vec<&String> = acknowledged_at_kill.iter().filter(|id| !stored.contains(*id)).collect();
        assert!(lost.is_empty(), "round {round}: acknowledged before the kill, not in the job cache: {lost:?}");

        let deadline = Instant::now() + Duration::from_secs(120);
        while swarm.ready_since(restarted) < MINIONS {
            assert!(
                Instant::now() < deadline,
                "only {} ready again: {}",
                swarm.ready_since(restarted),
                swarm.report().0
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let ready_again = unix_now() - restarted;
        let stored = cached(&master, &jid);
        let lost: Vec<String> = swarm.acknowledged(&jid).into_iter().filter(|id| !stored.contains(id)).collect();
        assert!(lost.is_empty(), "round {round}: acknowledged, not in the job cache: {lost:?}");
        eprintln!(
            "kill -9, round {round}: {} of {MINIONS} returns acknowledged at the kill, {} stored after the restart; \
             all ready again in {ready_again:.1} s",
            acknowledged_at_kill.len(),
            stored.len()
        );
    }

    // Kill it once the first of the minions' mine writes is acknowledged: every write the
    // swarm saw acknowledged is in the restarted master's mine, and the minions' retries
    // bring the others. (A job reaching all first: every subscriber has joined again.)
    ping_all(&master);
    let (jid, _) = master.publish("*", "mine.update");
    let deadline = Instant::now() + Duration::from_secs(10);
    while swarm.mine_stored(&jid).is_empty() {
        assert!(Instant::now() < deadline, "no mine write of {jid} acknowledged:\n{}", master.log());
        std::thread::sleep(Duration::from_millis(2));
    }
    master.kill();
    let stored_at_kill = swarm.mine_stored(&jid);
    master.start_again();
    assert_store_reopened(&master, 5);
    let echoed = |mine: &serde_json::Value, id: &str| mine.get(id).and_then(|v| v.as_str()) == Some(jid.as_str());
    let mine = mine_echo(&master);
    let lost: Vec<&String> = stored_at_kill.iter().filter(|id| !echoed(&mine, id)).collect();
    assert!(lost.is_empty(), "mine writes acknowledged before the kill, not in the mine: {lost:?}\n{mine}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut mine = mine;
    while (0..MINIONS).any(|n| !echoed(&mine, &format!("kill{n}"))) {
        assert!(Instant::now() < deadline, "the mine writes not acknowledged at the kill never came: {mine}");
        std::thread::sleep(Duration::from_millis(500));
        mine = mine_echo(&master);
    }
    eprintln!(
        "kill -9 during mine writes: {} of {MINIONS} acknowledged at the kill, all {MINIONS} in the mine after",
        stored_at_kill.len()
    );

    // Kill it again as the minions sign in to the restarted master, at its first pillar
    // compile (each `_pillar` writes the minion's grains and pillar to the store first): the
    // store opens, and every minion comes back and answers.
    ping_all(&master);
    master.kill();
    let log_before = master.log().len();
    master.start_again();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !master.log().get(log_before..).is_some_and(|since| since.contains("pillar compiled")) {
        assert!(Instant::now() < deadline, "no minion asked for its pillar again:\n{}", master.log());
        std::thread::sleep(Duration::from_millis(2));
    }
    master.kill();
    let restarted = unix_now();
    master.start_again();
    assert_store_reopened(&master, 7);
    let deadline = Instant::now() + Duration::from_secs(120);
    while swarm.ready_since(restarted) < MINIONS {
        assert!(Instant::now() < deadline, "only {} ready again: {}", swarm.ready_since(restarted), swarm.report().0);
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "kill -9 at the first pillar compile after a restart: all ready again in {:.1} s",
        unix_now() - restarted
    );
    ping_all(&master);
    runtime.block_on(swarm.stop());
}

/// `salt-run mine.get '*' test.echo`: each minion's mine value for it.
fn mine_echo(master: &Master) -> serde_json::Value {
    common::json(&common::salt_run(master, &["mine.get", "*", "test.echo", "--out", "json"]))
}

/// Publishes `test.ping` to every minion until one job reaches them all (a publish sent
/// while a subscriber is still joining can miss it, as with real minions); its jid.
fn ping_all(master: &Master) -> String {
    for _ in 0..3 {
        let (jid, _) = master.publish("*", "test.ping");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if cached_returns(master, &jid) == MINIONS {
                return jid;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    panic!("no test.ping reached all {MINIONS} minions:\n{}", master.log());
}

#[test]
fn a_full_disk_refuses_returns_unacknowledged_and_the_master_resumes_when_room_returns() {
    let fs = Tmpfs::mount("32m");
    let cachedir = fs.path().join("cache");
    let master = Master::start_with(Setup {
        extra: vec!["auto_accept: True".into()],
        cachedir: Some(cachedir.clone()),
        ..Setup::default()
    });
    let keys = keys::load_or_generate(&common::swarm_keys_dir(), 0..MINIONS, 2).expect("swarm keys");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let swarm = runtime.block_on(async { Swarm::start(swarm_config(&master, "full"), keys) });
    assert!(runtime.block_on(swarm.wait_ready(Duration::from_secs(120))), "{}", swarm.report().0);
    let before = ping_all(&master);

    // A job stored while there is room, whose returns come 3 s later; then leave 1 MiB,
    // less than the store keeps in reserve, so every write is refused meanwhile.
    let (jid, _) = master.publish_with("*", "test.sleep", &["3"]);
    let ballast = fs.fill_leaving("ballast", 1 << 20);
    // A new job is refused outright: its returns could not be kept.
    let refused = common::salt(&master, &["*", "test.ping", "--out", "json", "-t", "10"]);
    let said = format!("{}{}", String::from_utf8_lossy(&refused.stdout), String::from_utf8_lossy(&refused.stderr));
    // (Printed as Salt's CLI prints a master's error, exit code included.)
    assert!(said.contains("job not published") && said.contains("disk is full"), "a job on a full disk: {said}");
    let log = master.wait_log_contains("job return not saved", Duration::from_secs(30));
    let store = cachedir.join("halite.redb").display().to_string();
    let refusal = log.lines().find(|l| l.contains("job return not saved")).unwrap_or_default().to_owned();
    assert!(refusal.contains(&store) && refusal.contains("disk is full"), "the refusal names the file: {refusal}");

    // Refused, not down: the job cache still answers, and nothing of the new job was
    // acknowledged, so nothing of it is in the cache.
    assert_eq!(cached_returns(&master, &before), MINIONS, "what was acknowledged before is all there");
    assert_eq!(cached_returns(&master, &jid), 0);
    assert_eq!(swarm.acknowledged(&jid), Vec::<String>::new(), "nothing acknowledged on a full disk");

    // Room again: the minions' retries store every return, each acknowledged once.
    std::fs::remove_file(ballast).unwrap();
    let deadline = Instant::now() + Duration::from_secs(40);
    while cached_returns(&master, &jid) < MINIONS && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(cached_returns(&master, &jid), MINIONS, "every return stored once there is room:\n{}", master.log());
    let deadline = Instant::now() + Duration::from_secs(10);
    while swarm.acknowledged(&jid).len() < MINIONS && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(swarm.acknowledged(&jid).len(), MINIONS, "each acknowledged once stored: {}", swarm.report().0);
    let report = swarm.report().0;
    assert!(report["return_resends"].as_u64().unwrap_or(0) >= MINIONS as u64, "{report}");
    // And a new job goes through the ordinary path.
    ping_all(&master);
    runtime.block_on(swarm.stop());
}
