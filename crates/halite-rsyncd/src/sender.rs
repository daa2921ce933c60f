//! The daemon as sender (the client pulls): the file list of what the client asked for,
//! then, for each file the client's generator requests with its block sums, the delta
//! against those sums and the whole-file checksum; then the statistics and the goodbye.
//!
//! The flow follows the reference's send_files(): the client drives it with file
//! indexes, ends each phase with NDX_DONE, and every index is checked against the lists
//! before it is used.
//!
//! With incremental recursion (a recursive pull, when the client offers it) the first
//! list holds only what the client named, and each directory's entries follow as a list
//! of their own while files are already moving: kept about a thousand entries ahead of
//! the client, more while it is quiet, and dropped as it finishes them
//! (`halite_rsync::inclists` numbers them and orders the walk).
//!
//! Each directory is entered for the client's per-directory merge files (`-F`,
//! `dir-merge`) before its entries are judged: the files are read in the module, never
//! through a symlink, and never when the module's own rules hide them.

use crate::log::Logged;
use crate::session::{Fatal, Transfer};
use crate::tree::{read_dir_fd, readlink_at, split_parent, stat_at};
use halite_rsync::flist::{self, FileEntry, ListWriter};
use halite_rsync::inclists::{self, SendLists};
use halite_rsync::mux::Msg;
use halite_rsync::negotiate::put_vstring;
use halite_rsync::wire::{put_varint, Reader, WireError};
use std::io::Read;
use std::time::Instant;

pub const ITEM_BASIS_TYPE_FOLLOWS: u16 = 1 << 11;
pub const ITEM_XNAME_FOLLOWS: u16 = 1 << 12;
pub const ITEM_TRANSFER: u16 = 1 << 15;

pub const NDX_DONE: i32 = -1;
pub const NDX_DEL_STATS: i32 = -3;

/// Most entries one file list may hold: a client cannot make the daemon walk and keep
/// an unbounded tree in memory (each entry costs ~100 bytes).
pub const MAX_ENTRIES: usize = 4_000_000;

/// Most directories one incremental transfer remembers (a small node each).
pub const MAX_DIRS: usize = 4_000_000;

/// With incremental recursion, lists are sent until this many entries wait beyond the
/// one the client is working through, before each request is read (the reference's
/// MIN_FILECNT_LOOKAHEAD) ...
const LOOKAHEAD_MIN: usize = 1000;
/// ... and up to this many while the client has nothing to say (MAX_FILECNT_LOOKAHEAD).
const LOOKAHEAD_MAX: usize = 10_000;

/// rsync's byte-saving file index encoding (io.c write_ndx/read_ndx), whose state is
/// the previous index sent (or read) in each direction.
#[derive(Debug, Clone)]
pub struct NdxCodec {
    prev_positive: i32,
    prev_negative: i32,
}

impl Default for NdxCodec {
    fn default() -> Self {
        NdxCodec { prev_positive: -1, prev_negative: 1 }
    }
}

impl NdxCodec {
    pub fn write(&mut self, out: &mut Vec<u8>, ndx: i32) {
        if ndx == NDX_DONE {
            out.push(0);
            return;
        }
        let (num, diff) = if ndx >= 0 {
            let d = ndx.wrapping_sub(self.prev_positive);
            self.prev_positive = ndx;
            (ndx, d)
        } else {
            out.push(0xff);
            let n = -ndx;
            let d = n.wrapping_sub(self.prev_negative);
            self.prev_negative = n;
            (n, d)
        };
        if diff > 0 && diff < 0xfe {
            out.push(diff as u8);
        } else if !(0..=0x7fff).contains(&diff) {
            out.push(0xfe);
            out.push(((num >> 24) as u8) | 0x80);
            out.push(num as u8);
            out.push((num >> 8) as u8);
            out.push((num >> 16) as u8);
        } else {
            out.push(0xfe);
            out.push((diff >> 8) as u8);
            out.push(diff as u8);
        }
    }

