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
    zone: Option<Arc<Zone>>,
}

/// The master's address book, as last read.
struct Book {
    path: PathBuf,
    stamp: Option<Stamp>,
    book: AddressBook,
    /// Why the last read failed, so a lasting failure is reported once, not every poll.
    failing: Option<String>,
}

/// The configured zones and the [`Authority`] built from those that loaded.
pub struct Zones {
    sources: Vec<Source>,
    book: Option<Book>,
    /// What the last rebuild found wrong in the book, so each problem is logged once while
    /// it lasts: a minion changing its addresses every second must not fill the log.
    noted: HashSet<String>,
}

/// What a refresh changed and found wrong, for the log.
#[derive(Default)]
pub struct Refresh {
    /// The zones now served in a new version, with their record counts.
    pub reloaded: Vec<(StoredName, usize)>,
    /// Zones that did not load: their last good version stays.
    pub errors: Vec<ZoneError>,
    /// What the address book held that could not be served.
    pub notes: Vec<String>,
}

const TOO_LARGE: &str = "too large";

/// A regular file's bytes, up to `room` of them (more is the error [`TOO_LARGE`]).
fn read_bounded(path: &Path, room: u64) -> Result<Vec<u8>, String> {
    let file = fs::File::open(path).map_err(|e| e.to_string())?;
    // Not a device or a pipe: /dev/zero would never end, a FIFO would block reloads.
    if !file.metadata().map_err(|e| e.to_string())?.is_file() {
        return Err("not a regular file".into());
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
                zone: None,
            })
            .collect();
        let book = config.minion_addresses.as_ref().filter(|_| !config.minions.is_empty()).map(|path| Book {
            path: path.clone(),
            stamp: None,
            book: AddressBook::default(),
            failing: None,
        });
        let mut zones = Zones { sources, book, noted: HashSet::new() };
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
        let mut notes = Vec::new();
        let book_changed = self.book.as_mut().is_some_and(|book| book.reread(force, &mut notes));
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
                    source.loaded = Some((Arc::new(zone), digest));
                    changed.push(true);
                }
                Err(e) => {
                    out.errors.push(e);
                    changed.push(false);
                }
            }
        }
        // Forward zones first: a reverse zone's PTRs name what they serve.
        let mut order: Vec<usize> = (0..self.sources.len()).collect();
        order.sort_by_key(|&i| minions::is_reverse(&self.sources[i].apex));
        let mut served_by_forward: Vec<Vec<(StoredName, IpAddr)>> = Vec::new();
        let mut forward_changed = false;
        let mut rebuilt = false;
        // An address a zone file holds is no minion's to name; read only when a PTR is made.
        let mut claimed: Option<HashSet<IpAddr>> = None;
        for i in order {
            let source = &self.sources[i];
            let Some((loaded, _)) = source.loaded.clone() else { continue };
            let reverse = minions::is_reverse(&source.apex);
            let zone = match (&source.minions, &self.book) {
                (Some(networks), Some(book)) => {
                    let due = changed[i] || book_changed || (reverse && forward_changed) || source.zone.is_none();
                    if !due {
                        if !reverse {
                            served_by_forward.push(minions::served(&source.served, &[]));
                        }
                        continue;
                    }
                    rebuilt = true;
                    let generated = if reverse {
                        let claimed = claimed.get_or_insert_with(|| {
                            let files = self.sources.iter().filter_map(|s| s.loaded.as_ref());
                            files.flat_map(|(zone, _)| minions::zone_addresses(zone)).collect()
                        });
                        let (records, ambiguous) =
                            minions::ptr_records(&source.apex, networks, &served_by_forward, claimed);
                        notes.extend(ambiguous.iter().map(|addr| {
                            format!("{}: {addr} is served at more than one minion's name; it gets no PTR", source.apex)
                        }));
                        records
                    } else {
                        minions::address_records(&book.book, &source.apex, networks)
                    };
                    let previous = source.zone.as_ref().map(|zone| zone.serial());
                    let serial = minions::next_serial(loaded.serial(), previous, now);
                    let (zone, left_out) = loaded.with_generated(&generated, loaded.soa().1.ttl, serial);
                    notes.extend(left_out.iter().map(|owner| {
                        format!(
                            "{}: {owner} is in the zone file (or below a delegation); the minion's record is left out",
                            source.apex
                        )
                    }));
                    let served: Vec<Generated> =
                        generated.into_iter().filter(|(owner, _)| !left_out.contains(owner)).collect();
                    if !reverse {
                        served_by_forward.push(minions::served(&served, &[]));
                    }
                    if !changed[i] && source.zone.is_some() && served == source.served {
                        continue;
                    }
                    forward_changed |= !reverse;
                    let source = &mut self.sources[i];
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
        // Each problem once while it lasts: what a rebuild found replaces what the last one did.
        if rebuilt {
            let found: HashSet<String> = notes.iter().cloned().collect();
            notes.retain(|note| !self.noted.contains(note));
            self.noted = found;
        }
        out.notes = notes;
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

impl Book {
    /// Reads the book again if its file changed (or `force`); true when what it holds did.
    /// A book that cannot be read keeps the last one read (and is tried again at the next
    /// poll); one not written yet is empty.
    fn reread(&mut self, force: bool, notes: &mut Vec<String>) -> bool {
        let now = stamp(&self.path);
        if !force && now == self.stamp && self.failing.is_none() {
            return false;
        }
        let text = match read_bounded(&self.path, MAX_BOOK_BYTES as u64) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) => {
                let absent = now.is_none();
                let note = if absent {
                    format!("{}: {e}; no minion is served until the master writes it", self.path.display())
                } else {
                    format!("{}: {e}; the minions read before are still served", self.path.display())
                };
                if self.failing.as_ref() != Some(&note) {
                    notes.push(note.clone());
                }
                self.failing = Some(note);
                if !absent {
                    return false;
                }
                String::new()
            }
        };
        if !text.is_empty() || now.is_some() {
            self.failing = None;
        }
        self.stamp = now;
        let (book, problems) = AddressBook::parse(&text);
        notes.extend(problems.into_iter().map(|p| format!("{}: {p}", self.path.display())));
        let changed = book != self.book;
        self.book = book;
        changed
    }
}
