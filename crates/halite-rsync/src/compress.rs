//! The compressed token streams negotiated with `-z`: zstd, lz4, zlibx and zlib (token.c's
//! send/recv_deflated_token, send/recv_zstd_token and send/recv_compressed_token).
//!
//! All four share one framing, in which a flag byte says what follows:
//!
//! | flag                  | meaning                                                     |
//! |-----------------------|-------------------------------------------------------------|
//! | `0x00`                | end of this file's tokens                                   |
//! | `0x40 + hi`, `lo`     | `hi << 8 \| lo` (≤ 16383) bytes of compressed data follow   |
//! | `0x80 + r`            | block `last + r` (r ≤ 63)                                   |
//! | `0xc0 + r`, `n` (u16) | blocks `last + r ..= last + r + n`                          |
//! | `0x20`, `i` (i32)     | block `i`                                                   |
//! | `0x21`, `i`, `n`      | blocks `i ..= i + n`                                        |
//!
//! `last` is the final block of the previous run in this file (0 at its start). The sender
//! holds a block back until the next token shows whether it extends a run, so runs of
//! consecutive blocks cost a few bytes whatever their length.
//!
//! How the compressed bytes relate to the literal data differs per kind:
//!
//! * zlibx and zlib are one raw deflate stream per file (window 2^15). Before each block
//!   token or the end mark, the sender finishes the pending data with a sync flush and
//!   drops the flush's final `00 00 ff ff` (the length fields of an empty stored block);
//!   the receiver puts those 4 bytes back when a non-data flag follows data. zlib also
//!   adds each matched block to the window: the sender feeds it to its compressor and
//!   throws the output away, the receiver feeds it to its inflater as a stored block it
//!   makes up. The receiver only cares that both windows hold the same bytes, so this
//!   works with any deflate implementation — the reference's own build against a stock
//!   zlib (no `Z_INSERT_ONLY`) does exactly that — and since a window reaches back 32 KiB
//!   at most, only the last 32 KiB of matched data before the next literal is fed, once.
//! * zstd is one stream for the whole connection, flushed (`ZSTD_e_flush`) where deflate
//!   is sync-flushed and never ended.
//! * lz4 compresses each data chunk as an independent block.
//!
//! Decoders keep at most one compressed chunk and hand out literal data at most about
//! [`CHUNK_SIZE`] bytes per call, so a chunk that inflates a thousandfold costs calls, not
//! memory. zstd's window is capped at 2^27 bytes, its library default and what the
//! reference's highest level uses.
//!
//! Crates: `flate2` (already in the workspace; its default miniz_oxide backend is pure
//! Rust and exposes raw deflate with sync flushes in safe code), `zstd` (bindings to the
//! reference zstd library: no pure-Rust zstd encoder offers the streaming flush the
//! format needs), `lz4_flex` (the LZ4 block format the reference's `LZ4_compress_default`
//! and `LZ4_decompress_safe` use, in safe Rust, without the frame format it does not use).

use std::fmt;

use flate2::{Compress, Decompress, FlushCompress, FlushDecompress, Status};
use xxhash_rust::xxh3::xxh3_64;
use zstd::stream::raw::{DParameter, InBuffer, Operation, OutBuffer};

use crate::token::{Decode, Decoded, Encode, SimpleDecoder, SimpleEncoder, CHUNK_SIZE};
use crate::wire::{put_i32, Reader, WireError};

const END_FLAG: u8 = 0x00;
const TOKEN_LONG: u8 = 0x20;
const TOKENRUN_LONG: u8 = 0x21;
const DEFLATED_DATA: u8 = 0x40;
const TOKEN_REL: u8 = 0x80;
const TOKENRUN_REL: u8 = 0xc0;

/// The most compressed bytes one data flag can announce (14 bits).
const MAX_DATA_COUNT: usize = 16383;
/// The largest block index the reference accepts in a compressed stream.
const MAX_TOKEN_INDEX: u32 = 0x7fff_fffe;
/// A run names at most this many blocks after its first (a 16-bit count).
const MAX_RUN: u32 = 0xffff;
/// How far back a raw deflate stream with 15 window bits can refer.
const WINDOW: usize = 1 << 15;
/// The longest stored deflate block, which is also how the reference splits a matched
/// block before feeding it to zlib.
const MAX_STORED: usize = 0xffff;
/// The tail of every sync flush, which the sender drops and the receiver puts back.
const SYNC_TAIL: [u8; 4] = [0, 0, 0xff, 0xff];

/// Output buffer per inflate call: the reference's AVAIL_OUT_SIZE(CHUNK_SIZE). A chunk of
/// compressed data can inflate a thousandfold; it is handed out in pieces of this size.
const INFLATE_OUT: usize = CHUNK_SIZE * 1001 / 1000 + 16;
/// Output buffer per zstd decompression call.
const ZSTD_OUT: usize = CHUNK_SIZE;
/// The reference decompresses an lz4 block into max(LZ4_compressBound(CHUNK_SIZE),
/// MAX_DATA_COUNT + 2) bytes: a block that needs more is refused there, and here.
const LZ4_OUT: usize = CHUNK_SIZE + CHUNK_SIZE / 255 + 16;
/// zstd's own default limit, set explicitly so the decoder's window memory (2^27 bytes at
/// most) does not depend on the library version. The reference's sender at level 22
/// uses this window, so a lower limit would refuse honest peers.
const ZSTD_WINDOW_LOG_MAX: u32 = 27;

/// A compression the `-z` option can negotiate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    Zstd,
    Lz4,
    Zlibx,
    Zlib,
    None,
}

impl Compression {
    /// What this crate offers, best first: the reference's default list (compat.c
    /// valid_compressions_items), every entry of which works in both directions here.
    pub const PREFERRED: [Compression; 5] =
        [Compression::Zstd, Compression::Lz4, Compression::Zlibx, Compression::Zlib, Compression::None];

    /// The name in negotiation strings and `--compress-choice`.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Zstd => "zstd",
            Compression::Lz4 => "lz4",
            Compression::Zlibx => "zlibx",
            Compression::Zlib => "zlib",
            Compression::None => "none",
        }
    }

    /// The reference compares names without regard to case.
    pub fn from_name(name: &str) -> Option<Compression> {
        Compression::PREFERRED.into_iter().find(|c| c.name().eq_ignore_ascii_case(name))
    }

    /// The level the reference settles on for a `--compress-level` (None: not given), as
    /// token.c's init_compression_level does on both sides. `None` back means that level
    /// switches compression off (zlib's level 0), which both peers then agree on.
    pub fn level(self, requested: Option<i32>) -> Option<i32> {
        match self {
            Compression::None => None,
            Compression::Zlib | Compression::Zlibx => match requested {
                Some(0) => None,
                None | Some(-1) => Some(6),
                Some(l) => Some(l.clamp(1, 9)),
            },
            Compression::Zstd => {
                let range = zstd::compression_level_range();
                match requested {
                    None | Some(0) => Some(zstd::DEFAULT_COMPRESSION_LEVEL),
                    Some(l) => Some(l.clamp(*range.start(), *range.end())),
                }
            }
            Compression::Lz4 => Some(0),
        }
    }
}

