//! Any bytes as a DNS query to halite-dns, over UDP from a client allowed to have other names
//! forwarded and over TCP from one that is not, against a zone with a wildcard,
//! a delegation, CNAME chains and a loop: a reply or a drop, never a panic; a UDP reply
//! never exceeds what the query allowed (512 bytes without EDNS, at most 1232 with it), and
//! every reply parses back as a DNS message. Through a memo of replies, the same bytes get
//! the same outcome as without one, from either client, asked once or twice, and so do the
//! bytes with every letter's case flipped after the header.
#![no_main]

use std::str::FromStr;
use std::sync::LazyLock;

use domain::base::Message;
use std::net::IpAddr;

use halite_dns::forward::{Access, Forward};
use halite_dns::memo::ReplyMemo;
use halite_dns::respond::{Authority, Outcome, Transport, MAX_UDP_PAYLOAD};
use halite_dns::zone::{StoredName, Zone};
use libfuzzer_sys::fuzz_target;

const ZONE: &str = "$ORIGIN example.wpdn.\n$TTL 300\n@ SOA ns h 1 2 3 4 60\n NS ns\n MX 10 mail\nns A 192.0.2.53\n\
mail A 192.0.2.25\nwww A 192.0.2.1\n TXT \"a\" \"b\"\nalias CNAME www\nloop1 CNAME loop2\nloop2 CNAME loop1\n\
*.wild A 192.0.2.9\nsub NS ns.sub\nns.sub A 192.0.2.54\nx.y.deep A 192.0.2.7\n";

static AUTHORITY: LazyLock<Authority> = LazyLock::new(|| {
    let apex = StoredName::from_str("example.wpdn.").unwrap();
    let zone = Zone::load(&apex, "fuzz.zone", ZONE.as_bytes(), &mut |_| Err("none".into())).unwrap();
    Authority::new(vec![zone]).with_recursion(Access::new(vec!["127.0.0.0/8".parse().unwrap()]))
});

/// The upstream query with QR set: the shape of a forwarder's empty answer.
fn fake_upstream_reply(forward: &Forward) -> Vec<u8> {
    let mut reply = forward.upstream_query(7);
    reply[2] |= 0x80;
    reply
}

fuzz_target!(|data: &[u8]| {
    // The same bytes, then the same with every letter's case flipped (the memo keys the
    // question's name without case), from a client that may recurse and one that may not.
    let mut memo = ReplyMemo::new();
    let flipped: Vec<u8> = data
        .iter()
        .enumerate()
        .map(|(i, b)| if i >= 12 && b.is_ascii_alphabetic() { b ^ 0x20 } else { *b })
        .collect();
    for query in [data, data, &flipped[..]] {
        for client in [IpAddr::from([192, 0, 2, 1]), IpAddr::from([127, 0, 0, 1])] {
            let fresh = AUTHORITY.respond(query, Transport::Udp, client);
            assert_eq!(AUTHORITY.respond_udp(&mut memo, query, client), fresh);
        }
    }
    // One client allowed to have other names forwarded, one not.
    for (transport, client) in [(Transport::Udp, IpAddr::from([127, 0, 0, 1])), (Transport::Tcp, IpAddr::from([192, 0, 2, 1]))] {
        match AUTHORITY.respond(data, transport, client) {
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
            Outcome::Transfer(_) => panic!("a transfer, though no secondary is configured"),
            Outcome::Forward(forward) => {
                assert!(client.is_loopback(), "forwarded for a client outside the recursion networks");
                // Each of the forward's replies is a message the client can read.
                for reply in [forward.servfail(), forward.upstream_query(7)] {
                    Message::from_slice(&reply).expect("a header");
                }
                assert!(forward.matches(&fake_upstream_reply(&forward), 7));
            }
        }
    }
});
