//! The daemon as receiver (the client pushes into a writable module, the site's
//! `backups` share).
//!
//! As in the reference, two roles run at once on one connection: the *generator* walks
//! the received file list in order — creates directories and symlinks, deletes what the
//! client no longer has (`--delete`), and asks for each regular file that differs by
//! sending the block sums of the copy already here — while the *receiver* reads the
//! client's deltas, rebuilds each file beside its destination under a temporary name,
//! checks the whole-file checksum, syncs it and renames it over the old one. A file is
//! therefore always the old one or the new one, never torn. The generator owns the
//! socket's writing half; the receiver tells it what it needs sent (phase ends, files to
//! redo, messages for the client) over a channel, and leaves what must never wait on
//! the generator (lists, files taken or landed) in [`Reports`].
//!
//! With incremental recursion the client sends a list per directory while files already
//! move: the receiver reads each one (checked by [`RecvLists`]) and hands it to the
//! generator, which generates the list's directory and then its entries, and tells the
//! client a list is done once the receiver has taken every file asked from it.
//!
//! A dry run (`-n`) walks the same path with every change left out: the generator
//! itemizes what it would do and asks for files without sums, the receiver takes no
//! data. `--update` keeps a newer copy here; `--max-delete` stops deletions at its
//! limit with the reference's warning.
//!
//! `--delete` follows the reference's delete_in_dir and delete_item: the client's
//! per-directory merge files (`-F`, `dir-merge`) in the destination count, and an
//! extraneous directory is emptied entry by entry under the filters (perishable rules
//! ignored there), so a protected file keeps its directories ("cannot delete non-empty
//! directory").
//!
//! Hard links (`-H`): [`HardLinks`] decides which member of each set is its copy; the
//! receiver records which requested files landed (or never will), and the generator
//! links the set's other members to the copy once it is on disk.

use crate::io::{ConnError, Wire};
use crate::session::{Fatal, SumChoice, Transfer};
use crate::tree::{split_parent, stat_at, Stat, Tree};
use halite_rsync::checksum::{BlockChecksum, FileSum};
use halite_rsync::delta::{BlockSummer, SumHead};
use halite_rsync::flist::{self, FileEntry, ListItem, ListReader, S_IFDIR, S_IFLNK, S_IFMT};
use halite_rsync::hlink::{HardLinks, Turn};
use halite_rsync::inclists::{RecvListError, RecvLists, Sublist, NDX_FLIST_EOF, NDX_FLIST_OFFSET};
use halite_rsync::mux::Msg;
use halite_rsync::options::ServerOptions;
use halite_rsync::token::{Decode, Decoded};
use halite_rsync::wire::put_varint;
use std::collections::{HashMap, HashSet, VecDeque};
use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

const ITEM_REPORT_CHANGE: u16 = 1 << 1;
const ITEM_REPORT_SIZE: u16 = 1 << 2;
const ITEM_REPORT_TIME: u16 = 1 << 3;
const ITEM_REPORT_PERMS: u16 = 1 << 4;
const ITEM_IS_NEW: u16 = 1 << 13;
const ITEM_LOCAL_CHANGE: u16 = 1 << 14;
const ITEM_TRANSFER: u16 = 1 << 15;
const ITEM_XNAME_FOLLOWS: u16 = 1 << 12;
/// What the client shows without -ii (the reference's SIGNIFICANT_ITEM_FLAGS).
const SIGNIFICANT_ITEM_FLAGS: u16 = !(ITEM_XNAME_FOLLOWS | ITEM_LOCAL_CHANGE | (1 << 11));
const NDX_DONE: i32 = -1;
const NDX_DEL_STATS: i32 = -3;

/// The most entries a pushed list may have (and, with incremental recursion, the most
/// entries held at once over all lists).
const MAX_ENTRIES: usize = 4_000_000;

/// What the receiver tells the generator.
enum Event {
    /// The receiver finished a phase (or the final goodbye): the reference's MSG_DONE.
    Done,
    /// A file failed its checksum: ask for it again with full-length sums.
    Redo(i32),
    /// A line for the client.
    Message(Msg, Vec<u8>),
    /// The receiver stopped.
    Failed(Fatal),
    /// [`Reports`] has news. Sent without waiting: when the channel is full the
    /// generator has events to take, and looks at the reports after each.
    Wake,
}

/// What the receiver thread leaves for the generator without ever waiting on it (a
/// landing of hundreds of files, or a stream of lists, must not block the receiver
/// behind a generator that is writing). Each part is bounded: the lists by
/// [`RecvLists`]' bound on entries held, the outcomes by the files asked for (one
/// each).
#[derive(Default)]
struct Reports {
    /// The generator is waiting for news here (and gets an [`Event::Wake`]); otherwise
    /// it looks by itself, between entries. Waking it for every file cost a thread
    /// switch per file.
    generator_waiting: bool,
    /// Incremental recursion: the lists received since, in order.
    lists: VecDeque<Arc<Sublist>>,
    /// Lists the generator told the client are done: the client may echo no more
    /// NDX_DONEs than this (an early one would let it send lists without bound).
    released: usize,
    /// No more lists will come.
    lists_done: bool,
    /// Error bits the client reported with later lists: `--delete` stops.
    io_error: i32,
    /// Requested files the receiver is done with (verified, or failed for good).
    taken: Vec<i32>,
    /// `--remove-source-files`: files in place (durably), for MSG_SUCCESS — written
    /// before the generator looks at `taken`, so the client hears of a file before it
    /// may drop the file's list.
    successes: Vec<i32>,
    /// Files the client's sender could not open (MSG_NO_SEND), as it named them.
    not_sent: Vec<i32>,
    /// `-H`: requested files that landed (true) or never will (false).
    landed: Vec<(i32, bool)>,
}

impl Reports {
    fn lock(reports: &Mutex<Reports>) -> std::sync::MutexGuard<'_, Reports> {
        // A thread that panicked holding it left plain data behind: still usable.
        reports.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reports that can let a list end (the generator settles before it waits).
    fn has_news(&self) -> bool {
        !(self.taken.is_empty() && self.not_sent.is_empty() && self.successes.is_empty() && self.landed.is_empty())
    }

    /// After a report: wakes the generator if it waits (called with the lock held, so
    /// the generator cannot start waiting in between and miss it).
    fn wake(&mut self, tx: &SyncSender<Event>) {
        if std::mem::take(&mut self.generator_waiting) {
            // When the channel is full the generator has events to take, and looks
            // here again after each.
            let _ = tx.try_send(Event::Wake);
        }
    }
}

/// What both roles share, read-only.
struct Shared<'a> {
    /// The destination directory: every name in the list is resolved beneath it.
    tree: &'a Tree,
    /// The module's top, where the filters' per-directory merge files are read (their
    /// paths are module-relative).
    module_tree: &'a Tree,
    /// The destination directory in the module ("" for the top).
    dest: &'a [u8],
    /// The destination directory was made for this push (or a dry run would make it):
    /// the list's "." is new.
    dest_created: bool,
    /// Incremental recursion: the client sends a list per directory.
    incremental: bool,
    options: &'a ServerOptions,
    sums: SumChoice,
    protocol: i32,
    module: &'a crate::module::ModuleView,
    /// Files the generator asked for and the receiver has not taken yet: the client may
    /// send only these (anything else is a protocol error).
    requested: Mutex<HashSet<i32>>,
    reports: Arc<Mutex<Reports>>,
    log: Option<&'a crate::log::TransferLog>,
}

impl Shared<'_> {
    /// Logs an entry the generator itemized or the receiver finished (`transfer logging`).
    fn log_item(&self, e: &FileEntry, iflags: u16, received: Option<(u64, &[u8])>, hlink: Option<&[u8]>) {
        let Some(log) = self.log else { return };
        let path = self.in_module(&e.name);
        let logged = crate::log::Logged {
            path: &path,
            iflags: iflags.into(),
            data_bytes: received.map_or(0, |(bytes, _)| bytes),
            checksum_bytes: 0,
            file_sum: received.map(|(_, sum)| sum),
            uid: self.options.owner.then_some(e.uid),
            gid: self.options.group.then_some(e.gid),
            hlink,
        };
        match received {
            Some(_) => log.transferred(e, &logged),
            None => log.changed(e, &logged),
        }
    }

    /// A name of the list (or a path below the destination) as a module-relative path:
    /// what the log shows, as the reference's `%f` does.
    fn in_module<'r>(&self, rel: &'r [u8]) -> std::borrow::Cow<'r, [u8]> {
        match self.dest.is_empty() {
            true => rel.into(),
            // The list's "." too: "web1/.", as the reference writes it.
            false => [self.dest, b"/", rel].concat().into(),
        }
    }

    /// A file in messages to the client, named as the reference names it.
    fn full_fname(&self, rel: &[u8]) -> String {
        self.module.full_fname_in(self.dest, rel)
    }
}

pub fn run(t: &mut Transfer<'_>) -> Result<crate::session::Totals, Fatal> {
    tracing::info!("receiving file list");
    let incremental = t.compat.inc_recurse;
    let mut reader = ListReader::new(t.list_options(), MAX_ENTRIES);
    let (entries, mut sender_io_error) = receive_list(t, &mut reader)?;
    let mut lists = RecvLists::new(incremental, crate::sender::MAX_DIRS, MAX_ENTRIES);
    lists.first(entries).map_err(list_error)?;
    let entries_held = |lists: &RecvLists| lists.held().map(|l| l.entries.len()).sum::<usize>();
    let mut lists_done = !incremental;
    if incremental && entries_held(&lists) == 1 {
        // One entry: where it goes depends on whether it is a directory with contents,
        // so its list (or the end of lists) is read first, as the reference's
        // recv_additional_file_list() does.
        let next = receive_next_list(t, &mut reader, &mut lists)?;
        // Its error bits count as the first list's: --delete must hear of them.
        sender_io_error |= next.as_ref().map_or(0, |(_, io_error)| *io_error) | t.wire.peer_io_error;
        lists_done = next.is_none();
    }
    let total = entries_held(&lists);
    let single_is_dir = total == 1 && lists.held().find_map(|l| l.entries.first()).is_some_and(|e| e.is_dir());
    let place = place(t, total, single_is_dir)?;
    if let Some(name) = &place.rename {
        lists.rename_single(name);
    }
    let dest_tree = match (&place.dir[..], place.dry_missing) {
        (b"", _) | (_, true) => None,
        (dir, false) => Some(t.tree.subtree(dir).map_err(|e| {
            destination_error(t.module, place.entering, dir, " failed", &e, crate::session::RERR_FILESELECT)
        })?),
    };
    t.filters.set_root(&place.dir);
    let first_size: u64 = lists.held().map(|l| listed_size(&l.entries)).fold(0, u64::saturating_add);
    let mut held = lists.held().cloned();
    let Some(first) = held.next() else { return Err(Fatal::protocol("no file list".into())) };
    let reports = Arc::new(Mutex::new(Reports {
        lists: held.collect(),
        lists_done,
        io_error: sender_io_error,
        ..Reports::default()
    }));
    let mut writer = t.wire.writer()?;
    for text in &place.announce {
        writer.message(Msg::Info, text.as_bytes())?;
    }
    let shared = Shared {
        tree: dest_tree.as_ref().unwrap_or(&t.tree),
        module_tree: &t.tree,
        dest: &place.dir,
        dest_created: place.created,
        incremental,
        options: &t.options,
        sums: t.sums,
        protocol: t.protocol,
        module: t.module,
        requested: Mutex::new(HashSet::new()),
        reports: reports.clone(),
        // A dry run changes nothing, and the reference's log says nothing of it.
        log: t.log.as_ref().filter(|_| !t.options.dry_run),
    };
    // Bounded: a client that stops reading cannot make the receiver queue without end.
    let (tx, rx) = mpsc::sync_channel::<Event>(256);
    let mut decoder = crate::delta_io::decoder(t.compression.as_deref(), t.options.compress_level, t.protocol);
    let wake = tx.clone();
    let not_sent = reports.clone();
    t.wire.no_send = Some(Box::new(move |ndx| {
        let mut r = Reports::lock(&not_sent);
        // At most one per file asked for; beyond that the client is flooding.
        if r.not_sent.len() < MAX_ENTRIES {
            r.not_sent.push(ndx);
        }
        r.wake(&wake);
    }));
    let incoming = Incoming { wire: t.wire, ndx_in: &mut t.ndx_in, lists, reader };
    let (gen_result, later_size) = std::thread::scope(|scope| {
        let shared = &shared;
        let receiver = scope.spawn(move || {
            let tx2 = tx.clone();
            let mut incoming = incoming;
            match receive_files(shared, &mut incoming, decoder.as_mut(), &tx) {
                Ok(size) => size,
                Err(e) => {
                    let _ = tx2.send(Event::Failed(e));
                    0
                }
            }
        });
        let result = generate(shared, &mut t.filters, &mut writer, &rx, place.dry_missing, first);
        if result.is_err() {
            // The receiver may be blocked reading: closing our half ends its read.
            writer.abort();
        }
        let later_size = receiver.join().unwrap_or(0);
        (result, later_size)
    });
    gen_result?;
    Ok(crate::session::Totals {
        written: t.wire.bytes_written + writer.bytes_written,
        read: t.wire.bytes_read,
        total_size: first_size.saturating_add(later_size),
    })
}

