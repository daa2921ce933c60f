//! The checksums of the delta algorithm: the weak rolling sum the sender slides over its
//! file one byte at a time, the strong per-block sums that confirm a weak hit, and the
//! whole-file sum the sender appends to every file's tokens so the receiver can tell a
//! good reconstruction from a bad one.
//!
//! Each strong algorithm mixes rsync's checksum seed in its own way, and a block sum mixes
//! it differently from the whole-file sum; both rules are written out on
//! [`BlockChecksum`] and [`FileSum`] because getting them wrong produces transfers that
//! never match a block (or always fail verification) while still looking well-formed.

use md4::Md4;
use md5::{Digest as _, Md5};
use xxhash_rust::xxh3::{xxh3_128_with_seed, xxh3_64_with_seed, Xxh3};
use xxhash_rust::xxh64::{xxh64, Xxh64};

/// rsync adds this to every byte of the rolling sum (rsync.h). It has been 0 in every
/// released rsync; it is kept as a name so the arithmetic below reads like the reference.
pub const CHAR_OFFSET: u32 = 0;

/// The longest digest any algorithm here produces (MD4, MD5 and XXH128 are 16 bytes).
pub const MAX_DIGEST_LEN: usize = 16;

/// The longest strong sum a sum header may carry per block (rsync.h SUM_LENGTH).
pub const SUM_LENGTH: usize = 16;

/// rsync reads bytes as `signed char` in the rolling sum: bytes ≥ 0x80 count as
/// negative, which wraps differently from an unsigned sum once multiplied.
#[inline]
fn signed(b: u8) -> u32 {
    (b as i8 as i32 as u32).wrapping_add(CHAR_OFFSET)
}

/// The weak checksum of a block (rsync's get_checksum1): the low 16 bits are the sum of
/// the bytes, the high 16 bits the sum of the running sums.
pub fn checksum1(data: &[u8]) -> u32 {
    Rolling::new(data).value()
}

/// The weak checksum of a window that slides over the data a byte at a time, with the
/// reference's arithmetic: both halves are kept as full 32-bit wrapping values and only
/// truncated to 16 bits when the sum is read, so a rolled value always equals the value
/// computed afresh over the same window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rolling {
    s1: u32,
    s2: u32,
    len: u32,
}

