//! Salt's msgpack rules (`salt.payload`).
//!
//! Salt packs with `use_bin_type=False`: strings and byte blobs alike go out in the old "raw"
//! family (fixstr, raw16, raw32; never str8, never bin), and ciphertexts travel as msgpack str
//! items holding arbitrary bytes. Decoding accepts every msgpack type and treats str and bin as
//! interchangeable, as Salt does. [`Value`] is `rmpv::Value`: its `String` keeps invalid UTF-8
//! bytes, which is exactly what Salt's str-typed blobs need.
//!
//! # What a decode may cost
//!
//! [`decode`] reads bytes from peers that have not authenticated (the `_auth` load, every
//! request envelope), so what it builds must be bounded by what it was sent. A pre-pass walks
//! the msgpack without allocating and refuses before rmpv builds anything:
//!
//! - Nesting deeper than [`MAX_DEPTH`] (256) containers ([`ProtoError::TooDeep`]). rmpv
//!   recurses once per level (about 100 KiB of stack at 256); the pre-pass is a loop over a
//!   fixed 2 KiB array, so a 100,000-deep `[[[[...` is refused without touching the stack.
//! - More nodes than [`Budget::NETWORK`] gives a message of its size
//!   ([`ProtoError::TooManyNodes`]). A node is one item: nil, bool, number, a whole str, bin
//!   or ext, an array, a map key, a map value. Containers count their announced elements at
//!   their header, so a 10-million-element array is refused at its first five bytes.
//!
//! Why nodes: rmpv's `Value` is 40 bytes, arrays and maps grow by doubling from 4 slots, and
//! a str/bin/ext copies its bytes once. The worst a node can cost beyond the message's own
//! bytes is about 120 bytes (a one-entry map of nil to nil: 3 bytes on the wire, a 40-byte
//! `Value` and a 320-byte entry vector), so decoded memory is at most ~128 bytes a node plus
//! ~1.3 times the message's length (string buffers grow by doubling past 64 KiB). Before the
//! budget, 60 MB of nils decoded to ~3 GB.
//!
//! The budget of an `n`-byte message is `min(65,536 + n / 8, 4,194,304)` nodes:
//!
//! - 65,536 nodes whatever the size, so every everyday message decodes however dense
//!   (`_auth`, `_pillar` with `grains.items` at ~200 nodes, `pkg.list_pkgs` at ~6,000, a
//!   publish's arguments); it costs at most 8 MiB.
//! - One more node per 8 bytes. Real Salt data is 8.6 bytes a node at its densest
//!   (`grains.items`: short keys, short values), 17.5 for a highstate `_return` and for
//!   `pkg.list_pkgs`; a 50 MB string (a pillar value, a file's content) is one node. Only
//!   data made of bare numbers, nils and one-character strings is denser, and that is what
//!   the attack sends. Past the base, memory is at most ~16 bytes per byte received.
//! - Never more than 4 Mi nodes (512 MiB at the worst cost per node, per request worker): a
//!   64 MiB highstate return at 17.5 bytes a node has 3.8 Mi nodes and still decodes.
//!
//! A request's envelope is read before anything has authenticated its sender, so
//! `request::parse` decodes it with the smaller [`Budget::ENVELOPE`] (65,536 nodes whatever
//! the size); the large budget applies to what a key has opened.
//!
//! A map that repeats a key is refused at any depth: Python keeps the last of the two, a
//! reader of [`Value`] the first, and a minion must not be one id to halite and another to
//! Salt's tools.
//!
//! Measured on a 1 MB highstate `_return` (60,000 nodes), release build: the pre-pass takes
//! 0.13 ms, 2% of rmpv's 6 ms; a 10-million-nil array is refused in microseconds, where it
//! took rmpv 350 ms and 670 MB.

use std::io::Cursor;

use crate::ProtoError;

pub use rmpv::Value;

/// Containers nested in containers accepted from the wire: `[[...]]` 256 deep decodes, 257
/// deep is refused. Salt's own payloads stay far below it; it matches halite-yaml's
/// `MAX_DEPTH`, so a pillar that loaded can be stored and sent.
pub const MAX_DEPTH: usize = 256;

