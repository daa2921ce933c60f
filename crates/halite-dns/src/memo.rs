//! Replies to repeated UDP queries, kept by the query's bytes.
//!
//! The site's VMs ask the same few hundred questions over and over, byte for byte but for
//! the ID. For one set of zones, the reply to the same bytes is the same bytes but for the
//! ID, as long as the client's address played no part in it: [`crate::respond::Authority`]
//! keeps only such replies (its answers and errors; never a forwarded name, a REFUSED for
//! an address outside `allow_recursion`, or a transfer). Serving one from here is a hash, a
//! comparison and a copy, where building it parses the query, walks the zone and compresses
//! names: the difference is most of the user-space time of a query (docs/benchmarks.md).
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

#[derive(Debug, Default)]
struct Slot {
    /// The zones' generation the reply was built from; 0 for a slot never used.
    generation: u64,
    hash: u64,
    /// The query's bytes after the ID, then the reply's after the ID.
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
}

impl Default for ReplyMemo {
    fn default() -> ReplyMemo {
        ReplyMemo::new()
    }
}

impl ReplyMemo {
    pub fn new() -> ReplyMemo {
        ReplyMemo { slots: (0..MAX_ENTRIES).map(|_| Slot::default()).collect(), hasher: RandomState::new(), uses: 0 }
    }

    /// Replies held from zones of `generation`.
    pub fn len(&self, generation: u64) -> usize {
        self.slots.iter().filter(|slot| slot.generation == generation).count()
    }

    /// The key of `query` (its bytes after the ID) and where it may be kept.
    fn place<'q>(&self, query: &'q [u8]) -> Option<(&'q [u8], u64, std::ops::Range<usize>)> {
        let key = query.get(ID_LEN..).filter(|_| query.len() <= MAX_QUERY)?;
        let hash = self.hasher.hash_one(key);
        let first = (hash as usize % (MAX_ENTRIES / WAYS)) * WAYS;
        Some((key, hash, first..first + WAYS))
    }

    /// The reply to `query` kept from zones of `generation`, with the query's ID.
    pub(crate) fn get(&mut self, generation: u64, query: &[u8]) -> Option<Vec<u8>> {
        let (key, hash, places) = self.place(query)?;
        self.uses += 1;
        let slot = self.slots[places].iter_mut().find(|slot| slot.holds(generation, hash, key))?;
        slot.used = self.uses;
        let rest = &slot.bytes[slot.key_len..];
        let mut reply = Vec::with_capacity(ID_LEN + rest.len());
        reply.extend_from_slice(&query[..ID_LEN]);
        reply.extend_from_slice(rest);
        Some(reply)
    }

    /// Keeps `reply` as the answer to `query` from zones of `generation`: in place of the
    /// query's older reply, or else of the one used least recently of its places (one of
    /// other zones first).
    pub(crate) fn insert(&mut self, generation: u64, query: &[u8], reply: &[u8]) {
        let Some((key, hash, places)) = self.place(query) else { return };
        let Some(rest) = reply.get(ID_LEN..) else { return };
        self.uses += 1;
        let places = &mut self.slots[places];
        let index = match places.iter().position(|slot| slot.holds(generation, hash, key)) {
            Some(same) => same,
            None => (0..WAYS)
                .min_by_key(|&way| if places[way].generation == generation { places[way].used } else { 0 })
                .expect("WAYS places"),
        };
        let slot = &mut places[index];
        slot.bytes.clear();
        slot.bytes.extend_from_slice(key);
        slot.bytes.extend_from_slice(rest);
        *slot = Slot { generation, hash, bytes: std::mem::take(&mut slot.bytes), key_len: key.len(), used: self.uses };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_is_given_back_with_the_asking_id_and_only_for_its_generation() {
        let mut memo = ReplyMemo::new();
        memo.insert(1, b"\x00\x01question", b"\x00\x01answer");
        assert_eq!(memo.get(1, b"\xab\xcdquestion").as_deref(), Some(&b"\xab\xcdanswer"[..]));
        assert_eq!(memo.get(1, b"\xab\xcdquestioN"), None, "the key is every byte but the ID");
        assert_eq!(memo.get(2, b"\xab\xcdquestion"), None, "zones reloaded: nothing kept for them");
        assert_eq!((memo.len(1), memo.len(2)), (1, 0));
        memo.insert(1, b"\x00\x01question", b"\x00\x01longer answer");
        assert_eq!(memo.get(1, b"\x00\x02question").as_deref(), Some(&b"\x00\x02longer answer"[..]), "replaced");
        assert_eq!(memo.len(1), 1);
    }

    #[test]
    fn it_never_holds_more_than_its_bound_nor_long_queries() {
        let mut memo = ReplyMemo::new();
        for n in 0..(3 * MAX_ENTRIES as u32) {
            memo.insert(7, &[&[0, 0][..], &n.to_be_bytes()].concat(), b"\x00\x00reply");
        }
        assert!(memo.len(7) <= MAX_ENTRIES);
        assert!(memo.len(7) > MAX_ENTRIES / 2, "the table fills");
        // A query asked again and again stays, whatever else passes through its places.
        let hot = b"\x00\x00hot question";
        memo.insert(7, hot, b"\x00\x00hot reply");
        for n in 0..(20 * MAX_ENTRIES as u32) {
            assert!(memo.get(7, hot).is_some(), "evicted after {n} others");
            memo.insert(7, &[&[0, 0][..], &n.to_be_bytes()].concat(), b"\x00\x00reply");
        }
        let long = vec![b'q'; MAX_QUERY + 1];
        memo.insert(7, &long, b"\x00\x00reply");
        assert_eq!(memo.get(7, &long), None);
        memo.insert(7, b"\x00", b"\x00\x00reply");
        assert_eq!(memo.get(7, b"\x00"), None, "shorter than an ID: nothing to key");
    }
}
