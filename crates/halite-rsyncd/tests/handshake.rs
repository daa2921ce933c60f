//! A client that trickles its handshake: one byte at a time, each well inside the idle
//! `timeout`, holds a process and a `max connections` slot for as long as it likes unless
//! each handshake phase has an absolute deadline. Both daemons must drop it.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Seconds until the daemon closes a connection that logs in one byte per 400 ms.
fn trickled_login_lasts(d: &Daemon) -> f64 {
    let stream = TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut w = stream;
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("@RSYNCD: "), "{line}");
    w.write_all(b"@RSYNCD: 32.0 md5\nslow\n").unwrap();
    line.clear();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("@RSYNCD: AUTHREQD"), "{line}");
    let started = Instant::now();
    // A response that never ends, one byte at a time.
    while started.elapsed() < Duration::from_secs(20) {
        if w.write_all(b"a").is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(400));
        let mut probe = [0u8; 256];
        w.set_nonblocking(true).unwrap();
        let closed = matches!(reader.get_mut().read(&mut probe), Ok(0));
        w.set_nonblocking(false).unwrap();
        if closed {
            break;
        }
    }
    started.elapsed().as_secs_f64()
}

#[test]
fn a_login_trickled_byte_by_byte_is_dropped_at_the_handshake_deadline() {
    if !rsync_available() {
        eprintln!("rsync is not installed: skipped (tests/install-rsync.sh installs it)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("m")).unwrap();
    std::fs::write(tmp.path().join("secrets"), "u:p\n").unwrap();
    let config = format!(
        "use chroot = no\nlock file = @DIR@/lock\n[slow]\n    path = {}\n    timeout = 3\n    \
         auth users = u\n    secrets file = {}\n    strict modes = no\n",
        tmp.path().join("m").display(),
        tmp.path().join("secrets").display()
    );
    for server in [Server::Halite, Server::Reference] {
        let dir = tmp.path().join(format!("{server:?}"));
        std::fs::create_dir_all(&dir).unwrap();
        let d = Daemon::start(server, &config, &dir);
        let lasted = trickled_login_lasts(&d);
        // The module's `timeout = 3` bounds the login phase: a byte every 400 ms never
        // trips the idle timeout, only the deadline.
        assert!((2.5..10.0).contains(&lasted), "{server:?} held the trickled login for {lasted:.1} s");
    }
}
