//! Keeping the store writable through a full disk and an I/O error.
//!
//! Why: redb stops at its first I/O error. Every later read or write of that `Database`
//! answers "Previous I/O error occurred", so one `ENOSPC` would leave the master storing no
//! return, grain or session key until it restarts, even after the disk has room again. Two
//! defences, in order:
//!
//! 1. **Room first.** A write is attempted only if the store's filesystem has the write's
//!    size (estimated from its values) plus [`Options::reserve_bytes`] free for an
//!    unprivileged user (`f_bavail`, so root's reserved blocks stay a margin). Otherwise it
//!    is refused as [`crate::StoreError::Full`] before redb sees it, and redb stays healthy:
//!    reads go on, and the next write that fits succeeds.
//! 2. **Reopen.** If redb meets an I/O error anyway (another process took the last blocks
//!    between the check and the write, a quota, a failing device), the store is marked
//!    failed; the next operation drops the failed `Database` and opens the file again
//!    (redb repairs an unclean file on open), at most once per [`REOPEN_INTERVAL`] while it
//!    cannot. A commit that failed never became visible, so nothing acknowledged is lost.
//!
//! Deletions (job expiry, forgetting a minion, flushing a mine) skip the room check: they
//! are how space comes back.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use redb::Database;

/// How often a store that could not be reopened tries again.
pub const REOPEN_INTERVAL: Duration = Duration::from_secs(1);
/// How long a reopen waits for the last user of the failed file (a read in flight) to let
/// go of it: redb locks the file while any handle to it is open.
const RELEASE_WAIT: Duration = Duration::from_secs(2);
/// Room a write needs beyond its values: the pages of the trees it touches, redb's
/// header and allocator state.
const PER_CHANGE_BYTES: u64 = 8 * 1024;

/// How the store protects itself.
#[derive(Debug, Clone)]
pub struct Options {
    /// Bytes that must stay free on the store's filesystem after a write for the write to
    /// be attempted. Zero leaves every write to redb (tests use it to meet `ENOSPC` itself).
    pub reserve_bytes: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options { reserve_bytes: 4 * 1024 * 1024 }
    }
}

/// What a write expects to add to the file.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Room {
    /// Changes whose values total this many bytes.
    Adds { changes: u64, bytes: u64 },
    /// A deletion: attempted whatever the free space.
    Frees,
}

impl Room {
    pub(crate) fn adds(bytes: usize) -> Room {
        Room::Adds { changes: 1, bytes: bytes as u64 }
    }

    pub(crate) fn plus(self, other: Room) -> Room {
        match (self, other) {
            (Room::Adds { changes: a, bytes: b }, Room::Adds { changes: c, bytes: d }) => {
                Room::Adds { changes: a + c, bytes: b.saturating_add(d) }
            }
            (Room::Frees, other) | (other, Room::Frees) => other,
        }
    }

    fn needed(self, reserve: u64) -> Option<u64> {
        match self {
            // Values are written once in their leaf and may be copied once more when a
            // page splits; twice their size covers both.
            Room::Adds { changes, bytes } => {
                Some(reserve.saturating_add(bytes.saturating_mul(2)).saturating_add(changes * PER_CHANGE_BYTES))
            }
            Room::Frees => None,
        }
    }
}

/// Why a write was not attempted.
pub(crate) enum Refused {
    Full { free: u64, needed: u64 },
    Unavailable(String),
}

/// The open database, replaced after an I/O error.
pub(crate) struct Health {
    path: PathBuf,
    options: Options,
    db: RwLock<Option<Arc<Database>>>,
    failed: AtomicBool,
    /// Held while reopening; the last attempt's time and error.
    reopen: Mutex<Option<(Instant, String)>>,
    reopened: AtomicU64,
}

impl Health {
    pub(crate) fn new(path: &Path, db: Database, options: Options) -> Health {
        Health {
            path: path.to_owned(),
            options,
            db: RwLock::new(Some(Arc::new(db))),
            failed: AtomicBool::new(false),
            reopen: Mutex::new(None),
            reopened: AtomicU64::new(0),
        }
    }

