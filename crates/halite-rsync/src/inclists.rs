//! The sender's file lists and what their indexes mean, with or without incremental
//! recursion (flist.c: flist_new, add_dirs_to_tree, send_extra_file_list's walk).
//!
//! Without incremental recursion there is one list, indexed from 0. With it, the first
//! list holds what the client named (a directory named with a trailing slash contributes
//! its "." and its entries) and starts at index 1; every other directory's entries follow
//! later as a list of their own, announced by the directory's number, each list starting
//! one past the end of the one before (the index in that gap names the list's
//! directory). Directories are numbered in the order the client's `dir_flist` gets them:
//! list by list, in each list's sorted order, "." entries included. They are expanded
//! depth first: a directory's first child directory next, else its next sibling, else its
//! parent's next sibling — the walk the client expects, since it checks each list's names
//! against the directory it was announced for.
//!
//! Lists are dropped as the client finishes them, so what is held is the lists in flight
//! and one small node per directory seen. Generic over the entry type: the daemon keeps
//! its own (an entry and where it is in the module).
//!
//! [`RecvLists`] is the other side, for a push: the lists the client sends, checked
//! against the directories they are announced for and numbered the same way.

use crate::flist::FileEntry;
use std::collections::VecDeque;
use std::sync::Arc;

/// rsync's NDX_FLIST_OFFSET: a new list for directory `d` is announced as `OFFSET - d`.
pub const NDX_FLIST_OFFSET: i32 = -101;
/// The index that says no more lists will come.
pub const NDX_FLIST_EOF: i32 = -2;

/// What an entry is, for the directory tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    NotDir,
    /// A transfer root's "." (numbered, never expanded: its entries are in its list).
    Dot,
    Dir,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ListsError {
    #[error("more than {0} directories in one transfer")]
    TooManyDirs(usize),
    #[error("file index {0} overflows")]
    IndexOverflow(i64),
}

#[derive(Debug)]
pub struct List<T> {
    /// The index of the first entry.
    pub start: i32,
    /// The directory (its number) the index before `start` names: the one whose entries
    /// this list holds, or the first list's ".".
    pub parent: Option<usize>,
    pub entries: Vec<T>,
}

#[derive(Debug)]
struct DirNode<T> {
    /// The directory's entry, kept from its listing until the client has finished the
    /// list of its contents (whose gap index names it); then only the links stay, so a
    /// transfer of millions of directories holds a few words for each (boxed, so the
    /// node does not keep an entry's size once the entry is gone).
    entry: Option<Box<T>>,
    parent: Option<usize>,
    first_child: Option<usize>,
    next_sibling: Option<usize>,
}

#[derive(Debug)]
pub struct SendLists<T> {
    incremental: bool,
    lists: VecDeque<List<T>>,
    /// Every directory listed so far, by number (only with incremental recursion).
    dirs: Vec<DirNode<T>>,
    max_dirs: usize,
    /// The next directory to expand.
    cursor: Option<usize>,
    /// Whether the client was told no more lists come.
    eof: bool,
    next_start: i64,
    /// The weight of the lists held (see [`weight`]).
    live: usize,
}

impl<T: Clone> SendLists<T> {
    /// `max_dirs` bounds the directories remembered over the whole transfer.
    pub fn new(incremental: bool, max_dirs: usize) -> Self {
        SendLists {
            incremental,
            lists: VecDeque::new(),
            dirs: Vec::new(),
            max_dirs,
            cursor: None,
            eof: !incremental,
            next_start: if incremental { 1 } else { 0 },
            live: 0,
        }
    }

    /// The index the next list pushed will start at.
    pub fn next_start(&self) -> i64 {
        self.next_start
    }

    pub fn incremental(&self) -> bool {
        self.incremental
    }

    /// Adds the next list: the first (parent None) or the entries of directory
    /// `parent`, sorted as the client sorts them. `kind` tells the directories apart.
    /// Returns the list's start index.
    pub fn push(
        &mut self,
        parent: Option<usize>,
        entries: Vec<T>,
        kind: impl Fn(&T) -> Kind,
    ) -> Result<i32, ListsError> {
        let start = i32::try_from(self.next_start).map_err(|_| ListsError::IndexOverflow(self.next_start))?;
        // The next list starts one past this one's end: the gap is its directory's index.
        self.next_start += entries.len() as i64 + 1;
        let mut gap = parent;
        if self.incremental {
            // The first list's gap (index 0) names its "." when it begins with one (the
            // reference's parent_ndx keeps its 0 then): the client itemizes the top
            // directory through it.
            if parent.is_none() && entries.first().map(&kind) == Some(Kind::Dot) {
                gap = Some(self.dirs.len());
            }
            self.add_dirs(parent, &entries, &kind)?;
            if parent.is_some() {
                self.advance_from(parent);
            }
        }
        self.live += weight(&entries);
        self.lists.push_back(List { start, parent: gap, entries });
        Ok(start)
    }