/// msgpack ext type Salt uses for `datetime` (data: `%Y%m%dT%H:%M:%S.%f` in ASCII).
pub const EXT_DATETIME: i8 = 78;

/// `salt.payload.dumps`: encode in Salt's byte layout.
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    encode_into(value, &mut out);
    out
}

pub fn encode_into(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Nil => out.push(0xc0),
        Value::Boolean(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Integer(i) => {
            // Writing into a Vec cannot fail.
            if let Some(u) = i.as_u64() {
                let _ = rmp::encode::write_uint(out, u);
            } else if let Some(s) = i.as_i64() {
                let _ = rmp::encode::write_sint(out, s);
            }
        }
        Value::F32(f) => {
            // Python has only doubles; Salt would never send an F32.
            let _ = rmp::encode::write_f64(out, f64::from(*f));
        }
        Value::F64(f) => {
            let _ = rmp::encode::write_f64(out, *f);
        }
        Value::String(s) => write_raw(out, s.as_bytes()),
        Value::Binary(b) => write_raw(out, b),
        Value::Array(items) => {
            let _ = rmp::encode::write_array_len(out, items.len() as u32);
            for item in items {
                encode_into(item, out);
            }
        }
        Value::Map(entries) => {
            let _ = rmp::encode::write_map_len(out, entries.len() as u32);
            for (k, v) in entries {
                encode_into(k, out);
                encode_into(v, out);
            }
        }
        Value::Ext(ty, data) => {
            let _ = rmp::encode::write_ext_meta(out, data.len() as u32, *ty);
            out.extend_from_slice(data);
        }
    }
}

/// [`encode`] of a map without the entry `key` (any other value as [`encode`] does), so
/// a part of a load is left out without copying the rest.
pub fn encode_without(value: &Value, key: &str) -> Vec<u8> {
    let Value::Map(entries) = value else { return encode(value) };
    let skip = |k: &Value| k.as_bytes_any() == Some(key.as_bytes());
    let mut out = Vec::with_capacity(64);
    let _ = rmp::encode::write_map_len(&mut out, entries.iter().filter(|(k, _)| !skip(k)).count() as u32);
    for (k, v) in entries.iter().filter(|(k, _)| !skip(k)) {
        encode_into(k, &mut out);
        encode_into(v, &mut out);
    }
    out
}