impl Compression {
    /// What actually runs for this choice and level: [`Compression::None`] where the
    /// level switches compression off. Pick both the encoder and the decoder with it.
    pub fn effective(self, level: Option<i32>) -> Compression {
        match self.level(level) {
            Some(_) => self,
            None => Compression::None,
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The encoder for a connection of protocol 31 or later. `level` is as given by the
/// client; it goes through [`Compression::level`], and one that switches compression off
/// gives the uncompressed stream (see [`Compression::effective`]).
pub fn encoder(kind: Compression, level: Option<i32>) -> Box<dyn Encode + Send> {
    encoder_for_protocol(kind, level, 31)
}

/// The decoder for a connection of protocol 31 or later.
pub fn decoder(kind: Compression) -> Box<dyn Decode + Send> {
    decoder_for_protocol(kind, 31)
}

/// As [`encoder`]; before protocol 31 zlib fed the first 65535 bytes of a longer matched
/// block to its dictionary over and over, and both peers must repeat that.
pub fn encoder_for_protocol(kind: Compression, level: Option<i32>, protocol: i32) -> Box<dyn Encode + Send> {
    let legacy = protocol < 31;
    match (kind, kind.level(level)) {
        (Compression::None, _) | (_, None) => Box::new(SimpleEncoder::new()),
        (Compression::Zlibx, Some(l)) => Box::new(DeflateEncoder::new(l, false, legacy)),
        (Compression::Zlib, Some(l)) => Box::new(DeflateEncoder::new(l, true, legacy)),
        (Compression::Zstd, Some(l)) => Box::new(ZstdEncoder::new(l)),
        (Compression::Lz4, Some(_)) => Box::new(Lz4Encoder::new()),
    }
}

/// As [`decoder`], for any protocol (see [`encoder_for_protocol`]).
pub fn decoder_for_protocol(kind: Compression, protocol: i32) -> Box<dyn Decode + Send> {
    let legacy = protocol < 31;
    match kind {
        Compression::None => Box::new(SimpleDecoder::new()),
        Compression::Zlibx => Box::new(DeflateDecoder::new(false, legacy)),
        Compression::Zlib => Box::new(DeflateDecoder::new(true, legacy)),
        Compression::Zstd => Box::new(ZstdDecoder::new()),
        Compression::Lz4 => Box::new(Lz4Decoder::new()),
    }
}

// ---------------------------------------------------------------------------------------
// Shared framing

/// Appends compressed bytes as data chunks.
fn put_data(out: &mut Vec<u8>, data: &[u8]) {
    for chunk in data.chunks(MAX_DATA_COUNT) {
        out.push(DEFLATED_DATA | (chunk.len() >> 8) as u8);
        out.push(chunk.len() as u8);
        out.extend_from_slice(chunk);
    }
}

/// The sender's run of consecutive blocks not written yet.
#[derive(Debug, Default)]
struct Runs {
    /// First and last block of the pending run.
    run: Option<(u32, u32)>,
    /// Last block of the run written before; relative tokens count from it.
    last_run_end: u32,
}

impl Runs {
    fn push(&mut self, out: &mut Vec<u8>, index: u32) {
        if let Some((start, last)) = self.run {
            if index as u64 == last as u64 + 1 && (index as u64) <= start as u64 + MAX_RUN as u64 {
                self.run = Some((start, index));
                return;
            }
        }
        self.flush(out);
        self.run = Some((index, index));
    }

    fn flush(&mut self, out: &mut Vec<u8>) {
        let Some((start, last)) = self.run.take() else {
            return;
        };
        let rel = start as i64 - self.last_run_end as i64;
        let more = last - start;
        if (0..=63).contains(&rel) {
            let base = if more == 0 { TOKEN_REL } else { TOKENRUN_REL };
            out.push(base + rel as u8);
        } else {
            out.push(if more == 0 { TOKEN_LONG } else { TOKENRUN_LONG });
            put_i32(out, start as i32);
        }
        if more != 0 {
            out.extend_from_slice(&(more as u16).to_le_bytes());
        }
        self.last_run_end = last;
    }

    fn reset(&mut self) {
        *self = Runs::default();
    }
}

/// One parsed flag with what follows it.
enum Header<'a> {
    Data(&'a [u8]),
    End,
    /// A block and how many consecutive blocks follow it.
    Block {
        index: u32,
        run: u32,
    },
}

/// Reads one flag and its operands. Nothing but `r` changes, so an `Incomplete` here
/// leaves the decoder as it was.
fn read_header<'a>(r: &mut Reader<'a>, last: u32) -> Result<Header<'a>, WireError> {
    let flag = r.u8()?;
    if flag & 0xc0 == DEFLATED_DATA {
        let lo = r.u8()?;
        let n = ((flag as usize & 0x3f) << 8) | lo as usize;
        return Ok(Header::Data(r.bytes(n)?));
    }
    if flag == END_FLAG {
        return Ok(Header::End);
    }
    let (index, has_run) = if flag & TOKEN_REL != 0 {
        // `last` never exceeds MAX_TOKEN_INDEX, so this cannot wrap.
        (last + (flag & 0x3f) as u32, flag & 0x40 != 0)
    } else if flag == TOKEN_LONG || flag == TOKENRUN_LONG {
        let v = r.i32()?;
        if v < 0 {
            return Err(token_out_of_range(v as i64));
        }
        (v as u32, flag == TOKENRUN_LONG)
    } else {
        return Err(WireError::Invalid(format!("unknown flag {flag:#04x} in compressed token stream")));
    };
    if index > MAX_TOKEN_INDEX {
        return Err(token_out_of_range(index as i64));
    }
    let run = if has_run { r.u16()? as u32 } else { 0 };
    if has_run && (run == 0 || index > MAX_TOKEN_INDEX - run) {
        return Err(WireError::OutOfRange {
            what: "block run in compressed token stream",
            value: run as i64,
            lo: 1,
            hi: (MAX_TOKEN_INDEX - index).min(MAX_RUN) as i64,
        });
    }
    Ok(Header::Block { index, run })
}

fn token_out_of_range(v: i64) -> WireError {
    WireError::OutOfRange {
        what: "block index in compressed token stream",
        value: v,
        lo: 0,
        hi: MAX_TOKEN_INDEX as i64,
    }
}

/// The receiver's position in the block numbering.
#[derive(Debug, Default)]
struct RxTokens {
    last: u32,
    run_left: u32,
}

impl RxTokens {
    fn start(&mut self, index: u32, run: u32) -> u32 {
        self.last = index;
        self.run_left = run;
        index
    }

    fn next_in_run(&mut self) -> Option<u32> {
        if self.run_left == 0 {
            return None;
        }
        // read_header checked that the whole run stays within MAX_TOKEN_INDEX.
        self.run_left -= 1;
        self.last += 1;
        Some(self.last)
    }
}

/// Data chunks a call took before it ran into an incomplete header.
///
/// A chunk can inflate to nothing yet (zstd emits nothing until a whole block is in), so a
/// call may feed its decompressor one chunk and then find the next header cut off. The
/// caller then rewinds to where the call started and hands the same bytes back, plus more;
/// the decompressor must not see them twice. The bytes are identified by length and hash
/// rather than kept: the caller holds them anyway.
#[derive(Debug, Default)]
struct Taken {
    len: usize,
    hash: u64,
}

impl Taken {
    /// Skips what an earlier call took, checking it is what was taken.
    fn skip(&mut self, r: &mut Reader<'_>) -> Result<(), WireError> {
        if self.len == 0 {
            return Ok(());
        }
        let rem = r.remaining();
        if rem.len() < self.len || xxh3_64(&rem[..self.len]) != self.hash {
            return Err(invalid("token stream handed back changed after an incomplete read"));
        }
        r.rewind(r.position() + self.len);
        *self = Taken::default();
        Ok(())
    }

    /// Notes the bytes from `call_start` to the cut-off header at `header_start`, and
    /// leaves `r` where the caller expects it.
    fn record(&mut self, r: &mut Reader<'_>, call_start: usize, header_start: usize) {
        r.rewind(call_start);
        let len = header_start - call_start;
        if len > 0 {
            self.len = len;
            self.hash = xxh3_64(&r.remaining()[..len]);
        }
    }
}

fn invalid(what: impl fmt::Display) -> WireError {
    WireError::Invalid(what.to_string())
}

/// The last [`WINDOW`] bytes of the blocks matched since the last literal data: what zlib
/// adds to both peers' windows.
#[derive(Debug, Default)]
struct History {
    buf: Vec<u8>,
}

impl History {
    fn add(&mut self, block: &[u8], legacy: bool) {
        if legacy && block.len() > MAX_STORED {
            // Before protocol 31 each 65535-byte piece was taken from the block's start.
            let head = &block[..MAX_STORED];
            let mut left = block.len();
            while left > 0 {
                let n = left.min(MAX_STORED);
                self.push(&head[..n]);
                left -= n;
            }
        } else {
            self.push(block);
        }
    }

