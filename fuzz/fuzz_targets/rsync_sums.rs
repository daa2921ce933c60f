//! Any bytes as the block sums a client's generator sends (CVE-2024-12084: the sum head's
//! strong length and count), then a file matched against them and the tokens decoded
//! back: a header is in bounds or refused, memory follows the bytes received, and
//! whatever the sums say, the tokens rebuild the file exactly.
#![no_main]

use halite_rsync::checksum::{BlockChecksum, Strong};
use halite_rsync::delta::{BlockSums, Matcher, SumHead, Token};
use halite_rsync::token::{Decode, Decoded, Encode, SimpleDecoder, SimpleEncoder};
use halite_rsync::wire::Reader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, data)) = data.split_first() else { return };
    let strong = Strong::NEGOTIABLE[sel as usize % Strong::NEGOTIABLE.len()];
    let mut r = Reader::new(data);
    let Ok(head) = SumHead::read(&mut r, 32, strong.digest_len()) else { return };
    assert!(head.strong_len as usize <= strong.digest_len().min(16));
    let mut sums = BlockSums::new(head);
    sums.fill(&mut r);
    let new_file = r.remaining().to_vec();
    // The "basis" the sums claim to describe is unknown: rebuild with the new file's own
    // bytes where a block was matched (the matcher only matches verified bytes).
    let hasher = BlockChecksum::new(strong, 7, true);
    let mut m = Matcher::new(sums, hasher);
    let mut enc = SimpleEncoder::new();
    let mut wire = Vec::new();
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    let mut on_token = |t: Token<'_>| match t {
        Token::Literal(d) => enc.literal(&mut wire, d),
        Token::Block { index, data } => {
            // Fuzzed sums may be weak (a strong length of 0): two different windows
            // can match one index, so each reference keeps the bytes it stood for.
            blocks.push(data.to_vec());
            enc.matched(&mut wire, index, data)
        }
    };
    // Fed as a reader would feed it, in pieces whose size the selector byte picks (1 to
    // 32 bytes, or one piece), so windows and literal runs straddle the pieces.
    let piece = match sel >> 3 {
        0 => new_file.len().max(1),
        n => n as usize,
    };
    let mut rest = &new_file[..];
    loop {
        let fed = m.feed_from(
            piece,
            |room| {
                let n = room.len().min(rest.len());
                room[..n].copy_from_slice(&rest[..n]);
                rest = &rest[n..];
                Ok::<usize, ()>(n)
            },
            &mut on_token,
        );
        if fed == Ok(0) {
            break;
        }
    }
    let done = m.finish(&mut on_token);
    enc.end(&mut wire);
    let mut dec = SimpleDecoder::new();
    let mut rd = Reader::new(&wire);
    let mut rebuilt = Vec::new();
    let mut matched = blocks.into_iter();
    loop {
        match dec.next(&mut rd).expect("our own tokens decode") {
            Decoded::Literal(d) => rebuilt.extend_from_slice(d),
            Decoded::Block(_) => rebuilt.extend_from_slice(&matched.next().expect("one per reference")),
            Decoded::End => break,
        }
    }
    assert_eq!(rebuilt, new_file);
    assert_eq!(done.literal_bytes + done.matched_bytes, new_file.len() as u64);
});
