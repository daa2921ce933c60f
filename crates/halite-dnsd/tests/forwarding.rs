//! halite-dns as the VMs' resolver: names outside its zones forwarded to a second server (a
//! Knot started by the test, standing for the upstream resolvers), answers cached for their
//! TTL (negative ones for the SOA's), SERVFAIL when every forwarder fails, TCP when the
//! forwarder's answer is truncated, and REFUSED for clients outside `allow_recursion`.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{free_port, halite, knot, Server};

const UPSTREAM: &str =
    "$ORIGIN example.org.\n$TTL 60\n@ SOA ns h 1 3600 600 86400 30\n@ NS ns\nns A 192.0.2.1\nwww A 192.0.2.80\n";

const LOCAL: &str = "$ORIGIN dev.wpdn.\n$TTL 300\n@ SOA salt h 1 3600 600 86400 300\n@ NS salt\nsalt A 10.0.0.2\n";

fn dig(server: &Server, args: &[&str]) -> String {
    let out = Command::new("dig")
        .arg(format!("@{}", server.addr.ip()))
        .arg("-p")
        .arg(server.addr.port().to_string())
        .args(args)
        .output()
        .expect("dig is installed (tests/install-dns-tools.sh)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn names_outside_the_zones_are_forwarded_cached_and_refused_to_strangers() {
    let dir = tempfile::tempdir().unwrap();
    let upstream_zone = dir.path().join("example.org.zone");
    let mut text = UPSTREAM.to_string();
    for i in 0..20 {
        text += &format!("big TXT \"{i:02}-{}\"\n", "y".repeat(90));
    }
    std::fs::write(&upstream_zone, text).unwrap();
    let local_zone = dir.path().join("dev.wpdn.zone");
    std::fs::write(&local_zone, LOCAL).unwrap();
    let mut upstream = knot(dir.path(), &[("example.org", &upstream_zone)]);
    // A forwarder that is not there comes first: the question passes to the next.
    let dead = free_port();
    let server = halite(
        dir.path(),
        &format!(
            "listen: ['127.0.0.1:PORT']\nzones:\n  dev.wpdn: {}\nforwarders: ['127.0.0.1:{dead}', '{}']\n",
            local_zone.display(),
            upstream.addr
        ),
    );

    let www = dig(&server, &["www.example.org", "A"]);
    assert!(www.contains("status: NOERROR") && www.contains("192.0.2.80"), "{www}");
    assert!(www.contains("flags: qr rd ra;"), "recursion available, not authoritative: {www}");
    let nx = dig(&server, &["nope.example.org", "A"]);
    assert!(nx.contains("status: NXDOMAIN") && nx.contains("SOA"), "{nx}");
    // The local zone is still answered by halite itself.
    let salt = dig(&server, &["salt.dev.wpdn", "A"]);
    assert!(salt.contains("flags: qr aa rd;") && salt.contains("10.0.0.2"), "{salt}");
    // Twenty 100-byte TXT records: the forwarder's UDP answer is truncated, asked again over
    // TCP; the client's is too, and dig asks again over TCP.
    let big = dig(&server, &["big.example.org", "TXT"]);
    assert!(big.contains("Truncated, retrying in TCP mode") && big.contains("ANSWER: 20,"), "{big}");
    server.wait_log(&format!("forwarder 127.0.0.1:{dead}"), Duration::from_secs(5));

    // The upstream goes away: what is cached is still answered, with its TTL aged.
    std::thread::sleep(Duration::from_millis(1100));
    upstream.stop();
    let cached = dig(&server, &["+noall", "+answer", "www.example.org", "A"]);
    let ttl: u32 = cached.split_whitespace().nth(1).and_then(|t| t.parse().ok()).unwrap_or(0);
    assert!((1..60).contains(&ttl), "served from the cache with an aged TTL: {cached}");
    let nx = dig(&server, &["nope.example.org", "A"]);
    assert!(nx.contains("status: NXDOMAIN"), "the negative answer is cached: {nx}");
    // Not cached, and no forwarder left: SERVFAIL.
    let failed = dig(&server, &["+tries=1", "+time=10", "other.example.org", "A"]);
    assert!(failed.contains("status: SERVFAIL"), "{failed}");

    // A client outside allow_recursion gets REFUSED; the zones are still answered.
    let strict_dir = tempfile::tempdir().unwrap();
    let strict = halite(
        strict_dir.path(),
        &format!(
            "listen: ['127.0.0.1:PORT']\nzones:\n  dev.wpdn: {}\nforwarders: ['{}']\nallow_recursion: [10.0.0.0/8]\n",
            local_zone.display(),
            upstream.addr
        ),
    );
    assert!(dig(&strict, &["www.example.org", "A"]).contains("status: REFUSED"));
    assert!(dig(&strict, &["salt.dev.wpdn", "A"]).contains("10.0.0.2"));
}

/// The server's resident memory, in MiB.
fn rss_mib(server: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .expect("a VmRSS line");
    kib / 1024
}

#[test]
fn a_flood_of_new_names_for_a_silent_forwarder_holds_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let local_zone = dir.path().join("dev.wpdn.zone");
    std::fs::write(&local_zone, LOCAL).unwrap();
    // A forwarder that takes every question and answers none: each waits its full timeout.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let server = halite(
        dir.path(),
        &format!(
            "listen: ['127.0.0.1:PORT']\nzones:\n  dev.wpdn: {}\nforwarders: ['{}']\nrate_limit: 0\n",
            local_zone.display(),
            silent.local_addr().unwrap()
        ),
    );
    let before = rss_mib(&server);
    // Names never asked before, as fast as one socket sends them, for three seconds: the
    // UDP threads take them faster than the runtime answers, and the questions handed to it
    // are bounded (resolver::MAX_PENDING), the rest answered SERVFAIL at once.
    let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let start = std::time::Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < Duration::from_secs(3) {
        let query = common::query(&format!("n{sent}.example.org"), domain::base::iana::Rtype::A, None);
        let _ = client.send_to(&query, server.addr);
        sent += 1;
    }
    let after = rss_mib(&server);
    eprintln!("RSS {before} -> {after} MiB after {sent} questions in 3 s");
    assert!(after < before + 20, "RSS {before} -> {after} MiB after {sent} questions");
    let salt = dig(&server, &["+tries=1", "+time=2", "salt.dev.wpdn", "A"]);
    assert!(salt.contains("10.0.0.2"), "the zone is still answered: {salt}");
    server.wait_log("forwarded questions wait already", Duration::from_secs(5));
}
