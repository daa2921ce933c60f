//! Limits that hold against a hostile or careless client: the login grace time and
//! `max_startups` against connections that never sign in, sessions reused on one connection
//! (`ControlMaster`), a destination that stops reading, and connections left with nothing
//! open (`idle_timeout`).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn connections_that_never_sign_in_are_closed_at_the_grace_time_and_free_their_startup() {
    let site = Site::new();
    let jumpbox = JumpBox::start(&site, "login_grace_time: 2\nmax_startups: 2\nthrottle: {failures: 0}\n");
    let port = jumpbox.port.to_string();
    // The start-up probe's connection must have given its slot back first.
    site.await_audit("for the start-up probe", |r| r["event"] == "connection");
    // Two clients that send their version and never sign in, holding both startup slots;
    // whatever the server sends, they answer with a byte that never completes a packet.
    let mut stalled: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", jumpbox.port)).unwrap();
            s.write_all(b"SSH-2.0-OpenSSH_9.2p1\r\n").unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let out = site.run(&["-p", &port, "127.0.0.1", "vms"]);
    assert_eq!(out.status.code(), Some(255), "max_startups is full: {}", text(&out.stdout));
    site.await_audit("for max_startups", |r| r["refused"] == "max_startups reached");

    let started = Instant::now();
    for s in &mut stalled {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let _ = s.write_all(&[0]);
                }
            }
        }
    }
    assert!(started.elapsed() < Duration::from_secs(8), "closed after {:?}", started.elapsed());
    site.await_audit("for the grace time", |r| r["refused"] == "login grace time over");
    let out = site.run(&["-p", &port, "127.0.0.1", "vms"]);
    assert_ok(&out, "signing in once the stalled connections are gone");
}

#[test]
fn sessions_on_one_connection_are_counted_as_they_close() {
    let site = Site::new();
    let jumpbox = JumpBox::start(&site, "max_sessions: 3\n");
    let port = jumpbox.port.to_string();
    // A unix socket's path is at most 107 bytes: the scratch directory under the target
    // directory can be too deep for one, so the control socket lives in /tmp.
    let control_dir = tempfile::Builder::new().prefix("jbc").tempdir_in("/tmp").unwrap();
    let control_path = format!("ControlPath={}/c", control_dir.path().display());
    let args = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = vec!["-o".into(), "ControlMaster=auto".into(), "-o".into(), control_path.clone()];
        v.extend(["-o".into(), "ControlPersist=20".into(), "-p".into(), port.clone(), "127.0.0.1".into()]);
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    for i in 0..8 {
        let a = args(&["vms"]);
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        let out = site.run(&refs);
        assert_ok(&out, &format!("session {i} on the shared connection"));
    }
    let a = args(&["-O", "exit"]);
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    let _ = site.run(&refs);
    let sessions = site.audit().iter().filter(|r| r["event"] == "session").count();
    assert_eq!(sessions, 8);
}

#[test]
fn a_destination_that_stops_reading_is_cut_off_and_the_connection_goes_on() {
    let site = Site::new();
    let jumpbox = JumpBox::start(&site, "stall_timeout: 2\n");
    let stalled = sink();
    let hello = Server::start("hello\n", Some(0));
    let (a, b) = (free_port(), free_port());
    let port = jumpbox.port.to_string();
    let mut client = site
        .ssh(&[
            "-N",
            "-o",
            "ExitOnForwardFailure=yes",
            "-L",
            &format!("127.0.0.1:{a}:127.0.0.1:{stalled}"),
            "-L",
            &format!("127.0.0.1:{b}:127.0.0.1:{}", hello.port),
            "-p",
            &port,
            "127.0.0.1",
        ])
        .spawn()
        .unwrap();
    eventually(15, "both -L ports listening", || listening(a) && listening(b));
    let writer = std::thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", a)).unwrap();
        let chunk = vec![0u8; 1 << 20];
        let mut sent = 0u64;
        while sent < 256 << 20 && s.write_all(&chunk).is_ok() {
            sent += chunk.len() as u64;
        }
    });
    std::thread::sleep(Duration::from_secs(1));
    let started = Instant::now();
    let got = fetch(b).unwrap();
    assert_eq!(text(&got), "hello\n");
    assert!(started.elapsed() < Duration::from_secs(10), "the other forward waited {:?}", started.elapsed());
    let cut = site.await_audit("for the stalled forward", |r| r["destination"] == format!("127.0.0.1:{stalled}"));
    assert!(cut["bytes_in"].as_u64().unwrap() > 0, "{cut}");
    assert!(jumpbox.log().contains("read nothing for 2s"), "{}", jumpbox.log());
    let _ = client.kill();
    let _ = client.wait();
    let _ = writer.join();
}

#[test]
fn a_connection_with_nothing_open_is_closed_at_the_idle_timeout_despite_keepalives() {
    let site = Site::new();
    let jumpbox = JumpBox::start(&site, "idle_timeout: 2\nkeepalive_interval: 1\n");
    let started = Instant::now();
    let out = site.run(&["-N", "-p", &jumpbox.port.to_string(), "127.0.0.1"]);
    let lasted = started.elapsed();
    assert!(lasted >= Duration::from_secs(2) && lasted < Duration::from_secs(10), "ssh -N lasted {lasted:?}");
    site.await_audit("for the idle connection", |r| {
        r["event"] == "connection" && r["user"] == "root" && r["duration_ms"].as_u64().unwrap() >= 2000
    });
    drop(out);
}
