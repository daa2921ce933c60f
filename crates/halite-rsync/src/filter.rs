//! Filter rules (exclude.c): the list a client sends after the arguments, the module's own
//! `filter`/`include`/`exclude` parameters, rule syntax with its prefixes and modifiers,
//! per-directory merge files, the CVS ignore list, and the first-match-wins test that
//! decides whether a name takes part in the transfer.
//!
//! Paths here are raw bytes (names need not be UTF-8), '/'-separated, relative to the
//! transfer root; "absolute" rules (`/` modifier, anchored rules of merge files, slashed
//! rules of the daemon's own filter) are matched against the path relative to the module
//! root, which is the transfer root prefixed by [`FilterList::set_root`]. The module root
//! plays the part the file-system root plays for a chrooted rsync daemon.
//!
//! This module must not read files: per-directory merge files reach it through a callback
//! the daemon supplies (and confines to the module), so what is read, and whether a
//! daemon-excluded file may be, stays the daemon's business. It must not echo rule text
//! from files in errors either: a peer chooses which file gets merged, and an error that
//! quotes a line would let it read files line by line. Every count and size read from the
//! peer or from merge files is bounded here.

use crate::wildmatch::{litmatch, Anchor, Pattern};
use crate::wire::{put_i32, Reader, WireError};
use std::borrow::Cow;
use std::rc::Rc;
use thiserror::Error;

/// rsync's MAXPATHLEN: a rule whose pattern is this long or longer is dropped, as the
/// reference drops it ("discarding over-long filter").
pub const MAXPATHLEN: usize = 4096;
/// The longest rule on the wire: the reference's receive buffer (BIGPATHBUFLEN) less its
/// terminator; longer is a protocol error there too. Also the longest line of a merge file.
pub const MAX_RULE_LEN: usize = 4096 + 1024 - 1;
/// Rules accepted in one list from the wire. The reference has no limit; an
/// `--exclude-from` of tens of thousands of names is plausible, far beyond that is not.
pub const MAX_WIRE_RULES: usize = 32 * 1024;
/// Bytes of rule text accepted in one list from the wire.
pub const MAX_WIRE_BYTES: usize = 4 << 20;
/// Nesting of merge files read from merge files (the reference's MAX_MERGE_DEPTH).
pub const MAX_MERGE_DEPTH: usize = 32;
/// Per-directory merge files active at once. Each costs a read per directory entered and
/// a level of the (recursive) match; the reference has no limit, real use has a handful.
pub const MAX_DIR_MERGES: usize = 64;
/// The largest merge file parsed.
pub const MAX_MERGE_FILE_BYTES: usize = 1 << 20;
/// Rules live at once in a list, per-directory ones included: each is tried per name.
pub const MAX_LIVE_RULES: usize = 100_000;
/// Bytes of per-directory merge files in force at once (those of a directory and its
/// ancestors): with the count above, what bounds a connection's rules in memory.
pub const MAX_LIVE_MERGE_BYTES: usize = 4 << 20;
/// Directories entered at once (the reference's MAXPATHLEN/2 depth table).
pub const MAX_DIR_DEPTH: usize = MAXPATHLEN / 2;

/// The files CVS ignores by default (rsync.1's `--cvs-exclude` list, in its order), which
/// a `-C` rule turns into excludes.
pub const DEFAULT_CVS_IGNORE: &[&str] = &[
    "RCS",
    "SCCS",
    "CVS",
    "CVS.adm",
    "RCSLOG",
    "cvslog.*",
    "tags",
    "TAGS",
    ".make.state",
    ".nse_depinfo",
    "*~",
    "#*",
    ".#*",
    ",*",
    "_$*",
    "*$",
    "*.old",
    "*.bak",
    "*.BAK",
    "*.orig",
    "*.rej",
    ".del-*",
    "*.a",
    "*.olb",
    "*.o",
    "*.obj",
    "*.so",
    "*.exe",
    "*.Z",
    "*.elc",
    "*.ln",
    "core",
    ".svn/",
    ".git/",
    ".hg/",
    ".bzr/",
];

// Rule flags, named after the reference's FILTRULE_* bits.
const WILD: u32 = 1 << 0;
const WILD2: u32 = 1 << 1;
const WILD2_PREFIX: u32 = 1 << 2;
const WILD3_SUFFIX: u32 = 1 << 3;
const ABS_PATH: u32 = 1 << 4;
const INCLUDE: u32 = 1 << 5;
const DIRECTORY: u32 = 1 << 6;
const WORD_SPLIT: u32 = 1 << 7;
const NO_INHERIT: u32 = 1 << 8;
const NO_PREFIXES: u32 = 1 << 9;
const MERGE_FILE: u32 = 1 << 10;
const PERDIR_MERGE: u32 = 1 << 11;
const EXCLUDE_SELF: u32 = 1 << 12;
const NEGATE: u32 = 1 << 14;
const CVS_IGNORE: u32 = 1 << 15;
const SENDER_SIDE: u32 = 1 << 16;
const RECEIVER_SIDE: u32 = 1 << 17;
const CLEAR_LIST: u32 = 1 << 18;
const PERISHABLE: u32 = 1 << 19;
const XATTR: u32 = 1 << 20;
const SIDES: u32 = SENDER_SIDE | RECEIVER_SIDE;
/// What rules read from a merge file take over from the merge rule itself.
const FROM_CONTAINER: u32 = ABS_PATH | INCLUDE | DIRECTORY | NEGATE | PERISHABLE;

// How a list is being parsed (the reference's XFLG_* bits).
const X_OLD_PREFIXES: u32 = 1 << 1;
/// A leading slash anchors at the merge file's directory (per-directory files).
const X_ANCHORED2ABS: u32 = 1 << 2;
/// Any slash makes the rule match the module-relative path (the daemon's own filter).
const X_ABS_IF_SLASH: u32 = 1 << 3;
/// An exclude of `dir/` becomes `dir/***`, so it also hides what is below (daemon filter).
const X_DIR2WILD3: u32 = 1 << 4;

/// Why rules could not be taken. The reference exits on all but the over-long rule (which
/// it drops with a warning, as this module does silently).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FilterError {
    #[error("unknown filter rule")]
    UnknownRule,
    #[error("invalid modifier in filter rule")]
    InvalidModifier,
    #[error("unexpected end of filter rule")]
    UnexpectedEnd,
    #[error("'!' rule has trailing characters")]
    ClearWithArgument,
    #[error("specified-side merge file contains specified-side filter")]
    SidedRuleInSidedMerge,
    /// A `merge` (`.`) rule from the peer: a stock client reads merge files itself and
    /// sends their rules, so one arriving here asks the daemon to read a file for it.
    #[error("merge rules are expanded by the client and never sent")]
    MergeFromPeer,
    #[error("merge-file include depth limit ({MAX_MERGE_DEPTH}) exceeded")]
    MergeTooDeep,
    /// A `merge` rule named a file that does not exist (fatal in the reference; missing
    /// per-directory files are simply skipped).
    #[error("failed to open merge file")]
    MergeFileMissing,
    #[error("merge file larger than {MAX_MERGE_FILE_BYTES} bytes")]
    MergeFileTooLarge,
    #[error("per-directory merge files in force add up to more than {MAX_LIVE_MERGE_BYTES} bytes")]
    MergeFilesTooLarge,
    #[error("more than {MAX_DIR_MERGES} per-directory merge files")]
    TooManyDirMerges,
    #[error("more than {MAX_LIVE_RULES} filter rules")]
    TooManyRules,
    #[error("directories nested deeper than {MAX_DIR_DEPTH}")]
    TooDeep,
}

/// Which end of the transfer is asking: sender-side rules (`hide`/`show`, `s`) decide what
/// goes into the file list; receiver-side ones (`protect`/`risk`, `r`) what `--delete`
/// may remove. Rules without a side apply to both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Sender,
    Receiver,
}

/// The outcome of the first rule that matched, if any. `NoMatch` means included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Include,
    Exclude,
    NoMatch,
}

/// One name to test.
#[derive(Clone, Copy, Debug)]
pub struct Query<'a> {
    /// Relative to the transfer root, '/'-separated.
    pub path: &'a [u8],
    pub is_dir: bool,
    pub side: Side,
    /// Set while the receiver looks into a directory it is deleting: perishable rules
    /// (`p`, and the default CVS list from protocol 30) then protect nothing, so a
    /// directory gone from the sender is not kept alive by, say, a stray `*.o`.
    pub ignore_perishable: bool,
    /// `path` is an extended-attribute name: only `x` rules apply to it, and only to it.
    pub xattr: bool,
}

impl<'a> Query<'a> {
    pub fn new(path: &'a [u8], is_dir: bool, side: Side) -> Self {
        Query { path, is_dir, side, ignore_perishable: false, xattr: false }
    }
}

/// How rule text is to be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseOptions {
    /// The negotiated protocol: before 29 only `+ `/`- ` prefixes exist; from 30 the CVS
    /// default list is perishable.
    pub protocol: i32,
    /// `--delete-excluded`: rules without a side become sender-only, so the receiver may
    /// delete what they exclude.
    pub delete_excluded: bool,
    /// `--from0` reached the server (it always does with `--files-from=-`): merge files
    /// are then split at NUL bytes rather than line ends, as the reference splits them.
    pub from0: bool,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions { protocol: 32, delete_excluded: false, from0: false }
    }
}

/// The module's filter parameters from rsyncd.conf. The `*_from` fields hold the named
/// files' contents, read by the daemon (their absence is a configuration error).
#[derive(Clone, Copy, Debug, Default)]
pub struct DaemonFilterParams<'a> {
    pub filter: Option<&'a [u8]>,
    pub include_from: Option<&'a [u8]>,
    pub include: Option<&'a [u8]>,
    pub exclude_from: Option<&'a [u8]>,
    pub exclude: Option<&'a [u8]>,
}

/// Reads a file for a merge rule: `Some(contents)` or `None` if it does not exist (or the
/// daemon will not show it: one its own filter excludes must look absent).
pub type ReadFile<'r> = dyn FnMut(&[u8]) -> Option<Vec<u8>> + 'r;

/// Reads the filter list a client sends: `int len, len bytes` per rule until a zero
/// length. If the list is not all there yet this is [`WireError::Incomplete`] with the
/// reader put back where the list starts.
pub fn decode_list(r: &mut Reader) -> Result<Vec<Vec<u8>>, WireError> {
    let start = r.position();
    let res = decode_rules(r);
    if res == Err(WireError::Incomplete) {
        r.rewind(start);
    }
    res
}

fn decode_rules(r: &mut Reader) -> Result<Vec<Vec<u8>>, WireError> {
    let mut rules = Vec::new();
    let mut total = 0usize;
    loop {
        let len = r.i32_in(0, MAX_RULE_LEN as i32, "filter rule length")? as usize;
        if len == 0 {
            return Ok(rules);
        }
        if rules.len() >= MAX_WIRE_RULES {
            return Err(WireError::Invalid(format!("more than {MAX_WIRE_RULES} filter rules")));
        }
        total += len;
        if total > MAX_WIRE_BYTES {
            return Err(WireError::Invalid(format!("filter rules exceed {MAX_WIRE_BYTES} bytes")));
        }
        rules.push(r.bytes(len)?.to_vec());
    }
}

