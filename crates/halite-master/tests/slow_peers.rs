//! Slow and vanishing peers: subscribers that stop reading their publish socket,
//! connections that never finish the ZMTP handshake (silent, or halfway through the
//! greeting), requests cut off in the middle of a frame, and requests abandoned before their
//! reply. While they go on, the honest minions (the swarm) get every job and return every
//! result, and the memory of the master and its publisher stays bounded: `pub_hwm` caps what
//! a subscriber that does not read can make the publisher hold, the socket budgets the rest.
//! The jobs' latency with and without them is printed, not asserted.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{cached_returners, swarm_config, swarm_keys_dir, Master};
use halite_swarm::{keys, Protocol, Swarm};
use halite_zmtp::{Connection, Event, SocketType};

const MINIONS: usize = 100;
/// Subscribers that never read what is published to them.
const STALLED: usize = 30;
/// Connections per port that never finish the handshake, half of them silent, half stopping
/// in the middle of the greeting.
const UNFINISHED: usize = 100;
/// Rounds of a large publish to one minion and a `test.ping` to all.
const ROUNDS: usize = 16;
/// The large publish's argument. Without `zmq_filtering` every subscriber is sent every
/// publish, so each stalled subscriber is sent 16 MiB, more than the kernel buffers of a
/// loopback connection hold (up to 4 MiB sending and 6 MiB receiving); only the one
/// minion it targets returns it (a minion's return carries its `fun_args`).
const ARG_BYTES: usize = 1 << 20;
const PUB_HWM: usize = 4;

/// Publishes `test.ping` with `args` to `tgt` and waits until the returns of all `expected`
/// minions are stored; the seconds that took. A publish sent while a subscriber is still
/// joining can miss it (as with real minions), so the first job of a run is retried.
fn job(master: &Master, tgt: &str, args: &[&str], expected: usize, tries: usize) -> f64 {
    for _ in 0..tries {
        let started = Instant::now();
        let (jid, _) = master.publish_with(tgt, "test.ping", args);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if cached_returners(master, &jid).len() == expected {
                return started.elapsed().as_secs_f64();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    panic!("a job to {tgt} did not reach its {expected} minions:\n{}", master.log());
}

/// Resident KiB of `pid` and of its children (the master and its publisher process).
fn tree_rss_kib(pid: u32) -> u64 {
    let rss = |pid: &str| -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).unwrap_or("0");
        line.trim().trim_end_matches("kB").trim().parse().unwrap_or(0)
    };
    let children = std::fs::read_dir("/proc").into_iter().flatten().flatten().filter_map(|entry| {
        let name = entry.file_name().into_string().ok()?;
        let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
        let parent = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse::<u32>().ok()?;
        (parent == pid).then_some(name)
    });
    rss(&pid.to_string()) + children.map(|child| rss(&child)).sum::<u64>()
}

/// A connection of type `ours` through the handshake.
fn handshaken(port: u16, ours: SocketType) -> (TcpStream, Connection) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut conn = Connection::new(ours, b"", 1 << 20);
    let mut buf = [0u8; 4096];
    loop {
        s.write_all(&conn.take_output()).expect("write");
        while let Some(event) = conn.next_event().expect("zmtp") {
            if let Event::Open { .. } = event {
                s.write_all(&conn.take_output()).expect("write");
                return (s, conn);
            }
        }
        let n = s.read(&mut buf).expect("read");
        assert!(n > 0, "closed during the handshake");
        conn.receive(&buf[..n]);
    }
}

