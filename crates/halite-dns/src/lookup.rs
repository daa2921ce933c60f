//! The authoritative lookup: RFC 1034 4.3.2 step 3 for one zone, with wildcards (RFC 4592),
//! CNAME chains inside the zone, referrals with glue, and negative answers carrying the SOA
//! (RFC 2308).
//!
//! The outcome borrows the zone's records; the reply builder writes them.

use domain::base::iana::{Rcode, Rtype};
use domain::base::Ttl;
use domain::rdata::ZoneRecordData;

use crate::zone::{key_of, suffixes, Node, Rrset, StoredName, Zone};

/// CNAMEs followed inside a zone before the chain is answered as it stands (Knot and BIND
/// stop between 8 and 16; a loop ends here too).
pub const MAX_CNAME_CHAIN: usize = 12;

/// Whose name a record is written under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner<'z> {
    /// The question's name, as the client wrote it (exact and wildcard answers for it).
    Question,
    /// A name of the zone's, or a CNAME's target.
    Name(&'z StoredName),
}

/// One RRset of a reply: records of one owner and type.
#[derive(Debug, Clone, Copy)]
pub struct Section<'z> {
    pub owner: Owner<'z>,
    pub ttl: Ttl,
    pub rrset: &'z Rrset,
}

/// What the zone says to a question.
#[derive(Debug, Clone)]
pub struct Lookup<'z> {
    pub rcode: Rcode,
    /// The zone answers for the name (AA), rather than referring to a delegated child.
    pub authoritative: bool,
    pub answer: Vec<Section<'z>>,
    pub authority: Vec<Section<'z>>,
    pub additional: Vec<Section<'z>>,
}

impl<'z> Lookup<'z> {
    fn new() -> Lookup<'z> {
        Lookup {
            rcode: Rcode::NOERROR,
            authoritative: true,
            answer: Vec::new(),
            authority: Vec::new(),
            additional: Vec::new(),
        }
    }
}

/// Where a name lands in a zone.
enum Found<'z> {
    /// The name's own node (or the wildcard that stands for it).
    Node(&'z Node),
    /// A delegation at or above the name: the child's NS node.
    Referral(&'z Node),
    /// No such name.
    Missing,
}

/// Finds `key` (a name at or below the apex, [`key_of`]) in `zone`.
fn find<'z>(zone: &'z Zone, key: &[u8], qtype: Rtype) -> Found<'z> {
    let apex_len = zone.apex_key().len();
    // Delegations on the way down from the apex: a zone cut hides everything below it (RFC
    // 1034 4.3.2 3b), so the highest one counts, the last met walking up from the name.
    // DS at the cut is the parent's.
    let highest_cut =
        suffixes(key).take_while(|s| s.len() > apex_len).fold(None, |cut, suffix| match zone.node(suffix) {
            Some(node) if node.rrset(Rtype::NS).is_some() && !(suffix.len() == key.len() && qtype == Rtype::DS) => {
                Some(node)
            }
            _ => cut,
        });
    if let Some(node) = highest_cut {
        return Found::Referral(node);
    }
    if let Some(node) = zone.node(key) {
        return Found::Node(node);
    }
    // The closest encloser is the longest existing ancestor; its wildcard, if any, stands
    // for the name (RFC 4592 3.3.1).
    let encloser = suffixes(key).skip(1).find(|s| zone.node(s).is_some()).expect("the apex exists");
    let mut wildcard = Vec::with_capacity(encloser.len() + 2);
    wildcard.extend_from_slice(b"\x01*");
    wildcard.extend_from_slice(encloser);
    match zone.node(&wildcard) {
        // A wildcard owning NS delegates what it matches, as Knot answers it.
        Some(node) if node.rrset(Rtype::NS).is_some() && qtype != Rtype::DS => Found::Referral(node),
        Some(node) => Found::Node(node),
        None => Found::Missing,
    }
}