/// Writes a filter list as a client sends it.
pub fn encode_list<R: AsRef<[u8]>>(rules: &[R], out: &mut Vec<u8>) {
    for rule in rules {
        let rule = rule.as_ref();
        if rule.is_empty() {
            continue;
        }
        put_i32(out, rule.len() as i32);
        out.extend_from_slice(rule);
    }
    put_i32(out, 0);
}

/// Whether the client sends a filter list at all (recv_filter_list): always to a sending
/// server; to a receiving one only if it will use it, for deletion or pruning. Any
/// `--delete*` option, `--delete-excluded` included, counts as `delete`.
pub fn client_sends_list(
    server_is_sender: bool,
    prune_empty_dirs: bool,
    delete: bool,
    delete_excluded: bool,
    protocol: i32,
) -> bool {
    let delete = delete || delete_excluded;
    server_is_sender || prune_empty_dirs || (delete && (!delete_excluded || protocol >= 29))
}

#[derive(Debug)]
struct Rule {
    /// As matched: an anchoring '/' first, a merge file's directory or "/***" folded in.
    pattern: Vec<u8>,
    /// The pattern past any anchoring '/', compiled when it has wildcards.
    wild: Option<Pattern>,
    flags: u32,
    slash_cnt: usize,
}

#[derive(Clone, Debug)]
enum Entry {
    Rule(Rc<Rule>),
    /// `-C`: the CVS default list goes here.
    Cvs(u32),
    /// A per-directory merge file's rules go here.
    DirMerge {
        slot: usize,
        flags: u32,
    },
}

/// One per-directory merge file and the rules read from it on the way down.
#[derive(Debug)]
struct Slot {
    /// The file name to look for in each directory (a path until first set up).
    name: Vec<u8>,
    /// The merge rule's flags, which its files' rules inherit from.
    flags: u32,
    needs_setup: bool,
    /// Cleared when the rule that created it is cleared away: a later rule may then
    /// register the same name again.
    active: bool,
    /// Rules per directory, outermost first; matched innermost first.
    chain: Chain,
    /// The directory being read.
    pending: Vec<Entry>,
}

/// A per-directory merge file's rules, one shared chunk per directory on the way down,
/// so entering a directory copies pointers, not rules.
type Chain = Vec<Rc<Vec<Entry>>>;

/// What `leave_dir` puts back: the slots that existed on entry, each with its chain,
/// whether it was active and whether it still awaited its first setup.
#[derive(Debug)]
struct Frame {
    slots_len: usize,
    saved: Vec<(Chain, bool, bool)>,
    /// `merged_bytes` before the directory was entered.
    merged_bytes: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Top,
    Slot(usize),
    Cvs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MergeBase {
    /// From the peer: refused.
    Refuse,
    /// From rsyncd.conf: the name as written.
    Raw,
    /// From a file in the module: resolved inside the module.
    Module,
}

struct Env<'a, 'r> {
    /// The module-relative directory anchored rules and relative merge names refer to.
    anchor: &'a [u8],
    /// Reading parent directories' files ahead of the transfer root.
    dirscan: bool,
    base: MergeBase,
    read: Option<&'a mut ReadFile<'r>>,
    depth: usize,
}

/// An ordered filter list plus the per-directory state that `enter_dir`/`leave_dir` keep.
///
/// A daemon holds two: its module's ([`FilterList::daemon`]) and the client's
/// ([`FilterList::from_wire`], then [`FilterList::add_cvs_exclude`] if the client passed
/// `-C`). As the sender it tests every name it would list with [`Side::Sender`] against
/// both, and neither lists nor descends into what either excludes; a stock client sends
/// it only rules without a side and sender-side ones (`hide`/`show`, `s`). As the
/// receiver it tests names against the module's list before writing them (a module
/// exclude makes the file as good as nonexistent), and, for `--delete` and
/// `--prune-empty-dirs`, tests the names in its destination with [`Side::Receiver`]
/// against both: an excluded name is protected from deletion (`protect`/`risk`, `r`, and
/// rules without a side), perishable rules aside inside a directory being deleted. The
/// stock client leaves the other side's rules out of what it sends; a rule that arrives
/// for the other side anyway is ignored here.
#[derive(Debug)]
pub struct FilterList {
    entries: Vec<Entry>,
    slots: Vec<Slot>,
    cvs: Vec<Entry>,
    cvs_ready: bool,
    root: Vec<u8>,
    frames: Vec<Frame>,
    /// Bytes of the per-directory merge files read for the directories entered.
    merged_bytes: usize,
    opts: ParseOptions,
    dir_merge_seen: bool,
}

impl Default for FilterList {
    fn default() -> Self {
        FilterList::new(ParseOptions::default())
    }
}

impl FilterList {
    pub fn new(opts: ParseOptions) -> Self {
        FilterList {
            entries: Vec::new(),
            slots: Vec::new(),
            cvs: Vec::new(),
            cvs_ready: false,
            root: Vec::new(),
            frames: Vec::new(),
            merged_bytes: 0,
            opts,
            dir_merge_seen: false,
        }
    }

    /// The list a client sent ([`decode_list`]), parsed as the reference's server parses
    /// it.
    pub fn from_wire<R: AsRef<[u8]>>(rules: &[R], opts: ParseOptions) -> Result<Self, FilterError> {
        let mut list = FilterList::new(opts);
        for rule in rules {
            list.add_wire_rule(rule.as_ref())?;
        }
        Ok(list)
    }

    /// Appends one rule as received from the client.
    pub fn add_wire_rule(&mut self, rule: &[u8]) -> Result<(), FilterError> {
        let xflags = if self.opts.protocol < 29 { X_OLD_PREFIXES } else { 0 };
        let mut env = Env { anchor: b"", dirscan: false, base: MergeBase::Refuse, read: None, depth: 0 };
        self.parse_str(Target::Top, rule, 0, xflags, &mut env)
    }

    /// What the server adds for `--cvs-exclude` after the client's rules: the
    /// per-directory `.cvsignore` files and the default list when it sends, only the
    /// former (and only before protocol 29) when it receives, since a newer sending
    /// client has already put both in the list it sent.
    pub fn add_cvs_exclude(&mut self, server_is_sender: bool) -> Result<(), FilterError> {
        let mut env = Env { anchor: b"", dirscan: false, base: MergeBase::Refuse, read: None, depth: 0 };
        if server_is_sender || self.opts.protocol < 29 {
            self.parse_str(Target::Top, b":C", 0, 0, &mut env)?;
        }
        if server_is_sender {
            self.parse_str(Target::Top, b"-C", 0, 0, &mut env)?;
        }
        Ok(())
    }

    /// The module's own filter (daemon_filter_list): `filter`, then `include from`,
    /// `include`, `exclude from`, `exclude`, each read as the reference reads it. A name
    /// it excludes does not exist as far as the client can tell, on either side; its
    /// includes only stop its own later rules. The client's list cannot override it.
    ///
    /// Rules with a slash match the module-relative path, and `dir/` excludes hide the
    /// whole subtree. `read` serves `merge` rules in the `filter` parameter, with the
    /// name as written there.
    pub fn daemon(params: &DaemonFilterParams, opts: ParseOptions, read: &mut ReadFile) -> Result<Self, FilterError> {
        let mut list = FilterList::new(opts);
        let x = X_ABS_IF_SLASH | X_DIR2WILD3;
        let mut env = Env { anchor: b"", dirscan: false, base: MergeBase::Raw, read: Some(read), depth: 0 };
        if let Some(p) = params.filter {
            list.parse_str(Target::Top, p, WORD_SPLIT, x, &mut env)?;
        }
        if let Some(p) = params.include_from {
            list.parse_file(Target::Top, p, INCLUDE, x | X_OLD_PREFIXES, &mut env)?;
        }
        if let Some(p) = params.include {
            list.parse_str(Target::Top, p, INCLUDE | WORD_SPLIT, x | X_OLD_PREFIXES, &mut env)?;
        }
        if let Some(p) = params.exclude_from {
            list.parse_file(Target::Top, p, 0, x | X_OLD_PREFIXES, &mut env)?;
        }
        if let Some(p) = params.exclude {
            list.parse_str(Target::Top, p, WORD_SPLIT, x | X_OLD_PREFIXES, &mut env)?;
        }
        Ok(list)
    }

    /// Sets the transfer root, relative to the module root ("" when they coincide):
    /// absolute-path rules see it in front of every path.
    pub fn set_root(&mut self, root: &[u8]) {
        self.root = clean_path(root);
    }

    pub fn root(&self) -> &[u8] {
        &self.root
    }

    /// No rules at all (the reference skips filtering then).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// A per-directory merge rule was received: the receiver then cannot second-guess
    /// the sender's filtering (the reference's trust_sender_filter), since it cannot see
    /// the sender's merge files.
    pub fn has_dir_merge(&self) -> bool {
        self.dir_merge_seen
    }

    /// Tests a path relative to the transfer root.
    pub fn matches(&self, path: &[u8], is_dir: bool, side: Side) -> Verdict {
        self.check(&Query::new(path, is_dir, side))
    }

    /// `matches` with every knob.
    pub fn check(&self, q: &Query) -> Verdict {
        self.check_with_root(q, &self.root)
    }

    /// Tests a module-relative path, whatever the transfer root: how the daemon's list
    /// judges request paths and merge-file names.
    pub fn check_in_module(&self, q: &Query) -> Verdict {
        self.check_with_root(q, b"")
    }

    /// Whether a module-relative path, or any directory on the way to it, is excluded:
    /// what the daemon checks before touching a path its list may hide.
    pub fn hides_path(&self, path: &[u8], is_dir: bool, side: Side) -> bool {
        let path = clean_path(path);
        for (i, _) in path.iter().enumerate().filter(|&(_, &b)| b == b'/') {
            if self.check_in_module(&Query::new(&path[..i], true, side)) == Verdict::Exclude {
                return true;
            }
        }
        !path.is_empty() && self.check_in_module(&Query::new(&path, is_dir, side)) == Verdict::Exclude
    }

    fn check_with_root(&self, q: &Query, root: &[u8]) -> Verdict {
        match self.check_entries(&self.entries, q, root, 0) {
            1 => Verdict::Include,
            -1 => Verdict::Exclude,
            _ => Verdict::NoMatch,
        }
    }

