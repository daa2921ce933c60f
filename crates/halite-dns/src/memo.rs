//! Replies to repeated UDP queries, kept by the query's bytes.
//!
//! The site's VMs ask the same few hundred questions over and over, byte for byte but for
//! the ID; a resolver using the 0x20 trick asks them with the name's letters in a case
//! pattern of its own each time. For one set of zones, the reply to the same bytes is the
//! same bytes but for the ID and the question's name, which is echoed in the query's case,
//! as long as the client's address played no part in it: [`crate::respond::Authority`]
//! keeps only such replies (its answers and errors; never a forwarded name, a REFUSED for
//! an address outside `allow_recursion`, or a transfer). Serving one from here is a hash, a
//! comparison and a copy, where building it parses the query, walks the zone and compresses
//! names: the difference is most of the user-space time of a query (docs/benchmarks.md).
//!
//! Why the case of the question's name may be folded in the key: names are looked up
//! without case, and `domain`'s compressor compares labels without case, so two queries
//! differing only there get replies of the same layout, the question echoed at offset 12
//! and every other mention of the name a pointer to it. The reply kept is patched with the
//! asking query's name. A reply is kept only when the question's name is plain labels (no
//! pointer) and the reply echoes it byte for byte at the same place; the `dns_query` fuzz
//! target checks the outcome equals a fresh answer's for the same bytes and a case variant.
//!
//! Bounds a client cannot move: [`MAX_ENTRIES`] replies, each for a query of at most
//! [`MAX_QUERY`] bytes, in a table of fixed size: two places for each hash of a query (with
//! a key the process draws at random, so a client cannot aim at one), the one used less
//! recently taking a new reply. A flood of distinct questions costs its sender the full
//! price, evicts, and moves no bound; a slot's buffer is reused, so a memo that has warmed
//! up allocates nothing to keep a reply.
//!
//! A memo belongs to one thread (no lock); each slot remembers the generation of the zones
//! its reply came from, so zones reloaded leave nothing of theirs to be handed out.

use std::hash::{BuildHasher, RandomState};

/// Replies kept at most: far more distinct questions than the site asks, and at most about
/// 1.8 MB (a 512-byte query and a 1,232-byte reply each).
pub const MAX_ENTRIES: usize = 1024;

/// Places a query's hash may take.
const WAYS: usize = 2;

/// Queries longer than this are answered without the memo: a question with EDNS is well
/// under 300 bytes, and a longer one is not worth keeping.
pub const MAX_QUERY: usize = 512;

/// Bytes of a DNS message's ID, the only part of a query (and of its reply) not in the key.
const ID_LEN: usize = 2;

/// Where the question's name starts, in a query and in its reply: after the header.
const QNAME_AT: usize = 12;

#[derive(Debug, Default)]
struct Slot {
    /// The zones' generation the reply was built from; 0 for a slot never used.
    generation: u64,
    hash: u64,
    /// The key (the query's bytes after the ID, the name's letters folded to lower case),
    /// then the reply's bytes after the ID.
    bytes: Vec<u8>,
    key_len: usize,
    /// When it was last used, in the memo's own count of uses.
    used: u64,
}

impl Slot {
    fn holds(&self, generation: u64, hash: u64, key: &[u8]) -> bool {
        self.generation == generation && self.hash == hash && self.bytes.get(..self.key_len) == Some(key)
    }
}

#[derive(Debug)]
pub struct ReplyMemo {
    slots: Vec<Slot>,
    hasher: RandomState,
    uses: u64,
    /// The key of the query at hand, built here so that no query allocates one.
    key: Vec<u8>,
}

impl Default for ReplyMemo {
    fn default() -> ReplyMemo {
        ReplyMemo::new()
    }
}

/// The end of the question's name in `message`, when it is plain labels (no compression
/// pointer, at most 255 bytes) inside the message.
fn qname_end(message: &[u8]) -> Option<usize> {
    let mut at = QNAME_AT;
    loop {
        let len = usize::from(*message.get(at)?);
        if len & 0xc0 != 0 {
            return None;
        }
        at += 1 + len;
        if at - QNAME_AT > 255 || at > message.len() {
            return None;
        }
        if len == 0 {
            return Some(at);
        }
    }
}

