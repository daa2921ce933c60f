//! halite-dns with the stock clients the VMs and their admins use: `dig` (BIND) and `kdig`
//! (Knot), over UDP and TCP; a zone file edited under the running server; hostile bytes.

mod common;

use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{halite, query, seen, udp, Server};
use domain::base::iana::Rtype;

fn zone(serial: u32, web1: &str) -> String {
    let mut text = format!(
        "$ORIGIN dev.wpdn.\n$TTL 300\n@ IN SOA salt hostmaster ( {serial} 3600 600 604800 300 )\n@ IN NS salt\nsalt IN A 10.0.0.2\nweb1 IN A {web1}\n"
    );
    for i in 0..20 {
        text += &format!("big IN TXT \"{i:02}-{}\"\n", "x".repeat(90));
    }
    text
}

/// Replaces `path`'s content the way Salt's file.managed does: a new file renamed over it.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Runs `tool` (dig or kdig) against the server and returns its stdout.
fn run(tool: &str, server: &Server, args: &[&str]) -> String {
    let out = Command::new(tool)
        .arg(format!("@{}", server.addr.ip()))
        .arg("-p")
        .arg(server.addr.port().to_string())
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("{tool} is not installed ({e}): tests/run installs bind9-dnsutils and knot-dnsutils")
        });
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn start(dir: &Path) -> Server {
    start_with(dir, "")
}

fn start_with(dir: &Path, extra: &str) -> Server {
    let file = dir.join("dev.wpdn.zone");
    std::fs::write(&file, zone(1, "10.0.0.11")).unwrap();
    halite(dir, &format!("listen: ['127.0.0.1:PORT']\nzones:\n  dev.wpdn: {}\nforwarders: []\n{extra}", file.display()))
}

/// Whether the server has closed `stream` (EOF or reset) within `wait`.
fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    stream.set_read_timeout(Some(wait)).unwrap();
    match std::io::Read::read(stream, &mut [0u8; 1]) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
    }
}

#[test]
fn dig_and_kdig_over_udp_and_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    assert_eq!(run("dig", &server, &["+short", "web1.dev.wpdn", "A"]).trim(), "10.0.0.11");
    assert_eq!(run("kdig", &server, &["+short", "+tcp", "WEB1.dev.wpdn", "A"]).trim(), "10.0.0.11");
    let nx = run("kdig", &server, &["nope.dev.wpdn", "A"]);
    assert!(nx.contains("status: NXDOMAIN") && nx.contains("SOA"), "{nx}");
    let refused = run("dig", &server, &["www.example.org", "A"]);
    assert!(refused.contains("status: REFUSED"), "{refused}");
    // Twenty 100-byte TXT records do not fit 1232 bytes: TC, and dig retries over TCP.
    let big = run("dig", &server, &["big.dev.wpdn", "TXT"]);
    assert!(big.contains("Truncated, retrying in TCP mode"), "{big}");
    assert!(big.contains("ANSWER: 20,"), "{big}");
    let notcp = run("dig", &server, &["+ignore", "big.dev.wpdn", "TXT"]);
    assert!(notcp.contains(" tc") && notcp.contains("ANSWER: 0,"), "{notcp}");
    // EDNS version 1: BADVERS, and dig retries at version 0.
    let badvers = run("dig", &server, &["+edns=1", "web1.dev.wpdn"]);
    assert!(badvers.contains("BADVERS, retrying with EDNS version 0") && badvers.contains("10.0.0.11"), "{badvers}");
    // Pipelined over one TCP connection, kdig's +keepopen: both answered, in order.
    let two = run("kdig", &server, &["+tcp", "+keepopen", "+short", "web1.dev.wpdn", "A", "salt.dev.wpdn", "A"]);
    assert_eq!(two.split_whitespace().collect::<Vec<_>>(), vec!["10.0.0.11", "10.0.0.2"]);
}

