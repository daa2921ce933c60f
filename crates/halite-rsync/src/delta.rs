//! The delta algorithm's data and its two active halves.
//!
//! The generator (the side that has an old copy, the "basis") describes it as a sum
//! header ([`SumHead`]) followed by one weak and one strong checksum per block
//! ([`BlockSummer`] makes them). The sender reads them ([`BlockSums`]) and slides a
//! window over its new file ([`Matcher`]), turning it into literal runs and references
//! to basis blocks, which the receiver replays against its basis ([`SumHead::block_range`]).
//!
//! Everything here works on bytes handed in pieces: no file is ever held whole, and what
//! a peer announces (block counts and lengths) is bounded before memory is spent on it.

use thiserror::Error;

use crate::checksum::{checksum1, BlockChecksum, Digest, FileSum, Rolling, Strong};
use crate::checksum::{MAX_DIGEST_LEN, SUM_LENGTH};
use crate::token::CHUNK_SIZE;
use crate::wire::{put_i32, Reader, WireError};

/// The block length for files up to `BLOCK_SIZE²` bytes (rsync.h).
pub const BLOCK_SIZE: u32 = 700;
/// The largest block a sum header may announce from protocol 30 on.
pub const MAX_BLOCK_SIZE: u32 = 1 << 17;
/// The largest block before protocol 30. A peer speaking protocol 29 can make the
/// sender hold a window this long (512 MiB): that is the reference's limit, and halite's.
pub const OLD_MAX_BLOCK_SIZE: u32 = 1 << 29;

/// The most blocks halite accepts in one sum header. The reference only guards against
/// arithmetic overflow; halite also caps the memory a peer can make the sender spend on
/// one file's sums. With ≤ 16-byte strong sums, an entry costs at most 24 bytes here
/// (weak sum, strong sum, hash chain) and the hash table at most 64 MiB (2^24 slots),
/// so the cap is 256 MiB, and it still admits a basis of 1 TiB at the 128 KiB blocks
/// rsync picks for files that large. A bigger basis (or a tiny `--block-size` on a huge
/// one) is refused, not mis-transferred.
pub const MAX_SUM_COUNT: u32 = 1 << 23;

/// The strong-sum length a first pass starts from (rsync.h SHORT_SUM_LENGTH).
const SHORT_SUM_LENGTH: i32 = 2;
/// Bits the generator adds to its estimate of the strong-sum length (rsync.h).
const BLOCKSUM_BIAS: i32 = 10;
/// Candidates with the same weak sum the matcher compares at one offset before it
/// gives up on that offset: basis files with long runs of identical blocks (disk images)
/// otherwise make the search quadratic. The reference caps it at the same number; a
/// skipped match only costs literal bytes.
const MAX_CHAIN_LEN: u32 = 1024;

/// The longest block a sum header may announce at `protocol`.
pub fn max_block_len(protocol: i32) -> u32 {
    if protocol < 30 {
        OLD_MAX_BLOCK_SIZE
    } else {
        MAX_BLOCK_SIZE
    }
}

/// What the generator says about its basis before the block sums: how many blocks, how
/// long each is (the last may be shorter, `remainder` long when not 0), and how many
/// bytes of each block's strong sum follow. All zero means "no basis": the sender sends
/// the whole file as literal data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SumHead {
    pub count: u32,
    pub block_len: u32,
    pub strong_len: u32,
    pub remainder: u32,
}

impl SumHead {
    /// The header of a file without a basis (the reference's `write_sum_head(f, NULL)`).
    pub const NONE: SumHead = SumHead { count: 0, block_len: 0, strong_len: 0, remainder: 0 };

    /// Reads a header (protocol ≥ 27: four ints) and checks it the way the fixed rsync
    /// does (CVE-2024-12084): the strong length may not exceed the negotiated digest
    /// (`strong_len_max`, i.e. [`Strong::digest_len`]), the block length the protocol's
    /// maximum, the remainder the block length; and the count is capped at
    /// [`MAX_SUM_COUNT`]. On [`WireError::Incomplete`] the reader is left where it was.
    pub fn read(r: &mut Reader<'_>, protocol: i32, strong_len_max: usize) -> Result<SumHead, WireError> {
        let start = r.position();
        let head = Self::read_fields(r, protocol, strong_len_max);
        if head == Err(WireError::Incomplete) {
            r.rewind(start);
        }
        head
    }

    fn read_fields(r: &mut Reader<'_>, protocol: i32, strong_len_max: usize) -> Result<SumHead, WireError> {
        let count = r.i32_in(0, MAX_SUM_COUNT as i32, "block count")?;
        let block_len = r.i32_in(0, max_block_len(protocol) as i32, "block length")?;
        if count > 0 && block_len == 0 {
            return Err(WireError::Invalid(format!("{count} blocks of length zero")));
        }
        // Digests here are at most MAX_DIGEST_LEN long, whatever the caller passes.
        let strong_max = strong_len_max.min(MAX_DIGEST_LEN) as i32;
        let strong_len = r.i32_in(0, strong_max, "strong checksum length")?;
        // The reference allows a remainder equal to the block length (a full last
        // block); it never sends one, but accepting it costs nothing.
        let remainder = r.i32_in(0, block_len, "block remainder")?;
        Ok(SumHead {
            count: count as u32,
            block_len: block_len as u32,
            strong_len: strong_len as u32,
            remainder: remainder as u32,
        })
    }

    pub fn write(&self, out: &mut Vec<u8>) {
        put_i32(out, self.count as i32);
        put_i32(out, self.block_len as i32);
        put_i32(out, self.strong_len as i32);
        put_i32(out, self.remainder as i32);
    }

