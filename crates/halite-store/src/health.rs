//! Keeping the store writable through a full disk.
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
//!    reads go on, and the next write that fits succeeds. Deletions (job expiry, forgetting
//!    a minion, flushing a mine) need only a quarter of the reserve: they are how room comes
//!    back, but redb copies the pages it changes, so even they need some.
//! 2. **Reopen after running out of room.** If redb meets `ENOSPC`, `EDQUOT` or `EFBIG`
//!    anyway (another process took the last blocks between the check and the write, a quota
//!    `statvfs` does not show), the store is marked failed; the next operation drops the
//!    failed `Database` and opens the file again (redb repairs an unclean file on open), at
//!    most once per [`REOPEN_INTERVAL`], other threads being refused meanwhile rather than
//!    waiting. Out of room, nothing reached the file that a reopen could read back as
//!    committed. Any other I/O error (`EIO`: a failing device) is not recovered from: a
//!    flush that failed may have left pages the kernel will never write, so the store stays
//!    closed ([`crate::StoreError::Unavailable`]) until an operator restarts the master.
//!
//! # After a crash
//!
//! A file redb did not close (the master was killed, the machine lost power) is repaired
//! when it is next opened: redb walks every page of it, checking each checksum, and
//! rebuilds its allocator's state. Nothing committed is lost to it. It costs time in
//! proportion to the file (measured: 0.3 s for 256 MiB, 0.7 s for 1 GiB, read cold), and
//! [`Opened`] reports it so the master can say why its start took longer. redb can avoid
//! the walk (its quick repair: every commit saves the allocator's state, in two phases), but
//! measured here that made each stored return cost five times the CPU and grew the file by
//! half, for a saving of under a second a restart; so commits keep redb's default, and
//! [`Options::quick_repair`] exists to measure the difference (docs/benchmarks.md,
//! "Opening the store after kill -9").

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock, TryLockError};
use std::time::{Duration, Instant};

use redb::Database;

/// The least time between two reopens: each may repair the whole file.
pub const REOPEN_INTERVAL: Duration = Duration::from_secs(2);
/// How long a reopen waits for the last user of the failed file (a read in flight) to let
/// go of it: redb locks the file while any handle to it is open.
const RELEASE_WAIT: Duration = Duration::from_secs(2);
/// Room a write needs beyond its values: per change, its share of the tree pages it copies
/// (changes of one batch share most of them), and per commit, redb's header, allocator
/// state and the branch pages of every tree.
const PER_CHANGE_BYTES: u64 = 1024;
const PER_COMMIT_BYTES: u64 = 64 * 1024;

/// How the store protects itself.
#[derive(Debug, Clone)]
pub struct Options {
    /// Bytes that must stay free on the store's filesystem after a write for the write to
    /// be attempted. Zero leaves every write to redb (tests use it to meet `ENOSPC` itself).
    pub reserve_bytes: u64,
    /// Commit with redb's quick repair, so that a crash leaves a file that opens without a
    /// full repair (see the module doc). Off by default: it costs more than it saves.
    pub quick_repair: bool,
    /// redb's page cache, which stays in the process's memory once filled: redb's own
    /// default (1 GiB) let a master's RSS follow its job cache up to that size. Pages past it
    /// are read again from the file, which the kernel's page cache still holds.
    pub cache_bytes: usize,
}

/// [`Options::cache_bytes`] by default; measured in docs/benchmarks.md ("The store's page
/// cache").
pub const DEFAULT_CACHE_BYTES: usize = 64 * 1024 * 1024;

impl Default for Options {
    fn default() -> Self {
        Options { reserve_bytes: 4 * 1024 * 1024, quick_repair: false, cache_bytes: DEFAULT_CACHE_BYTES }
    }
}

/// How the store's file was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// From the call to the database being usable, repair included.
    pub took: Duration,
    /// The file had not been closed cleanly (and held no allocator state from a quick-repair
    /// commit), so redb checked every page of it (see the module doc).
    pub full_repair: bool,
}

