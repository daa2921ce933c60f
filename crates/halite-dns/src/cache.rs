//! The resolver's cache: answers from the forwarders kept for their TTL (RFC 1035 7.4),
//! negative answers for the SOA's negative TTL (RFC 2308 5), and a bound on entries.
//!
//! Sans-IO: the caller passes `now`. Entries are whole answers to one question (name, type),
//! the records as the forwarder sent them, served with their TTLs reduced by their age.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use domain::base::iana::{Rcode, Rtype};
use domain::base::name::FlattenInto;
use domain::base::{Message, Name, ParsedName, Record, ToName, Ttl};
use domain::rdata::AllRecordData;

use crate::zone::key_of;
#[cfg(test)]
use crate::zone::StoredName;

/// A record as the cache keeps it.
pub type CachedRecord = Record<Name<Vec<u8>>, AllRecordData<Vec<u8>, Name<Vec<u8>>>>;

/// Longest a positive answer is kept, whatever its TTL (BIND's max-cache-ttl is a week;
/// a day keeps a renumbered host from staying wrong for long).
pub const MAX_TTL: Duration = Duration::from_secs(86_400);

/// Longest a negative answer is kept (RFC 2308 5 suggests one to three hours).
pub const MAX_NEGATIVE_TTL: Duration = Duration::from_secs(3 * 3600);

/// Largest forwarder reply cached: answers of the site's VMs are small; a domain built to
/// fill the cache with 64 KiB replies gets them answered, not kept.
pub const MAX_CACHED_REPLY: usize = 4096;

/// Bytes of forwarder replies the cache holds in all (the records kept cost a small
/// multiple of their wire size: names are stored whole, not compressed).
pub const MAX_CACHED_BYTES: usize = 16 << 20;

/// A cached answer to one question.
#[derive(Debug, Clone)]
pub struct Entry {
    pub rcode: Rcode,
    pub answer: Vec<CachedRecord>,
    pub authority: Vec<CachedRecord>,
    stored: Instant,
    expires: Instant,
    /// The reply's size, counted against [`MAX_CACHED_BYTES`].
    size: usize,
    /// Which insertion this is, to tell a key's current queue position from stale ones.
    generation: u64,
}

impl Entry {
    /// The records' TTLs as served at `now`: reduced by the time the entry has been held.
    pub fn age(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.stored)
    }

    /// A record's TTL at `now`: its own less its age, and no more than the entry has left
    /// (the caps of [`MAX_TTL`] and [`MAX_NEGATIVE_TTL`] reach the clients' caches too).
    pub fn ttl(&self, record: &CachedRecord, now: Instant) -> Ttl {
        let age = u32::try_from(self.age(now).as_secs()).unwrap_or(u32::MAX);
        let left = u32::try_from(self.expires.saturating_duration_since(now).as_secs()).unwrap_or(u32::MAX);
        Ttl::from_secs(effective_ttl(record).saturating_sub(age).min(left))
    }
}

/// Why a forwarder's reply is not cached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotCached {
    /// SERVFAIL, REFUSED, FORMERR and the like: another forwarder, or a later query, may
    /// do better (RFC 2308 7.1 allows caching SERVFAIL briefly; halite does not).
    Failure,
    /// The reply was truncated: its TCP retry is what is cached.
    Truncated,
    /// A record did not parse.
    Malformed,
    /// A TTL of zero: the answer is for this query only (RFC 1035 3.2.1).
    ZeroTtl,
    /// Larger than [`MAX_CACHED_REPLY`].
    TooLarge,
}

/// A record's TTL as RFC 2181 8 reads it: a value with the top bit set is zero.
fn effective_ttl(record: &CachedRecord) -> u32 {
    let ttl = record.ttl().as_secs();
    if ttl >= 1 << 31 {
        0
    } else {
        ttl
    }
}

/// What a forwarder answered, owned.
pub(crate) struct Upstream {
    pub rcode: Rcode,
    pub answer: Vec<CachedRecord>,
    pub authority: Vec<CachedRecord>,
}

/// A forwarder's reply read: an answer (NOERROR or NXDOMAIN, not truncated, every record of
/// the answer and authority sections parsed), or why it is not one.
pub(crate) fn parse_upstream(reply: &[u8]) -> Result<Upstream, NotCached> {
    let msg = Message::from_slice(reply).map_err(|_| NotCached::Malformed)?;
    if msg.header().tc() {
        return Err(NotCached::Truncated);
    }
    let rcode = msg.header().rcode();
    if rcode != Rcode::NOERROR && rcode != Rcode::NXDOMAIN {
        return Err(NotCached::Failure);
    }
    Ok(Upstream { rcode, answer: records(msg.answer())?, authority: records(msg.authority())? })
}

