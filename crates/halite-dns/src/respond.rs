//! From a query's bytes to the reply's bytes: the checks RFC 1035 and RFC 6891 ask of a
//! query, the choice of zone, the lookup, and a reply that fits the client's buffer.
//!
//! What is checked, in order, and what each failure gets:
//! - shorter than a header, or a response (QR set): nothing is sent (answering responses
//!   lets two servers bounce packets between them for ever);
//! - not exactly one question, a section that does not parse, trailing bytes, more than one
//!   OPT or an OPT not owned by the root: FORMERR;
//! - an opcode other than QUERY: NOTIMP;
//! - EDNS version above 0: BADVERS (RFC 6891 6.1.3), with our OPT at version 0;
//! - a class other than IN: REFUSED;
//! - AXFR over UDP: NOTIMP; a transfer by anyone but the zone's secondaries, or of a name
//!   that is not a zone's apex: NOTAUTH (see [`crate::transfer`]);
//! - a name in no zone: forwarded for a client in the recursion networks, REFUSED for others;
//! - a name in a zone configured but not loaded: SERVFAIL;
//! - a meta type as the question's type (OPT, TSIG and the like): FORMERR.

use domain::base::iana::{Class, Opcode, OptRcode, Rcode, Rtype};
use domain::base::message_builder::{AdditionalBuilder, AnswerBuilder, PushError};
use domain::base::{Message, MessageBuilder, ParsedName, StaticCompressor};

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use domain::base::ToName;

use crate::forward::{Access, Forward};
use crate::lookup::{lookup, Lookup, Owner, Section};
use crate::memo::ReplyMemo;
use crate::transfer::{self, Secondaries};
use crate::zone::{key_of, suffixes, StoredName, Zone};

/// The largest UDP reply we send when the client allows more: RFC 8085's MTU advice as DNS
/// Flag Day 2020 applied it, and Knot's and BIND's default.
pub const MAX_UDP_PAYLOAD: u16 = 1232;

/// The transport a query came over: it sets the reply's size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// What to do with a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Send these bytes (over TCP, after their two-byte length).
    Reply(Vec<u8>),
    /// Send nothing: the bytes were not a query one can answer. The reason is for the log.
    Drop(&'static str),
    /// A name outside the zones, from a client allowed to have it resolved: answer from the
    /// cache, or ask the forwarders (see [`crate::forward`]).
    Forward(Forward),
    /// A zone transfer: send these messages in order (TCP only).
    Transfer(Vec<Vec<u8>>),
}

/// The push limit for a reply of at most `limit` bytes: room kept for the OPT, and one
/// more byte because `domain` refuses a push that would reach the limit exactly.
pub(crate) fn push_limit(limit: usize, edns: bool) -> usize {
    limit.saturating_sub(if edns { OPT_LEN } else { 0 }) + 1
}

/// The zones served, and the answers to queries about them.
#[derive(Debug)]
pub struct Authority {
    /// Tells this set of zones from every other the process built, so a [`ReplyMemo`] never
    /// hands out a reply of zones since reloaded (an address could be reused; this is not).
    generation: u64,
    /// Shared with the daemon's copy of each zone: a reload builds a new `Authority` without
    /// copying the zones that did not change.
    zones: Vec<Arc<Zone>>,
    /// Zones configured but not loaded (their file is missing or broken since start-up):
    /// their names are answered SERVFAIL, as Knot does, never REFUSED or forwarded, so a
    /// client retries rather than learning the name does not exist.
    unavailable: Vec<StoredName>,
    /// Who may have names outside the zones forwarded; nobody when no forwarder is set.
    recursion: Access,
    /// Who may transfer which zone.
    secondaries: Secondaries,
}

/// Who else would get an outcome: what lets [`Authority::respond_udp`] keep a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Any client sending the same bytes (the answers of the zones, and errors).
    AnyClient,
    /// This client's address decided it (a transfer, a name outside the zones).
    ThisClient,
}

type Builder = AnswerBuilder<StaticCompressor<Vec<u8>>>;

/// The OPT record we add (root owner, type, class, TTL, RDLENGTH): kept free in every reply
/// to a query with EDNS, so truncation never drops it (RFC 6891 7).
pub(crate) const OPT_LEN: usize = 11;

/// The last [`Authority::generation`] given out.
static GENERATIONS: AtomicU64 = AtomicU64::new(0);

impl Default for Authority {
    fn default() -> Authority {
        Authority::with_unavailable(Vec::<Zone>::new(), Vec::new())
    }
}

impl Authority {
    pub fn new(zones: impl IntoIterator<Item = impl Into<Arc<Zone>>>) -> Authority {
        Authority::with_unavailable(zones, Vec::new())
    }