/// Until `stop`: requests cut off in the middle of a 1 MiB frame, and whole requests whose
/// asker leaves before the reply. Returns how many of each it sent.
fn vanishing_requesters(port: u16, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(usize, usize)> {
    std::thread::spawn(move || {
        let (mut cut, mut abandoned) = (0, 0);
        while !stop.load(Ordering::Relaxed) {
            let (mut s, _) = handshaken(port, SocketType::Req);
            // The empty delimiter, then a long frame announcing 1 MiB of which 64 KiB come.
            let mut partial = vec![0x01, 0x00, 0x02];
            partial.extend_from_slice(&(1u64 << 20).to_be_bytes());
            partial.extend_from_slice(&[0x5a; 64 << 10]);
            let _ = s.write_all(&partial);
            drop(s);
            cut += 1;
            let (mut s, mut conn) = handshaken(port, SocketType::Req);
            conn.send(&[b"", b"\x81\xa3enc\xa5clear"]);
            let _ = s.write_all(&conn.take_output());
            drop(s);
            abandoned += 1;
        }
        (cut, abandoned)
    })
}

#[test]
fn slow_and_vanishing_peers_cost_the_honest_minions_nothing_and_memory_stays_bounded() {
    let pub_hwm = format!("pub_hwm: {PUB_HWM}");
    let master = Master::start(&["auto_accept: True", &pub_hwm]);
    let keys = keys::load_or_generate(&swarm_keys_dir(), 0..MINIONS, 2).expect("swarm keys");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let config = swarm_config(&master, "honest", Protocol::V3, Duration::from_secs(10));
    let swarm = runtime.block_on(async { Swarm::start(config, keys) });
    assert!(runtime.block_on(swarm.wait_ready(Duration::from_secs(120))), "{}", swarm.report().0);

    let arg = "x".repeat(ARG_BYTES);
    // One round: the large publish, whose one return is waited for, then a ping to all,
    // whose time is what the honest minions see.
    let round = || {
        job(&master, "honest0", &[arg.as_str()], 1, 1);
        job(&master, "*", &[], MINIONS, 1)
    };
    job(&master, "*", &[], MINIONS, 3);
    let pid = master.pid().expect("the master runs");
    let quiet: Vec<f64> = (0..3).map(|_| round()).collect();
    let rss_before = tree_rss_kib(pid);

    // Subscribers that subscribe to everything and never read.
    let stalled: Vec<TcpStream> = (0..STALLED)
        .map(|_| {
            let (mut s, mut conn) = handshaken(master.publish_port, SocketType::Sub);
            conn.subscribe(b"");
            s.write_all(&conn.take_output()).expect("subscribe");
            s
        })
        .collect();
    // Connections that never finish the handshake, on both ports.
    let mut unfinished = Vec::new();
    for port in [master.ret_port, master.publish_port] {
        for i in 0..UNFINISHED {
            let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            if i % 2 == 1 {
                // The first half of a ZMTP 3 greeting: signature and major version.
                s.write_all(&[0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 3]).expect("greeting");
            }
            unfinished.push(s);
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let requesters = vanishing_requesters(master.ret_port, stop.clone());

    let (mut busy, mut most_rss) = (Vec::new(), 0);
    for _ in 0..ROUNDS {
        busy.push(round());
        most_rss = most_rss.max(tree_rss_kib(pid));
    }
    stop.store(true, Ordering::Relaxed);
    let (cut, abandoned) = requesters.join().expect("requesters");

    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    eprintln!(
        "test.ping to {MINIONS} minions after a {} KiB publish: median {:.3} s alone, {:.3} s (most {:.3} s) \
         beside {STALLED} stalled subscribers, {} unfinished handshakes, {cut} requests cut mid-frame and \
         {abandoned} abandoned; master + publisher RSS {} MiB before, at most {} MiB during",
        ARG_BYTES >> 10,
        median(&mut quiet.clone()),
        median(&mut busy.clone()),
        busy.iter().cloned().fold(0.0, f64::max),
        unfinished.len(),
        rss_before >> 10,
        most_rss >> 10,
    );
    // What the stalled subscribers may make the publisher hold: pub_hwm publishes each,
    // shared between them (a publish is encoded once), 4 MiB; the master stores a 1 MiB job
    // and return a round. The 64 MiB bound is far below the 16 × 30 MiB the stalled
    // subscribers were sent, and the 1 MiB frames announced by each cut request.
    assert!(
        most_rss < rss_before + (64 << 10),
        "master + publisher grew from {} to {} MiB beside peers that do not read",
        rss_before >> 10,
        most_rss >> 10
    );
    assert!(
        master.log_count("pub_hwm publishes behind") > 0,
        "no stalled subscriber reached pub_hwm:\n{}",
        master.log()
    );
    assert!(cut > 0 && abandoned > 0, "the vanishing requesters ran");
    assert!(master.log_count("panicked") == 0, "{}", master.log());
    drop((stalled, unfinished));
    runtime.block_on(swarm.stop());
}