/// A section's records, owned, without the OPT.
fn records<'a>(
    section: Result<domain::base::message::RecordSection<'a, [u8]>, domain::base::wire::ParseError>,
) -> Result<Vec<CachedRecord>, NotCached> {
    let section = section.map_err(|_| NotCached::Malformed)?;
    let mut out = Vec::new();
    for record in section.into_records::<AllRecordData<&'a [u8], ParsedName<&'a [u8]>>>() {
        let record = record.map_err(|_| NotCached::Malformed)?;
        if record.rtype() != Rtype::OPT {
            out.push(record.flatten_into());
        }
    }
    Ok(out)
}

/// The answers of the forwarders, bounded in entries.
#[derive(Debug)]
pub struct Cache {
    entries: HashMap<(Vec<u8>, u16), Entry>,
    /// Keys in the order they were stored, for eviction; a key stored again appears twice
    /// and the stale position is skipped.
    order: VecDeque<((Vec<u8>, u16), u64)>,
    max_entries: usize,
    generation: u64,
    /// Bytes of the replies held.
    bytes: usize,
}

impl Cache {
    pub fn new(max_entries: usize) -> Cache {
        Cache {
            entries: HashMap::new(),
            order: VecDeque::new(),
            max_entries: max_entries.max(1),
            generation: 0,
            bytes: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The unexpired answer to (`key`, `qtype`), if held.
    pub fn get(&mut self, key: &[u8], qtype: Rtype, now: Instant) -> Option<&Entry> {
        let index = (key.to_vec(), qtype.to_int());
        match self.entries.get(&index) {
            Some(entry) if entry.expires > now => self.entries.get(&index),
            Some(_) => {
                self.remove(&index);
                None
            }
            None => None,
        }
    }

    /// Stores the forwarder's `reply` to the question (`qname`, `qtype`).
    pub fn insert(&mut self, qname: &impl ToName, qtype: Rtype, reply: &[u8], now: Instant) -> Result<(), NotCached> {
        if reply.len() > MAX_CACHED_REPLY {
            return Err(NotCached::TooLarge);
        }
        let Upstream { rcode, answer, authority } = parse_upstream(reply)?;
        let negative = answer.is_empty();
        let ttl = if negative {
            // RFC 2308 5: the SOA's TTL, no more than its MINIMUM field.
            authority
                .iter()
                .find_map(|record| match record.data() {
                    AllRecordData::Soa(soa) => Some(effective_ttl(record).min(soa.minimum().as_secs())),
                    _ => None,
                })
                .map(|secs| Duration::from_secs(secs.into()).min(MAX_NEGATIVE_TTL))
                // Without an SOA a negative answer is not cached (RFC 2308 5).
                .ok_or(NotCached::ZeroTtl)?
        } else {
            let least = answer.iter().map(effective_ttl).min().unwrap_or(0);
            Duration::from_secs(least.into()).min(MAX_TTL)
        };
        if ttl.is_zero() {
            return Err(NotCached::ZeroTtl);
        }
        let index = (key_of(qname), qtype.to_int());
        self.remove(&index);
        self.make_room(reply.len());
        self.generation += 1;
        self.order.push_back((index.clone(), self.generation));
        let size = reply.len();
        let entry =
            Entry { rcode, answer, authority, stored: now, expires: now + ttl, size, generation: self.generation };
        self.bytes += size;
        self.entries.insert(index, entry);
        Ok(())
    }

    fn remove(&mut self, index: &(Vec<u8>, u16)) {
        if let Some(entry) = self.entries.remove(index) {
            self.bytes -= entry.size;
        }
    }

    /// Drops the oldest entries until one more, of `size` bytes, fits.
    fn make_room(&mut self, size: usize) {
        while self.entries.len() >= self.max_entries || self.bytes + size > MAX_CACHED_BYTES {
            let Some((oldest, generation)) = self.order.pop_front() else { break };
            if self.entries.get(&oldest).is_some_and(|entry| entry.generation == generation) {
                self.remove(&oldest);
            }
        }
        // Stale positions (keys stored again since, or expired and dropped) must not grow
        // the queue without bound.
        if self.order.len() > 2 * self.max_entries {
            let entries = &self.entries;
            self.order.retain(|(index, generation)| entries.get(index).is_some_and(|e| e.generation == *generation));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::base::iana::Class;
    use domain::base::MessageBuilder;
    use domain::rdata::{Soa, A};
    use std::str::FromStr;

    fn name(s: &str) -> StoredName {
        StoredName::from_str(s).unwrap()
    }

    fn reply(rcode: Rcode, answers: &[(&str, u32)], soa_ttl: Option<(u32, u32)>) -> Vec<u8> {
        let mut builder = MessageBuilder::new_vec();
        builder.header_mut().set_qr(true);
        builder.header_mut().set_rcode(rcode);
        let mut question = builder.question();
        question.push((name("www.example.org."), Rtype::A, Class::IN)).unwrap();
        let mut answer = question.answer();
        for (addr, ttl) in answers {
            answer.push((name("www.example.org."), *ttl, A::from_str(addr).unwrap())).unwrap();
        }
        let mut authority = answer.authority();
        if let Some((ttl, minimum)) = soa_ttl {
            let soa = Soa::new(
                name("ns.example.org."),
                name("h.example.org."),
                1.into(),
                Ttl::from_secs(3600),
                Ttl::from_secs(600),
                Ttl::from_secs(86400),
                Ttl::from_secs(minimum),
            );
            authority.push((name("example.org."), ttl, soa)).unwrap();
        }
        authority.finish()
    }

    #[test]
    fn answers_are_kept_for_their_least_ttl_and_served_older() {
        let mut cache = Cache::new(10);
        let t0 = Instant::now();
        let www = name("www.example.org.");
        cache
            .insert(&www, Rtype::A, &reply(Rcode::NOERROR, &[("192.0.2.1", 60), ("192.0.2.2", 30)], None), t0)
            .unwrap();
        let key = key_of(&name("WWW.example.org."));
        let entry = cache.get(&key, Rtype::A, t0 + Duration::from_secs(10)).unwrap().clone();
        assert_eq!(entry.answer.len(), 2);
        let ttls: Vec<u32> =
            entry.answer.iter().map(|r| entry.ttl(r, t0 + Duration::from_secs(10)).as_secs()).collect();
        // No record outlives the entry, which goes with its least TTL.
        assert_eq!(ttls, vec![20, 20]);
        assert!(cache.get(&key, Rtype::A, t0 + Duration::from_secs(30)).is_none(), "expired with its least TTL");
        assert!(cache.get(&key, Rtype::AAAA, t0).is_none());
    }

    #[test]
    fn served_ttls_keep_the_caps_and_a_top_bit_ttl_is_zero() {
        let mut cache = Cache::new(10);
        let t0 = Instant::now();
        let www = name("www.example.org.");
        cache.insert(&www, Rtype::A, &reply(Rcode::NOERROR, &[("192.0.2.1", 7 * 86_400)], None), t0).unwrap();
        let entry = cache.get(&key_of(&www), Rtype::A, t0).unwrap().clone();
        assert_eq!(entry.ttl(&entry.answer[0], t0).as_secs(), MAX_TTL.as_secs() as u32);
        let huge = reply(Rcode::NOERROR, &[("192.0.2.1", 1 << 31)], None);
        assert_eq!(cache.insert(&www, Rtype::A, &huge, t0), Err(NotCached::ZeroTtl));
    }

    #[test]
    fn negative_answers_use_the_soa_and_failures_are_not_kept() {
        let mut cache = Cache::new(10);
        let t0 = Instant::now();
        let www = name("www.example.org.");
        let key = key_of(&www);
        cache.insert(&www, Rtype::A, &reply(Rcode::NXDOMAIN, &[], Some((3600, 120))), t0).unwrap();
        let entry = cache.get(&key, Rtype::A, t0 + Duration::from_secs(119)).unwrap();
        assert_eq!((entry.rcode, entry.authority.len()), (Rcode::NXDOMAIN, 1));
        assert!(cache.get(&key, Rtype::A, t0 + Duration::from_secs(120)).is_none());
        assert_eq!(cache.insert(&www, Rtype::A, &reply(Rcode::NXDOMAIN, &[], None), t0), Err(NotCached::ZeroTtl));
        assert_eq!(cache.insert(&www, Rtype::A, &reply(Rcode::SERVFAIL, &[], None), t0), Err(NotCached::Failure));
        assert_eq!(
            cache.insert(&www, Rtype::A, &reply(Rcode::NOERROR, &[("192.0.2.1", 0)], None), t0),
            Err(NotCached::ZeroTtl)
        );
        assert_eq!(cache.insert(&www, Rtype::A, b"\x00\x01", t0), Err(NotCached::Malformed));
    }

    #[test]
    fn the_cache_holds_at_most_its_bound() {
        let mut cache = Cache::new(3);
        let t0 = Instant::now();
        for i in 0..10 {
            let qname = name(&format!("h{i}.example.org."));
            // Stored again and again: stale queue positions are pruned.
            for _ in 0..5 {
                cache.insert(&qname, Rtype::A, &reply(Rcode::NOERROR, &[("192.0.2.1", 60)], None), t0).unwrap();
            }
            assert!(cache.len() <= 3);
            assert!(cache.order.len() <= 6 + 1);
        }
        assert!(cache.get(&key_of(&name("h9.example.org.")), Rtype::A, t0).is_some());
        assert!(cache.get(&key_of(&name("h0.example.org.")), Rtype::A, t0).is_none());
    }
}