    /// The client's dir_flist gets a list's directories in its sorted order; all but
    /// "." are linked under the list's directory, as siblings in that order.
    fn add_dirs(&mut self, parent: Option<usize>, entries: &[T], kind: &impl Fn(&T) -> Kind) -> Result<(), ListsError> {
        let mut previous: Option<usize> = None;
        for e in entries {
            let k = kind(e);
            if k == Kind::NotDir {
                continue;
            }
            if self.dirs.len() >= self.max_dirs {
                return Err(ListsError::TooManyDirs(self.max_dirs));
            }
            let n = self.dirs.len();
            self.dirs.push(DirNode { entry: Some(Box::new(e.clone())), parent, first_child: None, next_sibling: None });
            if k == Kind::Dot {
                continue;
            }
            match (previous, parent) {
                (Some(p), _) => self.dirs[p].next_sibling = Some(n),
                (None, Some(up)) => self.dirs[up].first_child = Some(n),
                (None, None) => self.cursor = Some(n),
            }
            previous = Some(n);
        }
        Ok(())
    }

    /// After directory `done` was expanded: its first child next, else the next
    /// sibling of it or of the nearest ancestor that has one.
    fn advance_from(&mut self, done: Option<usize>) {
        let Some(mut d) = done else { return };
        if let Some(child) = self.dirs[d].first_child {
            self.cursor = Some(child);
            return;
        }
        loop {
            if let Some(next) = self.dirs[d].next_sibling {
                self.cursor = Some(next);
                return;
            }
            match self.dirs[d].parent {
                Some(up) => d = up,
                None => {
                    self.cursor = None;
                    return;
                }
            }
        }
    }

    /// The directory whose list comes next, with its number; None once every directory
    /// has had its list (then the caller sends NDX_FLIST_EOF and calls
    /// [`SendLists::finish`]).
    pub fn next_dir(&self) -> Option<(usize, &T)> {
        if self.eof {
            return None;
        }
        let d = self.cursor?;
        Some((d, self.dirs[d].entry.as_deref()?))
    }

    /// Whether lists remain to be sent.
    pub fn more_to_send(&self) -> bool {
        !self.eof
    }

    /// Records that the client was told no more lists come.
    pub fn finish(&mut self) {
        self.eof = true;
        self.cursor = None;
    }

    /// Entries in the lists after the one the client is working through: how far the
    /// lists run ahead of it.
    pub fn ahead(&self) -> usize {
        self.live - self.lists.front().map_or(0, |l| weight(&l.entries))
    }

    /// The client finished its oldest list: drop it. Returns whether lists remain.
    pub fn finish_first(&mut self) -> bool {
        if let Some(l) = self.lists.pop_front() {
            self.live -= weight(&l.entries);
            if let Some(d) = l.parent {
                self.dirs[d].entry = None;
            }
        }
        !self.lists.is_empty()
    }

    /// Whether any list is held.
    pub fn is_empty(&self) -> bool {
        self.lists.is_empty()
    }

    /// The entry index `ndx` names: an entry of a list held, or (the index just before
    /// a list) that list's directory.
    pub fn get(&self, ndx: i32) -> Option<&T> {
        // Lists are held in index order: the last one starting at or before ndx + 1.
        let after = self.lists.partition_point(|l| l.start - 1 <= ndx);
        let list = self.lists.get(after.checked_sub(1)?)?;
        if ndx - list.start >= list.entries.len() as i32 {
            return None;
        }
        if ndx >= list.start {
            return list.entries.get((ndx - list.start) as usize);
        }
        list.parent.and_then(|d| self.dirs[d].entry.as_deref())
    }

    #[cfg(test)]
    fn dir_entries_held(&self) -> usize {
        self.dirs.iter().filter(|d| d.entry.is_some()).count()
    }