    /// The header a generator sends for a basis of `len` bytes (the reference's
    /// sum_sizes_sqroot): blocks of about √len bytes, a multiple of 8 and at least 700,
    /// and a strong length grown with the file so that false matches stay unlikely.
    ///
    /// `strong_len_max` is the negotiated digest's length; `block_size` the client's
    /// `--block-size` (0 or `None`: automatic; more than the protocol allows is clamped,
    /// as the peer would refuse it); `redo` is the second pass over files whose first
    /// transfer failed verification, which sends full-length strong sums.
    ///
    /// An empty basis gets [`SumHead::NONE`], as rsync's generator never sums one. `None`
    /// when the blocks would not fit the header's int count: rsync then warns that the
    /// file is too large for checksum sending and sends [`SumHead::NONE`].
    pub fn for_file(
        len: u64,
        protocol: i32,
        strong_len_max: usize,
        block_size: Option<u32>,
        redo: bool,
    ) -> Option<SumHead> {
        let len = i64::try_from(len).ok()?;
        if len == 0 {
            return Some(SumHead::NONE);
        }
        let max_blen = max_block_len(protocol) as i64;
        let blen: i64 = match block_size {
            Some(b) if b > 0 => (b as i64).min(max_blen),
            _ if len <= (BLOCK_SIZE as i64) * (BLOCK_SIZE as i64) => BLOCK_SIZE as i64,
            _ => {
                // c starts at a power of two near √len (one bit per two bits of len) ...
                let mut c: i64 = 1;
                let mut l = len >> 2;
                while l != 0 {
                    c <<= 1;
                    l >>= 2;
                }
                if c >= max_blen {
                    max_blen
                } else {
                    // ... then the square root is built bit by bit, down to the 8s.
                    let mut b: i64 = 0;
                    loop {
                        b |= c;
                        if len < b * b {
                            b &= !c;
                        }
                        c >>= 1;
                        if c < 8 {
                            break;
                        }
                    }
                    b.max(BLOCK_SIZE as i64)
                }
            }
        };

        let max_strong = SUM_LENGTH.min(strong_len_max) as i32;
        let strong_len = if redo {
            max_strong
        } else {
            // Bits of confidence wanted: 10 plus two per bit of the file length, less one
            // per bit of the block length; the 32 bits of the weak sum count too.
            let mut b = BLOCKSUM_BIAS;
            let mut l = len >> 1;
            while l != 0 {
                b += 2;
                l >>= 1;
            }
            let mut c = blen >> 1;
            while c != 0 && b != 0 {
                b -= 1;
                c >>= 1;
            }
            // Integer division truncating toward zero, as C's does for negatives.
            let s = (b + 1 - 32 + 7) / 8;
            s.max(SHORT_SUM_LENGTH).min(max_strong)
        };

        let remainder = len % blen;
        let count = len / blen + i64::from(remainder != 0);
        if count > i32::MAX as i64 {
            return None;
        }
        Some(SumHead {
            count: count as u32,
            block_len: blen as u32,
            strong_len: strong_len.max(0) as u32,
            remainder: remainder as u32,
        })
    }

    /// The length of block `index`, or `None` past the last block.
    pub fn block_len_of(&self, index: u32) -> Option<u32> {
        if index >= self.count {
            None
        } else if index == self.count - 1 && self.remainder != 0 {
            Some(self.remainder)
        } else {
            Some(self.block_len)
        }
    }

    /// Where block `index` lies in the basis: (offset, length). `None` for an index the
    /// header does not describe, which a receiver must treat as a protocol error.
    pub fn block_range(&self, index: u32) -> Option<(u64, u32)> {
        let len = self.block_len_of(index)?;
        Some((index as u64 * self.block_len as u64, len))
    }

    /// How many bytes of basis the header describes.
    pub fn basis_len(&self) -> u64 {
        match self.count {
            0 => 0,
            n => (n - 1) as u64 * self.block_len as u64 + self.block_len_of(n - 1).unwrap_or(0) as u64,
        }
    }

    fn entry_len(&self) -> usize {
        4 + self.strong_len as usize
    }
}

/// The block sums that follow a [`SumHead`], as the sender collects them. Entries are
/// taken as they arrive, so memory grows with bytes actually received, never ahead of
/// them, and never past what the (bounded) count allows.
#[derive(Debug, Clone)]
pub struct BlockSums {
    head: SumHead,
    sum1: Vec<u32>,
    /// `strong_len` bytes per entry, back to back.
    strong: Vec<u8>,
}

impl BlockSums {
    pub fn new(head: SumHead) -> Self {
        BlockSums { head, sum1: Vec::new(), strong: Vec::new() }
    }

    /// Takes every whole entry available in `r` (up to the header's count) and leaves a
    /// cut-off entry unread. Returns whether all entries are in. Entries taken stay
    /// taken: the caller keeps the reader's new position rather than rewinding.
    pub fn fill(&mut self, r: &mut Reader<'_>) -> bool {
        let entry = self.head.entry_len();
        let wanted = self.head.count as usize - self.sum1.len();
        let n = (r.remaining().len() / entry).min(wanted);
        if n > 0 {
            let total = self.head.count as usize;
            grow(&mut self.sum1, n, total);
            grow(&mut self.strong, n * (entry - 4), total * (entry - 4));
            for _ in 0..n {
                let Ok(e) = r.bytes(entry) else { break };
                self.sum1.push(u32::from_le_bytes([e[0], e[1], e[2], e[3]]));
                self.strong.extend_from_slice(&e[4..]);
            }
        }
        self.is_complete()
    }

    pub fn head(&self) -> &SumHead {
        &self.head
    }

    /// Entries received so far.
    pub fn len(&self) -> usize {
        self.sum1.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sum1.is_empty()
    }

    pub fn is_complete(&self) -> bool {
        self.sum1.len() == self.head.count as usize
    }

    pub fn sum1(&self, index: usize) -> u32 {
        self.sum1[index]
    }

    pub fn strong(&self, index: usize) -> &[u8] {
        let l = self.head.strong_len as usize;
        &self.strong[index * l..(index + 1) * l]
    }
}

/// Makes room for `more` elements, doubling as Vec does but never past `limit`, so a
/// large count does not end with twice its memory reserved.
fn grow<T>(v: &mut Vec<T>, more: usize, limit: usize) {
    let need = v.len() + more;
    if need > v.capacity() {
        let target = (v.capacity() * 2).max(need).max(64).min(limit.max(need));
        v.reserve_exact(target - v.len());
    }
}

/// The basis file's length differed from the length its sum header was made for (it
/// changed after it was examined). The sums were still completed — missing bytes count
/// as zeros, extra bytes are ignored — so the stream stays in step; the transfer then
/// fails verification and is redone, as it would with rsync.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("the basis file changed while it was summed: {expected} bytes expected, {got} read")]
pub struct BasisChanged {
    pub expected: u64,
    pub got: u64,
}