    /// First match wins, descending into merge files' rules where their rule stands.
    /// `min_slot` only lets the descent go to slots created later, which is all a merge
    /// file can refer to, so it always ends.
    fn check_entries(&self, entries: &[Entry], q: &Query, root: &[u8], min_slot: usize) -> i8 {
        for entry in entries {
            match entry {
                Entry::Rule(rule) => {
                    if q.ignore_perishable && rule.flags & PERISHABLE != 0 {
                        continue;
                    }
                    if rule_matches(rule, q, root) {
                        return if rule.flags & INCLUDE != 0 { 1 } else { -1 };
                    }
                }
                Entry::Cvs(flags) => {
                    if q.ignore_perishable && flags & PERISHABLE != 0 {
                        continue;
                    }
                    let rc = self.check_entries(&self.cvs, q, root, usize::MAX);
                    if rc != 0 {
                        return rc;
                    }
                }
                Entry::DirMerge { slot, flags } => {
                    if (q.ignore_perishable && flags & PERISHABLE != 0) || *slot < min_slot {
                        continue;
                    }
                    let Some(s) = self.slots.get(*slot) else { continue };
                    for chunk in [&s.pending].into_iter().chain(s.chain.iter().rev().map(|c| &**c)) {
                        let rc = self.check_entries(chunk, q, root, slot + 1);
                        if rc != 0 {
                            return rc;
                        }
                    }
                }
            }
        }
        0
    }

    /// Enters `dir` (relative to the transfer root; "" for the root itself) before its
    /// entries are tested, reading each active per-directory merge file there through
    /// `read`, which gets the module-relative path of the file. A merge name with a
    /// directory part that is an ancestor of this directory (like `-F`'s
    /// `/.rsync-filter`) first has that file read in each directory from there down.
    /// Call [`FilterList::leave_dir`] after the directory's entries, subdirectories
    /// included, are done.
    ///
    /// On error nothing was entered (do not call `leave_dir`); the reference treats
    /// these errors as fatal to the transfer.
    pub fn enter_dir(&mut self, dir: &[u8], read: &mut ReadFile) -> Result<(), FilterError> {
        if self.frames.len() >= MAX_DIR_DEPTH {
            return Err(FilterError::TooDeep);
        }
        let cur = clean_path(&join(&self.root, dir));
        let saved = self.slots.iter().map(|s| (s.chain.clone(), s.active, s.needs_setup)).collect();
        self.frames.push(Frame { slots_len: self.slots.len(), saved, merged_bytes: self.merged_bytes });
        // Counted as the files are read, so that one directory's files (its own, an
        // ancestor scan's, nested merges) stop being read once over the budget.
        let mut merged = self.merged_bytes;
        let mut over = false;
        let mut counting = |path: &[u8]| {
            if over {
                return None;
            }
            let contents = read(path)?;
            merged = merged.saturating_add(contents.len());
            if merged > MAX_LIVE_MERGE_BYTES {
                over = true;
                return None;
            }
            Some(contents)
        };
        let res = self.read_dir_merges(&cur, &mut counting);
        let res = match (res, over) {
            (_, true) => Err(FilterError::MergeFilesTooLarge),
            (Ok(()), false) => {
                self.merged_bytes = merged;
                Ok(())
            }
            (Err(e), false) => Err(e),
        };
        if res.is_err() {
            self.restore_frame(true);
        }
        res
    }

    /// Leaves the directory last entered: its merge files' rules, and merge files named
    /// in them, no longer apply.
    pub fn leave_dir(&mut self) {
        self.restore_frame(false);
    }

    /// Directories entered and not yet left.
    pub fn depth(&self) -> usize {
        self.frames.len()
    }

    fn restore_frame(&mut self, undo_setup: bool) {
        let Some(frame) = self.frames.pop() else { return };
        self.merged_bytes = frame.merged_bytes;
        self.slots.truncate(frame.slots_len);
        for (slot, (chain, active, needs_setup)) in self.slots.iter_mut().zip(frame.saved) {
            slot.chain = chain;
            slot.active = active;
            slot.pending.clear();
            if undo_setup {
                slot.needs_setup = needs_setup;
            }
        }
    }

    fn read_dir_merges(&mut self, cur: &[u8], read: &mut ReadFile) -> Result<(), FilterError> {
        // Merge rules read here may add slots, which this same directory must read too.
        let mut i = 0;
        while i < self.slots.len() {
            if self.slots[i].active {
                if self.slots[i].flags & NO_INHERIT != 0 {
                    self.slots[i].chain.clear();
                }
                if self.slots[i].needs_setup {
                    self.slots[i].needs_setup = false;
                    self.set_up_slot(i, cur, read)?;
                }
                let path = join(cur, &self.slots[i].name);
                if !self.slots[i].name.is_empty() && path.len() < MAXPATHLEN {
                    if let Some(contents) = read(&path) {
                        self.read_slot_file(i, &contents, cur, false, read)?;
                    }
                }
            }
            i += 1;
        }
        let live = self.entries.len()
            + self.cvs.len()
            + self.slots.iter().flat_map(|s| s.chain.iter()).map(|c| c.len()).sum::<usize>();
        if live > MAX_LIVE_RULES {
            return Err(FilterError::TooManyRules);
        }
        Ok(())
    }

    /// A merge name with a directory part is reduced to its file name; if that directory
    /// is this one's ancestor, the file is read in each directory from it down to this
    /// one's parent, those rules becoming inherited ones (setup_merge_file).
    fn set_up_slot(&mut self, i: usize, cur: &[u8], read: &mut ReadFile) -> Result<(), FilterError> {
        let name = self.slots[i].name.clone();
        if !name.contains(&b'/') {
            return Ok(());
        }
        let full = if name.first() == Some(&b'/') { clean_path(&name) } else { clean_path(&join(cur, &name)) };
        let (dir, base) = match full.iter().rposition(|&b| b == b'/') {
            Some(p) => (full[..p].to_vec(), full[p + 1..].to_vec()),
            None => (Vec::new(), full.clone()),
        };
        self.slots[i].name = base.clone();
        if base.is_empty() || !is_ancestor(&dir, cur) {
            return Ok(());
        }
        let mut scan = dir;
        while scan.len() < cur.len() {
            let path = join(&scan, &base);
            if path.len() < MAXPATHLEN {
                if let Some(contents) = read(&path) {
                    self.read_slot_file(i, &contents, &scan, true, read)?;
                }
            }
            if self.slots[i].flags & NO_INHERIT != 0 {
                self.slots[i].chain.clear();
            }
            let next_end = cur[scan.len() + usize::from(!scan.is_empty())..]
                .iter()
                .position(|&b| b == b'/')
                .map_or(cur.len(), |p| p + scan.len() + usize::from(!scan.is_empty()));
            scan = cur[..next_end].to_vec();
        }
        Ok(())
    }

    fn read_slot_file(
        &mut self,
        i: usize,
        contents: &[u8],
        dir: &[u8],
        dirscan: bool,
        read: &mut ReadFile,
    ) -> Result<(), FilterError> {
        let template = self.slots[i].flags;
        let mut env = Env { anchor: dir, dirscan, base: MergeBase::Module, read: Some(read), depth: 1 };
        let res = self.parse_file(Target::Slot(i), contents, template, X_ANCHORED2ABS, &mut env);
        let chunk = std::mem::take(&mut self.slots[i].pending);
        if !chunk.is_empty() {
            self.slots[i].chain.push(Rc::new(chunk));
        }
        res
    }

    /// The list's rules as `send_rules` would spell them: a prefix with modifiers, the
    /// pattern, a '/' for directory-only rules. Per-directory rules read so far are not
    /// included.
    pub fn rule_texts(&self) -> Vec<Vec<u8>> {
        self.entries
            .iter()
            .map(|e| match e {
                Entry::Rule(r) => {
                    let mut out = rule_prefix(r.flags);
                    out.extend_from_slice(&r.pattern);
                    if r.flags & DIRECTORY != 0 {
                        out.push(b'/');
                    }
                    out
                }
                Entry::Cvs(flags) => rule_prefix(*flags),
                Entry::DirMerge { slot, flags } => {
                    let mut out = rule_prefix(*flags);
                    if let Some(s) = self.slots.get(*slot) {
                        out.extend_from_slice(&s.name);
                    }
                    out
                }
            })
            .collect()
    }

    // ---- parsing ----

    fn parse_str(
        &mut self,
        target: Target,
        text: &[u8],
        template: u32,
        xflags: u32,
        env: &mut Env,
    ) -> Result<(), FilterError> {
        // The reference parses C strings: a NUL ends the text.
        let text = match text.iter().position(|&b| b == 0) {
            Some(n) => &text[..n],
            None => text,
        };
        let mut pos = 0;
        while let Some((mut flags, start, len)) = self.parse_rule_tok(text, &mut pos, template, xflags)? {
            let mut pat: &[u8] = &text[start..start + len];
            if pat.len() >= MAXPATHLEN {
                continue;
            }
            if flags & CLEAR_LIST != 0 {
                self.clear(target);
                continue;
            }
            if flags & MERGE_FILE != 0 {
                if pat.is_empty() {
                    pat = b".cvsignore";
                }
                if flags & EXCLUDE_SELF != 0 {
                    let base = match pat.iter().rposition(|&b| b == b'/') {
                        Some(p) => &pat[p + 1..],
                        None => pat,
                    };
                    self.add_rule(target, base, 0, 0, env.anchor)?;
                    flags &= !EXCLUDE_SELF;
                }
                if flags & PERDIR_MERGE != 0 {
                    if env.dirscan {
                        // Found while reading a parent directory: pin the name to it.
                        let mut full = vec![b'/'];
                        full.extend_from_slice(&clean_path(&join(env.anchor, pat)));
                        self.add_rule(target, &full, flags, 0, env.anchor)?;
                        continue;
                    }
                } else {
                    self.merge_file(target, pat, flags, env)?;
                    continue;
                }
            }
            self.add_rule(target, pat, flags, xflags, env.anchor)?;
            if flags & CVS_IGNORE != 0 && flags & MERGE_FILE == 0 {
                self.load_cvs_defaults(flags)?;
            }
        }
        Ok(())
    }

