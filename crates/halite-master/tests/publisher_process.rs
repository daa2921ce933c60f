//! The publisher child process: killed, it is restarted and serves subscribers again; a
//! master that stops, gracefully or killed, takes it down.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::Master;
use halite_zmtp::{Connection, Event, SocketType};

/// Processes whose parent is `pid`.
fn children(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .ok()
                .and_then(|stat| stat.rsplit(')').next()?.split_whitespace().nth(1)?.parse::<u32>().ok())
                == Some(pid)
        })
        .collect()
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| !matches!(stat.rsplit(')').next().and_then(|s| s.split_whitespace().next()), Some("Z")))
}

fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A ZMTP SUB handshake with whatever listens on `port`.
fn publisher_answers(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut conn = Connection::new(SocketType::Sub, b"", 1 << 20);
    let mut buf = [0u8; 1024];
    for _ in 0..10 {
        if s.write_all(&conn.take_output()).is_err() {
            return false;
        }
        let n = match s.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        conn.receive(&buf[..n]);
        while let Ok(Some(event)) = conn.next_event() {
            if let Event::Open { socket_type, .. } = event {
                return socket_type == SocketType::Pub;
            }
        }
    }
    false
}

fn kill(signal: &str, pid: u32) {
    Command::new("kill").arg(signal).arg(pid.to_string()).status().expect("kill");
}

#[test]
fn a_killed_publisher_is_restarted_and_the_master_takes_it_down() {
    let mut master = Master::start(&[]);
    let pid = master.pid().expect("master pid");
    let first = wait_for("the publisher process", Duration::from_secs(10), || children(pid).first().copied());
    assert!(publisher_answers(master.publish_port), "the publisher speaks ZMTP as a PUB");

    kill("-KILL", first);
    let second = wait_for("a new publisher process", Duration::from_secs(15), || {
        children(pid).into_iter().find(|&c| c != first && alive(c))
    });
    wait_for("the new publisher to listen", Duration::from_secs(15), || {
        publisher_answers(master.publish_port).then_some(())
    });
    master.wait_log_contains("publisher process restarted", Duration::from_secs(5));

    // SIGTERM: the master closes the pipe and waits for its publisher.
    assert!(master.stop(), "the master exits by itself on SIGTERM");
    wait_for("the publisher to exit with its master", Duration::from_secs(10), || (!alive(second)).then_some(()));

    // SIGKILL: the publisher reads the end of its pipe and exits on its own.
    master.restart();
    let pid = master.pid().expect("master pid");
    let orphan = wait_for("the publisher process", Duration::from_secs(10), || children(pid).first().copied());
    kill("-KILL", pid);
    wait_for("the publisher to exit after its master was killed", Duration::from_secs(10), || {
        (!alive(orphan)).then_some(())
    });
}
