//! The address book: a small read-only file naming the addresses of the accepted minions,
//! which the master rewrites as minions come, go and change addresses (`dns_address_book`).
//! The task that keeps it up to date ([`run`]) also keeps the roster (`roster.rs`,
//! `jumpbox_roster`), halite-jumpbox's VM list, on the same events.
//!
//! It exists for halite-dns, which serves one A/AAAA record per minion. The DNS daemon could
//! ask the master over its local channel instead, but a credential for that channel can
//! publish jobs to every minion, which is root on every VM: a daemon that answers queries
//! from the network must not hold it. A file the master writes and halite-dns only reads
//! gives the DNS daemon exactly what it needs and nothing else, and halite-dns already
//! reloads files that change.
//!
//! ```text
//! # halite master: the addresses of the accepted minions (dns_address_book), for halite-dns.
//! # <minion id> <address> [<address> ...]
//! app1 10.0.0.4
//! web1 10.0.0.3 fd00::3
//! ```
//!
//! A minion's addresses come from its mine's `network.ip_addrs` (what the site's minions
//! publish for each other, and what the rest built from the mine, /etc/hosts, reads), else
//! from its cached `ipv4`/`ipv6` grains. Nothing is filtered by network here: loopback and the rest
//! are halite-dns's to leave out, per zone.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use halite_pki::KeyState;
use halite_proto::payload::{Value, ValueExt};
use halite_ratelog::shown;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{debug, error, info, warn};

use crate::master::Master;
use crate::mine::stored_entry;

/// Minion id → its addresses, in the order found.
pub type Entries = BTreeMap<String, Vec<IpAddr>>;

/// The mine function whose data is a minion's addresses.
pub const MINE_FUNCTION: &str = "network.ip_addrs";

const HEADER: &str = "# halite master: the addresses of the accepted minions (dns_address_book), for halite-dns.\n\
                      # <minion id> <address> [<address> ...]\n";

/// How long a burst of events (a salt-key run over many keys, a swarm of minions starting)
/// is given to arrive before the book is recomputed once for all of it.
const SETTLE: Duration = Duration::from_millis(200);

/// The least time between two recomputations: each reads every accepted minion's mine, so a
/// storm of start events (or a minion firing its own start event in a loop) must not keep a
/// blocking thread busy with nothing but this.
const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// A key removed by hand from the pki dir fires no event, nor does a write failure retry by
/// itself: the book is recomputed this often regardless.
const SAFETY_NET: Duration = Duration::from_secs(30);

/// How often the roster's task looks at who holds a publish connection: nothing fires an
/// event when a minion goes away, and reading `/proc/net/tcp` costs far less than
/// recomputing the roster, which happens only when the set of addresses changed.
const PRESENCE_POLL: Duration = Duration::from_secs(5);

/// Whether an id can stand on a line of the book: halite-dns splits lines on whitespace and
/// drops `#` comments, so an id holding either (or a control character, or nothing) would be
/// read as something else. Such ids are valid Salt ids but no DNS name either.
pub fn usable_id(id: &str) -> bool {
    !id.is_empty() && !id.chars().any(|c| c.is_whitespace() || c.is_control() || c == '#')
}

/// The entries that make a line: a usable id with at least one address, the addresses
/// deduplicated in the order found (the first address is the one a reader is likeliest to
/// prefer, so duplicates later in the list must not move it).
fn lines(entries: &Entries) -> impl Iterator<Item = (&str, Vec<IpAddr>)> {
    entries.iter().filter(|(id, _)| usable_id(id)).filter_map(|(id, addrs)| {
        let mut unique: Vec<IpAddr> = Vec::with_capacity(MAX_ADDRESSES);
        for addr in addrs {
            if unique.len() == MAX_ADDRESSES {
                break;
            }
            if !unique.contains(addr) {
                unique.push(*addr);
            }
        }
        (!unique.is_empty()).then_some((id.as_str(), unique))
    })
}

/// The text of the book: the header, then one line per minion with an address, by id.
pub fn render(entries: &Entries) -> String {
    let mut out = String::from(HEADER);
    for (id, addrs) in lines(entries) {
        out.push_str(id);
        for addr in addrs {
            out.push(' ');
            out.push_str(&addr.to_string());
        }
        out.push('\n');
    }
    out
}