    /// One rule's prefix and modifiers (parse_rule_tok): its flags and where its pattern
    /// lies in `s`, or `None` at the end of the text.
    fn parse_rule_tok(
        &mut self,
        s: &[u8],
        pos: &mut usize,
        template: u32,
        xflags: u32,
    ) -> Result<Option<(u32, usize, usize)>, FilterError> {
        let at = |i: usize| s.get(i).copied().unwrap_or(0);
        let mut i = *pos;
        if template & WORD_SPLIT != 0 {
            while i < s.len() && is_space(s[i]) {
                i += 1;
            }
        }
        if i >= s.len() {
            *pos = i;
            return Ok(None);
        }
        let mut flags = template & FROM_CONTAINER;
        if template & NO_PREFIXES != 0 {
            if s[i] == b'!' && template & CVS_IGNORE != 0 {
                flags |= CLEAR_LIST; // confirmed below only if nothing follows
            }
        } else if xflags & X_OLD_PREFIXES != 0 {
            if s[i] == b'-' && at(i + 1) == b' ' {
                flags &= !INCLUDE;
                i += 2;
            } else if s[i] == b'+' && at(i + 1) == b' ' {
                flags |= INCLUDE;
                i += 2;
            } else if s[i] == b'!' {
                flags |= CLEAR_LIST;
            }
        } else {
            let long = |name: &[u8], short: u8| -> Result<(u8, usize), FilterError> {
                long_name(s, i, name).map(|j| (short, j)).ok_or(FilterError::UnknownRule)
            };
            let (ch, j) = match s[i] {
                b'c' => long(b"clear", b'!')?,
                b'd' => long(b"dir-merge", b':')?,
                b'e' => long(b"exclude", b'-')?,
                b'h' => long(b"hide", b'H')?,
                b'i' => long(b"include", b'+')?,
                b'm' => long(b"merge", b'.')?,
                b'p' => long(b"protect", b'P')?,
                b'r' => long(b"risk", b'R')?,
                b's' => long(b"show", b'S')?,
                c => (c, if at(i + 1) == b',' { i + 1 } else { i }),
            };
            i = j;
            let mut side_in_prefix = false;
            match ch {
                b':' => {
                    self.dir_merge_seen = true;
                    flags |= PERDIR_MERGE | MERGE_FILE;
                }
                b'.' => flags |= MERGE_FILE,
                b'+' => flags |= INCLUDE,
                b'-' => {}
                b'S' | b'H' => {
                    if ch == b'S' {
                        flags |= INCLUDE;
                    }
                    flags |= SENDER_SIDE;
                    side_in_prefix = true;
                }
                b'R' | b'P' => {
                    if ch == b'R' {
                        flags |= INCLUDE;
                    }
                    flags |= RECEIVER_SIDE;
                    side_in_prefix = true;
                }
                b'!' => flags |= CLEAR_LIST,
                _ => return Err(FilterError::UnknownRule),
            }
            if ch != b'!' {
                loop {
                    i += 1;
                    let c = at(i);
                    if c == 0 || c == b' ' || c == b'_' {
                        break;
                    }
                    if template & WORD_SPLIT != 0 && is_space(c) {
                        i -= 1;
                        break;
                    }
                    let merge = flags & MERGE_FILE != 0;
                    match c {
                        b'-' | b'+' if merge && flags & NO_PREFIXES == 0 => {
                            flags |= NO_PREFIXES | if c == b'+' { INCLUDE } else { 0 };
                        }
                        b'/' => flags |= ABS_PATH,
                        // Negation belongs to a pattern, not to a whole file's defaults.
                        b'!' if !merge => flags |= NEGATE,
                        b'C' if flags & NO_PREFIXES == 0 && !side_in_prefix => {
                            flags |= NO_PREFIXES | WORD_SPLIT | NO_INHERIT | CVS_IGNORE;
                        }
                        b'e' if merge => flags |= EXCLUDE_SELF,
                        b'n' if merge => flags |= NO_INHERIT,
                        b'p' => flags |= PERISHABLE,
                        b'r' if !side_in_prefix => flags |= RECEIVER_SIDE,
                        b's' if !side_in_prefix => flags |= SENDER_SIDE,
                        b'w' if merge => flags |= WORD_SPLIT,
                        b'x' => flags |= XATTR,
                        _ => return Err(FilterError::InvalidModifier),
                    }
                }
            }
            if i < s.len() {
                i += 1;
            }
        }
        if template & SIDES != 0 {
            if flags & SIDES != 0 {
                return Err(FilterError::SidedRuleInSidedMerge);
            }
            flags |= template & SIDES;
        }
        let len = if template & WORD_SPLIT != 0 {
            s[i.min(s.len())..].iter().position(|&b| is_space(b)).unwrap_or(s.len().saturating_sub(i))
        } else {
            s.len().saturating_sub(i)
        };
        if flags & CLEAR_LIST != 0 {
            if template & NO_PREFIXES == 0 && xflags & X_OLD_PREFIXES == 0 && len > 0 {
                return Err(FilterError::ClearWithArgument);
            }
            if len > 1 {
                flags &= !CLEAR_LIST;
            }
        } else if len == 0 && flags & CVS_IGNORE == 0 {
            return Err(FilterError::UnexpectedEnd);
        }
        if self.opts.delete_excluded && flags & (SIDES | MERGE_FILE | PERDIR_MERGE) == 0 {
            flags |= SENDER_SIDE;
        }
        let start = i.min(s.len());
        *pos = start + len;
        Ok(Some((flags, start, len)))
    }

    /// Turns a parsed rule into an entry of `target` (add_rule).
    fn add_rule(
        &mut self,
        target: Target,
        pat: &[u8],
        mut flags: u32,
        xflags: u32,
        anchor: &[u8],
    ) -> Result<(), FilterError> {
        let mut pat = pat;
        if pat.len() > 1 && pat[pat.len() - 1] == b'/' {
            pat = &pat[..pat.len() - 1];
            flags |= DIRECTORY;
        }
        let mut slash_cnt = pat.iter().filter(|&&b| b == b'/').count();
        let mut pattern = Vec::with_capacity(pat.len() + anchor.len() + 5);
        let leading = pat.first() == Some(&b'/');
        if flags & (ABS_PATH | MERGE_FILE) == 0
            && ((xflags & (X_ANCHORED2ABS | X_ABS_IF_SLASH) != 0 && leading)
                || (xflags & X_ABS_IF_SLASH != 0 && slash_cnt > 0))
        {
            flags |= ABS_PATH;
            if leading && !anchor.is_empty() {
                // Anchored to the merge file's directory, which sits in front.
                pattern.push(b'/');
                pattern.extend_from_slice(anchor);
                slash_cnt += 1 + anchor.iter().filter(|&&b| b == b'/').count();
            }
        }
        pattern.extend_from_slice(pat);
        if xflags & X_DIR2WILD3 != 0 && flags & DIRECTORY != 0 && flags & INCLUDE == 0 {
            flags &= !DIRECTORY;
            pattern.extend_from_slice(b"/***");
            slash_cnt += 1;
        }
        if pattern.iter().any(|&b| b == b'*' || b == b'[' || b == b'?') {
            flags |= WILD;
            if pattern.windows(2).any(|w| w == b"**") {
                flags |= WILD2;
                if pattern.starts_with(b"**") {
                    flags |= WILD2_PREFIX;
                }
                if pattern.ends_with(b"***") {
                    flags |= WILD3_SUFFIX;
                }
            }
        }
        let entry = if flags & PERDIR_MERGE != 0 {
            let base = basename(&pattern);
            let dup = self.slots.iter().any(|s| s.active && basename(&s.name) == base);
            if dup {
                return Ok(());
            }
            if self.slots.len() >= MAX_DIR_MERGES {
                return Err(FilterError::TooManyDirMerges);
            }
            self.slots.push(Slot {
                name: pattern,
                flags,
                needs_setup: true,
                active: true,
                chain: Vec::new(),
                pending: Vec::new(),
            });
            Entry::DirMerge { slot: self.slots.len() - 1, flags }
        } else if flags & CVS_IGNORE != 0 {
            Entry::Cvs(flags)
        } else {
            let body = if pattern.first() == Some(&b'/') { &pattern[1..] } else { &pattern[..] };
            let wild = (flags & WILD != 0).then(|| Pattern::compile(body, false));
            Entry::Rule(Rc::new(Rule { pattern, wild, flags, slash_cnt }))
        };
        let list = match target {
            Target::Top => &mut self.entries,
            Target::Slot(i) => &mut self.slots[i].pending,
            Target::Cvs => &mut self.cvs,
        };
        if list.len() >= MAX_LIVE_RULES {
            return Err(FilterError::TooManyRules);
        }
        list.push(entry);
        Ok(())
    }

    /// A `!` rule: empties the list being built, a per-directory one including what it
    /// inherited; merge files registered by the cleared rules stop being looked for.
    fn clear(&mut self, target: Target) {
        let dropped = match target {
            Target::Top => std::mem::take(&mut self.entries),
            Target::Slot(i) => {
                self.slots[i].chain.clear();
                std::mem::take(&mut self.slots[i].pending)
            }
            Target::Cvs => std::mem::take(&mut self.cvs),
        };
        for entry in dropped {
            if let Entry::DirMerge { slot, .. } = entry {
                if let Some(s) = self.slots.get_mut(slot) {
                    s.active = false;
                }
            }
        }
    }

    /// The default CVS list, once per list, with the flags of the first `-C` rule (and
    /// perishable from protocol 30). `$HOME/.cvsignore` and `$CVSIGNORE`, which the
    /// reference adds from its own environment, mean nothing to a daemon and are left out.
    fn load_cvs_defaults(&mut self, flags: u32) -> Result<(), FilterError> {
        if self.cvs_ready {
            return Ok(());
        }
        self.cvs_ready = true;
        let template = flags | if self.opts.protocol >= 30 { PERISHABLE } else { 0 };
        let text = DEFAULT_CVS_IGNORE.join(" ");
        let mut env = Env { anchor: b"", dirscan: false, base: MergeBase::Refuse, read: None, depth: 0 };
        self.parse_str(Target::Cvs, text.as_bytes(), template, 0, &mut env)
    }

    /// A `merge` (`.`) rule: the file's rules go in its place, taking its modifiers as
    /// defaults.
    fn merge_file(&mut self, target: Target, name: &[u8], template: u32, env: &mut Env) -> Result<(), FilterError> {
        let path = match env.base {
            MergeBase::Refuse => return Err(FilterError::MergeFromPeer),
            MergeBase::Raw => name.to_vec(),
            MergeBase::Module => {
                if name.first() == Some(&b'/') {
                    clean_path(name)
                } else if env.dirscan || name.contains(&b'/') {
                    clean_path(&join(env.anchor, name))
                } else {
                    // A bare name is opened from the working directory: the transfer root.
                    clean_path(&join(&self.root, name))
                }
            }
        };
        if env.depth >= MAX_MERGE_DEPTH {
            return Err(FilterError::MergeTooDeep);
        }
        let contents = match env.read.as_mut() {
            Some(read) => read(&path).ok_or(FilterError::MergeFileMissing)?,
            None => return Err(FilterError::MergeFileMissing),
        };
        env.depth += 1;
        let res = self.parse_file(target, &contents, template, 0, env);
        env.depth -= 1;
        res
    }