    /// Reads one index; the state changes only when the whole index was there.
    pub fn read(&mut self, r: &mut Reader<'_>) -> Result<i32, WireError> {
        let mut b = r.u8()?;
        let negative = b == 0xff;
        if negative {
            b = r.u8()?;
        } else if b == 0 {
            return Ok(NDX_DONE);
        }
        let prev = if negative { self.prev_negative } else { self.prev_positive };
        let num: u32 = if b == 0xfe {
            let hi = r.u8()?;
            let lo = r.u8()?;
            if hi & 0x80 != 0 {
                let b2 = r.u8()?;
                let b3 = r.u8()?;
                u32::from_le_bytes([lo, b2, b3, hi & 0x7f])
            } else {
                ((hi as u32) << 8 | lo as u32).wrapping_add(prev as u32)
            }
        } else {
            (b as u32).wrapping_add(prev as u32)
        };
        if num > i32::MAX as u32 {
            return Err(WireError::Invalid(format!("Invalid file index: {num}")));
        }
        let num = num as i32;
        if negative {
            self.prev_negative = num;
            Ok(-num)
        } else {
            self.prev_positive = num;
            Ok(num)
        }
    }
}

/// The transfer's counters, for the client's statistics and the log.
#[derive(Debug, Default, Clone)]
pub struct SendStats {
    pub files: usize,
    pub total_size: u64,
    pub transferred: usize,
    pub literal_bytes: u64,
    pub matched_bytes: u64,
    pub io_error: i32,
}

/// One request the client's generator sent.
struct Request {
    ndx: i32,
    iflags: u16,
    basis_type: Option<u8>,
    xname: Option<Vec<u8>>,
}

/// The lists of one pull and the writer whose state runs through all of them.
struct Lists {
    lists: SendLists<Listed>,
    writer: ListWriter,
}

pub fn run(t: &mut Transfer<'_>) -> Result<crate::session::Totals, Fatal> {
    tracing::info!("building file list");
    let started = Instant::now();
    let mut stats = SendStats::default();
    let incremental = t.compat.inc_recurse;
    let first = build_list(t, &mut stats, incremental)?;
    let build_ms = started.elapsed().as_millis().max(1) as i64;
    let xfer_started = Instant::now();
    let mut lists = Lists { lists: SendLists::new(incremental, MAX_DIRS), writer: ListWriter::new(t.list_options()) };
    let nothing = first.is_empty();
    send_first_list(t, &mut lists, first, &mut stats)?;
    if nothing {
        // Nothing to send (every path named was missing): done once the empty list is
        // out, as the reference's do_server_sender is; the client ends on its own, with
        // its exit code, and the log gets the totals rather than the client's exit.
        t.wire.flush()?;
        return Ok(crate::session::Totals { written: t.wire.bytes_written, read: t.wire.bytes_read, total_size: 0 });
    }
    let xfer_ms = xfer_started.elapsed().as_millis() as i64;
    send_files(t, &mut lists, &mut stats)?;
    // The statistics the client prints: bytes read and written here, the list's size.
    let mut out = Vec::new();
    let proto = t.protocol;
    let w = &t.wire;
    for v in [w.bytes_read as i64, w.bytes_written as i64, stats.total_size as i64, build_ms, xfer_ms] {
        flist::put_varlong30(&mut out, proto, v, 3);
    }
    t.wire.send(&out)?;
    goodbye(t)?;
    Ok(crate::session::Totals { written: t.wire.bytes_written, read: t.wire.bytes_read, total_size: stats.total_size })
}