/// Opens (or creates) the file, noting whether redb had to repair all of it.
pub(crate) fn open(path: &Path, options: &Options) -> Result<(Database, Opened), redb::DatabaseError> {
    let started = Instant::now();
    let repaired = Arc::new(AtomicBool::new(false));
    let seen = repaired.clone();
    let db = Database::builder()
        .set_cache_size(options.cache_bytes)
        .set_repair_callback(move |_session| seen.store(true, Ordering::Relaxed))
        .create(path)?;
    Ok((db, Opened { took: started.elapsed(), full_repair: repaired.load(Ordering::Relaxed) }))
}

/// What a write expects to add to the file.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Room {
    /// Changes whose values total this many bytes.
    Adds { changes: u64, bytes: u64 },
    /// A deletion: attempted with a quarter of the reserve free.
    Frees,
    /// Opening the tables, which exist but on a new file: never refused, so a master on a
    /// full disk still starts and reads.
    Opening,
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
            (Room::Frees | Room::Opening, other) | (other, Room::Frees | Room::Opening) => other,
        }
    }

    fn needed(self, reserve: u64) -> u64 {
        match self {
            // Values are written once in their leaf and may be copied once more when a
            // page splits; twice their size covers both.
            Room::Adds { changes, bytes } => reserve
                .saturating_add(bytes.saturating_mul(2))
                .saturating_add(changes.saturating_mul(PER_CHANGE_BYTES))
                .saturating_add(PER_COMMIT_BYTES),
            Room::Frees => reserve / 4,
            Room::Opening => 0,
        }
    }
}

/// Why a write was not attempted.
pub(crate) enum Refused {
    Full { free: u64, needed: u64 },
    Unavailable(String),
}

thread_local! {
    /// The generation of the database this thread last took from [`Health`]: an error it
    /// reports afterwards is that database's, and must not fail a newer one.
    static TAKEN: Cell<u64> = const { Cell::new(0) };
}

/// A write transaction with the database it belongs to, dropped after it: the last handle
/// of a database replaced by a reopen must not be dropped while a transaction of it is
/// alive on the same thread (redb's drop begins a write, which would wait for it).
pub(crate) struct Writing {
    txn: redb::WriteTransaction,
    _db: Arc<Database>,
}

impl Writing {
    pub(crate) fn commit(self) -> Result<(), redb::CommitError> {
        let Writing { txn, _db } = self;
        txn.commit()
    }
}

impl std::ops::Deref for Writing {
    type Target = redb::WriteTransaction;
    fn deref(&self) -> &redb::WriteTransaction {
        &self.txn
    }
}

/// The open database, replaced after running out of room.
pub(crate) struct Health {
    path: PathBuf,
    options: Options,
    db: RwLock<Option<Arc<Database>>>,
    generation: AtomicU64,
    /// The database met a shortage of room: reopen it.
    failed: AtomicBool,
    /// The first other I/O error the database met: it stays closed (see the module doc).
    /// Set once and read on every operation, so a `OnceLock` (a load, no lock).
    broken: OnceLock<String>,
    /// Held while reopening; when the last reopen was tried, and its error if it failed.
    reopen: Mutex<Option<(Instant, Option<String>)>>,
    reopened: AtomicU64,
}

impl Health {
    pub(crate) fn new(path: &Path, db: Database, options: Options) -> Health {
        Health {
            path: path.to_owned(),
            options,
            db: RwLock::new(Some(Arc::new(db))),
            generation: AtomicU64::new(1),
            failed: AtomicBool::new(false),
            broken: OnceLock::new(),
            reopen: Mutex::new(None),
            reopened: AtomicU64::new(0),
        }
    }

    /// The database to use now, reopened first if it failed.
    pub(crate) fn database(&self) -> Result<Arc<Database>, Refused> {
        if let Some(error) = self.broken.get() {
            return Err(Refused::Unavailable(format!("closed after an I/O error, restart the master: {error}")));
        }
        if self.failed.load(Ordering::Acquire) {
            self.reopen()?;
        }
        let slot = self.db.read().unwrap_or_else(PoisonError::into_inner);
        let db = slot.clone().ok_or_else(|| Refused::Unavailable("the store is being reopened".into()))?;
        TAKEN.with(|taken| taken.set(self.generation.load(Ordering::Acquire)));
        Ok(db)
    }

