//! Any bytes as a file list a client pushes, read with each combination of the options
//! that change its encoding: entries or an error, never a panic; no entry with an
//! absolute name or a `..` component; a cut buffer is `Incomplete`, never a different
//! entry; the id lists after it likewise. Each link's target is judged by
//! `--safe-links`' rules (never a panic, and an absolute target is always unsafe).
#![no_main]

use halite_rsync::flist::{read_id_lists, ListItem, ListOptions, ListReader};
use halite_rsync::links::unsafe_symlink;
use halite_rsync::wire::{Reader, WireError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, data)) = data.split_first() else { return };
    let opts = ListOptions {
        protocol: if sel & 1 != 0 { 32 } else { 30 },
        varint_flags: sel & 2 != 0,
        preserve_uid: sel & 4 != 0,
        preserve_gid: sel & 8 != 0,
        preserve_links: sel & 16 != 0,
        preserve_devices: sel & 32 != 0,
        preserve_specials: sel & 32 != 0,
        preserve_hard_links: sel & 64 != 0,
        inline_names: false,
        checksum_len: (sel & 128 != 0).then_some(16),
    };
    let mut list = ListReader::new(opts, 10_000);
    let mut r = Reader::new(data);
    loop {
        let before = r.position();
        let mut probe = list.clone();
        let mut cut = Reader::new(&data[before..data.len().min(before + 5)]);
        let short = probe.read(&mut cut);
        match list.read(&mut r) {
            Ok(ListItem::Entry(e)) => {
                assert!(!e.name.starts_with(b"/"));
                assert!(!e.name.split(|&b| b == b'/').any(|c| c == b".."));
                if let Some(target) = &e.link_target {
                    let judged = unsafe_symlink(target, &e.name);
                    assert!(judged || !target.starts_with(b"/"), "an absolute target judged safe");
                }
                if let Ok(ListItem::Entry(s)) = short {
                    assert_eq!(s, e, "a cut buffer gave a different entry");
                }
            }
            Ok(ListItem::End(_)) => {
                let _ = read_id_lists(&mut r, &opts, sel & 1 != 0);
                break;
            }
            Err(WireError::Incomplete) | Err(_) => break,
        }
    }
});
