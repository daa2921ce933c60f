//! Streams one file's delta to the client: the sum head echoed, the tokens the matcher
//! finds against the client's block sums (through the negotiated token encoding), and
//! the whole-file checksum after the end mark.

use crate::session::{Fatal, Transfer};
use halite_rsync::checksum::BlockChecksum;
use halite_rsync::compress::Compression;
use halite_rsync::delta::{BlockSums, Matcher, Token};
use halite_rsync::token::{Decode, Encode};
use std::io::Read;

/// The compressions offered to `-z`, in the reference's order of preference.
pub const COMPRESSIONS: &[&str] = &["zstd", "lz4", "zlibx", "zlib", "none"];

/// Output is handed to the socket in pieces of about this size.
const SEND_PIECE: usize = 64 * 1024;

pub fn send_delta(t: &mut Transfer<'_>, sums: BlockSums, file: &mut dyn Read) -> Result<(u64, u64), Fatal> {
    let mut out = Vec::with_capacity(SEND_PIECE * 2);
    sums.head().write(&mut out);
    let hasher = BlockChecksum::new(t.sums.strong, t.sums.seed, t.sums.proper_seed_order);
    let mut matcher = Matcher::new(sums, hasher);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // The file changed under us: what was sent stands, the checksum will not
            // match and the client's receiver redoes the file.
            Err(e) => {
                tracing::warn!("read error mid-file: {e}");
                break;
            }
        };
        let encoder = &mut t.encoder;
        matcher.feed(&buf[..n], |tok| emit(encoder.as_mut(), &mut out, tok));
        if out.len() >= SEND_PIECE {
            t.wire.send(&out)?;
            out.clear();
        }
    }
    let encoder = &mut t.encoder;
    let done = matcher.finish(|tok| emit(encoder.as_mut(), &mut out, tok));
    t.encoder.end(&mut out);
    out.extend_from_slice(done.file_sum.as_bytes());
    t.wire.send(&out)?;
    Ok((done.literal_bytes, done.matched_bytes))
}

fn emit(encoder: &mut dyn Encode, out: &mut Vec<u8>, tok: Token<'_>) {
    match tok {
        Token::Literal(data) => encoder.literal(out, data),
        Token::Block { index, data } => encoder.matched(out, index, data),
    }
}

/// The negotiated compression and the level the client asked for, as the token
/// stream's kind (`None` when the level turns compression off).
pub fn compression_kind(name: Option<&str>, level: Option<i32>) -> (Compression, Option<i32>) {
    let kind = name.and_then(Compression::from_name).unwrap_or(Compression::None);
    (kind.effective(level), kind.level(level))
}

/// The token encoder for the negotiated compression (plain tokens without one).
pub fn encoder(name: Option<&str>, level: Option<i32>, protocol: i32) -> Box<dyn Encode + Send> {
    let (kind, level) = compression_kind(name, level);
    halite_rsync::compress::encoder_for_protocol(kind, level, protocol)
}

/// The token decoder for the negotiated compression (plain tokens without one).
pub fn decoder(name: Option<&str>, level: Option<i32>, protocol: i32) -> Box<dyn Decode + Send> {
    let (kind, _) = compression_kind(name, level);
    halite_rsync::compress::decoder_for_protocol(kind, protocol)
}