    fn push(&mut self, data: &[u8]) {
        if data.len() >= WINDOW {
            self.buf.clear();
            self.buf.extend_from_slice(&data[data.len() - WINDOW..]);
            return;
        }
        self.buf.extend_from_slice(data);
        if self.buf.len() > 2 * WINDOW {
            let cut = self.buf.len() - WINDOW;
            self.buf.drain(..cut);
        }
    }

    fn window(&self) -> &[u8] {
        &self.buf[self.buf.len().saturating_sub(WINDOW)..]
    }

    fn clear(&mut self) {
        self.buf.clear();
    }
}

// ---------------------------------------------------------------------------------------
// zlib and zlibx

struct DeflateEncoder {
    comp: Compress,
    /// zlib: matched blocks join the window. zlibx: they don't.
    insert: bool,
    legacy: bool,
    history: History,
    runs: Runs,
    /// Compressed bytes not framed yet: the tail of a flush must be seen whole.
    pending: Vec<u8>,
    /// Data went into the compressor since the last sync flush.
    flush_pending: bool,
    scratch: Vec<u8>,
}

impl DeflateEncoder {
    fn new(level: i32, insert: bool, legacy: bool) -> Self {
        DeflateEncoder {
            comp: Compress::new(flate2::Compression::new(level as u32), false),
            insert,
            legacy,
            history: History::default(),
            runs: Runs::default(),
            pending: Vec::new(),
            flush_pending: false,
            scratch: vec![0; 2 * CHUNK_SIZE],
        }
    }

    /// Runs `input` through the compressor, handing each piece of output to `sink`, until
    /// all input is taken and (for a flush) all output is out.
    fn deflate(&mut self, mut input: &[u8], flush: FlushCompress, keep: bool) {
        loop {
            let (in0, out0) = (self.comp.total_in(), self.comp.total_out());
            // Compressing memory into memory with valid settings has no failure mode in
            // miniz_oxide; an error here is a bug, not something a peer can cause.
            self.comp.compress(input, &mut self.scratch, flush).expect("raw deflate of in-memory data");
            let used = (self.comp.total_in() - in0) as usize;
            let made = (self.comp.total_out() - out0) as usize;
            input = &input[used..];
            if keep {
                self.pending.extend_from_slice(&self.scratch[..made]);
            }
            // A full output buffer may mean more output is waiting.
            if input.is_empty() && made < self.scratch.len() {
                break;
            }
            if used == 0 && made == 0 {
                debug_assert!(false, "deflate made no progress");
                break;
            }
        }
    }

    /// Finishes the pending data so the receiver can return it before the next token.
    fn sync(&mut self, out: &mut Vec<u8>) {
        if !self.flush_pending {
            return;
        }
        self.flush_pending = false;
        self.deflate(&[], FlushCompress::Sync, true);
        debug_assert!(self.pending.ends_with(&SYNC_TAIL));
        if self.pending.ends_with(&SYNC_TAIL) {
            self.pending.truncate(self.pending.len() - SYNC_TAIL.len());
        }
        put_data(out, &self.pending);
        self.pending.clear();
    }
}

impl Encode for DeflateEncoder {
    fn literal(&mut self, out: &mut Vec<u8>, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        self.runs.flush(out);
        if self.insert && !self.history.buf.is_empty() {
            // The compressor is at a flush point (the block token that filled the history
            // came after one), so this only grows its window; the output is the
            // receiver's own to rebuild.
            let history = std::mem::take(&mut self.history);
            self.deflate(history.window(), FlushCompress::Sync, false);
            self.history = history;
            self.history.clear();
        }
        self.deflate(data, FlushCompress::None, true);
        self.flush_pending = true;
        let whole = self.pending.len() / MAX_DATA_COUNT * MAX_DATA_COUNT;
        if whole > 0 {
            put_data(out, &self.pending[..whole]);
            self.pending.drain(..whole);
        }
    }

    fn matched(&mut self, out: &mut Vec<u8>, index: u32, data: &[u8]) {
        self.sync(out);
        self.runs.push(out, index);
        if self.insert {
            self.history.add(data, self.legacy);
        }
    }

