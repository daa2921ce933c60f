//! Any bytes as the filter list a client sends, then as rules matched against paths: a
//! list or an error, never a panic, and bounded work per match.
#![no_main]

use halite_rsync::filter::{decode_list, FilterList, ParseOptions, Side};
use halite_rsync::wire::Reader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    let rules = match decode_list(&mut r) {
        Ok(rules) => rules,
        // Not a well-formed list: the bytes as rules, split at newlines.
        Err(_) => data.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect(),
    };
    let opts = ParseOptions { protocol: 32, delete_excluded: false, from0: false };
    let Ok(list) = FilterList::from_wire(&rules, opts) else { return };
    for path in [&b"a"[..], b"a/b/c.o", b"dir", b".git/config", b"x y/\xff\xfe"] {
        for side in [Side::Sender, Side::Receiver] {
            let _ = list.matches(path, path.len() % 2 == 0, side);
        }
    }
    let _ = halite_rsync::wildmatch::wildmatch(data, b"some/long/path/name.txt");
});