/// The paths the client named, relative to the module, with what each contributes: the
/// directory's contents ("dir/" and the module itself) or the item under its own name.
fn requested(t: &Transfer<'_>) -> Vec<(Vec<u8>, bool)> {
    let mut out = Vec::new();
    for arg in &t.options.paths {
        let rel = crate::session::module_relative(t.module_name, arg);
        let contents = rel.is_empty() || arg.ends_with(b"/") || arg.ends_with(b"/.");
        out.push((rel, contents));
    }
    if out.is_empty() {
        out.push((Vec::new(), true));
    }
    out
}

/// One entry of the list and the transfer root it was listed under (what the client
/// named, where its filter rules are anchored): up to ten thousand of these wait ahead
/// of the client, so the module path is worked out when needed, not stored.
#[derive(Clone)]
pub struct Listed {
    pub entry: FileEntry,
    pub root: std::rc::Rc<[u8]>,
}

impl Listed {
    /// Where the entry is in the module: its name under its transfer root.
    pub fn path(&self) -> Vec<u8> {
        if self.entry.name == b"." {
            self.root.to_vec()
        } else {
            join(&self.root, &self.entry.name)
        }
    }
}

fn kind(l: &Listed) -> inclists::Kind {
    match l.entry.is_dir() {
        false => inclists::Kind::NotDir,
        true if l.entry.name == b"." => inclists::Kind::Dot,
        true => inclists::Kind::Dir,
    }
}

/// The first list: what the client named, with directories' contents walked to the end
/// — or, with incremental recursion, only the entries of a directory named with a
/// trailing slash, the rest coming as lists of their own.
fn build_list(t: &mut Transfer<'_>, stats: &mut SendStats, incremental: bool) -> Result<Vec<Listed>, Fatal> {
    let mut list: Vec<Listed> = Vec::new();
    let recursive = t.options.recursive;
    let walk_down = recursive && !incremental;
    for (rel, contents) in requested(t) {
        // The per-directory rules of the last argument's walk do not judge this one.
        t.filters.leave_dirs();
        // A name the module's own rules exclude does not exist for the client, even
        // when asked for directly (or through a directory of it).
        let looked_up = t.tree.lstat(&rel).and_then(|st| {
            t.filters.set_root(b"");
            if !rel.is_empty() && t.filters.daemon_excluded(&rel, st.is_dir()) {
                Err(std::io::Error::from_raw_os_error(libc::ENOENT))
            } else {
                Ok(st)
            }
        });
        let st = match looked_up {
            Ok(st) => st,
            Err(e) => {
                stats.io_error |= flist::IOERR_GENERAL;
                // Without -R the reference enters the named path's directory first, so
                // a missing directory is what it reports (one the module's rules hide
                // looks missing too).
                let (parent, _) = crate::tree::split_parent(&rel);
                let parent_failed = if t.options.relative || parent.is_empty() {
                    None
                } else {
                    match t.tree.lstat(parent) {
                        Ok(st) if st.is_dir() && !t.filters.daemon_excluded(parent, true) => None,
                        Ok(st) if st.is_dir() => Some(std::io::Error::from_raw_os_error(libc::ENOENT)),
                        Ok(_) => Some(std::io::Error::from_raw_os_error(libc::ENOTDIR)),
                        Err(e) => Some(e),
                    }
                };
                let text = match parent_failed {
                    Some(e) => {
                        format!("rsync: [sender] change_dir {} failed: {}", t.module.full_fname(parent), os_error(&e))
                    }
                    None => format!("rsync: [sender] link_stat {} failed: {}", t.module.full_fname(&rel), os_error(&e)),
                };
                t.error(&text)?;
                continue;
            }
        };
        // The name the entry gets in the list: "." for a directory's contents, the
        // last component otherwise (the reference's transfer root is its parent).
        let (parent, base) = split_parent(&rel);
        let root: std::rc::Rc<[u8]> = if st.is_dir() && contents { rel.as_slice().into() } else { parent.into() };
        t.filters.set_root(&root);
        if st.is_dir() && contents {
            let mut top = st.to_entry(b".".to_vec());
            top.top_dir = true;
            list.push(Listed { entry: top, root: root.clone() });
            if recursive || t.options.dirs {
                walk(t, &rel, b"", walk_down, &root, &mut list, stats)?;
            }
        } else if st.is_dir() && !recursive && !t.options.dirs {
            t.info(&format!("skipping directory {}", String::from_utf8_lossy(base)))?;
        } else {
            let dir = t.tree.open_dir(parent).map_err(Fatal::io("open", parent))?;
            if let Some(e) = entry_for(t, &dir, base, base.to_vec(), stats)? {
                let is_dir = e.is_dir();
                list.push(Listed { entry: e, root: root.clone() });
                if is_dir && walk_down {
                    walk(t, &rel, base, true, &root, &mut list, stats)?;
                }
            }
        }
    }
    sort_list(&mut list);
    Ok(list)
}