    fn end(&mut self, out: &mut Vec<u8>) {
        self.sync(out);
        self.runs.flush(out);
        out.push(END_FLAG);
        // Each file is its own deflate stream.
        self.comp.reset();
        self.history.clear();
        self.runs.reset();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rx {
    /// Between tokens; the inflater is at a block boundary.
    Idle,
    /// A data chunk is being inflated.
    Inflating,
    /// Data was inflated; if a token follows, the flush's tail must be put back first.
    Inflated,
}

struct DeflateDecoder {
    inflate: Decompress,
    insert: bool,
    legacy: bool,
    history: History,
    state: Rx,
    tokens: RxTokens,
    cbuf: Vec<u8>,
    cpos: usize,
    dbuf: Vec<u8>,
    taken: Taken,
    /// After a protocol error every call repeats it: the stream cannot be resumed.
    failed: Option<WireError>,
}

impl DeflateDecoder {
    fn new(insert: bool, legacy: bool) -> Self {
        DeflateDecoder {
            inflate: Decompress::new(false),
            insert,
            legacy,
            history: History::default(),
            state: Rx::Idle,
            tokens: RxTokens::default(),
            cbuf: Vec::with_capacity(MAX_DATA_COUNT),
            cpos: 0,
            dbuf: vec![0; INFLATE_OUT],
            taken: Taken::default(),
            failed: None,
        }
    }

    fn fail(&mut self, e: WireError) -> WireError {
        self.failed = Some(e.clone());
        e
    }

    /// One inflate call on the current chunk; returns how many bytes it put in `dbuf`.
    fn inflate_step(&mut self) -> Result<usize, WireError> {
        let (in0, out0) = (self.inflate.total_in(), self.inflate.total_out());
        let status = self
            .inflate
            .decompress(&self.cbuf[self.cpos..], &mut self.dbuf, FlushDecompress::None)
            .map_err(|e| invalid(format_args!("inflate: {e}")))?;
        if status == Status::StreamEnd {
            return Err(invalid("deflate stream ended inside a file"));
        }
        let used = (self.inflate.total_in() - in0) as usize;
        let made = (self.inflate.total_out() - out0) as usize;
        self.cpos += used;
        if self.cpos == self.cbuf.len() && made < self.dbuf.len() {
            self.state = Rx::Inflated;
        } else if used == 0 && made == 0 {
            return Err(invalid("inflate made no progress"));
        }
        Ok(made)
    }

    /// Feeds `input` and checks it inflates to exactly `expect` bytes (output discarded).
    fn inflate_exactly(&mut self, mut input: &[u8], expect: usize) -> Result<(), WireError> {
        let mut made_total = 0usize;
        loop {
            let (in0, out0) = (self.inflate.total_in(), self.inflate.total_out());
            let status = self
                .inflate
                .decompress(input, &mut self.dbuf, FlushDecompress::Sync)
                .map_err(|e| invalid(format_args!("inflate: {e}")))?;
            let used = (self.inflate.total_in() - in0) as usize;
            let made = (self.inflate.total_out() - out0) as usize;
            input = &input[used..];
            made_total += made;
            if status == Status::StreamEnd || made_total > expect {
                break;
            }
            if input.is_empty() && made < self.dbuf.len() {
                break;
            }
            if used == 0 && made == 0 {
                break;
            }
        }
        if made_total != expect || !input.is_empty() {
            return Err(invalid("the deflate decompressor lost sync"));
        }
        Ok(())
    }

    /// Puts back the `00 00 ff ff` the sender dropped after its sync flush.
    fn restore_tail(&mut self) -> Result<(), WireError> {
        self.inflate_exactly(&SYNC_TAIL, 0)?;
        self.state = Rx::Idle;
        Ok(())
    }

    /// zlib: gives the inflater the matched data as a stored block, as the sender gave
    /// it to its compressor.
    fn feed_history(&mut self) -> Result<(), WireError> {
        if !self.insert || self.history.buf.is_empty() {
            return Ok(());
        }
        let history = std::mem::take(&mut self.history);
        let data = history.window();
        // A non-final stored block; the stream is byte-aligned here, so the 5 padding
        // bits after the 3 header bits are all this byte holds.
        let len = data.len() as u16;
        let mut block = Vec::with_capacity(5 + data.len());
        block.push(0);
        block.extend_from_slice(&len.to_le_bytes());
        block.extend_from_slice(&(!len).to_le_bytes());
        block.extend_from_slice(data);
        let r = self.inflate_exactly(&block, data.len());
        // Keep the allocation for the next run of blocks.
        self.history = history;
        self.history.clear();
        r
    }

    fn end_file(&mut self) {
        self.inflate.reset(false);
        self.history.clear();
        self.state = Rx::Idle;
        self.tokens = RxTokens::default();
    }
}

impl Decode for DeflateDecoder {
    fn next<'s>(&'s mut self, r: &mut Reader<'_>) -> Result<Decoded<'s>, WireError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if let Some(i) = self.tokens.next_in_run() {
            return Ok(Decoded::Block(i));
        }
        let call_start = r.position();
        if let Err(e) = self.taken.skip(r) {
            return Err(self.fail(e));
        }
        loop {
            if self.state == Rx::Inflating {
                match self.inflate_step() {
                    Ok(0) => continue,
                    Ok(n) => return Ok(Decoded::Literal(&self.dbuf[..n])),
                    Err(e) => return Err(self.fail(e)),
                }
            }
            let start = r.position();
            let header = match read_header(r, self.tokens.last) {
                Ok(h) => h,
                Err(WireError::Incomplete) => {
                    self.taken.record(r, call_start, start);
                    return Err(WireError::Incomplete);
                }
                Err(e) => return Err(self.fail(e)),
            };
            match header {
                Header::Data(data) => {
                    if data.is_empty() {
                        // The reference's inflate refuses an empty chunk too.
                        return Err(self.fail(invalid("empty compressed data chunk")));
                    }
                    if self.state == Rx::Idle {
                        if let Err(e) = self.feed_history() {
                            return Err(self.fail(e));
                        }
                    }
                    self.cbuf.clear();
                    self.cbuf.extend_from_slice(data);
                    self.cpos = 0;
                    self.state = Rx::Inflating;
                }
                Header::End => {
                    if self.state == Rx::Inflated {
                        if let Err(e) = self.restore_tail() {
                            return Err(self.fail(e));
                        }
                    }
                    self.end_file();
                    return Ok(Decoded::End);
                }
                Header::Block { index, run } => {
                    if self.state == Rx::Inflated {
                        if let Err(e) = self.restore_tail() {
                            return Err(self.fail(e));
                        }
                    }
                    return Ok(Decoded::Block(self.tokens.start(index, run)));
                }
            }
        }
    }

    fn saw_block(&mut self, data: &[u8]) {
        if self.insert && self.failed.is_none() {
            self.history.add(data, self.legacy);
        }
    }
}

// ---------------------------------------------------------------------------------------
// zstd

struct ZstdEncoder {
    cctx: zstd::stream::raw::Encoder<'static>,
    runs: Runs,
    flush_pending: bool,
    obuf: Vec<u8>,
}

impl ZstdEncoder {
    fn new(level: i32) -> Self {
        ZstdEncoder {
            // Only an allocation failure makes this fail.
            cctx: zstd::stream::raw::Encoder::new(level).expect("zstd compression context"),
            runs: Runs::default(),
            flush_pending: false,
            obuf: vec![0; MAX_DATA_COUNT],
        }
    }

    fn sync(&mut self, out: &mut Vec<u8>) {
        if !self.flush_pending {
            return;
        }
        self.flush_pending = false;
        loop {
            let mut ob = OutBuffer::around(&mut self.obuf[..]);
            // zstd reports errors only for misuse or a failed allocation.
            let left = self.cctx.flush(&mut ob).expect("zstd flush");
            let n = ob.pos();
            put_data(out, &self.obuf[..n]);
            if left == 0 {
                break;
            }
        }
    }
}

impl Encode for ZstdEncoder {
    fn literal(&mut self, out: &mut Vec<u8>, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        self.runs.flush(out);
        let mut input = data;
        // Output that does not fill a chunk yet stays in the context until the flush.
        while !input.is_empty() {
            let status = self.cctx.run_on_buffers(input, &mut self.obuf).expect("zstd compress");
            input = &input[status.bytes_read..];
            put_data(out, &self.obuf[..status.bytes_written]);
        }
        self.flush_pending = true;
    }

    fn matched(&mut self, out: &mut Vec<u8>, index: u32, _data: &[u8]) {
        self.sync(out);
        self.runs.push(out, index);
    }

    fn end(&mut self, out: &mut Vec<u8>) {
        self.sync(out);
        self.runs.flush(out);
        out.push(END_FLAG);
        // The zstd stream itself runs on into the next file.
        self.runs.reset();
    }
}

struct ZstdDecoder {
    dctx: zstd::stream::raw::Decoder<'static>,
    inflating: bool,
    tokens: RxTokens,
    cbuf: Vec<u8>,
    cpos: usize,
    dbuf: Vec<u8>,
    taken: Taken,
    failed: Option<WireError>,
}

impl ZstdDecoder {
    fn new() -> Self {
        let mut dctx = zstd::stream::raw::Decoder::new().expect("zstd decompression context");
        dctx.set_parameter(DParameter::WindowLogMax(ZSTD_WINDOW_LOG_MAX)).expect("zstd window limit");
        ZstdDecoder {
            dctx,
            inflating: false,
            tokens: RxTokens::default(),
            cbuf: Vec::with_capacity(MAX_DATA_COUNT),
            cpos: 0,
            dbuf: vec![0; ZSTD_OUT],
            taken: Taken::default(),
            failed: None,
        }
    }

    fn fail(&mut self, e: WireError) -> WireError {
        self.failed = Some(e.clone());
        e
    }

    fn step(&mut self) -> Result<usize, WireError> {
        let mut input = InBuffer::around(&self.cbuf[self.cpos..]);
        let mut output = OutBuffer::around(&mut self.dbuf[..]);
        self.dctx.run(&mut input, &mut output).map_err(|e| invalid(format_args!("zstd: {e}")))?;
        let (used, made) = (input.pos(), output.pos());
        self.cpos += used;
        // zstd has flushed all it can when it leaves room in the output.
        if self.cpos == self.cbuf.len() && made < self.dbuf.len() {
            self.inflating = false;
        } else if used == 0 && made == 0 {
            return Err(invalid("zstd made no progress"));
        }
        Ok(made)
    }
}

impl Decode for ZstdDecoder {
    fn next<'s>(&'s mut self, r: &mut Reader<'_>) -> Result<Decoded<'s>, WireError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if let Some(i) = self.tokens.next_in_run() {
            return Ok(Decoded::Block(i));
        }
        let call_start = r.position();
        if let Err(e) = self.taken.skip(r) {
            return Err(self.fail(e));
        }
        loop {
            if self.inflating {
                match self.step() {
                    Ok(0) => continue,
                    Ok(n) => return Ok(Decoded::Literal(&self.dbuf[..n])),
                    Err(e) => return Err(self.fail(e)),
                }
            }
            let start = r.position();
            match read_header(r, self.tokens.last) {
                Ok(Header::Data(data)) => {
                    self.cbuf.clear();
                    self.cbuf.extend_from_slice(data);
                    self.cpos = 0;
                    self.inflating = true;
                }
                Ok(Header::End) => {
                    self.tokens = RxTokens::default();
                    return Ok(Decoded::End);
                }
                Ok(Header::Block { index, run }) => return Ok(Decoded::Block(self.tokens.start(index, run))),
                Err(WireError::Incomplete) => {
                    self.taken.record(r, call_start, start);
                    return Err(WireError::Incomplete);
                }
                Err(e) => return Err(self.fail(e)),
            }
        }
    }

