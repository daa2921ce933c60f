//! The filter rules a transfer applies: the module's own (`filter`, `include`,
//! `exclude` in rsyncd.conf, which the client cannot override: a name they exclude does
//! not exist for the client) and the client's, read from the wire after the protocol
//! setup. Matching itself is halite-rsync's `filter` module.

use crate::module::ModuleView;
use halite_rsync::filter::{self, DaemonFilterParams, FilterList, ParseOptions, Query, Side};
use halite_rsync::options::ServerOptions;

pub struct Filters {
    daemon: FilterList,
    client: FilterList,
    side: Side,
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
        Ok(Filters { daemon, client, side: if sender { Side::Sender } else { Side::Receiver } })
    }

    /// Sets the transfer root (relative to the module) the names are relative to.
    pub fn set_root(&mut self, root: &[u8]) {
        self.daemon.set_root(root);
        self.client.set_root(root);
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
    /// without --delete-excluded).
    pub fn protected(&self, name: &[u8], is_dir: bool) -> bool {
        let mut q = Query::new(name, is_dir, Side::Receiver);
        q.ignore_perishable = true;
        filter::is_excluded(&self.daemon, &self.client, &q)
    }
}