/// The order both sides index a list by, without repeated names.
fn sort_list(list: &mut Vec<Listed>) {
    list.sort_by(|a, b| flist::name_cmp(&a.entry, &b.entry));
    list.dedup_by(|a, b| a.entry.name == b.entry.name);
}

/// Adds the entries of directory `dir_rel` (relative to the module) to `list`, named
/// under `prefix`, descending when recursive. Iterative, so a deep tree cannot
/// exhaust the stack.
fn walk(
    t: &mut Transfer<'_>,
    dir_rel: &[u8],
    prefix: &[u8],
    recursive: bool,
    root: &std::rc::Rc<[u8]>,
    list: &mut Vec<Listed>,
    stats: &mut SendStats,
) -> Result<(), Fatal> {
    let mut stack: Vec<(Vec<u8>, Vec<u8>)> = vec![(dir_rel.to_vec(), prefix.to_vec())];
    while let Some((dir_rel, prefix)) = stack.pop() {
        t.change_filter_dir(&prefix)?;
        let dir = match t.tree.open_dir(&dir_rel) {
            Ok(d) => d,
            // Gone since it was listed (with incremental recursion a directory is read
            // when its list comes due): vanished, a warning, as the reference says it,
            // so the client's --delete goes on.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                stats.io_error |= flist::IOERR_VANISHED;
                t.warning(&format!("directory has vanished: {}", t.module.full_fname(&dir_rel)))?;
                continue;
            }
            Err(e) => {
                stats.io_error |= flist::IOERR_GENERAL;
                t.error(&format!(
                    "rsync: [sender] opendir {} failed: {}",
                    t.module.full_fname(&dir_rel),
                    os_error(&e)
                ))?;
                continue;
            }
        };
        let names = read_dir_fd(&dir).map_err(Fatal::io("readdir", &dir_rel))?;
        for name in names {
            let Some(e) = entry_for(t, &dir, &name, join(&prefix, &name), stats)? else {
                continue;
            };
            if list.len() >= MAX_ENTRIES {
                return Err(Fatal::protocol(format!(
                    "the file list has more than {MAX_ENTRIES} entries; ask for less at a time"
                )));
            }
            if e.is_dir() && recursive {
                stack.push((join(&dir_rel, &name), e.name.clone()));
            }
            list.push(Listed { entry: e, root: root.clone() });
        }
    }
    Ok(())
}

fn join(a: &[u8], b: &[u8]) -> Vec<u8> {
    if a.is_empty() {
        return b.to_vec();
    }
    // Exactly sized: the names of the lists ahead of the client are held, ten thousand
    // of them.
    let mut v = Vec::with_capacity(a.len() + 1 + b.len());
    v.extend_from_slice(a);
    v.push(b'/');
    v.extend_from_slice(b);
    v
}