    fn saw_block(&mut self, _data: &[u8]) {}
}

// ---------------------------------------------------------------------------------------
// lz4

struct Lz4Encoder {
    runs: Runs,
    obuf: Vec<u8>,
}

impl Lz4Encoder {
    fn new() -> Self {
        Lz4Encoder { runs: Runs::default(), obuf: vec![0; lz4_flex::block::get_maximum_output_size(MAX_DATA_COUNT)] }
    }
}

impl Encode for Lz4Encoder {
    fn literal(&mut self, out: &mut Vec<u8>, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        self.runs.flush(out);
        let mut input = data;
        while !input.is_empty() {
            // As the reference: try a full chunk's worth of input and halve it until the
            // block fits in one chunk (incompressible data grows a little).
            let mut take = input.len().min(MAX_DATA_COUNT);
            loop {
                let n = lz4_flex::block::compress_into(&input[..take], &mut self.obuf)
                    .expect("lz4 output buffer sized for its input");
                if n <= MAX_DATA_COUNT {
                    put_data(out, &self.obuf[..n]);
                    break;
                }
                take /= 2;
            }
            input = &input[take..];
        }
    }

    fn matched(&mut self, out: &mut Vec<u8>, index: u32, _data: &[u8]) {
        self.runs.push(out, index);
    }

    fn end(&mut self, out: &mut Vec<u8>) {
        self.runs.flush(out);
        out.push(END_FLAG);
        self.runs.reset();
    }
}

struct Lz4Decoder {
    tokens: RxTokens,
    dbuf: Vec<u8>,
    failed: Option<WireError>,
}

impl Lz4Decoder {
    fn new() -> Self {
        Lz4Decoder { tokens: RxTokens::default(), dbuf: vec![0; LZ4_OUT], failed: None }
    }

    fn fail(&mut self, e: WireError) -> WireError {
        self.failed = Some(e.clone());
        e
    }
}

impl Decode for Lz4Decoder {
    fn next<'s>(&'s mut self, r: &mut Reader<'_>) -> Result<Decoded<'s>, WireError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if let Some(i) = self.tokens.next_in_run() {
            return Ok(Decoded::Block(i));
        }
        let start = r.position();
        match read_header(r, self.tokens.last) {
            Ok(Header::Data(data)) => match lz4_flex::block::decompress_into(data, &mut self.dbuf) {
                // The reference would take an empty block for the end mark.
                Ok(0) => Err(self.fail(invalid("empty lz4 block"))),
                Ok(n) => Ok(Decoded::Literal(&self.dbuf[..n])),
                Err(e) => Err(self.fail(invalid(format_args!("lz4: {e}")))),
            },
            Ok(Header::End) => {
                self.tokens = RxTokens::default();
                Ok(Decoded::End)
            }
            Ok(Header::Block { index, run }) => Ok(Decoded::Block(self.tokens.start(index, run))),
            Err(WireError::Incomplete) => {
                r.rewind(start);
                Err(WireError::Incomplete)
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    fn saw_block(&mut self, _data: &[u8]) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    const KINDS: [Compression; 4] = [Compression::Zstd, Compression::Lz4, Compression::Zlibx, Compression::Zlib];

    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(super) enum Tok {
        Lit(Vec<u8>),
        Block(u32),
        End,
    }

    pub(super) struct Rng(pub(super) u64);

    impl Rng {
        pub(super) fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        /// Words from a small vocabulary: compressible, yet blocks of a few hundred
        /// bytes are unique.
        pub(super) fn text(&mut self, n: usize) -> Vec<u8> {
            let mut out = Vec::with_capacity(n + 16);
            while out.len() < n {
                let w = self.next() % 3000;
                out.extend_from_slice(format!("w{w:x} ").as_bytes());
                if w.trailing_zeros() >= 4 {
                    out.push(b'\n');
                }
            }
            out.truncate(n);
            out
        }

        pub(super) fn noise(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.next() as u8).collect()
        }
    }

    pub(super) fn block(basis: &[u8], bs: usize, i: u32) -> Option<&[u8]> {
        let start = (i as usize).checked_mul(bs)?;
        (start < basis.len()).then(|| &basis[start..basis.len().min(start + bs)])
    }

    /// Encodes `toks` into one byte stream per End.
    pub(super) fn encode_files(enc: &mut dyn Encode, toks: &[Tok], basis: &[u8], bs: usize) -> Vec<Vec<u8>> {
        let mut files = Vec::new();
        let mut out = Vec::new();
        for t in toks {
            match t {
                Tok::Lit(d) => enc.literal(&mut out, d),
                Tok::Block(i) => enc.matched(&mut out, *i, block(basis, bs, *i).unwrap()),
                Tok::End => {
                    enc.end(&mut out);
                    files.push(std::mem::take(&mut out));
                }
            }
        }
        assert!(out.is_empty(), "tokens after the last end mark");
        files
    }

    fn encode(kind: Compression, toks: &[Tok], basis: &[u8], bs: usize) -> Vec<u8> {
        encode_files(&mut *encoder(kind, None), toks, basis, bs).concat()
    }

    /// Adjacent literals merged: how a run is split is the encoder's business.
    fn merged(toks: &[Tok]) -> Vec<Tok> {
        let mut out: Vec<Tok> = Vec::new();
        for t in toks {
            match (out.last_mut(), t) {
                (_, Tok::Lit(d)) if d.is_empty() => {}
                (Some(Tok::Lit(acc)), Tok::Lit(d)) => acc.extend_from_slice(d),
                _ => out.push(t.clone()),
            }
        }
        out
    }

    /// Decodes `files` files from `bytes`, showing the decoder `step` more bytes after
    /// each Incomplete (0: all at once), as a caller reading a socket would.
    fn decode(
        dec: &mut dyn Decode,
        bytes: &[u8],
        step: usize,
        basis: &[u8],
        bs: usize,
        files: usize,
    ) -> Result<Vec<Tok>, WireError> {
        let mut avail = if step == 0 { bytes.len() } else { step.min(bytes.len()) };
        let mut pos = 0;
        let mut toks = Vec::new();
        let mut ends = 0;
        let mut calls = 0;
        while ends < files {
            calls += 1;
            assert!(calls < 10_000_000, "decoder does not advance");
            let mut r = Reader::new(&bytes[..avail]);
            r.rewind(pos);
            let t = match dec.next(&mut r) {
                Ok(Decoded::Literal(d)) => {
                    assert!(!d.is_empty() && d.len() <= LZ4_OUT.max(INFLATE_OUT));
                    Tok::Lit(d.to_vec())
                }
                Ok(Decoded::Block(i)) => Tok::Block(i),
                Ok(Decoded::End) => Tok::End,
                Err(WireError::Incomplete) if avail < bytes.len() => {
                    avail = (avail + step.max(1)).min(bytes.len());
                    continue;
                }
                Err(e) => return Err(e),
            };
            pos = r.position();
            match t {
                Tok::Block(i) => dec.saw_block(block(basis, bs, i).unwrap_or(&[])),
                Tok::End => ends += 1,
                Tok::Lit(_) => {}
            }
            toks.push(t);
        }
        assert_eq!(pos, bytes.len(), "bytes left after the last end mark");
        Ok(toks)
    }

    fn check_round_trip(kind: Compression, toks: &[Tok], basis: &[u8], bs: usize, step: usize) {
        let bytes = encode(kind, toks, basis, bs);
        let files = toks.iter().filter(|t| **t == Tok::End).count();
        let got = decode(&mut *decoder(kind), &bytes, step, basis, bs, files).unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert!(merged(&got) == merged(toks), "{kind}: tokens differ");
    }

    fn scenario(rng: &mut Rng) -> (Vec<u8>, usize, Vec<Tok>) {
        let bs = 700;
        let basis = rng.text(150 * bs);
        let toks = vec![
            // A file of literal data, runs, near and far jumps, a backward jump.
            Tok::Lit(rng.text(5000)),
            Tok::Block(0),
            Tok::Block(1),
            Tok::Block(2),
            Tok::Lit(rng.noise(3000)),
            Tok::Block(7),
            Tok::Block(100),
            Tok::Block(3),
            Tok::Block(4),
            Tok::Lit(basis[10..2000].to_vec()),
            Tok::Block(149),
            Tok::End,
            // Tokens only.
            Tok::Block(5),
            Tok::Block(6),
            Tok::End,
            // Empty.
            Tok::End,
            // Literal only, some of it repeating the previous file.
            Tok::Lit(rng.text(1000)),
            Tok::Lit(basis[..3000].to_vec()),
            Tok::End,
        ];
        (basis, bs, toks)
    }

    #[test]
    fn round_trips_byte_by_byte() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let (basis, bs, toks) = scenario(&mut rng);
        for kind in KINDS {
            check_round_trip(kind, &toks, &basis, bs, 0);
            check_round_trip(kind, &toks, &basis, bs, 1);
        }
    }

