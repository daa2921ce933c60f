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

use std::collections::VecDeque;

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

    #[test]
    fn the_directories_remembered_are_bounded() {
        let mut l = SendLists::new(true, 2);
        assert_eq!(l.push(None, vec![".", "a/", "b/"], kind), Err(ListsError::TooManyDirs(2)));
    }
}