impl Rolling {
    /// The sum over `window`. Windows are at most a block long, which rsync bounds far
    /// below 4 GiB, so the length fits the u32 the reference multiplies by.
    ///
    /// The byte-at-a-time recurrence is one long dependency chain (each `s2` waits on the
    /// `s1` before it), which caps it near a byte per cycle; a sender re-summing every
    /// matched block of a large file spends most of its time here. So the bytes are taken
    /// `LANES` at a time into independent per-lane sums: lane `l` keeps `p[l]`, the sum of
    /// its bytes so far, and `q[l]`, the sum of those running sums. Over `T` chunks of `L`
    /// bytes, a byte of chunk `t`, lane `l` is counted in `L(T-t) - l` of the running sums,
    /// so `s2 = L·Σq - Σ l·p` and `s1 = Σp` (all wrapping, as the reference's arithmetic
    /// is modulo 2³²). The per-lane loop has no cross-lane dependency and vectorises.
    /// Where the CPU has AVX2, [`Rolling::new_avx2`] does the same 32 bytes at a time.
    pub fn new(window: &[u8]) -> Self {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just above.
            return unsafe { Self::new_avx2(window) };
        }
        Self::in_lanes(window)
    }

    /// The sum 32 bytes at a time. Over a chunk of 32 bytes `x_k`, `s1` grows by `Σ x_k`
    /// and `s2` by `32·s1` (the sum before the chunk, once for each of its bytes) plus
    /// `Σ (32 - k)·x_k`. Both chunk sums are byte products summed in pairs to 16 bits
    /// (`maddubs`: weight ≤ 32 times a signed byte, two of them, stays within ±8,192),
    /// then in fours to 32 bits (`madd`); the eight 32-bit lanes are added at the end,
    /// wrapping as the reference's arithmetic does. LLVM's vectorisation of the portable
    /// lanes with AVX2 enabled was slower than the SSE2 build: it is written out here.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn new_avx2(window: &[u8]) -> Self {
        use std::arch::x86_64::*;
        // The signed-byte reading below is `signed` with an offset of 0.
        const _: () = assert!(CHAR_OFFSET == 0);
        let weights = _mm256_setr_epi8(
            32, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5,
            4, 3, 2, 1,
        );
        let (ones8, ones16) = (_mm256_set1_epi8(1), _mm256_set1_epi16(1));
        let (mut sums, mut before, mut weighted) =
            (_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256());
        let mut chunks = window.chunks_exact(32);
        for chunk in &mut chunks {
            // SAFETY: `chunk` is 32 readable bytes; the load has no alignment requirement.
            let x = unsafe { _mm256_loadu_si256(chunk.as_ptr().cast()) };
            before = _mm256_add_epi32(before, sums);
            sums = _mm256_add_epi32(sums, _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, x), ones16));
            weighted = _mm256_add_epi32(weighted, _mm256_madd_epi16(_mm256_maddubs_epi16(weights, x), ones16));
        }
        let total = |v: __m256i| {
            let mut lanes = [0u32; 8];
            // SAFETY: `lanes` is 32 writable bytes; the store has no alignment requirement.
            unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), v) };
            lanes.iter().fold(0u32, |a, &l| a.wrapping_add(l))
        };
        let s1 = total(sums);
        let s2 = total(before).wrapping_mul(32).wrapping_add(total(weighted));
        let mut sum = Rolling { s1, s2, len: (window.len() - chunks.remainder().len()) as u32 };
        for &b in chunks.remainder() {
            sum.roll_in(b);
        }
        sum
    }

    fn in_lanes(window: &[u8]) -> Self {
        const LANES: usize = 16;
        let mut p = [0u32; LANES];
        let mut q = [0u32; LANES];
        let mut chunks = window.chunks_exact(LANES);
        for chunk in &mut chunks {
            for l in 0..LANES {
                p[l] = p[l].wrapping_add(signed(chunk[l]));
                q[l] = q[l].wrapping_add(p[l]);
            }
        }
        let mut s1: u32 = 0;
        let mut s2: u32 = 0;
        for l in 0..LANES {
            s1 = s1.wrapping_add(p[l]);
            s2 = s2.wrapping_add((LANES as u32).wrapping_mul(q[l])).wrapping_sub((l as u32).wrapping_mul(p[l]));
        }
        let mut sum = Rolling { s1, s2, len: (window.len() - chunks.remainder().len()) as u32 };
        for &b in chunks.remainder() {
            sum.roll_in(b);
        }
        sum
    }

    /// The checksum as sent on the wire and stored in block sums.
    pub fn value(&self) -> u32 {
        (self.s1 & 0xffff) | (self.s2 << 16)
    }

    /// How many bytes the window holds.
    pub fn len(&self) -> u32 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Slides the window one byte: `out` was its first byte, `into` becomes its last.
    #[inline]
    pub fn roll(&mut self, out: u8, into: u8) {
        self.roll_out(out);
        self.roll_in(into);
    }

    /// Drops the window's first byte, shrinking it (the sender does this at the end of a
    /// file, where the window can only shorten).
    #[inline]
    pub fn roll_out(&mut self, out: u8) {
        let o = signed(out);
        self.s1 = self.s1.wrapping_sub(o);
        self.s2 = self.s2.wrapping_sub(self.len.wrapping_mul(o));
        self.len = self.len.wrapping_sub(1);
    }

    /// Appends a byte to the window.
    #[inline]
    pub fn roll_in(&mut self, into: u8) {
        self.s1 = self.s1.wrapping_add(signed(into));
        self.s2 = self.s2.wrapping_add(self.s1);
        self.len = self.len.wrapping_add(1);
    }
}

/// A strong checksum algorithm. `Md4Old` is what protocols 27–29 use without
/// negotiation: its block sums are MD4's, but its whole-file sum starts with the seed.
/// (Protocols below 27 had further MD4 quirks; halite does not speak them.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Strong {
    Md4Old,
    Md4,
    Md5,
    Xxh64,
    Xxh3,
    Xxh128,
    /// Negotiated "none": rsync then forces whole-file transfers, so there are no block
    /// sums, and the file sum is a single zero byte.
    None,
}

impl Strong {
    /// The algorithms halite can negotiate, strongest (rsync's preference) first.
    pub const NEGOTIABLE: [Strong; 6] =
        [Strong::Xxh128, Strong::Xxh3, Strong::Xxh64, Strong::Md5, Strong::Md4, Strong::None];

