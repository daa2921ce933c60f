//! rsync's integer and string encodings: 4-byte little-endian ints, the "longint" of
//! protocols < 30, and the varint/varlong of protocols ≥ 30 whose first byte says how many
//! bytes follow.
//!
//! Decoding is done on a [`Reader`] over bytes already received. A value cut off at the
//! end of the buffer is [`WireError::Incomplete`], so a caller that reads from a socket
//! keeps what it has, reads more and parses again: nothing here blocks or allocates more
//! than the bound the caller passes.

use thiserror::Error;

/// Why bytes could not be decoded.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum WireError {
    /// The value continues past the bytes received so far: read more and retry.
    #[error("the message continues past the bytes received so far")]
    Incomplete,
    /// A value the peer sent is outside what the protocol (or this daemon) allows.
    #[error("{what} out of range: {value} not in [{lo}, {hi}]")]
    OutOfRange { what: &'static str, value: i64, lo: i64, hi: i64 },
    /// A varint whose first byte announces more bytes than the value can hold.
    #[error("{what}: integer encoding overflows")]
    Overflow { what: &'static str },
    /// Anything else the peer got wrong, said in words.
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, WireError>;

/// Extra bytes that follow a varint's first byte, indexed by that byte / 4.
const EXTRA: [u8; 64] = [
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // 0x00-0x3f
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // 0x40-0x7f
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, // 0x80-0xbf
    2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 5, 6, // 0xc0-0xff
];

/// A cursor over received bytes. Reads either succeed and advance, or fail and leave the
/// position where the failed value started only if the caller restores it: use
/// [`Reader::position`] and [`Reader::rewind`] around a multi-field parse.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn rewind(&mut self, pos: usize) {
        self.pos = pos.min(self.buf.len());
    }

    pub fn remaining(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or(WireError::Incomplete)?;
        let out = self.buf.get(self.pos..end).ok_or(WireError::Incomplete)?;
        self.pos = end;
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.bytes(1)?[0])
    }

    pub fn u16(&mut self) -> Result<u16> {
        let b = self.bytes(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    pub fn i32(&mut self) -> Result<i32> {
        let b = self.bytes(4)?;
        Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// An int that must lie in `lo..=hi` (rsync's `read_int_bounded`).
    pub fn i32_in(&mut self, lo: i32, hi: i32, what: &'static str) -> Result<i32> {
        let v = self.i32()?;
        in_range(v as i64, lo as i64, hi as i64, what)?;
        Ok(v)
    }

    /// Protocols < 30: an int, or -1 followed by 8 bytes.
    pub fn longint(&mut self) -> Result<i64> {
        let v = self.i32()?;
        if v != -1 {
            return Ok(v as i64);
        }
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_le_bytes(a))
    }

    pub fn varint(&mut self) -> Result<i32> {
        let first = self.u8()?;
        let extra = EXTRA[(first / 4) as usize] as usize;
        if extra == 0 {
            return Ok(first as i32);
        }
        if extra >= 5 {
            return Err(WireError::Overflow { what: "varint" });
        }
        let mut b = [0u8; 4];
        b[..extra].copy_from_slice(self.bytes(extra)?);
        if extra < 4 {
            let bit = 1u8 << (8 - extra);
            b[extra] = first & (bit - 1);
        }
        Ok(i32::from_le_bytes(b))
    }

    /// A varint that must lie in `lo..=hi`.
    pub fn varint_in(&mut self, lo: i32, hi: i32, what: &'static str) -> Result<i32> {
        let v = self.varint()?;
        in_range(v as i64, lo as i64, hi as i64, what)?;
        Ok(v)
    }

    pub fn varlong(&mut self, min_bytes: usize) -> Result<i64> {
        let head = self.bytes(min_bytes)?;
        let first = head[0];
        let mut b = [0u8; 9];
        b[..min_bytes - 1].copy_from_slice(&head[1..]);
        let extra = EXTRA[(first / 4) as usize] as usize;
        if extra > 0 {
            if min_bytes + extra > 9 {
                return Err(WireError::Overflow { what: "varlong" });
            }
            let bit = 1u8 << (8 - extra);
            b[min_bytes - 1..min_bytes - 1 + extra].copy_from_slice(self.bytes(extra)?);
            b[min_bytes + extra - 1] = first & (bit - 1);
        } else {
            b[min_bytes - 1] = first;
        }
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[..8]);
        Ok(i64::from_le_bytes(a))
    }

    /// A varlong that must be ≥ 0 (sizes, times are signed in rsync but sizes never are).
    pub fn size(&mut self, min_bytes: usize, what: &'static str) -> Result<u64> {
        let v = self.varlong(min_bytes)?;
        in_range(v, 0, i64::MAX, what)?;
        Ok(v as u64)
    }
}

