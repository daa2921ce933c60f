//! The token stream that carries one file's delta from the sender to the receiver:
//! literal bytes and references to blocks of the receiver's basis file, ended by an end
//! mark. Without compression a token is an int (n > 0: n literal bytes follow; -(i+1):
//! block i; 0: end). The compressed forms live in [`crate::compress`] behind the same two
//! traits, so the sender and receiver do not care which was negotiated.

use crate::wire::{put_i32, Reader, WireError};

/// rsync writes literal data in runs of at most this many bytes (rsync.h CHUNK_SIZE).
pub const CHUNK_SIZE: usize = 32 * 1024;

/// Writes one file's tokens. One encoder serves a whole connection: the compressed
/// forms keep their compressor's state from file to file, as rsync does.
pub trait Encode {
    /// Appends literal bytes (any length: the encoder splits them into runs).
    fn literal(&mut self, out: &mut Vec<u8>, data: &[u8]);
    /// Appends a reference to block `index` of the basis file; `data` is that block's
    /// bytes, which zlib's form feeds to its dictionary.
    fn matched(&mut self, out: &mut Vec<u8>, index: u32, data: &[u8]);
    /// Appends the end mark of this file's tokens.
    fn end(&mut self, out: &mut Vec<u8>);
}

/// One decoded token. `Literal` borrows the decoder's buffer until the next call.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'s> {
    Literal(&'s [u8]),
    Block(u32),
    End,
}

/// Reads one file's tokens.
pub trait Decode {
    /// Decodes the next token from `r`. `WireError::Incomplete` means the next token's
    /// header is not all there yet: the decoder's state is unchanged, and the caller
    /// rewinds `r`, reads more and calls again. A long literal run may be returned in
    /// several `Literal` pieces, each of at least one byte.
    fn next<'s>(&'s mut self, r: &mut Reader<'_>) -> Result<Decoded<'s>, WireError>;
    /// Hands the decoder the bytes of the block it just returned as `Block`, which
    /// zlib's form feeds to its dictionary; the others ignore them.
    fn saw_block(&mut self, data: &[u8]);
}

/// The uncompressed token stream (rsync's simple_send_token): each literal run of at most
/// [`CHUNK_SIZE`] bytes behind its length, a block as `-(index + 1)`, the end as 0.
#[derive(Debug, Default, Clone, Copy)]
pub struct SimpleEncoder;

impl SimpleEncoder {
    pub fn new() -> Self {
        SimpleEncoder
    }
}

impl Encode for SimpleEncoder {
    fn literal(&mut self, out: &mut Vec<u8>, data: &[u8]) {
        for run in data.chunks(CHUNK_SIZE) {
            put_i32(out, run.len() as i32);
            out.extend_from_slice(run);
        }
    }

    fn matched(&mut self, out: &mut Vec<u8>, index: u32, _data: &[u8]) {
        // Indexes come from a sum header whose count is an i32, so -(index + 1) fits; a
        // larger one (a caller's bug) becomes i32::MIN, which every decoder refuses.
        let token = (-(index as i64) - 1).max(i32::MIN as i64) as i32;
        put_i32(out, token);
    }

    fn end(&mut self, out: &mut Vec<u8>) {
        put_i32(out, 0);
    }
}

/// Reads the uncompressed token stream. Literal runs are handed out in pieces of what
/// has arrived, at most [`CHUNK_SIZE`] bytes each, so a run of any length the peer
/// announces costs no more than that buffer.
#[derive(Debug, Default)]
pub struct SimpleDecoder {
    /// Bytes of the current literal run not handed out yet.
    residue: u32,
    buf: Vec<u8>,
}

impl SimpleDecoder {
    pub fn new() -> Self {
        SimpleDecoder::default()
    }

    /// True between the pieces of a literal run: the stream must not end here.
    pub fn in_literal(&self) -> bool {
        self.residue > 0
    }
}

impl Decode for SimpleDecoder {
    fn next<'s>(&'s mut self, r: &mut Reader<'_>) -> Result<Decoded<'s>, WireError> {
        let start = r.position();
        let mut residue = self.residue;
        if residue == 0 {
            let v = r.i32()?;
            if v == 0 {
                return Ok(Decoded::End);
            }
            if v < 0 {
                // -(v + 1) for v = i32::MIN is i32::MAX, one past the largest index a
                // sum header can describe: no honest sender produces it.
                if v == i32::MIN {
                    return Err(WireError::OutOfRange {
                        what: "block token",
                        value: v as i64,
                        lo: i32::MIN as i64 + 1,
                        hi: 0,
                    });
                }
                return Ok(Decoded::Block((-(v + 1)) as u32));
            }
            residue = v as u32;
        }
        let avail = r.remaining().len();
        if avail == 0 {
            // Leave the run's header unread so a retry after rewinding starts cleanly.
            r.rewind(start);
            return Err(WireError::Incomplete);
        }
        let n = (residue as usize).min(CHUNK_SIZE).min(avail);
        let data = r.bytes(n)?;
        self.residue = residue - n as u32;
        self.buf.clear();
        self.buf.extend_from_slice(data);
        Ok(Decoded::Literal(&self.buf))
    }