/// The entry for `name` in `dir`, or None when the filters or the options leave it out.
fn entry_for(
    t: &mut Transfer<'_>,
    dir: &std::os::fd::OwnedFd,
    name: &[u8],
    listed: Vec<u8>,
    stats: &mut SendStats,
) -> Result<Option<FileEntry>, Fatal> {
    let st = match stat_at(dir, name) {
        Ok(st) => st,
        Err(e) => {
            stats.io_error |= flist::IOERR_VANISHED;
            t.error(&format!("file has vanished: {}: {}", t.module.full_fname(&listed), os_error(&e)))?;
            return Ok(None);
        }
    };
    if t.excluded(&listed, st.is_dir()) {
        return Ok(None);
    }
    let mut e = st.to_entry(listed);
    if st.is_link() {
        if !t.options.links {
            t.info(&format!("skipping non-regular file \"{}\"", String::from_utf8_lossy(&e.name)))?;
            return Ok(None);
        }
        let target = readlink_at(dir, name).map_err(Fatal::io("readlink", &e.name))?;
        e.link_target = Some(t.outgoing_link(target));
    } else if e.is_device() || e.is_special() {
        // Device and special files are never served: a module is a tree of data.
        return Ok(None);
    } else if !st.is_dir() && !st.is_reg() {
        return Ok(None);
    }
    if t.options.hard_links && st.is_reg() && st.nlink > 1 {
        e.hardlink_key = Some((st.dev, st.ino));
    }
    if t.options.checksum && st.is_reg() {
        let sum = t.file_checksum(dir, name).map_err(Fatal::io("read", &e.name))?;
        e.checksum = Some(sum);
    }
    Ok(Some(e))
}

/// Writes a list's entries (and counts them for the statistics).
fn write_entries(t: &mut Transfer<'_>, lists: &mut Lists, list: &[Listed], stats: &mut SendStats) -> Result<(), Fatal> {
    // Hard links name their set's first member by its index over all the lists.
    let start = lists.lists.next_start();
    let start = i32::try_from(start).map_err(|_| Fatal::protocol(format!("list index {start} out of range")))?;
    lists.writer.begin_list(start);
    let mut out = Vec::with_capacity(64 * 1024);
    for Listed { entry: e, .. } in list {
        let (user, group) = t.names(e.uid, e.gid);
        lists.writer.write(&mut out, e, user.as_deref(), group.as_deref());
        if e.is_reg() || e.is_link() {
            stats.total_size += e.size;
        }
        stats.files += 1;
        if out.len() > 32 * 1024 {
            t.wire.send(&out)?;
            out.clear();
        }
    }
    t.wire.send(&out)?;
    Ok(())
}

fn send_first_list(
    t: &mut Transfer<'_>,
    lists: &mut Lists,
    mut first: Vec<Listed>,
    stats: &mut SendStats,
) -> Result<(), Fatal> {
    // Held until the client is done with it; without incremental recursion it is the
    // whole tree's list.
    first.shrink_to_fit();
    write_entries(t, lists, &first, stats)?;
    let mut out = Vec::new();
    let report_in_list = t.compat.safe_flist;
    lists.writer.end(&mut out, stats.io_error, report_in_list);
    // With incremental recursion the names went with the entries.
    if !t.numeric_ids_from_client && !lists.lists.incremental() {
        let id0 = t.id0_names();
        lists.writer.id_lists(&mut out, id0.as_ref().map(|(u, g)| (u.as_slice(), g.as_slice())));
    }
    t.wire.send(&out)?;
    if !report_in_list && stats.io_error != 0 {
        t.wire.message(Msg::IoError, &stats.io_error.to_le_bytes())?;
    }
    let single = first.len() == 1;
    lists.lists.push(None, first, kind).map_err(|e| Fatal::protocol(e.to_string()))?;
    if lists.lists.incremental() {
        if lists.lists.next_dir().is_none() {
            end_of_lists(t, lists)?;
        } else if single {
            // One item (a directory named without its slash): its entries go at once,
            // so the client can tell a one-file transfer from a tree, as the reference does.
            send_extra(t, lists, 1, stats)?;
        }
    }
    Ok(())
}

