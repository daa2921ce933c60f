//! Any bytes as a file's token stream from a pushing client, plain and in each
//! compressed form: literal pieces, block references or the end, or an error, never a
//! panic; no piece larger than the decoders' bound whatever the input claims.
#![no_main]

use halite_rsync::token::{Decode, Decoded, SimpleDecoder, CHUNK_SIZE};
use halite_rsync::wire::{Reader, WireError};
use libfuzzer_sys::fuzz_target;

fn run(dec: &mut dyn Decode, data: &[u8]) {
    let mut r = Reader::new(data);
    for _ in 0..10_000 {
        let pos = r.position();
        match dec.next(&mut r) {
            Ok(Decoded::Literal(d)) => assert!(!d.is_empty() && d.len() <= 4 * CHUNK_SIZE),
            Ok(Decoded::Block(_)) => dec.saw_block(&[0u8; 700]),
            Ok(Decoded::End) => {}
            Err(WireError::Incomplete) => {
                r.rewind(pos);
                return;
            }
            Err(_) => return,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    run(&mut SimpleDecoder::new(), data);
    for kind in halite_rsync::compress::Compression::PREFERRED {
        run(halite_rsync::compress::decoder(kind).as_mut(), data);
    }
});
