//! Any bytes as an RFC 1035 zone file for halite-dns (with `$INCLUDE` of itself and of a
//! missing file): a zone or an error naming a line, never a panic or a hang; a zone that
//! loads answers a query for its apex.
#![no_main]

use std::str::FromStr;

use halite_dns::respond::{Authority, Outcome, Transport};
use halite_dns::zone::{StoredName, Zone};
use libfuzzer_sys::fuzz_target;

/// libfuzzer-sys aborts on every panic, caught or not. `Zone::load` catches the panics of
/// `domain` 0.12.3's zone scanner (it indexes past its buffer on some malformed input) and
/// returns an error, as the daemon needs; those are expected here, any other panic is not.
fn tolerate_the_scanners_known_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let in_scanner = info.location().is_some_and(|at| at.file().contains("/src/zonefile/inplace.rs"));
            if !in_scanner {
                eprintln!("{info}");
                std::process::abort();
            }
        }));
    });
}

fuzz_target!(|data: &[u8]| {
    tolerate_the_scanners_known_panics();
    let apex = StoredName::from_str("example.wpdn.").unwrap();
    let mut text = b"$ORIGIN example.wpdn.\n".to_vec();
    text.extend_from_slice(data);
    // As the daemon bounds a zone's files in all, so that a file including itself k times
    // per level (k^8 reads at depth 8) is refused rather than read for ever.
    let mut budget = 1usize << 20;
    let loaded = Zone::load(&apex, "fuzz.zone", &text, &mut |path| match path {
        "self.zone" if data.len() <= budget => {
            budget -= data.len();
            Ok(data.to_vec())
        }
        "self.zone" => Err("over the zone's byte budget".into()),
        _ => Err("No such file or directory".into()),
    });
    if let Ok(zone) = loaded {
        let authority = Authority::new(vec![zone]);
        let query = b"\x12\x34\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x04wpdn\x00\x00\xff\x00\x01";
        assert!(matches!(authority.respond(query, Transport::Udp, std::net::IpAddr::from([127, 0, 0, 1])), Outcome::Reply(_)));
    }
});
