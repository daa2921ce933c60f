//! Any bytes as a file list a client pushes, read with each combination of the options
//! that change its encoding: entries or an error, never a panic; no entry with an
//! absolute name or a `..` component; a cut buffer is `Incomplete`, never a different
//! entry; the id lists after it likewise. Each link's target is judged by
//! `--safe-links`' rules (never a panic, and an absolute target is always unsafe). The
//! list's hard-linked sets are walked as a push's generator walks them, each candidate
//! given an outcome from the input: no member is linked twice, nor to itself. The same
//! entries as incremental recursion's lists (the first, then one announced for a
//! directory): refused or held, never a name outside its directory.
#![no_main]

use halite_rsync::flist::{name_cmp, read_id_lists, ListItem, ListOptions, ListReader};
use halite_rsync::hlink::{HardLinks, Turn};
use halite_rsync::inclists::RecvLists;
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
    let mut entries = list.into_entries();
    let mut recv = RecvLists::new(true, 1000, 20_000);
    if let Ok(first) = recv.first(entries.clone()) {
        for (i, e) in first.entries.iter().enumerate() {
            assert!(!e.name.contains(&b'/'), "a first list's name below the top");
            assert_eq!(recv.get(first.start + i as i32), Some(e));
        }
        if let Ok(d) = recv.announce(i64::from(sel % 8)) {
            if let Ok(sub) = recv.add(Some(d), entries.clone()) {
                let dir = sub.dir.as_ref().expect("an announced list has its directory");
                for e in &sub.entries {
                    assert!(e.name.starts_with(&dir.name) && e.name.get(dir.name.len()) == Some(&b'/'));
                }
            }
        }
    }
    entries.sort_unstable_by(name_cmp);
    let mut links = HardLinks::new(&entries);
    let mut linked = std::collections::HashSet::new();
    let mut link = |member: u32, leader: u32| {
        assert_ne!(member, leader, "a member linked to itself");
        assert!(linked.insert(member), "member {member} linked twice");
    };
    let mut outcomes = data.iter().rev().copied().cycle();
    for i in 0..entries.len() as u32 {
        let mut next = Some(i);
        let mut steps = 0;
        while let Some(ndx) = next.take() {
            steps += 1;
            assert!(steps <= entries.len() + 1, "a set handed on without end");
            match links.turn(ndx) {
                Turn::LinkTo(leader) => link(ndx, leader),
                Turn::Candidate { .. } => match outcomes.next().unwrap_or(0) % 4 {
                    0 => links.defer(ndx),
                    1 => links.sent(ndx),
                    2 => links.in_place(ndx).into_iter().for_each(|m| link(m, ndx)),
                    _ => next = links.skipped(ndx),
                },
                Turn::Alone | Turn::Waiting => {}
            }
        }
    }
    for i in 0..entries.len() as u32 {
        links.in_place(i).into_iter().for_each(|m| link(m, i));
        links.failed(i);
    }
});