/// Addresses written per minion: a VM has a handful, and halite-dns serves no more than this
/// many (`halite_dns::minions::MAX_ADDRESSES_PER_MINION`). The minion controls the list, so
/// without a bound one minion's half a million addresses would cost the master seconds per
/// rewrite and make the book too large for halite-dns to read at all, freezing every VM's
/// record.
pub const MAX_ADDRESSES: usize = 32;

/// Items of a minion's list looked at: enough for [`MAX_ADDRESSES`] distinct ones among
/// repeats and junk, and a bound on the work a hostile list costs.
const MAX_ITEMS_READ: usize = 1024;

/// Every item of `list` that is text and an address, among its first [`MAX_ITEMS_READ`].
fn parse_all(list: &[Value]) -> impl Iterator<Item = IpAddr> + '_ {
    list.iter().take(MAX_ITEMS_READ).filter_map(|item| item.as_text()?.trim().parse().ok())
}

/// The addresses a minion's stored mine gives, when its `network.ip_addrs` entry is a list
/// of strings. An empty list counts (the minion has no address its mine arguments select,
/// `network.ip_addrs: [eth1]` say): falling back to the grains would publish the very
/// addresses the operator's arguments left out.
pub fn from_mine(mine: &Value) -> Option<Vec<IpAddr>> {
    // The entry's `allow_tgt` is not applied: it limits which minions read the entry through
    // `mine.get`, and the book is the master's own export, which the operator asked for and
    // which the fallback would fill from the grains anyway.
    let data = stored_entry(mine, MINE_FUNCTION)?.data;
    let Value::Array(list) = data else { return None };
    if !list.iter().all(|item| item.as_text().is_some()) {
        return None;
    }
    Some(parse_all(list).collect())
}

/// The addresses in a minion's cached `ipv4` and `ipv6` grains, in that order.
pub fn from_grains(grains: &Value) -> Vec<IpAddr> {
    ["ipv4", "ipv6"]
        .iter()
        .filter_map(|grain| match grains.get(grain) {
            Some(Value::Array(list)) => Some(parse_all(list)),
            _ => None,
        })
        .flatten()
        .collect()
}

/// A minion's addresses: its mine's when it has a usable `network.ip_addrs`, else its
/// grains'. `mine` is the minion's whole stored mine.
pub fn addresses(mine: Option<&Value>, grains: Option<&Value>) -> Vec<IpAddr> {
    mine.and_then(from_mine).or_else(|| grains.map(from_grains)).unwrap_or_default()
}

/// The book's entries now: each id with an accepted key, and its addresses. An error (the
/// pki dir or the store unreadable) is returned rather than an empty book, which would take
/// every minion out of DNS until the next success.
pub fn collect(master: &Master) -> anyhow::Result<Entries> {
    let ids = master.pki.list(KeyState::Accepted)?;
    let mines = master.store.mine_of(&ids)?;
    let mut entries = Entries::new();
    let mut without_mine = Vec::new();
    for id in ids {
        match mines.get(&id).and_then(from_mine) {
            Some(addrs) => {
                entries.insert(id, addrs);
            }
            None => without_mine.push(id),
        }
    }
    // Grains are read only for the minions that need them: a minion's cached data holds its
    // whole pillar too, which is far more to decode than its mine.
    let data = master.store.minion_data_of(&without_mine)?;
    for id in without_mine {
        let addrs = data.get(&id).map(|d| addresses(None, Some(&d.grains))).unwrap_or_default();
        entries.insert(id, addrs);
    }
    Ok(entries)
}