/// The msgpack "raw" family: fixstr up to 31 bytes, then raw16, then raw32; never str8 (0xd9),
/// which msgpack-python's `use_bin_type=False` does not produce.
fn write_raw(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = bytes.len();
    if len < 32 {
        out.push(0xa0 | len as u8);
    } else if len <= u16::MAX as usize {
        out.push(0xda);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
    out.extend_from_slice(bytes);
}

/// `salt.payload.loads`: decode one msgpack value that must span all of `bytes`, within
/// [`Budget::NETWORK`]. Every decode of bytes from a peer goes through here.
pub fn decode(bytes: &[u8]) -> Result<Value, ProtoError> {
    decode_with(bytes, &Budget::NETWORK)
}

/// [`decode`] of bytes this process wrote itself ([`Budget::STORED`]).
pub fn decode_stored(bytes: &[u8]) -> Result<Value, ProtoError> {
    decode_with(bytes, &Budget::STORED)
}

/// [`decode`] with another node budget (tests, or data this process wrote itself).
pub fn decode_with(bytes: &[u8], budget: &Budget) -> Result<Value, ProtoError> {
    prescan(bytes, budget)?;
    let mut cursor = Cursor::new(bytes);
    // The pre-pass has bounded the nesting; rmpv counts its depth in calls (two per
    // container, three for a str/bin/ext leaf), so it gets room for MAX_DEPTH containers and
    // a leaf and never refuses what the pre-pass accepted.
    let value = rmpv::decode::read_value_with_max_depth(&mut cursor, RMPV_DEPTH)
        .map_err(|e| ProtoError::Msgpack(e.to_string()))?;
    if cursor.position() as usize != bytes.len() {
        // The pre-pass found the same end; kept so a disagreement is an error, not a panic.
        return Err(ProtoError::Msgpack(format!(
            "{} trailing bytes after the value",
            bytes.len() - cursor.position() as usize
        )));
    }
    refuse_repeated_keys(&value)?;
    Ok(value)
}

/// Refuses a map that holds the same key twice, at any depth.
///
/// Python's unpacker builds a dict, so the last of two `id`s wins for Salt's tools, while a
/// reader of [`Value`] finds the first: a minion could send `{"id": <itself>, ..., "id":
/// <another>}`, pass every check made on the first, and be taken for the other by the stock
/// CLI. Python never packs a dict with a repeated key, so nothing honest is refused. A str and
/// a bin key with the same bytes count as the same key (Salt packs both as raw).
fn refuse_repeated_keys(value: &Value) -> Result<(), ProtoError> {
    match value {
        Value::Array(items) => items.iter().try_for_each(refuse_repeated_keys),
        Value::Map(entries) => {
            if entries.len() > 1 {
                let mut seen = std::collections::HashSet::with_capacity(entries.len());
                for (key, _) in entries {
                    let fresh = match key.as_bytes_any() {
                        Some(bytes) => seen.insert(std::borrow::Cow::Borrowed(bytes)),
                        // Keys that are not text: compared by their canonical encoding (a
                        // leading 0xc1, which msgpack never uses, keeps them apart from text).
                        None => {
                            let mut tagged = vec![0xc1];
                            tagged.extend(encode(key));
                            seen.insert(std::borrow::Cow::Owned(tagged))
                        }
                    };
                    if !fresh {
                        return Err(ProtoError::Msgpack(format!("a map repeats the key {}", repr_key(key))));
                    }
                }
            }
            entries.iter().try_for_each(|(k, v)| refuse_repeated_keys(k).and(refuse_repeated_keys(v)))
        }
        _ => Ok(()),
    }
}

/// A map key as an error names it: short and escaped (it comes from a peer).
fn repr_key(key: &Value) -> String {
    match key.as_bytes_any() {
        Some(bytes) => format!("\"{}\"", bytes[..bytes.len().min(32)].escape_ascii()),
        None => "that is not text".to_owned(),
    }
}

/// rmpv's depth argument for [`MAX_DEPTH`] containers: 2 per container + 3 for the leaf.
const RMPV_DEPTH: usize = 2 * MAX_DEPTH + 3;

/// How many nodes one decode may build. A node is one msgpack item: a nil, a number, a whole
/// str/bin/ext (however long: its bytes are the message's own, copied once), an array or a
/// map (each of whose entries is two nodes). What a decode allocates beyond the message's
/// own bytes is per node, so a node budget is a memory budget; see [`Budget::NETWORK`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Nodes any message may hold, however short it is.
    pub base_nodes: u64,
    /// One more node allowed per this many bytes of message.
    pub bytes_per_node: u64,
    /// Nodes no message may exceed, however long it is.
    pub max_nodes: u64,
}

impl Budget {
    /// What a peer's message may build; the numbers and their reasons are in the module doc.
    pub const NETWORK: Budget = Budget { base_nodes: 1 << 16, bytes_per_node: 8, max_nodes: 4 << 20 };

    /// What a request envelope may build before any key has opened it: an AES envelope's
    /// load is one bin node, `_auth` a dozen, the stock CLI's clear `publish` its arguments.
    /// 65,536 nodes whatever the size (at most ~8 MiB), so a peer without a key cannot make
    /// each request worker build the ~512 MiB [`Budget::NETWORK`] allows a 33 MB message.
    pub const ENVELOPE: Budget = Budget { base_nodes: 1 << 16, bytes_per_node: u64::MAX, max_nodes: 1 << 16 };

    /// What this process stored itself: values that passed [`Budget::NETWORK`] once, or parts
    /// of them, re-encoded with a little framing. A stored part can be much shorter than the
    /// message it came from and hold nearly as many nodes, so its length does not bound it;
    /// the network's ceiling (twice, for the framing and a job's minion list) does.
    pub const STORED: Budget = Budget { base_nodes: 8 << 20, bytes_per_node: u64::MAX, max_nodes: 8 << 20 };