    /// Zones served, and zones configured that could not be loaded.
    pub fn with_unavailable(
        zones: impl IntoIterator<Item = impl Into<Arc<Zone>>>,
        unavailable: Vec<StoredName>,
    ) -> Authority {
        let zones = zones.into_iter().map(Into::into).collect();
        Authority {
            generation: GENERATIONS.fetch_add(1, Ordering::Relaxed) + 1,
            zones,
            unavailable,
            recursion: Access::default(),
            secondaries: Secondaries::default(),
        }
    }

    /// Names outside the zones are forwarded for clients in `recursion` (an empty `Access`
    /// when there are no forwarders).
    pub fn with_recursion(mut self, recursion: Access) -> Authority {
        self.recursion = recursion;
        self
    }

    /// Tells these zones from every other set this process built (see [`ReplyMemo`]).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether `client` may have names outside the zones resolved (the site's VMs).
    pub fn recursion_allowed(&self, client: IpAddr) -> bool {
        self.recursion.allows(client)
    }

    /// Zones may be transferred by their `secondaries`.
    pub fn with_secondaries(mut self, secondaries: Secondaries) -> Authority {
        self.secondaries = secondaries;
        self
    }

    pub fn zones(&self) -> &[Arc<Zone>] {
        &self.zones
    }

    /// The zone holding `key` (a name's [`key_of`]): the one with the longest apex, as a
    /// child zone served beside its parent answers for its own names.
    pub fn zone_for(&self, key: &[u8]) -> Option<&Zone> {
        suffixes(key).find_map(|suffix| self.zones.iter().find(|zone| zone.apex_key() == suffix)).map(|zone| &**zone)
    }

    /// The reply to `query`, received over `transport` from `client`.
    pub fn respond(&self, query: &[u8], transport: Transport, client: IpAddr) -> Outcome {
        self.decide(query, transport, client).0
    }

    /// The reply to a UDP `query` from `client`, from `memo` when the same bytes (but the
    /// ID) were answered by these zones before; see [`crate::memo`].
    pub fn respond_udp(&self, memo: &mut ReplyMemo, query: &[u8], client: IpAddr) -> Outcome {
        if let Some(reply) = memo.get(self.generation, query) {
            return Outcome::Reply(reply);
        }
        let (outcome, scope) = self.decide(query, Transport::Udp, client);
        if let (Outcome::Reply(reply), Scope::AnyClient) = (&outcome, scope) {
            memo.insert(self.generation, query, reply);
        }
        outcome
    }

    /// The outcome for `query`, and whether another client sending the same bytes would get
    /// the same one.
    fn decide(&self, query: &[u8], transport: Transport, client: IpAddr) -> (Outcome, Scope) {
        let any = |outcome| (outcome, Scope::AnyClient);
        let Ok(msg) = Message::from_slice(query) else { return any(Outcome::Drop("shorter than a DNS header")) };
        if msg.header().qr() {
            return any(Outcome::Drop("a response, not a query"));
        }
        let Ok(question) = msg.sole_question() else { return any(formerr(msg, false)) };
        if !sections_parse(msg) {
            return any(formerr(msg, true));
        }
        let opt = msg.opt();
        // An OPT record whose options do not parse: `domain` then reports no OPT at all;
        // Knot answers FORMERR.
        if opt.is_none() && opt_records(msg) > 0 {
            return any(formerr(msg, true));
        }
        let edns = opt.as_ref().map(|opt| Edns {
            version: opt.version(),
            payload: opt.udp_payload_size(),
            dnssec_ok: opt.dnssec_ok(),
        });
        let limit = match (transport, &edns) {
            (Transport::Tcp, _) => usize::from(u16::MAX),
            (Transport::Udp, None) => 512,
            (Transport::Udp, Some(edns)) => usize::from(edns.payload.clamp(512, MAX_UDP_PAYLOAD)),
        };
        let reply = Reply { msg, edns, limit };
        if msg.header().opcode() != Opcode::QUERY {
            return any(reply.error(Rcode::NOTIMP));
        }
        if reply.edns.is_some_and(|e| e.version > 0) {
            return any(reply.badvers());
        }
        let qtype = question.qtype();
        if is_meta(qtype) {
            return any(reply.error(Rcode::FORMERR));
        }
        // Class ANY asks about every class; the zones are IN, so it gets IN's answer, as
        // from Knot.
        if question.qclass() != Class::IN && question.qclass() != Class::ANY {
            return any(reply.error(Rcode::REFUSED));
        }
        let qname = question.qname();
        let key = key_of(qname);
        if matches!(qtype, Rtype::AXFR | Rtype::IXFR) {
            let zone = self.zones.iter().find(|zone| zone.apex_key() == key.as_slice());
            let allowed = zone.filter(|zone| self.secondaries.may_transfer(zone.apex(), client));
            let outcome = match (transport, qtype, allowed) {
                (Transport::Udp, Rtype::AXFR, _) => reply.error(Rcode::NOTIMP),
                (_, _, None) => reply.error(Rcode::NOTAUTH),
                (Transport::Udp, _, Some(zone)) => Outcome::Reply(transfer::soa_only(msg, zone)),
                (Transport::Tcp, _, Some(zone)) => Outcome::Transfer(transfer::axfr(msg, zone)),
            };
            // Who may transfer is by address.
            return (outcome, Scope::ThisClient);
        }
        // DS belongs to the parent side of a cut (RFC 4035 3.1.4.1): when the parent zone is
        // served too, it answers for the child's apex.
        // When it is not, the zone at the name answers (NODATA at its own apex, as Knot).
        let closest = |skip: usize| {
            suffixes(&key).skip(skip).find_map(|suffix| {
                if let Some(zone) = self.zones.iter().find(|zone| zone.apex_key() == suffix) {
                    return Some(Some(zone));
                }
                self.unavailable.iter().any(|apex| key_of(apex) == suffix).then_some(None)
            })
        };
        let zone = if qtype == Rtype::DS && key.len() > 1 { closest(1).or_else(|| closest(0)) } else { closest(0) };
        let zone = match zone {
            Some(Some(zone)) => zone,
            Some(None) => return any(reply.error(Rcode::SERVFAIL)),
            // Forwarded only as IN, the class the reply is built for.
            // Whether a name outside the zones is forwarded or refused is by address.
            None if self.recursion.allows(client) && question.qclass() == Class::IN => {
                let forward = Forward::new(msg, qname.to_name(), qtype, reply.edns, reply.limit);
                return (Outcome::Forward(forward), Scope::ThisClient);
            }
            None => return (reply.error(Rcode::REFUSED), Scope::ThisClient),
        };
        any(reply.answer(*qname, &lookup(zone, &key, qtype)))
    }
}