/// What the receiver thread reads with: the socket's reading side and the list state
/// that runs through the transfer.
struct Incoming<'t> {
    wire: &'t mut Wire,
    ndx_in: &'t mut crate::sender::NdxCodec,
    lists: RecvLists,
    reader: ListReader,
}

impl Drop for Incoming<'_> {
    fn drop(&mut self) {
        // The channel must close when the receiver thread ends, however it ends: the
        // MSG_NO_SEND hook holds a sender too.
        self.wire.no_send = None;
    }
}

/// The total size of a list's files and links (the client's word: summed without
/// overflow), for the log's "total size".
fn listed_size(entries: &[FileEntry]) -> u64 {
    entries.iter().filter(|e| e.is_reg() || e.is_link()).fold(0u64, |sum, e| sum.saturating_add(e.size))
}

fn list_error(e: RecvListError) -> Fatal {
    Fatal::protocol(e.to_string())
}

/// Where this push goes ([`crate::destination`]), once made ready.
struct Place {
    /// The destination directory in the module ("" for the top).
    dir: Vec<u8>,
    /// Made for this push (or, in a dry run, would be).
    created: bool,
    /// A dry run's destination that does not exist: everything is new, nothing is read.
    dry_missing: bool,
    /// "created directory web1", for a client that lists names: a message each (the
    /// client escapes a newline inside one).
    announce: Vec<String>,
    /// How the reference words a failure to enter it ("change_dir#2").
    entering: &'static str,
    /// A single entry's new name (the name the client gave the destination).
    rename: Option<Vec<u8>>,
}

/// The reference's get_local_name(): checks the destination the client named against
/// the module's rules, makes its directory when the list needs one, and says what name
/// a single entry takes. `total`: the entries received so far.
fn place(t: &Transfer<'_>, total: usize, single_is_dir: bool) -> Result<Place, Fatal> {
    use crate::destination::{plan, Found, Placement};
    use crate::session::{RERR_FILEIO, RERR_FILESELECT};
    let arg = t.options.paths.first().map(Vec::as_slice).unwrap_or_default();
    let rel = crate::session::module_relative(t.module_name, arg);
    let trailing_slash = arg.ends_with(b"/");
    // The destination as the reference's messages show it: cleaned, and chrooted
    // into the module an absolute path there.
    let shown_path =
        |path: &[u8]| format!("{}{}", if t.module.names_from_root { "/" } else { "" }, String::from_utf8_lossy(path));
    let shown =
        |with_slash: bool| format!("{}{}", shown_path(&rel), if with_slash && trailing_slash { "/" } else { "" });
    let fail = |text: String, code: i32| Fatal::Client { text, code };
    if !rel.is_empty() && (t.filters.daemon_excluded(&rel, false) || t.filters.daemon_excluded(&rel, true)) {
        return Err(fail(format!("ERROR: daemon has excluded destination \"{}\"", shown(true)), RERR_FILESELECT));
    }
    let named = if trailing_slash { [&rel[..], b"/"].concat() } else { rel.clone() };
    let look = || {
        // A trailing slash asks for a directory: stat's ENOTDIR for anything else.
        let stat = t.tree.lstat(&rel).and_then(|st| match st.is_dir() || !trailing_slash {
            true => Ok(st),
            false => Err(std::io::Error::from_raw_os_error(libc::ENOTDIR)),
        });
        match stat {
            _ if rel.is_empty() => Ok(Found::Dir),
            Ok(st) if st.is_dir() => Ok(Found::Dir),
            Ok(_) => Ok(Found::Other),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Found::Missing),
            Err(e) => Err(e),
        }
    };
    let cannot_stat = |e: std::io::Error| {
        destination_error(t.module, "ERROR: cannot stat destination", &named, "", &e, RERR_FILESELECT)
    };
    let mut found = look();
    // --mkpath: the directories on the way are made first, the destination's own too
    // unless a single entry goes to a name without a slash.
    let mut announce = Vec::new();
    let listing = t.options.verbose > 0 || t.options.itemize;
    let mut dry_path_made = false;
    let names_a_path = trailing_slash || rel.contains(&b'/') || total > 1;
    // (A stat that failed otherwise is tried too: making the path says why.)
    if t.options.mkpath && !matches!(found, Ok(Found::Dir | Found::Other)) && names_a_path {
        let target: &[u8] = if total > 1 || trailing_slash { &rel } else { crate::tree::split_parent(&rel).0 };
        let made = make_path(&t.tree, target, t.options.dry_run)
            .map_err(|e| destination_error(t.module, "mkdir", &named, " failed", &e, RERR_FILEIO))?;
        if made > 0 && listing {
            let dirs = if made == 1 { "directory" } else { "directories" };
            announce.push(format!("created {made} {dirs} for {}\n", shown_path(target)));
        }
        if made > 0 && t.options.dry_run {
            dry_path_made = true;
        } else if made > 0 {
            found = look();
        }
    }
    let found = found.map_err(cannot_stat)?;
    let placement =
        plan(&rel, trailing_slash, found, total, single_is_dir).map_err(|e| fail(e.to_string(), e.exit_code()))?;
    match placement {
        Placement::Dir { dir, create: false } => {
            Ok(Place { dir, created: false, dry_missing: false, announce, entering: "change_dir#1", rename: None })
        }
        Placement::Dir { dir, create: true } => {
            if !t.options.dry_run {
                let (parent, base) = crate::tree::split_parent(&dir);
                let made = t.tree.open_dir(parent).and_then(|pdir| mkdir_at(&pdir, base, 0o777));
                if let Err(e) = made {
                    return Err(destination_error(t.module, "mkdir", &dir, " failed", &e, RERR_FILEIO));
                }
            }
            if listing {
                announce.push(format!("created directory {}\n", shown(false)));
            }
            Ok(Place {
                dir,
                created: true,
                dry_missing: t.options.dry_run,
                announce,
                entering: "change_dir#2",
                rename: None,
            })
        }
        Placement::Renamed { dir, name } => Ok(Place {
            dir,
            created: false,
            dry_missing: dry_path_made,
            announce,
            entering: "change_dir#3",
            rename: Some(name),
        }),
    }
}

/// A destination that cannot be used, in the reference's words: `rsync: [Receiver]
/// <what> "<path>" (in <module>)<after>: <error>`.
fn destination_error(
    module: &crate::module::ModuleView,
    what: &str,
    path: &[u8],
    after: &str,
    e: &std::io::Error,
    code: i32,
) -> Fatal {
    let text = format!("rsync: [Receiver] {what} {}{after}: {}", module.full_fname(path), crate::sender::os_error(e));
    Fatal::Client { text, code }
}

