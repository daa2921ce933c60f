//! The answers of halite-dns's core for a test zone, query bytes in and reply bytes out.
//! (What real clients see, against Knot's answers, is tests/real_clients.rs of halite-dnsd.)

use std::str::FromStr;

use domain::base::iana::{Class, Opcode, OptRcode, Rtype};
use domain::base::{Message, MessageBuilder, Name};
use domain::rdata::AllRecordData;
use halite_dns::respond::{Authority, Outcome, Transport};
use halite_dns::zone::{StoredName, Zone};

const ZONE: &str = "\
$ORIGIN example.wpdn.
$TTL 300
@        SOA   ns hostmaster 7 3600 600 604800 60
         NS    ns
         MX    10 mail
ns       A     192.0.2.53
mail     A     192.0.2.25
         AAAA  2001:db8::25
www      A     192.0.2.1
         A     192.0.2.2
         TXT   \"hello world\"
alias    CNAME www
chain    CNAME alias
away     CNAME www.elsewhere.org.
dangling CNAME nothing
*.wild   A     192.0.2.99
*.wild   TXT   \"wild\"
x.y.deep A     192.0.2.7
sub      NS    ns.sub
ns.sub   A     192.0.2.54
_sip._udp SRV  0 5 5060 www
big      TXT   \"0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789\"
big      TXT   \"1123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789\"
big      TXT   \"2123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789\"
big      TXT   \"3123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789\"
big      TXT   \"4123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789\"
big      TXT   \"5123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789\"
";

/// Where the test's queries come from.
const CLIENT: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

fn authority() -> Authority {
    let apex = StoredName::from_str("example.wpdn.").unwrap();
    let zone = Zone::load(&apex, "example.zone", ZONE.as_bytes(), &mut |_| Err("no includes".into())).unwrap();
    Authority::new(vec![zone])
}

struct Query<'a> {
    name: &'a str,
    rtype: Rtype,
    edns: Option<(u16, u8, bool)>,
}

fn q(name: &str, rtype: Rtype) -> Query<'_> {
    Query { name, rtype, edns: None }
}

impl Query<'_> {
    fn edns(mut self, payload: u16, version: u8, dnssec_ok: bool) -> Self {
        self.edns = Some((payload, version, dnssec_ok));
        self
    }

    fn bytes(&self) -> Vec<u8> {
        let mut builder = MessageBuilder::new_vec();
        builder.header_mut().set_id(0x4242);
        builder.header_mut().set_rd(true);
        let mut question = builder.question();
        question.push((Name::<Vec<u8>>::from_str(self.name).unwrap(), self.rtype, Class::IN)).unwrap();
        let mut additional = question.additional();
        if let Some((payload, version, dnssec_ok)) = self.edns {
            additional
                .opt(|opt| {
                    opt.set_udp_payload_size(payload);
                    opt.set_version(version);
                    opt.set_dnssec_ok(dnssec_ok);
                    Ok(())
                })
                .unwrap();
        }
        additional.finish()
    }
}

/// A reply, read back: rcode, flags and each section as "owner type data" lines.
#[derive(Debug)]
struct Seen {
    rcode: OptRcode,
    aa: bool,
    tc: bool,
    question: Vec<String>,
    answer: Vec<String>,
    authority: Vec<String>,
    additional: Vec<String>,
    opt: Option<(u16, u8, bool)>,
    len: usize,
}