fn end_of_lists(t: &mut Transfer<'_>, lists: &mut Lists) -> Result<(), Fatal> {
    let mut out = Vec::new();
    t.ndx_out.write(&mut out, inclists::NDX_FLIST_EOF);
    t.wire.send(&out)?;
    lists.lists.finish();
    Ok(())
}

/// Sends directories' lists, depth first, until `at_least` entries wait beyond the
/// client's current list or every directory has had its list.
fn send_extra(t: &mut Transfer<'_>, lists: &mut Lists, at_least: usize, stats: &mut SendStats) -> Result<(), Fatal> {
    while lists.lists.more_to_send() && lists.lists.ahead() < at_least {
        let Some((d, dir)) = lists.lists.next_dir() else {
            end_of_lists(t, lists)?;
            break;
        };
        let dir = dir.clone();
        let io_before = stats.io_error;
        let mut entries = Vec::new();
        t.filters.set_root(&dir.root);
        walk(t, &dir.path(), &dir.entry.name, false, &dir.root, &mut entries, stats)?;
        sort_list(&mut entries);
        let mut out = Vec::new();
        t.ndx_out.write(&mut out, inclists::NDX_FLIST_OFFSET - d as i32);
        t.wire.send(&out)?;
        write_entries(t, lists, &entries, stats)?;
        let mut out = Vec::new();
        let new_error = stats.io_error != io_before;
        lists.writer.end(&mut out, if new_error { stats.io_error } else { 0 }, t.compat.safe_flist);
        t.wire.send(&out)?;
        if new_error && !t.compat.safe_flist && t.protocol == 30 {
            t.wire.message(Msg::IoError, &stats.io_error.to_le_bytes())?;
        }
        // Held until the client is done with the list, up to ten thousand entries ahead:
        // without the growth's spare room.
        entries.shrink_to_fit();
        lists.lists.push(Some(d), entries, kind).map_err(|e| Fatal::protocol(e.to_string()))?;
        if lists.lists.next_dir().is_none() {
            end_of_lists(t, lists)?;
        }
    }
    Ok(())
}

/// Before waiting for the client: lists up to the minimum lookahead, then more, one at a
/// time, for as long as the client has sent nothing and the lookahead is below its
/// maximum (the client may need them before it can ask for anything).
fn top_up(t: &mut Transfer<'_>, lists: &mut Lists, stats: &mut SendStats) -> Result<(), Fatal> {
    if !lists.lists.more_to_send() {
        return Ok(());
    }
    send_extra(t, lists, LOOKAHEAD_MIN, stats)?;
    while lists.lists.more_to_send() && lists.lists.ahead() < LOOKAHEAD_MAX {
        t.wire.flush()?;
        if t.wire.input_waiting()? {
            break;
        }
        let more = lists.lists.ahead() + 1;
        send_extra(t, lists, more, stats)?;
    }
    Ok(())
}

fn read_request(t: &mut Transfer<'_>) -> Result<Request, Fatal> {
    let proto = t.protocol;
    let ndx_in = &mut t.ndx_in;
    let req = t.wire.parse(|r| {
        let mut codec_copy = ndx_in.clone();
        let ndx = codec_copy.read(r)?;
        if ndx < 0 {
            *ndx_in = codec_copy;
            return Ok(Request { ndx, iflags: 0, basis_type: None, xname: None });
        }
        let iflags = if proto >= 29 { r.u16()? } else { ITEM_TRANSFER };
        let basis_type = if iflags & ITEM_BASIS_TYPE_FOLLOWS != 0 { Some(r.u8()?) } else { None };
        let xname = if iflags & ITEM_XNAME_FOLLOWS != 0 {
            Some(halite_rsync::negotiate::read_vstring(r, flist::MAXPATHLEN)?.to_vec())
        } else {
            None
        };
        *ndx_in = codec_copy;
        Ok(Request { ndx, iflags, basis_type, xname })
    })?;
    Ok(req)
}