/// Makes each missing directory of `path` (module-relative), outermost first; how many
/// it made (in a dry run: would make).
fn make_path(tree: &Tree, path: &[u8], dry_run: bool) -> std::io::Result<usize> {
    let mut made = 0;
    let ends = path.iter().enumerate().filter(|&(_, &b)| b == b'/').map(|(i, _)| i).chain([path.len()]);
    for end in ends {
        let dir = &path[..end];
        if dir.is_empty() {
            continue;
        }
        if made == 0 {
            match tree.lstat(dir) {
                Ok(st) if st.is_dir() => continue,
                Ok(_) => return Err(std::io::Error::from_raw_os_error(libc::ENOTDIR)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        if !dry_run {
            let (parent, base) = split_parent(dir);
            mkdir_at(&tree.open_dir(parent)?, base, 0o777)?;
        }
        made += 1;
    }
    Ok(made)
}

/// Reads the client's first file list (unsorted: [`RecvLists`] sorts each list as
/// both sides index it) and the error bits its sender reported.
fn receive_list(t: &mut Transfer<'_>, reader: &mut ListReader) -> Result<(Vec<FileEntry>, i32), Fatal> {
    let io_error = read_entries(t.wire, reader)?;
    // With incremental recursion the names of ids come with the entries.
    if !t.options.numeric_ids && !t.compat.inc_recurse {
        let opts = t.list_options();
        let id0 = t.compat.id0_names;
        t.wire.parse(|r| flist::read_id_lists(r, &opts, id0))?;
    }
    Ok((reader.take_entries(), io_error | t.wire.peer_io_error))
}

/// Reads one list's entries up to its end mark; the error bits the end carried.
fn read_entries(wire: &mut Wire, reader: &mut ListReader) -> Result<i32, Fatal> {
    loop {
        if let ListItem::End(end) = wire.parse(|r| reader.read(r))? {
            return Ok(end.io_error);
        }
    }
}

/// Incremental recursion, before the transfer starts: reads what follows the first
/// list — a directory's list (returned) or the end of lists (None).
fn receive_next_list(
    t: &mut Transfer<'_>,
    reader: &mut ListReader,
    lists: &mut RecvLists,
) -> Result<Option<(Arc<Sublist>, i32)>, Fatal> {
    match read_next(t.wire, &mut t.ndx_in, t.protocol, true)? {
        Next::List(dir) => receive_sublist(t.wire, reader, lists, dir).map(Some),
        Next::ListsEnd => Ok(None),
        Next::File(ndx, _) => Err(Fatal::protocol(format!("Invalid file index: {ndx} [receiver]"))),
        Next::Done => Err(Fatal::protocol("Invalid file index: -1 [receiver]".into())),
    }
}

/// Reads directory `dir`'s list (incremental recursion): checked, sorted and held;
/// with the error bits its end carried.
fn receive_sublist(
    wire: &mut Wire,
    reader: &mut ListReader,
    lists: &mut RecvLists,
    dir: i64,
) -> Result<(Arc<Sublist>, i32), Fatal> {
    let d = lists.announce(dir).map_err(list_error)?;
    let io_error = read_entries(wire, reader)?;
    let list = lists.add(Some(d), reader.take_entries()).map_err(list_error)?;
    Ok((list, io_error))
}

/// What the client's sender sends the receiver next.
enum Next {
    /// A file's index and item flags.
    File(i32, u16),
    /// NDX_DONE: a list finished (incremental recursion) or a phase.
    Done,
    /// Incremental recursion: directory number `dir`'s list follows.
    List(i64),
    /// Incremental recursion: no more lists.
    ListsEnd,
}

/// Reads the next index (and a file's item flags), skipping deletion statistics.
fn read_next(
    wire: &mut Wire,
    ndx_in: &mut crate::sender::NdxCodec,
    proto: i32,
    incremental: bool,
) -> Result<Next, Fatal> {
    loop {
        let next = wire.parse(|r| {
            let mut codec = ndx_in.clone();
            let ndx = codec.read(r)?;
            let next = match ndx {
                NDX_DONE => Some(Next::Done),
                NDX_DEL_STATS => {
                    for _ in 0..5 {
                        r.varint()?;
                    }
                    None
                }
                NDX_FLIST_EOF if incremental => Some(Next::ListsEnd),
                n if incremental && n <= NDX_FLIST_OFFSET => {
                    Some(Next::List(i64::from(NDX_FLIST_OFFSET) - i64::from(n)))
                }
                n if n < 0 => {
                    return Err(halite_rsync::wire::WireError::Invalid(format!("Invalid file index: {n} [receiver]")))
                }
                n => {
                    let iflags = if proto >= 29 { r.u16()? } else { ITEM_TRANSFER };
                    if iflags & crate::sender::ITEM_BASIS_TYPE_FOLLOWS != 0 {
                        r.u8()?;
                    }
                    if iflags & crate::sender::ITEM_XNAME_FOLLOWS != 0 {
                        halite_rsync::negotiate::read_vstring(r, flist::MAXPATHLEN)?;
                    }
                    Some(Next::File(n, iflags))
                }
            };
            *ndx_in = codec;
            Ok(next)
        })?;
        if let Some(next) = next {
            return Ok(next);
        }
    }
}

fn send(w: &mut Wire, bytes: &[u8]) -> Result<(), Fatal> {
    w.send(bytes).map_err(Fatal::from)
}

/// The generator's side: a pass over each list as it comes (the first one, then with
/// incremental recursion a list per directory), then the phase ends the client waits
/// for, forwarding the receiver's requests on the way.
fn generate(
    s: &Shared<'_>,
    filters: &mut crate::filters::Filters,
    w: &mut Wire,
    rx: &Receiver<Event>,
    dest_missing: bool,
    first: Arc<Sublist>,
) -> Result<(), Fatal> {
    let mut g = Generator {
        s,
        filters,
        w,
        rx,
        ndx_out: crate::sender::NdxCodec::default(),
        deleted: DelStats { max: s.options.max_delete, ..DelStats::default() },
        delete: s.options.delete.is_some(),
        failed_dirs: HashSet::new(),
        dry_missing: HashSet::new(),
        dest_missing,
        lists: VecDeque::new(),
        children: HashMap::new(),
        dir_times: Vec::new(),
        dones: 0,
        links: if s.options.hard_links { HardLinks::new(&first.entries) } else { HardLinks::default() },
        unsynced_links: Vec::new(),
    };
    // The first list's error bits (in the reports) count before anything is deleted.
    g.settle()?;
    let mut next = Some(first);
    while let Some(list) = next {
        g.generate_list(list)?;
        next = g.next_list()?;
    }
    g.finish()
}

/// The generator's state through its pass over the lists.
struct Generator<'g, 's> {
    s: &'g Shared<'s>,
    filters: &'g mut crate::filters::Filters,
    w: &'g mut Wire,
    rx: &'g Receiver<Event>,
    ndx_out: crate::sender::NdxCodec,
    deleted: DelStats,
    /// `--delete`, unless the client's list is incomplete.
    delete: bool,
    /// Directories that could not be made: nothing below them is attempted.
    failed_dirs: HashSet<Vec<u8>>,
    /// In a dry run, the directories that would have been made: everything below them
    /// is new, as the reference's dry_missing_dir has it.
    dry_missing: HashSet<Vec<u8>>,
    /// A dry run's destination that does not exist: everything is new.
    dest_missing: bool,
    /// The lists not finished yet, oldest first; the last is the one being generated.
    lists: VecDeque<GenList>,
    /// For --delete: each directory of the list being generated, with the indexes of
    /// its entries there (built once per list, so a list of many directories costs one
    /// pass, not one per directory).
    children: HashMap<Vec<u8>, Vec<u32>>,
    /// The directories whose times are set once the last file has landed (writing a
    /// file changes its directory's time).
    dir_times: Vec<DirTime>,
    /// Phase ends the receiver reported and the generator has not waited for yet.
    dones: usize,
    /// `-H`: the list's hard-linked sets.
    links: HardLinks,
    /// `-H` with `--remove-source-files`: names linked since the last sync, which the
    /// client may remove once the links are on disk.
    unsynced_links: Vec<i32>,
}

/// A list the generator holds: until the receiver has taken every file asked from it,
/// the client must keep it (it may be asked for one again).
struct GenList {
    list: Arc<Sublist>,
    /// Files asked for and not taken yet.
    in_progress: usize,
}

/// What [`request_file`] did with a file.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Asked {
    /// Asked the client for it (in a dry run: itemized as if).
    Sent,
    /// The copy here is up to date.
    InPlace,
    /// Left alone (`--max-size`, `--update`, `--existing`...).
    Left,
}

impl Generator<'_, '_> {
    /// The client could not read part of its tree: deleting what it did not list could
    /// delete what it only failed to read. So deletions stop for the rest of the transfer
    /// once it reports a file it could not read — not one that vanished, which is gone
    /// from the source as it would be from here — as the reference's delete_in_dir.
    fn check_io_error(&mut self, io_error: i32) -> Result<(), Fatal> {
        if self.delete && io_error & flist::IOERR_GENERAL != 0 && !self.s.options.ignore_errors {
            self.w.message(Msg::Info, b"IO error encountered -- skipping file deletion\n")?;
            self.delete = false;
        }
        Ok(())
    }

    /// One list: with incremental recursion its directory first (made, itemized, its
    /// extraneous entries deleted), then its entries; the directories among them come
    /// with their own lists.
    fn generate_list(&mut self, list: Arc<Sublist>) -> Result<(), Fatal> {
        self.lists.push_back(GenList { list: list.clone(), in_progress: 0 });
        if self.delete {
            self.children = children_index(&list.entries);
        }
        if let Some(dir) = &list.dir {
            self.entry(list.start - 1, dir)?;
        }
        for (i, e) in list.entries.iter().enumerate() {
            self.drain_events()?;
            if self.s.incremental && e.is_dir() {
                continue;
            }
            self.entry(list.start + i as i32, e)?;
        }
        self.release_lists(false)
    }

    /// Incremental recursion: the next list the client sends, waiting for it; None
    /// once the client said no more come.
    fn next_list(&mut self) -> Result<Option<Arc<Sublist>>, Fatal> {
        if !self.s.incremental {
            return Ok(None);
        }
        loop {
            let mut r = Reports::lock(&self.s.reports);
            if let Some(list) = r.lists.pop_front() {
                drop(r);
                // What came with it (its error bits above all) counts before its
                // directory's extraneous entries are deleted.
                self.settle()?;
                return Ok(Some(list));
            }
            if r.lists_done {
                return Ok(None);
            }
            if r.has_news() {
                drop(r);
                self.release_lists(false)?;
                continue;
            }
            r.generator_waiting = true;
            drop(r);
            // The client may be waiting for what is buffered before it sends more.
            self.w.flush()?;
            self.wait_event()?;
            self.release_lists(false)?;
        }
    }

    /// Incremental recursion: tells the client each list it may drop (NDX_DONE, oldest
    /// first): one the generator is past and whose files the receiver has all taken;
    /// with `all`, the last one too.
    fn release_lists(&mut self, all: bool) -> Result<(), Fatal> {
        if !self.s.incremental {
            return Ok(());
        }
        self.settle()?;
        while let Some(front) = self.lists.front() {
            let current = self.lists.len() == 1 && !all;
            if current || front.in_progress > 0 {
                break;
            }
            self.lists.pop_front();
            Reports::lock(&self.s.reports).released += 1;
            let mut done = Vec::new();
            self.ndx_out.write(&mut done, NDX_DONE);
            send(self.w, &done)?;
        }
        Ok(())
    }

    /// The list holding entry `ndx` (or, the index before its first entry, its
    /// directory).
    fn list_holding(&mut self, ndx: i32) -> Option<&mut GenList> {
        let after = self.lists.partition_point(|l| l.list.start - 1 <= ndx);
        let l = self.lists.get_mut(after.checked_sub(1)?)?;
        (ndx < l.list.start + l.list.entries.len() as i32).then_some(l)
    }

    /// The entry index `ndx` names in a list held, with the list.
    fn lookup(&mut self, ndx: i32) -> Option<(Arc<Sublist>, usize)> {
        let l = self.list_holding(ndx)?;
        let i = usize::try_from(ndx - l.list.start).ok()?;
        Some((l.list.clone(), i))
    }

    /// Generates entry `ndx`: makes a directory or symlink, or asks for a file. A
    /// hard-linked file left alone may hand its set on to another member, processed
    /// next (in a loop: a set of a million members cannot deepen the stack).
    fn entry(&mut self, ndx: i32, e: &FileEntry) -> Result<(), Fatal> {
        let mut next = self.generate_one(ndx, e)?;
        while let Some(ndx) = next {
            let Some((list, i)) = self.lookup(ndx) else { break };
            next = self.generate_one(ndx, &list.entries[i])?;
        }
        Ok(())
    }

    /// Generates entry `ndx`; the entry to generate next when it handed its set on.
    fn generate_one(&mut self, ndx: i32, e: &FileEntry) -> Result<Option<i32>, Fatal> {
        let s = self.s;
        let rel: &[u8] = if e.name == b"." { b"" } else { &e.name };
        if under_any(&self.failed_dirs, rel) {
            return Ok(self.skipped(ndx));
        }
        // The module's rules judge module-relative paths, wherever the push goes.
        if !rel.is_empty() && self.filters.daemon_excluded(&s.in_module(rel), e.is_dir()) {
            // The reference's generator: a per-file error (exit 23), and nothing below
            // a refused directory is attempted.
            let text = format!(
                "ERROR: daemon refused to receive {} \"{}\"\n",
                if e.is_dir() { "directory" } else { "file" },
                String::from_utf8_lossy(rel)
            );
            self.w.message(Msg::ErrorXfer, text.as_bytes())?;
            if e.is_dir() {
                self.w.message(Msg::ErrorXfer, SKIPPING_CONTENTS)?;
                self.failed_dirs.insert(rel.to_vec());
            }
            return Ok(self.skipped(ndx));
        }
        let assume_missing = self.assume_missing(rel);
        if e.is_dir() {
            self.directory(ndx, rel, e, assume_missing).map(|()| None)
        } else if e.is_link() {
            self.symlink(ndx, rel, e, assume_missing).map(|()| None)
        } else if e.is_reg() {
            self.regular(ndx, rel, e, assume_missing)
        } else {
            // Devices and specials are never created in a module.
            Ok(None)
        }
    }

    /// Whether nothing can be here for `rel`: below a directory a dry run would make.
    fn assume_missing(&self, rel: &[u8]) -> bool {
        self.dest_missing || under_any(&self.dry_missing, rel)
    }

    /// Entry `ndx` is left alone: the member of its hard-linked set that takes its place.
    fn skipped(&mut self, ndx: i32) -> Option<i32> {
        let ndx = u32::try_from(ndx).ok()?;
        self.links.skipped(ndx).map(|next| next as i32)
    }

    fn directory(&mut self, ndx: i32, rel: &[u8], e: &FileEntry, assume_missing: bool) -> Result<(), Fatal> {
        let s = self.s;
        let before = if assume_missing { None } else { lstat(s.tree, rel) };
        let made = match make_dir(s, rel, e, before.as_ref()) {
            Ok(made) => made,
            Err(err) => {
                let text = format!(
                    "rsync: [generator] recv_generator: mkdir {} failed: {}\n",
                    s.full_fname(rel),
                    crate::sender::os_error(&err)
                );
                self.w.message(Msg::ErrorXfer, text.as_bytes())?;
                self.w.message(Msg::ErrorXfer, SKIPPING_CONTENTS)?;
                self.failed_dirs.insert(rel.to_vec());
                return Ok(());
            }
        };
        let dry_run = s.options.dry_run;
        if made && dry_run {
            self.dry_missing.insert(rel.to_vec());
        }
        if made && !rel.is_empty() || rel.is_empty() && s.dest_created {
            self.itemize(ndx, e, ITEM_LOCAL_CHANGE | ITEM_IS_NEW, None)?;
        } else if let Some(st) = before.filter(|st| st.is_dir()) {
            // An existing directory whose time or permissions change is reported (the
            // client's -v shows it).
            let iflags = changes(s, &st, e, 0);
            if iflags != 0 || s.options.itemize_unchanged {
                self.itemize(ndx, e, iflags, None)?;
            }
        }
        if !dry_run && s.options.times && !s.options.omit_dir_times {
            self.dir_times.push(DirTime { name: rel.into(), mtime: e.mtime, mtime_nsec: e.mtime_nsec });
        }
        // (A directory a dry run would make has nothing in it to delete.)
        if self.delete && s.options.recursive && !assume_missing && !(made && dry_run) {
            let list = self.lists.back().map(|l| l.list.clone());
            let listed: Option<HashSet<&[u8]>> = match (&list, self.children.get(rel)) {
                (Some(list), Some(ix)) => {
                    Some(ix.iter().map(|&i| split_parent(&list.entries[i as usize].name).1).collect())
                }
                _ => None,
            };
            delete_extraneous(s, self.filters, self.w, rel, listed.as_ref(), &mut self.deleted)?;
        }
        Ok(())
    }

    fn symlink(&mut self, ndx: i32, rel: &[u8], e: &FileEntry, assume_missing: bool) -> Result<(), Fatal> {
        let s = self.s;
        if !s.options.links {
            return Ok(());
        }
        let target = e.link_target.as_deref().unwrap_or_default();
        if s.options.safe_links && halite_rsync::links::unsafe_symlink(target, rel) {
            if s.options.verbose > 0 {
                let text = format!(
                    "ignoring unsafe symlink \"{}\" -> \"{}\"\n",
                    String::from_utf8_lossy(rel),
                    String::from_utf8_lossy(target)
                );
                self.w.message(Msg::Info, text.as_bytes())?;
            }
            return Ok(());
        }
        let made = if assume_missing { Ok(Link::Created) } else { make_link(s, rel, e) };
        // As the reference's itemize(): a replaced link is compared with the one it
        // replaced ("cLc........"), a new one is new.
        let iflags = match made {
            Ok(Link::Created) => ITEM_LOCAL_CHANGE | ITEM_REPORT_CHANGE | ITEM_IS_NEW,
            Ok(Link::Replaced(st)) => changes(s, &st, e, ITEM_LOCAL_CHANGE | ITEM_REPORT_CHANGE),
            Ok(Link::Same(st)) => changes(s, &st, e, 0),
            Err(err) => {
                let text = format!(
                    "rsync: [generator] symlink {} failed: {}\n",
                    s.full_fname(rel),
                    crate::sender::os_error(&err)
                );
                return self.w.message(Msg::ErrorXfer, text.as_bytes()).map_err(Fatal::from);
            }
        };
        if !s.options.dry_run {
            source_done(s, self.w, ndx)?;
        }
        if iflags != 0 || s.options.itemize_unchanged {
            self.itemize(ndx, e, iflags, None)?;
        }
        Ok(())
    }

    /// A regular file: asked for, left alone, or (`-H`) linked to its set's copy; the
    /// member to generate next when it handed its set on.
    fn regular(&mut self, ndx: i32, rel: &[u8], e: &FileEntry, assume_missing: bool) -> Result<Option<i32>, Fatal> {
        let look = Basis::Look { assume_missing };
        let member = u32::try_from(ndx).unwrap_or(u32::MAX);
        let s = self.s;
        if s.options.existing || s.options.ignore_existing {
            // Before anything else, a hard link included (the reference's order): what
            // is here, up to date or not, is left alone with --ignore-existing, and
            // nothing new is made with --existing.
            let here = !assume_missing && lstat(s.tree, rel).is_some();
            if s.options.existing && !here || s.options.ignore_existing && here {
                return Ok(self.skipped(ndx));
            }
        }
        let last = match self.links.turn(member) {
            Turn::Alone => {
                let asked = request_file(self.s, self.w, &mut self.ndx_out, ndx, e, rel, look)?;
                self.asked(ndx, asked);
                return Ok(None);
            }
            Turn::Waiting => return Ok(None),
            Turn::LinkTo(leader) => return self.link_member(member, leader).map(|()| None),
            Turn::Candidate { last } => last,
        };
        let here = !assume_missing && lstat(self.s.tree, rel).is_some_and(|st| st.is_reg());
        if !here && !last {
            self.links.defer(member);
            return Ok(None);
        }
        let asked = request_file(self.s, self.w, &mut self.ndx_out, ndx, e, rel, look)?;
        self.asked(ndx, asked);
        match asked {
            // A dry run receives nothing: the set is linked as if it had landed.
            Asked::Sent if self.s.options.dry_run => self.in_place(member).map(|()| None),
            Asked::Sent => {
                self.links.sent(member);
                Ok(None)
            }
            Asked::InPlace => self.in_place(member).map(|()| None),
            Asked::Left => Ok(self.skipped(ndx)),
        }
    }

    /// Counts a file asked for against its list, which lives until the file is taken.
    fn asked(&mut self, ndx: i32, asked: Asked) {
        if asked == Asked::Sent {
            if let Some(l) = self.list_holding(ndx) {
                l.in_progress += 1;
            }
        }
    }

    /// Member `ndx` of a hard-linked set is in place: the members waiting for it are
    /// linked to it.
    fn in_place(&mut self, ndx: u32) -> Result<(), Fatal> {
        for member in self.links.in_place(ndx) {
            self.link_member(member, ndx)?;
        }
        Ok(())
    }

    /// Makes `member` a hard link to `leader` (in place), as the reference's
    /// maybe_hard_link(): nothing when it already is one, and the client hears "hf"
    /// with the leader's name.
    fn link_member(&mut self, member: u32, leader: u32) -> Result<(), Fatal> {
        let s = self.s;
        let (Some((list, m)), Some((leaders, l))) = (self.lookup(member as i32), self.lookup(leader as i32)) else {
            return Ok(());
        };
        let e = &list.entries[m];
        let leader_rel = &leaders.entries[l].name;
        let before = if self.assume_missing(&e.name) { None } else { lstat(s.tree, &e.name) };
        let dry_run = s.options.dry_run;
        // (In a dry run a leader not made yet is not there: nothing is linked to it.)
        let leader_st = if self.assume_missing(leader_rel) { None } else { lstat(s.tree, leader_rel) };
        let linked = |st: &Stat| leader_st.as_ref().is_some_and(|l| l.dev == st.dev && l.ino == st.ino);
        let (iflags, xname): (u16, &[u8]) = match &before {
            Some(st) if linked(st) => (changes(s, st, e, ITEM_LOCAL_CHANGE | ITEM_XNAME_FOLLOWS), b""),
            _ => {
                if !dry_run {
                    if let Err(err) = link_to(s, leader_rel, &e.name) {
                        let text = format!(
                            "rsync: [generator] link {} => {} failed: {}\n",
                            s.full_fname(&e.name),
                            String::from_utf8_lossy(leader_rel),
                            crate::sender::os_error(&err)
                        );
                        return self.w.message(Msg::ErrorXfer, text.as_bytes()).map_err(Fatal::from);
                    }
                }
                // Compared with whatever was there, as the reference's itemize() does.
                let iflags = match &before {
                    Some(st) => changes(s, st, e, ITEM_LOCAL_CHANGE | ITEM_XNAME_FOLLOWS),
                    None => ITEM_LOCAL_CHANGE | ITEM_XNAME_FOLLOWS | ITEM_IS_NEW,
                };
                (iflags, leader_rel)
            }
        };
        if iflags & SIGNIFICANT_ITEM_FLAGS != 0 || !xname.is_empty() || s.options.itemize_unchanged {
            self.itemize(member as i32, e, iflags, Some(xname))?;
        }
        if !dry_run && s.options.remove_source_files {
            self.unsynced_links.push(member as i32);
        }
        Ok(())
    }

    /// `--remove-source-files`: once the links made lately are on disk (one sync for
    /// a batch of them, as for received files; with `all`, whatever is pending, before
    /// the generator waits), the client may remove its copies.
    fn confirm_links(&mut self, all: bool) -> Result<(), Fatal> {
        if self.unsynced_links.is_empty() || !all && self.unsynced_links.len() < LANDING_FILES {
            return Ok(());
        }
        let synced = self.s.tree.open_dir(b"").and_then(|top| syncfs(&top));
        for ndx in std::mem::take(&mut self.unsynced_links) {
            match &synced {
                Ok(()) => source_done(self.s, self.w, ndx)?,
                Err(err) => {
                    let name = self.lookup(ndx).map(|(l, i)| l.entries[i].name.clone()).unwrap_or_default();
                    let text = format!(
                        "rsync: [generator] sync of \"{}\" failed: {}\n",
                        String::from_utf8_lossy(&name),
                        crate::sender::os_error(err)
                    );
                    self.w.message(Msg::ErrorXfer, text.as_bytes())?;
                }
            }
        }
        Ok(())
    }

    /// Takes in what the receiver reported: files taken (their lists may end), files
    /// the client could not send, copies of hard-linked sets landed, error bits.
    fn settle(&mut self) -> Result<(), Fatal> {
        let (successes, taken, not_sent, landed, io_error) = {
            let mut r = Reports::lock(&self.s.reports);
            let successes = std::mem::take(&mut r.successes);
            let taken = std::mem::take(&mut r.taken);
            let not_sent = std::mem::take(&mut r.not_sent);
            (successes, taken, not_sent, std::mem::take(&mut r.landed), r.io_error)
        };
        for ndx in successes {
            source_done(self.s, self.w, ndx)?;
        }
        self.check_io_error(io_error)?;
        // A file the client could not open counts as taken, if it was asked for and
        // the receiver has not taken it already.
        let requested = &self.s.requested;
        let not_sent: Vec<i32> =
            not_sent.into_iter().filter(|ndx| requested.lock().map(|mut r| r.remove(ndx)).unwrap_or(false)).collect();
        for &ndx in taken.iter().chain(&not_sent) {
            if let Some(l) = self.list_holding(ndx) {
                l.in_progress = l.in_progress.saturating_sub(1);
            }
        }
        // A hard-linked set's copy the client could not send may hand the set on.
        for ndx in not_sent {
            let next = u32::try_from(ndx).ok().and_then(|n| self.links.not_sent(n));
            if let Some((list, i)) = next.and_then(|n| self.lookup(n as i32)) {
                self.entry(list.start + i as i32, &list.entries[i])?;
            }
        }
        for (ndx, landed) in landed {
            let Ok(ndx) = u32::try_from(ndx) else { continue };
            match landed {
                true => self.in_place(ndx)?,
                false => self.links.failed(ndx),
            }
        }
        self.confirm_links(false)
    }

    /// Takes one event, waiting for it.
    fn wait_event(&mut self) -> Result<(), Fatal> {
        self.confirm_links(true)?;
        self.w.flush()?;
        match self.rx.recv() {
            Ok(ev) => self.handle(ev),
            Err(_) => Err(ConnError::Closed.into()),
        }
    }

    /// Takes the events waiting, without waiting for more.
    fn drain_events(&mut self) -> Result<(), Fatal> {
        self.settle()?;
        while let Ok(ev) = self.rx.try_recv() {
            self.handle(ev)?;
        }
        Ok(())
    }

    fn handle(&mut self, ev: Event) -> Result<(), Fatal> {
        match ev {
            Event::Done => self.dones += 1,
            Event::Redo(ndx) => {
                if let Some((list, i)) = self.lookup(ndx) {
                    let e = &list.entries[i];
                    request_file(self.s, self.w, &mut self.ndx_out, ndx, e, &e.name, Basis::Redo)?;
                }
            }
            Event::Message(msg, text) => self.w.message(msg, &text)?,
            Event::Failed(e) => return Err(e),
            Event::Wake => {}
        }
        self.settle()
    }

    /// Waits for the receiver's next phase end, forwarding its requests meanwhile.
    fn wait_done(&mut self) -> Result<(), Fatal> {
        self.w.flush()?;
        while self.dones == 0 {
            self.wait_event()?;
        }
        self.dones -= 1;
        Ok(())
    }

    /// Tells the client what changed for entry `ndx` (and logs it); `xname`: the name a
    /// hard link was made to ("" when it already was one).
    fn itemize(&mut self, ndx: i32, e: &FileEntry, iflags: u16, xname: Option<&[u8]>) -> Result<(), Fatal> {
        self.s.log_item(e, iflags, None, xname);
        let mut out = Vec::new();
        self.ndx_out.write(&mut out, ndx);
        out.extend_from_slice(&iflags.to_le_bytes());
        if let Some(name) = xname {
            halite_rsync::negotiate::put_vstring(&mut out, name);
        }
        send(self.w, &out)
    }

    /// The end of the lists (with incremental recursion each list's NDX_DONE as its
    /// last file is taken, the last one ending phase 0), the later phase ends, the
    /// deletion statistics and the goodbye.
    fn finish(mut self) -> Result<(), Fatal> {
        let s = self.s;
        if s.incremental {
            loop {
                self.release_lists(true)?;
                if self.lists.is_empty() {
                    break;
                }
                let mut r = Reports::lock(&s.reports);
                let news = r.has_news();
                r.generator_waiting = !news;
                drop(r);
                if !news {
                    self.w.flush()?;
                    self.wait_event()?;
                }
            }
        } else {
            let mut done = Vec::new();
            self.ndx_out.write(&mut done, NDX_DONE);
            send(self.w, &done)?;
        }
        if self.deleted.skipped > 0 {
            let text = format!("Deletions stopped due to --max-delete limit ({} skipped)\n", self.deleted.skipped);
            self.w.message(Msg::Warning, text.as_bytes())?;
        }
        // Wait for the receiver's phase 0, redoing files it asks for.
        self.wait_done()?;
        let mut out = Vec::new();
        self.ndx_out.write(&mut out, NDX_DONE);
        self.ndx_out.write(&mut out, NDX_DONE);
        if s.protocol >= 31 {
            if self.delete {
                self.ndx_out.write(&mut out, NDX_DEL_STATS);
                let d = &self.deleted;
                for c in [d.files, d.dirs, d.links, 0, 0] {
                    put_varint(&mut out, c);
                }
            }
            self.ndx_out.write(&mut out, NDX_DONE);
        }
        send(self.w, &out)?;
        // Phase 1 done, then the end of the file loop, then (protocol ≥ 31) the goodbye.
        self.wait_done()?;
        self.wait_done()?;
        if s.protocol >= 31 {
            self.wait_done()?;
        }
        self.settle()?;
        self.confirm_links(true)?;
        // Every file has landed: directory times set now stay.
        for d in &self.dir_times {
            if let Ok(dir) = s.tree.open_dir(&d.name) {
                let _ = set_mtime(&dir, d.mtime, d.mtime_nsec);
            }
        }
        let mut out = Vec::new();
        self.ndx_out.write(&mut out, NDX_DONE);
        send(self.w, &out)?;
        self.w.flush()?;
        Ok(())
    }
}

#[derive(Default)]
struct DelStats {
    files: i32,
    dirs: i32,
    links: i32,
    /// `--max-delete`: deletions stop once this many are done.
    max: Option<i64>,
    /// Deletions the limit stopped.
    skipped: u32,
}

impl DelStats {
    fn at_limit(&self) -> bool {
        self.max.is_some_and(|max| i64::from(self.files) + i64::from(self.dirs) + i64::from(self.links) >= max)
    }
}

/// The reference's itemize(): `iflags` with what differs between the copy here (`st`)
/// and the list's entry. Owners are not compared: a push never changes them (the
/// module's uid and gid own what it writes).
fn changes(s: &Shared<'_>, st: &Stat, e: &FileEntry, mut iflags: u16) -> u16 {
    if e.is_reg() && e.size != st.size {
        iflags |= ITEM_REPORT_SIZE;
    }
    let keeps_time = s.options.times
        && if e.is_dir() {
            !s.options.omit_dir_times
        } else if e.is_link() {
            !s.options.omit_link_times
        } else {
            true
        };
    let time_reported = if keeps_time {
        !same_time(s.options.modify_window, st, e)
    } else {
        // Without -t a rewritten file gets the time of the rewrite: 'T'.
        iflags & (ITEM_TRANSFER | ITEM_LOCAL_CHANGE) != 0
    };
    if time_reported {
        iflags |= ITEM_REPORT_TIME;
    }
    if !e.is_link() && s.options.perms && st.mode & 0o7777 != e.mode & 0o7777 {
        iflags |= ITEM_REPORT_PERMS;
    }
    iflags
}

fn lstat(tree: &Tree, rel: &[u8]) -> Option<Stat> {
    tree.lstat(rel).ok()
}

/// Whether the copy here already matches the list's entry (the reference's quick check:
/// size and modification time, or the checksum with `--checksum`).
fn up_to_date(s: &Shared<'_>, rel: &[u8], e: &FileEntry, st: &Stat) -> bool {
    if !st.is_reg() || st.size != e.size {
        return false;
    }
    if s.options.ignore_times {
        return false;
    }
    if s.options.checksum {
        let Some(want) = &e.checksum else { return false };
        let Ok(mut f) = s.tree.open_file(rel) else { return false };
        let mut sum = FileSum::unseeded(s.sums.strong);
        // Sized to the file: a tree of small files is not a 256 KiB allocation each.
        let mut buf = vec![0u8; read_buffer_len(st.size)];
        loop {
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => sum.update(&buf[..n]),
                Err(_) => return false,
            }
        }
        return sum.finish().as_bytes() == want.as_slice();
    }
    if s.options.size_only {
        return true;
    }
    same_time(s.options.modify_window, st, e)
}

/// A read buffer for a file of `size` bytes: its size (one more, to see its end in
/// one read), up to 256 KiB.
fn read_buffer_len(size: u64) -> usize {
    size.saturating_add(1).min(256 * 1024) as usize
}

/// The reference's same_time(): seconds only by default, nanoseconds too with
/// `--modify-window=-1`, a window of seconds otherwise.
fn same_time(window: i32, st: &Stat, e: &FileEntry) -> bool {
    match window {
        0 => st.mtime == e.mtime,
        w if w < 0 => st.mtime == e.mtime && st.mtime_nsec == e.mtime_nsec,
        // abs_diff: a client's time may be anything, i64::MIN included.
        w => st.mtime.abs_diff(e.mtime) <= u64::from(w.unsigned_abs()),
    }
}

/// With `--remove-source-files`, tells the client entry `ndx` is in place here, so it
/// removes its copy (the reference's send_msg_success).
fn source_done(s: &Shared<'_>, w: &mut Wire, ndx: i32) -> Result<(), Fatal> {
    if s.options.remove_source_files {
        w.message(Msg::Success, &ndx.to_le_bytes())?;
    }
    Ok(())
}

/// How [`request_file`] treats the copy already here.
#[derive(Clone, Copy)]
enum Basis {
    /// The first pass: compared with the list's entry first. `assume_missing`: below a
    /// directory a dry run would have made, so there is none.
    Look { assume_missing: bool },
    /// A file that failed its checksum: asked for again whatever the copy here is.
    Redo,
}

/// Asks the client for file `ndx`, with the block sums of the copy here when there is
/// one (the delta's basis).
fn request_file(
    s: &Shared<'_>,
    w: &mut Wire,
    ndx_out: &mut crate::sender::NdxCodec,
    ndx: i32,
    e: &FileEntry,
    rel: &[u8],
    basis: Basis,
) -> Result<Asked, Fatal> {
    let existing = match basis {
        Basis::Look { assume_missing: true } => None,
        _ => lstat(s.tree, rel),
    };
    let redo = matches!(basis, Basis::Redo);
    if !redo {
        // --max-size/--min-size: left alone, said at -vv (the reference's SKIP level).
        let outside = match (s.options.max_size, s.options.min_size) {
            (Some(max), _) if e.size > max => Some("over max-size"),
            (_, Some(min)) if e.size < min => Some("under min-size"),
            _ => None,
        };
        if let Some(why) = outside {
            if s.options.verbose >= 2 {
                w.message(Msg::Info, format!("{} is {why}\n", String::from_utf8_lossy(rel)).as_bytes())?;
            }
            return Ok(Asked::Left);
        }
        if let Some(st) = existing.as_ref().filter(|st| s.options.update && st.is_reg()) {
            // --update: a newer copy here is kept (the reference's test, window included).
            if i128::from(e.mtime) - i128::from(st.mtime) < i128::from(s.options.modify_window) {
                if s.options.verbose >= 2 {
                    let text = format!("{} is newer\n", String::from_utf8_lossy(rel));
                    w.message(Msg::Info, text.as_bytes())?;
                }
                return Ok(Asked::Left);
            }
        }
        if let Some(st) = &existing {
            if up_to_date(s, rel, e, st) {
                // Same data: only attributes may need setting, and the client hears
                // which (`.f...p.....`), as from the reference.
                let iflags = changes(s, st, e, 0);
                if iflags != 0 || s.options.itemize_unchanged {
                    s.log_item(e, iflags, None, None);
                    let mut out = Vec::new();
                    ndx_out.write(&mut out, ndx);
                    out.extend_from_slice(&iflags.to_le_bytes());
                    send(w, &out)?;
                }
                if !s.options.dry_run {
                    let _ = set_attrs_path(s, rel, e);
                    // Already here: the client may remove its copy.
                    source_done(s, w, ndx)?;
                }
                return Ok(Asked::InPlace);
            }
        }
    }
    let mut out = Vec::new();
    ndx_out.write(&mut out, ndx);
    // With --checksum the sums differed: 'c'. Something else in the way is replaced, so
    // the file is new, as with the reference.
    let transfer = if s.options.checksum { ITEM_TRANSFER | ITEM_REPORT_CHANGE } else { ITEM_TRANSFER };
    let iflags = match existing.as_ref().filter(|st| st.is_reg()) {
        Some(st) => changes(s, st, e, transfer),
        None => transfer | ITEM_IS_NEW,
    };
    out.extend_from_slice(&iflags.to_le_bytes());
    if let Ok(mut asked) = s.requested.lock() {
        asked.insert(ndx);
    }
    if s.options.dry_run {
        // The index and what would change, without sums: the client's sender answers
        // with the same, and no data moves.
        return send(w, &out).map(|()| Asked::Sent);
    }
    let basis = existing.filter(|st| st.is_reg() && !s.options.whole_file).and_then(|_| s.tree.open_file(rel).ok());
    let Some(mut basis) = basis else {
        SumHead::NONE.write(&mut out);
        return send(w, &out).map(|()| Asked::Sent);
    };
    let len = basis.metadata().map(|m| m.len()).unwrap_or(0);
    let head = SumHead::for_file(len, s.protocol, s.sums.strong.digest_len(), s.options.block_size, redo)
        .unwrap_or(SumHead::NONE);
    head.write(&mut out);
    let mut summer = BlockSummer::new(head, BlockChecksum::new(s.sums.strong, s.sums.seed, s.sums.proper_seed_order));
    let mut buf = vec![0u8; read_buffer_len(len)];
    let mut fed = 0u64;
    while fed < head.basis_len() {
        let n = match basis.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        summer.update(&buf[..n], &mut out);
        fed += n as u64;
        if out.len() > 64 * 1024 {
            send(w, &out)?;
            out.clear();
        }
    }
    // A basis that changed length meanwhile still gets complete sums; the transfer
    // then fails its checksum and is redone.
    let _ = summer.finish(&mut out);
    send(w, &out).map(|()| Asked::Sent)
}

fn default_mode(s: &Shared<'_>, e: &FileEntry, existing: Option<&Stat>) -> u32 {
    if s.options.perms {
        e.mode & 0o7777
    } else if let Some(st) = existing {
        st.mode & 0o7777
    } else {
        e.mode & 0o777 & !0o022
    }
}

/// Creates a directory if missing (`existing` is what is there now); true when it was
/// made, or in a dry run would have been.
fn make_dir(s: &Shared<'_>, rel: &[u8], e: &FileEntry, existing: Option<&Stat>) -> std::io::Result<bool> {
    if rel.is_empty() {
        // The destination itself: the module's top keeps its permissions; a directory
        // a push goes into takes the list's, as any directory of the list does.
        let perms_differ = existing.is_some_and(|st| st.mode & 0o7777 != e.mode & 0o7777);
        if !s.options.dry_run && !s.dest.is_empty() && s.options.perms && perms_differ {
            fchmod(&s.tree.open_dir(b"")?, e.mode & 0o7777)?;
        }
        return Ok(false);
    }
    if s.options.dry_run {
        return Ok(!existing.is_some_and(|st| st.is_dir()));
    }
    match existing {
        Some(st) if st.is_dir() => {
            if s.options.perms && st.mode & 0o7777 != e.mode & 0o7777 {
                let dir = s.tree.open_dir(rel)?;
                fchmod(&dir, e.mode & 0o7777)?;
            }
            return Ok(false);
        }
        Some(st) => remove_at(s.tree, rel, st.is_dir())?,
        None => {}
    }
    let (parent, base) = split_parent(rel);
    mkdir_at(&s.tree.open_dir(parent)?, base, default_mode(s, e, None) | 0o700)?;
    Ok(true)
}

fn mkdir_at(dir: &OwnedFd, name: &[u8], mode: u32) -> std::io::Result<()> {
    let name = cstr(name)?;
    // SAFETY: valid dirfd and C string.
    if unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// What [`make_link`] found and did.
enum Link {
    /// Already there with the list's target (its stat: its time may still change).
    Same(Stat),
    /// A link with another target was replaced (its stat before).
    Replaced(Stat),
    /// Nothing was there (or something else, now gone).
    Created,
}

/// Creates (or replaces) a symlink, with the list's time under `-t`; in a dry run only
/// says what it would do. The target is stored as sent (munged under `munge
/// symlinks`): the daemon never follows links itself, since every open is made with
/// RESOLVE_NO_SYMLINKS.
fn make_link(s: &Shared<'_>, rel: &[u8], e: &FileEntry) -> std::io::Result<Link> {
    let mut target = e.link_target.clone().unwrap_or_default();
    if s.module.munge_symlinks {
        let mut m = b"/rsyncd-munged/".to_vec();
        m.extend_from_slice(&target);
        target = m;
    }
    let (parent, base) = split_parent(rel);
    let pdir = s.tree.open_dir(parent)?;
    let dry_run = s.options.dry_run;
    let before = stat_at(&pdir, base).ok();
    let was_dir = before.as_ref().is_some_and(|st| st.is_dir());
    let outcome = match before {
        Some(st) if st.is_link() && crate::tree::readlink_at(&pdir, base).ok().as_deref() == Some(&target[..]) => {
            if !dry_run && !same_time(0, &st, e) {
                set_link_time(s, &pdir, base, e)?;
            }
            return Ok(Link::Same(st));
        }
        Some(st) if st.is_link() => Link::Replaced(st),
        _ => Link::Created,
    };
    if dry_run {
        return Ok(outcome);
    }
    if was_dir {
        remove_at(s.tree, rel, true)?;
    }
    let tmp = temp_name(base);
    let t = cstr(&target)?;
    let tmp_c = cstr(&tmp)?;
    // SAFETY: valid C strings and dirfd.
    if unsafe { libc::symlinkat(t.as_ptr(), pdir.as_raw_fd(), tmp_c.as_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if let Err(err) = set_link_time(s, &pdir, &tmp, e) {
        let _ = unlink_at(&pdir, &tmp, false);
        return Err(err);
    }
    rename_at(&pdir, &tmp, base)?;
    Ok(outcome)
}

/// A link's own time (never its target's), when `-t` keeps link times.
fn set_link_time(s: &Shared<'_>, dir: &OwnedFd, name: &[u8], e: &FileEntry) -> std::io::Result<()> {
    if !s.options.times || s.options.omit_link_times {
        return Ok(());
    }
    let c = cstr(name)?;
    let t = libc::timespec { tv_sec: e.mtime, tv_nsec: e.mtime_nsec as i64 };
    let times = [libc::timespec { tv_sec: 0, tv_nsec: libc::UTIME_OMIT }, t];
    // SAFETY: valid dirfd, C string and two timespecs; the link itself is changed.
    if unsafe { libc::utimensat(dir.as_raw_fd(), c.as_ptr(), times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Makes `new` a hard link to `existing` (both beneath the destination), replacing
/// whatever `new` was in one rename: a reader sees the old file or the link. A
/// directory in the way is removed first, with its contents, as for a received file.
fn link_to(s: &Shared<'_>, existing: &[u8], new: &[u8]) -> std::io::Result<()> {
    let (ep, eb) = split_parent(existing);
    let (np, nb) = split_parent(new);
    let edir = s.tree.open_dir(ep)?;
    let ndir = s.tree.open_dir(np)?;
    let tmp = temp_name(nb);
    let (eb_c, tmp_c) = (cstr(eb)?, cstr(&tmp)?);
    // SAFETY: valid dirfds and C strings; no symlink is followed (flags 0).
    if unsafe { libc::linkat(edir.as_raw_fd(), eb_c.as_ptr(), ndir.as_raw_fd(), tmp_c.as_ptr(), 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let in_the_way = stat_at(&ndir, nb).is_ok_and(|st| st.is_dir());
    let placed = if in_the_way { remove_at(s.tree, new, true) } else { Ok(()) };
    let placed = placed.and_then(|()| rename_at(&ndir, &tmp, nb));
    if placed.is_err() {
        let _ = unlink_at(&ndir, &tmp, false);
    }
    placed
}

/// Each directory of a list ("" is the top) with the indexes of its entries there.
fn children_index(list: &[FileEntry]) -> HashMap<Vec<u8>, Vec<u32>> {
    let mut children: HashMap<Vec<u8>, Vec<u32>> = HashMap::new();
    for (i, e) in list.iter().enumerate().filter(|(_, e)| e.name != b".") {
        let (parent, _) = split_parent(&e.name);
        let parent: &[u8] = if parent == b"." { b"" } else { parent };
        match children.get_mut(parent) {
            Some(ix) => ix.push(i as u32),
            None => {
                children.insert(parent.to_vec(), vec![i as u32]);
            }
        }
    }
    children
}

/// Whether `rel` lies below one of `dirs` (checked ancestor by ancestor).
fn under_any(dirs: &HashSet<Vec<u8>>, rel: &[u8]) -> bool {
    !dirs.is_empty() && rel.iter().enumerate().any(|(i, &b)| b == b'/' && dirs.contains(&rel[..i]))
}

/// Removes what is in `dir_rel` but not in the list (`--delete`), unless a filter
/// protects it; the client's per-directory merge files in `dir_rel` count, as the
/// reference's delete_in_dir reads them.
fn delete_extraneous(
    s: &Shared<'_>,
    filters: &mut crate::filters::Filters,
    w: &mut Wire,
    dir_rel: &[u8],
    listed: Option<&HashSet<&[u8]>>,
    stats: &mut DelStats,
) -> Result<(), Fatal> {
    crate::session::enter_filter_dir(filters, s.module_tree, dir_rel)?;
    let Ok(dir) = s.tree.open_dir(dir_rel) else { return Ok(()) };
    let Ok(names) = crate::tree::read_dir_fd(&dir) else { return Ok(()) };
    let extra = names.into_iter().filter(|name| !listed.is_some_and(|l| l.contains(name.as_slice())));
    for (name, mode) in in_delete_order(&dir, extra) {
        let rel = if dir_rel.is_empty() { name.clone() } else { [dir_rel, b"/", &name].concat() };
        if filters.protected(&rel, mode & S_IFMT == S_IFDIR, false) {
            continue;
        }
        delete_item(s, filters, w, rel, mode, stats)?;
        filters.back_to(dir_rel);
    }
    Ok(())
}

/// The entries of `dir` named, with their modes, in the order the reference deletes
/// them: its sorted order (files before directories, a directory's name compared with
/// its slash), last first. Entries gone meanwhile are left out.
fn in_delete_order(dir: &OwnedFd, names: impl Iterator<Item = Vec<u8>>) -> Vec<(Vec<u8>, u32)> {
    let mut entries: Vec<(Vec<u8>, u32)> =
        names.filter_map(|name| stat_at(dir, &name).ok().map(|st| (name, st.mode))).collect();
    let key = |(name, mode): &(Vec<u8>, u32)| {
        let is_dir = mode & S_IFMT == S_IFDIR;
        let mut k = name.clone();
        if is_dir {
            k.push(b'/');
        }
        (is_dir, k)
    };
    entries.sort_by_cached_key(key);
    entries.reverse();
    entries
}

/// Deletes an extraneous entry as the reference's delete_item does: a directory's
/// contents first, each judged by the filters (with the per-directory merge files
/// found on the way, and perishable rules ignored), so that what a rule protects stays,
/// and the directories above it with "cannot delete non-empty directory". Depth first
/// with a heap stack: a hostile tree's depth cannot exhaust the thread's stack.
///
/// `--max-delete` stops deletions once the limit is reached (each one stopped is
/// counted, and keeps its directory). A dry run deletes nothing and says what the run
/// would: the directories something is kept in are known (`kept`), so a dry run's
/// "cannot delete non-empty directory" is the run's.
fn delete_item(
    s: &Shared<'_>,
    filters: &mut crate::filters::Filters,
    w: &mut Wire,
    rel: Vec<u8>,
    mode: u32,
    stats: &mut DelStats,
) -> Result<(), Fatal> {
    enum Step {
        Visit(Vec<u8>, u32),
        /// A directory whose contents were dealt with.
        RemoveDir(Vec<u8>, u32),
    }
    let top = rel.clone();
    // Directories that keep something: a protected entry, or one not deleted.
    let mut kept: HashSet<Vec<u8>> = HashSet::new();
    let keep_parent = |kept: &mut HashSet<Vec<u8>>, path: &[u8]| {
        kept.insert(split_parent(path).0.to_vec());
    };
    let mut steps = vec![Step::Visit(rel, mode)];
    while let Some(step) = steps.pop() {
        let (path, mode) = match step {
            Step::Visit(path, mode) if mode & S_IFMT == S_IFDIR => {
                crate::session::enter_filter_dir(filters, s.module_tree, &path)?;
                steps.push(Step::RemoveDir(path.clone(), mode));
                let contents = s.tree.open_dir(&path).and_then(|fd| Ok((crate::tree::read_dir_fd(&fd)?, fd)));
                let (names, fd) = match contents {
                    Ok(c) => c,
                    Err(e) => {
                        let text = format!(
                            "rsync: [generator] opendir {} failed: {}\n",
                            s.full_fname(&path),
                            crate::sender::os_error(&e)
                        );
                        w.message(Msg::ErrorXfer, text.as_bytes())?;
                        continue;
                    }
                };
                // Pushed first-first, so they come off the stack last first.
                for (name, mode) in in_delete_order(&fd, names.into_iter()).into_iter().rev() {
                    let child = [&path[..], b"/", &name].concat();
                    if filters.protected(&child, mode & S_IFMT == S_IFDIR, true) {
                        kept.insert(path.clone());
                    } else {
                        steps.push(Step::Visit(child, mode));
                    }
                }
                continue;
            }
            Step::Visit(path, mode) => (path, mode),
            Step::RemoveDir(path, mode) => {
                if kept.contains(&path) {
                    // The reference says so once on emptying it; the one it was asked
                    // to delete is then left, one below is still tried (and fails).
                    let text = format!("cannot delete non-empty directory: {}\n", String::from_utf8_lossy(&path));
                    w.message(Msg::Info, text.as_bytes())?;
                    if path == top {
                        continue;
                    }
                }
                (path, mode)
            }
        };
        if stats.at_limit() {
            stats.skipped += 1;
            keep_parent(&mut kept, &path);
            continue;
        }
        let is_dir = mode & S_IFMT == S_IFDIR;
        let removed = if s.options.dry_run {
            if is_dir && kept.contains(&path) {
                Err(std::io::Error::from_raw_os_error(libc::ENOTEMPTY))
            } else {
                Ok(())
            }
        } else {
            let (parent, base) = split_parent(&path);
            s.tree.open_dir(parent).and_then(|pdir| unlink_at(&pdir, base, is_dir))
        };
        match removed {
            Ok(()) => {
                match mode & S_IFMT {
                    S_IFDIR => stats.dirs += 1,
                    S_IFLNK => stats.links += 1,
                    _ => stats.files += 1,
                }
                if s.protocol >= 29 {
                    let mut shown = path.clone();
                    if is_dir {
                        shown.push(b'/');
                    }
                    w.message(Msg::Deleted, &shown)?;
                }
                if let Some(log) = s.log {
                    log.deleted(&s.in_module(&path), mode);
                }
            }
            Err(e) if is_dir && e.raw_os_error() == Some(libc::ENOTEMPTY) => {
                keep_parent(&mut kept, &path);
                let text = format!("cannot delete non-empty directory: {}\n", String::from_utf8_lossy(&path));
                w.message(Msg::Info, text.as_bytes())?;
            }
            // Gone meanwhile: what was wanted, and not a deletion of ours to report.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                keep_parent(&mut kept, &path);
                let text = format!(
                    "rsync: [generator] delete_file: {}({}) failed: {}\n",
                    if is_dir { "rmdir" } else { "unlink" },
                    String::from_utf8_lossy(&path),
                    crate::sender::os_error(&e)
                );
                w.message(Msg::ErrorXfer, text.as_bytes())?;
            }
        }
    }
    Ok(())
}

/// Removes a file, link or (recursively, without following links) a directory: what
/// stands where the list puts something else. Depth first without recursion:
/// directories are emptied, then removed deepest first, so a hostile tree's depth costs
/// heap, not stack.
fn remove_at(tree: &Tree, rel: &[u8], is_dir: bool) -> std::io::Result<()> {
    let (parent, base) = split_parent(rel);
    let pdir = tree.open_dir(parent)?;
    if is_dir {
        let mut stack = vec![rel.to_vec()];
        let mut dirs = Vec::new();
        while let Some(d) = stack.pop() {
            let fd = tree.open_dir(&d)?;
            for name in crate::tree::read_dir_fd(&fd)? {
                let st = stat_at(&fd, &name)?;
                if st.is_dir() {
                    stack.push([&d[..], b"/", &name].concat());
                } else {
                    unlink_at(&fd, &name, false)?;
                }
            }
            dirs.push(d);
        }
        for d in dirs.iter().rev().filter(|d| d.as_slice() != rel) {
            let (p, b) = split_parent(d);
            unlink_at(&tree.open_dir(p)?, b, true)?;
        }
    }
    unlink_at(&pdir, base, is_dir)
}

fn unlink_at(dir: &OwnedFd, name: &[u8], is_dir: bool) -> std::io::Result<()> {
    let c = cstr(name)?;
    let flags = if is_dir { libc::AT_REMOVEDIR } else { 0 };
    // SAFETY: valid dirfd and C string.
    if unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), flags) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn rename_at(dir: &OwnedFd, from: &[u8], to: &[u8]) -> std::io::Result<()> {
    let (f, t) = (cstr(from)?, cstr(to)?);
    // SAFETY: valid dirfd and C strings.
    if unsafe { libc::renameat(dir.as_raw_fd(), f.as_ptr(), dir.as_raw_fd(), t.as_ptr()) } != 0 {
        let e = std::io::Error::last_os_error();
        // SAFETY: the temporary name is ours to remove.
        unsafe { libc::unlinkat(dir.as_raw_fd(), f.as_ptr(), 0) };
        return Err(e);
    }
    Ok(())
}

fn cstr(b: &[u8]) -> std::io::Result<CString> {
    CString::new(b).map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in a name"))
}

/// ".name.XXXXXX", the reference's temporary name, in the destination's directory.
fn temp_name(base: &[u8]) -> Vec<u8> {
    let r = crate::ids::random_seed() as u32;
    let mut n = b".".to_vec();
    n.extend_from_slice(&base[..base.len().min(200)]);
    n.extend_from_slice(format!(".{r:08x}").as_bytes());
    n
}

fn fchmod(fd: &OwnedFd, mode: u32) -> std::io::Result<()> {
    // SAFETY: fchmod on an open descriptor.
    if unsafe { libc::fchmod(fd.as_raw_fd(), mode) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// A directory's time, set once every file has landed: one for each directory of the
/// push, so only what that needs.
struct DirTime {
    name: Box<[u8]>,
    mtime: i64,
    mtime_nsec: u32,
}

fn set_times(fd: &OwnedFd, e: &FileEntry) -> std::io::Result<()> {
    set_mtime(fd, e.mtime, e.mtime_nsec)
}

fn set_mtime(fd: &OwnedFd, mtime: i64, mtime_nsec: u32) -> std::io::Result<()> {
    let t = libc::timespec { tv_sec: mtime, tv_nsec: mtime_nsec as i64 };
    let times = [libc::timespec { tv_sec: 0, tv_nsec: libc::UTIME_OMIT }, t];
    // SAFETY: futimens on an open descriptor with two timespecs.
    if unsafe { libc::futimens(fd.as_raw_fd(), times.as_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn set_attrs_path(s: &Shared<'_>, rel: &[u8], e: &FileEntry) -> std::io::Result<()> {
    let fd = s.tree.open_beneath(rel, libc::O_RDONLY)?;
    if s.options.perms {
        fchmod(&fd, e.mode & 0o7777)?;
    }
    if s.options.times {
        set_times(&fd, e)?;
    }
    Ok(())
}

/// What follows a directory that was not made (a line of its own: the client escapes a
/// newline inside a message).
const SKIPPING_CONTENTS: &[u8] = b"*** Skipping any contents from this failed directory ***\n";

/// The receiver's side: reads each file's delta and rebuilds the file.
/// The receiver's side: reads each file the generator asked for (and, with
/// incremental recursion, the lists the client sends along the way) until the last
/// phase ends; returns the total size of the lists read here (after the first ones).
fn receive_files(
    s: &Shared<'_>,
    incoming: &mut Incoming<'_>,
    decoder: &mut dyn Decode,
    tx: &SyncSender<Event>,
) -> Result<u64, Fatal> {
    let mut phase = 0;
    let mut redone: HashSet<i32> = HashSet::new();
    let mut landing = Landing::new(s.tree);
    let mut lists_size = 0u64;
    let mut lists_done = !s.incremental;
    // Lists the client said it freed (NDX_DONE), each after the generator's.
    let mut freed = 0usize;
    loop {
        let wire = &mut *incoming.wire;
        let (ndx, iflags) = match read_next(wire, incoming.ndx_in, s.protocol, s.incremental)? {
            Next::File(ndx, iflags) => (ndx, iflags),
            Next::List(dir) if !lists_done => {
                let (list, io_error) = receive_sublist(wire, &mut incoming.reader, &mut incoming.lists, dir)?;
                lists_size = lists_size.saturating_add(listed_size(&list.entries));
                let mut r = Reports::lock(&s.reports);
                r.io_error |= io_error | wire.peer_io_error;
                r.lists.push_back(list);
                r.wake(tx);
                continue;
            }
            Next::ListsEnd if !lists_done => {
                lists_done = true;
                let mut r = Reports::lock(&s.reports);
                r.lists_done = true;
                r.wake(tx);
                continue;
            }
            Next::List(_) | Next::ListsEnd => {
                return Err(Fatal::protocol("a file list after the end of the lists [receiver]".into()));
            }
            Next::Done => {
                if s.incremental && !incoming.lists.is_empty() {
                    if freed >= Reports::lock(&s.reports).released {
                        return Err(Fatal::protocol("NDX_DONE for a file list not done [receiver]".into()));
                    }
                    freed += 1;
                    // A list freed; the last one ends phase 0.
                    if incoming.lists.finish_first() {
                        continue;
                    }
                }
                // Every phase ends with its files in place: the generator sets directory
                // times once the last phase is done, and a later rename would change them.
                report(s, tx, landing.land());
                phase += 1;
                if phase > 2 {
                    break;
                }
                let _ = tx.send(Event::Done);
                continue;
            }
        };
        if iflags & ITEM_TRANSFER == 0 && incoming.lists.names(ndx) {
            // An item the client's sender only reported.
            continue;
        }
        let Some(e) = incoming.lists.get(ndx) else {
            return Err(Fatal::protocol(format!("Invalid file index: {ndx} [receiver]")));
        };
        let asked = s.requested.lock().map(|mut r| r.remove(&ndx)).unwrap_or(false);
        if !asked {
            return Err(Fatal::protocol(format!("received a file that was not requested: {ndx} [receiver]")));
        }
        if !e.is_reg() {
            return Err(Fatal::protocol(format!("received request to transfer non-regular file: {ndx} [receiver]")));
        }
        if s.options.dry_run {
            // No data follows in a dry run.
            taken(s, tx, ndx);
            continue;
        }
        let before = wire.consumed();
        match receive_one(s, wire, decoder, ndx, e)? {
            Received::Ready(attr_errors, pending, file_sum) => {
                for text in attr_errors {
                    let _ = tx.send(Event::Message(Msg::ErrorXfer, text.into_bytes()));
                }
                s.log_item(e, iflags, Some((wire.consumed() - before, &file_sum)), None);
                report(s, tx, landing.add(pending));
                taken(s, tx, ndx);
            }
            Received::Mismatch if phase == 0 && redone.insert(ndx) => {
                let text = format!(
                    "WARNING: {} failed verification -- update discarded (will try again).\n",
                    String::from_utf8_lossy(&e.name)
                );
                let _ = tx.send(Event::Message(Msg::Warning, text.into_bytes()));
                let _ = tx.send(Event::Redo(ndx));
            }
            Received::Mismatch => {
                let text =
                    format!("ERROR: {} failed verification -- update discarded.\n", String::from_utf8_lossy(&e.name));
                let _ = tx.send(Event::Message(Msg::ErrorXfer, text.into_bytes()));
                not_landed(s, ndx);
                taken(s, tx, ndx);
            }
            Received::Failed(text) => {
                let _ = tx.send(Event::Message(Msg::ErrorXfer, text.into_bytes()));
                not_landed(s, ndx);
                taken(s, tx, ndx);
            }
        }
    }
    // The end of the file loop, then the final goodbye.
    let _ = tx.send(Event::Done);
    if !matches!(read_next(incoming.wire, incoming.ndx_in, s.protocol, false)?, Next::Done) {
        return Err(Fatal::protocol("Invalid packet at end of run".into()));
    }
    if s.protocol >= 31 {
        let _ = tx.send(Event::Done);
    }
    Ok(lists_size)
}

/// Incremental recursion: the receiver is done with requested file `ndx` (its list may
/// end once all its files are).
fn taken(s: &Shared<'_>, tx: &SyncSender<Event>, ndx: i32) {
    if s.incremental {
        let mut r = Reports::lock(&s.reports);
        r.taken.push(ndx);
        r.wake(tx);
    }
}

enum Received {
    /// In a temporary file, to be renamed into place: the attributes that could not be
    /// set (a line each for the client), then the sender's checksum of it.
    Ready(Vec<String>, Pending, Vec<u8>),
    Mismatch,
    Failed(String),
}

/// Tells the client what a landing did: a line per file it could not put in place and,
/// with `--remove-source-files`, the index of each file now in place (durably: the
/// client deletes its copy on hearing it). (Incremental recursion is not offered with
/// `--remove-source-files`: a list must outlive its files' MSG_SUCCESS, which waits for
/// their batch to land.)
fn report(s: &Shared<'_>, tx: &SyncSender<Event>, landed: Landed) {
    if landed.failures.is_empty() && landed.placed.is_empty() {
        return;
    }
    for (_, text) in &landed.failures {
        let _ = tx.send(Event::Message(Msg::ErrorXfer, text.clone().into_bytes()));
    }
    let mut r = Reports::lock(&s.reports);
    for (ndx, _) in &landed.failures {
        if s.options.hard_links {
            r.landed.push((*ndx, false));
        }
    }
    for &ndx in &landed.placed {
        if s.options.remove_source_files {
            r.successes.push(ndx);
        }
        if s.options.hard_links {
            r.landed.push((ndx, true));
        }
    }
    r.wake(tx);
}

/// `-H`: tells the generator a requested file will not land, for its set's links.
fn not_landed(s: &Shared<'_>, ndx: i32) {
    if s.options.hard_links {
        Reports::lock(&s.reports).landed.push((ndx, false));
    }
}

/// Rebuilds one file from its tokens into a temporary file beside it, then renames it
/// into place once its checksum verifies.
fn receive_one(
    s: &Shared<'_>,
    wire: &mut Wire,
    decoder: &mut dyn Decode,
    ndx: i32,
    e: &FileEntry,
) -> Result<Received, Fatal> {
    let proto = s.protocol;
    let max_strong = s.sums.strong.digest_len();
    let head = wire.parse(|r| SumHead::read(r, proto, max_strong))?;
    let rel = &e.name;
    let (parent, base) = split_parent(rel);
    let existing = lstat(s.tree, rel);
    let basis: Option<File> = if head.count > 0 { s.tree.open_file(rel).ok() } else { None };
    // Keep reading the stream whatever happens to the file, so the connection stays
    // in step: `out` is None when the file cannot be written.
    let mut failure: Option<String> = None;
    let pdir = s.tree.open_dir(parent);
    let tmp = temp_name(base);
    let mut guard: Option<TempGuard> = None;
    let mut out: Option<File> = match &pdir {
        Ok(pdir) => match open_temp(pdir, &tmp) {
            Ok(f) => {
                guard = pdir.try_clone().ok().map(|dir| TempGuard { dir, name: tmp.clone() });
                Some(f)
            }
            Err(err) => {
                failure = Some(format!(
                    "rsync: [receiver] mkstemp {} failed: {}\n",
                    s.full_fname(&tmp),
                    crate::sender::os_error(&err)
                ));
                None
            }
        },
        Err(err) => {
            failure = Some(format!(
                "rsync: [receiver] opendir \"{}\" failed: {}\n",
                String::from_utf8_lossy(parent),
                crate::sender::os_error(err)
            ));
            None
        }
    };
    let mut sum = FileSum::transfer(s.sums.strong, s.sums.seed);
    let mut written: u64 = 0;
    let mut block_buf = Vec::new();
    loop {
        let piece = wire.parse(|r| {
            Ok(match decoder.next(r)? {
                Decoded::Literal(d) => Piece::Literal(d.to_vec()),
                Decoded::Block(i) => Piece::Block(i),
                Decoded::End => Piece::End,
            })
        })?;
        match piece {
            Piece::End => break,
            Piece::Literal(data) => {
                sum.update(&data);
                written += data.len() as u64;
                write_out(&mut out, &data, &mut failure);
            }
            Piece::Block(i) => {
                let Some((offset, len)) = head.block_range(i) else {
                    return Err(Fatal::protocol(format!("block {i} beyond the basis sums")));
                };
                block_buf.resize(len as usize, 0);
                let ok = basis.as_ref().map(|b| b.read_exact_at(&mut block_buf, offset).is_ok()).unwrap_or(false);
                if !ok {
                    block_buf.iter_mut().for_each(|b| *b = 0);
                }
                decoder.saw_block(&block_buf);
                sum.update(&block_buf);
                written += len as u64;
                write_out(&mut out, &block_buf, &mut failure);
            }
        }
        if written > e.size.saturating_add(1 << 20) && written > e.size * 2 {
            return Err(Fatal::protocol(format!("{} grew past its listed size", String::from_utf8_lossy(rel))));
        }
    }
    let len = s.sums.strong.digest_len();
    let theirs = wire.parse(|r| Ok(r.bytes(len)?.to_vec()))?;
    let ours = sum.finish();
    let pdir = match (pdir, out) {
        (Ok(p), Some(f)) => (p, f),
        _ => {
            return Ok(Received::Failed(failure.unwrap_or_default()));
        }
    };
    let (pdir, file) = pdir;
    if ours.as_bytes() != theirs.as_slice() {
        let c = cstr(&tmp).ok();
        if let Some(c) = c {
            // SAFETY: removing our own temporary file.
            unsafe { libc::unlinkat(pdir.as_raw_fd(), c.as_ptr(), 0) };
        }
        return Ok(Received::Mismatch);
    }
    if let Some(text) = failure {
        let _ = unlink_at(&pdir, &tmp, false);
        return Ok(Received::Failed(text));
    }
    let fd = OwnedFd::from(file);
    // Start writing the data out now, so the landing's sync mostly finds it done: the
    // disk works while the next files arrive. Advice only; an error shows at the sync.
    // SAFETY: sync_file_range on an open descriptor, whole file, write-out only.
    unsafe { libc::sync_file_range(fd.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
    // An attribute that cannot be set is an error for the client (exit 23), and the
    // data still lands, as with the reference's set_file_attrs().
    let mut attr_errors = Vec::new();
    let tmp_rel = if parent.is_empty() { tmp.clone() } else { [parent, b"/", &tmp].concat() };
    let mut attr_failed = |what: &str, err: std::io::Error| {
        attr_errors.push(format!(
            "rsync: [receiver] failed to set {what} on {}: {}\n",
            s.full_fname(&tmp_rel),
            crate::sender::os_error(&err)
        ))
    };
    if let Err(err) = fchmod(&fd, default_mode(s, e, existing.as_ref())) {
        attr_failed("permissions", err);
    }
    if let Some(err) = s.options.times.then(|| set_times(&fd, e).err()).flatten() {
        attr_failed("times", err);
    }
    // The landing renames it, once synced; until then it is the landing's to clean up.
    if let Some(g) = guard.as_mut() {
        g.name.clear();
    }
    Ok(Received::Ready(
        attr_errors,
        Pending {
            ndx,
            dir: pdir,
            tmp,
            base: base.to_vec(),
            rel: rel.clone(),
            replaces_dir: existing.as_ref().is_some_and(|st| st.is_dir()),
            bytes: written,
        },
        theirs,
    ))
}

/// A file received and verified, under its temporary name, waiting to be renamed.
struct Pending {
    /// The file's index in the list.
    ndx: i32,
    dir: OwnedFd,
    tmp: Vec<u8>,
    base: Vec<u8>,
    rel: Vec<u8>,
    /// A directory of the same name is in the way (removed just before the rename).
    replaces_dir: bool,
    bytes: u64,
}

/// Received files wait here to be renamed into place, in batches: the batch's data is
/// synced first (one `syncfs` per filesystem, the reference has no sync at all), then
/// each file renamed. After a power cut each name is the old file or the whole new one,
/// and a push of many small files pays one journal commit per batch, not one per file.
/// Files not landed when the receiver stops (client gone, error) are landed on drop:
/// they were complete and verified.
struct Landing<'t> {
    tree: &'t Tree,
    pending: Vec<Pending>,
    bytes: u64,
}

/// A batch lands at this many files or bytes, whichever comes first (each pending file
/// holds its directory open).
const LANDING_FILES: usize = 256;
const LANDING_BYTES: u64 = 64 << 20;

impl<'t> Landing<'t> {
    fn new(tree: &'t Tree) -> Self {
        Landing { tree, pending: Vec::new(), bytes: 0 }
    }

    /// Adds a file; what a batch that had to land now did.
    fn add(&mut self, p: Pending) -> Landed {
        self.bytes += p.bytes;
        self.pending.push(p);
        if self.pending.len() >= LANDING_FILES || self.bytes >= LANDING_BYTES {
            self.land()
        } else {
            Landed::default()
        }
    }

    /// Syncs and renames everything pending: the files put in place, and an error line
    /// per file that could not be (its temporary file removed).
    fn land(&mut self) -> Landed {
        let batch = std::mem::take(&mut self.pending);
        self.bytes = 0;
        let os_error = crate::sender::os_error;
        // One sync for each filesystem the batch touches (a module may hold mounts).
        let devs: Vec<Result<u64, String>> =
            batch.iter().map(|p| fstat_dev(&p.dir).map_err(|e| os_error(&e))).collect();
        let mut sync_errors: HashMap<u64, Option<String>> = HashMap::new();
        for (p, dev) in batch.iter().zip(&devs) {
            if let Ok(d) = dev {
                sync_errors.entry(*d).or_insert_with(|| syncfs(&p.dir).err().map(|e| os_error(&e)));
            }
        }
        let mut landed = Landed::default();
        for (p, dev) in batch.into_iter().zip(devs) {
            let unsynced = match dev {
                Ok(d) => sync_errors.get(&d).cloned().flatten(),
                Err(e) => Some(e),
            };
            let failure = match unsynced {
                Some(e) => {
                    Some(format!("rsync: [receiver] sync of \"{}\" failed: {e}\n", String::from_utf8_lossy(&p.rel)))
                }
                None => {
                    let placed = if p.replaces_dir { remove_at(self.tree, &p.rel, true) } else { Ok(()) };
                    placed.and_then(|()| rename_at(&p.dir, &p.tmp, &p.base)).err().map(|err| {
                        format!(
                            "rsync: [receiver] rename \"{}\" -> \"{}\" failed: {}\n",
                            String::from_utf8_lossy(&p.tmp),
                            String::from_utf8_lossy(&p.rel),
                            os_error(&err)
                        )
                    })
                }
            };
            match failure {
                Some(text) => {
                    let _ = unlink_at(&p.dir, &p.tmp, false);
                    landed.failures.push((p.ndx, text));
                }
                None => landed.placed.push(p.ndx),
            }
        }
        landed
    }
}

/// What a landing did.
#[derive(Default)]
struct Landed {
    /// Each file not put in place, with a line for the client.
    failures: Vec<(i32, String)>,
    /// The indexes of the files put in place.
    placed: Vec<i32>,
}

impl Drop for Landing<'_> {
    fn drop(&mut self) {
        for (_, text) in self.land().failures {
            tracing::warn!("{}", text.trim_end());
        }
    }
}

fn fstat_dev(fd: &OwnedFd) -> std::io::Result<u64> {
    // SAFETY: a zeroed stat is valid output space for fstat on an open descriptor.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(st.st_dev)
}

fn syncfs(fd: &OwnedFd) -> std::io::Result<()> {
    // SAFETY: syncfs on an open descriptor.
    if unsafe { libc::syncfs(fd.as_raw_fd()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Removes a temporary file when its transfer does not end in the rename (the client
/// went away mid-file, the checksum failed, an error): nothing half-written is left.
struct TempGuard {
    dir: OwnedFd,
    /// Empty once the file was renamed into place.
    name: Vec<u8>,
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if !self.name.is_empty() {
            let _ = unlink_at(&self.dir, &self.name, false);
        }
    }
}

enum Piece {
    Literal(Vec<u8>),
    Block(u32),
    End,
}

fn write_out(out: &mut Option<File>, data: &[u8], failure: &mut Option<String>) {
    if let Some(f) = out {
        if let Err(e) = f.write_all(data) {
            *failure = Some(format!("rsync: [receiver] write failed: {}\n", crate::sender::os_error(&e)));
            *out = None;
        }
    }
}

fn open_temp(dir: &OwnedFd, name: &[u8]) -> std::io::Result<File> {
    let c = cstr(name)?;
    // SAFETY: valid dirfd and C string; O_EXCL|O_NOFOLLOW: a new file of ours only.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o600,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a new descriptor owned by nobody else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str) -> FileEntry {
        FileEntry { name: name.as_bytes().to_vec(), ..Default::default() }
    }

    #[test]
    fn each_directory_knows_its_listed_names() {
        let list = [entry("."), entry("a"), entry("d"), entry("d/b"), entry("d/e/f")];
        let children = children_index(&list);
        let names = |dir: &str| -> Vec<&[u8]> {
            let ix = children.get(dir.as_bytes()).cloned().unwrap_or_default();
            let mut v: Vec<&[u8]> = ix.iter().map(|&i| split_parent(&list[i as usize].name).1).collect();
            v.sort();
            v
        };
        assert_eq!(names(""), vec![&b"a"[..], b"d"]);
        assert_eq!(names("d"), vec![&b"b"[..]]);
        assert_eq!(names("d/e"), vec![&b"f"[..]]);
    }

    #[test]
    fn names_below_a_failed_directory_are_skipped_and_the_rest_kept() {
        let failed: HashSet<Vec<u8>> = [b"d/e".to_vec()].into();
        assert!(under_any(&failed, b"d/e/f"));
        assert!(under_any(&failed, b"d/e/f/g"));
        assert!(!under_any(&failed, b"d/e"));
        assert!(!under_any(&failed, b"d/ef"));
        assert!(!under_any(&failed, b"d"));
        assert!(!under_any(&HashSet::new(), b"d/e/f"));
    }
}