fn ask_over(auth: &Authority, query: &[u8], transport: Transport) -> Seen {
    let Outcome::Reply(bytes) = auth.respond(query, transport, CLIENT) else { panic!("no reply") };
    let msg = Message::from_octets(bytes.as_slice()).unwrap();
    let lines = |section: domain::base::message::RecordSection<'_, &[u8]>| -> Vec<String> {
        section
            .into_records::<AllRecordData<_, _>>()
            .map(|r| {
                let r = r.unwrap();
                format!("{}. {} {} {}", r.owner(), r.ttl().as_secs(), r.rtype(), r.data())
            })
            .collect()
    };
    let answer = msg.answer().unwrap();
    let authority = answer.next_section().unwrap().unwrap();
    let additional = authority.next_section().unwrap().unwrap();
    let additional: Vec<String> = lines(additional).into_iter().filter(|line| !line.contains(" OPT ")).collect();
    Seen {
        rcode: msg.opt_rcode(),
        aa: msg.header().aa(),
        tc: msg.header().tc(),
        question: msg
            .question()
            .map(|q| q.unwrap())
            .map(|q| format!("{}. {} {}", q.qname(), q.qclass(), q.qtype()))
            .collect(),
        answer: lines(msg.answer().unwrap()),
        authority: lines(msg.answer().unwrap().next_section().unwrap().unwrap()),
        additional,
        opt: msg.opt().map(|opt| (opt.udp_payload_size(), opt.version(), opt.dnssec_ok())),
        len: bytes.len(),
    }
}

fn ask(auth: &Authority, query: Query<'_>) -> Seen {
    ask_over(auth, &query.bytes(), Transport::Udp)
}

const SOA: &str = "example.wpdn. 60 SOA ns.example.wpdn. hostmaster.example.wpdn. 7 3600 600 604800 60";

#[test]
fn exact_answers_echo_the_question_and_add_addresses() {
    let auth = authority();
    let seen = ask(&auth, q("WwW.Example.WPDN.", Rtype::A));
    assert_eq!((seen.rcode, seen.aa, seen.tc), (OptRcode::NOERROR, true, false));
    assert_eq!(seen.question, vec!["WwW.Example.WPDN. IN A"]);
    assert_eq!(seen.answer, vec!["WwW.Example.WPDN. 300 A 192.0.2.1", "WwW.Example.WPDN. 300 A 192.0.2.2"]);
    assert!(seen.authority.is_empty() && seen.opt.is_none());

    let seen = ask(&auth, q("example.wpdn.", Rtype::MX));
    assert_eq!(seen.answer, vec!["example.wpdn. 300 MX 10 mail.example.wpdn."]);
    assert_eq!(
        seen.additional,
        vec!["mail.example.wpdn. 300 A 192.0.2.25", "mail.example.wpdn. 300 AAAA 2001:db8::25"]
    );
    let seen = ask(&auth, q("_sip._udp.example.wpdn.", Rtype::SRV));
    assert_eq!(seen.additional.len(), 2);
}

#[test]
fn negative_answers_carry_the_soa_with_the_lower_ttl() {
    let auth = authority();
    let nx = ask(&auth, q("nope.example.wpdn.", Rtype::A));
    assert_eq!((nx.rcode, nx.aa), (OptRcode::NXDOMAIN, true));
    assert_eq!((nx.answer.len(), nx.authority.clone()), (0, vec![SOA.to_string()]));
    let nodata = ask(&auth, q("www.example.wpdn.", Rtype::AAAA));
    assert_eq!((nodata.rcode, nodata.authority), (OptRcode::NOERROR, vec![SOA.to_string()]));
    // An empty non-terminal exists: NODATA, not NXDOMAIN.
    let ent = ask(&auth, q("y.deep.example.wpdn.", Rtype::A));
    assert_eq!((ent.rcode, ent.answer.len(), ent.authority.len()), (OptRcode::NOERROR, 0, 1));
}