impl ReplyMemo {
    pub fn new() -> ReplyMemo {
        ReplyMemo {
            slots: (0..MAX_ENTRIES).map(|_| Slot::default()).collect(),
            hasher: RandomState::new(),
            uses: 0,
            key: Vec::with_capacity(MAX_QUERY),
        }
    }

    /// Replies held from zones of `generation`.
    pub fn len(&self, generation: u64) -> usize {
        self.slots.iter().filter(|slot| slot.generation == generation).count()
    }

    /// Builds the key of `query` in `self.key` and says where it may be kept, and where its
    /// question's name ends; `None` for a query the memo does not keep.
    fn place(&mut self, query: &[u8]) -> Option<(u64, std::ops::Range<usize>, usize)> {
        if query.len() > MAX_QUERY {
            return None;
        }
        let name_end = qname_end(query)?;
        self.key.clear();
        self.key.extend_from_slice(&query[ID_LEN..]);
        self.key[QNAME_AT - ID_LEN..name_end - ID_LEN].make_ascii_lowercase();
        let hash = self.hasher.hash_one(&self.key);
        let first = (hash as usize % (MAX_ENTRIES / WAYS)) * WAYS;
        Some((hash, first..first + WAYS, name_end))
    }

    /// The reply to `query` kept from zones of `generation`, with the query's ID and the
    /// query's spelling of the question's name.
    pub(crate) fn get(&mut self, generation: u64, query: &[u8]) -> Option<Vec<u8>> {
        let (hash, places, name_end) = self.place(query)?;
        self.uses += 1;
        let key = &self.key;
        let slot = self.slots[places].iter_mut().find(|slot| slot.holds(generation, hash, key))?;
        slot.used = self.uses;
        let rest = &slot.bytes[slot.key_len..];
        let mut reply = Vec::with_capacity(ID_LEN + rest.len());
        reply.extend_from_slice(&query[..ID_LEN]);
        reply.extend_from_slice(rest);
        // Kept only when the reply echoes the name there (`insert`), so it is in range.
        reply[QNAME_AT..name_end].copy_from_slice(&query[QNAME_AT..name_end]);
        Some(reply)
    }

