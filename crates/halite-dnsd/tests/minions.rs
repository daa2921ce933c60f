//! The master's address book (`minion_addresses`) merged into the zones listed under
//! `minions:`, as a running halite-dns serves it: the book rewritten under the server, a
//! minion claiming a name the zone file holds, an address two minions claim, one outside the
//! networks, and an unreadable book. (With a real master and minions:
//! halite-master/tests/dns_minions.rs.)

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{halite, query, seen, udp, Server};
use domain::base::iana::Rtype;

const ZONE: &str =
    "$ORIGIN dev.wpdn.\n$TTL 300\n@ SOA salt hostmaster 1 3600 600 604800 300\n@ NS salt\nsalt A 10.77.0.2\n";
const INFRA: &str =
    "$ORIGIN infra.wpdn.\n$TTL 300\n@ SOA ns hostmaster 1 3600 600 604800 300\n@ NS ns\nns A 10.77.0.2\n";
const REVERSE: &str = "$ORIGIN 77.10.in-addr.arpa.\n$TTL 300\n@ SOA salt.dev.wpdn. hostmaster.dev.wpdn. 1 3600 600 604800 300\n@ NS salt.dev.wpdn.\n";

/// Writes the book as the master does: a new file renamed over the old.
fn write_book(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn wait_until(within: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while !ok() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

fn answer(server: &Server, name: &str, rtype: Rtype) -> Vec<String> {
    seen(&udp(server.addr, &query(name, rtype, None))).answer
}

fn serial(server: &Server) -> u32 {
    let soa = answer(server, "dev.wpdn", Rtype::SOA);
    soa[0].split_whitespace().nth(5).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{soa:?}"))
}

#[test]
fn the_book_is_served_and_followed_and_never_overrides_the_zone_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("dev.wpdn.zone"), ZONE).unwrap();
    std::fs::write(d.join("77.10.zone"), REVERSE).unwrap();
    std::fs::write(d.join("infra.zone"), INFRA).unwrap();
    let book = d.join("addresses");
    write_book(
        &book,
        "# by the master\nweb1 10.77.0.5 fd77::5 192.0.2.9\nsalt 10.77.0.99\ndb1 10.77.0.6\ntwin 10.77.0.6\nbad_id 10.77.0.7\n\
         Cased 10.77.0.70\ncased 10.77.0.71\nevil 10.77.0.2\n",
    );
    let server = halite(
        d,
        &format!(
            "listen: ['127.0.0.1:PORT']\nzones:\n  dev.wpdn: {d}/dev.wpdn.zone\n  77.10.in-addr.arpa: {d}/77.10.zone\n  infra.wpdn: {d}/infra.zone\n\
             minion_addresses: {book}\nminions:\n  dev.wpdn: [10.77.0.0/16, 'fd77::/64']\n  77.10.in-addr.arpa: [10.77.0.0/16]\n",
            d = d.display(),
            book = book.display()
        ),
    );
    assert_eq!(answer(&server, "web1.dev.wpdn", Rtype::A), ["web1.dev.wpdn. 300 A 10.77.0.5"]);
    assert_eq!(answer(&server, "WEB1.dev.wpdn", Rtype::AAAA), ["web1.dev.wpdn. 300 AAAA fd77::5"]);
    // The zone file's `salt` stands; the minion's claim is logged, not served.
    assert_eq!(answer(&server, "salt.dev.wpdn", Rtype::A), ["salt.dev.wpdn. 300 A 10.77.0.2"]);
    assert_eq!(
        answer(&server, "5.0.77.10.in-addr.arpa", Rtype::PTR),
        ["5.0.77.10.in-addr.arpa. 300 PTR web1.dev.wpdn."]
    );
    // 10.77.0.6 is db1's and twin's: both have their A, nobody gets the PTR.
    assert_eq!(answer(&server, "twin.dev.wpdn", Rtype::A), ["twin.dev.wpdn. 300 A 10.77.0.6"]);
    assert!(answer(&server, "6.0.77.10.in-addr.arpa", Rtype::PTR).is_empty());
    // The minion that claims `salt`'s name gets neither the name nor its address's PTR.
    assert!(answer(&server, "99.0.77.10.in-addr.arpa", Rtype::PTR).is_empty());
    // One that claims the address of a host in the zone file (the master's) gets its own
    // name, never the host's PTR.
    assert_eq!(answer(&server, "evil.dev.wpdn", Rtype::A), ["evil.dev.wpdn. 300 A 10.77.0.2"]);
    assert!(answer(&server, "2.0.77.10.in-addr.arpa", Rtype::PTR).is_empty());
    // Ids that differ only in case share a name: neither is served.
    assert!(answer(&server, "cased.dev.wpdn", Rtype::A).is_empty());
    assert!(answer(&server, "70.0.77.10.in-addr.arpa", Rtype::PTR).is_empty());
    assert!(seen(&udp(server.addr, &query("bad_id.dev.wpdn", Rtype::A, None))).flags.contains("aa"));
    assert!(answer(&server, "bad_id.dev.wpdn", Rtype::A).is_empty());
    let log = server.log();
    assert!(log.contains("salt.dev.wpdn is in the zone file"), "{log}");
    assert!(log.contains("10.77.0.6 is served at more than one name"), "{log}");
    assert!(log.contains("\"bad_id\" is not a host name"), "{log}");
    assert!(log.contains("all have the name cased.dev.wpdn"), "{log}");
    let first = serial(&server);
    let clock = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as u32;
    assert!((clock - 60..=clock + 60).contains(&first), "a zone with minions takes the clock's serial: {first}");
    // SIGHUP with nothing edited serves nothing new: the serial stays, no NOTIFY goes out.
    unsafe { libc::kill(server.child.id() as i32, libc::SIGHUP) };
    server.wait_log("SIGHUP: re-reading every zone", Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(serial(&server), first);

    // A minion moves and another goes: served within a second, the serial grows.
    write_book(&book, "web1 10.77.0.8\n");
    let moved = || answer(&server, "web1.dev.wpdn", Rtype::A) == ["web1.dev.wpdn. 300 A 10.77.0.8"];
    assert!(wait_until(Duration::from_secs(10), moved), "{}", server.log());
    assert!(answer(&server, "db1.dev.wpdn", Rtype::A).is_empty());
    assert_eq!(
        answer(&server, "8.0.77.10.in-addr.arpa", Rtype::PTR),
        ["8.0.77.10.in-addr.arpa. 300 PTR web1.dev.wpdn."]
    );
    let second = serial(&server);
    assert!(second > first, "{first} -> {second}");

    // A host of another zone file (one without minions) takes that address: the minion's
    // PTR goes, its own name stays.
    write_book(&d.join("infra.zone"), &format!("{INFRA}router A 10.77.0.8\n"));
    let ptr_gone = || answer(&server, "8.0.77.10.in-addr.arpa", Rtype::PTR).is_empty();
    assert!(wait_until(Duration::from_secs(10), ptr_gone), "{}", server.log());
    assert_eq!(answer(&server, "web1.dev.wpdn", Rtype::A), ["web1.dev.wpdn. 300 A 10.77.0.8"]);

    // A book that cannot be read keeps the minions read before.
    std::fs::remove_file(&book).unwrap();
    std::fs::create_dir(&book).unwrap();
    server.wait_log("the minions read before are still served", Duration::from_secs(10));
    assert_eq!(answer(&server, "web1.dev.wpdn", Rtype::A), ["web1.dev.wpdn. 300 A 10.77.0.8"]);
    assert_eq!(serial(&server), second);
    // Reported once, though it is tried again at every poll.
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(server.log().matches("the minions read before are still served").count(), 1);
}
