//! The master's own durable data, in one redb file: the minion data cache (the grains and
//! pillar each minion last reported through `_pillar`, and its mine ([`mine`])), the
//! per-minion session keys of 3007+ request channels, and the job cache ([`jobs`]: each
//! job's load, expected minions and every return, less the job's arguments it echoes).
//!
//! Owns: the tables, their encoding (Salt's msgpack, so a value read back is byte-identical
//! to what the minion sent, but for a return's `fun_args`), and session-key rotation by
//! age. Must not: hold keys that Salt keeps as PEM files (those stay in the pki dir), know
//! about sockets, or decide policy.
//!
//! Session keys are cached in memory after the first read: every v3 request needs one, and a
//! read transaction per request would put the disk on the hot path. Returns, minion data and
//! new session keys from concurrent callers are group-committed ([`group`]): one transaction
//! and one fsync for all of them, each caller returning once its own change is durable.
//!
//! A full disk refuses writes before redb meets it ([`StoreError::Full`], reads go on), and
//! running out of room inside redb anyway reopens the file on the next operation
//! ([`health`]): the store writes again as soon as there is room, without a restart.
//!
//! A file left by a crash is repaired by redb as it opens, losing nothing committed
//! ([`health`]); [`Store::opened`] says whether that happened and how long opening took.
//! redb's page cache is bounded ([`Options::cache_bytes`], 64 MiB), since it is the
//! process's memory and the job cache can be much larger.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use halite_proto::crypticle::Crypticle;
use halite_proto::payload::{self, Value};
use redb::{ReadableTable, TableDefinition};

mod group;
mod health;
pub mod jobs;
pub mod mine;

use health::{Health, Refused, Room, Writing};
pub use health::{Opened, Options, DEFAULT_CACHE_BYTES, REOPEN_INTERVAL};

