//! The trust boundary, attacked as one hostile VM would: with one accepted minion key, or
//! with no key at all, on loopback. Each attack is refused with a log line, nothing of the
//! victim changes, and the master goes on serving real salt-minion 3006.30, 3007.8 and
//! 3008.5 processes afterwards.
//!
//! - a minion acting as another (CVE-2024-38822): shared-key requests below
//!   `minimum_auth_version`, a v3 envelope naming someone else, and at
//!   `minimum_auth_version: 2` a v2 load naming another id without (or with a wrong) `tok`;
//! - forged events: another minion's job return, start event or beacon, `salt/auth`, and
//!   data claiming another id (the event carries the sender's id instead);
//! - requests that cost the master without bound: a compound target nesting 200,000
//!   parentheses, a long `not` chain, a backtracking regex;
//! - memory before authentication: endless empty ZMTP frames, a msgpack array of 60 M nils,
//!   sign-ins under fresh ids with huge or junk keys;
//! - log flooding: a thousand 2-byte messages, a 10 KB command name.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{
    describe, json, reply_text, request, salt, salt_run, start_minions, AuthOutcome, FakeMinion, Master, Watcher,
};
use halite_proto::payload::{self, map, Value};
use halite_testkit::SaltVersion;

const REAL: &[(&str, SaltVersion, &[&str])] = &[
    ("web1", SaltVersion::V3006, &["web"]),
    ("db1", SaltVersion::V3007, &["db"]),
    ("app1", SaltVersion::V3008, &["app"]),
];

/// Every real minion still answers `test.ping` through halite's `salt`.
fn real_minions_answer(master: &Master) {
    let out = salt(master, &["*", "test.ping", "--out", "json", "-t", "20"]);
    let returns = common::json_returns(&out);
    for (id, _, _) in REAL {
        assert_eq!(
            returns.get(*id),
            Some(&serde_json::json!(true)),
            "{id} answers after the attacks: {}",
            describe(&out)
        );
    }
}

fn accepted(minion: &FakeMinion, master: &Master) -> halite_proto::crypticle::Crypticle {
    match minion.authenticate(master, 3) {
        AuthOutcome::Accepted { aes, .. } => aes,
        other => panic!("{} not accepted: {other:?}", minion.id),
    }
}

fn mine_store(id: &str, address: &str) -> Value {
    map([
        ("cmd", Value::from("_mine")),
        ("id", Value::from(id)),
        ("data", map([("network.ip_addrs", Value::Array(vec![Value::from(address)]))])),
    ])
}

/// What `salt-run mine.get <tgt> network.ip_addrs` answers.
fn mine_of(master: &Master, tgt: &str) -> serde_json::Value {
    json(&salt_run(master, &["mine.get", tgt, "network.ip_addrs", "--out", "json"]))
}

