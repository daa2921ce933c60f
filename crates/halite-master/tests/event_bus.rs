//! The master's event bus as Salt's tools see it on `sock_dir/master_event_pub.ipc`: Salt's
//! framing, and the tags Salt fires (`salt/auth` for an authentication, `salt/key` when
//! salt-key accepts a key).

mod common;

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::{workspace_bin, FakeMinion, Master};
use halite_proto::payload::{self, Value, ValueExt};

/// Reads Salt-framed events (`{"head": {}, "body": tag "\n\n" msgpack}`) until `want` or
/// the timeout; returns every (tag, data) seen.
fn read_events(sock: &mut UnixStream, want: &str, timeout: Duration) -> Vec<(String, Value)> {
    let deadline = Instant::now() + timeout;
    let mut buf = Vec::new();
    let mut seen = Vec::new();
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    while Instant::now() < deadline && !seen.iter().any(|(t, _): &(String, Value)| t == want) {
        let mut chunk = [0u8; 4096];
        if let Ok(n) = sock.read(&mut chunk) {
            buf.extend_from_slice(&chunk[..n]);
        }
        loop {
            let mut cursor = std::io::Cursor::new(&buf);
            let Ok(frame) = rmpv::decode::read_value(&mut cursor) else { break };
            let used = cursor.position() as usize;
            buf.drain(..used);
            let Some(Value::Binary(body)) = frame.get("body").cloned() else { panic!("no bin body: {frame}") };
            let split = body.windows(2).position(|w| w == b"\n\n").expect("tag end");
            let tag = String::from_utf8_lossy(&body[..split]).into_owned();
            seen.push((tag, payload::decode(&body[split + 2..]).expect("event data")));
        }
    }
    seen
}

#[test]
fn salt_tools_see_salt_events() {
    let master = Master::start(&[]);
    let mut bus = UnixStream::connect(master.root().join("run/master_event_pub.ipc")).expect("event bus socket");
    let minion = FakeMinion::new("web1", 2048);
    assert!(!minion.authenticate(&master, 3).is_accepted(), "pending without auto_accept");
    let seen = read_events(&mut bus, "salt/auth", Duration::from_secs(10));
    let (_, auth) = seen.iter().find(|(t, _)| t == "salt/auth").expect("salt/auth fired");
    assert_eq!(auth.get_text("act"), Some("pend"), "{auth}");
    assert_eq!(auth.get_text("id"), Some("web1"));
    assert!(auth.get("_stamp").is_some(), "Salt stamps every event");

    let out = std::process::Command::new(workspace_bin("salt-key"))
        .arg("-c")
        .arg(master.config_dir())
        .args(["-a", "web1", "-y"])
        .output()
        .expect("salt-key");
    assert!(out.status.success(), "{out:?}");
    let seen = read_events(&mut bus, "salt/key", Duration::from_secs(10));
    let (_, key) = seen.iter().find(|(t, _)| t == "salt/key").expect("salt/key fired");
    assert_eq!(key.get_text("act"), Some("accept"), "{key}");
    assert_eq!(key.get_text("id"), Some("web1"));
    assert_eq!(key.get("result"), Some(&Value::Boolean(true)));
}
