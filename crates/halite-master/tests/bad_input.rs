//! Hostile and broken input on the request port: garbage, truncated msgpack, a 100 MB frame,
//! path-like and NUL ids, a 16384-bit key, and a v3 request carrying another minion's `tok`.
//! Each is answered as Salt answers it (or the peer is dropped), logged once with the peer or
//! minion named, and the master keeps serving a well-behaved client throughout. The same for
//! publishes: wrong keys (clear publish and local channel), broken frames on the local channel,
//! absurd and malformed targets.

mod common;

use std::time::Duration;

use common::{cli, reply_text, FakeMinion, Master};
use halite_proto::payload::{self, map, Value, ValueExt};

fn raw_request(master: &Master, body: &[u8]) -> Option<Vec<u8>> {
    let ctx = zmq::Context::new();
    let sock = ctx.socket(zmq::REQ).unwrap();
    sock.set_rcvtimeo(5000).unwrap();
    sock.set_linger(0).unwrap();
    sock.connect(&master.ret_endpoint()).unwrap();
    sock.send(body, 0).unwrap();
    sock.recv_bytes(0).ok()
}

#[test]
fn hostile_input_is_refused_and_real_clients_keep_working() {
    let mut master = Master::start(&["auto_accept: True"]);
    let good = FakeMinion::new("good", 2048);
    assert!(good.authenticate(&master, 3).is_accepted(), "a well-behaved minion authenticates");

    // Garbage and truncated msgpack: Salt answers "bad load".
    assert_eq!(reply_text(&raw_request(&master, b"\xc1garbage").unwrap()), "bad load");
    let truncated = payload::encode(&map([("enc", Value::from("clear")), ("load", Value::from("x".repeat(100)))]));
    assert_eq!(reply_text(&raw_request(&master, &truncated[..truncated.len() - 10]).unwrap()), "bad load");
    // A dict without enc/load.
    assert_eq!(reply_text(&raw_request(&master, &payload::encode(&map([("x", Value::from(1))]))).unwrap()), "bad load");

    // 100 MB: the master closes the connection on the frame header, before buffering it;
    // nothing is answered.
    assert!(raw_request(&master, &vec![0x20u8; 100 << 20]).is_none(), "an oversized frame gets no reply");

    // Ids Salt's valid_id refuses: a signed `ret: False`, and no file outside the pki dir.
    let traversal = FakeMinion::new("../x", 2048);
    assert!(traversal.authenticate(&master, 3).is_refused());
    assert!(!master.root().join("pki/master/x").exists() && !master.root().join("pki/x").exists());
    let nul = FakeMinion::new("a\0b", 2048);
    assert_eq!(reply_text(&nul.auth_raw(&master, 3)), "bad load: id contains a null byte");

    // A 16384-bit key is legal RSA: Salt accepts it, and so does halite (public-key
    // operations on it are cheap; nothing private is ever done with it).
    let big = FakeMinion::with_public_key("bigkey", include_str!("data/rsa16384.pub"));
    let big_reply = big.auth_raw(&master, 3);
    assert!(payload::decode(&big_reply).unwrap().get("sig").is_some(), "a signed reply for the big key");

    // v3 request from `good` whose tok was made with another minion's key.
    let other = FakeMinion::new("other", 2048);
    assert!(other.authenticate(&master, 3).is_accepted());
    let forged = good.v3_request_with_tok(&master, "_minion_event", other.tok());
    assert_eq!(reply_text(&forged), "bad load");
    // and with its own tok it is served.
    assert!(good.v3_event(&master, "halite/test/ok").is_ok(), "a real request still works");

    let log = master.wait_log_contains("tok does not verify", Duration::from_secs(5));
    assert!(log.contains("good"), "the refusal names the minion:\n{log}");
    assert!(master.is_running(), "the master survived all of it");
}

/// Sends one raw frame on the local channel and returns the master's answer, if any.
fn local_exchange(master: &Master, frame: &[u8]) -> Option<halite_ipc::ServerMsg> {
    use std::io::{Read, Write};
    let mut sock = std::os::unix::net::UnixStream::connect(master.root().join("run").join(halite_ipc::SOCKET_NAME))
        .expect("the local channel is listening");
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    sock.write_all(frame).unwrap();
    let mut decoder = halite_ipc::FrameDecoder::default();
    let mut buf = [0u8; 4096];
    loop {
        let n = sock.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        decoder.push(&buf[..n]);
        if let Some(v) = decoder.next_frame().ok()? {
            return halite_ipc::ServerMsg::from_value(&v).ok();
        }
    }
}