    #[test]
    fn large_and_incompressible_literals_round_trip() {
        let mut rng = Rng(7);
        let basis = rng.text(4 * 70_000);
        let mut big = rng.text(200_000);
        big.extend(rng.noise(150_000));
        big.extend(vec![0u8; 1 << 20]);
        let toks =
            vec![Tok::Lit(big.clone()), Tok::Block(1), Tok::Lit(rng.noise(40_000)), Tok::End, Tok::Lit(big), Tok::End];
        for kind in KINDS {
            check_round_trip(kind, &toks, &basis, 70_000, 0);
            check_round_trip(kind, &toks, &basis, 70_000, 4093);
        }
    }

    #[test]
    fn runs_use_the_reference_flag_bytes() {
        let toks = |v: &[u32]| {
            let mut t: Vec<Tok> = v.iter().map(|&i| Tok::Block(i)).collect();
            t.push(Tok::End);
            t
        };
        let cases: [(&[u32], &[u8]); 6] = [
            (&[0, 1, 2], &[0xc0, 2, 0, 0]),
            (&[5], &[0x85, 0]),
            (&[70], &[0x20, 70, 0, 0, 0, 0]),
            (&[10, 11, 3], &[0xca, 1, 0, 0x20, 3, 0, 0, 0, 0]),
            (&[2, 65, 66], &[0x82, 0xff, 1, 0, 0]),
            (&[2, 66, 67], &[0x82, 0x21, 66, 0, 0, 0, 1, 0, 0]),
        ];
        for kind in KINDS {
            for (blocks, want) in cases {
                let t = toks(blocks);
                let basis = vec![7u8; 100 * 8];
                assert_eq!(encode(kind, &t, &basis, 8), want, "{kind} {blocks:?}");
                check_round_trip(kind, &t, &basis, 8, 1);
            }
        }
        // A run names at most 65536 blocks; the next run continues relative to it.
        let blocks: Vec<u32> = (0..=70_000).collect();
        let t = toks(&blocks);
        let basis = vec![1u8; 70_001];
        let bytes = encode(Compression::Zlibx, &t, &basis, 1);
        assert_eq!(bytes, [0xc0, 0xff, 0xff, 0xc1, 0x70, 0x11, 0]);
        for kind in KINDS {
            check_round_trip(kind, &t, &basis, 1, 0);
        }
    }

    #[test]
    fn zlib_windows_hold_matched_blocks() {
        let mut rng = Rng(99);
        for bs in [4000usize, 40_000, 100_000] {
            let basis = rng.noise(3 * bs);
            let again = block(&basis, bs, 1).unwrap().to_vec();
            let toks = vec![
                Tok::Lit(rng.noise(100)),
                Tok::Block(1),
                Tok::Lit(again[again.len().saturating_sub(20_000)..].to_vec()),
                Tok::End,
            ];
            let zlib = encode(Compression::Zlib, &toks, &basis, bs);
            let zlibx = encode(Compression::Zlibx, &toks, &basis, bs);
            assert!(zlib.len() * 4 < zlibx.len(), "{bs}: {} vs {}", zlib.len(), zlibx.len());
            check_round_trip(Compression::Zlib, &toks, &basis, bs, 0);
            // Without the block in its window the receiver cannot follow.
            let blind = decode(&mut *decoder(Compression::Zlibx), &zlib, 0, &basis, bs, 1);
            assert!(blind.map(|t| merged(&t) != merged(&toks)).unwrap_or(true));
            // Protocol 30's quirk for blocks over 65535 bytes, on both sides.
            let old = encode_files(&mut *encoder_for_protocol(Compression::Zlib, None, 30), &toks, &basis, bs).concat();
            let got = decode(&mut *decoder_for_protocol(Compression::Zlib, 30), &old, 0, &basis, bs, 1).unwrap();
            assert!(merged(&got) == merged(&toks));
        }
    }

    #[test]
    fn sync_flush_tail_is_dropped() {
        let mut e = encoder(Compression::Zlibx, None);
        let mut out = Vec::new();
        e.literal(&mut out, b"hello hello hello hello");
        e.end(&mut out);
        assert_eq!(out[0] & 0xc0, DEFLATED_DATA);
        let n = ((out[0] as usize & 0x3f) << 8) | out[1] as usize;
        assert_eq!(out.len(), 2 + n + 1);
        assert!(!out[..2 + n].ends_with(&SYNC_TAIL));
        assert_eq!(out[2 + n], END_FLAG);
    }

    #[test]
    fn truncated_streams_are_incomplete() {
        let mut rng = Rng(5);
        let (basis, bs, toks) = scenario(&mut rng);
        for kind in KINDS {
            let bytes = encode(kind, &toks, &basis, bs);
            for cut in (0..bytes.len()).step_by(97) {
                let r = decode(&mut *decoder(kind), &bytes[..cut], 0, &basis, bs, 4);
                assert_eq!(r, Err(WireError::Incomplete), "{kind} cut at {cut}");
            }
        }
    }

    /// Feeds `bytes` to a fresh decoder until it errs, runs dry or ends `files` files;
    /// a panic fails the test.
    fn chew(kind: Compression, bytes: &[u8], basis: &[u8], bs: usize) -> Result<(), WireError> {
        let mut dec = decoder(kind);
        let mut r = Reader::new(bytes);
        for _ in 0..200_000 {
            let t = match dec.next(&mut r)? {
                Decoded::Block(i) => Some(i),
                _ => None,
            };
            if let Some(i) = t {
                dec.saw_block(block(basis, bs, i).unwrap_or(&basis[..10]));
            }
        }
        Ok(())
    }