fn write_attrs(t: &mut Transfer<'_>, req: &Request) -> Result<(), Fatal> {
    let mut out = Vec::new();
    t.ndx_out.write(&mut out, req.ndx);
    out.extend_from_slice(&req.iflags.to_le_bytes());
    if let Some(b) = req.basis_type {
        out.push(b);
    }
    if let Some(x) = &req.xname {
        put_vstring(&mut out, x);
    }
    t.wire.send(&out)?;
    Ok(())
}

fn send_files(t: &mut Transfer<'_>, lists: &mut Lists, stats: &mut SendStats) -> Result<(), Fatal> {
    let mut phase = 0;
    let max_phase = 2;
    loop {
        top_up(t, lists, stats)?;
        let req = read_request(t)?;
        match req.ndx {
            NDX_DONE => {
                // With incremental recursion each list the client finishes is ended by
                // an NDX_DONE, echoed; the last list's is the end of phase 0.
                if lists.lists.incremental() && !lists.lists.is_empty() {
                    if lists.lists.finish_first() {
                        let mut out = Vec::new();
                        t.ndx_out.write(&mut out, NDX_DONE);
                        t.wire.send(&out)?;
                        continue;
                    }
                    if lists.lists.more_to_send() {
                        return Err(Fatal::protocol(
                            "the client finished the file lists before their end [sender]".into(),
                        ));
                    }
                }
                phase += 1;
                if phase > max_phase {
                    break;
                }
                let mut out = Vec::new();
                t.ndx_out.write(&mut out, NDX_DONE);
                t.wire.send(&out)?;
                continue;
            }
            NDX_DEL_STATS => {
                echo_del_stats(t)?;
                continue;
            }
            _ => {}
        }
        let Some(listed) = lists.lists.get(req.ndx) else {
            let (low, high) = lists.lists.index_range();
            return Err(Fatal::protocol(format!("Invalid file index: {} ({low} - {high}) [sender]", req.ndx)));
        };
        let (file, path) = (&listed.entry, listed.path());
        let path = path.as_slice();
        let (in_before, out_before) = (t.wire.consumed(), t.wire.produced());
        if req.iflags & ITEM_TRANSFER == 0 {
            write_attrs(t, &req)?;
            // A dry run changes nothing, and the reference logs nothing of it.
            if let Some(log) = t.log.as_ref().filter(|_| !t.options.dry_run) {
                let (uid, gid) = t.logged_owner(file);
                let logged = Logged {
                    path,
                    iflags: req.iflags.into(),
                    data_bytes: 0,
                    checksum_bytes: 0,
                    file_sum: None,
                    uid,
                    gid,
                    hlink: req.xname.as_deref(),
                };
                log.changed(file, &logged);
            }
            continue;
        }
        if !file.is_reg() {
            return Err(Fatal::protocol(format!(
                "received request to transfer non-regular file: {} [sender]",
                req.ndx
            )));
        }
        if phase == 2 {
            return Err(Fatal::protocol("got transfer request in phase 2 [sender]".into()));
        }
        if t.options.dry_run {
            // The client's generator sends no block sums in a dry run: the request is
            // answered with its index and attributes alone, as the reference's is.
            write_attrs(t, &req)?;
            stats.transferred += 1;
            continue;
        }
        let sums = t.read_sums()?;
        let mut f = match t.tree.open_file(path) {
            Ok(f) => f,
            Err(e) => {
                // Deleted since it was listed: a warning and exit code 24, as the
                // reference has it, so a pull of a live tree is not called failed.
                if e.kind() == std::io::ErrorKind::NotFound {
                    stats.io_error |= flist::IOERR_VANISHED;
                    t.warning(&format!("file has vanished: {}", t.module.full_fname(path)))?;
                } else {
                    stats.io_error |= flist::IOERR_GENERAL;
                    t.error(&format!(
                        "rsync: [sender] send_files failed to open {}: {}",
                        t.module.full_fname(path),
                        os_error(&e)
                    ))?;
                }
                t.wire.message(Msg::NoSend, &req.ndx.to_le_bytes())?;
                continue;
            }
        };
        write_attrs(t, &req)?;
        let sent = t.send_delta(sums, &mut f as &mut dyn Read)?;
        stats.transferred += 1;
        stats.literal_bytes += sent.literal_bytes;
        stats.matched_bytes += sent.matched_bytes;
        if let Some(log) = &t.log {
            let (uid, gid) = t.logged_owner(file);
            let data_bytes = t.wire.produced() - out_before;
            let checksum_bytes = t.wire.consumed() - in_before;
            let file_sum = Some(sent.file_sum.as_bytes());
            log.transferred(
                file,
                &Logged {
                    path,
                    iflags: req.iflags.into(),
                    data_bytes,
                    checksum_bytes,
                    file_sum,
                    uid,
                    gid,
                    hlink: None,
                },
            );
        }
    }
    if stats.io_error != 0 && t.protocol >= 30 {
        t.wire.message(Msg::IoError, &stats.io_error.to_le_bytes())?;
    }
    let mut out = Vec::new();
    t.ndx_out.write(&mut out, NDX_DONE);
    t.wire.send(&out)?;
    Ok(())
}

