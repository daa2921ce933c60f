//! Any bytes as what an rsync client sends a daemon before the file list: the greeting
//! line, the argument list (NUL- and newline-terminated), the options parsed from it, a
//! multiplexed frame header and a negotiation string. Errors, never a panic, and no
//! argument list past its bounds.
#![no_main]

use halite_rsync::handshake::{self, ArgsReader, MAX_ARG, MAX_ARGS};
use halite_rsync::options::ServerOptions;
use halite_rsync::wire::Reader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((line, used))) = handshake::take_line(data) {
        // Invalid UTF-8 is shown as U+FFFD (3 bytes each): the line stays within 3 × the limit.
        assert!(used <= data.len() && line.len() < 3 * handshake::MAX_LINE);
        let _ = handshake::parse_client_greeting(&line);
    }
    for protocol in [30, 32] {
        let mut reader = ArgsReader::new(protocol);
        for chunk in data.chunks(7) {
            match reader.feed(chunk) {
                Ok((used, Some(args))) => {
                    assert!(used <= chunk.len());
                    assert!(args.len() <= MAX_ARGS && args.iter().all(|a| a.len() <= MAX_ARG));
                    let _ = ServerOptions::parse(&args, &["delete".to_string(), "c*".to_string()]);
                    break;
                }
                Ok((used, None)) => assert_eq!(used, chunk.len()),
                Err(_) => break,
            }
        }
    }
    if data.len() >= 4 {
        let _ = halite_rsync::mux::parse_header([data[0], data[1], data[2], data[3]]);
    }
    let mut r = Reader::new(data);
    if let Ok(s) = halite_rsync::negotiate::read_vstring(&mut r, halite_rsync::negotiate::MAX_NSTR) {
        let _ = halite_rsync::negotiate::choose(&["xxh128", "md5"], s);
    }
});
