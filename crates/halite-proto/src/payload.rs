//! Salt's msgpack rules (`salt.payload`).
//!
//! Salt packs with `use_bin_type=False`: strings and byte blobs alike go out in the old "raw"
//! family (fixstr, raw16, raw32; never str8, never bin), and ciphertexts travel as msgpack str
//! items holding arbitrary bytes. Decoding accepts every msgpack type and treats str and bin as
//! interchangeable, as Salt does. [`Value`] is `rmpv::Value`: its `String` keeps invalid UTF-8
//! bytes, which is exactly what Salt's str-typed blobs need.

use std::io::Cursor;

use crate::ProtoError;

pub use rmpv::Value;

/// Deepest nesting accepted from the wire; Salt's own payloads stay far below it.
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

/// `salt.payload.loads`: decode one msgpack value that must span all of `bytes`.
pub fn decode(bytes: &[u8]) -> Result<Value, ProtoError> {
    check_lengths(bytes)?;
    let mut cursor = Cursor::new(bytes);
    let value = rmpv::decode::read_value_with_max_depth(&mut cursor, MAX_DEPTH)
        .map_err(|e| ProtoError::Msgpack(e.to_string()))?;
    if cursor.position() as usize != bytes.len() {
        return Err(ProtoError::Msgpack(format!(
            "{} trailing bytes after the value",
            bytes.len() - cursor.position() as usize
        )));
    }
    Ok(value)
}

/// Refuses a message whose array or map headers announce more elements than it has bytes
/// left, before the decoder sizes a buffer from that header: a 9-byte message must not make
/// the master reserve gigabytes.
fn check_lengths(bytes: &[u8]) -> Result<(), ProtoError> {
    let mut pos = 0usize;
    let mut pending: u64 = 1;
    let err = |what: &str| ProtoError::Msgpack(what.to_string());
    while pending > 0 {
        pending -= 1;
        let marker = *bytes.get(pos).ok_or_else(|| err("truncated value"))?;
        pos += 1;
        let take = |pos: &mut usize, n: usize| -> Result<u64, ProtoError> {
            let end = pos.checked_add(n).filter(|e| *e <= bytes.len()).ok_or_else(|| err("truncated length"))?;
            let v = bytes[*pos..end].iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
            *pos = end;
            Ok(v)
        };
        let (children, skip): (u64, u64) = match marker {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, 0),
            0x80..=0x8f => (2 * u64::from(marker & 0x0f), 0),
            0x90..=0x9f => (u64::from(marker & 0x0f), 0),
            0xa0..=0xbf => (0, u64::from(marker & 0x1f)),
            0xc4 | 0xd9 => (0, take(&mut pos, 1)?),
            0xc5 | 0xda => (0, take(&mut pos, 2)?),
            0xc6 | 0xdb => (0, take(&mut pos, 4)?),
            0xc7 => (0, take(&mut pos, 1)? + 1),
            0xc8 => (0, take(&mut pos, 2)? + 1),
            0xc9 => (0, take(&mut pos, 4)? + 1),
            0xca => (0, 4),
            0xcb => (0, 8),
            0xcc | 0xd0 => (0, 1),
            0xcd | 0xd1 => (0, 2),
            0xce | 0xd2 => (0, 4),
            0xcf | 0xd3 => (0, 8),
            0xd4 => (0, 2),
            0xd5 => (0, 3),
            0xd6 => (0, 5),
            0xd7 => (0, 9),
            0xd8 => (0, 17),
            0xdc => (take(&mut pos, 2)?, 0),
            0xdd => (take(&mut pos, 4)?, 0),
            0xde => (2 * take(&mut pos, 2)?, 0),
            0xdf => (2 * take(&mut pos, 4)?, 0),
            0xc1 => return Err(err("reserved marker 0xc1")),
        };
        pos = usize::try_from(skip)
            .ok()
            .and_then(|s| pos.checked_add(s))
            .filter(|e| *e <= bytes.len())
            .ok_or_else(|| err("truncated data"))?;
        pending = pending.checked_add(children).ok_or_else(|| err("length overflow"))?;
        // Every element needs at least one byte.
        if pending > (bytes.len() - pos) as u64 {
            return Err(err("container length exceeds the message"));
        }
    }
    Ok(())
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

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let mut raw = vec![0x91; 100_000];
        raw.push(0xc0);
        assert!(decode(&raw).is_err());
    }
}