    /// Keeps `reply` as the answer to `query` from zones of `generation` (if it echoes the
    /// question's name as the query spells it): in place of the query's older reply, or else
    /// of the one used least recently of its places (one of other zones first).
    pub(crate) fn insert(&mut self, generation: u64, query: &[u8], reply: &[u8]) {
        let Some((hash, places, name_end)) = self.place(query) else { return };
        if reply.get(QNAME_AT..name_end) != Some(&query[QNAME_AT..name_end]) {
            return;
        }
        self.uses += 1;
        let key = &self.key;
        let places = &mut self.slots[places];
        let index = match places.iter().position(|slot| slot.holds(generation, hash, key)) {
            Some(same) => same,
            None => (0..WAYS)
                .min_by_key(|&way| if places[way].generation == generation { places[way].used } else { 0 })
                .expect("WAYS places"),
        };
        let slot = &mut places[index];
        let mut bytes = std::mem::take(&mut slot.bytes);
        bytes.clear();
        bytes.extend_from_slice(key);
        bytes.extend_from_slice(&reply[ID_LEN..]);
        *slot = Slot { generation, hash, bytes, key_len: key.len(), used: self.uses };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message: `id`, the rest of a header, the question's name in wire form, then `tail`.
    fn message(id: u16, name: &[u8], tail: &[u8]) -> Vec<u8> {
        [&id.to_be_bytes()[..], &[0; 10], name, tail].concat()
    }

    const WWW: &[u8] = b"\x03www\x04wpdn\x00";
    const QUESTION: &[u8] = b"\x00\x01\x00\x01";

    #[test]
    fn a_reply_comes_back_with_the_asking_id_and_spelling_and_only_for_its_generation() {
        let mut memo = ReplyMemo::new();
        memo.insert(1, &message(1, WWW, QUESTION), &message(1, WWW, b"answer"));
        assert_eq!(memo.get(1, &message(0xabcd, WWW, QUESTION)), Some(message(0xabcd, WWW, b"answer")));
        let shouted = b"\x03WwW\x04wPDN\x00";
        assert_eq!(memo.get(1, &message(5, shouted, QUESTION)), Some(message(5, shouted, b"answer")), "0x20");
        assert_eq!(memo.get(1, &message(5, WWW, b"\x00\x01\x00\x02")), None, "the rest is compared as it is");
        assert_eq!(memo.get(1, &message(5, b"\x03wwx\x04wpdn\x00", QUESTION)), None);
        assert_eq!(memo.get(2, &message(5, WWW, QUESTION)), None, "zones reloaded: nothing kept for them");
        assert_eq!((memo.len(1), memo.len(2)), (1, 0));
        memo.insert(1, &message(1, shouted, QUESTION), &message(1, shouted, b"longer answer"));
        assert_eq!(memo.get(1, &message(2, WWW, QUESTION)), Some(message(2, WWW, b"longer answer")), "replaced");
        assert_eq!(memo.len(1), 1);
    }

    #[test]
    fn only_replies_echoing_a_plain_question_name_are_kept() {
        let mut memo = ReplyMemo::new();
        // A reply of a header alone (FORMERR without the question), or with the name spelt
        // otherwise: not kept.
        let other = message(1, b"\x03ns1\x04wpdn\x00", QUESTION);
        memo.insert(1, &other, &other[..12]);
        memo.insert(1, &other, &message(1, b"\x03NS1\x04wpdn\x00", b"answer"));
        // A name that is a pointer, or runs past the message: not kept.
        let pointer = message(1, b"\xc0\x0c", QUESTION);
        memo.insert(1, &pointer, &pointer);
        let cut = message(1, b"\x03www\x04wp", b"");
        memo.insert(1, &cut, &cut);
        assert_eq!(memo.len(1), 0);
        assert_eq!(qname_end(&message(0, WWW, QUESTION)), Some(12 + WWW.len()));
        let long_name: Vec<u8> = (0..5).flat_map(|_| [&[63u8][..], &[b'a'; 63]].concat()).chain([0]).collect();
        assert_eq!(qname_end(&message(0, &long_name, QUESTION)), None, "over 255 bytes");
    }

    #[test]
    fn it_never_holds_more_than_its_bound_nor_long_queries() {
        let mut memo = ReplyMemo::new();
        let numbered = |n: u32| [&[4u8][..], &n.to_be_bytes(), &[0]].concat();
        for n in 0..(3 * MAX_ENTRIES as u32) {
            let name = numbered(n);
            memo.insert(7, &message(0, &name, QUESTION), &message(0, &name, b"reply"));
        }
        assert!(memo.len(7) <= MAX_ENTRIES);
        assert!(memo.len(7) > MAX_ENTRIES / 2, "the table fills");
        // A query asked again and again stays, whatever else passes through its places.
        let hot = message(0, WWW, QUESTION);
        memo.insert(7, &hot, &message(0, WWW, b"hot reply"));
        for n in 0..(20 * MAX_ENTRIES as u32) {
            assert!(memo.get(7, &hot).is_some(), "evicted after {n} others");
            let name = numbered(n);
            memo.insert(7, &message(0, &name, QUESTION), &message(0, &name, b"reply"));
        }
        let long = message(0, WWW, &[0; MAX_QUERY]);
        memo.insert(7, &long, &long);
        assert_eq!(memo.get(7, &long), None);
        memo.insert(7, b"\x00", b"\x00\x00reply");
        assert_eq!(memo.get(7, b"\x00"), None, "shorter than a header: nothing to key");
    }
}
