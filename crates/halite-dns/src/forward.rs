//! Names outside every zone, for the clients allowed to ask (the VMs: every `resolv.conf`
//! of the site points at the salt VM): the question handed to the daemon to forward, the
//! checks a forwarder's reply must pass, and the client's reply built from it or from the
//! cache.
//!
//! Never an open resolver: a client outside [`Access`] gets REFUSED, as Knot and BIND
//! answer a recursion they do not offer. The daemon does the sending (random ID, a new
//! source port per query, the forwarders in turn, TCP after TC) and calls back here.

use std::net::IpAddr;
use std::time::Instant;

use domain::base::iana::{Class, Opcode, OptRcode, Rcode, Rtype};
use domain::base::message_builder::{AnswerBuilder, PushError};
use domain::base::{Message, MessageBuilder, Name, StaticCompressor, ToName, Ttl};
use ipnet::IpNet;

use crate::cache::{parse_upstream, CachedRecord, Entry, Upstream};
use crate::respond::{push_limit, Edns, MAX_UDP_PAYLOAD};
use crate::zone::key_of;

/// The clients that may have names outside the zones resolved for them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    networks: Vec<IpNet>,
}

impl Access {
    pub fn new(networks: Vec<IpNet>) -> Access {
        Access { networks }
    }

    pub fn networks(&self) -> &[IpNet] {
        &self.networks
    }

    /// Whether `client` is in an allowed network (an IPv4 client of a dual-stack socket
    /// counts as its IPv4 address).
    pub fn allows(&self, client: IpAddr) -> bool {
        let client = client.to_canonical();
        self.networks.iter().any(|net| net.contains(&client))
    }
}

/// A question to forward, with what the client's reply needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    id: u16,
    rd: bool,
    cd: bool,
    /// The name as the client wrote it: echoed in the reply with its case.
    qname: Name<Vec<u8>>,
    qtype: Rtype,
    edns: Option<Edns>,
    limit: usize,
}

type Builder = AnswerBuilder<StaticCompressor<Vec<u8>>>;

impl Forward {
    pub(crate) fn new(
        msg: &Message<[u8]>,
        qname: Name<Vec<u8>>,
        qtype: Rtype,
        edns: Option<Edns>,
        limit: usize,
    ) -> Forward {
        let header = msg.header();
        Forward { id: header.id(), rd: header.rd(), cd: header.cd(), qname, qtype, edns, limit }
    }

    pub fn qname(&self) -> &Name<Vec<u8>> {
        &self.qname
    }

    pub fn qtype(&self) -> Rtype {
        self.qtype
    }

    /// The cache's key for the question (lowercased: any spelling shares an entry).
    pub fn cache_key(&self) -> Vec<u8> {
        key_of(&self.qname)
    }

    /// The query to send a forwarder, under `id`: recursion desired, EDNS with our payload
    /// size (no DO: halite-dns does not validate, and caches one answer for both kinds of
    /// client).
    pub fn upstream_query(&self, id: u16) -> Vec<u8> {
        let mut builder = MessageBuilder::new_vec();
        builder.header_mut().set_id(id);
        builder.header_mut().set_rd(true);
        let mut question = builder.question();
        question.push((&self.qname, self.qtype, Class::IN)).expect("a Vec grows");
        let mut additional = question.additional();
        additional
            .opt(|opt| {
                opt.set_udp_payload_size(MAX_UDP_PAYLOAD);
                Ok(())
            })
            .expect("a Vec grows");
        additional.finish()
    }

    /// Whether `reply` answers the query sent under `id`: a response, that ID, and the same
    /// question (names compared without case). Anything else is ignored, as a spoofing
    /// attempt or a stray datagram would be.
    pub fn matches(&self, reply: &[u8], id: u16) -> bool {
        let Ok(msg) = Message::from_slice(reply) else { return false };
        let header = msg.header();
        header.qr()
            && header.id() == id
            && msg
                .sole_question()
                .is_ok_and(|q| q.qtype() == self.qtype && q.qclass() == Class::IN && q.qname().name_eq(&self.qname))
    }

    /// The client's reply from a forwarder's `reply`, or why there is none (the next
    /// forwarder is asked for a failure; a truncated reply is asked again over TCP).
    pub fn from_upstream(&self, reply: &[u8]) -> Result<Vec<u8>, crate::cache::NotCached> {
        let Upstream { rcode, answer, authority } = parse_upstream(reply)?;
        Ok(self.build(rcode, &answer, &authority, |record| record.ttl()))
    }

    /// The client's reply from a cached answer, its TTLs aged to `now`.
    pub fn from_cache(&self, entry: &Entry, now: Instant) -> Vec<u8> {
        self.build(entry.rcode, &entry.answer, &entry.authority, |record| entry.ttl(record, now))
    }

    /// SERVFAIL: no forwarder gave an answer (RFC 2308 7.1: the client may try again).
    pub fn servfail(&self) -> Vec<u8> {
        self.build(Rcode::SERVFAIL, &[], &[], |record| record.ttl())
    }

    fn start(&self, rcode: Rcode) -> Builder {
        let mut builder =
            MessageBuilder::from_target(StaticCompressor::new(Vec::with_capacity(512))).expect("a Vec grows");
        let header = builder.header_mut();
        header.set_id(self.id);
        header.set_qr(true);
        header.set_opcode(Opcode::QUERY);
        header.set_rd(self.rd);
        header.set_cd(self.cd);
        header.set_ra(true);
        header.set_rcode(rcode);
        let mut question = builder.question();
        question.push((&self.qname, self.qtype, Class::IN)).expect("a question fits any reply");
        question.answer()
    }

    fn build(
        &self,
        rcode: Rcode,
        answer: &[CachedRecord],
        authority: &[CachedRecord],
        ttl: impl Fn(&CachedRecord) -> Ttl,
    ) -> Vec<u8> {
        let mut builder = self.start(rcode);
        builder.as_builder_mut().set_push_limit(push_limit(self.limit, self.edns.is_some()));
        let fits = push_records(&mut builder, answer, &ttl).is_ok();
        let mut authority_builder = builder.authority();
        let fits =
            fits && authority.iter().try_for_each(|r| authority_builder.push((r.owner(), ttl(r), r.data()))).is_ok();
        let mut additional = if fits {
            authority_builder.additional()
        } else {
            let mut builder = self.start(rcode);
            builder.header_mut().set_tc(true);
            builder.additional()
        };
        additional.as_builder_mut().clear_push_limit();
        if let Some(edns) = self.edns {
            let _ = additional.opt(|opt| {
                opt.set_udp_payload_size(MAX_UDP_PAYLOAD);
                opt.set_rcode(OptRcode::from_rcode(rcode));
                opt.set_dnssec_ok(edns.dnssec_ok);
                Ok(())
            });
        }
        additional.finish().into_target()
    }
}

fn push_records(
    builder: &mut Builder,
    records: &[CachedRecord],
    ttl: &impl Fn(&CachedRecord) -> Ttl,
) -> Result<(), PushError> {
    records.iter().try_for_each(|r| builder.push((r.owner(), ttl(r), r.data())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_is_by_network_with_ipv4_mapped_clients_as_ipv4() {
        let access = Access::new(vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()]);
        assert!(access.allows("10.1.2.3".parse().unwrap()));
        assert!(access.allows("::ffff:10.1.2.3".parse().unwrap()));
        assert!(access.allows("::1".parse().unwrap()));
        assert!(!access.allows("192.0.2.1".parse().unwrap()));
        assert!(!Access::default().allows("127.0.0.1".parse().unwrap()));
    }
}