    /// The node budget of a `len`-byte message.
    pub fn nodes_for(&self, len: usize) -> u64 {
        let scaled = (len as u64).checked_div(self.bytes_per_node).unwrap_or(u64::MAX);
        self.base_nodes.saturating_add(scaled).min(self.max_nodes)
    }
}

/// Walks the msgpack bytes without allocating and refuses, before rmpv builds anything:
/// nesting deeper than [`MAX_DEPTH`] (rmpv recurses once per level, so this is what keeps a
/// `[[[[...` from overflowing the stack), more nodes than the budget allows, a container
/// header announcing more elements than there are bytes left (each needs one at least), a
/// length running past the end, the reserved marker 0xc1, and bytes after the value.
fn prescan(bytes: &[u8], budget: &Budget) -> Result<(), ProtoError> {
    let max_nodes = budget.nodes_for(bytes.len());
    let err = |what: &str| ProtoError::Msgpack(what.to_string());
    // Elements still to read in each open container; level 0 is the top value. A fixed array
    // (2 KiB of stack): the walk itself never allocates.
    let mut open = [0u64; MAX_DEPTH + 1];
    let mut depth = 0usize;
    open[0] = 1;
    // Nodes read, and nodes read plus those announced by open containers but not yet read:
    // refusing on the latter turns a 10-million-element array into an error at its header.
    let mut read: u64 = 0;
    let mut committed: u64 = 1;
    let mut pos = 0usize;
    loop {
        while open[depth] == 0 {
            if depth == 0 {
                if pos != bytes.len() {
                    return Err(ProtoError::Msgpack(format!("{} trailing bytes after the value", bytes.len() - pos)));
                }
                return Ok(());
            }
            depth -= 1;
        }
        open[depth] -= 1;
        read += 1;
        let marker = *bytes.get(pos).ok_or_else(|| err("truncated value"))?;
        pos += 1;
        let take = |pos: &mut usize, n: usize| -> Result<u64, ProtoError> {
            let end = pos.checked_add(n).filter(|e| *e <= bytes.len()).ok_or_else(|| err("truncated length"))?;
            let v = bytes[*pos..end].iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
            *pos = end;
            Ok(v)
        };
        // (elements for a container, None for a scalar; bytes to skip after the header)
        let (children, skip): (Option<u64>, u64) = match marker {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (None, 0),
            0x80..=0x8f => (Some(2 * u64::from(marker & 0x0f)), 0),
            0x90..=0x9f => (Some(u64::from(marker & 0x0f)), 0),
            0xa0..=0xbf => (None, u64::from(marker & 0x1f)),
            0xc4 | 0xd9 => (None, take(&mut pos, 1)?),
            0xc5 | 0xda => (None, take(&mut pos, 2)?),
            0xc6 | 0xdb => (None, take(&mut pos, 4)?),
            0xc7 => (None, take(&mut pos, 1)? + 1),
            0xc8 => (None, take(&mut pos, 2)? + 1),
            0xc9 => (None, take(&mut pos, 4)? + 1),
            0xca => (None, 4),
            0xcb => (None, 8),
            0xcc | 0xd0 => (None, 1),
            0xcd | 0xd1 => (None, 2),
            0xce | 0xd2 => (None, 4),
            0xcf | 0xd3 => (None, 8),
            0xd4 => (None, 2),
            0xd5 => (None, 3),
            0xd6 => (None, 5),
            0xd7 => (None, 9),
            0xd8 => (None, 17),
            0xdc => (Some(take(&mut pos, 2)?), 0),
            0xdd => (Some(take(&mut pos, 4)?), 0),
            0xde => (Some(2 * take(&mut pos, 2)?), 0),
            0xdf => (Some(2 * take(&mut pos, 4)?), 0),
            0xc1 => return Err(err("reserved marker 0xc1")),
        };
        pos = usize::try_from(skip)
            .ok()
            .and_then(|s| pos.checked_add(s))
            .filter(|e| *e <= bytes.len())
            .ok_or_else(|| err("truncated data"))?;
        let Some(children) = children else { continue };
        if depth == MAX_DEPTH {
            return Err(ProtoError::TooDeep { limit: MAX_DEPTH });
        }
        committed = committed.saturating_add(children);
        // Every element still announced needs at least one byte: a header that lies about
        // its length is malformed, whatever the budget.
        if committed - read > (bytes.len() - pos) as u64 {
            return Err(err("container length exceeds the message"));
        }
        if committed > max_nodes {
            return Err(ProtoError::TooManyNodes { len: bytes.len(), limit: max_nodes });
        }
        depth += 1;
        open[depth] = children;
    }
}