    /// A merge file's contents: one rule per line (or per word with `w`), skipping empty
    /// lines and, when not word-split, `;`/`#` comments (parse_filter_file).
    fn parse_file(
        &mut self,
        target: Target,
        contents: &[u8],
        template: u32,
        xflags: u32,
        env: &mut Env,
    ) -> Result<(), FilterError> {
        if contents.len() > MAX_MERGE_FILE_BYTES {
            return Err(FilterError::MergeFileTooLarge);
        }
        let word_split = template & WORD_SPLIT != 0;
        let from0 = self.opts.from0;
        let mut i = 0;
        while i < contents.len() {
            let start = i;
            while i < contents.len() {
                let c = contents[i];
                if (word_split && is_space(c)) || (if from0 { c == 0 } else { c == b'\n' || c == b'\r' }) {
                    break;
                }
                i += 1;
            }
            let mut line = &contents[start..i];
            if i < contents.len() {
                // CRLF ends one line, not two (word splitting makes both separators).
                if !from0 && !word_split && contents[i] == b'\r' && contents.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                i += 1;
            }
            if line.len() > MAX_RULE_LEN {
                // The reference's line buffer overflows: the line is dropped.
                continue;
            }
            if let Some(n) = line.iter().position(|&b| b == 0) {
                line = &line[..n];
            }
            if !line.is_empty() && (word_split || (line[0] != b';' && line[0] != b'#')) {
                self.parse_str(target, line, template, xflags, env)?;
            }
        }
        Ok(())
    }
}

/// Whether a name stays out of the transfer (name_is_excluded): an exclude in the module's
/// list hides it whatever the client asked, an include there settles nothing, and
/// otherwise the client's list decides.
pub fn is_excluded(daemon: &FilterList, client: &FilterList, q: &Query) -> bool {
    daemon.check(q) == Verdict::Exclude || client.check(q) == Verdict::Exclude
}

/// Whether `rule` selects the queried name (rule_matches): negation applied, but not for
/// names it cannot apply to (other side, xattr or not, empty name).
fn rule_matches(rule: &Rule, q: &Query, root: &[u8]) -> bool {
    let lead = q.path.first() == Some(&b'/');
    let name = if lead { &q.path[1..] } else { q.path };
    if name.is_empty() || !applies_to(rule.flags, q.side) || q.xattr != (rule.flags & XATTR != 0) {
        return false;
    }
    pattern_hits(rule, q.is_dir, name, lead, root) != (rule.flags & NEGATE != 0)
}

fn applies_to(flags: u32, side: Side) -> bool {
    match flags & SIDES {
        SENDER_SIDE => side == Side::Sender,
        RECEIVER_SIDE => side == Side::Receiver,
        _ => true,
    }
}

fn pattern_hits(rule: &Rule, is_dir: bool, name: &[u8], lead: bool, root: &[u8]) -> bool {
    let f = rule.flags;
    let mut name = name;
    let mut head: &[u8] = b"";
    let mut head_slash = false;
    if rule.slash_cnt == 0 && f & WILD2 == 0 {
        // No slash and no "**": only the last component can match.
        name = basename(name);
    } else if f & ABS_PATH != 0 && !lead && !root.is_empty() {
        head = root;
        head_slash = true;
    } else if f & WILD2_PREFIX != 0 && !lead {
        // So that a leading "**/" also matches at the very start.
        head = b"/";
    }
    let mut tail: &[u8] = b"";
    if is_dir {
        if f & WILD3_SUFFIX != 0 {
            // So that "dir/***" matches "dir" itself.
            tail = b"/";
        }
    } else if f & DIRECTORY != 0 {
        return false;
    }
    let anchored = rule.pattern.first() == Some(&b'/');
    let pattern = if anchored { &rule.pattern[1..] } else { &rule.pattern[..] };
    let anchor = if !anchored && rule.slash_cnt > 0 && f & WILD2 == 0 {
        Anchor::LastComponents(rule.slash_cnt + 1)
    } else if !anchored && f & WILD2_PREFIX == 0 && f & WILD2 != 0 {
        Anchor::AnySlash
    } else {
        Anchor::Start
    };
    let pieces = !head.is_empty() || !tail.is_empty();
    let text: Cow<[u8]> = if pieces {
        let mut t = Vec::with_capacity(head.len() + 2 + name.len());
        t.extend_from_slice(head);
        if head_slash {
            t.push(b'/');
        }
        t.extend_from_slice(name);
        t.extend_from_slice(tail);
        Cow::Owned(t)
    } else {
        Cow::Borrowed(name)
    };
    if let Some(wild) = &rule.wild {
        wild.matches_at(&text, anchor)
    } else if pieces {
        litmatch(pattern, &text, anchor)
    } else if anchored {
        name == pattern
    } else {
        // A literal matches whole trailing components.
        name.ends_with(pattern) && (name.len() == pattern.len() || name[name.len() - pattern.len() - 1] == b'/')
    }
}

/// The reference's get_rule_prefix, for display.
fn rule_prefix(flags: u32) -> Vec<u8> {
    let mut out = Vec::new();
    out.push(if flags & PERDIR_MERGE != 0 {
        b':'
    } else if flags & INCLUDE != 0 {
        b'+'
    } else {
        b'-'
    });
    let mut add = |bit: u32, c: u8| {
        if flags & bit != 0 {
            out.push(c);
        }
    };
    add(ABS_PATH, b'/');
    add(NEGATE, b'!');
    if flags & CVS_IGNORE != 0 {
        add(CVS_IGNORE, b'C');
    } else {
        add(NO_INHERIT, b'n');
        add(WORD_SPLIT, b'w');
        if flags & NO_PREFIXES != 0 {
            add(NO_PREFIXES, if flags & INCLUDE != 0 { b'+' } else { b'-' });
        }
    }
    add(EXCLUDE_SELF, b'e');
    add(XATTR, b'x');
    add(SENDER_SIDE, b's');
    add(RECEIVER_SIDE, b'r');
    add(PERISHABLE, b'p');
    out.push(b' ');
    out
}

/// A long rule name at `i` (rule_strcmp): the index its modifiers are read after, if the
/// name is followed by a space, '_', ',' or the end.
fn long_name(s: &[u8], i: usize, name: &[u8]) -> Option<usize> {
    if !s[i..].starts_with(name) {
        return None;
    }
    let after = i + name.len();
    match s.get(after) {
        None => Some(after - 1),
        Some(&c) if is_space(c) || c == b'_' => Some(after - 1),
        Some(b',') => Some(after),
        Some(_) => None,
    }
}

/// C's isspace in the C locale.
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn basename(p: &[u8]) -> &[u8] {
    match p.iter().rposition(|&b| b == b'/') {
        Some(i) => &p[i + 1..],
        None => p,
    }
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut out = dir.to_vec();
    if !dir.is_empty() && !name.is_empty() {
        out.push(b'/');
    }
    out.extend_from_slice(name);
    out
}

/// A module-relative path with empty and "." components dropped and ".." applied, never
/// climbing above the module root.
fn clean_path(p: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in p.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join(&b'/')
}

/// Whether directory `a` is `b` or above it (both cleaned, module-relative).
fn is_ancestor(a: &[u8], b: &[u8]) -> bool {
    a.is_empty() || (b.starts_with(a) && (b.len() == a.len() || b[a.len()] == b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeSet, HashMap};

    fn list(rules: &[&str]) -> FilterList {
        FilterList::from_wire(rules, ParseOptions::default()).unwrap()
    }

    fn no_files() -> impl FnMut(&[u8]) -> Option<Vec<u8>> {
        |_: &[u8]| None
    }

    #[test]
    fn wire_list_round_trips_and_waits_for_more() {
        let rules = ["- *.o", "+ /keep/", ": /.rsync-filter"];
        let mut out = Vec::new();
        encode_list(&rules, &mut out);
        let mut r = Reader::new(&out);
        let got = decode_list(&mut r).unwrap();
        assert_eq!(got, rules.iter().map(|r| r.as_bytes().to_vec()).collect::<Vec<_>>());
        assert!(r.is_empty());
        for cut in 0..out.len() {
            let mut r = Reader::new(&out[..cut]);
            assert_eq!(decode_list(&mut r), Err(WireError::Incomplete));
            assert_eq!(r.position(), 0);
        }
        let mut bad = Vec::new();
        put_i32(&mut bad, -3);
        assert!(matches!(decode_list(&mut Reader::new(&bad)), Err(WireError::OutOfRange { .. })));
        let mut big = Vec::new();
        put_i32(&mut big, MAX_RULE_LEN as i32 + 1);
        assert!(matches!(decode_list(&mut Reader::new(&big)), Err(WireError::OutOfRange { .. })));
        let mut many = Vec::new();
        encode_list(&vec!["- x"; MAX_WIRE_RULES + 1], &mut many);
        assert!(matches!(decode_list(&mut Reader::new(&many)), Err(WireError::Invalid(_))));
    }

    #[test]
    fn who_sends_a_list() {
        assert!(client_sends_list(true, false, false, false, 31));
        assert!(!client_sends_list(false, false, false, false, 31));
        assert!(client_sends_list(false, false, true, false, 31));
        assert!(client_sends_list(false, true, false, false, 31));
        assert!(client_sends_list(false, false, false, true, 29));
        assert!(!client_sends_list(false, false, true, true, 28));
    }

    #[test]
    fn rule_syntax() {
        let cases: &[(&str, &str)] = &[
            ("- foo", "- foo"),
            ("+ foo", "+ foo"),
            ("exclude foo", "- foo"),
            ("include foo/", "+ foo/"),
            ("exclude,s foo", "-s foo"),
            ("-s,p foo", "- foo"), // the comma only follows a short name directly
            ("hide foo", "-s foo"),
            ("show foo", "+s foo"),
            ("protect foo", "-r foo"),
            ("risk foo", "+r foo"),
            ("H_foo", "-s foo"),
            ("-_ foo", "-  foo"),
            ("-/ /etc/passwd", "-/ /etc/passwd"),
            ("-! */", "-! */"),
            ("-p *.tmp", "-p *.tmp"),
            ("-x user.*", "-x user.*"),
            ("-sr foo", "-sr foo"),
            ("+,sp foo", "+sp foo"),
            (": /.rsync-filter", ": /.rsync-filter"),
            ("dir-merge,n- .x", ":n- .x"),
            (":C", ":C .cvsignore"),
            ("-C", "-C "),
        ];
        for &(rule, want) in cases {
            let got = FilterList::from_wire(&[rule], ParseOptions::default());
            if rule == "-s,p foo" {
                assert_eq!(got.unwrap_err(), FilterError::InvalidModifier);
                continue;
            }
            let got = got.unwrap_or_else(|e| panic!("{rule}: {e}"));
            let texts: Vec<String> = got.rule_texts().iter().map(|t| String::from_utf8_lossy(t).into_owned()).collect();
            assert_eq!(texts, [want], "{rule}");
        }
        let errors: &[(&str, FilterError)] = &[
            ("x foo", FilterError::UnknownRule),
            ("excludes foo", FilterError::UnknownRule),
            ("-z foo", FilterError::InvalidModifier),
            ("-e foo", FilterError::InvalidModifier),
            (":! foo", FilterError::InvalidModifier),
            ("HC", FilterError::InvalidModifier),
            ("Hs foo", FilterError::InvalidModifier),
            ("-", FilterError::UnexpectedEnd),
            ("- ", FilterError::UnexpectedEnd),
            ("! x", FilterError::ClearWithArgument),
            ("clear x", FilterError::ClearWithArgument),
            (". /etc/passwd", FilterError::MergeFromPeer),
            ("merge foo", FilterError::MergeFromPeer),
        ];
        for (rule, want) in errors {
            assert_eq!(FilterList::from_wire(&[rule], ParseOptions::default()).unwrap_err(), *want, "{rule}");
        }
        // ':e' adds an exclude of the merge file itself, first.
        let texts = list(&[":e /.rsync-filter"]).rule_texts();
        assert_eq!(texts, [b"- .rsync-filter".to_vec(), b": /.rsync-filter".to_vec()]);
        // The same per-directory file registered twice is one merge.
        assert_eq!(list(&[": .f", ":n .f", "- x"]).rule_texts().len(), 2);
        // Over-long patterns are dropped, not fatal.
        let long = format!("- {}", "a".repeat(MAXPATHLEN));
        assert!(FilterList::from_wire(&[long.as_str()], ParseOptions::default()).unwrap().is_empty());
    }

    #[test]
    fn old_protocol_prefixes() {
        let opts = ParseOptions { protocol: 28, ..ParseOptions::default() };
        let l = FilterList::from_wire(&["foo", "+ bar", "- + baz", "H qux"], opts).unwrap();
        let texts: Vec<Vec<u8>> = l.rule_texts();
        assert_eq!(texts, [b"- foo".to_vec(), b"+ bar".to_vec(), b"- + baz".to_vec(), b"- H qux".to_vec()]);
        let l = FilterList::from_wire(&["foo", "!", "bar"], opts).unwrap();
        assert_eq!(l.rule_texts(), [b"- bar".to_vec()]);
    }

    #[test]
    fn delete_excluded_makes_plain_rules_sender_only() {
        let opts = ParseOptions { delete_excluded: true, ..ParseOptions::default() };
        let l = FilterList::from_wire(&["- *.o", "P keep", ": .f"], opts).unwrap();
        assert_eq!(l.rule_texts(), [b"-s *.o".to_vec(), b"-r keep".to_vec(), b": .f".to_vec()]);
        assert_eq!(l.matches(b"a.o", false, Side::Receiver), Verdict::NoMatch);
        assert_eq!(l.matches(b"a.o", false, Side::Sender), Verdict::Exclude);
    }

    #[test]
    fn matching_table() {
        use Side::*;
        use Verdict::*;
        let cases: &[(&[&str], &str, bool, Side, Verdict)] = &[
            (&["- *.o"], "a/b.o", false, Sender, Exclude),
            (&["- *.o"], "a/b.c", false, Sender, NoMatch),
            (&["- *.o"], "b.o", true, Sender, Exclude),
            (&["- foo/"], "foo", true, Sender, Exclude),
            (&["- foo/"], "x/foo", true, Sender, Exclude),
            (&["- foo/"], "foo", false, Sender, NoMatch),
            (&["- /foo"], "foo", false, Sender, Exclude),
            (&["- /foo"], "a/foo", false, Sender, NoMatch),
            (&["- foo"], "a/foo", false, Sender, Exclude),
            (&["- foo"], "a/xfoo", false, Sender, NoMatch),
            (&["- a/foo"], "x/a/foo", false, Sender, Exclude),
            (&["- a/foo"], "x/ba/foo", false, Sender, NoMatch),
            (&["- foo/*/bar"], "foo/x/bar", false, Sender, Exclude),
            (&["- foo/*/bar"], "z/foo/x/bar", false, Sender, Exclude),
            (&["- foo/*/bar"], "foo/bar", false, Sender, NoMatch),
            (&["- /foo/**/bar"], "foo/a/b/bar", false, Sender, Exclude),
            (&["- /foo/**/bar"], "foo/bar", false, Sender, NoMatch),
            (&["- /foo/**/bar"], "x/foo/a/bar", false, Sender, NoMatch),
            (&["- **/bar"], "bar", false, Sender, Exclude),
            (&["- **/bar"], "a/b/bar", false, Sender, Exclude),
            (&["- a**z"], "x/ab/cz", false, Sender, Exclude),
            (&["- a**z"], "x/b/cz", false, Sender, NoMatch),
            (&["+ */", "+ *.c", "- *"], "x.c", false, Sender, Include),
            (&["+ */", "+ *.c", "- *"], "d/x.h", false, Sender, Exclude),
            (&["+ */", "+ *.c", "- *"], "d", true, Sender, Include),
            (&["-! */"], "file", false, Sender, Exclude),
            (&["-! */"], "dir", true, Sender, NoMatch),
            (&["-! *.c"], "a.c", false, Sender, NoMatch),
            (&["-! *.c"], "a.h", false, Sender, Exclude),
            (&["- dir/***"], "dir", true, Sender, Exclude),
            (&["- dir/***"], "dir/a/b", false, Sender, Exclude),
            (&["- dir/***"], "dir", false, Sender, NoMatch),
            (&["- /dir/***"], "x/dir/a", false, Sender, NoMatch),
            (&["- [ab]?.txt"], "q/b1.txt", false, Sender, Exclude),
            (&["- foo\\*"], "foo*", false, Sender, Exclude),
            (&["- foo\\bar"], "foo\\bar", false, Sender, Exclude),
            (&["H secret"], "secret", false, Sender, Exclude),
            (&["H secret"], "secret", false, Receiver, NoMatch),
            (&["P keep"], "keep", false, Receiver, Exclude),
            (&["P keep"], "keep", false, Sender, NoMatch),
            (&["R *.o", "- *"], "a.o", false, Receiver, Include),
            (&["S a", "H *"], "a", false, Sender, Include),
            (&["-s x", "-r y"], "y", false, Sender, NoMatch),
            (&["-sr x"], "x", false, Receiver, Exclude),
            (&["-x user.*"], "user.foo", false, Sender, NoMatch),
            (&["- a", "!", "- b"], "a", false, Sender, NoMatch),
            (&["- a", "clear", "- b"], "b", false, Sender, Exclude),
            (&["-/ a/b"], "a/b", false, Sender, Exclude),
            (&["-C"], "x/foo.o", false, Sender, Exclude),
            (&["-C"], ".git", true, Sender, Exclude),
            (&["-C"], ".git", false, Sender, NoMatch),
            (&["+ core", "-C"], "core", false, Sender, Include),
            (&["+C"], "core", false, Sender, Include),
        ];
        for (rules, path, is_dir, side, want) in cases {
            let l = list(rules);
            assert_eq!(l.matches(path.as_bytes(), *is_dir, *side), *want, "{rules:?} {path} dir={is_dir} {side:?}");
        }
    }

    #[test]
    fn perishable_xattr_and_absolute_rules() {
        let l = list(&["-p *.tmp", "-C"]);
        let mut q = Query::new(b"a.tmp", false, Side::Receiver);
        assert_eq!(l.check(&q), Verdict::Exclude);
        q.ignore_perishable = true;
        assert_eq!(l.check(&q), Verdict::NoMatch);
        q.path = b"x.o";
        assert_eq!(l.check(&q), Verdict::NoMatch, "the CVS defaults are perishable from protocol 30");
        let old = FilterList::from_wire(&["-C"], ParseOptions { protocol: 29, ..ParseOptions::default() }).unwrap();
        assert_eq!(old.check(&q), Verdict::Exclude);

        let l = list(&["-x user.*", "- user.x"]);
        let mut q = Query::new(b"user.mime", false, Side::Sender);
        q.xattr = true;
        assert_eq!(l.check(&q), Verdict::Exclude);
        q.xattr = false;
        assert_eq!(l.check(&q), Verdict::NoMatch, "x rules only see xattr names");
        q.path = b"user.x";
        assert_eq!(l.check(&q), Verdict::Exclude);

        // '/' rules see the transfer root's place in the module.
        let mut l = list(&["-/ /home/me/foo", "-/ sub/bar"]);
        assert_eq!(l.matches(b"foo", false, Side::Sender), Verdict::NoMatch);
        l.set_root(b"home/me");
        assert_eq!(l.matches(b"foo", false, Side::Sender), Verdict::Exclude);
        assert_eq!(l.check_in_module(&Query::new(b"foo", false, Side::Sender)), Verdict::NoMatch);
        l.set_root(b"x/sub");
        assert_eq!(l.matches(b"bar", false, Side::Sender), Verdict::Exclude);
    }

    #[test]
    fn daemon_parameters() {
        let params = DaemonFilterParams {
            filter: Some(b"- secret/ + *.pub -r /logs"),
            include_from: Some(b"# comment\n+ keep/*.pub\r\nkeep.txt\n"),
            include: Some(b"special"),
            exclude_from: Some(b"; comment\n*.key\n"),
            exclude: Some(b"/private tmp/"),
        };
        let l = FilterList::daemon(&params, ParseOptions::default(), &mut no_files()).unwrap();
        let texts: Vec<String> = l.rule_texts().iter().map(|t| String::from_utf8_lossy(t).into_owned()).collect();
        assert_eq!(
            texts,
            [
                "- secret/***",
                "+ *.pub",
                "-/r /logs",
                "+/ keep/*.pub",
                "+ keep.txt",
                "+ special",
                "- *.key",
                "-/ /private",
                "- tmp/***"
            ]
        );
        let q = |p: &str, d| l.check_in_module(&Query::new(p.as_bytes(), d, Side::Sender));
        assert_eq!(q("secret", true), Verdict::Exclude);
        assert_eq!(q("a/secret/deep/x", false), Verdict::Exclude);
        assert_eq!(q("a/secret", false), Verdict::NoMatch);
        assert_eq!(q("id.key", false), Verdict::Exclude);
        assert_eq!(q("private", false), Verdict::Exclude);
        assert_eq!(q("a/private", false), Verdict::NoMatch);
        assert_eq!(q("logs", true), Verdict::NoMatch, "receiver-only");
        assert!(l.hides_path(b"x/tmp/y/z", false, Side::Receiver));
        let client = list(&["+ id.key", "- *.txt"]);
        assert!(is_excluded(&l, &client, &Query::new(b"id.key", false, Side::Sender)), "the module wins");
        assert!(is_excluded(&l, &client, &Query::new(b"keep.txt", false, Side::Sender)), "its include does not");
        assert!(!is_excluded(&l, &client, &Query::new(b"a.c", false, Side::Sender)));
        assert!(!l.hides_path(b"x/tmpy/z", false, Side::Receiver));
        // The daemon's anchored rules stay module-relative under a deeper transfer root.
        let mut l2 = FilterList::daemon(
            &DaemonFilterParams { exclude: Some(b"/a/b"), ..Default::default() },
            ParseOptions::default(),
            &mut no_files(),
        )
        .unwrap();
        l2.set_root(b"a");
        assert_eq!(l2.matches(b"b", false, Side::Sender), Verdict::Exclude);
        // A merge rule in `filter` reads the named file.
        let mut read = |p: &[u8]| (p == b"/etc/rsync/x.rules").then(|| b"- *.bak\n".to_vec());
        let l3 = FilterList::daemon(
            &DaemonFilterParams { filter: Some(b"merge /etc/rsync/x.rules"), ..Default::default() },
            ParseOptions::default(),
            &mut read,
        )
        .unwrap();
        assert_eq!(l3.rule_texts(), [b"- *.bak".to_vec()]);
        let missing = FilterList::daemon(
            &DaemonFilterParams { filter: Some(b". /nope"), ..Default::default() },
            ParseOptions::default(),
            &mut no_files(),
        );
        assert_eq!(missing.unwrap_err(), FilterError::MergeFileMissing);
    }

    /// A module as a map of module-relative paths to file contents.
    fn reader<'a>(files: &'a HashMap<&'a str, &'a str>) -> impl FnMut(&[u8]) -> Option<Vec<u8>> + 'a {
        move |p: &[u8]| files.get(std::str::from_utf8(p).ok()?).map(|c| c.as_bytes().to_vec())
    }