#[test]
fn no_minion_acts_as_another_and_no_event_speaks_for_another() {
    let master = Master::start(&["auto_accept: True"]);
    let _real = start_minions(&master, REAL, |spec| spec);

    // The victim's address in the mine, which the site's reactor turns into every VM's
    // /etc/hosts and the zone.
    let victim = FakeMinion::new("victim", 2048);
    accepted(&victim, &master);
    assert_eq!(victim.v3_call(&master, mine_store("victim", "10.0.0.7")), Ok(Value::Boolean(true)));
    let evil = FakeMinion::new("evil", 2048);
    let aes = accepted(&evil, &master);

    // Shared-key (v2) requests are below the default minimum_auth_version of 3.
    for load in [
        mine_store("victim", "10.6.6.6"),
        map([
            ("cmd", Value::from("_return")),
            ("id", Value::from("victim")),
            ("jid", Value::from("20261204120000000000")),
            ("return", Value::Boolean(true)),
        ]),
        map([
            ("cmd", Value::from("_minion_event")),
            ("id", Value::from("victim")),
            ("tag", Value::from("salt/minion/victim/start")),
            ("data", Value::from("x")),
        ]),
        mine_store("nokey", "10.6.6.6"),
    ] {
        assert_eq!(evil.v2_call(&master, &aes, load, None), Err("bad load".into()));
    }
    master.wait_log_contains("protocol version below minimum_auth_version", Duration::from_secs(5));

    // v3: the envelope names the victim, the key is evil's: it does not open.
    let forged = evil.v3_forged(&master, "victim", mine_store("victim", "10.6.6.6"));
    assert_eq!(reply_text(&forged), "bad load");
    // The envelope is evil's, the load names the victim: Salt's id check refuses it.
    let forged = evil.v3_forged(&master, "evil", mine_store("victim", "10.6.6.6"));
    assert_eq!(reply_text(&forged), "bad load");
    master.wait_log_contains("request id mismatch", Duration::from_secs(5));
    assert_eq!(
        mine_of(&master, "victim"),
        serde_json::json!({"victim": ["10.0.0.7"]}),
        "the victim's mine is unchanged"
    );
    assert_eq!(mine_of(&master, "nokey"), serde_json::json!({}), "no mine for an id without a key");

    // Events: under its own identity evil may not speak for the victim or for the master.
    let watcher = Watcher::start(&master, &["pretty=False"]);
    watcher.wait_subscribed(&master);
    let jid = "20261204120000000001";
    let forged_events = [
        format!("salt/job/{jid}/ret/victim"),
        format!("salt/job/{jid}/ret/evil"),
        "salt/minion/victim/start".into(),
        "salt/beacon/victim/inotify/".into(),
        "salt/auth".into(),
        "salt/key".into(),
    ];
    let batch = |tags: &[String], data: Value| {
        map([
            ("cmd", Value::from("_minion_event")),
            (
                "events",
                Value::Array(
                    tags.iter().map(|t| map([("tag", Value::from(t.as_str())), ("data", data.clone())])).collect(),
                ),
            ),
        ])
    };
    let claim = map([("id", Value::from("victim")), ("act", Value::from("accept")), ("return", Value::Boolean(true))]);
    assert_eq!(evil.v3_call(&master, batch(&forged_events, claim.clone())), Ok(Value::Boolean(true)));
    for tag in &forged_events[2..] {
        let single =
            map([("cmd", Value::from("_minion_event")), ("tag", Value::from(tag.as_str())), ("data", claim.clone())]);
        assert_eq!(evil.v3_call(&master, single), Ok(Value::Boolean(false)), "{tag}");
    }
    // Allowed tags: its own start event, and a custom tag whose data claims the victim's id.
    let own = vec!["salt/minion/evil/start".to_owned(), "site/custom".to_owned()];
    assert_eq!(evil.v3_call(&master, batch(&own, claim)), Ok(Value::Boolean(true)));
    let shown = watcher.wait_for("site/custom\t", Duration::from_secs(10));
    for tag in &forged_events {
        assert!(!shown.contains(&format!("{tag}\t")), "{tag} reached the bus:\n{shown}");
    }
    let custom = shown.lines().find(|l| l.starts_with("site/custom\t")).expect("the custom event");
    assert!(
        custom.contains("\"id\": \"evil\"") && !custom.contains("victim"),
        "the event carries the sender's id: {custom}"
    );
    assert!(shown.contains("salt/minion/evil/start\t"), "its own start event passes:\n{shown}");
    master.wait_log_contains("the tag names another minion", Duration::from_secs(5));
    master.wait_log_contains("a minion fires no salt/job/ events", Duration::from_secs(5));

    real_minions_answer(&master);
}

