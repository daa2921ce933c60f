//! Zone transfers: AXFR from halite-dns compared with Knot's of the same zone file; only the
//! listed secondaries get one; and Knot, configured as halite's secondary, follows an edit
//! through halite's NOTIFY and a transfer.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{free_port, halite, knot, knot_with, query, seen, tcp_messages, udp, Server};
use domain::base::iana::Rtype;

fn zone(serial: u32, web1: &str) -> String {
    let mut text = format!(
        "$ORIGIN dev.wpdn.\n$TTL 300\n@ SOA salt hostmaster {serial} 3600 600 604800 300\n@ NS salt\n@ MX 10 mail\n\
         salt A 10.0.0.2\nweb1 A {web1}\nmail A 10.0.0.25\nwww CNAME web1\n*.apps A 10.0.0.40\nx.deep TXT \"deep\"\n"
    );
    // Enough records for several transfer messages.
    for i in 0..400 {
        text += &format!("vm{i} A 10.0.{}.{}\n", i / 250, i % 250);
        text += &format!("vm{i} TXT \"{}\"\n", "t".repeat(60));
    }
    text
}

/// Every record of a transfer, as a set, and the number of SOAs seen (an AXFR has two).
fn records(messages: &[Vec<u8>]) -> (BTreeSet<String>, usize) {
    let mut all = BTreeSet::new();
    let mut soas = 0;
    for message in messages {
        for line in seen(message).answer {
            soas += usize::from(line.contains(" SOA "));
            all.insert(line);
        }
    }
    (all, soas)
}

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

fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < within, "{what} not within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    start.elapsed()
}

#[test]
fn secondaries_transfer_the_zone_and_follow_its_edits() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dev.wpdn.zone");
    std::fs::write(&file, zone(1, "10.0.0.11")).unwrap();
    let secondary_port = free_port();
    let primary = halite(
        dir.path(),
        &format!(
            "listen: ['127.0.0.1:PORT']\nzones:\n  dev.wpdn: {}\ntransfer:\n  dev.wpdn: ['127.0.0.1:{secondary_port}']\n",
            file.display()
        ),
    );

    // AXFR: the same records as Knot's transfer of the same file, SOA first and last.
    let axfr = query("dev.wpdn.", Rtype::AXFR, None);
    let ours = tcp_messages(primary.addr, &axfr);
    assert!(ours.len() > 1, "a zone of {} records in one message", 800);
    let first = seen(&ours[0]);
    assert_eq!((first.rcode.as_str(), first.flags.as_str()), ("NOERROR", "qr aa"));
    assert!(first.answer.iter().any(|l| l.contains(" SOA ")));
    let reference = knot(dir.path(), &[("dev.wpdn", &file)]);
    let theirs = tcp_messages(reference.addr, &axfr);
    let ((ours, our_soas), (theirs, their_soas)) = (records(&ours), records(&theirs));
    assert_eq!((our_soas, their_soas), (2, 2));
    assert_eq!(ours.len(), 809, "{} records", ours.len());
    assert_eq!(ours, theirs, "halite's AXFR and Knot's hold the same records");

    // Not for others, not over UDP, not below the apex; IXFR over UDP: the SOA alone.
    assert_eq!(seen(&udp(primary.addr, &axfr)).rcode, "NOTIMP");
    let below = tcp_messages(primary.addr, &query("web1.dev.wpdn.", Rtype::AXFR, None));
    assert_eq!(seen(&below[0]).rcode, "NOTAUTH");
    let ixfr = seen(&udp(primary.addr, &query("dev.wpdn.", Rtype::IXFR, None)));
    assert_eq!((ixfr.rcode.as_str(), ixfr.answer.len()), ("NOERROR", 1));
    assert!(ixfr.answer[0].contains(" SOA "));
    let closed_dir = tempfile::tempdir().unwrap();
    let closed = halite(
        closed_dir.path(),
        &format!(
            "listen: ['127.0.0.1:PORT']\nzones:\n  dev.wpdn: {}\ntransfer:\n  dev.wpdn: [10.0.0.3]\n",
            file.display()
        ),
    );
    assert_eq!(seen(&tcp_messages(closed.addr, &axfr)[0]).rcode, "NOTAUTH");
    assert!(dig(&closed, &["dev.wpdn", "AXFR"]).contains("Transfer failed"));

    // Knot as halite's secondary: it transfers the zone at start, then follows an edit
    // through halite's NOTIFY.
    let remote = format!(
        "remote:\n  - id: primary\n    address: {}@{}\nacl:\n  - id: from_primary\n    address: 127.0.0.1\n    action: notify\n",
        primary.addr.ip(),
        primary.addr.port()
    );
    let zones = format!(
        "  - domain: dev.wpdn\n    master: primary\n    acl: from_primary\n    file: {}\n    journal-content: none\n    zonefile-sync: -1\n",
        dir.path().join("secondary.zone").display()
    );
    let secondary = knot_with(dir.path(), secondary_port, &remote, &zones);
    wait_until("the secondary's first transfer", Duration::from_secs(20), || {
        dig(&secondary, &["+short", "web1.dev.wpdn"]).trim() == "10.0.0.11"
    });
    primary.wait_log("zone transfer", Duration::from_secs(5));

    let tmp = file.with_extension("new");
    std::fs::write(&tmp, zone(2, "10.0.0.12")).unwrap();
    std::fs::rename(&tmp, &file).unwrap();
    let followed = wait_until("the secondary following the edit", Duration::from_secs(20), || {
        dig(&secondary, &["+short", "web1.dev.wpdn"]).trim() == "10.0.0.12"
    });
    eprintln!("the secondary served the edit {followed:?} after it was written");
    primary.wait_log("NOTIFY acknowledged", Duration::from_secs(10));
}