/// Conveniences for reading Salt's loosely typed dicts.
pub trait ValueExt {
    /// The value under a string key of a map.
    fn get(&self, key: &str) -> Option<&Value>;
    /// Bytes of a str or bin value: Salt does not distinguish them.
    fn as_bytes_any(&self) -> Option<&[u8]>;
    /// A str or bin value that is valid UTF-8.
    fn as_text(&self) -> Option<&str>;
    /// The string under `key`, if it is one.
    fn get_text(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_text)
    }
}

impl ValueExt for Value {
    fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(entries) => {
                entries.iter().find(|(k, _)| k.as_bytes_any() == Some(key.as_bytes())).map(|(_, v)| v)
            }
            _ => None,
        }
    }

    fn as_bytes_any(&self) -> Option<&[u8]> {
        match self {
            Value::String(s) => Some(s.as_bytes()),
            Value::Binary(b) => Some(b),
            _ => None,
        }
    }

    fn as_text(&self) -> Option<&str> {
        self.as_bytes_any().and_then(|b| std::str::from_utf8(b).ok())
    }
}

/// Removes `key` from a map value and returns what it held.
pub fn remove(map: &mut Value, key: &str) -> Option<Value> {
    match map {
        Value::Map(entries) => {
            let idx = entries.iter().position(|(k, _)| k.as_bytes_any() == Some(key.as_bytes()))?;
            Some(entries.remove(idx).1)
        }
        _ => None,
    }
}

/// Sets `key` in a map value, replacing an existing entry in place.
pub fn insert(map: &mut Value, key: &str, value: Value) {
    if let Value::Map(entries) = map {
        match entries.iter_mut().find(|(k, _)| k.as_bytes_any() == Some(key.as_bytes())) {
            Some(slot) => slot.1 = value,
            None => entries.push((Value::from(key), value)),
        }
    }
}

/// Builds a map from `(key, value)` pairs, in order.
pub fn map<I, K>(pairs: I) -> Value
where
    I: IntoIterator<Item = (K, Value)>,
    K: Into<String>,
{
    Value::Map(pairs.into_iter().map(|(k, v)| (Value::from(k.into()), v)).collect())
}