#[test]
fn at_minimum_auth_version_2_every_load_naming_an_id_needs_its_tok() {
    let master = Master::start(&["auto_accept: True", "minimum_auth_version: 2"]);
    let _real = start_minions(&master, REAL, |spec| spec);

    let victim = FakeMinion::new("victim", 2048);
    accepted(&victim, &master);
    assert_eq!(victim.v3_call(&master, mine_store("victim", "10.0.0.7")), Ok(Value::Boolean(true)));
    let evil = FakeMinion::new("evil", 2048);
    let aes = accepted(&evil, &master);

    let pillar = |id: &str| {
        map([
            ("cmd", Value::from("_pillar")),
            ("id", Value::from(id)),
            ("grains", map([("roles", Value::Array(vec![Value::from("db")]))])),
        ])
    };
    let ret = |id: &str| {
        map([
            ("cmd", Value::from("_return")),
            ("id", Value::from(id)),
            ("jid", Value::from("20261204120000000002")),
            ("fun", Value::from("test.ping")),
            ("return", Value::Boolean(true)),
        ])
    };
    // No tok, or evil's tok for another id: refused before any handler runs.
    for load in [
        mine_store("victim", "10.6.6.6"),
        ret("victim"),
        pillar("victim"),
        mine_store("nokey", "10.6.6.6"),
        pillar("nokey"),
    ] {
        assert_eq!(evil.v2_call(&master, &aes, load.clone(), None), Err("bad load".into()), "{load}");
        assert_eq!(evil.v2_call(&master, &aes, load.clone(), Some(evil.tok())), Err("bad load".into()), "{load}");
    }
    master.wait_log_contains("without a tok", Duration::from_secs(5));
    master.wait_log_contains("tok does not verify", Duration::from_secs(5));
    // Ten refusals from one address: five lines, the rest counted in a summary.
    master.wait_log_contains("similar warnings suppressed", Duration::from_secs(15));
    // The file server needs no id: a v2 request naming none is served.
    let envs = evil.v2_call(&master, &aes, map([("cmd", Value::from("_file_envs"))]), None);
    assert_eq!(envs, Ok(Value::Array(vec![Value::from("base")])));
    // A command acting for a minion needs one.
    assert_eq!(evil.v2_call(&master, &aes, map([("cmd", Value::from("_mine_flush"))]), None), Err("bad load".into()));
    // Under its own id, with its own tok, a v2 minion is served.
    assert_eq!(evil.v2_call(&master, &aes, mine_store("evil", "10.0.0.8"), Some(evil.tok())), Ok(Value::Boolean(true)));

    assert_eq!(mine_of(&master, "victim"), serde_json::json!({"victim": ["10.0.0.7"]}));
    assert_eq!(mine_of(&master, "evil"), serde_json::json!({"evil": ["10.0.0.8"]}));
    assert_eq!(mine_of(&master, "nokey"), serde_json::json!({}));
    let jobs = json(&salt_run(&master, &["jobs.lookup_jid", "20261204120000000002", "--out", "json"]));
    assert_eq!(jobs, serde_json::json!({}), "no return was stored for the victim");
    real_minions_answer(&master);
}

/// Opens a ZMTP 3.0 NULL session as a REQ peer and returns the stream past the handshake.
fn zmtp_req(master: &Master) -> TcpStream {
    let mut sock = TcpStream::connect(("127.0.0.1", master.ret_port)).expect("connect");
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut greeting = vec![0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 3, 0];
    greeting.extend_from_slice(b"NULL");
    greeting.resize(64, 0);
    sock.write_all(&greeting).unwrap();
    let mut theirs = [0u8; 64];
    sock.read_exact(&mut theirs).expect("the master's greeting");
    // READY with Socket-Type REQ, as a command frame.
    let mut ready = vec![5u8];
    ready.extend_from_slice(b"READY");
    ready.push(11);
    ready.extend_from_slice(b"Socket-Type");
    ready.extend_from_slice(&3u32.to_be_bytes());
    ready.extend_from_slice(b"REQ");
    let mut frame = vec![0x04, ready.len() as u8];
    frame.extend_from_slice(&ready);
    sock.write_all(&frame).unwrap();
    sock
}

/// Writes `chunk` again and again for up to `limit` bytes, stopping when the master closes
/// the connection. Returns the bytes written and the highest RSS seen meanwhile.
fn flood(master: &Master, sock: &mut TcpStream, chunk: &[u8], limit: usize) -> (usize, u64) {
    sock.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    let (mut sent, mut peak) = (0, 0);
    while sent < limit {
        if sock.write_all(chunk).is_err() {
            break;
        }
        sent += chunk.len();
        if sent % (4 << 20) < chunk.len() {
            peak = peak.max(master.rss_mib());
        }
    }
    (sent, peak.max(master.rss_mib()))
}