    #[test]
    fn per_directory_merge_files() {
        let files: HashMap<&str, &str> = [
            (".rsync-filter", "- *.log\n"),
            ("top/.rsync-filter", "- /local\n+ keep.log\n"),
            ("top/sub/.rsync-filter", "!\n- *.tmp\n"),
            ("top/nin/.f", "- x\n"),
        ]
        .into_iter()
        .collect();
        let mut read = reader(&files);
        let mut l = list(&[": /.rsync-filter", ":n .f"]);
        l.set_root(b"top");
        // The root's parent (the module root) is scanned first, then top itself.
        l.enter_dir(b"", &mut read).unwrap();
        let m = |l: &FilterList, p: &str| l.matches(p.as_bytes(), false, Side::Sender);
        assert_eq!(m(&l, "a.log"), Verdict::Exclude);
        assert_eq!(m(&l, "keep.log"), Verdict::Include);
        assert_eq!(m(&l, "local"), Verdict::Exclude);
        l.enter_dir(b"sub", &mut read).unwrap();
        assert_eq!(m(&l, "sub/a.log"), Verdict::NoMatch, "cleared");
        assert_eq!(m(&l, "sub/a.tmp"), Verdict::Exclude);
        assert_eq!(m(&l, "sub/local"), Verdict::NoMatch);
        l.leave_dir();
        assert_eq!(m(&l, "other/a.log"), Verdict::Exclude);
        assert_eq!(m(&l, "other/local"), Verdict::NoMatch, "anchored at top");
        l.enter_dir(b"nin", &mut read).unwrap();
        assert_eq!(m(&l, "nin/x"), Verdict::Exclude);
        l.enter_dir(b"nin/deeper", &mut read).unwrap();
        assert_eq!(m(&l, "nin/deeper/x"), Verdict::NoMatch, "not inherited");
        l.leave_dir();
        l.leave_dir();
        l.leave_dir();
        assert_eq!(l.depth(), 0);
        assert!(l.has_dir_merge());
    }