/// The generator's side: takes the basis file's bytes in any pieces and appends each
/// block's wire entry (weak sum as an int, then the strong sum's first `strong_len`
/// bytes) as soon as the block is complete. It holds at most one block.
#[derive(Debug)]
pub struct BlockSummer {
    head: SumHead,
    hasher: BlockChecksum,
    block: Vec<u8>,
    done: u32,
    fed: u64,
}

impl BlockSummer {
    /// `head` is what the caller sent (see [`SumHead::for_file`]); `hasher` the
    /// connection's strong sum and seed.
    pub fn new(head: SumHead, hasher: BlockChecksum) -> Self {
        BlockSummer { head, hasher, block: Vec::new(), done: 0, fed: 0 }
    }

    pub fn update(&mut self, mut data: &[u8], out: &mut Vec<u8>) {
        self.fed += data.len() as u64;
        while !data.is_empty() {
            let Some(blen) = self.head.block_len_of(self.done) else {
                return;
            };
            let want = blen as usize - self.block.len();
            if self.block.is_empty() && data.len() >= want {
                // A whole block in the caller's piece: hash it where it lies.
                self.put(&data[..want], out);
                data = &data[want..];
                continue;
            }
            let take = want.min(data.len());
            self.block.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.block.len() == blen as usize {
                let block = std::mem::take(&mut self.block);
                self.put(&block, out);
                self.block = block;
                self.block.clear();
            }
        }
    }

    /// Completes the entries the header promised.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), BasisChanged> {
        let expected = self.head.basis_len();
        let got = self.fed;
        while let Some(blen) = self.head.block_len_of(self.done) {
            let mut block = std::mem::take(&mut self.block);
            block.resize(blen as usize, 0);
            self.put(&block, out);
        }
        if got == expected {
            Ok(())
        } else {
            Err(BasisChanged { expected, got })
        }
    }

    fn put(&mut self, block: &[u8], out: &mut Vec<u8>) {
        put_i32(out, checksum1(block) as i32);
        let digest = self.hasher.digest(block);
        let d = digest.as_bytes();
        let l = self.head.strong_len as usize;
        out.extend_from_slice(&d[..l.min(d.len())]);
        // A header asking for more than the digest has (a caller's mistake) still gets
        // entries of the announced size, so the peer stays in step.
        out.resize(out.len() + l.saturating_sub(d.len()), 0);
        self.done += 1;
    }
}

/// One piece of the sender's output. Both variants borrow the matcher's window until the
/// callback returns. `Block::data` is the matched block's bytes (the sender's copy, equal
/// to the basis block), which the zlib token form feeds to its dictionary.
#[derive(Debug, PartialEq, Eq)]
pub enum Token<'a> {
    Literal(&'a [u8]),
    Block { index: u32, data: &'a [u8] },
}

/// What [`Matcher::finish`] hands back: the checksum to send after the end mark, and
/// the split of the file between literal data and block references (rsync's
/// literal_data / matched_data statistics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finished {
    pub file_sum: Digest,
    pub literal_bytes: u64,
    pub matched_bytes: u64,
}

const NIL: u32 = u32::MAX;

/// The hash table slot of a weak sum, for a table of `2^(32 - shift)` slots.
#[inline]
fn slot_of(sum: u32, shift: u32) -> usize {
    (sum.wrapping_mul(0x9e37_79b1) >> shift) as usize
}

/// The sender's side: finds the basis blocks in a new file fed in any pieces.
///
/// It keeps the current window (one block), the literal bytes not yet emitted (flushed
/// every [`CHUNK_SIZE`]) and at most one piece of input: memory is O(block length +
/// CHUNK_SIZE + piece) plus the sums and their hash table, whatever the file's size.
/// Literal runs are emitted in pieces of at most CHUNK_SIZE bytes. A caller reading a
/// file hands [`Matcher::feed_from`] its read, which fills the window buffer directly:
/// no copy of the file's bytes between the read and the sums.
///
/// It also computes the file's transfer checksum ([`FileSum::transfer`]) over every byte
/// fed, which [`Matcher::finish`] returns for the caller to send after the end token.
pub struct Matcher {
    head: SumHead,
    hasher: BlockChecksum,
    sum1: Vec<u32>,
    strong: Vec<u8>,
    /// Hash table on the weak sum: the first block of each bucket's chain, or NIL.
    table: Vec<u32>,
    chain: Vec<u32>,
    shift: u32,
    /// False when there is nothing to match against: everything is literal.
    active: bool,
    /// The receiver rewrites its basis in place (`--inplace`): see
    /// [`Matcher::updating_basis`].
    updating_basis: bool,
    /// Blocks matched at their own offset, which an in-place receiver leaves intact.
    same_offset: Vec<bool>,

    /// New-file bytes from `base` on, in `buf[..end]`: literal not yet emitted from `lm`,
    /// the window at `pos`, and input not yet scanned after it. Past `end` is storage
    /// kept for the next read (initialised, so a read may be given it as a slice).
    buf: Vec<u8>,
    end: usize,
    base: u64,
    lm: usize,
    pos: usize,
    /// The weak sum of the block-long window at `pos`, once it has been computed.
    window: Option<Rolling>,
    /// Whether the window at `pos` has been looked up already.
    tested: bool,
    /// The block after the last match: tried first, so runs of adjacent blocks stay runs.
    want: u32,

    file_sum: FileSum,
    literal_bytes: u64,
    matched_bytes: u64,
}

impl Matcher {
    /// A matcher for the sums the receiver sent. `hasher` must be the connection's strong
    /// sum and seed, as the generator used them. Sums not all received, or a strong sum of
    /// "none", leave nothing to match: the file goes out as literal data.
    pub fn new(sums: BlockSums, hasher: BlockChecksum) -> Self {
        let BlockSums { head, sum1, strong } = sums;
        let active = head.count > 0
            && head.block_len > 0
            && sum1.len() == head.count as usize
            && hasher.strong() != Strong::None;
        let mut m = Matcher {
            head,
            hasher,
            sum1,
            strong,
            table: Vec::new(),
            chain: Vec::new(),
            shift: 32,
            active,
            updating_basis: false,
            same_offset: Vec::new(),
            buf: Vec::new(),
            end: 0,
            base: 0,
            lm: 0,
            pos: 0,
            window: None,
            tested: false,
            want: 0,
            file_sum: FileSum::transfer(hasher.strong(), hasher.seed()),
            literal_bytes: 0,
            matched_bytes: 0,
        };
        if active {
            m.build_table();
        }
        m
    }