/// Writes `text` to `path` so that a reader sees the old file or the new one, never a part:
/// a temporary file in the same directory, synced, then renamed over the target. The
/// directory is created (0755) when missing.
pub fn write_atomically(path: &Path, text: &str) -> io::Result<()> {
    let name = path.file_name().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"))?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::DirBuilder::new().recursive(true).mode(0o755).create(dir)?;
    let tmp = dir.join(format!(".{}.tmp.{}", name.to_string_lossy(), std::process::id()));
    // A leftover of a crashed run with the same pid goes first, so the file can be created
    // exclusively, which also refuses to follow a symlink planted in its place.
    let _ = fs::remove_file(&tmp);
    let written = (|| {
        let mut file = fs::OpenOptions::new().write(true).create_new(true).mode(0o644).open(&tmp)?;
        file.write_all(text.as_bytes())?;
        // The umask may have taken bits off the creation mode; halite-dns runs as another user.
        file.set_permissions(fs::Permissions::from_mode(0o644))?;
        file.sync_all()?;
        // The directory is not synced: the book is rewritten at every start, so a rename lost
        // in a crash is repaired by the next run.
        fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// A file the master keeps from its own state, and the text it last wrote there.
struct Kept {
    path: PathBuf,
    /// The text last written successfully; `None` until the first write, so that a stale
    /// file of an older run is always replaced at start.
    written: Option<String>,
}

impl Kept {
    fn new(path: PathBuf) -> Kept {
        Kept { path, written: None }
    }

    /// Writes `text` when it differs from what was last written, or the file has gone;
    /// returns whether it wrote.
    fn put(&mut self, text: String) -> io::Result<bool> {
        if self.written.as_deref() == Some(text.as_str()) && self.path.exists() {
            return Ok(false);
        }
        write_atomically(&self.path, &text)?;
        self.written = Some(text);
        Ok(true)
    }
}

/// The book on disk and what the task remembers of it.
struct Book {
    file: Kept,
    /// Ids already warned about as unusable, so a warning is logged once per such minion, not
    /// at every recomputation.
    warned: HashSet<String>,
}

impl Book {
    fn new(path: PathBuf) -> Book {
        Book { file: Kept::new(path), warned: HashSet::new() }
    }

    /// Writes `entries` when their text differs from what was last written, or the file has
    /// gone; returns whether it wrote.
    fn update(&mut self, entries: &Entries) -> io::Result<bool> {
        self.warn_unusable(entries);
        self.file.put(render(entries))
    }

    fn warn_unusable(&mut self, entries: &Entries) {
        let unusable: HashSet<&String> = entries.keys().filter(|id| !usable_id(id)).collect();
        self.warned.retain(|id| unusable.contains(id));
        for id in unusable {
            if self.warned.insert(id.clone()) {
                warn!(
                    minion = %shown(id),
                    path = %self.file.path.display(),
                    "minion left out of the address book: its id holds whitespace, a control character or '#'"
                );
            }
        }
    }
}

/// Whether an event can change the book: a key accepted, rejected or deleted (`salt/key`,
/// and `key`, the AES rotation after which the master forgets a removed minion's data), a
/// sign-in (`salt/auth`), a minion's mine changed or a minion started (its grains are cached
/// around its start).
pub fn relevant(tag: &str) -> bool {
    let per_minion = |prefix: &str, suffix: &str| {
        tag.strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(suffix))
            .is_some_and(|id| !id.is_empty() && !id.contains('/'))
    };
    matches!(tag, "salt/key" | "key" | "salt/auth")
        || per_minion("halite/mine/", "/changed")
        || per_minion("salt/minion/", "/start")
}

/// What the task keeps: the address book, the roster, or both.
pub struct Files {
    pub address_book: Option<PathBuf>,
    pub roster: Option<PathBuf>,
}

struct KeptFiles {
    book: Option<Book>,
    roster: Option<Kept>,
}

/// Recomputes the files and writes those that changed, on the blocking pool (they read the
/// pki dir and the store).
async fn refresh(master: &Arc<Master>, kept: KeptFiles) -> KeptFiles {
    let master = Arc::clone(master);
    let paths = (kept.book.as_ref().map(|b| b.file.path.clone()), kept.roster.as_ref().map(|r| r.path.clone()));
    let done = tokio::task::spawn_blocking(move || {
        let mut kept = kept;
        if let Some(book) = &mut kept.book {
            let written = collect(&master).map(|entries| (lines(&entries).count(), book.update(&entries)));
            report(&book.file.path, "address book", written);
        }
        if let Some(roster) = &mut kept.roster {
            let written = crate::roster::text(&master).map(|(count, text)| (count, roster.put(text)));
            report(&roster.path, "roster", written);
        }
        kept
    })
    .await;
    done.unwrap_or_else(|e| {
        error!(error = %e, "the task keeping the address book and roster failed; they will be rewritten");
        KeptFiles { book: paths.0.map(Book::new), roster: paths.1.map(Kept::new) }
    })
}

fn report(path: &Path, what: &str, outcome: anyhow::Result<(usize, io::Result<bool>)>) {
    match outcome {
        Ok((minions, Ok(true))) => info!(path = %path.display(), minions, "{what} written"),
        Ok((_, Ok(false))) => debug!(path = %path.display(), "{what} unchanged"),
        Ok((_, Err(e))) => warn!(path = %path.display(), error = %e, "cannot write the {what}"),
        Err(e) => warn!(path = %path.display(), error = %e, "cannot collect the {what}; the file is left as it is"),
    }
}

/// Waits out a burst: whatever else arrives within [`SETTLE`] (and until [`MIN_INTERVAL`]
/// after the last recomputation) is taken in by the one recomputation that follows. Returns
/// false when the bus has closed.
async fn settle(events: &mut broadcast::Receiver<crate::events::Event>, last: Instant) -> bool {
    tokio::time::sleep_until((Instant::now() + SETTLE).max(last + MIN_INTERVAL)).await;
    loop {
        match events.try_recv() {
            Ok(_) | Err(TryRecvError::Lagged(_)) => continue,
            Err(TryRecvError::Empty) => return true,
            Err(TryRecvError::Closed) => return false,
        }
    }
}

/// `/proc/net/tcp` is megabytes with tens of thousands of sockets: read off the runtime.
async fn addrs_on(port: u16) -> std::collections::BTreeSet<IpAddr> {
    tokio::task::spawn_blocking(move || crate::presence::remote_addrs_on_port(port)).await.unwrap_or_default()
}

/// Keeps the files up to date until the master's event bus closes: written once at start,
/// then after every relevant event (bursts coalesced) and every [`SAFETY_NET`]; the roster
/// also when the addresses holding a publish connection change ([`PRESENCE_POLL`]), since
/// no event says a minion went away.
pub async fn run(master: Arc<Master>, files: Files) {
    // Subscribed before the first computation, so that nothing it misses goes unseen.
    let mut events = master.events().subscribe();
    for (path, what) in
        [(&files.address_book, "the address book for halite-dns"), (&files.roster, "the roster for halite-jumpbox")]
    {
        if let Some(path) = path {
            info!(path = %path.display(), "keeping {what}");
        }
    }
    let mut kept = KeptFiles { book: files.address_book.map(Book::new), roster: files.roster.map(Kept::new) };
    let mut safety_net = tokio::time::interval(SAFETY_NET);
    safety_net.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut presence_poll = tokio::time::interval(PRESENCE_POLL);
    presence_poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let publish_port = master.settings.publish_port;
    let mut present = std::collections::BTreeSet::new();
    // The interval's first tick is immediate: that is the write at start.
    let mut last = Instant::now();
    loop {
        tokio::select! {
            _ = safety_net.tick() => {}
            _ = presence_poll.tick(), if kept.roster.is_some() => {
                if addrs_on(publish_port).await == present {
                    continue;
                }
            }
            received = events.recv() => match received {
                Ok(event) if relevant(&event.tag) => {
                    if !settle(&mut events, last).await {
                        return;
                    }
                }
                Ok(_) => continue,
                // What was skipped may have been relevant.
                Err(RecvError::Lagged(skipped)) => {
                    debug!(skipped, "address book fell behind the event bus; recomputing");
                    if !settle(&mut events, last).await {
                        return;
                    }
                }
                Err(RecvError::Closed) => return,
            },
        }
        // Taken before the roster reads presence, so a change after it is seen by the next poll.
        present = addrs_on(publish_port).await;
        kept = refresh(&master, kept).await;
        last = Instant::now();
        safety_net.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use halite_pki::{MasterKeys, PkiDir};
    use halite_proto::payload::map;
    use halite_store::MinionData;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn y(text: &str) -> Value {
        halite_yaml::load(text).unwrap()
    }

    fn entries(pairs: &[(&str, &[&str])]) -> Entries {
        pairs.iter().map(|(id, addrs)| (id.to_string(), addrs.iter().map(|a| ip(a)).collect())).collect()
    }

    #[test]
    fn render_sorts_by_id_and_dedups_addresses_in_order() {
        let book = render(&entries(&[
            ("web1", &["10.0.0.3", "fd00::3", "10.0.0.3"]),
            ("app1", &["10.0.0.4"]),
            ("db1", &["fd00::5", "10.0.0.5", "fd00::5"]),
        ]));
        assert_eq!(
            book,
            "# halite master: the addresses of the accepted minions (dns_address_book), for halite-dns.\n\
             # <minion id> <address> [<address> ...]\n\
             app1 10.0.0.4\n\
             db1 fd00::5 10.0.0.5\n\
             web1 10.0.0.3 fd00::3\n"
        );
    }

    #[test]
    fn a_minions_address_list_is_bounded() {
        let many: Vec<Value> = (0..200_000u32).map(|i| Value::from(std::net::Ipv4Addr::from(i).to_string())).collect();
        let mine = Value::Map(vec![(Value::from(MINE_FUNCTION), Value::Array(many))]);
        let addrs = from_mine(&mine).unwrap();
        assert_eq!(addrs.len(), MAX_ITEMS_READ);
        let book = render(&BTreeMap::from([("web1".to_owned(), addrs)]));
        assert_eq!(book.lines().last().unwrap().split(' ').count(), 1 + MAX_ADDRESSES);
    }

    #[test]
    fn render_leaves_out_bad_ids_and_minions_without_an_address() {
        let book = render(&entries(&[
            ("web1", &["10.0.0.3"]),
            ("no-address", &[]),
            ("with space", &["10.0.0.6"]),
            ("tab\there", &["10.0.0.7"]),
            ("hash#tag", &["10.0.0.8"]),
            ("bell\u{7}", &["10.0.0.9"]),
            ("nbsp\u{a0}", &["10.0.0.10"]),
            ("", &["10.0.0.11"]),
        ]));
        let body: Vec<&str> = book.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(body, ["web1 10.0.0.3"]);
        assert_eq!(render(&Entries::new()).lines().count(), 2, "the header alone");
    }

    #[test]
    fn addresses_come_from_the_mine_else_the_grains() {
        let grains = y("{ipv4: [127.0.0.1, 10.0.0.3], ipv6: ['::1', 'fd00::3', 'fe80::1%eth0'], os: Debian}");
        let grains = Some(&grains);
        let mine = |text: &str| y(text);
        assert_eq!(
            addresses(Some(&mine("{network.ip_addrs: [10.0.0.4, not-an-ip, 'fd00::4'], test.ping: true}")), grains),
            [ip("10.0.0.4"), ip("fd00::4")],
            "the mine wins; what does not parse is skipped"
        );
        assert_eq!(
            addresses(
                Some(&mine("{network.ip_addrs: {__saltmine_acl__: 1, __data__: [10.0.0.5], allow_tgt: db1}}")),
                grains
            ),
            [ip("10.0.0.5")],
            "an entry stored with an ACL is unwrapped as mine.get unwraps it"
        );
        assert_eq!(
            addresses(Some(&mine("{network.ip_addrs: []}")), grains),
            Vec::<IpAddr>::new(),
            "an empty list is the mine's answer"
        );
        let from_grains = [ip("127.0.0.1"), ip("10.0.0.3"), ip("::1"), ip("fd00::3")];
        for other in ["{test.ping: true}", "{network.ip_addrs: 10.0.0.4}", "{network.ip_addrs: [10.0.0.4, 5]}", "[1]"] {
            assert_eq!(addresses(Some(&mine(other)), grains), from_grains, "{other}: not a list of strings");
        }
        assert_eq!(addresses(None, grains), from_grains, "no mine; loopback is kept");
        assert_eq!(addresses(None, Some(&y("{ipv4: 10.0.0.3, ipv6: [1, 'fd00::3']}"))), [ip("fd00::3")]);
        assert_eq!(addresses(None, None), Vec::<IpAddr>::new());
    }

    #[test]
    fn relevant_tags() {
        for tag in ["salt/key", "key", "salt/auth", "halite/mine/web1/changed", "salt/minion/web1/start"] {
            assert!(relevant(tag), "{tag}");
        }
        for tag in [
            "salt/job/20260101000000000000/ret/web1",
            "salt/key/extra",
            "halite/mine//changed",
            "halite/mine/a/b/changed",
            "salt/minion/web1/stop",
            "minion_start",
        ] {
            assert!(!relevant(tag), "{tag}");
        }
    }

    #[test]
    fn the_book_is_written_atomically_at_start_then_only_on_change() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/halite/addresses");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, render(&entries(&[("web1", &["10.0.0.3"])]))).unwrap();
        let inode = std::fs::metadata(&path).unwrap().ino();
        let mut book = Book::new(path.clone());
        let web1 = entries(&[("web1", &["10.0.0.3"])]);
        assert!(book.update(&web1).unwrap(), "a stale book of an older run is replaced, even when equal");
        assert_ne!(std::fs::metadata(&path).unwrap().ino(), inode, "by a rename");
        assert!(!book.update(&web1).unwrap(), "unchanged");
        let both = entries(&[("web1", &["10.0.0.3"]), ("app1", &["10.0.0.4"])]);
        assert!(book.update(&both).unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), render(&both));
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o644);
        std::fs::remove_file(&path).unwrap();
        assert!(book.update(&both).unwrap(), "a book removed behind the master's back is written again");
        let names: Vec<String> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["addresses"], "no temporary file left");

        let fresh = dir.path().join("new/dir/book");
        write_atomically(&fresh, "x\n").expect("the directory is created");
        assert_eq!(std::fs::read_to_string(&fresh).unwrap(), "x\n");
        let mut blocked = Book::new(dir.path().join("addresses-file").join("book"));
        std::fs::write(dir.path().join("addresses-file"), "").unwrap();
        assert!(blocked.update(&both).is_err(), "an error is returned, not a panic");
        assert_eq!(blocked.file.written, None, "and retried next time");
    }

    struct Fixture {
        master: Arc<Master>,
        dir: tempfile::TempDir,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let pki = PkiDir::open(dir.path().join("pki")).expect("pki dir");
        let keys = MasterKeys::load_or_create(&pki, 2048).expect("master keys");
        let store = halite_store::Store::open(&dir.path().join("halite.redb")).expect("store");
        let (config, _) = halite_config::MasterConfig::load_at(None, dir.path()).expect("embedded config");
        let mut settings = crate::master::Settings::from_config(&config).expect("settings");
        settings.cachedir = dir.path().to_owned();
        let (publisher, _published) = halite_zmq::PublishSender::channel();
        let user_keys = crate::clear::UserKeys::load_or_create(dir.path(), &["root".to_owned()]).expect("user keys");
        let master = Arc::new(Master::new(settings, keys, pki, store, user_keys, publisher).expect("master"));
        Fixture { master, dir }
    }

    fn accept(f: &Fixture, id: &str) {
        f.master.pki.write(KeyState::Accepted, id, "not a key: only listed here").expect("accept");
    }

    fn put_mine(f: &Fixture, id: &str, addrs: &[&str]) {
        let list = Value::Array(addrs.iter().map(|a| Value::from(*a)).collect());
        f.master.store.update_mine(id, vec![(Value::from(MINE_FUNCTION), list)], false).expect("mine");
    }

    fn put_grains(f: &Fixture, id: &str, grains: &str) {
        let data = MinionData { grains: y(grains), pillar: map::<_, String>([]) };
        f.master.store.put_minion_data(id, &data).expect("grains");
    }

    #[test]
    fn collect_reads_the_accepted_minions_mine_else_grains() {
        let f = fixture();
        accept(&f, "web1");
        put_mine(&f, "web1", &["10.0.0.3", "fd00::3"]);
        put_grains(&f, "web1", "{ipv4: [10.9.9.9]}");
        accept(&f, "app1");
        put_grains(&f, "app1", "{ipv4: [127.0.0.1, 10.0.0.4], ipv6: []}");
        accept(&f, "quiet1");
        // Data of minions without an accepted key is not theirs to publish.
        f.master.pki.write(KeyState::Pending, "pending1", "not a key").expect("pending");
        put_mine(&f, "pending1", &["10.0.0.7"]);
        put_mine(&f, "removed1", &["10.0.0.8"]);

        let got = collect(&f.master).expect("collect");
        assert_eq!(
            got,
            entries(&[("app1", &["127.0.0.1", "10.0.0.4"]), ("quiet1", &[]), ("web1", &["10.0.0.3", "fd00::3"])])
        );
        assert_eq!(
            render(&got).lines().skip(2).collect::<Vec<_>>(),
            ["app1 127.0.0.1 10.0.0.4", "web1 10.0.0.3 fd00::3"]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn run_writes_at_start_and_follows_a_mine_change() {
        let f = fixture();
        accept(&f, "web1");
        put_mine(&f, "web1", &["10.0.0.3"]);
        let path = f.dir.path().join("book/addresses");
        let files = Files { address_book: Some(path.clone()), roster: None };
        let task = tokio::spawn(run(f.master.clone(), files));
        let wait_for = |want: String| {
            let path = path.clone();
            async move {
                let deadline = Instant::now() + Duration::from_secs(10);
                loop {
                    if std::fs::read_to_string(&path).ok().as_deref() == Some(want.as_str()) {
                        return;
                    }
                    assert!(Instant::now() < deadline, "the book never became {want:?}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        wait_for(render(&entries(&[("web1", &["10.0.0.3"])]))).await;
        put_mine(&f, "web1", &["10.0.0.30"]);
        f.master.events().fire("salt/job/1/ret/web1", map::<_, String>([]));
        f.master.events().fire("halite/mine/web1/changed", map([("id", Value::from("web1"))]));
        wait_for(render(&entries(&[("web1", &["10.0.0.30"])]))).await;
        task.abort();
    }
}