/// Looks `qname` (with `key` its [`key_of`]) of type `qtype` up in `zone`. `ANY` is answered
/// with one RRset (RFC 8482), the lowest type, over UDP and TCP alike, as Knot answers it;
/// a CNAME is not followed for it.
pub fn lookup<'z>(zone: &'z Zone, key: &[u8], qtype: Rtype) -> Lookup<'z> {
    let mut out = Lookup::new();
    let mut owner = Owner::Question;
    let mut key = key.to_vec();
    let mut visited: Vec<Vec<u8>> = Vec::new();
    for _ in 0..=MAX_CNAME_CHAIN {
        let node = match find(zone, &key, qtype) {
            Found::Node(node) => node,
            Found::Referral(cut) => {
                // Inside a CNAME chain a referral is still an answer of this zone (AA kept).
                if out.answer.is_empty() {
                    out.authoritative = false;
                }
                let ns = cut.rrset(Rtype::NS).expect("a cut has NS");
                out.authority.push(Section { owner: Owner::Name(&cut.owner), ttl: ns.ttl, rrset: ns });
                add_addresses(zone, ns, &mut out.additional);
                return out;
            }
            Found::Missing => {
                out.rcode = Rcode::NXDOMAIN;
                negative(zone, &mut out);
                return out;
            }
        };
        if let Some(cname) = node.rrset(Rtype::CNAME).filter(|_| !matches!(qtype, Rtype::CNAME | Rtype::ANY)) {
            out.answer.push(Section { owner, ttl: cname.ttl, rrset: cname });
            let Some(ZoneRecordData::Cname(target)) = cname.data.first() else {
                unreachable!("a CNAME set holds CNAMEs")
            };
            let target = target.cname();
            let target_key = key_of(target);
            // Followed only inside this zone, as Knot does; the client resolves the rest.
            if !suffixes(&target_key).any(|s| s == zone.apex_key()) {
                return out;
            }
            // A loop ends where it comes back: each CNAME of it answered once, as Knot does.
            visited.push(std::mem::take(&mut key));
            if visited.contains(&target_key) {
                return out;
            }
            owner = Owner::Name(target);
            key = target_key;
            continue;
        }
        let answered = out.answer.len();
        if qtype == Rtype::ANY {
            if let Some(rrset) = node.rrsets.first() {
                out.answer.push(Section { owner, ttl: rrset.ttl, rrset });
                if matches!(rrset.rtype, Rtype::NS | Rtype::MX | Rtype::SRV) {
                    add_addresses(zone, rrset, &mut out.additional);
                }
            }
        } else if let Some(rrset) = node.rrset(qtype) {
            out.answer.push(Section { owner, ttl: rrset.ttl, rrset });
            if matches!(qtype, Rtype::NS | Rtype::MX | Rtype::SRV) {
                add_addresses(zone, rrset, &mut out.additional);
            }
        }
        if out.answer.len() == answered {
            // NODATA: the name exists (perhaps only as an empty non-terminal) without the type.
            negative(zone, &mut out);
        }
        return out;
    }
    // The chain is longer than followed: answered as it stands, as Knot does.
    out
}

/// The SOA in the authority section of a negative answer, with the TTL RFC 2308 3 gives it:
/// the lower of the SOA's own TTL and its MINIMUM field.
fn negative<'z>(zone: &'z Zone, out: &mut Lookup<'z>) {
    let (apex, soa) = zone.soa();
    let minimum = match soa.data.first() {
        Some(ZoneRecordData::Soa(soa)) => soa.minimum(),
        _ => soa.ttl,
    };
    out.authority.push(Section { owner: Owner::Name(apex), ttl: soa.ttl.min(minimum), rrset: soa });
}

/// The zone's A and AAAA records for the names `rrset` points at (NS, MX and SRV targets):
/// glue for a referral, the additional data of RFC 1034 for an answer.
fn add_addresses<'z>(zone: &'z Zone, rrset: &Rrset, additional: &mut Vec<Section<'z>>) {
    for data in &rrset.data {
        let target: &StoredName = match data {
            ZoneRecordData::Ns(ns) => ns.nsdname(),
            ZoneRecordData::Mx(mx) => mx.exchange(),
            ZoneRecordData::Srv(srv) => srv.target(),
            _ => continue,
        };
        let Some(node) = zone.node(&key_of(target)) else { continue };
        for rtype in [Rtype::A, Rtype::AAAA] {
            if let Some(set) = node.rrset(rtype) {
                if !additional.iter().any(|s| std::ptr::eq(s.rrset, set)) {
                    additional.push(Section { owner: Owner::Name(&node.owner), ttl: set.ttl, rrset: set });
                }
            }
        }
    }
}

/// The owner's name, with `question` standing for [`Owner::Question`].
pub fn owner_name<'a>(owner: Owner<'a>, question: &'a StoredName) -> &'a StoredName {
    match owner {
        Owner::Question => question,
        Owner::Name(name) => name,
    }
}