    /// A matcher for a file the receiver has no basis for.
    pub fn whole_file(hasher: BlockChecksum) -> Self {
        Matcher::new(BlockSums::new(SumHead::NONE), hasher)
    }

    /// Declares that the receiver writes into its basis file as it goes (`--inplace`,
    /// when the basis is the destination itself): a block it has already overwritten
    /// must not be referenced again, unless it was matched at its own offset and so
    /// left as it was. Blocks at their own offset are also preferred, as the receiver
    /// then skips writing them.
    pub fn updating_basis(mut self, on: bool) -> Self {
        self.updating_basis = on;
        if on && self.active {
            self.same_offset = vec![false; self.head.count as usize];
        }
        self
    }

    fn build_table(&mut self) {
        let count = self.head.count as usize;
        // Four to eight slots per block (two to four at the cap on blocks): in a changed
        // region every byte offset is looked up, and most lookups must end at an empty
        // slot without walking a chain. Sized by the block count, so a small file's table
        // is small (the table is built for every file that has sums).
        let bits = (count.next_power_of_two().trailing_zeros() + 2).clamp(10, 24);
        self.shift = 32 - bits;
        self.table = vec![NIL; 1 << bits];
        self.chain = vec![NIL; count];
        // Inserted from the end so that each chain lists earlier blocks first.
        for i in (0..count).rev() {
            let t = self.slot(self.sum1[i]);
            self.chain[i] = self.table[t];
            self.table[t] = i as u32;
        }
    }

    #[inline]
    fn slot(&self, sum: u32) -> usize {
        slot_of(sum, self.shift)
    }

    fn strong_of(&self, i: u32) -> &[u8] {
        let l = self.head.strong_len as usize;
        &self.strong[i as usize * l..(i as usize + 1) * l]
    }

    fn block_offset(&self, i: u32) -> u64 {
        i as u64 * self.head.block_len as u64
    }

    /// Whether an in-place receiver still has block `i` intact when its output has
    /// reached `at`.
    fn usable(&self, i: u32, at: u64) -> bool {
        !self.updating_basis || self.block_offset(i) >= at || self.same_offset[i as usize]
    }

    /// Whether block `i` is the window's block, given the window's weak sum and
    /// (computed only once needed) strong digest.
    fn confirms(&self, i: u32, sum: u32, len: u32, digest: &Digest) -> bool {
        self.sum1[i as usize] == sum
            && self.head.block_len_of(i) == Some(len)
            && digest.as_bytes().get(..self.head.strong_len as usize) == Some(self.strong_of(i))
    }