fn is_meta(qtype: Rtype) -> bool {
    // RFC 6895 3.1: 128-255 are meta types and questions; of those only the QTYPEs
    // (IXFR, AXFR, MAILB, MAILA, ANY) may be asked. OPT and TKEY/TSIG are meta RRs.
    let code = qtype.to_int();
    matches!(qtype, Rtype::OPT | Rtype::TKEY | Rtype::TSIG)
        || ((128..=255).contains(&code)
            && !matches!(qtype, Rtype::IXFR | Rtype::AXFR | Rtype::ANY)
            && code != 253
            && code != 254)
}

/// How many OPT records the additional section holds.
fn opt_records(msg: &Message<[u8]>) -> usize {
    msg.additional().map_or(0, |section| section.flatten().filter(|record| record.rtype() == Rtype::OPT).count())
}

/// Whether every record of every section parses (domain parses lazily), with no bytes
/// after the last, at most one OPT and that one owned by the root.
fn sections_parse(msg: &Message<[u8]>) -> bool {
    let Ok(mut section) = msg.answer() else { return false };
    let mut opts = 0;
    // Answer, authority, additional.
    let mut index = 0;
    loop {
        for record in &mut section {
            let Ok(record) = record else { return false };
            if record.rtype() == Rtype::OPT {
                if index != 2 || !record.owner().is_root() {
                    return false;
                }
                opts += 1;
            }
        }
        match section.next_section() {
            Ok(Some(next)) => {
                section = next;
                index += 1;
            }
            Ok(None) => break,
            Err(_) => return false,
        }
    }
    opts <= 1 && section.pos() == msg.as_slice().len()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Edns {
    pub version: u8,
    pub payload: u16,
    pub dnssec_ok: bool,
}

struct Reply<'q> {
    msg: &'q Message<[u8]>,
    edns: Option<Edns>,
    limit: usize,
}

fn formerr(msg: &Message<[u8]>, with_question: bool) -> Outcome {
    // Without a question that parses, the reply carries only the header (RFC 1035 4.1.1),
    // as Knot's does.
    let mut builder = MessageBuilder::from_target(StaticCompressor::new(Vec::new())).expect("a Vec grows");
    let header = builder.header_mut();
    header.set_id(msg.header().id());
    header.set_qr(true);
    header.set_opcode(msg.header().opcode());
    header.set_rd(msg.header().rd());
    header.set_rcode(Rcode::FORMERR);
    if with_question {
        let mut question = builder.question();
        if msg.question().flatten().try_for_each(|q| question.push(q)).is_ok() {
            return Outcome::Reply(question.finish().into_target());
        }
        return Outcome::Reply(question.builder().finish().into_target());
    }
    Outcome::Reply(builder.finish().into_target())
}

