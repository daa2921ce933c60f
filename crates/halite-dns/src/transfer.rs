//! Zone transfers to the secondaries listed per zone (`transfer:` in dns.yaml): AXFR over
//! TCP (RFC 5936), IXFR answered as AXFR (RFC 1995 4: a server may send the whole zone), and
//! the NOTIFY (RFC 1996) that tells them a zone changed.
//!
//! What Knot answers, halite answers: a transfer asked by anyone else, or of a name that is
//! not a zone's apex, is NOTAUTH; AXFR over UDP is NOTIMP; IXFR over UDP, from a listed
//! secondary, gets the current SOA alone (RFC 1995 4: the client then asks over TCP).

use std::net::IpAddr;

use domain::base::iana::{Class, Opcode, Rcode, Rtype};
use domain::base::{Message, MessageBuilder, StaticCompressor, ToName};

use crate::zone::{RecordData, StoredName, Zone};

/// Bytes of records per transfer message: well under the 65,535 a TCP message may hold, as
/// Knot and BIND fill theirs, so a large RRset never has to be split.
pub const MESSAGE_BYTES: usize = 16 << 10;

/// The messages of a full transfer of `zone`, answering `query`: the SOA, every other
/// record, the SOA again, in as many messages as they need.
pub fn axfr(query: &Message<[u8]>, zone: &Zone) -> Vec<Vec<u8>> {
    let (apex, soa) = zone.soa();
    let mut records: Vec<(&StoredName, u32, &RecordData)> = Vec::with_capacity(zone.len() + 1);
    records.push((apex, soa.ttl.as_secs(), &soa.data[0]));
    for node in zone.nodes() {
        for rrset in node.rrsets.iter().filter(|set| set.rtype != Rtype::SOA) {
            records.extend(rrset.data.iter().map(|data| (&node.owner, rrset.ttl.as_secs(), data)));
        }
    }
    records.push((apex, soa.ttl.as_secs(), &soa.data[0]));

    let mut messages = Vec::new();
    let mut rest = records.as_slice();
    while !rest.is_empty() {
        let mut builder = start(query, messages.is_empty());
        let mut pushed = 0;
        for &(owner, ttl, data) in rest {
            // A message holds at least one record, however large.
            if pushed > 0 && builder.as_slice().len() >= MESSAGE_BYTES {
                break;
            }
            if builder.push((owner, ttl, data)).is_err() {
                break;
            }
            pushed += 1;
        }
        if pushed == 0 {
            // One record over 64 KiB cannot be: record data is at most 65,535 bytes and a
            // message could still not hold it with its owner. Stop rather than loop.
            break;
        }
        rest = &rest[pushed..];
        messages.push(builder.finish().into_target());
    }
    messages
}

/// The reply to an IXFR over UDP: the current SOA alone.
pub fn soa_only(query: &Message<[u8]>, zone: &Zone) -> Vec<u8> {
    let (apex, soa) = zone.soa();
    let mut builder = start(query, true);
    builder.push((apex, soa.ttl.as_secs(), &soa.data[0])).expect("an SOA fits a message");
    builder.finish().into_target()
}

type Builder = domain::base::message_builder::AnswerBuilder<StaticCompressor<Vec<u8>>>;

fn start(query: &Message<[u8]>, with_question: bool) -> Builder {
    let mut builder = MessageBuilder::from_target(StaticCompressor::new(Vec::with_capacity(MESSAGE_BYTES + 512)))
        .expect("a Vec grows");
    let header = builder.header_mut();
    header.set_id(query.header().id());
    header.set_qr(true);
    header.set_aa(true);
    header.set_opcode(Opcode::QUERY);
    header.set_rcode(Rcode::NOERROR);
    let mut question = builder.question();
    if with_question {
        for q in query.question().flatten() {
            question.push(q).expect("a question fits a message");
        }
    }
    question.answer()
}

/// The NOTIFY for `zone` (RFC 1996 3.7: the SOA in the question, and in the answer as a hint
/// of the new serial), under `id`.
pub fn notify(zone: &Zone, id: u16) -> Vec<u8> {
    let (apex, soa) = zone.soa();
    let mut builder = MessageBuilder::new_vec();
    builder.header_mut().set_id(id);
    builder.header_mut().set_opcode(Opcode::NOTIFY);
    builder.header_mut().set_aa(true);
    let mut question = builder.question();
    question.push((apex, Rtype::SOA, Class::IN)).expect("a Vec grows");
    let mut answer = question.answer();
    answer.push((apex, soa.ttl.as_secs(), &soa.data[0])).expect("a Vec grows");
    answer.finish()
}

/// Whether `reply` acknowledges the NOTIFY sent under `id` for `apex`.
pub fn notify_acknowledged(reply: &[u8], id: u16, apex: &StoredName) -> bool {
    let Ok(msg) = Message::from_slice(reply) else { return false };
    let header = msg.header();
    header.qr()
        && header.id() == id
        && header.opcode() == Opcode::NOTIFY
        && header.rcode() == Rcode::NOERROR
        && msg.sole_question().is_ok_and(|q| q.qtype() == Rtype::SOA && q.qname().name_eq(apex))
}

/// The secondaries of each zone: who may transfer it, and where its NOTIFYs go.
#[derive(Debug, Clone, Default)]
pub struct Secondaries {
    by_zone: Vec<(StoredName, Vec<IpAddr>)>,
}

impl Secondaries {
    pub fn new(by_zone: Vec<(StoredName, Vec<IpAddr>)>) -> Secondaries {
        Secondaries { by_zone }
    }

    /// Whether `client` may transfer the zone `apex`.
    pub fn may_transfer(&self, apex: &StoredName, client: IpAddr) -> bool {
        let client = client.to_canonical();
        self.by_zone
            .iter()
            .any(|(zone, allowed)| zone.name_eq(apex) && allowed.iter().any(|a| a.to_canonical() == client))
    }
}