    fn saw_block(&mut self, _data: &[u8]) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes everything in `wire`, feeding it `step` bytes at a time the way a socket
    /// reader would, and returns the tokens with adjacent literal pieces joined.
    fn decode_all(wire: &[u8], step: usize) -> Vec<Tok> {
        let mut d = SimpleDecoder::new();
        let mut have = 0usize;
        let mut consumed = 0usize;
        let mut toks = Vec::new();
        loop {
            let mut r = Reader::new(&wire[consumed..have]);
            match d.next(&mut r) {
                Ok(Decoded::Literal(b)) => {
                    assert!(!b.is_empty() && b.len() <= CHUNK_SIZE);
                    match toks.last_mut() {
                        Some(Tok::Lit(v)) => v.extend_from_slice(b),
                        _ => toks.push(Tok::Lit(b.to_vec())),
                    }
                }
                Ok(Decoded::Block(i)) => toks.push(Tok::Blk(i)),
                Ok(Decoded::End) => {
                    toks.push(Tok::End);
                    consumed += r.position();
                    assert_eq!(consumed, wire.len());
                    return toks;
                }
                Err(WireError::Incomplete) => {
                    assert!(have < wire.len(), "stream ended early");
                    have = (have + step).min(wire.len());
                    continue;
                }
                Err(e) => panic!("{e}"),
            }
            consumed += r.position();
        }
    }

    #[derive(Debug, PartialEq)]
    enum Tok {
        Lit(Vec<u8>),
        Blk(u32),
        End,
    }

    #[test]
    fn simple_tokens_round_trip_in_any_pieces() {
        let big: Vec<u8> = (0..CHUNK_SIZE * 2 + 5).map(|i| (i % 251) as u8).collect();
        let mut e = SimpleEncoder::new();
        let mut wire = Vec::new();
        e.literal(&mut wire, b"hello");
        e.matched(&mut wire, 0, b"");
        e.matched(&mut wire, 7, b"");
        e.literal(&mut wire, &big);
        e.literal(&mut wire, b"");
        e.end(&mut wire);
        // hello: len 5 + bytes; block 0 is -1, block 7 is -8.
        assert_eq!(&wire[..9], &[5, 0, 0, 0, b'h', b'e', b'l', b'l', b'o']);
        assert_eq!(&wire[9..17], &[0xff, 0xff, 0xff, 0xff, 0xf8, 0xff, 0xff, 0xff]);
        // The big run goes out as three runs of at most CHUNK_SIZE.
        assert_eq!(&wire[17..21], &(CHUNK_SIZE as i32).to_le_bytes());
        let want = vec![Tok::Lit(b"hello".to_vec()), Tok::Blk(0), Tok::Blk(7), Tok::Lit(big.clone()), Tok::End];
        for step in [1, 3, 4, 1000, wire.len()] {
            assert_eq!(decode_all(&wire, step), want, "step {step}");
        }
    }

    #[test]
    fn long_runs_from_other_peers_are_streamed() {
        // Some peers send runs longer than CHUNK_SIZE (64 KiB blocks); they must come out
        // in pieces, never needing a buffer the size of the run.
        let run: Vec<u8> = (0..70_000).map(|i| (i * 13) as u8).collect();
        let mut wire = Vec::new();
        put_i32(&mut wire, run.len() as i32);
        wire.extend_from_slice(&run);
        put_i32(&mut wire, 0);
        assert_eq!(decode_all(&wire, 4096), vec![Tok::Lit(run), Tok::End]);
    }

    #[test]
    fn cut_headers_are_incomplete_and_nonsense_refused() {
        let mut d = SimpleDecoder::new();
        let wire = [5u8, 0, 0];
        let mut r = Reader::new(&wire);
        assert_eq!(d.next(&mut r), Err(WireError::Incomplete));
        // A run header with none of its bytes yet leaves the header unread.
        let wire = [5u8, 0, 0, 0];
        let mut r = Reader::new(&wire);
        assert_eq!(d.next(&mut r), Err(WireError::Incomplete));
        assert_eq!(r.position(), 0);
        assert!(!d.in_literal());
        let wire = i32::MIN.to_le_bytes();
        assert!(matches!(d.next(&mut Reader::new(&wire)), Err(WireError::OutOfRange { .. })));
        let wire = (i32::MIN + 1).to_le_bytes();
        assert_eq!(d.next(&mut Reader::new(&wire)), Ok(Decoded::Block(i32::MAX as u32 - 1)));
    }
}