    /// The range of indexes the lists held cover, for an error message.
    pub fn index_range(&self) -> (i64, i64) {
        match (self.lists.front(), self.lists.back()) {
            (Some(first), Some(last)) => (first.start as i64 - 1, last.start as i64 + last.entries.len() as i64 - 1),
            _ => (0, -1),
        }
    }
}

/// How much a list counts toward the lookahead: its entries, and at least one, so that
/// lists of empty directories cannot pile up without bound.
fn weight<T>(entries: &[T]) -> usize {
    entries.len().max(1)
}

/// One list a receiver holds: its entries sorted, where its indexes start, and the
/// directory they are the entries of (with the entry its parent's list gave it), or for
/// the first list its "." when it has one.
#[derive(Debug)]
pub struct Sublist {
    pub start: i32,
    pub dir: Option<FileEntry>,
    pub entries: Vec<FileEntry>,
}

impl Sublist {
    /// The entry index `ndx` names in this list.
    pub fn get(&self, ndx: i32) -> Option<&FileEntry> {
        let i = usize::try_from(i64::from(ndx) - i64::from(self.start)).ok()?;
        self.entries.get(i)
    }

    /// Whether `ndx` is one of this list's entries.
    pub fn holds(&self, ndx: i32) -> bool {
        self.get(ndx).is_some()
    }
}

/// Why a received list is refused (a sender that breaks these rules is hostile or
/// broken: the reference exits with a protocol error for each).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecvListError {
    #[error("Invalid dir index: {0}")]
    BadDir(i64),
    #[error("refusing malicious duplicate flist for dir {0}")]
    DuplicateList(usize),
    #[error("ABORTING due to invalid path from sender: {0}")]
    OutsideDir(String),
    #[error("duplicate names in the file list")]
    DuplicateName,
    #[error(transparent)]
    Lists(#[from] ListsError),
    #[error("more than {0} file-list entries held at once")]
    TooManyHeld(usize),
}

/// The receiver's side of incremental recursion (a push into the daemon): the lists as
/// they arrive, each checked against the directory it is announced for — its names must
/// be that directory's entries, and a directory gets one list — the directories
/// numbered as the sender numbers them (list by list, in each list's sorted order), and
/// lists dropped as the sender finishes them. Without incremental recursion it holds
/// the one list, from index 0.
#[derive(Debug)]
pub struct RecvLists {
    incremental: bool,
    lists: VecDeque<Arc<Sublist>>,
    /// Every directory listed so far, by number: its entry until its own list arrives.
    dirs: Vec<RecvDir>,
    max_dirs: usize,
    next_start: i64,
    /// Entries held (and the bound on them): a sender cannot run ahead without end.
    live: usize,
    max_live: usize,
}

#[derive(Debug)]
struct RecvDir {
    entry: Option<Box<FileEntry>>,
    listed: bool,
}

impl RecvLists {
    pub fn new(incremental: bool, max_dirs: usize, max_live: usize) -> RecvLists {
        RecvLists {
            incremental,
            lists: VecDeque::new(),
            dirs: Vec::new(),
            max_dirs,
            next_start: if incremental { 1 } else { 0 },
            live: 0,
            max_live,
        }
    }

    pub fn incremental(&self) -> bool {
        self.incremental
    }

    /// The first list (every name at the top, with incremental recursion).
    pub fn first(&mut self, entries: Vec<FileEntry>) -> Result<Arc<Sublist>, RecvListError> {
        self.add(None, entries)
    }

    /// The list announced for directory `dir` (the number the sender sent, as
    /// NDX_FLIST_OFFSET minus it), before its entries are read.
    pub fn announce(&self, dir: i64) -> Result<usize, RecvListError> {
        let d = usize::try_from(dir).ok().filter(|&d| d < self.dirs.len()).ok_or(RecvListError::BadDir(dir))?;
        if self.dirs[d].listed || self.dirs[d].entry.is_none() {
            return Err(RecvListError::DuplicateList(d));
        }
        Ok(d)
    }