    /// A write transaction, if the filesystem has `room` for it.
    pub(crate) fn writable(&self, room: Room) -> Result<Result<Writing, redb::TransactionError>, Refused> {
        let db = self.database()?;
        if self.options.reserve_bytes > 0 {
            let needed = room.needed(self.options.reserve_bytes);
            let free = free_bytes(&self.path).map_err(|e| Refused::Unavailable(format!("statvfs: {e}")))?;
            if free < needed {
                return Err(Refused::Full { free, needed });
            }
        }
        Ok(db.begin_write().map(|mut txn| {
            txn.set_quick_repair(self.options.quick_repair);
            Writing { txn, _db: db }
        }))
    }

    /// Told of every error redb returned on this thread since it took a database.
    pub(crate) fn saw(&self, error: &redb::Error) {
        if TAKEN.with(Cell::get) != self.generation.load(Ordering::Acquire) {
            return; // an error of a database already replaced
        }
        match error {
            redb::Error::Io(e) if matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT | libc::EFBIG)) => {
                self.failed.store(true, Ordering::Release);
            }
            redb::Error::Io(e) => {
                // The first error is the one to report; later ones follow from it.
                let _ = self.broken.set(e.to_string());
            }
            // The first error went by unseen (redb met it inside a drop or a read it
            // retried): treat it as the common one, room.
            redb::Error::PreviousIo => self.failed.store(true, Ordering::Release),
            _ => {}
        }
    }

    /// Times the store was reopened after running out of room.
    pub(crate) fn reopened(&self) -> u64 {
        self.reopened.load(Ordering::Relaxed)
    }

    fn reopen(&self) -> Result<(), Refused> {
        let mut last = match self.reopen.try_lock() {
            Ok(last) => last,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return Err(Refused::Unavailable("the store is being reopened".into())),
        };
        if !self.failed.load(Ordering::Acquire) {
            return Ok(()); // another thread reopened it meanwhile
        }
        if let Some((at, error)) = last.as_ref() {
            if at.elapsed() < REOPEN_INTERVAL {
                let why = error.clone().unwrap_or_else(|| "it ran out of room again".into());
                return Err(Refused::Unavailable(format!("reopened {:.1} s ago: {why}", at.elapsed().as_secs_f64())));
            }
        }
        let old = self.db.write().unwrap_or_else(PoisonError::into_inner).take();
        self.generation.fetch_add(1, Ordering::AcqRel);
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
            match open(&self.path, &self.options) {
                Ok((db, _)) => {
                    *self.db.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(db));
                    self.failed.store(false, Ordering::Release);
                    self.reopened.fetch_add(1, Ordering::Relaxed);
                    *last = Some((Instant::now(), None));
                    return Ok(());
                }
                Err(redb::DatabaseError::DatabaseAlreadyOpen) if started.elapsed() < RELEASE_WAIT => {
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) => {
                    let error = format!("reopening after running out of room: {e}");
                    *last = Some((Instant::now(), Some(error.clone())));
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
    fn room_needed_grows_with_the_values_and_deletions_need_a_quarter_of_the_reserve() {
        let one = Room::adds(1000);
        assert_eq!(one.needed(0), 2000 + PER_CHANGE_BYTES + PER_COMMIT_BYTES);
        assert_eq!(one.plus(Room::adds(10)).needed(100), 100 + 2020 + 2 * PER_CHANGE_BYTES + PER_COMMIT_BYTES);
        assert_eq!(Room::Frees.needed(400), 100);
        assert_eq!(Room::Frees.plus(one).needed(0), one.needed(0));
    }

    #[test]
    fn free_bytes_reads_the_directory_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_bytes(&dir.path().join("not-yet-there.redb")).unwrap() > 0);
        assert!(free_bytes(Path::new("/nonexistent-dir/x.redb")).is_err());
    }
}