    #[test]
    fn hostile_input_gives_errors_not_panics() {
        let mut rng = Rng(12345);
        let (basis, bs, toks) = scenario(&mut rng);
        for kind in KINDS {
            let bytes = encode(kind, &toks, &basis, bs);
            for _ in 0..300 {
                let mut bad = bytes.clone();
                for _ in 0..1 + rng.next() % 4 {
                    let at = rng.next() as usize % bad.len();
                    bad[at] ^= 1 << (rng.next() % 8);
                }
                let _ = chew(kind, &bad, &basis, bs);
            }
            for _ in 0..200 {
                let len = (rng.next() % 3000) as usize;
                let mut junk = rng.noise(len);
                if let Some(b) = junk.first_mut() {
                    *b = DEFLATED_DATA | (*b & 0x3f);
                }
                let _ = chew(kind, &junk, &basis, bs);
            }
            // Protocol errors are refused, and stay refused.
            for bad in
                [&[0x05u8][..], &[0xc0, 0, 0], &[0x20, 0xff, 0xff, 0xff, 0xff], &[0x21, 0xfe, 0xff, 0xff, 0x7f, 1, 0]]
            {
                let mut dec = decoder(kind);
                let mut r = Reader::new(bad);
                let e = dec.next(&mut r).unwrap_err();
                assert_ne!(e, WireError::Incomplete, "{kind} {bad:02x?}");
                let mut r = Reader::new(&[0u8]);
                assert_eq!(dec.next(&mut r).unwrap_err(), e);
            }
        }
        // An empty lz4 block would read as the end mark to the reference.
        let mut dec = decoder(Compression::Lz4);
        assert!(dec.next(&mut Reader::new(&[0x40, 1, 0])).is_err());
        let mut dec = decoder(Compression::Zlibx);
        assert!(dec.next(&mut Reader::new(&[0x40, 0, 0])).is_err());
    }

    #[test]
    fn bombs_come_out_in_bounded_pieces() {
        for kind in KINDS {
            let mut out = Vec::new();
            let mut e = encoder(kind, Some(9));
            e.literal(&mut out, &vec![0u8; 8 << 20]);
            e.end(&mut out);
            let mut dec = decoder(kind);
            let mut r = Reader::new(&out);
            let (mut total, mut pieces) = (0usize, 0usize);
            loop {
                match dec.next(&mut r).unwrap() {
                    Decoded::Literal(d) => {
                        assert!(d.len() <= INFLATE_OUT.max(LZ4_OUT));
                        total += d.len();
                        pieces += 1;
                    }
                    Decoded::End => break,
                    Decoded::Block(_) => panic!("no blocks were sent"),
                }
            }
            assert_eq!(total, 8 << 20);
            assert!(pieces >= (8 << 20) / INFLATE_OUT.max(LZ4_OUT), "{kind}");
        }
    }

    #[test]
    fn names_levels_and_order() {
        let names: Vec<&str> = Compression::PREFERRED.iter().map(|c| c.name()).collect();
        assert_eq!(names, ["zstd", "lz4", "zlibx", "zlib", "none"]);
        assert_eq!(Compression::from_name("ZLIBX"), Some(Compression::Zlibx));
        assert_eq!(Compression::from_name("zlibxx"), None);
        assert_eq!(Compression::Zlib.level(None), Some(6));
        assert_eq!(Compression::Zlib.level(Some(-1)), Some(6));
        assert_eq!(Compression::Zlib.level(Some(0)), None);
        assert_eq!(Compression::Zlibx.level(Some(42)), Some(9));
        assert_eq!(Compression::Zstd.level(Some(0)), Some(3));
        assert_eq!(Compression::Zstd.level(Some(99)), Some(22));
        assert_eq!(Compression::Zstd.level(Some(-5)), Some(-5));
        assert_eq!(Compression::Lz4.level(Some(7)), Some(0));
        assert_eq!(Compression::None.level(Some(7)), None);
        assert_eq!(Compression::Zlib.effective(Some(0)), Compression::None);
        assert_eq!(Compression::Zstd.effective(Some(0)), Compression::Zstd);
        let (basis, toks) = (vec![3u8; 64], vec![Tok::Lit(b"abc".to_vec()), Tok::Block(1), Tok::End]);
        check_round_trip(Compression::None, &toks, &basis, 8, 1);
    }
}

/// Byte-level checks against the installed rsync (skipped when there is none). A pull
/// through a fake remote shell records what `rsync --server --sender` writes: the test
/// finds each file's token stream in it and decodes it (the reference's sender against
/// this receiver), then re-encodes the tokens, splices them back in, and replays the
/// recording to a fresh client, which must rebuild the files and pass its whole-file
/// checksums (this sender against the reference's receiver).
#[cfg(all(test, unix))]
mod real_rsync {
    use super::tests::{block, encode_files, Rng, Tok};
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    /// MPLEX_BASE + MSG_DATA: the tag of multiplexed file data.
    const MSG_DATA_TAG: u8 = 7;

    fn compress_list() -> Option<String> {
        let out = Command::new("rsync").arg("--version").output().ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut lines = text.lines();
        while let Some(l) = lines.next() {
            if l.trim_start().starts_with("Compress list:") {
                return lines.next().map(str::to_owned);
            }
        }
        None
    }

    fn script(path: &Path, body: &str) {
        fs::write(path, format!("#!/bin/sh\n{body}")).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// Runs rsync, killing it if it hangs (a replay it cannot follow may wait forever).
    fn rsync(dir: &Path, args: &[String]) -> Result<(), String> {
        let err = fs::File::create(dir.join("stderr")).unwrap();
        let mut child = Command::new("rsync")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err("rsync timed out".into());
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let text = fs::read_to_string(dir.join("stderr")).unwrap_or_default();
        if status.success() {
            Ok(())
        } else {
            Err(format!("rsync {status}: {text}"))
        }
    }

    /// The recording split at the start of multiplexing: the handshake bytes before it,
    /// then (tag, payload) frames to the end.
    fn demux(out: &[u8]) -> (Vec<u8>, Vec<(u8, Vec<u8>)>) {
        'start: for off in 0..out.len().min(512) {
            let mut frames = Vec::new();
            let mut pos = off;
            while pos < out.len() {
                let Some(h) = out.get(pos..pos + 4) else {
                    continue 'start;
                };
                let h = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
                let (tag, len) = ((h >> 24) as u8, (h & 0xff_ffff) as usize);
                if !(MSG_DATA_TAG..MSG_DATA_TAG + 110).contains(&tag) {
                    continue 'start;
                }
                let Some(payload) = out.get(pos + 4..pos + 4 + len) else {
                    continue 'start;
                };
                frames.push((tag, payload.to_vec()));
                pos += 4 + len;
            }
            if frames.first().is_some_and(|f| f.0 == MSG_DATA_TAG) {
                return (out[..off].to_vec(), frames);
            }
        }
        panic!("no multiplexed stream in the recording");
    }

    struct Case {
        new: Vec<u8>,
        basis: Option<Vec<u8>>,
    }

    /// Decodes one file at the start of `bytes`, checking it against `case` as it goes.
    fn try_file(dec: &mut dyn Decode, bytes: &[u8], case: &Case, bs: usize) -> Option<(usize, Vec<Tok>)> {
        let basis = case.basis.as_deref().unwrap_or(&[]);
        let mut r = Reader::new(bytes);
        let mut built = Vec::new();
        let mut toks = Vec::new();
        loop {
            let t = match dec.next(&mut r).ok()? {
                Decoded::Literal(d) => {
                    built.extend_from_slice(d);
                    Tok::Lit(d.to_vec())
                }
                Decoded::Block(i) => Tok::Block(i),
                Decoded::End => Tok::End,
            };
            match t {
                Tok::Block(i) => {
                    let b = block(basis, bs, i)?;
                    built.extend_from_slice(b);
                    dec.saw_block(b);
                }
                Tok::End => {
                    toks.push(t);
                    return (built == case.new).then_some((r.position(), toks));
                }
                Tok::Lit(_) => {}
            }
            if !case.new.starts_with(&built) {
                return None;
            }
            toks.push(t);
        }
    }