    /// Adds directory `dir`'s list (its number from [`RecvLists::announce`]), or the
    /// first list: sorted, checked, its directories numbered.
    pub fn add(&mut self, dir: Option<usize>, mut entries: Vec<FileEntry>) -> Result<Arc<Sublist>, RecvListError> {
        entries.sort_unstable_by(crate::flist::name_cmp);
        if entries.windows(2).any(|w| w[0].name == w[1].name) {
            return Err(RecvListError::DuplicateName);
        }
        let parent_entry = match dir {
            Some(d) => {
                let slot = &mut self.dirs[d];
                slot.listed = true;
                slot.entry.take().map(|e| *e)
            }
            None => None,
        };
        if self.incremental {
            // Each name is an entry of the announced directory, or of the top for the
            // first list (CVE-2024-12087: a list must not reach outside its directory).
            let want: &[u8] = parent_entry.as_ref().map_or(b"", |e| &e.name);
            for e in &entries {
                let parent = match e.name.iter().rposition(|&b| b == b'/') {
                    Some(i) => &e.name[..i],
                    None => b"",
                };
                if parent != want {
                    return Err(RecvListError::OutsideDir(String::from_utf8_lossy(&e.name).into_owned()));
                }
            }
        }
        let held = self.live + weight(&entries);
        if held > self.max_live {
            return Err(RecvListError::TooManyHeld(self.max_live));
        }
        let start = i32::try_from(self.next_start).map_err(|_| ListsError::IndexOverflow(self.next_start))?;
        self.next_start += entries.len() as i64 + 1;
        let mut gap_dir = parent_entry;
        if self.incremental {
            for e in entries.iter().filter(|e| e.is_dir()) {
                if self.dirs.len() >= self.max_dirs {
                    return Err(ListsError::TooManyDirs(self.max_dirs).into());
                }
                // The first list's "." is numbered and never listed: its entries are the
                // first list's own.
                let dot = dir.is_none() && e.name == b".";
                if dot {
                    gap_dir = Some(e.clone());
                }
                self.dirs.push(RecvDir { entry: (!dot).then(|| Box::new(e.clone())), listed: dot });
            }
        }
        self.live = held;
        let list = Arc::new(Sublist { start, dir: gap_dir, entries });
        self.lists.push_back(list.clone());
        Ok(list)
    }

    /// The sender finished its oldest list: drop it. Returns whether lists remain.
    pub fn finish_first(&mut self) -> bool {
        if let Some(l) = self.lists.pop_front() {
            self.live -= weight(&l.entries);
        }
        !self.lists.is_empty()
    }

    pub fn is_empty(&self) -> bool {
        self.lists.is_empty()
    }

    /// The lists held, oldest first.
    pub fn held(&self) -> impl Iterator<Item = &Arc<Sublist>> {
        self.lists.iter()
    }

    /// A push of a single entry named as the client asked (the reference's
    /// get_local_name()): the entry renamed, and the list of its contents (an empty
    /// directory's) told its new name. Only before any list is shared: a list another
    /// holder already has keeps its names.
    pub fn rename_single(&mut self, name: &[u8]) -> bool {
        let Some(old) = self.lists.front().and_then(|l| (l.entries.len() == 1).then(|| l.entries[0].name.clone()))
        else {
            return false;
        };
        let mut renamed = true;
        for list in self.lists.iter_mut() {
            let Some(list) = Arc::get_mut(list) else {
                renamed = false;
                continue;
            };
            for e in list.entries.iter_mut().chain(list.dir.as_mut()) {
                if e.name == old {
                    e.name = name.to_vec();
                }
            }
        }
        renamed
    }

    /// The entry `ndx` names, in a list held.
    pub fn get(&self, ndx: i32) -> Option<&FileEntry> {
        let after = self.lists.partition_point(|l| l.start <= ndx);
        self.lists.get(after.checked_sub(1)?)?.get(ndx)
    }