#[test]
fn requests_without_a_key_cannot_grow_memory_or_the_log() {
    // Strangers' keys wait in minions_pre; the real minions are autosigned by id.
    let signing = tempfile::tempdir().expect("temp dir");
    let autosign = signing.path().join("autosign.conf");
    std::fs::write(&autosign, REAL.iter().map(|(id, _, _)| format!("{id}\n")).collect::<String>()).expect("autosign");
    let mut master = Master::start(&["auto_accept: False", &format!("autosign_file: {}", autosign.display())]);
    let baseline = master.rss_mib();

    // Endless empty frames with MORE: one message that never ends. Each frame costs
    // bookkeeping but no bytes; the master closes the connection at its frame budget.
    let mut sock = zmtp_req(&master);
    let empties = [0x01u8, 0x00].repeat(32 << 10);
    let (sent, peak) = flood(&master, &mut sock, &empties, 64 << 20);
    assert!(sent < 64 << 20, "the master kept reading empty frames ({sent} bytes)");
    eprintln!("empty frames: {sent} bytes sent before the master closed; RSS {baseline} -> peak {peak} MiB");
    assert!(peak < baseline + 64, "RSS grew from {baseline} to {peak} MiB on empty frames");

    // A 60 MB msgpack array of nils: refused before it is decoded into values.
    let mut nils = vec![0xdd];
    nils.extend_from_slice(&(60_000_000u32).to_be_bytes());
    nils.resize(5 + 60_000_000, 0xc0);
    let reply = std::thread::scope(|s| {
        let sending = s.spawn(|| request(&master, &nils));
        let mut peak = 0;
        while !sending.is_finished() {
            peak = peak.max(master.rss_mib());
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("60 MB of nils: RSS {baseline} -> peak {peak} MiB");
        assert!(peak < baseline + 400, "RSS grew from {baseline} to {peak} MiB on 60 MB of nils");
        sending.join().expect("the request thread")
    });
    assert_eq!(reply_text(&reply), "bad load");

    // 1.5 M one-entry maps (4.5 MB, ~500 MB as values): an envelope builds little before a
    // key has opened it.
    let mut maps = vec![0xdd];
    maps.extend_from_slice(&1_500_000u32.to_be_bytes());
    maps.extend(std::iter::repeat_n([0x81u8, 0xc0, 0xc0], 1_500_000).flatten());
    assert_eq!(reply_text(&request(&master, &maps)), "bad load");
    let after = master.rss_mib();
    eprintln!("4.5 MB of maps: RSS {baseline} -> {after} MiB");
    assert!(after < baseline + 100, "RSS grew from {baseline} to {after} MiB on an envelope of maps");

    // Sign-ins under fresh ids: a huge or junk `pub` is refused and writes nothing; valid
    // keys land in minions_pre only as fast as one address's new-key budget allows.
    let pending = master.pki_dir().join("minions_pre");
    let count = |dir: &std::path::Path| std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
    let huge = FakeMinion::with_public_key("huge", &"A".repeat(1 << 20));
    assert!(matches!(huge.authenticate(&master, 3), AuthOutcome::Refused));
    let junk = FakeMinion::with_public_key("junk", "-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n");
    assert!(matches!(junk.authenticate(&master, 3), AuthOutcome::Refused));
    assert_eq!(count(&pending), 0, "no file for a key that is not one");
    let key = FakeMinion::new("k", 2048);
    let pem = key_pem(&key);
    let started = Instant::now();
    let asked = 60;
    for n in 0..asked {
        let stranger = FakeMinion::with_public_key(&format!("stranger{n}"), &pem);
        assert!(matches!(stranger.authenticate(&master, 3), AuthOutcome::Pending), "told to wait, recorded or not");
    }
    let budget = halite_master::budget::NEW_KEYS_BURST_PER_ADDRESS
        + started.elapsed().as_secs_f64() * halite_master::budget::NEW_KEYS_PER_SECOND_PER_ADDRESS;
    let written = count(&pending);
    assert!(
        written < asked && written as f64 <= budget + 1.0,
        "{written} of {asked} new keys written (budget {budget})"
    );
    master.wait_log_contains("new key not recorded", Duration::from_secs(5));

    // Log flooding: a thousand 2-byte messages, then a command name of 10 KB.
    for _ in 0..1000 {
        assert_eq!(reply_text(&request(&master, b"\xc1\xc1")), "bad load");
    }
    let long_cmd = "x".repeat(10_000);
    let clear = payload::encode(&map([
        ("enc", Value::from("clear")),
        ("load", map([("cmd", Value::from(long_cmd.as_str()))])),
        ("version", Value::from(3)),
    ]));
    let answer = payload::decode(&request(&master, &clear)).expect("an answer");
    assert!(
        !payload::encode(&answer).windows(100).any(|w| w == &long_cmd.as_bytes()[..100]),
        "the reply echoes no command"
    );
    let log = master.wait_log_contains("similar warnings suppressed", Duration::from_secs(20));
    let refusals = master.log_count("refusing request");
    assert!(
        refusals <= 2 * halite_ratelog::LINES_PER_WINDOW as usize,
        "{refusals} refusal lines for 1000 bad messages"
    );
    assert!(
        log.lines().all(|l| l.len() < 2_000),
        "a log line carries attacker data at length:\n{}",
        log.lines().max_by_key(|l| l.len()).unwrap_or("")
    );
    assert!(master.is_running());
    // Real minions of every version still get in (autosigned) and answer.
    let _real = start_minions(&master, REAL, |spec| spec);
    real_minions_answer(&master);
}

fn key_pem(minion: &FakeMinion) -> String {
    String::from_utf8(minion.public_key().to_spki_pem().expect("pem")).expect("utf-8")
}

#[test]
fn costly_targets_from_a_minion_are_bounded_and_the_master_keeps_serving() {
    let master = Master::start(&["auto_accept: True", "peer: {'evil': ['test.ping']}"]);
    let _real = start_minions(&master, REAL, |spec| spec);
    let evil = FakeMinion::new("evil", 2048);
    accepted(&evil, &master);
    // A grain value a backtracking pattern takes exponential time on.
    let grains = map([("roles", Value::from(format!("{}b", "a".repeat(5_000))))]);
    let pillar = map([("cmd", Value::from("_pillar")), ("grains", grains)]);
    evil.v3_call(&master, pillar).ok();

    let deep = format!("{}evil{}", "( ".repeat(200_000), " )".repeat(200_000));
    let nots = format!("{}evil", "not ".repeat(100_000));
    let delimiters = format!("roles{}", ":".repeat(100_000));
    let started = Instant::now();
    for (tgt, tgt_type) in [
        (deep.as_str(), "compound"),
        (nots.as_str(), "compound"),
        (delimiters.as_str(), "grain"),
        ("roles:(a+)+$", "grain_pcre"),
        ("(a|aa)+$", "pcre"),
    ] {
        let get = map([
            ("cmd", Value::from("_mine_get")),
            ("tgt", Value::from(tgt)),
            ("tgt_type", Value::from(tgt_type)),
            ("fun", Value::from("network.ip_addrs")),
        ]);
        let answer = evil.v3_call(&master, get).unwrap_or_else(|e| panic!("{tgt_type}: {e}\n{}", master.log()));
        assert!(answer.as_map().is_some(), "{tgt_type}: {answer}");
        let publish = map([
            ("cmd", Value::from("minion_pub")),
            ("tgt", Value::from(tgt)),
            ("tgt_type", Value::from(tgt_type)),
            ("fun", Value::from("test.ping")),
            ("arg", Value::Array(vec![])),
            ("ret", Value::from("")),
            ("tmo", Value::from(5)),
        ]);
        evil.v3_call(&master, publish).unwrap_or_else(|e| panic!("peer {tgt_type}: {e}\n{}", master.log()));
    }
    eprintln!("five costly targets answered in {:?}", started.elapsed());
    let mut master = master;
    assert!(master.is_running(), "the master survived:\n{}", master.log());
    real_minions_answer(&master);
}
