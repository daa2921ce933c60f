//! Streams one file's delta to the client: the sum head echoed, the tokens the matcher
//! finds against the client's block sums (through the negotiated token encoding), and
//! the whole-file checksum after the end mark.

use crate::session::{Fatal, Transfer};
use halite_rsync::checksum::BlockChecksum;
use halite_rsync::compress::Compression;
use halite_rsync::delta::{BlockSums, Finished, Matcher, Token};
use halite_rsync::token::{Decode, Encode};
use std::io::Read;

/// The compressions offered to `-z`, in the reference's order of preference.
pub const COMPRESSIONS: &[&str] = &["zstd", "lz4", "zlibx", "zlib", "none"];

pub fn send_delta(t: &mut Transfer<'_>, sums: BlockSums, file: &mut dyn Read) -> Result<Finished, Fatal> {
    sums.head().write(t.wire.out_buffer());
    let hasher = BlockChecksum::new(t.sums.strong, t.sums.seed, t.sums.proper_seed_order);
    // The connection's read buffer is the window: one allocation for all the files.
    let mut matcher = Matcher::new(sums, hasher).with_window(std::mem::take(&mut t.read_buf));
    // The file is read straight into the matcher's window: a first read of one token
    // run, then larger ones, so a tree of small files never grows the window past one
    // run (the buffer is kept for the whole connection).
    let mut most = halite_rsync::token::CHUNK_SIZE;
    loop {
        let encoder = &mut t.encoder;
        let out = t.wire.out_buffer();
        let fed = matcher.feed_from(
            most,
            |room| loop {
                match file.read(room) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    other => return other,
                }
            },
            |tok| emit(encoder.as_mut(), out, tok),
        );
        match fed {
            Ok(0) => break,
            Ok(_) => {}
            // The file changed under us: what was sent stands, the checksum will not
            // match and the client's receiver redoes the file.
            Err(e) => {
                tracing::warn!("read error mid-file: {e}");
                break;
            }
        }
        t.wire.flush_if_full()?;
        most = (most * 2).min(crate::session::READ_PIECE);
    }
    let encoder = &mut t.encoder;
    let out = t.wire.out_buffer();
    let (done, window) = matcher.finish_keeping_window(|tok| emit(encoder.as_mut(), out, tok));
    t.read_buf = window;
    t.encoder.end(out);
    out.extend_from_slice(done.file_sum.as_bytes());
    t.wire.flush_if_full()?;
    Ok(done)
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