impl Reply<'_> {
    fn start(&self, rcode: Rcode) -> Builder {
        let builder = MessageBuilder::from_target(StaticCompressor::new(Vec::with_capacity(512))).expect("a Vec grows");
        builder.start_error(self.msg, rcode)
    }

    fn finish(&self, builder: AdditionalBuilder<StaticCompressor<Vec<u8>>>, rcode: OptRcode) -> Outcome {
        let mut builder = builder;
        builder.as_builder_mut().clear_push_limit();
        if let Some(edns) = self.edns {
            let pushed = builder.opt(|opt| {
                opt.set_udp_payload_size(MAX_UDP_PAYLOAD);
                opt.set_rcode(rcode);
                // RFC 3225 3: the DO bit of the query is copied into the reply.
                opt.set_dnssec_ok(edns.dnssec_ok);
                Ok(())
            });
            debug_assert!(pushed.is_ok(), "room for the OPT is kept");
        }
        Outcome::Reply(builder.finish().into_target())
    }

    fn error(&self, rcode: Rcode) -> Outcome {
        self.finish(self.start(rcode).additional(), OptRcode::from_rcode(rcode))
    }

    fn badvers(&self) -> Outcome {
        self.finish(self.start(Rcode::NOERROR).additional(), OptRcode::BADVERS)
    }

    fn answer(&self, qname: ParsedName<&[u8]>, found: &Lookup<'_>) -> Outcome {
        let mut builder = self.start(found.rcode);
        builder.header_mut().set_aa(found.authoritative);
        builder.as_builder_mut().set_push_limit(push_limit(self.limit, self.edns.is_some()));
        let fits = push_all(&mut builder, &qname, &found.answer);
        let mut authority = builder.authority();
        let fits = fits && push_all(&mut authority, &qname, &found.authority);
        if !fits {
            // The answer or the authority does not fit: the client must ask over TCP.
            let mut builder = self.start(found.rcode);
            builder.header_mut().set_aa(found.authoritative);
            builder.header_mut().set_tc(true);
            return self.finish(builder.additional(), OptRcode::from_rcode(found.rcode));
        }
        let mut additional = authority.additional();
        // Additional data that does not fit is left out, without TC (RFC 2181 9); but a
        // referral's glue is needed to follow it, and without it TC is set (RFC 9471).
        if !push_all(&mut additional, &qname, &found.additional) && !found.authoritative {
            let mut builder = self.start(found.rcode);
            builder.header_mut().set_tc(true);
            return self.finish(builder.additional(), OptRcode::from_rcode(found.rcode));
        }
        self.finish(additional, OptRcode::from_rcode(found.rcode))
    }
}

fn push_all<P: PushSection>(builder: &mut P, qname: &ParsedName<&[u8]>, sections: &[Section<'_>]) -> bool {
    for section in sections {
        for data in &section.rrset.data {
            let pushed = match section.owner {
                Owner::Question => builder.push_rr((qname, section.ttl, data)),
                Owner::Name(name) => builder.push_rr((name, section.ttl, data)),
            };
            if pushed.is_err() {
                return false;
            }
        }
    }
    true
}

/// The answer, authority and additional builders alike.
trait PushSection {
    fn push_rr(&mut self, record: impl domain::base::record::ComposeRecord) -> Result<(), PushError>;
}

impl PushSection for AnswerBuilder<StaticCompressor<Vec<u8>>> {
    fn push_rr(&mut self, record: impl domain::base::record::ComposeRecord) -> Result<(), PushError> {
        self.push(record)
    }
}

impl PushSection for domain::base::message_builder::AuthorityBuilder<StaticCompressor<Vec<u8>>> {
    fn push_rr(&mut self, record: impl domain::base::record::ComposeRecord) -> Result<(), PushError> {
        self.push(record)
    }
}

impl PushSection for AdditionalBuilder<StaticCompressor<Vec<u8>>> {
    fn push_rr(&mut self, record: impl domain::base::record::ComposeRecord) -> Result<(), PushError> {
        self.push(record)
    }
}

/// `reply` cut down to its header and question, with TC set: what a rate-limited client is
/// sent instead of its answer ([`crate::rrl::Verdict::Slip`]), so that it asks over TCP.
pub fn truncated(reply: &[u8]) -> Option<Vec<u8>> {
    let msg = Message::from_slice(reply).ok()?;
    let mut builder = MessageBuilder::new_vec();
    *builder.header_mut() = msg.header();
    builder.header_mut().set_tc(true);
    let mut question = builder.question();
    for q in msg.question() {
        question.push(q.ok()?).ok()?;
    }
    Some(question.finish())
}