#[test]
fn bad_publishes_are_refused_and_nothing_is_published() {
    let mut master = Master::start(&["auto_accept: True"]);
    let good = FakeMinion::new("good", 2048);
    assert!(good.authenticate(&master, 3).is_accepted());
    let load = map([("tgt", Value::from("*")), ("fun", Value::from("test.ping")), ("tgt_type", Value::from("glob"))]);

    // The stock CLI's clear publish with a wrong key: Salt's AuthenticationError.
    let mut clear = load.clone();
    payload::insert(&mut clear, "cmd", Value::from("publish"));
    payload::insert(&mut clear, "user", Value::from("root"));
    payload::insert(&mut clear, "key", Value::from("not-the-key"));
    // Without a version it is below minimum_auth_version: refused before anything else.
    let unversioned = payload::encode(&map([("enc", Value::from("clear")), ("load", clear.clone())]));
    assert_eq!(reply_text(&raw_request(&master, &unversioned).unwrap()), "bad load");
    let body = payload::encode(&map([("enc", Value::from("clear")), ("load", clear), ("version", Value::from(3))]));
    let reply =
        payload::decode(&raw_request(&master, &body).unwrap_or_else(|| panic!("no reply:\n{}", master.log()))).unwrap();
    let error = reply.get("error").expect("an error");
    assert_eq!(error.get_text("name"), Some("AuthenticationError"), "{reply}");

    // The local channel with a wrong key, with garbage, and with an oversized frame header.
    let request = halite_ipc::Request::Publish { user: "root".into(), key: "wrong".into(), load, listen: true };
    match local_exchange(&master, &halite_ipc::encode_frame(&request.to_value())) {
        Some(halite_ipc::ServerMsg::Reply(Err((halite_ipc::ErrorKind::Auth, _)))) => {}
        other => panic!("a wrong key must be refused, got {other:?}"),
    }
    assert!(local_exchange(&master, &[0, 0, 0, 2, 0xc1, 0xc1]).is_none(), "garbage closes the connection");
    assert!(local_exchange(&master, &u32::MAX.to_be_bytes()).is_none(), "an absurd length closes it too");

    // Absurd and broken targets through the CLI: Salt's "no minions" lines, exit 2.
    // Linux caps one argument at 128 KiB; these stay just under it.
    let long_glob = "x".repeat(120 << 10);
    let long_compound = vec!["good"; 15_000].join(" or ");
    let long_regex = format!("({})", vec!["a+"; 5_000].join("|"));
    for args in [
        vec![long_glob.as_str(), "test.ping"],
        vec!["-C", long_compound.as_str(), "test.ping", "-t", "1", "--hide-timeout"],
        vec!["-E", long_regex.as_str(), "test.ping"],
        vec!["-C", "good and", "test.ping"],
        vec!["-N", "nope", "test.ping"],
        vec!["-S", "10.0.0.5/24", "test.ping"],
    ] {
        let out = cli(&master, "salt", &args);
        let shown: Vec<String> = args.iter().map(|a| a.chars().take(40).collect()).collect();
        assert!(matches!(out.status.code(), Some(0 | 2)), "salt {shown:?}: {out:?}");
        assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"), "salt {shown:?}: {out:?}");
    }

    // Nothing above published a job: the long compound (15,000 words) is past
    // halite-target's MAX_WORDS, and the others name no minion.
    let out = cli(&master, "salt-run", &["jobs.list_jobs", "--out", "json"]);
    let jobs: serde_json::Value = serde_json::from_slice(&out.stdout).expect("salt-run json");
    let mut functions: Vec<&str> =
        jobs.as_object().into_iter().flatten().filter_map(|(_, job)| job["Function"].as_str()).collect();
    functions.sort();
    assert!(functions.is_empty(), "{functions:?}");
    assert!(master.is_running(), "the master survived all of it");
    let log = master.wait_log_contains("wrong user key", Duration::from_secs(5));
    assert!(log.contains("local"), "the refusal is logged on the local channel's span:\n{log}");
}

#[test]
fn file_commands_serve_nothing_outside_the_roots() {
    let tree = tempfile::Builder::new().prefix("hf").tempdir_in("/tmp").expect("temp dir");
    let states = tree.path().join("states");
    std::fs::create_dir_all(states.join("web")).unwrap();
    std::fs::write(states.join("web/index.html"), "served").unwrap();
    std::fs::write(tree.path().join("secret"), "not served").unwrap();
    std::os::unix::fs::symlink(tree.path().join("secret"), states.join("leak")).unwrap();
    let master = Master::start(&[
        "auto_accept: True",
        "file_roots:",
        "  base:",
        &format!("    - {}", states.display()),
        "  __env__:",
        &format!("    - {}/__env__", tree.path().display()),
    ]);
    let minion = FakeMinion::new("probe", 2048);
    assert!(minion.authenticate(&master, 3).is_accepted());
    let call = |cmd: &str, path: &str, saltenv: &str| {
        let load = map([
            ("cmd", Value::from(cmd)),
            ("path", Value::from(path)),
            ("saltenv", Value::from(saltenv)),
            ("loc", Value::from(0)),
        ]);
        minion.v3_call(&master, load).unwrap_or_else(|e| panic!("{cmd} {path}: {e}"))
    };
    let served = call("_serve_file", "web/index.html", "base");
    assert_eq!(served.get("data").and_then(|d| d.as_bytes_any()), Some(&b"served"[..]), "{served:?}");
    let hostile = [
        ("../secret", "base"),
        ("web/../../secret", "base"),
        ("/etc/passwd", "base"),
        (&*format!("{}/secret", tree.path().display()), "base"),
        ("leak", "base"),
        ("secret", ".."),
        ("../secret", "x/.."),
        ("secret?saltenv=..", "base"),
        ("web/index.html?saltenv=../states", "nope"),
    ];
    for (path, saltenv) in hostile {
        for cmd in ["_serve_file", "_file_hash", "_file_hash_and_stat", "_file_find"] {
            let reply = call(cmd, path, saltenv);
            let text = format!("{reply:?}");
            assert!(!text.contains("served") && !text.contains("hsum"), "{cmd} {path:?} in {saltenv:?}: {text}");
        }
    }
    for cmd in ["_file_list", "_dir_list", "_symlink_list", "_file_list_emptydirs"] {
        let reply = call(cmd, "", "../..");
        assert!(
            reply.as_array().is_some_and(Vec::is_empty) || reply.as_map().is_some_and(Vec::is_empty),
            "{cmd}: {reply:?}"
        );
    }
    let listed = call("_file_list", "", "base");
    assert_eq!(listed, Value::Array(vec![Value::from("web/index.html")]), "the escaping link is no file of the tree");
}