    #[test]
    fn nested_and_merged_files() {
        let files: HashMap<&str, &str> = [
            ("d/.a", ": .b\n. rules\n- /x/\n"),
            ("d/e/.b", "- *.b\n"),
            ("d/.b", "- *.c\n"),
            ("rules", "- *.r\n"),
            ("w/.a", "-_one +_two\n- sep\n"),
        ]
        .into_iter()
        .collect();
        let mut read = reader(&files);
        let mut l = list(&[": .a"]);
        l.enter_dir(b"", &mut read).unwrap();
        l.enter_dir(b"d", &mut read).unwrap();
        let m = |l: &FilterList, p: &str, d| l.matches(p.as_bytes(), d, Side::Sender);
        assert_eq!(m(&l, "d/q.c", false), Verdict::Exclude, ".b is read in d as soon as d names it");
        assert_eq!(m(&l, "d/q.r", false), Verdict::Exclude, "a bare merge name is read at the root");
        assert_eq!(m(&l, "d/x", true), Verdict::Exclude);
        assert_eq!(m(&l, "x", true), Verdict::NoMatch);
        l.enter_dir(b"d/e", &mut read).unwrap();
        assert_eq!(m(&l, "d/e/q.b", false), Verdict::Exclude);
        l.leave_dir();
        l.leave_dir();
        assert_eq!(m(&l, "q.c", false), Verdict::NoMatch, ".b went with d");
        // A sided merge rule's file may not name sides itself.
        let files2: HashMap<&str, &str> = [(".s", "H x\n")].into_iter().collect();
        let mut l = list(&[":s .s"]);
        assert_eq!(l.enter_dir(b"", &mut reader(&files2)), Err(FilterError::SidedRuleInSidedMerge));
        assert_eq!(l.depth(), 0);
        // Word-split files break "- foo" into two words, which is an error in rsync too.
        let mut l = list(&[":w .a"]);
        assert_eq!(l.enter_dir(b"w", &mut read), Err(FilterError::UnexpectedEnd));
        let mut l = list(&[":w .a"]);
        let files3: HashMap<&str, &str> = [(".a", "-_one +_two\n")].into_iter().collect();
        l.enter_dir(b"", &mut reader(&files3)).unwrap();
        assert_eq!(m(&l, "one", false), Verdict::Exclude);
        assert_eq!(m(&l, "two", false), Verdict::Include);
    }

    #[test]
    fn cvs_per_directory_files() {
        let files: HashMap<&str, &str> =
            [("p/.cvsignore", "*.x  gen\tout\n"), ("p/q/.cvsignore", "!\nonly")].into_iter().collect();
        let mut read = reader(&files);
        let mut l = list(&[]);
        l.add_cvs_exclude(true).unwrap();
        assert_eq!(l.rule_texts(), [b":C .cvsignore".to_vec(), b"-C ".to_vec()]);
        l.enter_dir(b"", &mut read).unwrap();
        l.enter_dir(b"p", &mut read).unwrap();
        let m = |l: &FilterList, p: &str| l.matches(p.as_bytes(), false, Side::Sender);
        assert_eq!(m(&l, "p/a.x"), Verdict::Exclude);
        assert_eq!(m(&l, "p/gen"), Verdict::Exclude);
        assert_eq!(m(&l, "p/a.o"), Verdict::Exclude);
        l.enter_dir(b"p/q", &mut read).unwrap();
        assert_eq!(m(&l, "p/q/gen"), Verdict::NoMatch, ".cvsignore rules are not inherited");
        assert_eq!(m(&l, "p/q/only"), Verdict::Exclude);
        let mut recv = list(&[]);
        recv.add_cvs_exclude(false).unwrap();
        assert!(recv.is_empty());
    }

    #[test]
    fn hostile_inputs_are_bounded() {
        // Merge files that name ever more merge files stop at the cap.
        let mut body = String::new();
        for i in 0..(MAX_DIR_MERGES + 5) {
            body.push_str(&format!(": .m{i}\n"));
        }
        let files: HashMap<&str, &str> = [(".m", body.as_str())].into_iter().collect();
        let mut l = list(&[": .m"]);
        assert_eq!(l.enter_dir(b"", &mut reader(&files)), Err(FilterError::TooManyDirMerges));
        // Merge files that merge themselves stop at the depth limit.
        let files: HashMap<&str, &str> = [(".m", ". .m\n")].into_iter().collect();
        let mut l = list(&[": .m"]);
        assert_eq!(l.enter_dir(b"", &mut reader(&files)), Err(FilterError::MergeTooDeep));
        // Large merge files down a chain of directories stop at the byte budget, and
        // leaving a directory gives its bytes back.
        let big = "- ".to_string() + &"x".repeat(1000) + "\n";
        let big = big.repeat((MAX_MERGE_FILE_BYTES - 1) / big.len());
        let dirs = ["", "a", "a/b", "a/b/c", "a/b/c/d", "a/b/c/d/e"];
        let paths: Vec<String> =
            dirs.iter().map(|d| if d.is_empty() { ".m".into() } else { format!("{d}/.m") }).collect();
        let files: HashMap<&str, &str> = paths.iter().map(|p| (p.as_str(), big.as_str())).collect();
        let mut l = list(&[": .m"]);
        let fits = MAX_LIVE_MERGE_BYTES / big.len();
        for d in &dirs[..fits] {
            l.enter_dir(d.as_bytes(), &mut reader(&files)).unwrap();
        }
        assert_eq!(l.enter_dir(dirs[fits].as_bytes(), &mut reader(&files)), Err(FilterError::MergeFilesTooLarge));
        assert_eq!(l.depth(), fits, "the refused directory was not entered");
        l.leave_dir();
        l.enter_dir(dirs[fits - 1].as_bytes(), &mut reader(&files)).unwrap();
        // One directory's merge file naming many large files: reading stops at the
        // budget, not after every file.
        let names: Vec<String> = (0..20).map(|i| format!("big{i}")).collect();
        let top: String = names.iter().map(|n| format!(". {n}\n")).collect();
        let mut files: HashMap<&str, &str> = names.iter().map(|n| (n.as_str(), big.as_str())).collect();
        files.insert(".m", top.as_str());
        let mut reads = 0;
        let mut inner = reader(&files);
        let mut counted = |p: &[u8]| {
            reads += 1;
            inner(p)
        };
        let mut l = list(&[": .m"]);
        assert_eq!(l.enter_dir(b"", &mut counted), Err(FilterError::MergeFilesTooLarge));
        assert!(reads <= fits + 2, "{reads} files read");
        // Garbage never panics.
        let junk: &[&[u8]] =
            &[b"", b"\0", b"-\0x", b"- \xff\xfe", b":", b": ", b"-C\0", b"+,", b",", b"!!", b"- [", b": ../../../x"];
        for j in junk {
            if let Ok(mut l) = FilterList::from_wire(&[j], ParseOptions::default()) {
                let _ = l.matches(b"a/b", false, Side::Sender);
                let _ = l.enter_dir(b"..", &mut no_files());
            }
        }
    }

