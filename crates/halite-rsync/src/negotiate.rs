//! What the server settles right after the arguments (compat.c setup_protocol): the
//! compatibility flags it grants from the client's `-e.<letters>` capabilities, and the
//! checksum and compression names each side lists, strongest first, of which each side
//! takes its own favourite present in the other's list.

use crate::wire::{Reader, WireError};

pub const CF_INC_RECURSE: i32 = 1 << 0;
pub const CF_SYMLINK_TIMES: i32 = 1 << 1;
pub const CF_SYMLINK_ICONV: i32 = 1 << 2;
pub const CF_SAFE_FLIST: i32 = 1 << 3;
pub const CF_AVOID_XATTR_OPTIM: i32 = 1 << 4;
pub const CF_CHKSUM_SEED_FIX: i32 = 1 << 5;
pub const CF_INPLACE_PARTIAL_DIR: i32 = 1 << 6;
pub const CF_VARINT_FLIST_FLAGS: i32 = 1 << 7;
pub const CF_ID0_NAMES: i32 = 1 << 8;

/// Longest negotiation string the reference reads (compat.c MAX_NSTR_STRLEN).
pub const MAX_NSTR: usize = 256;

/// What the connection runs with once the flags are exchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Compat {
    pub flags: i32,
    /// Checksum and compression names are exchanged as strings ('v').
    pub negotiated_strings: bool,
    /// File-list flags are varints ('v'), which also carries the io_error at the end.
    pub varint_flist_flags: bool,
    /// The receiver can set symlink times ('L'): the sender reports their times.
    pub receiver_symlink_times: bool,
    /// MD5 block sums put the seed first ('C').
    pub proper_seed_order: bool,
    /// The names of uid/gid 0 are sent too ('u').
    pub id0_names: bool,
    /// The file list may end with an io_error value (protocol 31, or 'f').
    pub safe_flist: bool,
    pub inc_recurse: bool,
}

/// The flags a server grants for the client's capability letters (the part of the `-e`
/// option after the '.'). `allow_inc_recurse` is whether this transfer can run with
/// incremental recursion; the caller decides from the options.
pub fn server_compat(protocol: i32, client_info: &str, allow_inc_recurse: bool) -> Compat {
    let has = |c: char| client_info.contains(c);
    let mut flags = 0;
    if allow_inc_recurse && has('i') {
        flags |= CF_INC_RECURSE;
    }
    flags |= CF_SYMLINK_TIMES;
    if has('f') {
        flags |= CF_SAFE_FLIST;
    }
    if has('x') {
        flags |= CF_AVOID_XATTR_OPTIM;
    }
    if has('C') {
        flags |= CF_CHKSUM_SEED_FIX;
    }
    if has('I') {
        flags |= CF_INPLACE_PARTIAL_DIR;
    }
    if has('u') {
        flags |= CF_ID0_NAMES;
    }
    let negotiated_strings = has('v');
    if negotiated_strings {
        flags |= CF_VARINT_FLIST_FLAGS;
    }
    Compat {
        flags,
        negotiated_strings,
        varint_flist_flags: flags & CF_VARINT_FLIST_FLAGS != 0,
        receiver_symlink_times: has('L'),
        proper_seed_order: flags & CF_CHKSUM_SEED_FIX != 0,
        id0_names: flags & CF_ID0_NAMES != 0,
        safe_flist: flags & CF_SAFE_FLIST != 0 || protocol >= 31,
        inc_recurse: flags & CF_INC_RECURSE != 0,
    }
}

/// Appends a "vstring": a length in one byte (two with the top bit set past 127), then
/// the bytes.
pub fn put_vstring(out: &mut Vec<u8>, s: &[u8]) {
    let len = s.len().min(0x7fff);
    if len > 0x7f {
        out.push((len / 0x100) as u8 | 0x80);
    }
    out.push(len as u8);
    out.extend_from_slice(&s[..len]);
}

/// Reads a vstring of at most `max` bytes.
pub fn read_vstring<'a>(r: &mut Reader<'a>, max: usize) -> Result<&'a [u8], WireError> {
    let mut len = r.u8()? as usize;
    if len & 0x80 != 0 {
        len = (len & 0x7f) * 0x100 + r.u8()? as usize;
    }
    if len >= max {
        return Err(WireError::OutOfRange { what: "vstring length", value: len as i64, lo: 0, hi: max as i64 - 1 });
    }
    r.bytes(len)
}

/// Our favourite of `ours` (in preference order) that appears among the peer's
/// space-separated names.
pub fn choose<'a>(ours: &[&'a str], theirs: &[u8]) -> Option<&'a str> {
    let theirs = String::from_utf8_lossy(theirs);
    let names: Vec<&str> = theirs.split(' ').filter(|n| !n.is_empty()).collect();
    ours.iter().copied().find(|o| names.iter().any(|n| n.eq_ignore_ascii_case(o)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flags_for_a_3_5_client_match_the_reference_without_inc_recurse() {
        // The reference daemon answers 0x1ff to "-e.iLsfxCIvu" with incremental
        // recursion; without it the low bit is clear.
        let c = server_compat(32, "iLsfxCIvu", true);
        assert_eq!(c.flags, 0x1ff & !CF_SYMLINK_ICONV);
        let c = server_compat(32, "iLsfxCIvu", false);
        assert_eq!(c.flags & CF_INC_RECURSE, 0);
        assert!(c.varint_flist_flags && c.proper_seed_order && c.id0_names);
        // rsync 3.0 sends no letters.
        let c = server_compat(30, "", true);
        assert_eq!(c.flags, CF_SYMLINK_TIMES);
        assert!(!c.safe_flist && !c.negotiated_strings);
    }

    #[test]
    fn vstrings_round_trip_and_are_bounded() {
        for len in [0usize, 5, 127, 128, 300] {
            let s = vec![b'x'; len];
            let mut out = Vec::new();
            put_vstring(&mut out, &s);
            let mut r = Reader::new(&out);
            assert_eq!(read_vstring(&mut r, 1024).unwrap(), &s[..]);
        }
        let mut out = Vec::new();
        put_vstring(&mut out, &[b'y'; 300]);
        assert!(read_vstring(&mut Reader::new(&out), MAX_NSTR).is_err());
    }

    #[test]
    fn each_side_takes_its_own_favourite() {
        let ours = ["xxh128", "xxh3", "xxh64", "md5", "md4", "none"];
        assert_eq!(choose(&ours, b"xxh128 xxh3 xxh64 md5 md4 sha1"), Some("xxh128"));
        assert_eq!(choose(&ours, b"md4 md5"), Some("md5"));
        assert_eq!(choose(&ours, b"sha1"), None);
    }
}