    /// Feeds the next bytes of the new file; tokens for what can already be decided go
    /// to `emit`.
    pub fn feed(&mut self, data: &[u8], mut emit: impl FnMut(Token<'_>)) {
        // A piece at a time, so a caller's huge slice does not become a huge buffer.
        for piece in data.chunks(CHUNK_SIZE) {
            let copied = self.feed_from(
                piece.len(),
                |room| {
                    room.copy_from_slice(piece);
                    Ok::<usize, std::convert::Infallible>(piece.len())
                },
                &mut emit,
            );
            let Ok(_) = copied;
        }
    }

    /// Feeds the next bytes of the new file by letting `read` write up to `most` of them
    /// straight into the window buffer; `read` returns how many it wrote (0 at the end
    /// of the file), or its error, which is passed on with nothing fed. Tokens for what
    /// can already be decided go to `emit`. Returns the count fed.
    pub fn feed_from<E>(
        &mut self,
        most: usize,
        read: impl FnOnce(&mut [u8]) -> Result<usize, E>,
        mut emit: impl FnMut(Token<'_>),
    ) -> Result<usize, E> {
        let start = self.end;
        if self.buf.len() < start + most {
            self.buf.resize(start + most, 0);
        }
        let n = read(&mut self.buf[start..start + most])?.min(most);
        self.file_sum.update(&self.buf[start..start + n]);
        self.end += n;
        self.scan(&mut emit);
        self.compact();
        Ok(n)
    }

    /// Ends the file: emits what is left and returns the file's transfer checksum, which
    /// the caller sends after the token stream's end mark, with the totals.
    pub fn finish(self, emit: impl FnMut(Token<'_>)) -> Finished {
        self.finish_keeping_window(emit).0
    }

    /// [`Matcher::finish`], also handing back the window buffer for the next file's
    /// matcher ([`Matcher::with_window`]).
    pub fn finish_keeping_window(mut self, mut emit: impl FnMut(Token<'_>)) -> (Finished, Vec<u8>) {
        self.scan(&mut emit);
        if self.active {
            self.match_tail(&mut emit);
        }
        self.flush_literal(self.end, &mut emit);
        let finished = Finished {
            file_sum: self.file_sum.finish(),
            literal_bytes: self.literal_bytes,
            matched_bytes: self.matched_bytes,
        };
        (finished, self.buf)
    }

    /// Uses `window` (a previous matcher's, whatever it holds) as the window buffer: a
    /// sender going through many files then allocates and clears its buffer once. For a
    /// matcher not fed yet.
    pub fn with_window(mut self, window: Vec<u8>) -> Self {
        debug_assert!(self.base == 0 && self.end == 0 && self.window.is_none(), "with_window on a fed matcher");
        self.buf = window;
        self.end = 0;
        self
    }

    /// Bytes emitted as literal data so far.
    pub fn literal_bytes(&self) -> u64 {
        self.literal_bytes
    }

    /// Bytes emitted as block references so far.
    pub fn matched_bytes(&self) -> u64 {
        self.matched_bytes
    }

    fn scan<F: FnMut(Token<'_>)>(&mut self, emit: &mut F) {
        if !self.active {
            // Nothing to match: the input goes out as it comes, in runs of CHUNK_SIZE as
            // the reference cuts them.
            self.pos = self.end;
            while self.pos - self.lm >= CHUNK_SIZE {
                self.flush_literal(self.lm + CHUNK_SIZE, emit);
            }
            return;
        }
        let blen = self.head.block_len as usize;
        loop {
            let mut window = match self.window {
                Some(w) => w,
                None => {
                    if self.end - self.pos < blen {
                        return;
                    }
                    self.tested = false;
                    Rolling::new(&self.buf[self.pos..self.pos + blen])
                }
            };
            if !self.tested {
                let sum = window.value();
                if self.table[self.slot(sum)] != NIL {
                    if let Some(i) = self.find(sum, self.pos, blen as u32) {
                        self.emit_match(i, blen, emit);
                        continue;
                    }
                }
                self.tested = true;
            }
            // Slide over the offsets whose buckets are empty, up to the next literal run's
            // end or the input's: in a changed region that is every offset but a few, so
            // this loop keeps its state in registers and leaves the chain walk to `find`.
            let last = self.end - blen;
            let limit = last.min(self.lm + CHUNK_SIZE);
            let (buf, table, shift) = (&self.buf, &self.table, self.shift);
            let mut pos = self.pos;
            let mut candidate = false;
            while pos < limit {
                window.roll(buf[pos], buf[pos + blen]);
                pos += 1;
                if table[slot_of(window.value(), shift)] != NIL {
                    candidate = true;
                    break;
                }
            }
            self.pos = pos;
            self.window = Some(window);
            self.tested = !candidate;
            if candidate {
                continue;
            }
            if self.pos - self.lm >= CHUNK_SIZE {
                self.flush_literal(self.lm + CHUNK_SIZE, emit);
            }
            if self.pos >= last {
                // The next byte has not arrived: keep the window for the next feed.
                return;
            }
        }
    }

    /// The block whose sums match the `len` bytes at `pos`, if any.
    fn find(&mut self, sum: u32, pos: usize, len: u32) -> Option<u32> {
        let at = self.base + pos as u64;
        let t = self.slot(sum);
        let mut digest: Option<Digest> = None;
        let mut prev = NIL;
        let mut i = self.table[t];
        let mut same_sum = 0u32;
        let mut found = None;
        while i != NIL {
            let next = self.chain[i as usize];
            if !self.usable(i, at) {
                // The in-place receiver has overwritten this block for good: unlink it
                // so later offsets do not walk past it again.
                if prev == NIL {
                    self.table[t] = next;
                } else {
                    self.chain[prev as usize] = next;
                }
                i = next;
                continue;
            }
            prev = i;
            if self.sum1[i as usize] == sum {
                same_sum += 1;
                if same_sum > MAX_CHAIN_LEN {
                    break;
                }
                if self.head.block_len_of(i) == Some(len) {
                    let d = *digest.get_or_insert_with(|| self.hasher.digest(&self.buf[pos..pos + len as usize]));
                    if self.confirms(i, sum, len, &d) {
                        found = Some(i);
                        break;
                    }
                }
            }
            i = next;
        }
        let mut i = found?;
        let d = digest?;
        let blen = self.head.block_len as u64;
        let mut aligned = false;
        if self.updating_basis && at.is_multiple_of(blen) {
            // The block at this very offset lets the receiver skip the write.
            let a = at / blen;
            if a < self.head.count as u64 && self.confirms(a as u32, sum, len, &d) {
                i = a as u32;
                aligned = true;
            }
        }
        let w = self.want;
        if !aligned && i != w && w < self.head.count && self.usable(w, at) && self.confirms(w, sum, len, &d) {
            i = w;
        }
        if self.updating_basis && self.block_offset(i) == at {
            self.same_offset[i as usize] = true;
        }
        Some(i)
    }

    fn emit_match<F: FnMut(Token<'_>)>(&mut self, i: u32, len: usize, emit: &mut F) {
        self.flush_literal(self.pos, emit);
        emit(Token::Block { index: i, data: &self.buf[self.pos..self.pos + len] });
        self.matched_bytes += len as u64;
        self.pos += len;
        self.lm = self.pos;
        self.window = None;
        self.tested = false;
        self.want = i.saturating_add(1);
    }

    /// A last block shorter than the others can only match the file's final bytes: once
    /// the length is known, that is the one offset left to try.
    fn match_tail<F: FnMut(Token<'_>)>(&mut self, emit: &mut F) {
        let last = self.head.count - 1;
        let Some(len) = self.head.block_len_of(last) else {
            return;
        };
        let len = len as usize;
        if len >= self.head.block_len as usize || self.end < len {
            return;
        }
        let p = self.end - len;
        if p < self.pos || !self.usable(last, self.base + p as u64) {
            return;
        }
        let tail = &self.buf[p..self.end];
        let sum = checksum1(tail);
        if self.sum1[last as usize] != sum {
            return;
        }
        let d = self.hasher.digest(tail);
        if self.confirms(last, sum, len as u32, &d) {
            self.pos = p;
            self.emit_match(last, len, emit);
        }
    }

    /// Emits `buf[lm..to]` as literal data, in runs of at most CHUNK_SIZE.
    fn flush_literal<F: FnMut(Token<'_>)>(&mut self, to: usize, emit: &mut F) {
        for run in self.buf[self.lm..to].chunks(CHUNK_SIZE) {
            emit(Token::Literal(run));
        }
        self.literal_bytes += (to - self.lm) as u64;
        self.lm = to;
    }

    /// Drops emitted bytes from the front of the buffer once they are worth the move.
    fn compact(&mut self) {
        if self.lm >= CHUNK_SIZE || (self.lm > 0 && self.lm * 2 >= self.end) {
            self.buf.copy_within(self.lm..self.end, 0);
            self.end -= self.lm;
            self.base += self.lm as u64;
            self.pos -= self.lm;
            self.lm = 0;
        }
    }

    /// Bytes held in the window buffer (for tests of the memory bound).
    #[cfg(test)]
    fn buffered(&self) -> usize {
        self.buf.capacity()
    }
}

impl std::fmt::Debug for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Matcher")
            .field("head", &self.head)
            .field("active", &self.active)
            .field("offset", &(self.base + self.pos as u64))
            .field("literal_bytes", &self.literal_bytes)
            .field("matched_bytes", &self.matched_bytes)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::{Decode, Decoded, Encode, SimpleDecoder, SimpleEncoder};

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn bytes(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.next() as u8).collect()
        }
    }

    fn head_bytes(v: [i32; 4]) -> Vec<u8> {
        let mut out = Vec::new();
        for x in v {
            put_i32(&mut out, x);
        }
        out
    }

    /// The generator's half: the header and sums for `old`, fed in uneven pieces.
    fn make_sums(old: &[u8], hasher: BlockChecksum, block_size: Option<u32>) -> Vec<u8> {
        let head = SumHead::for_file(old.len() as u64, 31, hasher.strong().digest_len(), block_size, false).unwrap();
        let mut wire = Vec::new();
        head.write(&mut wire);
        let mut s = BlockSummer::new(head, hasher);
        let mut rest = old;
        let mut step = 1;
        while !rest.is_empty() {
            let n = step.min(rest.len());
            s.update(&rest[..n], &mut wire);
            rest = &rest[n..];
            step = step * 3 + 1;
        }
        s.finish(&mut wire).unwrap();
        assert_eq!(wire.len(), 16 + head.count as usize * (4 + head.strong_len as usize));
        wire
    }

    /// The sender's half: reads the sums a few bytes at a time, then matches `new` fed
    /// in pieces of `step` and encodes the tokens. Returns the token wire, the file sum
    /// and (literal, matched) byte counts.
    fn send(
        sum_wire: &[u8],
        new: &[u8],
        hasher: BlockChecksum,
        step: usize,
        in_place: bool,
    ) -> (SumHead, Vec<u8>, Digest, u64, u64) {
        let mut r = Reader::new(&sum_wire[..10]);
        assert_eq!(SumHead::read(&mut r, 31, hasher.strong().digest_len()), Err(WireError::Incomplete));
        assert_eq!(r.position(), 0);
        let mut r = Reader::new(sum_wire);
        let head = SumHead::read(&mut r, 31, hasher.strong().digest_len()).unwrap();
        let mut sums = BlockSums::new(head);
        let mut at = r.position();
        let mut have = at;
        while !sums.is_complete() {
            have = (have + 13).min(sum_wire.len());
            let mut r = Reader::new(&sum_wire[at..have]);
            sums.fill(&mut r);
            at += r.position();
        }
        assert_eq!(at, sum_wire.len());

        let mut m = Matcher::new(sums, hasher).updating_basis(in_place);
        let mut enc = SimpleEncoder::new();
        let mut wire = Vec::new();
        let mut emit = |t: Token<'_>| match t {
            Token::Literal(d) => {
                assert!(!d.is_empty() && d.len() <= CHUNK_SIZE);
                enc.literal(&mut wire, d)
            }
            Token::Block { index, data } => {
                assert_eq!(head.block_len_of(index), Some(data.len() as u32));
                enc.matched(&mut wire, index, data)
            }
        };
        for piece in new.chunks(step.max(1)) {
            m.feed(piece, &mut emit);
        }
        let fin = m.finish(&mut emit);
        enc.end(&mut wire);
        (head, wire, fin.file_sum, fin.literal_bytes, fin.matched_bytes)
    }

