//! The master's address book (`dns_address_book`) read by halite-dns: real minions are
//! accepted and their addresses appear in the zone (A and PTR) as `dig` sees it; a minion's
//! key deleted with `salt-key`, its names go; the zone's serial grows with each change.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{start_minions, Dns, Master};
use halite_testkit::{wait_until, SaltVersion};

/// The minions report their addresses through the mine entry the site uses
/// (`network.ip_addrs`), here read from a grain so the test does not depend on the host's
/// interfaces: one address in the zone's network, one outside it, which must not appear.
const MINE: &str = "mine_functions: {network.ip_addrs: {mine_function: grains.get, key: test_addrs}}";

const ZONE: &str =
    "$ORIGIN dev.wpdn.\n$TTL 300\n@ SOA salt hostmaster 1 3600 600 604800 300\n@ NS salt\nsalt A 10.77.0.2\n";
const REVERSE: &str = "$ORIGIN 77.10.in-addr.arpa.\n$TTL 300\n@ SOA salt.dev.wpdn. hostmaster.dev.wpdn. 1 3600 600 604800 300\n@ NS salt.dev.wpdn.\n";

fn start_dns(dir: &Path, book: &Path) -> Dns {
    let port = common::free_port();
    std::fs::write(dir.join("dev.wpdn.zone"), ZONE).unwrap();
    std::fs::write(dir.join("77.10.zone"), REVERSE).unwrap();
    let config = format!(
        "listen: ['127.0.0.1:{port}']\nzones:\n  dev.wpdn: {d}/dev.wpdn.zone\n  77.10.in-addr.arpa: {d}/77.10.zone\n\
         minion_addresses: {b}\nminions:\n  dev.wpdn: [10.77.0.0/16]\n  77.10.in-addr.arpa: [10.77.0.0/16]\n",
        d = dir.display(),
        b = book.display()
    );
    std::fs::write(dir.join("dns.yaml"), config).unwrap();
    Dns::spawn(&dir.join("dns.yaml"), port, &dir.join("dns.log"))
}

/// `dig +short` against the server.
fn dig(dns: &Dns, name: &str, rtype: &str) -> String {
    dns.dig(name, rtype)
}

fn serial(dns: &Dns) -> u32 {
    let soa = dig(dns, "dev.wpdn", "SOA");
    soa.split_whitespace().nth(2).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no SOA: {soa:?}"))
}

#[test]
fn accepted_minions_are_in_the_zone_and_a_deleted_key_takes_them_out() {
    let dir = tempfile::tempdir().unwrap();
    let book = dir.path().join("book/minion-addresses");
    let master = Master::start(&["auto_accept: True", &format!("dns_address_book: {}", book.display())]);
    let dns = start_dns(dir.path(), &book);
    let dns_log = || std::fs::read_to_string(dir.path().join("dns.log")).unwrap_or_default();
    assert!(wait_until(Duration::from_secs(10), || dig(&dns, "salt.dev.wpdn", "A") == "10.77.0.2"), "{}", dns_log());
    let before = serial(&dns);

    let _minions = start_minions(
        &master,
        &[("web1", SaltVersion::V3007, &["web"]), ("db1", SaltVersion::V3006, &["db"])],
        |spec| {
            let addrs = if spec.id == "web1" { "[10.77.0.5, 192.0.2.9]" } else { "[10.77.0.6]" };
            spec.with_config(MINE).with_config(&format!("grains: {{test_addrs: {addrs}}}"))
        },
    );
    let both = || dig(&dns, "web1.dev.wpdn", "A") == "10.77.0.5" && dig(&dns, "db1.dev.wpdn", "A") == "10.77.0.6";
    assert!(
        wait_until(Duration::from_secs(60), both),
        "the minions never appeared in the zone\nbook: {:?}\nhalite-dns:\n{}\nmaster:\n{}",
        std::fs::read_to_string(&book),
        dns_log(),
        master.log()
    );
    assert_eq!(dig(&dns, "5.0.77.10.in-addr.arpa", "PTR"), "web1.dev.wpdn.");
    assert_eq!(dig(&dns, "6.0.77.10.in-addr.arpa", "PTR"), "db1.dev.wpdn.");
    // The address outside the zone's network is in the book, not in the zone.
    assert!(std::fs::read_to_string(&book).unwrap().contains("192.0.2.9"));
    assert_eq!(dig(&dns, "web1.dev.wpdn", "ANY"), "10.77.0.5");
    let added = serial(&dns);
    assert!(added > before, "serial {before} -> {added}");

    let deleted = master.salt_key(&["-d", "web1", "-y"]);
    assert!(deleted.status.success(), "{}", String::from_utf8_lossy(&deleted.stderr));
    let gone = || dig(&dns, "web1.dev.wpdn", "A").is_empty() && dig(&dns, "5.0.77.10.in-addr.arpa", "PTR").is_empty();
    assert!(wait_until(Duration::from_secs(20), gone), "web1 is still served\n{}", dns_log());
    assert_eq!(dig(&dns, "db1.dev.wpdn", "A"), "10.77.0.6");
    assert!(serial(&dns) > added);
}
