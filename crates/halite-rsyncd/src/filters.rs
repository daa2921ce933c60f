//! The filter rules a transfer applies: the module's own (`filter`, `include`,
//! `exclude` in rsyncd.conf, which the client cannot override: a name they exclude does
//! not exist for the client) and the client's, read from the wire after the protocol
//! setup. Matching itself is halite-rsync's `filter` module.

use crate::module::ModuleView;
use halite_rsync::filter::{self, DaemonFilterParams, FilterError, FilterList, ParseOptions, Query, Side};
use halite_rsync::options::ServerOptions;

pub struct Filters {
    daemon: FilterList,
    client: FilterList,
    side: Side,
    /// The depths (components below the transfer root) of the directories whose
    /// per-directory merge files are in force, outermost first.
    entered: Vec<usize>,
}

impl Filters {
    /// `sender`: the daemon sends (rules for the sending side apply); otherwise it
    /// receives and the rules decide what `--delete` may remove.
    pub fn new(
        module: &ModuleView,
        client_rules: &[Vec<u8>],
        options: &ServerOptions,
        sender: bool,
        protocol: i32,
    ) -> Result<Filters, String> {
        let opts = ParseOptions { protocol, delete_excluded: options.delete_excluded, from0: false };
        let c = &module.config;
        let read = |p: &Option<std::path::PathBuf>| -> Result<Option<Vec<u8>>, String> {
            match p {
                Some(path) => std::fs::read(path).map(Some).map_err(|e| format!("{}: {e}", path.display())),
                None => Ok(None),
            }
        };
        let (include_from, exclude_from) = (read(&c.include_from)?, read(&c.exclude_from)?);
        let params = DaemonFilterParams {
            filter: c.filter.as_deref().map(str::as_bytes),
            include_from: include_from.as_deref(),
            include: c.include.as_deref().map(str::as_bytes),
            exclude_from: exclude_from.as_deref(),
            exclude: c.exclude.as_deref().map(str::as_bytes),
        };
        // The module's rules are the module's: parsed as the reference parses them before
        // it reads the client's options, so --delete-excluded cannot make them
        // sender-only (on a push that would switch them off).
        let daemon_opts = ParseOptions { delete_excluded: false, ..opts };
        let daemon = FilterList::daemon(&params, daemon_opts, &mut |_| None)
            .map_err(|e| format!("the module's filter rules: {e}"))?;
        let mut client = FilterList::from_wire(client_rules, opts).map_err(|e| format!("filter rules: {e}"))?;
        if options.cvs_exclude {
            client.add_cvs_exclude(sender).map_err(|e| format!("--cvs-exclude: {e}"))?;
        }
        Ok(Filters { daemon, client, side: if sender { Side::Sender } else { Side::Receiver }, entered: Vec::new() })
    }

    /// Sets the transfer root (relative to the module) the names are relative to. The
    /// per-directory rules of another root no longer apply.
    pub fn set_root(&mut self, root: &[u8]) {
        if self.client.root() != root {
            self.leave_dirs();
        }
        self.daemon.set_root(root);
        self.client.set_root(root);
    }

    /// Makes `dir` (relative to the transfer root, "" for the root) the directory whose
    /// entries are tested next, for the client's per-directory merge files (`dir-merge`,
    /// `-F`): the rules of directories at its depth or deeper are dropped, and its own
    /// merge files read through `read` (a module-relative path; None when absent), as the
    /// reference's change_local_filter_dir does. Directories must come depth first, each
    /// after its parent, as the sender lists them.
    ///
    /// A merge file the module's own rules hide is never read: the client names the
    /// merge file, and what it excludes would tell it what the file says.
    pub fn change_dir(
        &mut self,
        dir: &[u8],
        read: &mut dyn FnMut(&[u8]) -> Option<Vec<u8>>,
    ) -> Result<(), FilterError> {
        if !self.client.has_dir_merge() {
            return Ok(());
        }
        let depth = depth_of(dir);
        while self.entered.last().is_some_and(|&d| d >= depth) {
            self.entered.pop();
            self.client.leave_dir();
        }
        let (daemon, side) = (&self.daemon, self.side);
        let mut confined = |path: &[u8]| if daemon.hides_path(path, false, side) { None } else { read(path) };
        self.client.enter_dir(dir, &mut confined)?;
        self.entered.push(depth);
        Ok(())
    }

    /// Drops the per-directory rules of directories deeper than `dir` (after a subtree
    /// below it was walked out of order, as a deletion does).
    pub fn back_to(&mut self, dir: &[u8]) {
        let depth = depth_of(dir);
        while self.entered.last().is_some_and(|&d| d > depth) {
            self.entered.pop();
            self.client.leave_dir();
        }
    }

    /// Drops every directory's per-directory rules.
    pub fn leave_dirs(&mut self) {
        while self.entered.pop().is_some() {
            self.client.leave_dir();
        }
    }

    /// Whether the rules leave `name` out of what the daemon sends.
    pub fn excluded(&self, name: &[u8], is_dir: bool) -> bool {
        filter::is_excluded(&self.daemon, &self.client, &Query::new(name, is_dir, self.side))
    }

    /// Whether the module's own rules hide `name` (then it may not be written either).
    pub fn daemon_excluded(&self, name: &[u8], is_dir: bool) -> bool {
        self.daemon.hides_path(name, is_dir, self.side)
    }

    /// Whether `--delete` must leave `name` alone (a protect rule, or an exclude
    /// without --delete-excluded). Inside a directory being deleted, rules marked
    /// perishable (`p`) protect nothing, so they cannot keep the directory alive.
    pub fn protected(&self, name: &[u8], is_dir: bool, inside_deleted_dir: bool) -> bool {
        let mut q = Query::new(name, is_dir, Side::Receiver);
        q.ignore_perishable = inside_deleted_dir;
        filter::is_excluded(&self.daemon, &self.client, &q)
    }
}

/// How many components `dir` (relative to the transfer root) lies below it.
fn depth_of(dir: &[u8]) -> usize {
    if dir.is_empty() {
        0
    } else {
        dir.iter().filter(|&&b| b == b'/').count() + 1
    }
}