    /// The receiver's half: replays the tokens against `old`, copying blocks from the
    /// output itself when `in_place` (as an `--inplace` receiver reads its own file).
    fn receive(head: &SumHead, wire: &[u8], old: &[u8], in_place: bool) -> Vec<u8> {
        let mut out = if in_place { old.to_vec() } else { Vec::new() };
        let mut off = 0usize;
        let write = |out: &mut Vec<u8>, off: &mut usize, d: &[u8]| {
            if out.len() < *off + d.len() {
                out.resize(*off + d.len(), 0);
            }
            out[*off..*off + d.len()].copy_from_slice(d);
            *off += d.len();
        };
        let mut d = SimpleDecoder::new();
        let mut r = Reader::new(wire);
        loop {
            match d.next(&mut r).unwrap() {
                Decoded::Literal(b) => write(&mut out, &mut off, b),
                Decoded::Block(i) => {
                    let (o, l) = head.block_range(i).expect("block in range");
                    let (o, l) = (o as usize, l as usize);
                    let block = if in_place { out[o..o + l].to_vec() } else { old[o..o + l].to_vec() };
                    write(&mut out, &mut off, &block);
                }
                Decoded::End => break,
            }
        }
        assert!(r.is_empty());
        out.truncate(off);
        out
    }

    fn round_trip(old: &[u8], new: &[u8], hasher: BlockChecksum, block_size: Option<u32>, step: usize) -> (u64, u64) {
        let sums = make_sums(old, hasher, block_size);
        let (head, wire, digest, lit, mat) = send(&sums, new, hasher, step, false);
        let got = receive(&head, &wire, old, false);
        assert!(got == new, "reconstruction differs ({} vs {} bytes)", got.len(), new.len());
        let mut f = FileSum::transfer(hasher.strong(), hasher.seed());
        f.update(&got);
        assert_eq!(f.finish(), digest);
        assert_eq!(lit + mat, new.len() as u64);
        (lit, mat)
    }

    fn hashers() -> Vec<BlockChecksum> {
        vec![
            BlockChecksum::new(Strong::Md5, 0x1234_5678, true),
            BlockChecksum::new(Strong::Md5, -7, false),
            BlockChecksum::new(Strong::Md4Old, 99, false),
            BlockChecksum::new(Strong::Md4, 0, false),
            BlockChecksum::new(Strong::Xxh128, -1, true),
            BlockChecksum::new(Strong::Xxh3, 5, true),
            BlockChecksum::new(Strong::Xxh64, 6, true),
        ]
    }