    /// The database to use now, reopened first if it failed.
    pub(crate) fn database(&self) -> Result<Arc<Database>, Refused> {
        if self.failed.load(Ordering::Acquire) {
            self.reopen()?;
        }
        let slot = self.db.read().unwrap_or_else(PoisonError::into_inner);
        slot.clone().ok_or_else(|| Refused::Unavailable("the store is being reopened".into()))
    }

    /// [`Health::database`] for a write that needs `room`.
    pub(crate) fn writable(&self, room: Room) -> Result<Arc<Database>, Refused> {
        let db = self.database()?;
        if let Some(needed) = room.needed(self.options.reserve_bytes) {
            if self.options.reserve_bytes > 0 {
                let free = free_bytes(&self.path).map_err(|e| Refused::Unavailable(format!("statvfs: {e}")))?;
                if free < needed {
                    return Err(Refused::Full { free, needed });
                }
            }
        }
        Ok(db)
    }

    /// Told of every error redb returned: an I/O error marks the database failed.
    pub(crate) fn saw(&self, error: &redb::Error) {
        if matches!(error, redb::Error::Io(_) | redb::Error::PreviousIo) {
            self.failed.store(true, Ordering::Release);
        }
    }

    /// Times the store was reopened after an I/O error.
    pub(crate) fn reopened(&self) -> u64 {
        self.reopened.load(Ordering::Relaxed)
    }

    fn reopen(&self) -> Result<(), Refused> {
        let mut last = self.reopen.lock().unwrap_or_else(PoisonError::into_inner);
        if !self.failed.load(Ordering::Acquire) {
            return Ok(()); // another thread reopened it while this one waited
        }
        if let Some((at, error)) = last.as_ref() {
            if at.elapsed() < REOPEN_INTERVAL {
                return Err(Refused::Unavailable(error.clone()));
            }
        }
        let old = self.db.write().unwrap_or_else(PoisonError::into_inner).take();
        let started = Instant::now();
        if let Some(mut old) = old {
            // Users of the failed database hold it only for one read or one commit.
            loop {
                match Arc::try_unwrap(old) {
                    Ok(db) => {
                        drop(db);
                        break;
                    }
                    Err(still) if started.elapsed() < RELEASE_WAIT => {
                        old = still;
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    Err(_) => break, // its last user closes it; the open below retries
                }
            }
        }
        loop {
            match Database::create(&self.path) {
                Ok(db) => {
                    *self.db.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(db));
                    self.failed.store(false, Ordering::Release);
                    self.reopened.fetch_add(1, Ordering::Relaxed);
                    *last = None;
                    return Ok(());
                }
                Err(redb::DatabaseError::DatabaseAlreadyOpen) if started.elapsed() < RELEASE_WAIT => {
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) => {
                    let error = format!("reopening after an I/O error: {e}");
                    *last = Some((Instant::now(), error.clone()));
                    return Err(Refused::Unavailable(error));
                }
            }
        }
    }
}

/// Bytes an unprivileged writer may still use on the filesystem holding `path`.
fn free_bytes(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let c_path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "path holds a NUL byte"))?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c_path` is a valid NUL-terminated string and `stat` points to writable memory
    // of the right type; statvfs fills it completely when it returns 0.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it initialised `stat`.
    let stat = unsafe { stat.assume_init() };
    // Both fields are narrower than u64 on 32-bit targets.
    #[allow(clippy::useless_conversion)]
    Ok(u64::from(stat.f_bavail).saturating_mul(u64::from(stat.f_frsize)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_needed_grows_with_the_values_and_deletions_need_none() {
        let one = Room::adds(1000);
        assert_eq!(one.needed(0), Some(2000 + PER_CHANGE_BYTES));
        assert_eq!(one.plus(Room::adds(10)).needed(100), Some(100 + 2020 + 2 * PER_CHANGE_BYTES));
        assert_eq!(Room::Frees.needed(100), None);
        assert_eq!(Room::Frees.plus(one).needed(0), one.needed(0));
    }

    #[test]
    fn free_bytes_reads_the_directory_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_bytes(&dir.path().join("not-yet-there.redb")).unwrap() > 0);
        assert!(free_bytes(Path::new("/nonexistent-dir/x.redb")).is_err());
    }
}