    /// The algorithm for a negotiated name. "xxhash" is rsync's older alias of "xxh64".
    pub fn from_name(name: &str) -> Option<Strong> {
        Some(match name {
            "xxh128" => Strong::Xxh128,
            "xxh3" => Strong::Xxh3,
            "xxh64" | "xxhash" => Strong::Xxh64,
            "md5" => Strong::Md5,
            "md4" => Strong::Md4,
            "none" => Strong::None,
            _ => return None,
        })
    }

    /// The name rsync lists this algorithm under.
    pub fn name(self) -> &'static str {
        match self {
            Strong::Xxh128 => "xxh128",
            Strong::Xxh3 => "xxh3",
            Strong::Xxh64 => "xxh64",
            Strong::Md5 => "md5",
            Strong::Md4 | Strong::Md4Old => "md4",
            Strong::None => "none",
        }
    }

    /// What a connection uses when no names were negotiated: MD4 before protocol 30,
    /// MD5 from 30 on.
    pub fn implied(protocol: i32) -> Strong {
        if protocol >= 30 {
            Strong::Md5
        } else {
            Strong::Md4Old
        }
    }

    /// The digest's length: the bound on a sum header's strong length and the length of
    /// the file sum sent after each file's tokens. "none" still sends one byte.
    /// A whole-file digest as the reference's log `%C` prints it: MD4 and MD5 byte by
    /// byte, the xxHash sums as the numbers they are (their little-endian bytes
    /// reversed); `None` for the sums the reference leaves blank there (protocol 26 and
    /// older's MD4, and "none").
    pub fn log_hex(self, sum: &[u8]) -> Option<String> {
        let hex = |bytes: &mut dyn Iterator<Item = &u8>| bytes.map(|b| format!("{b:02x}")).collect::<String>();
        match self {
            Strong::Md4 | Strong::Md5 => Some(hex(&mut sum.iter())),
            Strong::Xxh64 | Strong::Xxh3 | Strong::Xxh128 => Some(hex(&mut sum.iter().rev())),
            Strong::Md4Old | Strong::None => None,
        }
    }

    pub fn digest_len(self) -> usize {
        match self {
            Strong::Md4Old | Strong::Md4 | Strong::Md5 | Strong::Xxh128 => 16,
            Strong::Xxh64 | Strong::Xxh3 => 8,
            Strong::None => 1,
        }
    }
}

/// A digest of up to [`MAX_DIGEST_LEN`] bytes, kept inline so hashing a block allocates
/// nothing.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Digest {
    bytes: [u8; MAX_DIGEST_LEN],
    len: u8,
}