#[test]
fn cname_chains_wildcards_and_referrals() {
    let auth = authority();
    let chain = ask(&auth, q("chain.example.wpdn.", Rtype::A));
    assert_eq!(
        chain.answer,
        vec![
            "chain.example.wpdn. 300 CNAME alias.example.wpdn.",
            "alias.example.wpdn. 300 CNAME www.example.wpdn.",
            "www.example.wpdn. 300 A 192.0.2.1",
            "www.example.wpdn. 300 A 192.0.2.2",
        ]
    );
    // Asked for the CNAME itself: not followed.
    assert_eq!(ask(&auth, q("chain.example.wpdn.", Rtype::CNAME)).answer.len(), 1);
    // Out of the zone: the CNAME alone.
    let away = ask(&auth, q("away.example.wpdn.", Rtype::A));
    assert_eq!((away.rcode, away.answer.len(), away.authority.len()), (OptRcode::NOERROR, 1, 0));
    // To a missing name: NXDOMAIN after the CNAME (RFC 6604).
    let dangling = ask(&auth, q("dangling.example.wpdn.", Rtype::A));
    assert_eq!(
        (dangling.rcode, dangling.answer.len(), dangling.authority),
        (OptRcode::NXDOMAIN, 1, vec![SOA.to_string()])
    );

    let wild = ask(&auth, q("Any.Thing.wild.example.wpdn.", Rtype::A));
    assert_eq!(wild.answer, vec!["Any.Thing.wild.example.wpdn. 300 A 192.0.2.99"]);
    // The wildcard does not stand for the name it hangs from.
    let hangs_from = ask(&auth, q("wild.example.wpdn.", Rtype::A));
    assert_eq!((hangs_from.rcode, hangs_from.answer.len()), (OptRcode::NOERROR, 0));
    assert_eq!(hangs_from.authority, vec![SOA.to_string()]);
    assert_eq!(ask(&auth, q("x.wild.example.wpdn.", Rtype::MX)).authority, vec![SOA.to_string()]);

    let referral = ask(&auth, q("www.sub.example.wpdn.", Rtype::A));
    assert_eq!((referral.rcode, referral.aa, referral.answer.len()), (OptRcode::NOERROR, false, 0));
    assert_eq!(referral.authority, vec!["sub.example.wpdn. 300 NS ns.sub.example.wpdn."]);
    assert_eq!(referral.additional, vec!["ns.sub.example.wpdn. 300 A 192.0.2.54"]);
}

#[test]
fn any_is_minimal_over_udp_and_tcp() {
    let auth = authority();
    // One RRset (www's two A records), not the TXT beside it.
    assert_eq!(ask(&auth, q("www.example.wpdn.", Rtype::ANY)).answer.len(), 2);
    let tcp = ask_over(&auth, &q("www.example.wpdn.", Rtype::ANY).bytes(), Transport::Tcp);
    assert_eq!(tcp.answer.len(), 2);
    // At a CNAME, the CNAME: not followed.
    assert_eq!(ask(&auth, q("chain.example.wpdn.", Rtype::ANY)).answer.len(), 1);
}

#[test]
fn edns_sizes_truncation_and_badvers() {
    let auth = authority();
    // Six 100-byte TXT records do not fit 512 bytes: TC, nothing in the answer.
    let small = ask(&auth, q("big.example.wpdn.", Rtype::TXT));
    assert!(small.tc && small.answer.is_empty() && small.len <= 512, "{small:?}");
    let edns = ask(&auth, q("big.example.wpdn.", Rtype::TXT).edns(4096, 0, true));
    assert!(!edns.tc && edns.answer.len() == 6);
    assert_eq!(edns.opt, Some((1232, 0, true)));
    // A payload below 512 counts as 512 (RFC 6891 6.2.5).
    let tiny = ask(&auth, q("big.example.wpdn.", Rtype::TXT).edns(100, 0, false));
    assert!(tiny.tc && tiny.len <= 512 && tiny.opt == Some((1232, 0, false)), "{tiny:?}");
    let tcp = ask_over(&auth, &q("big.example.wpdn.", Rtype::TXT).bytes(), Transport::Tcp);
    assert!(!tcp.tc && tcp.answer.len() == 6);

    let badvers = ask(&auth, q("www.example.wpdn.", Rtype::A).edns(1232, 1, false));
    assert_eq!((badvers.rcode, badvers.answer.len(), badvers.opt), (OptRcode::BADVERS, 0, Some((1232, 0, false))));
}