/// A blob of bytes as Salt sends it: a msgpack str holding arbitrary bytes.
pub fn blob(bytes: Vec<u8>) -> Value {
    Value::Binary(bytes)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_repeated_key_is_refused_at_any_depth() {
        let twice = |inner: &[u8]| [&[0x82, 0xa2][..], b"id", &[0xa4], b"evil", &[0xa2], b"id", inner].concat();
        let err = decode(&twice(&[0xa6, b'v', b'i', b'c', b't', b'i', b'm'])).expect_err("two ids");
        assert!(err.to_string().contains("repeats the key \"id\""), "{err}");
        // A str and a bin key with the same bytes are the same key to Salt.
        let mixed = [&[0x82, 0xa2][..], b"id", &[0xc0, 0xc4, 0x02], b"id", &[0xc0]].concat();
        assert!(decode(&mixed).is_err());
        // Deeper: inside an array inside a map.
        let nested = [&[0x81, 0xa1, b'x', 0x91][..], &twice(&[0xc0])].concat();
        assert!(decode(&nested).is_err());
        // Integer keys compare by value, not by encoding (fixint 1 and uint8 1).
        assert!(decode(&[0x82, 0x01, 0xc0, 0xcc, 0x01, 0xc0]).is_err());
        // Distinct keys are fine.
        assert!(decode(&[0x82, 0x01, 0xc0, 0xa1, b'1', 0xc0]).is_ok());
    }

    #[test]
    fn encode_without_leaves_out_one_key_only() {
        let load =
            map([("fun", Value::from("test.arg")), ("fun_args", Value::from("big")), ("return", Value::from(1))]);
        let mut expected = load.clone();
        remove(&mut expected, "fun_args");
        assert_eq!(encode_without(&load, "fun_args"), encode(&expected));
        assert_eq!(encode_without(&load, "absent"), encode(&load));
        assert_eq!(encode_without(&Value::from(3), "fun_args"), encode(&Value::from(3)));
    }

    #[test]
    fn an_envelope_builds_little_before_a_key_opens_it() {
        // 1.5 M one-entry maps of nil to nil: 4.5 MB on the wire, ~500 MB as values.
        let n: u32 = 1_500_000;
        let mut flood = vec![0xdd];
        flood.extend_from_slice(&n.to_be_bytes());
        for _ in 0..n {
            flood.extend_from_slice(&[0x81, 0xc0, 0xc0]);
        }
        assert!(matches!(decode_with(&flood, &Budget::ENVELOPE), Err(ProtoError::TooManyNodes { .. })));
        assert_eq!(Budget::ENVELOPE.nodes_for(64 << 20), 1 << 16);
    }

    use super::*;

    #[test]
    fn raw16_not_str8() {
        let v = Value::from("x".repeat(40));
        let enc = encode(&v);
        assert_eq!(&enc[..3], &[0xda, 0x00, 0x28]);
    }

    #[test]
    fn bytes_pack_as_str() {
        assert_eq!(encode(&Value::Binary(vec![0, 0xff])), vec![0xa2, 0x00, 0xff]);
    }

    #[test]
    fn refuses_lying_array_header() {
        // array32 claiming 4 billion elements in a 5-byte message
        assert!(decode(&[0xdd, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(decode(&[0xdf, 0x7f, 0xff, 0xff, 0xff]).is_err());
        assert!(decode(&[0xdb, 0x7f, 0xff, 0xff, 0xff]).is_err());
    }

    #[test]
    fn refuses_trailing_bytes_and_truncation() {
        assert!(decode(&[0xc0, 0xc0]).is_err());
        assert!(decode(&[0x92, 0x01]).is_err());
        assert!(decode(&[]).is_err());
    }

    #[test]
    fn invalid_utf8_survives_round_trip() {
        let raw = vec![0xa3, 0xff, 0xfe, 0x80];
        let v = decode(&raw).unwrap();
        assert_eq!(v.as_bytes_any(), Some(&[0xff, 0xfe, 0x80][..]));
        assert_eq!(encode(&v), raw);
    }

    /// A stack an eighth of the default thread's, for the deepest decode.
    const STACK_PROBE: usize = 256 << 10;

    /// `depth` one-element arrays around `leaf`.
    fn nested(depth: usize, leaf: &[u8]) -> Vec<u8> {
        let mut raw = vec![0x91; depth];
        raw.extend_from_slice(leaf);
        raw
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        // On a 64 KiB stack: the refusal must not recurse (rmpv would need megabytes).
        let refused = std::thread::Builder::new()
            .stack_size(64 << 10)
            .spawn(|| decode(&nested(100_000, &[0xc0])).map(|_| ()))
            .unwrap()
            .join()
            .unwrap();
        assert!(matches!(refused, Err(ProtoError::TooDeep { limit: MAX_DEPTH })), "{refused:?}");
    }

    #[test]
    fn nesting_up_to_max_depth_decodes_with_any_leaf() {
        // rmpv counts depth in calls (a str, bin or ext leaf costs three): none of them may
        // make it refuse what the pre-pass accepted. MAX_DEPTH arrays around a scalar, or
        // MAX_DEPTH - 1 around an empty container.
        let scalars: [&[u8]; 4] = [&[0xc0], b"\xa3abc", b"\xc4\x01x", b"\xd4\x4e\x00"];
        let containers: [&[u8]; 2] = [&[0x80], &[0x90]];
        let cases = scalars.iter().map(|l| (MAX_DEPTH, *l)).chain(containers.iter().map(|l| (MAX_DEPTH - 1, *l)));
        for (depth, leaf) in cases {
            let mut v = decode(&nested(depth, leaf)).unwrap_or_else(|e| panic!("{leaf:?}: {e}"));
            for _ in 0..depth {
                v = match v {
                    Value::Array(mut items) => items.pop().unwrap(),
                    other => panic!("{other:?}"),
                };
            }
            assert_eq!(v, decode(leaf).unwrap());
        }
        // rmpv's recursion at the deepest nesting fits in an eighth of a thread's default
        // 2 MiB stack, debug frames included (it needs about 100 KiB), as does the drop.
        let deepest = nested(MAX_DEPTH, b"\xa3abc");
        let decoded = std::thread::Builder::new()
            .stack_size(STACK_PROBE)
            .spawn(move || decode(&deepest).is_ok())
            .unwrap()
            .join()
            .unwrap();
        assert!(decoded);
        // One more container is refused, empty or not.
        assert!(matches!(decode(&nested(MAX_DEPTH, &[0x90])), Err(ProtoError::TooDeep { .. })));
        assert!(matches!(decode(&nested(MAX_DEPTH + 1, &[0xc0])), Err(ProtoError::TooDeep { .. })));
    }

    #[test]
    fn ten_million_nils_are_refused_at_the_header() {
        let mut raw = vec![0xdd];
        raw.extend_from_slice(&10_000_000u32.to_be_bytes());
        raw.resize(5 + 10_000_000, 0xc0);
        let started = std::time::Instant::now();
        let err = decode(&raw).unwrap_err();
        let limit = Budget::NETWORK.nodes_for(raw.len());
        assert!(matches!(err, ProtoError::TooManyNodes { len: 10_000_005, limit: l } if l == limit), "{err:?}");
        assert!(err.to_string().contains("decode budget"), "{err}");
        // Refused from the header, not after a walk or a build (generous for a loaded CI).
        assert!(started.elapsed() < std::time::Duration::from_millis(500), "{:?}", started.elapsed());
    }

    #[test]
    fn the_budget_counts_nested_containers_too() {
        // 300,000 fixarrays of three nils, under an array32: no single header is large, the
        // sum is (1.2 million nodes in 1.2 MB, over the 215,536 a 1.2 MB message gets).
        let mut raw = vec![0xdd];
        raw.extend_from_slice(&300_000u32.to_be_bytes());
        for _ in 0..300_000 {
            raw.extend_from_slice(&[0x93, 0xc0, 0xc0, 0xc0]);
        }
        assert!(matches!(decode(&raw), Err(ProtoError::TooManyNodes { .. })));
    }

    #[test]
    fn the_budget_is_exact() {
        let budget = Budget { base_nodes: 10, bytes_per_node: 1 << 20, max_nodes: 1000 };
        // An array of 9 nils is 10 nodes.
        let fits = [&[0x99][..], &[0xc0; 9]].concat();
        assert_eq!(decode_with(&fits, &budget).unwrap(), Value::Array(vec![Value::Nil; 9]));
        let over = [&[0x9a][..], &[0xc0; 10]].concat();
        assert!(matches!(decode_with(&over, &budget), Err(ProtoError::TooManyNodes { len: 11, limit: 10 })));
        // A map entry is two nodes.
        let map = [&[0x85][..], &[0x01, 0xc0].repeat(5)].concat();
        assert!(matches!(decode_with(&map, &budget), Err(ProtoError::TooManyNodes { .. })));
        assert_eq!(Budget::NETWORK.nodes_for(0), 1 << 16);
        assert_eq!(Budget::NETWORK.nodes_for(8 << 20), (1 << 16) + (1 << 20));
        assert_eq!(Budget::NETWORK.nodes_for(usize::MAX), 4 << 20);
    }

    #[test]
    fn a_50_mb_string_is_one_node() {
        let big = Value::from("p".repeat(50 << 20));
        let raw = encode(&map([("secret", big.clone())]));
        assert_eq!(decode(&raw).unwrap().get("secret"), Some(&big));
    }

    #[test]
    fn salt_sized_dicts_decode() {
        // 3,000 packages (pkg.list_pkgs): dense enough to need the base, well inside it.
        let pkgs =
            Value::Map((0..3000).map(|i| (Value::from(format!("pkg{i}")), Value::from(format!("1.{i}-1")))).collect());
        let raw = encode(&pkgs);
        assert_eq!(decode(&raw).unwrap(), pkgs);
    }
}