    #[test]
    fn random_rules_never_panic() {
        // A fixed xorshift stream: plausible prefixes, then bytes rule syntax cares about.
        let prefixes: &[&[u8]] =
            &[b"- ", b"+ ", b": ", b"-! ", b"H ", b"P ", b":n- ", b"-/ ", b":C", b"-C", b"!", b":w ", b":e+ ", b""];
        let alphabet = b"-+.:!/ _,*?[]^\\abCenprswx\t\n\r\0";
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let word = |next: &mut dyn FnMut() -> u64| -> Vec<u8> {
            let mut w = prefixes[(next() % prefixes.len() as u64) as usize].to_vec();
            let len = (next() % 12) as usize;
            w.extend((0..len).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]));
            w
        };
        let mut parsed = 0;
        for round in 0..20_000 {
            let rules: Vec<Vec<u8>> = (0..1 + next() % 3).map(|_| word(&mut next)).collect();
            let opts = ParseOptions { protocol: if round % 7 == 0 { 28 } else { 32 }, ..ParseOptions::default() };
            let Ok(mut l) = FilterList::from_wire(&rules, opts) else { continue };
            parsed += 1;
            let file: Vec<u8> = [word(&mut next), word(&mut next)].join(&b'\n');
            let mut read = |_: &[u8]| Some(file.clone());
            if l.enter_dir(b"a", &mut read).is_ok() {
                l.enter_dir(b"a/b", &mut read).ok();
            }
            for p in [&b"a"[..], b"a/b", b"a/b/c.o", b"/x"] {
                for side in [Side::Sender, Side::Receiver] {
                    let _ = l.matches(p, round % 2 == 0, side);
                }
            }
            let _ = l.rule_texts();
        }
        assert!(parsed > 5_000, "only {parsed} lists parsed");
    }

    // ---- the differential test against the installed rsync ----

    fn rsync_available() -> bool {
        std::process::Command::new("rsync").arg("--version").output().is_ok_and(|o| o.status.success())
    }

    fn build_tree(src: &std::path::Path) {
        let dirs = [
            "a",
            "a/b",
            "a/b/c",
            "a/foo",
            "foo",
            "keep",
            "keep/sub",
            "CVS",
            ".git",
            "x",
            "x/foo",
            "x/foo/y",
            "deep",
            "deep/one",
            "deep/one/two",
            "gen",
            "dir with space",
            "m",
            "m/sub",
        ];
        for d in dirs {
            std::fs::create_dir_all(src.join(d)).unwrap();
        }
        let files: &[(&str, &str)] = &[
            ("a.o", ""),
            ("b.c", ""),
            ("c.h", ""),
            ("core", ""),
            ("notes~", ""),
            ("bar", ""),
            ("a/x.o", ""),
            ("a/y.c", ""),
            ("a/bar", ""),
            ("a/b/bar", ""),
            ("a/b/c/bar", ""),
            ("a/b/c/z.log", ""),
            ("a/foo/bar", ""),
            ("a/foo/baz", ""),
            ("foo/bar", ""),
            ("keep/k.o", ""),
            ("keep/sub/s.tmp", ""),
            ("keep/sub/s.log", ""),
            ("CVS/Entries", ""),
            (".git/HEAD", ""),
            ("x/foo/y/bar", ""),
            ("x/foo/q", ""),
            ("deep/one/two/f.txt", ""),
            ("deep/one/two/g.o", ""),
            ("deep/one/h.log", ""),
            ("gen/out", ""),
            ("gen/in.x", ""),
            ("dir with space/file one", ""),
            ("extra.rules", "- *.h\n"),
            (".rsync-filter", "- *.log\n+ keep.log\n"),
            ("keep/.rsync-filter", "- /sub/s.tmp\n"),
            ("deep/.rsync-filter", "!\n- f.txt\n. extra.rules\n"),
            ("deep/one/.rsync-filter", "- /two/g.o\n"),
            ("gen/.cvsignore", "out\n"),
            (".cvsignore", "bar *.x\n"),
            ("a/.excl", "bar\nbaz\n"),
            ("a/b/.excl", "!\n"),
            ("x/.incl", "q\n"),
            ("x/.w", "- q + y\n"),
            ("x/.wl", "q\ty\n"),
            ("m/.mf", ". sub/r.rules\n- /sub/keep\n"),
            ("m/sub/r.rules", "- zz\n"),
            ("m/zz", ""),
            ("m/sub/zz", ""),
            ("m/sub/keep", ""),
            ("m/.pf", "- keep\n"),
            (".pf", "- q\n"),
        ];
        for (f, body) in files {
            std::fs::write(src.join(f), body).unwrap();
        }
    }

    /// What the model sender puts in its file list: every name its rules do not exclude,
    /// not descending into excluded directories, each directory's merge files read on
    /// entry, as send_directory does. `None` if the rules are refused.
    fn model_walk(rules: &[&str], cvs: bool, src: &std::path::Path) -> Option<BTreeSet<String>> {
        let mut l = FilterList::from_wire(rules, ParseOptions::default()).ok()?;
        if cvs {
            l.add_cvs_exclude(true).ok()?;
        }
        // As a local rsync has it, "the module" is the file system: the root is the
        // source directory's absolute path.
        let root = std::fs::canonicalize(src).unwrap();
        let root_bytes = root.to_str().unwrap().trim_start_matches('/').as_bytes().to_vec();
        l.set_root(&root_bytes);
        let mut read = |p: &[u8]| {
            let path = std::path::Path::new("/").join(std::str::from_utf8(p).ok()?);
            std::fs::read(path).ok()
        };
        let mut out = BTreeSet::new();
        out.insert("./".to_string());
        fn walk(
            l: &mut FilterList,
            base: &std::path::Path,
            rel: &str,
            read: &mut ReadFile,
            out: &mut BTreeSet<String>,
        ) -> Result<(), FilterError> {
            l.enter_dir(rel.as_bytes(), read)?;
            let mut names: Vec<(String, bool)> = std::fs::read_dir(base.join(rel))
                .unwrap()
                .map(|e| {
                    let e = e.unwrap();
                    (e.file_name().into_string().unwrap(), e.file_type().unwrap().is_dir())
                })
                .collect();
            names.sort();
            let mut res = Ok(());
            for (name, is_dir) in names {
                let path = if rel.is_empty() { name } else { format!("{rel}/{name}") };
                if l.matches(path.as_bytes(), is_dir, Side::Sender) == Verdict::Exclude {
                    continue;
                }
                if is_dir {
                    out.insert(format!("{path}/"));
                    res = walk(l, base, &path, read, out);
                    if res.is_err() {
                        break;
                    }
                } else {
                    out.insert(path);
                }
            }
            l.leave_dir();
            res
        }
        walk(&mut l, src, "", &mut read, &mut out).ok()?;
        Some(out)
    }

    fn rsync_walk(rules: &[&str], cvs: bool, tmp: &std::path::Path) -> Option<BTreeSet<String>> {
        let mut cmd = std::process::Command::new("rsync");
        cmd.current_dir(tmp).env("HOME", tmp.join("home")).env_remove("CVSIGNORE").args([
            "-r",
            "--dry-run",
            "--out-format=%n",
        ]);
        if cvs {
            cmd.arg("-C");
        }
        for r in rules {
            cmd.arg(format!("--filter={r}"));
        }
        cmd.args(["src/", "dst/"]);
        let out = cmd.output().unwrap();
        if !out.status.success() {
            return None;
        }
        Some(String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect())
    }

    #[test]
    fn differential_against_rsync() {
        if !rsync_available() {
            println!("rsync is not on PATH: skipping the differential filter test");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir_all(tmp.path().join("home")).unwrap();
        build_tree(&src);
        let base: &[(&[&str], bool)] = &[
            (&[], false),
            (&["- *.o"], false),
            (&["- foo/"], false),
            (&["- /foo"], false),
            (&["- foo"], false),
            (&["- a/foo"], false),
            (&["- foo/*/bar"], false),
            (&["- /x/**/bar"], false),
            (&["- **/bar"], false),
            (&["- a/**/bar"], false),
            (&["- b**r"], false),
            (&["+ */", "+ *.c", "- *"], false),
            (&["+ a/", "+ a/b/", "+ a/b/bar", "- *"], false),
            (&["-! */"], false),
            (&["- a/b/***"], false),
            (&["+ keep/***", "- *"], false),
            (&["- [a-c].?"], false),
            (&["- *[[:space:]]*"], false),
            (&["- /*/*/"], false),
            (&["H *.o", "P *.c", "R bar", "- *.h"], false),
            (&["S a.o", "-s *.o", "-r *.c"], false),
            (&["-p *.o", "-x bar"], false),
            (&["- *.o", "!", "- *.c"], false),
            (&["exclude,! */", "include *"], false),
            (&["- a", "+ *"], false),
            (&[": .rsync-filter"], false),
            (&[": /.rsync-filter", "- .rsync-filter"], false),
            (&[":e .rsync-filter", "- bar"], false),
            (&["- /keep/sub/s.log", ": .rsync-filter"], false),
            (&[":n- .excl"], false),
            (&[": .excl"], false),
            (&[":+ .incl", "- q"], false),
            (&[":w .w"], false),
            (&[":C"], false),
            (&[], true),
            (&["+ core", "+ CVS/"], true),
            (&["-C"], false),
            (&["+ *.o", "-C", "- *.c"], false),
            (&[":C", "- gen"], false),
            (&[": .rsync-filter", ":C", "-p notes~"], true),
            (&["-/ foo/bar"], false),
            (&["-/ /foo"], false),
            (&[":w- .wl"], false),
            (&[": .mf"], false),
            (&[":n .mf", ": .pf"], false),
            (&[": .rsync-filter", ": .rsync-filter"], false),
            (&["-! /a/", "- *.c"], false),
            (&["- a/***/bar"], false),
            (&["- *"], false),
            (&["- foo "], false),
            (&["-_*.o", "+_*"], false),
            (&["- /"], false),
            (&["- ***"], false),
            (&["- **"], false),
            (&["- /**/c/"], false),
            (&["- *[!a-z.]*"], false),
            (&["+ a/b/c/bar", "- a/b/c/*"], false),
            (&["+ */", "- *"], true),
            (&["-C", "+ */", "- *.c"], false),
            (&["- *.o", "clear", ": .rsync-filter"], false),
            (&["exclude,p keep/", "dir-merge,e .excl2"], false),
        ];
        let mut cases: Vec<(Vec<String>, bool)> =
            base.iter().map(|(r, c)| (r.iter().map(|s| s.to_string()).collect(), *c)).collect();
        // Rules that name the source tree's place in the file system.
        let abs = std::fs::canonicalize(&src).unwrap().to_str().unwrap().to_string();
        let parent = std::fs::canonicalize(tmp.path()).unwrap().to_str().unwrap().to_string();
        std::fs::write(tmp.path().join(".pf"), "- c.h\n").unwrap();
        cases.push((vec![format!("-/ {abs}/a/bar")], false));
        cases.push((vec![format!("-/ {abs}/a/"), "- c.h".into()], false));
        cases.push((vec![format!(": {parent}/.pf")], false));
        cases.push((vec![": ../.pf".into()], false));
        cases.push((vec![":n ../.pf".into()], false));
        cases.push((vec![": .pf".into()], false));
        let mut failures = Vec::new();
        for (rules, cvs) in &cases {
            let rules: Vec<&str> = rules.iter().map(String::as_str).collect();
            let (rules, cvs) = (&rules[..], *cvs);
            let want = rsync_walk(rules, cvs, tmp.path());
            let got = model_walk(rules, cvs, &src);
            println!("{rules:?} cvs={cvs}: rsync lists {:?} names", want.as_ref().map(|w| w.len()));
            if want != got {
                let fmt = |s: &Option<BTreeSet<String>>| match s {
                    None => "refused".to_string(),
                    Some(s) => s.iter().cloned().collect::<Vec<_>>().join(" "),
                };
                let (w, g) = (fmt(&want), fmt(&got));
                let only_rsync: Vec<_> = match (&want, &got) {
                    (Some(w), Some(g)) => w.difference(g).cloned().collect(),
                    _ => vec![],
                };
                let only_model: Vec<_> = match (&want, &got) {
                    (Some(w), Some(g)) => g.difference(w).cloned().collect(),
                    _ => vec![],
                };
                failures.push(format!(
                    "rules {rules:?} cvs={cvs}:\n  only rsync: {only_rsync:?}\n  only model: {only_model:?}\n  rsync: {w}\n  model: {g}"
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}