#[test]
fn refusals_and_malformed_queries() {
    let auth = authority();
    assert_eq!(ask(&auth, q("www.example.org.", Rtype::A)).rcode, OptRcode::REFUSED);
    // AXFR over UDP: NOTIMP, as from Knot; over TCP from a stranger: NOTAUTH.
    assert_eq!(ask(&auth, q("example.wpdn.", Rtype::AXFR)).rcode, OptRcode::NOTIMP);
    let tcp_axfr = ask_over(&auth, &q("example.wpdn.", Rtype::AXFR).bytes(), Transport::Tcp);
    assert_eq!(tcp_axfr.rcode, OptRcode::NOTAUTH);
    assert_eq!(ask(&auth, q("example.wpdn.", Rtype::OPT)).rcode, OptRcode::FORMERR);

    let good = q("www.example.wpdn.", Rtype::A).bytes();
    // A response is never answered; nor is less than a header.
    let mut response = good.clone();
    response[2] |= 0x80;
    assert_eq!(auth.respond(&response, Transport::Udp, CLIENT), Outcome::Drop("a response, not a query"));
    assert!(matches!(auth.respond(&good[..11], Transport::Udp, CLIENT), Outcome::Drop(_)));
    // Truncated question, trailing bytes, two questions: FORMERR.
    for bad in [good[..20].to_vec(), [good.clone(), vec![0]].concat()] {
        let seen = ask_over(&auth, &bad, Transport::Udp);
        assert_eq!(seen.rcode, OptRcode::FORMERR, "{bad:?}");
    }
    let mut two = good.clone();
    two[5] = 2;
    assert_eq!(ask_over(&auth, &two, Transport::Udp).rcode, OptRcode::FORMERR);
    // A compression loop in the question.
    let mut looped = good[..12].to_vec();
    looped.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    assert_eq!(ask_over(&auth, &looped, Transport::Udp).rcode, OptRcode::FORMERR);
    // Another opcode: NOTIMP.
    let mut notify = good.clone();
    notify[2] = (notify[2] & 0x87) | (Opcode::NOTIFY.to_int() << 3);
    assert_eq!(ask_over(&auth, &notify, Transport::Udp).rcode, OptRcode::NOTIMP);
    // An OPT whose option claims more bytes than it has: FORMERR, as from Knot.
    let mut bad_opt = q("www.example.wpdn.", Rtype::A).edns(1232, 0, false).bytes();
    let len = bad_opt.len();
    bad_opt[len - 2..].copy_from_slice(&[0, 4]);
    bad_opt.extend_from_slice(&[0, 10, 0, 8, 1, 2]);
    assert_eq!(ask_over(&auth, &bad_opt, Transport::Udp).rcode, OptRcode::FORMERR);
}

#[test]
fn a_reply_of_exactly_the_limit_is_sent_whole() {
    // A TXT record sized so that the reply is exactly 512 bytes: header 12, question
    // 2+8+5+1 for "t.example.wpdn." (16), the answer's owner (a pointer, 2), type, class,
    // TTL and length (10), and the TXT's data: two strings (at most 255 bytes each), each
    // with its length byte.
    let data_len = 512 - 12 - (16 + 4) - (2 + 10);
    let second = data_len - 256 - 1;
    let zone = format!("{ZONE}t TXT \"{}\" \"{}\"\n", "x".repeat(255), "y".repeat(second));
    let apex = StoredName::from_str("example.wpdn.").unwrap();
    let auth = Authority::new(vec![Zone::load(&apex, "z", zone.as_bytes(), &mut |_| Err("none".into())).unwrap()]);
    let exact = ask(&auth, q("t.example.wpdn.", Rtype::TXT));
    assert_eq!((exact.tc, exact.len, exact.answer.len()), (false, 512, 1));
}

