//! Reading the configured zone files, and noticing when they change.
//!
//! A zone is re-read when any file it was read from (the main file and its `$INCLUDE`s)
//! changes its size, modification time or inode: Salt's `file.managed` replaces a file by
//! renaming a new one over it, an editor may write it in place. A zone that fails to load
//! keeps the version being served, and the error (file and line) is logged once per change.
//!
//! A zone listed under `minions:` also holds the accepted minions' addresses from the
//! master's address book (`halite_dns::minions`), re-read when that file changes. Such a
//! zone's SOA serial is bumped on every change to what it serves (the zone file's serial, the
//! clock's seconds or the last serial plus one, whichever is latest), so its secondaries
//! follow; a zone without minions keeps its file's serial.

use std::collections::HashSet;
use std::fs;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use halite_dns::config::Config;
use halite_dns::forward::Access;
use halite_dns::minions::{self, AddressBook, MAX_BOOK_BYTES};
use halite_dns::respond::Authority;
use halite_dns::transfer::Secondaries;
use halite_dns::zone::{Generated, StoredName, Zone, ZoneError};
use ipnet::IpNet;

/// Largest zone file read (all of a zone's files together): a generated file gone wrong
/// must not take the host's memory.
pub const MAX_ZONE_BYTES: u64 = 256 << 20;

/// What identifies a file's content without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    mtime_ns: i128,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = fs::metadata(path).ok()?;
    Some(Stamp {
        len: meta.len(),
        mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        inode: meta.ino(),
    })
}

/// The files one load of a zone read, each with its stamp from before it was read.
type FilesRead = Vec<(PathBuf, Option<Stamp>)>;

/// A configured zone: where it comes from, what it was read from last time, the zone its
/// files held last time they loaded, and what is served (the same, plus the minions).
struct Source {
    apex: StoredName,
    file: PathBuf,
    /// Every file the last attempt read, with its stamp then.
    read: FilesRead,
    /// The zone as its files held it when they last loaded, and the digest of those files.
    loaded: Option<(Arc<Zone>, u64)>,
    /// The networks whose minions the zone holds, when it is listed under `minions:`.
    minions: Option<Vec<IpNet>>,
    /// The minion records served now (those [`Zone::with_generated`] added).
    served: Vec<Generated>,
    /// What the last rebuild found wrong with the minions, so each problem is logged once
    /// while it lasts: a minion changing its addresses every second must not fill the log.
    noted: HashSet<String>,
    zone: Option<Arc<Zone>>,
}

/// The master's address book, as last read.
struct Book {
    path: PathBuf,
    stamp: Option<Stamp>,
    book: AddressBook,
    /// What the book held that could not be used, as last reported.
    problems: HashSet<String>,
    /// Why the last read failed, so a lasting failure is reported once, not every poll; and
    /// whether reading again can help before the file changes (not for one too large).
    failing: Option<(String, bool)>,
}

/// The configured zones and the [`Authority`] built from those that loaded.
pub struct Zones {
    sources: Vec<Source>,
    book: Option<Book>,
}

/// What a refresh changed and found wrong, for the log.
#[derive(Default)]
pub struct Refresh {
    /// The zones now served in a new version, with their record counts.
    pub reloaded: Vec<(StoredName, usize)>,
    /// The zones whose files were read anew (their load warnings are worth logging; a zone
    /// rebuilt for the minions alone has the same ones as before).
    pub files_loaded: Vec<StoredName>,
    /// Zones that did not load: their last good version stays.
    pub errors: Vec<ZoneError>,
    /// What the address book held that could not be served.
    pub notes: Vec<String>,
}

const TOO_LARGE: &str = "too large";
const NOT_REGULAR: &str = "not a regular file";

/// A regular file's bytes, up to `room` of them (more is the error [`TOO_LARGE`]).
fn read_bounded(path: &Path, room: u64) -> Result<Vec<u8>, String> {
    let file = fs::File::open(path).map_err(|e| e.to_string())?;
    // Not a device or a pipe: /dev/zero would never end, a FIFO would block reloads.
    if !file.metadata().map_err(|e| e.to_string())?.is_file() {
        return Err(NOT_REGULAR.into());
    }
    let mut bytes = Vec::new();
    // One byte past the room tells a file that grew since it was measured.
    std::io::Read::read_to_end(&mut std::io::Read::take(file, room + 1), &mut bytes).map_err(|e| e.to_string())?;
    if bytes.len() as u64 > room {
        return Err(TOO_LARGE.into());
    }
    Ok(bytes)
}

/// What one load of a zone's files gave: the zone, the files read (with their stamps before
/// reading), and a digest of their bytes, which tells a touched file from a changed one.
struct Loaded {
    outcome: Result<Zone, ZoneError>,
    read: FilesRead,
    digest: u64,
}