    /// Whether `ndx` names something held: an entry, or the directory of a list (the
    /// index just before its first entry), which the client's sender echoes when a
    /// directory is itemized.
    pub fn names(&self, ndx: i32) -> bool {
        if self.get(ndx).is_some() {
            return true;
        }
        // Lists are held in index order: the one whose gap could be `ndx`.
        let after = self.lists.partition_point(|l| i64::from(l.start) - 1 <= i64::from(ndx));
        after.checked_sub(1).and_then(|i| self.lists.get(i)).is_some_and(|l| l.dir.is_some() && l.start - 1 == ndx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Entries are names; directories end with '/', "." is a transfer root.
    fn kind(name: &&str) -> Kind {
        match *name {
            "." => Kind::Dot,
            n if n.ends_with('/') => Kind::Dir,
            _ => Kind::NotDir,
        }
    }

    fn lists(first: &[&'static str]) -> SendLists<&'static str> {
        let mut l = SendLists::new(true, 1000);
        assert_eq!(l.push(None, first.to_vec(), kind), Ok(1));
        l
    }

    #[test]
    fn directories_are_expanded_depth_first_and_numbered_as_the_client_numbers_them() {
        // The module's top: ".", a file and two directories.
        let mut l = lists(&[".", "f", "a/", "b/"]);
        // dir numbers: 0 ".", 1 "a/", 2 "b/"; "a/" first.
        assert_eq!(l.next_dir(), Some((1, &"a/")));
        // Its list starts after the gap: 1 + 4 + 1.
        assert_eq!(l.push(Some(1), vec!["a/x", "a/c/"], kind), Ok(6));
        // "a/c/" is number 3, a child of "a/": next, before "b/".
        assert_eq!(l.next_dir(), Some((3, &"a/c/")));
        assert_eq!(l.push(Some(3), vec![], kind), Ok(9));
        assert_eq!(l.next_dir(), Some((2, &"b/")));
        assert_eq!(l.push(Some(2), vec!["b/y"], kind), Ok(10));
        assert_eq!(l.next_dir(), None);
        assert!(l.more_to_send());
        l.finish();
        assert!(!l.more_to_send());
    }

    #[test]
    fn indexes_name_entries_and_the_gap_names_the_lists_directory() {
        let mut l = lists(&[".", "f", "a/"]);
        l.push(Some(1), vec!["a/x", "a/y"], kind).unwrap();
        assert_eq!(l.get(1), Some(&"."));
        assert_eq!(l.get(3), Some(&"a/"));
        assert_eq!(l.get(4), Some(&"a/"), "the gap before a's list is a itself");
        assert_eq!(l.get(5), Some(&"a/x"));
        assert_eq!(l.get(6), Some(&"a/y"));
        assert_eq!(l.get(7), None);
        assert_eq!(l.get(0), Some(&"."), "index 0 names the first list's \".\"");
        assert_eq!(l.index_range(), (0, 6));
        for hostile in [i32::MIN, -101, -2, -1, i32::MAX] {
            assert_eq!(l.get(hostile), None, "{hostile}");
        }
        assert_eq!(l.ahead(), 2);
        assert!(l.finish_first());
        assert_eq!(l.get(2), None, "a finished list's indexes mean nothing any more");
        assert_eq!(l.get(5), Some(&"a/x"));
        assert_eq!(l.get(4), Some(&"a/"));
        assert_eq!(l.ahead(), 0);
        assert_eq!(l.dir_entries_held(), 1, "\".\" went with the first list");
        assert!(!l.finish_first());
        assert_eq!(l.dir_entries_held(), 0, "a finished directory keeps only its links");
    }

    #[test]
    fn without_incremental_recursion_one_list_from_zero() {
        let mut l: SendLists<&str> = SendLists::new(false, 10);
        assert_eq!(l.push(None, vec![".", "a/", "a/x"], kind), Ok(0));
        assert_eq!(l.next_dir(), None);
        assert!(!l.more_to_send());
        assert_eq!(l.get(2), Some(&"a/x"));
    }

    #[test]
    fn a_named_directory_without_its_slash_is_expanded_after_the_first_list() {
        let mut l = lists(&["d1/"]);
        assert_eq!(l.get(0), None, "no \".\" in the first list: index 0 names nothing");
        assert_eq!(l.next_dir(), Some((0, &"d1/")));
        l.push(Some(0), vec!["d1/sub/", "d1/z"], kind).unwrap();
        assert_eq!(l.next_dir(), Some((1, &"d1/sub/")));
    }

    fn entry(name: &str) -> FileEntry {
        let dir = name.ends_with('/') || name == ".";
        let name = name.trim_end_matches('/');
        let mode = if dir { crate::flist::S_IFDIR | 0o755 } else { crate::flist::S_IFREG | 0o644 };
        FileEntry { name: name.as_bytes().to_vec(), mode, ..Default::default() }
    }

    fn entries(names: &[&str]) -> Vec<FileEntry> {
        names.iter().map(|n| entry(n)).collect()
    }

    #[test]
    fn received_lists_are_numbered_as_the_sender_numbers_them() {
        let mut r = RecvLists::new(true, 100, 1000);
        // Sorted as the sender sorts: files first, then directories.
        let first = r.first(entries(&["b/", ".", "a/", "f"])).unwrap();
        assert_eq!(first.start, 1);
        let names: Vec<_> = first.entries.iter().map(|e| e.name.as_slice()).collect();
        assert_eq!(names, [&b"."[..], b"f", b"a", b"b"]);
        assert_eq!(first.dir.as_ref().map(|d| d.name.as_slice()), Some(&b"."[..]), "index 0 names \".\"");
        // Directories: 0 ".", 1 "a", 2 "b".
        assert_eq!(r.announce(0), Err(RecvListError::DuplicateList(0)), "\".\" never gets a list");
        let d = r.announce(2).unwrap();
        let b = r.add(Some(d), entries(&["b/x", "b/c/"])).unwrap();
        assert_eq!(b.start, 6, "one past the first list's end");
        assert_eq!(b.dir.as_ref().map(|d| d.name.as_slice()), Some(&b"b"[..]));
        assert_eq!(r.announce(2), Err(RecvListError::DuplicateList(2)));
        assert_eq!(r.announce(3), Ok(3), "b/c is number 3");
        assert_eq!(r.announce(4), Err(RecvListError::BadDir(4)));
        assert_eq!(r.announce(-1), Err(RecvListError::BadDir(-1)));
        assert_eq!(r.get(2).map(|e| e.name.as_slice()), Some(&b"f"[..]));
        assert_eq!(r.get(6).map(|e| e.name.as_slice()), Some(&b"b/x"[..]));
        assert_eq!(r.get(5), None, "the gap names no entry");
        assert!(r.names(5) && r.names(0), "but it names the list's directory");
        assert!(!r.names(9) && !r.names(-1));
        assert_eq!(r.get(0), None);
        assert_eq!(r.get(i32::MAX), None);
        assert!(r.finish_first());
        assert_eq!(r.get(2), None, "a finished list is gone");
        assert!(!r.finish_first());
    }

    #[test]
    fn a_list_must_hold_its_directorys_entries_only() {
        let mut r = RecvLists::new(true, 100, 1000);
        assert!(matches!(r.first(entries(&[".", "a/b"])), Err(RecvListError::OutsideDir(_))));
        let mut r = RecvLists::new(true, 100, 1000);
        r.first(entries(&[".", "a/", "z/"])).unwrap();
        let d = r.announce(1).unwrap();
        // CVE-2024-12087's shape: a list announced for "a" naming a file of "z".
        assert!(matches!(r.add(Some(d), entries(&["z/evil"])), Err(RecvListError::OutsideDir(_))));
        let d = r.announce(2).unwrap();
        assert!(matches!(r.add(Some(d), entries(&["z/x/y"])), Err(RecvListError::OutsideDir(_))));
        let mut r = RecvLists::new(true, 100, 1000);
        assert_eq!(r.first(entries(&[".", "f", "f"])).unwrap_err(), RecvListError::DuplicateName);
    }

    #[test]
    fn what_a_receiver_holds_is_bounded() {
        let mut r = RecvLists::new(true, 2, 1000);
        assert!(r.first(entries(&[".", "a/", "b/"])).is_err(), "directories");
        let mut r = RecvLists::new(true, 100, 3);
        r.first(entries(&[".", "a/", "b/"])).unwrap();
        let d = r.announce(1).unwrap();
        assert_eq!(r.add(Some(d), entries(&["a/x"])).unwrap_err(), RecvListError::TooManyHeld(3));
        r.finish_first();
        let d = r.announce(2).unwrap();
        assert!(r.add(Some(d), entries(&["b/x"])).is_ok(), "room again once a list is done");
    }

    #[test]
    fn without_incremental_recursion_one_list_from_zero_unchecked() {
        let mut r = RecvLists::new(false, 10, 100);
        let l = r.first(entries(&[".", "a/", "a/x"])).unwrap();
        assert_eq!(l.start, 0);
        assert!(l.dir.is_none());
        assert_eq!(r.get(2).map(|e| e.name.as_slice()), Some(&b"a/x"[..]));
    }

    #[test]
    fn the_directories_remembered_are_bounded() {
        let mut l = SendLists::new(true, 2);
        assert_eq!(l.push(None, vec![".", "a/", "b/"], kind), Err(ListsError::TooManyDirs(2)));
    }
}