const MINION_DATA: TableDefinition<&str, &[u8]> = TableDefinition::new("minion_data");
const SESSIONS: TableDefinition<&str, (u64, &str)> = TableDefinition::new("sessions");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {path}: {source}")]
    Open { path: PathBuf, source: redb::DatabaseError },
    #[error("store {path}: {what} for minion {id:?}: {detail}")]
    Io { path: PathBuf, what: &'static str, id: String, detail: String },
    #[error("store {path}: {what} for minion {id:?} refused: the disk is full ({free} bytes free, {needed} needed)")]
    Full { path: PathBuf, what: &'static str, id: String, free: u64, needed: u64 },
    #[error("store {path}: {what} for minion {id:?}: the store is not open: {detail}")]
    Unavailable { path: PathBuf, what: &'static str, id: String, detail: String },
}

/// What the minion data cache holds for one minion: Salt's `{"grains": ..., "pillar": ...}`.
#[derive(Debug, Clone, PartialEq)]
pub struct MinionData {
    pub grains: Value,
    pub pillar: Value,
}

impl MinionData {
    fn from_cached(mut value: Value) -> MinionData {
        MinionData {
            grains: payload::remove(&mut value, "grains").unwrap_or(Value::Nil),
            pillar: payload::remove(&mut value, "pillar").unwrap_or(Value::Nil),
        }
    }
}

pub struct Store {
    path: PathBuf,
    health: Health,
    opened: Opened,
    sessions: RwLock<HashMap<String, (u64, Crypticle)>>,
    group: group::GroupCommit,
}

// The closures handed to `write` return redb's own error type, which is large; boxing it would
// only add an allocation on a path that already ends in an fsync.
#[allow(clippy::result_large_err)]
impl Store {
    /// Opens or creates the store file (its directory must exist).
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, Options::default())
    }

    /// [`Store::open`] with its protection against a full disk set ([`Options`]).
    pub fn open_with(path: &Path, options: Options) -> Result<Self, StoreError> {
        let (db, opened) =
            health::open(path, &options).map_err(|source| StoreError::Open { path: path.to_owned(), source })?;
        let store = Self {
            path: path.to_owned(),
            health: Health::new(path, db, options),
            opened,
            sessions: RwLock::new(HashMap::new()),
            group: Default::default(),
        };
        // Create the tables up front so readers never meet a missing table.
        store.write("creating tables", "", Room::Opening, |txn| {
            txn.open_table(MINION_DATA)?;
            txn.open_table(SESSIONS)?;
            txn.open_table(mine::MINE)?;
            jobs::create_tables(txn)?;
            Ok(())
        })?;
        Ok(store)
    }

    /// How the file was opened: whether redb had to repair all of it, and how long it took.
    pub fn opened(&self) -> Opened {
        self.opened
    }

    /// The file the store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many times the store was reopened after an I/O error (see [`Options`]).
    pub fn reopened(&self) -> u64 {
        self.health.reopened()
    }

    pub(crate) fn err(&self, what: &'static str, id: &str, detail: impl ToString) -> StoreError {
        StoreError::Io { path: self.path.clone(), what, id: id.to_owned(), detail: detail.to_string() }
    }

    /// An error redb returned: the store learns of I/O failures from it ([`health`]).
    pub(crate) fn fail(&self, what: &'static str, id: &str, error: impl Into<redb::Error>) -> StoreError {
        let error = error.into();
        self.health.saw(&error);
        self.err(what, id, error)
    }

    fn refused(&self, what: &'static str, id: &str, refused: Refused) -> StoreError {
        let (path, id) = (self.path.clone(), id.to_owned());
        match refused {
            Refused::Full { free, needed } => StoreError::Full { path, what, id, free, needed },
            Refused::Unavailable(detail) => StoreError::Unavailable { path, what, id, detail },
        }
    }

    pub(crate) fn read(&self, what: &'static str, id: &str) -> Result<redb::ReadTransaction, StoreError> {
        let db = self.health.database().map_err(|r| self.refused(what, id, r))?;
        db.begin_read().map_err(|e| self.fail(what, id, e))
    }

    pub(crate) fn begin_write(&self, what: &'static str, id: &str, room: Room) -> Result<Writing, StoreError> {
        self.health.writable(room).map_err(|r| self.refused(what, id, r))?.map_err(|e| self.fail(what, id, e))
    }

    pub(crate) fn write<T>(
        &self,
        what: &'static str,
        id: &str,
        room: Room,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, redb::Error>,
    ) -> Result<T, StoreError> {
        let txn = self.begin_write(what, id, room)?;
        let out = f(&txn).map_err(|e| self.fail(what, id, e))?;
        txn.commit().map_err(|e| self.fail(what, id, e))?;
        Ok(out)
    }

    /// Like [`Store::write`] for the hot paths (returns, minion data, session keys): the
    /// change commits together with whatever other writers queued meanwhile, one fsync for
    /// all ([`group`]), and this returns once it is durable.
    pub(crate) fn write_shared(
        &self,
        what: &'static str,
        id: &str,
        room: Room,
        change: impl Fn(&redb::WriteTransaction) -> Result<(), redb::Error> + Send + Sync + 'static,
    ) -> Result<(), StoreError> {
        let write = group::Write { what, id: id.to_owned(), room, change: std::sync::Arc::new(change) };
        self.group.apply(self, write)
    }

    /// [`Store::write_shared`] without waiting: `then` gets the result once durable.
    pub(crate) fn write_shared_then(
        &self,
        what: &'static str,
        id: &str,
        room: Room,
        change: impl Fn(&redb::WriteTransaction) -> Result<(), redb::Error> + Send + Sync + 'static,
        then: impl FnOnce(Result<(), StoreError>) + Send + 'static,
    ) {
        let write = group::Write { what, id: id.to_owned(), room, change: std::sync::Arc::new(change) };
        self.group.apply_then(self, write, Box::new(then));
    }

    /// Records what a minion reported in `_pillar`.
    pub fn put_minion_data(&self, id: &str, data: &MinionData) -> Result<(), StoreError> {
        let bytes = payload::encode(&payload::map([("grains", data.grains.clone()), ("pillar", data.pillar.clone())]));
        let key = id.to_owned();
        self.write_shared("saving minion data", id, Room::adds(key.len() + bytes.len()), move |txn| {
            txn.open_table(MINION_DATA)?.insert(key.as_str(), bytes.as_slice())?;
            Ok(())
        })
    }

    pub fn minion_data(&self, id: &str) -> Result<Option<MinionData>, StoreError> {
        let what = "reading minion data";
        let txn = self.read(what, id)?;
        let table = txn.open_table(MINION_DATA).map_err(|e| self.fail(what, id, e))?;
        let Some(raw) = table.get(id).map_err(|e| self.fail(what, id, e))? else {
            return Ok(None);
        };
        let value = payload::decode_stored(raw.value()).map_err(|e| self.err(what, id, e))?;
        Ok(Some(MinionData::from_cached(value)))
    }

    /// The cached data of each of `ids` that has any, read in one transaction (targeting
    /// reads every accepted minion's grains at once).
    pub fn minion_data_of(&self, ids: &[String]) -> Result<HashMap<String, MinionData>, StoreError> {
        let what = "reading minion data";
        let txn = self.read(what, "*")?;
        let table = txn.open_table(MINION_DATA).map_err(|e| self.fail(what, "*", e))?;
        let mut out = HashMap::with_capacity(ids.len());
        for id in ids {
            let Some(raw) = table.get(id.as_str()).map_err(|e| self.fail(what, id, e))? else { continue };
            let value = payload::decode_stored(raw.value()).map_err(|e| self.err(what, id, e))?;
            out.insert(id.clone(), MinionData::from_cached(value));
        }
        Ok(out)
    }

    /// The minion's session key, made anew when missing or older than `max_age_secs` (Salt's
    /// `publish_session`). `now` is seconds since the epoch.
    pub fn session_key(&self, id: &str, now: u64, max_age_secs: u64) -> Result<Crypticle, StoreError> {
        let fresh = |created: u64| now.saturating_sub(created) < max_age_secs;
        if let Ok(cache) = self.sessions.read() {
            if let Some((created, key)) = cache.get(id) {
                if fresh(*created) {
                    return Ok(key.clone());
                }
            }
        }
        let what = "loading session key";
        let stored = {
            let txn = self.read(what, id)?;
            let table = txn.open_table(SESSIONS).map_err(|e| self.fail(what, id, e))?;
            let row = table.get(id).map_err(|e| self.fail(what, id, e))?;
            row.map(|r| {
                let (created, key) = r.value();
                (created, key.to_owned())
            })
        };
        let (created, key) = match stored {
            Some((created, text)) if fresh(created) => match Crypticle::from_key_string(&text) {
                Ok(key) => (created, key),
                Err(_) => self.new_session(id, now)?,
            },
            _ => self.new_session(id, now)?,
        };
        if let Ok(mut cache) = self.sessions.write() {
            cache.insert(id.to_owned(), (created, key.clone()));
        }
        Ok(key)
    }

    /// A new session key kept in memory only, for when [`Store::session_key`] fails (a full
    /// disk): the minion signs in with it, and a restart makes it sign in again for a new one.
    pub fn volatile_session_key(&self, id: &str, now: u64) -> Result<Crypticle, StoreError> {
        let key = Crypticle::generate().map_err(|e| self.err("generating session key", id, e))?;
        if let Ok(mut cache) = self.sessions.write() {
            cache.insert(id.to_owned(), (now, key.clone()));
        }
        Ok(key)
    }

    fn new_session(&self, id: &str, now: u64) -> Result<(u64, Crypticle), StoreError> {
        let key = Crypticle::generate().map_err(|e| self.err("generating session key", id, e))?;
        let (row, text) = (id.to_owned(), key.key_string().to_owned());
        self.write_shared("saving session key", id, Room::adds(row.len() + text.len() + 8), move |txn| {
            txn.open_table(SESSIONS)?.insert(row.as_str(), (now, text.as_str()))?;
            Ok(())
        })?;
        Ok((now, key))
    }

    /// Forgets everything about a minion whose key was deleted.
    pub fn forget_minion(&self, id: &str) -> Result<(), StoreError> {
        if let Ok(mut cache) = self.sessions.write() {
            cache.remove(id);
        }
        self.write("forgetting minion", id, Room::Frees, |txn| {
            txn.open_table(MINION_DATA)?.remove(id)?;
            txn.open_table(SESSIONS)?.remove(id)?;
            txn.open_table(mine::MINE)?.remove(id)?;
            Ok(())
        })
    }

    /// Ids the store holds anything for (minion data, mine data or a session key), sorted.
    pub fn known_minions(&self) -> Result<Vec<String>, StoreError> {
        let what = "listing known minions";
        let txn = self.read(what, "*")?;
        let mut ids = std::collections::BTreeSet::new();
        let data = txn.open_table(MINION_DATA).map_err(|e| self.fail(what, "*", e))?;
        for row in data.iter().map_err(|e| self.fail(what, "*", e))? {
            ids.insert(row.map_err(|e| self.fail(what, "*", e))?.0.value().to_owned());
        }
        let sessions = txn.open_table(SESSIONS).map_err(|e| self.fail(what, "*", e))?;
        for row in sessions.iter().map_err(|e| self.fail(what, "*", e))? {
            ids.insert(row.map_err(|e| self.fail(what, "*", e))?.0.value().to_owned());
        }
        let mine = txn.open_table(mine::MINE).map_err(|e| self.fail(what, "*", e))?;
        for row in mine.iter().map_err(|e| self.fail(what, "*", e))? {
            ids.insert(row.map_err(|e| self.fail(what, "*", e))?.0.value().to_owned());
        }
        Ok(ids.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minion_data_round_trips_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("halite.redb")).unwrap();
        let data = MinionData {
            grains: payload::map([
                ("roles", Value::Array(vec![Value::from("db")])),
                ("blob", Value::Binary(vec![0xff])),
            ]),
            pillar: payload::map::<_, String>([]),
        };
        store.put_minion_data("db1", &data).unwrap();
        // Salt packs bytes as str, so the blob comes back str-typed: compare on the wire form.
        let back = store.minion_data("db1").unwrap().unwrap();
        assert_eq!(payload::encode(&back.grains), payload::encode(&data.grains));
        assert_eq!(payload::encode(&back.pillar), payload::encode(&data.pillar));
        assert_eq!(store.minion_data("db2").unwrap(), None);
        assert_eq!(store.known_minions().unwrap(), vec!["db1".to_string()]);
        store.session_key("app1", 0, 86400).unwrap();
        assert_eq!(store.known_minions().unwrap(), vec!["app1".to_string(), "db1".to_string()]);
        store.forget_minion("db1").unwrap();
        assert_eq!(store.known_minions().unwrap(), vec!["app1".to_string()]);
    }

    #[test]
    fn session_key_persists_and_rotates_by_age() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("halite.redb");
        let first = Store::open(&path).unwrap().session_key("m", 1000, 86400).unwrap();
        let store = Store::open(&path).unwrap();
        assert_eq!(store.session_key("m", 2000, 86400).unwrap(), first, "survives a restart");
        let rotated = store.session_key("m", 1000 + 86400, 86400).unwrap();
        assert_ne!(rotated, first, "rotated after publish_session");
        store.forget_minion("m").unwrap();
        assert_ne!(store.session_key("m", 1000 + 86400, 86400).unwrap(), rotated);
    }
}