/// Loads one zone from `file`, resolving `$INCLUDE` paths against the file's directory.
fn load(apex: &StoredName, file: &Path) -> Loaded {
    let dir = file.parent().unwrap_or(Path::new(".")).to_path_buf();
    let mut read = vec![(file.to_path_buf(), stamp(file))];
    let mut total = 0u64;
    let digest = std::cell::RefCell::new(std::collections::hash_map::DefaultHasher::new());
    let fetch = |path: &Path, total: &mut u64| -> Result<Vec<u8>, String> {
        let bytes = read_bounded(path, MAX_ZONE_BYTES - *total).map_err(|e| {
            if e == TOO_LARGE {
                format!("the zone's files hold more than {MAX_ZONE_BYTES} bytes")
            } else {
                e
            }
        })?;
        *total += bytes.len() as u64;
        let mut digest = digest.borrow_mut();
        path.hash(&mut *digest);
        bytes.hash(&mut *digest);
        Ok(bytes)
    };
    let main = match fetch(file, &mut total) {
        Ok(bytes) => bytes,
        Err(e) => {
            let error = ZoneError { zone: apex.to_string(), file: file.display().to_string(), line: None, message: e };
            return Loaded { outcome: Err(error), read, digest: 0 };
        }
    };
    let outcome = Zone::load(apex, &file.display().to_string(), &main, &mut |included| {
        let path = dir.join(included);
        read.push((path.clone(), stamp(&path)));
        fetch(&path, &mut total)
    });
    let digest = digest.into_inner().finish();
    Loaded { outcome, read, digest }
}

impl Zones {
    /// Reads every zone (and the address book, when a zone holds minions); a zone that
    /// fails is reported in the errors and not served until a change to its files makes it
    /// load.
    pub fn load(config: &Config, now: u32) -> (Zones, Refresh) {
        let sources = config
            .zones
            .iter()
            .map(|(apex, file)| Source {
                apex: apex.clone(),
                file: file.clone(),
                read: Vec::new(),
                loaded: None,
                minions: config.minions.iter().find(|(zone, _)| zone == apex).map(|(_, nets)| nets.clone()),
                served: Vec::new(),
                noted: HashSet::new(),
                zone: None,
            })
            .collect();
        let book = config.minion_addresses.as_ref().filter(|_| !config.minions.is_empty()).map(|path| Book {
            path: path.clone(),
            stamp: None,
            book: AddressBook::default(),
            problems: HashSet::new(),
            failing: None,
        });
        let mut zones = Zones { sources, book };
        let refresh = zones.refresh(true, now);
        (zones, refresh)
    }

    /// Re-reads the zones whose files changed (all of them when `force`, as on SIGHUP), and
    /// rebuilds those holding minions when the address book changed. A zone is served anew
    /// only when what it holds changed: a touched file, or a SIGHUP with nothing edited,
    /// changes nothing (and bumps no serial). `now`: the clock's seconds, for the serials of
    /// zones with minions.
    pub fn refresh(&mut self, force: bool, now: u32) -> Refresh {
        let mut out = Refresh::default();
        let book_changed = self.book.as_mut().is_some_and(|book| book.reread(force, &mut out.notes));
        // The zones whose files hold something new.
        let mut changed: Vec<bool> = Vec::with_capacity(self.sources.len());
        for source in &mut self.sources {
            let touched = force || source.read.iter().any(|(path, then)| stamp(path) != *then);
            if !touched {
                changed.push(false);
                continue;
            }
            let Loaded { outcome, read, digest } = load(&source.apex, &source.file);
            // Kept even when the load fails: the error is reported once per change.
            source.read = read;
            match outcome {
                Ok(zone) if source.loaded.as_ref().is_some_and(|(_, was)| *was == digest) => {
                    drop(zone);
                    changed.push(false);
                }
                Ok(zone) => {
                    if let Some(file_serial) = source.minions.as_ref().map(|_| zone.serial()) {
                        // Date-style serials are ahead of the clock until 2034: the serial
                        // then starts from the file's at every start, behind what was served.
                        if file_serial > domain_serial(now) {
                            out.notes.push(format!(
                                "{}: the zone file's serial {file_serial} is ahead of the clock; a zone holding minions \
                                 should keep a small one (as the site's 1), or its serial goes back at a restart",
                                source.apex
                            ));
                        }
                    }
                    out.files_loaded.push(source.apex.clone());
                    source.loaded = Some((Arc::new(zone), digest));
                    changed.push(true);
                }
                Err(e) => {
                    out.errors.push(e);
                    changed.push(false);
                }
            }
        }
        // Forward zones first: a reverse zone's PTRs name what they serve, and any zone
        // file's addresses are no minion's to name, so a change to any file is one for them.
        let any_file_changed = changed.iter().any(|c| *c);
        let mut order: Vec<usize> = (0..self.sources.len()).collect();
        order.sort_by_cached_key(|&i| minions::is_reverse(&self.sources[i].apex));
        let mut served_by_forward: Vec<(StoredName, IpAddr)> = Vec::new();
        let mut forward_changed = false;
        // Read only when a PTR is made.
        let mut claimed: Option<HashSet<IpAddr>> = None;
        for i in order {
            let source = &self.sources[i];
            let Some((loaded, _)) = source.loaded.clone() else { continue };
            let reverse = minions::is_reverse(&source.apex);
            let zone = match (&source.minions, &self.book) {
                (Some(networks), Some(book)) => {
                    let due = changed[i]
                        || book_changed
                        || (reverse && (forward_changed || any_file_changed))
                        || source.zone.is_none();
                    if !due {
                        if !reverse {
                            served_by_forward.extend(minions::served(&source.served, &[]));
                        }
                        continue;
                    }
                    let mut problems = Vec::new();
                    let generated = if reverse {
                        let claimed = claimed.get_or_insert_with(|| {
                            let files = self.sources.iter().filter_map(|s| s.loaded.as_ref());
                            files.flat_map(|(zone, _)| minions::zone_addresses(zone)).collect()
                        });
                        let (records, ambiguous) =
                            minions::ptr_records(&source.apex, networks, &served_by_forward, claimed);
                        problems.extend(
                            ambiguous
                                .iter()
                                .map(|addr| format!("{addr} is served at more than one name; it gets no PTR")),
                        );
                        records
                    } else {
                        let (records, found) = minions::address_records(&book.book, &source.apex, networks);
                        problems.extend(found);
                        records
                    };
                    let previous = source.zone.as_ref().map(|zone| zone.serial());
                    let serial = minions::next_serial(loaded.serial(), previous, now);
                    let (zone, left_out) = loaded.with_generated(&generated, loaded.soa().1.ttl, serial);
                    problems.extend(left_out.iter().map(|owner| {
                        format!("{owner} is in the zone file (or below a delegation); the minion's record is left out")
                    }));
                    let served: Vec<Generated> =
                        generated.into_iter().filter(|(owner, _)| !left_out.contains(owner)).collect();
                    if !reverse {
                        served_by_forward.extend(minions::served(&served, &[]));
                    }
                    let source = &mut self.sources[i];
                    let found: HashSet<String> = problems.iter().cloned().collect();
                    let apex = &source.apex;
                    out.notes.extend(
                        problems.into_iter().filter(|p| !source.noted.contains(p)).map(|p| format!("{apex}: {p}")),
                    );
                    source.noted = found;
                    if !changed[i] && source.zone.is_some() && served == source.served {
                        continue;
                    }
                    forward_changed |= !reverse;
                    source.served = served;
                    Arc::new(zone)
                }
                _ if changed[i] => loaded,
                _ => continue,
            };
            let source = &mut self.sources[i];
            out.reloaded.push((source.apex.clone(), zone.len()));
            source.zone = Some(zone);
        }
        out
    }

