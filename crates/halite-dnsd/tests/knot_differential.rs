//! halite-dns against Knot DNS, the reference: the same zone file served by both, a corpus
//! of a few thousand queries (names that exist, are missing, match a wildcard, sit under a
//! delegation or an empty non-terminal; every record type; random case; EDNS sizes, the DO
//! bit, EDNS version 1; UDP and TCP), and every reply compared: rcode, flags, the question
//! as echoed, each section as a set, and the OPT record. The zone has an `$INCLUDE` (without
//! a final newline), an RRset whose TTLs differ and a wildcard owning NS.

mod common;

use std::collections::BTreeMap;

use common::{halite, knot, query, seen, tcp, udp};
use domain::base::iana::Rtype;

const ZONE: &str = r#"$ORIGIN example.wpdn.
$TTL 300
@            IN SOA  ns1 hostmaster ( 2026120501 7200 3600 1209600 120 )
             IN NS   ns1
             IN NS   ns2.elsewhere.org.
             IN MX   10 mail
             IN MX   20 mail2.elsewhere.org.
             IN TXT  "v=spf1 mx -all"
             IN CAA  0 issue "letsencrypt.org"
ns1          IN A    192.0.2.53
ns1          IN AAAA 2001:db8::53
mail         IN A    192.0.2.25
www      60  IN A    192.0.2.1
www      60  IN A    192.0.2.2
www          IN AAAA 2001:db8::1
www          IN TXT  "hello" "world"
www          IN HINFO "PC" "Linux"
Alias        IN CNAME www
chain        IN CNAME alias
away         IN CNAME www.elsewhere.org.
dangling     IN CNAME nothing
loop1        IN CNAME loop2
loop2        IN CNAME loop1
*.wild       IN A    192.0.2.99
*.wild       IN TXT  "wild card"
*.cwild      IN CNAME www
x.y.deep     IN A    192.0.2.7
sub          IN NS   ns.sub
sub          IN NS   ns.other.org.
ns.sub       IN A    192.0.2.54
_sip._udp    IN SRV  0 5 5060 www
_sip._tcp    IN SRV  0 5 5060 gone
2.2.0.192    IN PTR  www
esc          IN TXT  "semi;colon" "quote\"d" "back\\slash" "\065\066"
unknown      IN TYPE65000 \# 4 0a000001
big          IN TXT  "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
big          IN TXT  "1123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
big          IN TXT  "2123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
big          IN TXT  "3123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
big          IN TXT  "4123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
big          IN TXT  "5123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
dup          IN A    192.0.2.111
dup      60  IN A    192.0.2.112
*.wns        IN NS   ns1
$INCLUDE inc.zone
"#;

/// Included by the zone: its records take the including file's $TTL.
const INCLUDED: &str = "inc IN A 192.0.2.77\ninc IN TXT \"included\"";

const NAMES: &[&str] = &[
    "example.wpdn.",
    "ns1.example.wpdn.",
    "www.example.wpdn.",
    "alias.example.wpdn.",
    "chain.example.wpdn.",
    "away.example.wpdn.",
    "dangling.example.wpdn.",
    "loop1.example.wpdn.",
    "a.wild.example.wpdn.",
    "b.c.wild.example.wpdn.",
    "wild.example.wpdn.",
    "x.cwild.example.wpdn.",
    "x.y.deep.example.wpdn.",
    "y.deep.example.wpdn.",
    "deep.example.wpdn.",
    "z.y.deep.example.wpdn.",
    "sub.example.wpdn.",
    "www.sub.example.wpdn.",
    "ns.sub.example.wpdn.",
    "_sip._udp.example.wpdn.",
    "_sip._tcp.example.wpdn.",
    "_udp.example.wpdn.",
    "2.2.0.192.example.wpdn.",
    "esc.example.wpdn.",
    "unknown.example.wpdn.",
    "big.example.wpdn.",
    "dup.example.wpdn.",
    "inc.example.wpdn.",
    "a.wns.example.wpdn.",
    "missing.example.wpdn.",
    "a.b.missing.example.wpdn.",
    "*.wild.example.wpdn.",
    "www.example.org.",
    "wpdn.",
    ".",
];

const TYPES: &[Rtype] = &[
    Rtype::A,
    Rtype::AAAA,
    Rtype::NS,
    Rtype::SOA,
    Rtype::CNAME,
    Rtype::MX,
    Rtype::TXT,
    Rtype::SRV,
    Rtype::PTR,
    Rtype::CAA,
    Rtype::HINFO,
    Rtype::ANY,
    Rtype::DS,
    Rtype::DNSKEY,
    Rtype::from_int(65000),
    Rtype::from_int(65001),
];

/// EDNS variants: none; payloads 512, 1232, 4096, 100 (below the minimum); DO set; version 1.
const EDNS: &[Option<(u16, u8, bool)>] = &[
    None,
    Some((512, 0, false)),
    Some((1232, 0, false)),
    Some((4096, 0, true)),
    Some((100, 0, false)),
    Some((1232, 1, false)),
];

/// The name with its letters' case flipped by `seed` (the 0x20 trick resolvers use).
fn random_case(name: &str, seed: &mut u64) -> String {
    name.chars()
        .map(|c| {
            *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            if (*seed >> 33) & 1 == 1 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

#[test]
fn halite_dns_answers_as_knot_does() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("example.wpdn.zone");
    std::fs::write(&file, ZONE).unwrap();
    std::fs::write(dir.path().join("inc.zone"), INCLUDED).unwrap();
    let knot = knot(dir.path(), &[("example.wpdn", &file)]);
    // Thousands of queries a second from one address: no rate limit for this comparison.
    let halite = halite(
        dir.path(),
        &format!("listen: ['127.0.0.1:PORT']\nzones:\n  example.wpdn: {}\nrate_limit: 0\n", file.display()),
    );

    let mut seed = 7u64;
    let (mut compared, mut differences) = (0, BTreeMap::new());
    for name in NAMES {
        for &rtype in TYPES {
            for (i, &edns) in EDNS.iter().enumerate() {
                let name = if i % 2 == 1 { random_case(name, &mut seed) } else { name.to_string() };
                let q = query(&name, rtype, edns);
                for transport in ["udp", "tcp"] {
                    if transport == "tcp" && i > 1 {
                        continue;
                    }
                    let ask = |addr| if transport == "udp" { udp(addr, &q) } else { tcp(addr, &q) };
                    let ours_bytes = ask(halite.addr);
                    let (ours, theirs) = (seen(&ours_bytes), seen(&ask(knot.addr)));
                    compared += 1;
                    if ours != theirs {
                        differences.insert(format!("{name} {rtype} {edns:?} {transport}"), (ours, theirs));
                    }
                    if transport == "udp" {
                        // Asked again under another ID, the reply comes from halite's memo
                        // of recent replies: the same bytes, but for the ID.
                        let mut again = q.clone();
                        again[..2].copy_from_slice(&[0x17, 0x71]);
                        let repeated = udp(halite.addr, &again);
                        let expected = [&[0x17, 0x71][..], &ours_bytes[2..]].concat();
                        assert_eq!(repeated, expected, "{name} {rtype} {edns:?} asked twice over UDP");
                    }
                }
            }
        }
    }
    for (query, (ours, theirs)) in differences.iter().take(15) {
        eprintln!("{query}\n  halite: {ours:?}\n  knot:   {theirs:?}");
    }
    eprintln!("{compared} queries compared, {} differ", differences.len());
    assert!(compared > 2000);
    assert!(
        differences.is_empty(),
        "{} of {compared} replies differ from Knot's (first ones above)",
        differences.len()
    );
}