impl Digest {
    fn from_slice(s: &[u8]) -> Self {
        let mut bytes = [0u8; MAX_DIGEST_LEN];
        bytes[..s.len()].copy_from_slice(s);
        Digest { bytes, len: s.len() as u8 }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

impl AsRef<[u8]> for Digest {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Digest(")?;
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

/// The strong sum of one block (rsync's get_checksum2), as the generator sends it and the
/// sender recomputes it to confirm a weak match.
///
/// The seed, when not zero, goes in as 4 little-endian bytes: after the data for MD4;
/// before it for MD5 when the peers agreed on the fixed seed order (compat flag 'C',
/// `proper_seed_order`), after it otherwise; and as the hash seed proper for the xxhash
/// family, sign-extended as C widens the `int` seed to the 64-bit seed argument.
///
/// Build caveats: an rsync built with OpenSSL hashes the seed *before* the data whenever
/// it computes a named checksum through OpenSSL. For MD5 named by negotiation or
/// `--checksum-choice` that ignores `proper_seed_order`, but every rsync able to name a
/// checksum also sends 'C', so the flag is set then and both builds agree; the implied
/// MD5 of older clients never goes through OpenSSL. For "md4" it differs from rsync's own
/// code (seed after) when OpenSSL's MD4 works (1.x, or 3.x with the legacy provider).
/// Halite follows the built-in code, which is what OpenSSL 3's default configuration (no
/// MD4) falls back to; md4 is only used when asked for by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockChecksum {
    strong: Strong,
    seed: i32,
    seed_first: bool,
}

impl BlockChecksum {
    pub fn new(strong: Strong, seed: i32, proper_seed_order: bool) -> Self {
        BlockChecksum { strong, seed, seed_first: proper_seed_order }
    }

    pub fn strong(&self) -> Strong {
        self.strong
    }

    pub fn seed(&self) -> i32 {
        self.seed
    }

    /// The block's full digest; the wire carries only a prefix of the sum header's
    /// strong length. For "none" (no block sums ever exist) this is one zero byte.
    pub fn digest(&self, block: &[u8]) -> Digest {
        let seed = self.seed.to_le_bytes();
        let seeded = self.seed != 0;
        let xseed = self.seed as i64 as u64;
        match self.strong {
            Strong::Md4 | Strong::Md4Old => {
                let mut h = Md4::new();
                h.update(block);
                if seeded {
                    h.update(seed);
                }
                Digest::from_slice(&h.finalize())
            }
            Strong::Md5 => {
                let mut h = Md5::new();
                if seeded && self.seed_first {
                    h.update(seed);
                }
                h.update(block);
                if seeded && !self.seed_first {
                    h.update(seed);
                }
                Digest::from_slice(&h.finalize())
            }
            Strong::Xxh64 => Digest::from_slice(&xxh64(block, xseed).to_le_bytes()),
            Strong::Xxh3 => Digest::from_slice(&xxh3_64_with_seed(block, xseed).to_le_bytes()),
            Strong::Xxh128 => {
                // low 64 bits first, then high: exactly the u128's little-endian bytes.
                Digest::from_slice(&xxh3_128_with_seed(block, xseed).to_le_bytes())
            }
            Strong::None => Digest::from_slice(&[0]),
        }
    }
}

enum FileState {
    Md4(Md4),
    Md5(Md5),
    Xxh64(Xxh64),
    Xxh3(Box<Xxh3>),
    Xxh128(Box<Xxh3>),
    None,
}

/// A whole-file sum fed in pieces (rsync's sum_init / sum_update / sum_end).
///
/// The one sent after a file's tokens ([`FileSum::transfer`]) takes the seed only for
/// `Md4Old`, where 4 little-endian seed bytes precede the data — even a zero seed. Every
/// other algorithm ignores the seed here (the xxhash family hashes with seed 0), unlike
/// their block sums. The sums in a `--checksum` file list use no seed at all
/// ([`FileSum::unseeded`]).
pub struct FileSum {
    state: FileState,
}

impl FileSum {
    /// The sum the sender appends to a file's tokens and the receiver recomputes.
    pub fn transfer(strong: Strong, seed: i32) -> Self {
        let mut s = FileSum::unseeded(strong);
        if strong == Strong::Md4Old {
            s.update(&seed.to_le_bytes());
        }
        s
    }

    /// The plain digest of the file's bytes, as `--checksum` file lists carry it.
    pub fn unseeded(strong: Strong) -> Self {
        let state = match strong {
            Strong::Md4 | Strong::Md4Old => FileState::Md4(Md4::new()),
            Strong::Md5 => FileState::Md5(Md5::new()),
            Strong::Xxh64 => FileState::Xxh64(Xxh64::new(0)),
            Strong::Xxh3 => FileState::Xxh3(Box::new(Xxh3::new())),
            Strong::Xxh128 => FileState::Xxh128(Box::new(Xxh3::new())),
            Strong::None => FileState::None,
        };
        FileSum { state }
    }

    pub fn update(&mut self, data: &[u8]) {
        match &mut self.state {
            FileState::Md4(h) => h.update(data),
            FileState::Md5(h) => h.update(data),
            FileState::Xxh64(h) => h.update(data),
            FileState::Xxh3(h) | FileState::Xxh128(h) => h.update(data),
            FileState::None => {}
        }
    }

    pub fn finish(self) -> Digest {
        match self.state {
            FileState::Md4(h) => Digest::from_slice(&h.finalize()),
            FileState::Md5(h) => Digest::from_slice(&h.finalize()),
            FileState::Xxh64(h) => Digest::from_slice(&h.digest().to_le_bytes()),
            FileState::Xxh3(h) => Digest::from_slice(&h.digest().to_le_bytes()),
            FileState::Xxh128(h) => Digest::from_slice(&h.digest128().to_le_bytes()),
            FileState::None => Digest::from_slice(&[0]),
        }
    }
}

impl std::fmt::Debug for FileSum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.state {
            FileState::Md4(_) => "md4",
            FileState::Md5(_) => "md5",
            FileState::Xxh64(_) => "xxh64",
            FileState::Xxh3(_) => "xxh3",
            FileState::Xxh128(_) => "xxh128",
            FileState::None => "none",
        };
        f.debug_struct("FileSum").field("kind", &kind).finish()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn log_hex_prints_md5_by_bytes_and_xxhash_as_numbers_as_the_reference_does() {
        let empty = |strong: Strong| FileSum::unseeded(strong).finish().as_bytes().to_vec();
        assert_eq!(Strong::Md5.log_hex(&empty(Strong::Md5)).as_deref(), Some("d41d8cd98f00b204e9800998ecf8427e"));
        // XXH64("") is 0xef46db3751d8e999; the sum travels little-endian.
        assert_eq!(Strong::Xxh64.log_hex(&empty(Strong::Xxh64)).as_deref(), Some("ef46db3751d8e999"));
        assert_eq!(Strong::None.log_hex(&[0]), None);
        assert_eq!(Strong::Md4Old.log_hex(&[0; 16]), None);
    }

    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// The byte-at-a-time definition the reference's unrolled loop computes.
    fn naive_checksum1(data: &[u8]) -> u32 {
        let (mut s1, mut s2) = (0i64, 0i64);
        for &b in data {
            s1 += b as i8 as i64;
            s2 += s1;
        }
        ((s1 as u32) & 0xffff) | ((s2 as u32) << 16)
    }

    #[test]
    fn rolling_sum_hand_worked_values() {
        // "abc": s1 = 97+98+99 = 294 = 0x126; s2 = 97 + 195 + 294 = 586 = 0x24a.
        assert_eq!(checksum1(b"abc"), 0x024a_0126);
        assert_eq!(checksum1(b""), 0);
        // A high byte counts as negative: 0xff is -1, so s1 = -1 (low half 0xffff) and
        // s2 = -1 too.
        assert_eq!(checksum1(&[0xff]), 0xffff_ffff);
        // 0x80, 0x01: s1 = -128 + 1 = -127 (0xff81), s2 = -128 + -127 = -255 (0xff01).
        assert_eq!(checksum1(&[0x80, 0x01]), 0xff01_ff81);
    }

    #[test]
    fn rolling_equals_fresh_sum() {
        let mut x: u32 = 12345;
        let data: Vec<u8> = (0..5000)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (x >> 16) as u8
            })
            .collect();
        for &w in &[1usize, 2, 7, 64, 700, 1023] {
            let mut r = Rolling::new(&data[..w]);
            for start in 1..data.len() - w {
                r.roll(data[start - 1], data[start + w - 1]);
                assert_eq!(r.value(), checksum1(&data[start..start + w]), "w={w}");
                assert_eq!(r.value(), naive_checksum1(&data[start..start + w]));
            }
        }
        // Shrinking at the end of a file.
        let mut r = Rolling::new(&data[100..200]);
        for start in 101..200 {
            r.roll_out(data[start - 1]);
            assert_eq!(r.value(), checksum1(&data[start..200]));
            assert_eq!(r.len() as usize, 200 - start);
        }
    }