#[test]
fn ds_at_a_child_apex_is_the_parents_and_a_wildcard_ns_delegates() {
    let apex = StoredName::from_str("example.wpdn.").unwrap();
    let parent = format!("{ZONE}child DS 12345 13 2 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\nchild NS ns.child\nns.child A 192.0.2.60\n*.wns NS ns\n");
    let parent = Zone::load(&apex, "p", parent.as_bytes(), &mut |_| Err("none".into())).unwrap();
    let child_apex = StoredName::from_str("child.example.wpdn.").unwrap();
    let child = "$TTL 300\n@ SOA ns h 1 2 3 4 5\n@ NS ns\nns A 192.0.2.60\n";
    let child = Zone::load(&child_apex, "c", child.as_bytes(), &mut |_| Err("none".into())).unwrap();
    let auth = Authority::new(vec![parent, child]);
    let ds = ask(&auth, q("child.example.wpdn.", Rtype::DS));
    assert_eq!((ds.aa, ds.answer.len()), (true, 1), "{ds:?}");
    assert!(ds.answer[0].contains(" DS "));
    // Other types at the child's apex are the child's.
    let ns = ask(&auth, q("child.example.wpdn.", Rtype::NS));
    assert_eq!((ns.aa, ns.answer.len()), (true, 1));
    let delegated = ask(&auth, q("a.wns.example.wpdn.", Rtype::A));
    assert_eq!((delegated.aa, delegated.answer.len(), delegated.authority.len()), (false, 0, 1), "{delegated:?}");
}

#[test]
fn a_remembered_reply_is_the_built_one_and_never_another_clients() {
    use halite_dns::forward::Access;
    use halite_dns::memo::ReplyMemo;
    use halite_dns::transfer::Secondaries;
    use std::net::IpAddr;

    let site: IpAddr = "10.1.2.3".parse().unwrap();
    let stranger: IpAddr = "192.0.2.200".parse().unwrap();
    let auth = authority()
        .with_recursion(Access::new(vec!["10.0.0.0/8".parse().unwrap()]))
        .with_secondaries(Secondaries::new(vec![(StoredName::from_str("example.wpdn.").unwrap(), vec![site])]));
    let mut memo = ReplyMemo::new();
    for query in [
        q("www.example.wpdn.", Rtype::A).bytes(),
        q("WwW.Example.wpdn.", Rtype::A).edns(1232, 0, true).bytes(),
        q("nothing.example.wpdn.", Rtype::AAAA).bytes(),
        q("big.example.wpdn.", Rtype::TXT).bytes(),
        q("example.wpdn.", Rtype::OPT).bytes(),
    ] {
        let built = auth.respond(&query, Transport::Udp, CLIENT);
        assert_eq!(auth.respond_udp(&mut memo, &query, CLIENT), built);
        let mut again = query.clone();
        again[..2].copy_from_slice(&[0xbe, 0xef]);
        let Outcome::Reply(mut expected) = built else { panic!("a reply") };
        expected[..2].copy_from_slice(&[0xbe, 0xef]);
        assert_eq!(auth.respond_udp(&mut memo, &again, stranger), Outcome::Reply(expected));
    }
    assert_eq!(memo.len(auth.generation()), 5);

    // Asked again with the name in another case (a resolver's 0x20 trick): the kept reply,
    // byte for byte what would be built for that spelling, wherever the name reappears
    // (CNAME chains, wildcards, the SOA of a negative answer, glue, truncation).
    let flip = |name: &str| -> String {
        name.chars().enumerate().map(|(i, c)| if i % 2 == 0 { c.to_ascii_uppercase() } else { c }).collect()
    };
    for (name, rtype) in [
        ("chain.example.wpdn.", Rtype::A),
        ("alias.example.wpdn.", Rtype::AAAA),
        ("away.example.wpdn.", Rtype::A),
        ("a.b.wild.example.wpdn.", Rtype::TXT),
        ("missing.example.wpdn.", Rtype::A),
        ("deep.example.wpdn.", Rtype::A),
        ("x.sub.example.wpdn.", Rtype::A),
        ("example.wpdn.", Rtype::MX),
        ("example.wpdn.", Rtype::ANY),
        ("_sip._udp.example.wpdn.", Rtype::SRV),
        ("big.example.wpdn.", Rtype::TXT),
    ] {
        for edns in [None, Some((1232, 0, true))] {
            let bytes = |name: &str| {
                let query = q(name, rtype);
                match edns {
                    Some((payload, version, dnssec_ok)) => query.edns(payload, version, dnssec_ok).bytes(),
                    None => query.bytes(),
                }
            };
            let (plain, flipped) = (bytes(name), bytes(&flip(name)));
            assert_ne!(plain, flipped);
            let kept = auth.respond_udp(&mut memo, &plain, CLIENT);
            assert_eq!(kept, auth.respond(&plain, Transport::Udp, CLIENT), "{name} {rtype}");
            let before = memo.len(auth.generation());
            let from_memo = auth.respond_udp(&mut memo, &flipped, CLIENT);
            assert_eq!(memo.len(auth.generation()), before, "{name} {rtype}: answered from the memo");
            assert_eq!(from_memo, auth.respond(&flipped, Transport::Udp, CLIENT), "{} {rtype}", flip(name));
        }
    }
    let kept = memo.len(auth.generation());

    // A name outside the zones: forwarded for the site, REFUSED for a stranger, whichever
    // asks first. An IXFR over UDP: the SOA for a secondary, NOTAUTH for a stranger.
    for query in [q("www.example.org.", Rtype::A).bytes(), q("example.wpdn.", Rtype::IXFR).bytes()] {
        for order in [[stranger, site], [site, stranger]] {
            let outcomes: Vec<Outcome> =
                order.iter().map(|&client| auth.respond_udp(&mut memo, &query, client)).collect();
            for (client, outcome) in order.iter().zip(outcomes) {
                assert_eq!(outcome, auth.respond(&query, Transport::Udp, *client), "{client}");
            }
        }
    }
    assert_eq!(memo.len(auth.generation()), kept, "nothing an address decided is kept");

    // The zones reloaded: the memo answers from the new ones.
    let apex = StoredName::from_str("example.wpdn.").unwrap();
    let edited = ZONE.replace("www      A     192.0.2.1", "www      A     192.0.2.111");
    let reloaded =
        Authority::new(vec![Zone::load(&apex, "z", edited.as_bytes(), &mut |_| Err("none".into())).unwrap()]);
    let query = q("www.example.wpdn.", Rtype::A).bytes();
    assert_eq!(reloaded.respond_udp(&mut memo, &query, CLIENT), reloaded.respond(&query, Transport::Udp, CLIENT));
    assert_ne!(reloaded.respond_udp(&mut memo, &query, CLIENT), auth.respond(&query, Transport::Udp, CLIENT));
}