/// The reference's read_final_goodbye for the sender: the client's last index must be
/// NDX_DONE (protocol ≥ 31: answered with one, then another NDX_DONE); deletion
/// statistics on the way are read and echoed.
fn goodbye(t: &mut Transfer<'_>) -> Result<(), Fatal> {
    let mut i = next_index(t)?;
    if t.protocol >= 31 && i == NDX_DONE {
        let mut out = Vec::new();
        t.ndx_out.write(&mut out, NDX_DONE);
        t.wire.send(&out)?;
        i = next_index(t)?;
    }
    if i != NDX_DONE {
        return Err(Fatal::protocol(format!("Invalid packet at end of run ({i}) [sender]")));
    }
    t.wire.flush()?;
    Ok(())
}

/// The next file index, with deletion statistics (NDX_DEL_STATS) read and echoed as
/// the reference's sender does.
fn next_index(t: &mut Transfer<'_>) -> Result<i32, Fatal> {
    loop {
        let req = read_request(t)?;
        if req.ndx != NDX_DEL_STATS {
            return Ok(req.ndx);
        }
        echo_del_stats(t)?;
    }
}

fn echo_del_stats(t: &mut Transfer<'_>) -> Result<(), Fatal> {
    let counts = t.wire.parse(|r| {
        let mut v = [0i32; 5];
        for c in &mut v {
            *c = r.varint()?;
        }
        Ok(v)
    })?;
    let mut out = Vec::new();
    t.ndx_out.write(&mut out, NDX_DEL_STATS);
    for c in counts {
        put_varint(&mut out, c);
    }
    t.wire.send(&out)?;
    Ok(())
}

pub fn os_error(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => {
            let text = e.to_string();
            let text = text.split(" (os error").next().unwrap_or(&text).to_string();
            format!("{text} ({code})")
        }
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_indexes_round_trip_in_rsyncs_encoding() {
        let seq = [0, 1, 2, 5, 300, 299, 70000, 3, NDX_DONE, -3, -101, -102, 7];
        let mut w = NdxCodec::default();
        let mut out = Vec::new();
        for &n in &seq {
            w.write(&mut out, n);
        }
        // The first three as the reference writes them: diffs of 1.
        assert_eq!(&out[..3], &[1, 1, 1]);
        let mut r = NdxCodec::default();
        let mut rd = Reader::new(&out);
        for &n in &seq {
            assert_eq!(r.read(&mut rd).unwrap(), n);
        }
        assert!(rd.is_empty());
    }
}