    /// Finds each file's token stream in the data, after its sum header (count, block
    /// length, checksum length, remainder). Returns (start, end, tokens, block length).
    fn find_streams(
        kind: Compression,
        protocol: i32,
        data: &[u8],
        cases: &[Case],
    ) -> Vec<(usize, usize, Vec<Tok>, usize)> {
        let mut found: Vec<(usize, usize, Vec<Tok>, usize)> = Vec::new();
        for (k, case) in cases.iter().enumerate() {
            let from = found.last().map_or(16, |f| f.1 + 16);
            let hit = (from..data.len()).find_map(|p| {
                let int = |at: usize| i32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]) as i64;
                let (count, bs, s2, rem) = (int(p - 16), int(p - 12), int(p - 8), int(p - 4));
                let plausible = match &case.basis {
                    None => (count, bs, s2, rem) == (0, 0, 0, 0),
                    Some(b) => {
                        let len = b.len() as i64;
                        bs > 0 && count == (len + bs - 1) / bs && rem == len % bs && (2..=16).contains(&s2)
                    }
                };
                if !plausible {
                    return None;
                }
                // Earlier files' streams first: zstd's context runs on across files.
                let mut dec = decoder_for_protocol(kind, protocol);
                for (f, prev) in found.iter().enumerate() {
                    try_file(&mut *dec, &data[prev.0..prev.1], &cases[f], prev.3)?;
                }
                let (len, toks) = try_file(&mut *dec, &data[p..], case, bs as usize)?;
                Some((p, p + len, toks, bs as usize))
            });
            found.push(hit.unwrap_or_else(|| panic!("{kind}: file {k}'s tokens not found")));
        }
        found
    }

    /// The recording with the data stream's `regions` replaced, re-multiplexed.
    fn splice(prefix: &[u8], frames: &[(u8, Vec<u8>)], regions: &[(usize, usize, Vec<u8>)]) -> Vec<u8> {
        let data: Vec<u8> = frames.iter().filter(|f| f.0 == MSG_DATA_TAG).flat_map(|f| f.1.iter().copied()).collect();
        let mut new = Vec::new();
        let mut at = 0;
        for (s, e, repl) in regions {
            new.extend_from_slice(&data[at..*s]);
            new.extend_from_slice(repl);
            at = *e;
        }
        new.extend_from_slice(&data[at..]);
        // Where an old data offset lands in the new data; a replaced region goes with
        // the frame that held its start.
        let map = |x: usize| {
            let mut shift = 0i64;
            for (s, e, repl) in regions {
                if x > *s && x < *e {
                    return (*s as i64 + shift) as usize + repl.len();
                }
                if x >= *e {
                    shift += repl.len() as i64 - (*e - *s) as i64;
                }
            }
            (x as i64 + shift) as usize
        };
        let mut out = prefix.to_vec();
        let mut pos = 0;
        for (tag, payload) in frames {
            let parts: Vec<&[u8]> = if *tag == MSG_DATA_TAG {
                let (a, b) = (map(pos), map(pos + payload.len()));
                pos += payload.len();
                new[a..b].chunks(CHUNK_SIZE).collect()
            } else {
                vec![&payload[..]]
            };
            for part in parts {
                let h = ((*tag as u32) << 24) | part.len() as u32;
                out.extend_from_slice(&h.to_le_bytes());
                out.extend_from_slice(part);
            }
        }
        out
    }

    fn check(kind: Compression, protocol: i32, opts: &[&str], bs_expect: Option<usize>) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let (src, dst) = (dir.join("src"), dir.join("dst"));
        fs::create_dir_all(&src).unwrap();
        let mut rng = Rng(0x5eed ^ protocol as u64);
        let basis = rng.text(300_000);
        let mut a = b"HEADER! ".repeat(5);
        a.extend_from_slice(&basis[..200_000]);
        a.extend(rng.text(2000));
        a.extend_from_slice(&basis[100_000..150_000]);
        a.extend(rng.noise(20_000));
        a.extend_from_slice(&basis[250_000..]);
        a.extend_from_slice(&basis[1000..5000]);
        let mut b = rng.text(30_000);
        b.extend(rng.noise(70_000));
        b.extend(rng.text(5000));
        fs::write(src.join("a.txt"), &a).unwrap();
        fs::write(src.join("b.txt"), &b).unwrap();
        let reset_dst = || {
            let _ = fs::remove_dir_all(&dst);
            fs::create_dir_all(&dst).unwrap();
            fs::write(dst.join("a.txt"), &basis).unwrap();
        };
        let cases = [Case { new: a.clone(), basis: Some(basis.clone()) }, Case { new: b.clone(), basis: None }];
        let d = dir.display();
        script(&dir.join("capture"), &format!("shift\n\"$@\" | tee '{d}/out'\n"));
        let mut args: Vec<String> = opts.iter().map(|s| s.to_string()).collect();
        // Without incremental recursion the client has the whole file list before any
        // file data arrives, so a replay that sends everything at once cannot outrun it.
        args.extend(["-r".into(), "--no-inc-recursive".into(), "-e".into(), format!("{d}/capture")]);
        args.push(format!("h:{}/", src.display()));
        args.push(format!("{}/", dst.display()));
        reset_dst();
        rsync(dir, &args).unwrap();
        assert_eq!(fs::read(dst.join("a.txt")).unwrap(), a, "{kind}: capture run");

        // The reference's sender, decoded here.
        let (prefix, frames) = demux(&fs::read(dir.join("out")).unwrap());
        let data: Vec<u8> = frames.iter().filter(|f| f.0 == MSG_DATA_TAG).flat_map(|f| f.1.iter().copied()).collect();
        let found = find_streams(kind, protocol, &data, &cases);
        if let Some(bs) = bs_expect {
            assert_eq!(found[0].3, bs);
        }
        let blocks = found[0].2.iter().filter(|t| matches!(t, Tok::Block(_))).count();
        assert!(blocks > 100_000 / found[0].3, "{kind}: only {blocks} blocks matched");

        // This sender, decoded by the reference.
        let mut enc = encoder_for_protocol(kind, None, protocol);
        let mut regions = Vec::new();
        for (f, (s, e, toks, bs)) in found.iter().enumerate() {
            let basis = cases[f].basis.as_deref().unwrap_or(&[]);
            let bytes = encode_files(&mut *enc, toks, basis, *bs).concat();
            regions.push((*s, *e, bytes));
        }
        fs::write(dir.join("replay"), splice(&prefix, &frames, &regions)).unwrap();
        // The real server still runs, its output thrown away, so that it reads what the
        // client says and ends the connection when the client expects.
        script(&dir.join("replay.sh"), &format!("shift\nexec 3<&0\n\"$@\" <&3 >/dev/null &\ncat '{d}/replay'\nwait\n"));
        let n = args.len();
        args[n - 3] = format!("{d}/replay.sh");
        reset_dst();
        rsync(dir, &args).unwrap_or_else(|e| panic!("{kind}: replay: {e}"));
        assert_eq!(fs::read(dst.join("a.txt")).unwrap(), a, "{kind}: replayed a.txt");
        assert_eq!(fs::read(dst.join("b.txt")).unwrap(), b, "{kind}: replayed b.txt");
    }

    #[test]
    fn streams_match_the_installed_rsync() {
        let Some(list) = compress_list() else {
            eprintln!("no rsync with a compress list installed: skipped");
            return;
        };
        let has = |k: Compression| list.split_whitespace().any(|n| n == k.name());
        for kind in KINDS_ALL {
            if has(kind) {
                check(kind, 32, &[&format!("--zc={}", kind.name())], None);
            } else {
                eprintln!("rsync lacks {kind}: skipped");
            }
        }
        // Blocks longer than a stored block, on both sides of protocol 31's fix.
        check(Compression::Zlib, 32, &["--zc=zlib", "-B", "100000"], Some(100_000));
        check(Compression::Zlib, 30, &["--zc=zlib", "--protocol=30", "-B", "100000"], Some(100_000));
    }

    const KINDS_ALL: [Compression; 4] = [Compression::Zstd, Compression::Lz4, Compression::Zlibx, Compression::Zlib];
}