    #[test]
    fn chunked_sum_equals_the_byte_at_a_time_sum() {
        let mut x: u32 = 99;
        let data: Vec<u8> = (0..70_000)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (x >> 16) as u8
            })
            .collect();
        for len in (0..300).chain([4095, 4096, 4097, 65_536, 69_990]) {
            assert_eq!(checksum1(&data[..len]), naive_checksum1(&data[..len]), "len={len}");
            // The portable build of the lanes, whatever `new` picked on this CPU.
            assert_eq!(Rolling::in_lanes(&data[..len]).value(), naive_checksum1(&data[..len]), "len={len}");
            // An unaligned start, as the sender's windows have.
            assert_eq!(checksum1(&data[3..3 + len]), naive_checksum1(&data[3..3 + len]), "len={len}");
        }
        // Sums that wrap: every byte the most negative and the most positive.
        for b in [0x80u8, 0x7f, 0xff] {
            let block = vec![b; 131_072];
            assert_eq!(checksum1(&block), naive_checksum1(&block), "byte {b:#x}");
        }
    }

    #[test]
    fn names_and_lengths() {
        for s in Strong::NEGOTIABLE {
            assert_eq!(Strong::from_name(s.name()), Some(s));
        }
        assert_eq!(Strong::from_name("xxhash"), Some(Strong::Xxh64));
        assert_eq!(Strong::from_name("sha1"), None);
        assert_eq!(Strong::implied(29), Strong::Md4Old);
        assert_eq!(Strong::implied(30), Strong::Md5);
        assert_eq!(Strong::Xxh64.digest_len(), 8);
        assert_eq!(Strong::Xxh128.digest_len(), 16);
    }

    #[test]
    fn unseeded_digests_are_the_standard_ones() {
        // RFC 1320 / RFC 1321 test vectors.
        let d = |s| hex(BlockChecksum::new(s, 0, true).digest(b"abc").as_bytes());
        assert_eq!(d(Strong::Md4), "a448017aaf21d8525fc10ae87aa6729d");
        assert_eq!(d(Strong::Md4Old), "a448017aaf21d8525fc10ae87aa6729d");
        assert_eq!(d(Strong::Md5), "900150983cd24fb0d6963f7d28e17f72");
        // xxHash's published values for the empty input, seed 0.
        let e = |s| hex(BlockChecksum::new(s, 0, true).digest(b"").as_bytes());
        assert_eq!(e(Strong::Xxh64), hex(&0xef46db3751d8e999u64.to_le_bytes()));
        assert_eq!(e(Strong::Xxh3), hex(&0x2d06800538d394c2u64.to_le_bytes()));
        assert_eq!(e(Strong::Xxh128), hex(&0x99aa06d3014798d86001c324468d497fu128.to_le_bytes()));
    }

    #[test]
    fn block_sums_place_the_seed_as_rsync_does() {
        let seed: i32 = 0x0403_0201;
        let data = b"some block data";
        let mut seeded_after = data.to_vec();
        seeded_after.extend_from_slice(&[1, 2, 3, 4]);
        let mut seeded_before = vec![1u8, 2, 3, 4];
        seeded_before.extend_from_slice(data);

        let md4 = |b: &[u8]| Md4::digest(b).to_vec();
        let md5 = |b: &[u8]| Md5::digest(b).to_vec();
        let got = |s, order| BlockChecksum::new(s, seed, order).digest(data).as_bytes().to_vec();
        assert_eq!(got(Strong::Md4, true), md4(&seeded_after));
        assert_eq!(got(Strong::Md4Old, false), md4(&seeded_after));
        assert_eq!(got(Strong::Md5, true), md5(&seeded_before));
        assert_eq!(got(Strong::Md5, false), md5(&seeded_after));
        assert_eq!(got(Strong::Xxh64, true), xxh64(data, seed as u64).to_le_bytes());
        // A zero seed adds nothing.
        assert_eq!(BlockChecksum::new(Strong::Md5, 0, false).digest(data).as_bytes(), md5(data));
        // A negative seed is sign-extended for the xxhash family.
        assert_eq!(
            BlockChecksum::new(Strong::Xxh3, -2, true).digest(data).as_bytes(),
            xxh3_64_with_seed(data, 0xffff_ffff_ffff_fffe).to_le_bytes()
        );
    }

    #[test]
    fn file_sums_seed_only_old_md4() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        let whole = |s, seed| {
            let mut f = FileSum::transfer(s, seed);
            for piece in data.chunks(37) {
                f.update(piece);
            }
            f.finish().as_bytes().to_vec()
        };
        let mut prefixed = 9i32.to_le_bytes().to_vec();
        prefixed.extend_from_slice(&data);
        assert_eq!(whole(Strong::Md4Old, 9), Md4::digest(&prefixed).to_vec());
        let mut zero_prefixed = vec![0u8; 4];
        zero_prefixed.extend_from_slice(&data);
        assert_eq!(whole(Strong::Md4Old, 0), Md4::digest(&zero_prefixed).to_vec());
        assert_eq!(whole(Strong::Md4, 9), Md4::digest(&data).to_vec());
        assert_eq!(whole(Strong::Md5, 9), Md5::digest(&data).to_vec());
        assert_eq!(whole(Strong::Xxh64, 9), xxh64(&data, 0).to_le_bytes());
        assert_eq!(whole(Strong::Xxh128, 9), xxh3_128_with_seed(&data, 0).to_le_bytes());
        assert_eq!(whole(Strong::None, 9), [0]);
    }

    #[test]
    fn xxh3_streaming_matches_rsyncs_self_test() {
        // checksum.c verify_digest: rsync refuses XXH3 unless this streamed digest of a
        // printable pattern comes out as the constant below.
        let buf: Vec<u8> = (0..32816).map(|j| b' ' + (j % 96) as u8).collect();
        let mut h = Xxh3::new();
        for n in [32816, 31152, 32474, 9322] {
            h.update(&buf[..n]);
        }
        assert_eq!(h.digest(), 0xadbc_f16d_4678_d1de);
        let mut f = FileSum::unseeded(Strong::Xxh3);
        for n in [32816, 31152, 32474, 9322] {
            f.update(&buf[..n]);
        }
        assert_eq!(f.finish().as_bytes(), 0xadbc_f16d_4678_d1deu64.to_le_bytes());
    }
}