    /// What is served now: every zone that has loaded, in its latest good version.
    pub fn authority(&self, recursion: &Access, secondaries: &Secondaries) -> Arc<Authority> {
        let zones: Vec<Arc<Zone>> = self.sources.iter().filter_map(|s| s.zone.clone()).collect();
        let unavailable = self.sources.iter().filter(|s| s.zone.is_none()).map(|s| s.apex.clone()).collect();
        Arc::new(
            Authority::with_unavailable(zones, unavailable)
                .with_recursion(recursion.clone())
                .with_secondaries(secondaries.clone()),
        )
    }
}

/// `now` as a zone serial, for comparing with one (RFC 1982).
fn domain_serial(now: u32) -> halite_dns::zone::Serial {
    halite_dns::zone::Serial::from(now)
}

impl Book {
    /// Reads the book again if its file changed (or `force`); true when what it holds did.
    /// A book that cannot be read keeps the last one read (and is tried again at the next
    /// poll, unless it is too large: then when it changes); one that does not exist is empty.
    /// Each failure, and each problem in what was read, is reported once while it lasts.
    fn reread(&mut self, force: bool, notes: &mut Vec<String>) -> bool {
        let now = stamp(&self.path);
        let retry = self.failing.as_ref().is_some_and(|(_, retry)| *retry);
        if !force && now == self.stamp && !retry {
            return false;
        }
        let text = match read_bounded(&self.path, MAX_BOOK_BYTES as u64) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) => {
                let absent = matches!(fs::metadata(&self.path), Err(e) if e.kind() == std::io::ErrorKind::NotFound);
                let note = if absent {
                    format!("{}: {e}; no minion is served until the master writes it", self.path.display())
                } else {
                    format!("{}: {e}; the minions read before are still served", self.path.display())
                };
                if self.failing.as_ref().map(|(was, _)| was) != Some(&note) {
                    notes.push(note.clone());
                }
                self.failing = Some((note, e != TOO_LARGE && e != NOT_REGULAR));
                self.stamp = now;
                if !absent {
                    return false;
                }
                String::new()
            }
        };
        if now.is_some() {
            self.failing = None;
        }
        self.stamp = now;
        let (book, problems) = AddressBook::parse(&text);
        let problems: HashSet<String> = problems.into_iter().collect();
        let mut new: Vec<&String> = problems.difference(&self.problems).collect();
        new.sort();
        notes.extend(new.into_iter().map(|p| format!("{}: {p}", self.path.display())));
        self.problems = problems;
        let changed = book != self.book;
        self.book = book;
        changed
    }
}