#[test]
fn an_edited_zone_is_served_at_once_and_a_broken_edit_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let file = dir.path().join("dev.wpdn.zone");
    let web1 = || run("dig", &server, &["+short", "web1.dev.wpdn", "A"]).trim().to_string();
    assert_eq!(web1(), "10.0.0.11");

    replace(&file, &zone(2, "10.0.0.12"));
    let edited = Instant::now();
    while web1() != "10.0.0.12" {
        assert!(edited.elapsed() < Duration::from_secs(10), "the edit is not served:\n{}", server.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("an edit was served {:?} after the file changed", edited.elapsed());
    server.wait_log("zone reloaded", Duration::from_secs(5));

    // A broken edit (line 6): logged with file and line, the last good zone still served.
    replace(&file, &zone(3, "10.0.0.300"));
    server.wait_log("dev.wpdn.zone:6: ", Duration::from_secs(10));
    assert!(server.log().contains("the last version that loaded is still served"));
    assert_eq!(web1(), "10.0.0.12");
    // Fixed again: served.
    replace(&file, &zone(4, "10.0.0.13"));
    let fixed = Instant::now();
    while web1() != "10.0.0.13" {
        assert!(fixed.elapsed() < Duration::from_secs(10), "the fix is not served:\n{}", server.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    // SIGHUP re-reads every zone.
    unsafe { libc::kill(server.child.id() as i32, libc::SIGHUP) };
    server.wait_log("SIGHUP: re-reading every zone", Duration::from_secs(5));
}

#[test]
fn hostile_bytes_are_answered_or_dropped_and_the_server_keeps_answering() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with(dir.path(), "tcp_max_connections: 20\ntcp_idle_timeout: 3\n");
    // A TCP length prefix of 65,535 and nothing after it, and 24 idle connections: the cap
    // (20) closes the last 5 at once, the idle timeout (3 s) the rest.
    let mut stalled = TcpStream::connect(server.addr).unwrap();
    stalled.write_all(&[0xff, 0xff]).unwrap();
    let stalled_at = Instant::now();
    std::thread::sleep(Duration::from_millis(100));
    let mut idle: Vec<TcpStream> = (0..24).map(|_| TcpStream::connect(server.addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    // Checked quickly (24 × 10 ms), well inside the idle timeout.
    let refused = idle.iter_mut().map(|s| closed_within(s, Duration::from_millis(10))).filter(|&closed| closed).count();
    assert_eq!(refused, 5, "connections past tcp_max_connections closed at once");
    server.wait_log("TCP connections open (tcp_max_connections)", Duration::from_secs(5));

    // Junk datagrams meanwhile: shorter than a header, responses, random bytes.
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let good = query("web1.dev.wpdn.", Rtype::A, None);
    let mut response = good.clone();
    response[2] |= 0x80;
    let mut seed = 1u64;
    let mut junk: Vec<Vec<u8>> = vec![vec![], vec![0; 5], response, vec![0xff; 600]];
    for len in [12, 13, 40, 512, 1500] {
        junk.push(
            (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                    (seed >> 56) as u8
                })
                .collect(),
        );
    }
    for _ in 0..50 {
        for datagram in &junk {
            socket.send_to(datagram, server.addr).unwrap();
        }
    }
    // A compression loop in the question: FORMERR. UDP answers while TCP is full.
    let mut looped = good[..12].to_vec();
    looped.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    assert_eq!(seen(&udp(server.addr, &looped)).rcode, "FORMERR");
    assert_eq!(seen(&udp(server.addr, &good)).answer, vec!["web1.dev.wpdn. 300 A 10.0.0.11"]);
    // The same from 40 more (forgeable) source addresses: the log budget for dropped UDP
    // queries is one for all sources.
    for i in 1..=40u8 {
        let forged = UdpSocket::bind(("127.0.1.".to_string() + &i.to_string() + ":0").as_str()).unwrap();
        for _ in 0..3 {
            forged.send_to(&junk[2], server.addr).unwrap();
        }
    }
    // Over 200 dropped datagrams from 41 addresses: at most 5 lines, the rest counted.
    std::thread::sleep(Duration::from_millis(200));
    let dropped = server.log().matches(" not answered: ").count();
    assert!((1..=5).contains(&dropped), "{dropped} lines for dropped queries:\n{}", server.log());

    // The idle timeout frees every slot; TCP answers again.
    assert!(closed_within(&mut stalled, Duration::from_secs(10)), "the stalled connection stays open");
    let held = stalled_at.elapsed();
    eprintln!("a stalled TCP connection was closed after {held:?}");
    assert!(held >= Duration::from_millis(2900), "closed before the idle timeout: {held:?}");
    for s in &mut idle {
        assert!(closed_within(s, Duration::from_secs(5)));
    }
    assert_eq!(run("dig", &server, &["+short", "+tcp", "web1.dev.wpdn"]).trim(), "10.0.0.11");
}

#[test]
fn started_as_root_it_runs_as_the_configured_user() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("not root: the privilege drop cannot be exercised here (CI runs as root)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = start_with(dir.path(), "user: nobody\n");
    server.wait_log("running as the configured user", Duration::from_secs(5));
    // Every thread (the runtime's workers exist before the drop), uid and gid alike.
    let tasks = std::fs::read_dir(format!("/proc/{}/task", server.child.id())).unwrap();
    let mut threads = 0;
    for task in tasks {
        let status = std::fs::read_to_string(task.unwrap().path().join("status")).unwrap();
        for field in ["Uid:", "Gid:"] {
            let ids = status.lines().find(|l| l.starts_with(field)).unwrap().to_string();
            assert!(ids.split_whitespace().skip(1).all(|id| id == "65534"), "{ids}");
        }
        let groups = status.lines().find(|l| l.starts_with("Groups:")).unwrap().to_string();
        assert!(groups.split_whitespace().skip(1).all(|g| g == "65534"), "{groups}");
        threads += 1;
    }
    assert!(threads > 1, "the runtime's threads were checked too");
    assert_eq!(run("dig", &server, &["+short", "web1.dev.wpdn"]).trim(), "10.0.0.11");
    // A user that does not exist fails at start-up, naming the key.
    let out = Command::new(env!("CARGO_BIN_EXE_halite-dns"))
        .arg("-c")
        .arg({
            let config = dir.path().join("bad.yaml");
            std::fs::write(&config, "listen: ['127.0.0.1:1']\nuser: no-such-user-here\n").unwrap();
            config
        })
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("user: no user \"no-such-user-here\""), "{out:?}");
}

#[test]
fn past_rate_limit_replies_are_dropped_or_truncated_and_tcp_still_answers() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with(dir.path(), "rate_limit: 50\nrate_limit_slip: 2\n");
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let q = query("web1.dev.wpdn.", Rtype::A, Some((1232, 0, false)));
    // 300 queries at once, as a flood forging this address would send them.
    for _ in 0..300 {
        socket.send_to(&q, server.addr).unwrap();
    }
    let (mut full, mut slipped, mut bytes) = (0, 0, 0);
    let mut buf = vec![0u8; 65_535];
    while let Ok(len) = socket.recv(&mut buf) {
        bytes += len;
        let reply = seen(&buf[..len]);
        if reply.flags.contains("tc") {
            assert!(reply.answer.is_empty() && len < 60, "a slip is the question alone: {reply:?}");
            slipped += 1;
        } else {
            full += 1;
        }
    }
    eprintln!("300 queries: {full} answered, {slipped} truncated, {bytes} bytes sent");
    // The bucket's burst (50, less the start-up probe's query) and what refills while the
    // flood lasts; every second reply past it slips.
    assert!((45..=80).contains(&full), "{full} full replies");
    assert!((100..=130).contains(&slipped), "{slipped} truncated replies");
    server.wait_log("over rate_limit: dropped", Duration::from_secs(5));
    // Over TCP, where no address can be forged, the answer is whole.
    assert_eq!(run("dig", &server, &["+tcp", "+short", "web1.dev.wpdn"]).trim(), "10.0.0.11");
}
