//! Any bytes as a DNS query to halite-dns, over UDP and TCP, against a zone with a wildcard,
//! a delegation, CNAME chains and a loop: a reply or a drop, never a panic; a UDP reply
//! never exceeds what the query allowed (512 bytes without EDNS, at most 1232 with it), and
//! every reply parses back as a DNS message.
#![no_main]

use std::str::FromStr;
use std::sync::LazyLock;

use domain::base::Message;
use halite_dns::respond::{Authority, Outcome, Transport, MAX_UDP_PAYLOAD};
use halite_dns::zone::{StoredName, Zone};
use libfuzzer_sys::fuzz_target;

const ZONE: &str = "$ORIGIN example.wpdn.\n$TTL 300\n@ SOA ns h 1 2 3 4 60\n NS ns\n MX 10 mail\nns A 192.0.2.53\n\
mail A 192.0.2.25\nwww A 192.0.2.1\n TXT \"a\" \"b\"\nalias CNAME www\nloop1 CNAME loop2\nloop2 CNAME loop1\n\
*.wild A 192.0.2.9\nsub NS ns.sub\nns.sub A 192.0.2.54\nx.y.deep A 192.0.2.7\n";

static AUTHORITY: LazyLock<Authority> = LazyLock::new(|| {
    let apex = StoredName::from_str("example.wpdn.").unwrap();
    let zone = Zone::load(&apex, "fuzz.zone", ZONE.as_bytes(), &mut |_| Err("none".into())).unwrap();
    Authority::new(vec![zone])
});

fuzz_target!(|data: &[u8]| {
    for transport in [Transport::Udp, Transport::Tcp] {
        match AUTHORITY.respond(data, transport) {
            Outcome::Reply(reply) => {
                let msg = Message::from_slice(&reply).expect("a reply has a header");
                assert!(msg.header().qr());
                if transport == Transport::Udp {
                    assert!(reply.len() <= usize::from(MAX_UDP_PAYLOAD), "{} bytes over UDP", reply.len());
                    let query = Message::from_slice(data).expect("answered, so it had a header");
                    if query.opt().is_none() {
                        assert!(reply.len() <= 512, "{} bytes without EDNS", reply.len());
                    }
                }
                for section in [msg.answer(), msg.authority(), msg.additional()] {
                    let section = section.expect("a section that parses");
                    for record in section {
                        record.expect("a record that parses");
                    }
                }
            }
            Outcome::Drop(_) => {}
        }
    }
});