    #[test]
    fn edits_round_trip_with_every_strong_sum() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let old = rng.bytes(20_000);
        let ins = rng.bytes(333);
        let mid = old.len() / 2;
        let cat = |parts: &[&[u8]]| parts.concat();
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("insert start", cat(&[&ins, &old])),
            ("insert middle", cat(&[&old[..mid], &ins, &old[mid..]])),
            ("insert end", cat(&[&old, &ins])),
            ("delete start", old[100..].to_vec()),
            ("delete middle", cat(&[&old[..mid], &old[mid + 1000..]])),
            ("delete end", old[..old.len() - 50].to_vec()),
            ("modify", {
                let mut v = old.clone();
                v[0] ^= 1;
                v[mid] ^= 0x80;
                v[old.len() - 1] ^= 0xff;
                v
            }),
            ("swap halves", cat(&[&old[mid..], &old[..mid]])),
            ("unrelated", rng.bytes(5000)),
            ("empty", Vec::new()),
        ];
        for h in hashers() {
            for bs in [None, Some(64)] {
                let (lit, mat) = round_trip(&old, &old, h, bs, 4096);
                assert_eq!((lit, mat), (0, old.len() as u64), "{h:?} unchanged");
                for (name, new) in &cases {
                    let (lit, _) = round_trip(&old, new, h, bs, 1000);
                    if name.starts_with("insert") {
                        assert!(lit <= ins.len() as u64 + 2 * 700, "{name} {h:?}: {lit}");
                    }
                }
            }
        }
    }

    #[test]
    fn unchanged_files_are_all_blocks_in_order() {
        let mut rng = Rng(42);
        let hasher = BlockChecksum::new(Strong::Md5, 77, true);
        for len in [1usize, 99, 700, 701, 1400, 7 * 700, 7 * 700 + 1, 50_000] {
            let old = rng.bytes(len);
            let sums = make_sums(&old, hasher, None);
            let (head, wire, _, lit, mat) = send(&sums, &old, hasher, 333, false);
            assert_eq!((lit, mat), (0, len as u64), "len {len}");
            // The tokens are exactly -1, -2, ... -count, then 0.
            let mut want = Vec::new();
            for i in 0..head.count as i32 {
                put_i32(&mut want, -(i + 1));
            }
            put_i32(&mut want, 0);
            assert_eq!(wire, want, "len {len}");
        }
    }

    #[test]
    fn small_and_empty_files() {
        let mut rng = Rng(7);
        let h = BlockChecksum::new(Strong::Xxh128, 3, true);
        let a = rng.bytes(300);
        let b = rng.bytes(300);
        round_trip(&[], &[], h, None, 10);
        round_trip(&[], &a, h, None, 10);
        round_trip(&a, &[], h, None, 10);
        assert_eq!(round_trip(&a, &a, h, None, 1), (0, 300));
        round_trip(&a, &b, h, None, 7);
        // The basis's short last block found at the end of a longer file.
        let grown = [&b[..], &a[..]].concat();
        assert_eq!(round_trip(&a, &grown, h, None, 50), (300, 300));
        // Exact multiples of the block length, fed a byte at a time.
        let c = rng.bytes(64 * 10);
        let mut d = c.clone();
        d[64 * 3 + 5] ^= 1;
        assert_eq!(round_trip(&c, &d, h, Some(64), 1), (64, 64 * 9));
        // With a whole-file matcher (no basis) everything is literal.
        let mut m = Matcher::whole_file(h);
        let mut got = Vec::new();
        m.feed(&a, |t| match t {
            Token::Literal(d) => got.extend_from_slice(d),
            Token::Block { .. } => panic!("block without a basis"),
        });
        let fin = m.finish(|t| match t {
            Token::Literal(d) => got.extend_from_slice(d),
            Token::Block { .. } => panic!("block without a basis"),
        });
        assert_eq!(got, a);
        assert_eq!((fin.literal_bytes, fin.matched_bytes), (300, 0));
    }

    #[test]
    fn whole_files_go_out_in_full_runs_however_they_are_fed() {
        let mut rng = Rng(5);
        let data = rng.bytes(CHUNK_SIZE * 5 + 1234);
        let h = BlockChecksum::new(Strong::Md5, 1, true);
        for piece in [1usize, 1000, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE + 17, data.len()] {
            let mut m = Matcher::whole_file(h);
            let mut runs: Vec<Vec<u8>> = Vec::new();
            let mut keep = |t: Token<'_>| match t {
                Token::Literal(d) => runs.push(d.to_vec()),
                Token::Block { .. } => panic!("block without a basis"),
            };
            for p in data.chunks(piece) {
                m.feed(p, &mut keep);
            }
            let fin = m.finish(&mut keep);
            assert_eq!(runs.concat(), data, "piece {piece}");
            let (last, full) = runs.split_last().unwrap();
            assert!(full.iter().all(|r| r.len() == CHUNK_SIZE), "piece {piece}");
            assert_eq!(last.len(), 1234, "piece {piece}");
            assert_eq!(fin.literal_bytes, data.len() as u64);
            let mut whole = FileSum::transfer(Strong::Md5, 1);
            whole.update(&data);
            assert_eq!(fin.file_sum.as_bytes(), whole.finish().as_bytes());
        }
    }

    #[test]
    fn in_place_receivers_never_see_overwritten_blocks() {
        let mut rng = Rng(11);
        let old = rng.bytes(30_000);
        // The end of the basis moved to the front: a plain delta would copy blocks the
        // in-place receiver has already overwritten.
        let new = [&old[20_000..], &old[..20_000], &rng.bytes(100)[..]].concat();
        let h = BlockChecksum::new(Strong::Md5, 1, true);
        let sums = make_sums(&old, h, Some(500));
        let (head, wire, _, _, _) = send(&sums, &new, h, 4096, false);
        assert_eq!(receive(&head, &wire, &old, false), new);
        assert_ne!(receive(&head, &wire, &old, true), new, "the case must bite");
        let (head, wire, _, lit, mat) = send(&sums, &new, h, 4096, true);
        assert_eq!(receive(&head, &wire, &old, true), new);
        assert!(mat >= 10_000, "still matches what it can: {lit} {mat}");
        // Unchanged in place: every block at its own offset.
        let (head, wire, _, lit, _) = send(&sums, &old, h, 999, true);
        assert_eq!(lit, 0);
        assert_eq!(receive(&head, &wire, &old, true), old);
    }

    #[test]
    fn memory_stays_bounded_by_block_and_chunk() {
        let mut rng = Rng(5);
        let old = rng.bytes(100_000);
        let new = rng.bytes(3 << 20);
        let h = BlockChecksum::new(Strong::Xxh3, 0, true);
        for sums in [make_sums(&old, h, None), head_bytes([0, 0, 0, 0])] {
            let mut r = Reader::new(&sums);
            let head = SumHead::read(&mut r, 31, 8).unwrap();
            let mut bs = BlockSums::new(head);
            assert!(bs.fill(&mut r));
            let mut m = Matcher::new(bs, h);
            let mut total = 0u64;
            for piece in new.chunks(1 << 20) {
                m.feed(piece, |t| {
                    if let Token::Literal(d) = t {
                        total += d.len() as u64
                    }
                });
                assert!(m.buffered() <= 4 * (2 * CHUNK_SIZE + 700), "{}", m.buffered());
            }
            m.finish(|t| {
                if let Token::Literal(d) = t {
                    total += d.len() as u64
                }
            });
            assert_eq!(total, new.len() as u64);
        }
    }

    #[test]
    fn repeated_blocks_do_not_stall_the_search() {
        // Every basis block has the same sums; the new file's zero run matches, and the
        // adjacent-block preference keeps the references in order.
        let old = vec![0u8; 700 * 200];
        let new = [&[1u8; 10][..], &old[..]].concat();
        let h = BlockChecksum::new(Strong::Md5, 0, true);
        let sums = make_sums(&old, h, None);
        let (head, wire, _, lit, _) = send(&sums, &new, h, 8192, false);
        assert_eq!(lit, 10);
        assert_eq!(receive(&head, &wire, &old, false), new);
        let mut r = Reader::new(&wire[14..]);
        for i in 0..200 {
            assert_eq!(r.i32().unwrap(), -(i + 1));
        }
    }

    #[test]
    fn sum_heads_for_files_follow_the_reference() {
        let h = |len, proto, max, bs, redo| {
            let s = SumHead::for_file(len, proto, max, bs, redo).unwrap();
            (s.count, s.block_len, s.strong_len, s.remainder)
        };
        assert_eq!(h(0, 31, 16, None, false), (0, 0, 0, 0));
        assert_eq!(h(1, 31, 16, None, false), (1, 700, 2, 1));
        assert_eq!(h(490_000, 31, 16, None, false), (700, 700, 2, 0));
        // √1_000_000 = 1000, a multiple of 8.
        assert_eq!(h(1_000_000, 31, 16, None, false), (1000, 1000, 2, 0));
        assert_eq!(h(1_000_001, 31, 16, None, false), (1001, 1000, 2, 1));
        // 16 GiB reaches the 128 KiB cap; the strong sum grows to 4 bytes.
        assert_eq!(h(1 << 34, 31, 16, None, false), (1 << 17, 1 << 17, 4, 0));
        // Protocol 29 keeps growing the blocks: √10¹² = 10⁶.
        assert_eq!(h(1_000_000_000_000, 29, 16, None, false), (1_000_000, 1_000_000, 5, 0));
        assert_eq!(h(1 << 40, 31, 16, None, false), (1 << 23, 1 << 17, 6, 0));
        // Redo passes send whole digests, capped by the negotiated one.
        assert_eq!(h(5000, 31, 16, None, true), (8, 700, 16, 100));
        assert_eq!(h(5000, 31, 8, None, true), (8, 700, 8, 100));
        assert_eq!(h(5000, 31, 1, None, false), (8, 700, 1, 100));
        // --block-size, 0 meaning automatic, too large clamped.
        assert_eq!(h(5000, 31, 16, Some(1024), false), (5, 1024, 2, 904));
        assert_eq!(h(5000, 31, 16, Some(0), false), (8, 700, 2, 100));
        assert_eq!(h(5000, 31, 16, Some(1 << 20), false).1, 1 << 17);
        assert_eq!(SumHead::for_file(u64::MAX, 31, 16, None, false), None);
        assert_eq!(SumHead::for_file(1 << 40, 31, 16, Some(1), false), None);
    }

    #[test]
    fn sum_head_bounds_refuse_cve_2024_12084() {
        let read = |v: [i32; 4], proto, max| SumHead::read(&mut Reader::new(&head_bytes(v)), proto, max);
        assert_eq!(
            read([3, 700, 16, 100], 31, 16),
            Ok(SumHead { count: 3, block_len: 700, strong_len: 16, remainder: 100 })
        );
        let refused = |v, proto, max| {
            let e = read(v, proto, max);
            assert!(matches!(e, Err(WireError::OutOfRange { .. } | WireError::Invalid(_))), "{v:?}: {e:?}");
        };
        refused([3, 700, 17, 100], 31, 16);
        refused([3, 700, 17, 100], 31, 64);
        refused([3, 700, 9, 100], 31, 8);
        refused([3, 700, -1, 100], 31, 16);
        refused([-1, 700, 2, 0], 31, 16);
        refused([(MAX_SUM_COUNT + 1) as i32, 700, 2, 0], 31, 16);
        refused([i32::MAX, 700, 2, 0], 31, 16);
        refused([3, (MAX_BLOCK_SIZE + 1) as i32, 2, 0], 31, 16);
        refused([3, -700, 2, 0], 31, 16);
        refused([3, 0, 2, 0], 31, 16);
        refused([3, 700, 2, 701], 31, 16);
        refused([3, 700, 2, -1], 31, 16);
        assert!(read([3, (MAX_BLOCK_SIZE + 1) as i32, 2, 0], 29, 16).is_ok());
        assert!(read([0, 0, 0, 0], 31, 16).is_ok());
        assert!(read([3, 700, 2, 700], 31, 16).is_ok());
    }

    #[test]
    fn block_ranges_and_changed_basis() {
        let head = SumHead::for_file(1500, 31, 16, None, false).unwrap();
        assert_eq!(head.block_range(0), Some((0, 700)));
        assert_eq!(head.block_range(2), Some((1400, 100)));
        assert_eq!(head.block_range(3), None);
        assert_eq!(head.basis_len(), 1500);
        assert_eq!(SumHead::NONE.basis_len(), 0);

        let h = BlockChecksum::new(Strong::Md5, 0, true);
        let mut out = Vec::new();
        let mut s = BlockSummer::new(head, h);
        s.update(&[1u8; 1000], &mut out);
        assert_eq!(s.finish(&mut out), Err(BasisChanged { expected: 1500, got: 1000 }));
        assert_eq!(out.len(), 3 * (4 + 2));
        let mut out = Vec::new();
        let mut s = BlockSummer::new(head, h);
        s.update(&[1u8; 2000], &mut out);
        assert!(s.finish(&mut out).is_err());
        assert_eq!(out.len(), 3 * (4 + 2));
    }
}
