//! Reading the configured zone files, and noticing when they change.
//!
//! A zone is re-read when any file it was read from (the main file and its `$INCLUDE`s)
//! changes its size, modification time or inode: Salt's `file.managed` replaces a file by
//! renaming a new one over it, an editor may write it in place. A zone that fails to load
//! keeps the version being served, and the error (file and line) is logged once per change.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use halite_dns::forward::Access;
use halite_dns::respond::Authority;
use halite_dns::transfer::Secondaries;
use halite_dns::zone::{StoredName, Zone, ZoneError};

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

/// A configured zone: where it comes from, what it was read from last time, and the zone
/// loaded last (if it ever loaded).
struct Source {
    apex: StoredName,
    file: PathBuf,
    /// Every file the last attempt read, with its stamp then.
    read: FilesRead,
    zone: Option<Arc<Zone>>,
}

/// The configured zones and the [`Authority`] built from those that loaded.
pub struct Zones {
    sources: Vec<Source>,
}

/// Loads one zone from `file`, resolving `$INCLUDE` paths against the file's directory.
/// Returns the files read (with their stamps before reading) beside the outcome.
fn load(apex: &StoredName, file: &Path) -> (Result<Zone, ZoneError>, FilesRead) {
    let dir = file.parent().unwrap_or(Path::new(".")).to_path_buf();
    let mut read = vec![(file.to_path_buf(), stamp(file))];
    let mut total = 0u64;
    let fetch = |path: &Path, total: &mut u64| -> Result<Vec<u8>, String> {
        let file = fs::File::open(path).map_err(|e| e.to_string())?;
        // Not a device or a pipe: /dev/zero would never end, a FIFO would block reloads.
        if !file.metadata().map_err(|e| e.to_string())?.is_file() {
            return Err("not a regular file".into());
        }
        let room = MAX_ZONE_BYTES - *total;
        let mut bytes = Vec::new();
        // One byte past the room tells a file that grew since it was measured.
        std::io::Read::read_to_end(&mut std::io::Read::take(file, room + 1), &mut bytes).map_err(|e| e.to_string())?;
        if bytes.len() as u64 > room {
            return Err(format!("the zone's files hold more than {MAX_ZONE_BYTES} bytes"));
        }
        *total += bytes.len() as u64;
        Ok(bytes)
    };
    let main = match fetch(file, &mut total) {
        Ok(bytes) => bytes,
        Err(e) => {
            let error = ZoneError { zone: apex.to_string(), file: file.display().to_string(), line: None, message: e };
            return (Err(error), read);
        }
    };
    let outcome = Zone::load(apex, &file.display().to_string(), &main, &mut |included| {
        let path = dir.join(included);
        read.push((path.clone(), stamp(&path)));
        fetch(&path, &mut total)
    });
    (outcome, read)
}

impl Zones {
    /// Reads every zone; a zone that fails is reported in the errors and not served until a
    /// change to its files makes it load.
    pub fn load(zones: &[(StoredName, PathBuf)]) -> (Zones, Vec<ZoneError>) {
        let mut errors = Vec::new();
        let sources = zones
            .iter()
            .map(|(apex, file)| {
                let (outcome, read) = load(apex, file);
                let zone = outcome.map_err(|e| errors.push(e)).ok().map(Arc::new);
                Source { apex: apex.clone(), file: file.clone(), read, zone }
            })
            .collect();
        (Zones { sources }, errors)
    }

    /// Re-reads the zones whose files changed (all of them when `force`, as on SIGHUP).
    /// Returns what to log: the zones reloaded, with their record counts, and the errors of
    /// those that did not load (their last good version stays).
    pub fn refresh(&mut self, force: bool) -> (Vec<(StoredName, usize)>, Vec<ZoneError>) {
        let (mut reloaded, mut errors) = (Vec::new(), Vec::new());
        for source in &mut self.sources {
            let changed = force || source.read.iter().any(|(path, then)| stamp(path) != *then);
            if !changed {
                continue;
            }
            let (outcome, read) = load(&source.apex, &source.file);
            source.read = read;
            match outcome {
                Ok(zone) => {
                    reloaded.push((source.apex.clone(), zone.len()));
                    source.zone = Some(Arc::new(zone));
                }
                Err(e) => errors.push(e),
            }
        }
        (reloaded, errors)
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
