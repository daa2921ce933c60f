//! Hostile and broken input on the request port: garbage, truncated msgpack, a 100 MB frame,
//! path-like and NUL ids, a 16384-bit key, and a v3 request carrying another minion's `tok`.
//! Each is answered as Salt answers it (or the peer is dropped), logged once with the peer or
//! minion named, and the master keeps serving a well-behaved client throughout.

mod common;

use std::time::Duration;

use common::{FakeMinion, Master};
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

fn reply_text(reply: &[u8]) -> String {
    payload::decode(reply).ok().and_then(|v| v.as_text().map(str::to_owned)).unwrap_or_default()
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

    // 100 MB: libzmq drops the peer before buffering it; nothing is answered.
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