#[test]
fn a_message_full_of_chained_compressed_names_is_parsed_once() {
    // CVE-2023-4408 (BIND): a message of many distinct names, each a label and a pointer to
    // the one before, cost time quadratic in its size to parse. A name is at most 255 bytes,
    // so a chain is at most 127 pointers long: here 64 KiB of additional records, those in
    // the first 16 KiB (as far as a pointer reaches) in chains of 100, each record's owner one
    // label longer than the last, and every later one a label on the longest chain.
    let mut query = q("www.example.wpdn.", Rtype::A).bytes();
    let mut records = 0u16;
    let mut previous: Option<u16> = None;
    while query.len() + 24 < usize::from(u16::MAX) {
        let here = query.len() as u16;
        query.extend_from_slice(&[1, b'a' + (records % 26) as u8]);
        match previous.filter(|_| !records.is_multiple_of(100) || here >= 0x4000) {
            Some(at) => query.extend_from_slice(&(0xc000 | at).to_be_bytes()),
            None => query.push(0),
        }
        query.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 192, 0, 2, 1]);
        if here < 0x4000 {
            previous = Some(here);
        }
        records += 1;
    }
    query[10..12].copy_from_slice(&records.to_be_bytes());
    let auth = authority();
    let start = std::time::Instant::now();
    let seen = ask_over(&auth, &query, Transport::Tcp);
    eprintln!("{records} chained names in {} bytes answered in {:?}", query.len(), start.elapsed());
    assert_eq!(seen.rcode, OptRcode::NOERROR);
    assert_eq!(seen.answer, ["www.example.wpdn. 300 A 192.0.2.1", "www.example.wpdn. 300 A 192.0.2.2"]);
}