fn in_range(v: i64, lo: i64, hi: i64, what: &'static str) -> Result<()> {
    if v < lo || v > hi {
        return Err(WireError::OutOfRange { what, value: v, lo, hi });
    }
    Ok(())
}

pub fn put_i32(out: &mut Vec<u8>, v: i32) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub fn put_longint(out: &mut Vec<u8>, v: i64) {
    if (0..=0x7fff_ffff).contains(&v) {
        put_i32(out, v as i32);
    } else {
        put_i32(out, -1);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

pub fn put_varint(out: &mut Vec<u8>, v: i32) {
    put_var(out, &v.to_le_bytes(), 1);
}

pub fn put_varlong(out: &mut Vec<u8>, v: i64, min_bytes: usize) {
    put_var(out, &v.to_le_bytes(), min_bytes);
}

/// rsync's write_varint/write_varlong: `le` is the value's little-endian bytes; the first
/// byte sent carries the count of extra bytes in its high bits and, when there is room,
/// the value's top byte in its low bits.
fn put_var(out: &mut Vec<u8>, le: &[u8], min_bytes: usize) {
    // b[1..] holds the value, b[0] the header: the layout rsync's code indexes.
    let mut b = [0u8; 9];
    b[1..=le.len()].copy_from_slice(le);
    let mut cnt = le.len();
    while cnt > min_bytes && b[cnt] == 0 {
        cnt -= 1;
    }
    let bit = 1u8 << (7 + min_bytes - cnt);
    if b[cnt] >= bit {
        cnt += 1;
        b[0] = !(bit - 1);
    } else if cnt > min_bytes {
        b[0] = b[cnt] | !(bit.wrapping_mul(2).wrapping_sub(1));
    } else {
        b[0] = b[cnt];
    }
    out.extend_from_slice(&b[..cnt]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint_bytes(v: i32) -> Vec<u8> {
        let mut out = Vec::new();
        put_varint(&mut out, v);
        out
    }

    #[test]
    fn varints_match_rsyncs_bytes() {
        // Values worked by hand from io.c's write_varint.
        assert_eq!(varint_bytes(0), [0x00]);
        assert_eq!(varint_bytes(0x7f), [0x7f]);
        assert_eq!(varint_bytes(0x80), [0x80, 0x80]);
        assert_eq!(varint_bytes(0x3fff), [0xbf, 0xff]);
        assert_eq!(varint_bytes(0x4000), [0xc0, 0x00, 0x40]);
        assert_eq!(varint_bytes(-1), [0xf0, 0xff, 0xff, 0xff, 0xff]);
    }

    #[test]
    fn varints_and_varlongs_round_trip() {
        let samples: [i64; 12] = [0, 1, 127, 128, 255, 256, 65_535, 1 << 24, (1 << 31) - 1, 1 << 40, i64::MAX, -1];
        for &v in &samples {
            for min in [1usize, 3, 4] {
                // rsync's encoding holds min_bytes + 6 bytes at most: it only sends
                // sizes (min 3) and times (min 4) this way.
                if !(0..1 << (8 * (min + 5))).contains(&(v as i128)) && min < 3 {
                    continue;
                }
                let mut out = Vec::new();
                put_varlong(&mut out, v, min);
                let mut r = Reader::new(&out);
                assert_eq!(r.varlong(min).unwrap(), v, "varlong {v} min {min}");
                assert!(r.is_empty());
            }
            if let Ok(v32) = i32::try_from(v) {
                let out = varint_bytes(v32);
                let mut r = Reader::new(&out);
                assert_eq!(r.varint().unwrap(), v32);
                assert!(r.is_empty());
            }
            let mut out = Vec::new();
            put_longint(&mut out, v);
            assert_eq!(Reader::new(&out).longint().unwrap(), v);
        }
    }

    #[test]
    fn cut_values_are_incomplete_and_bad_ones_refused() {
        let out = varint_bytes(0x4000);
        assert_eq!(Reader::new(&out[..2]).varint(), Err(WireError::Incomplete));
        assert!(matches!(Reader::new(&[0xfc, 0, 0, 0, 0, 0]).varint(), Err(WireError::Overflow { .. })));
        assert!(matches!(Reader::new(&5i32.to_le_bytes()).i32_in(0, 4, "count"), Err(WireError::OutOfRange { .. })));
    }
}
