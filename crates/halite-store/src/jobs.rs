//! The job cache: what Salt's `local_cache` returner keeps under `cachedir/jobs`, in three
//! redb tables instead of a directory per job.
//!
//! - `jobs`: jid → the job (its publish load, expected minions, start time);
//! - `returns`: (jid, minion id) → the minion's `_return` load as it arrived, less the
//!   `fun_args` it echoes: those are the job's, kept once in its load (Salt's `local_cache`
//!   keeps only `return` and `out` per minion), not once per minion;
//! - `job_times`: (start time, jid) → (), so `keep_jobs_seconds` cleanup reads only the
//!   expired rows in time order, never every job.

use halite_proto::payload::{self, map, Value, ValueExt};
use redb::{ReadableTable, TableDefinition, WriteTransaction};

use crate::health::Room;
use crate::{Store, StoreError};

const JOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("jobs");
const RETURNS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("returns");
const JOB_TIMES: TableDefinition<(u64, &str), ()> = TableDefinition::new("job_times");

#[allow(clippy::result_large_err)] // redb's own error type, returned as is inside a transaction.
pub(crate) fn create_tables(txn: &WriteTransaction) -> Result<(), redb::Error> {
    txn.open_table(JOBS)?;
    txn.open_table(RETURNS)?;
    txn.open_table(JOB_TIMES)?;
    Ok(())
}

/// One job as the cache knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub jid: String,
    /// The load as published (`fun`, `arg`, `tgt`, `tgt_type`, `user`, `ret`, ...).
    pub load: Value,
    /// The minions the master expected to return (Salt's `.minions.p`).
    pub minions: Vec<String>,
    /// When it was published, in microseconds since the epoch.
    pub started_micros: u64,
}

impl Job {
    fn encode(&self) -> Vec<u8> {
        payload::encode(&map([
            ("load", self.load.clone()),
            ("minions", Value::Array(self.minions.iter().map(|m| Value::from(m.as_str())).collect())),
            ("started", Value::from(self.started_micros)),
        ]))
    }

    fn decode(jid: &str, bytes: &[u8]) -> Result<Job, halite_proto::ProtoError> {
        let mut v = payload::decode_stored(bytes)?;
        let minions = match payload::remove(&mut v, "minions") {
            Some(Value::Array(items)) => items.iter().filter_map(|m| m.as_text().map(str::to_owned)).collect(),
            _ => Vec::new(),
        };
        Ok(Job {
            jid: jid.to_owned(),
            started_micros: v.get("started").and_then(Value::as_u64).unwrap_or(0),
            load: payload::remove(&mut v, "load").unwrap_or(Value::Nil),
            minions,
        })
    }

    /// The stand-in for a job the master never published (a minion's own `salt-call`, a
    /// schedule): Salt's `local_cache` saves the return's load as the job's.
    fn from_return(jid: &str, minion: &str, ret: &Value, args: Value, now_micros: u64) -> Job {
        let field = |k: &str| ret.get(k).cloned();
        let load = map([
            ("jid", Value::from(jid)),
            ("fun", field("fun").unwrap_or(Value::from(""))),
            ("arg", args),
            ("tgt", Value::from(minion)),
            ("tgt_type", Value::from("glob")),
            ("user", field("user").unwrap_or(Value::from("root"))),
        ]);
        Job { jid: jid.to_owned(), load, minions: vec![minion.to_owned()], started_micros: now_micros }
    }
}

// As in lib.rs: redb's error type is large, and these paths end in an fsync anyway.
#[allow(clippy::result_large_err)]
impl Store {
    /// Records a job as it is published, before any minion can return.
    pub fn put_job(&self, job: &Job) -> Result<(), StoreError> {
        let bytes = job.encode();
        self.write("saving job", &job.jid, Room::adds(bytes.len() + job.jid.len()), |txn| {
            txn.open_table(JOBS)?.insert(job.jid.as_str(), bytes.as_slice())?;
            txn.open_table(JOB_TIMES)?.insert((job.started_micros, job.jid.as_str()), ())?;
            Ok(())
        })
    }

    pub fn job(&self, jid: &str) -> Result<Option<Job>, StoreError> {
        let what = "reading job";
        let txn = self.read(what, jid)?;
        let table = txn.open_table(JOBS).map_err(|e| self.fail(what, jid, e))?;
        let Some(raw) = table.get(jid).map_err(|e| self.fail(what, jid, e))? else { return Ok(None) };
        Job::decode(jid, raw.value()).map(Some).map_err(|e| self.err(what, jid, e))
    }

    /// Every cached job, oldest first.
    pub fn jobs(&self) -> Result<Vec<Job>, StoreError> {
        let what = "listing jobs";
        let txn = self.read(what, "*")?;
        let times = txn.open_table(JOB_TIMES).map_err(|e| self.fail(what, "*", e))?;
        let jobs = txn.open_table(JOBS).map_err(|e| self.fail(what, "*", e))?;
        let mut out = Vec::new();
        for row in times.iter().map_err(|e| self.fail(what, "*", e))? {
            let (key, _) = row.map_err(|e| self.fail(what, "*", e))?;
            let (_, jid) = key.value();
            if let Some(raw) = jobs.get(jid).map_err(|e| self.fail(what, jid, e))? {
                out.push(Job::decode(jid, raw.value()).map_err(|e| self.err(what, jid, e))?);
            }
        }
        Ok(out)
    }

    /// Records a minion's `_return` load as it arrived, less its `fun_args` (see the module
    /// doc). A return for a jid the cache does not know starts a job of its own (stamped
    /// `now_micros`, its `arg` the return's `fun_args`), so it is listed and expires like any
    /// other.
    pub fn put_return(&self, jid: &str, minion: &str, ret: &Value, now_micros: u64) -> Result<(), StoreError> {
        let (room, change) = self.return_change(jid, minion, ret, now_micros);
        self.write_shared("saving job return", minion, room, change)
    }

    /// [`Store::put_return`] without waiting: `then` gets the result once the return is
    /// durable, on whichever thread committed it, with the return handed back (so the caller
    /// can announce it without keeping a copy). `then` must not write to the store.
    pub fn put_return_then(
        &self,
        jid: &str,
        minion: &str,
        ret: Value,
        now_micros: u64,
        then: impl FnOnce(Result<(), StoreError>, Value) + Send + 'static,
    ) {
        let (room, change) = self.return_change(jid, minion, &ret, now_micros);
        self.write_shared_then("saving job return", minion, room, change, move |saved| then(saved, ret));
    }

    #[allow(clippy::result_large_err)]
    fn return_change(
        &self,
        jid: &str,
        minion: &str,
        ret: &Value,
        now_micros: u64,
    ) -> (Room, impl Fn(&redb::WriteTransaction) -> Result<(), redb::Error> + Send + Sync + 'static) {
        let bytes = payload::encode_without(ret, "fun_args");
        // The args are kept apart only for a job the cache does not know yet (a minion's own
        // job), which they describe; a published job's return (nearly all) carries none, so
        // a large `arg` published to thousands of minions is neither stored nor copied again
        // for each of them. Known or not is settled again in the transaction.
        let args = match self.job_known(jid) {
            true => None,
            // `arg`: what the master put in a `jid: req` return for the job it made of it.
            false => {
                let args = ret.get("fun_args").or_else(|| ret.get("arg"));
                Some(payload::encode(args.unwrap_or(&Value::Array(vec![]))))
            }
        };
        // A job's first return also describes the job, in a few fields of it.
        let room = Room::adds(bytes.len() + args.as_ref().map_or(0, Vec::len) + jid.len() + minion.len() + 256);
        let (jid, minion_id) = (jid.to_owned(), minion.to_owned());
        let change = move |txn: &redb::WriteTransaction| {
            let mut jobs = txn.open_table(JOBS)?;
            if jobs.get(jid.as_str())?.is_none() {
                // Only the first return of a job pays for describing it, from the bytes
                // already encoded rather than from a copy of the return kept for every one.
                let corrupt =
                    |e: halite_proto::ProtoError| redb::Error::Corrupted(format!("return of {minion_id}: {e}"));
                let ret = payload::decode_stored(&bytes).map_err(corrupt)?;
                // Known when the return arrived and expired since: described without args.
                let args = args.as_deref().map(payload::decode_stored).transpose().map_err(corrupt)?;
                let args = args.unwrap_or(Value::Array(vec![]));
                let first_seen = Job::from_return(&jid, &minion_id, &ret, args, now_micros).encode();
                jobs.insert(jid.as_str(), first_seen.as_slice())?;
                txn.open_table(JOB_TIMES)?.insert((now_micros, jid.as_str()), ())?;
            }
            txn.open_table(RETURNS)?.insert((jid.as_str(), minion_id.as_str()), bytes.as_slice())?;
            Ok(())
        };
        (room, change)
    }

    /// Whether the cache holds job `jid`; a store that cannot be read says no.
    fn job_known(&self, jid: &str) -> bool {
        let Ok(txn) = self.read("reading job", jid) else { return false };
        txn.open_table(JOBS).ok().and_then(|t| t.get(jid).ok().flatten()).is_some()
    }

    /// Every stored return of a job, by minion id.
    pub fn returns(&self, jid: &str) -> Result<Vec<(String, Value)>, StoreError> {
        let what = "reading job returns";
        let txn = self.read(what, jid)?;
        let table = txn.open_table(RETURNS).map_err(|e| self.fail(what, jid, e))?;
        let mut out = Vec::new();
        for row in table.range((jid, "")..).map_err(|e| self.fail(what, jid, e))? {
            let (k, v) = row.map_err(|e| self.fail(what, jid, e))?;
            let (row_jid, id) = k.value();
            if row_jid != jid {
                break;
            }
            out.push((id.to_owned(), payload::decode_stored(v.value()).map_err(|e| self.err(what, id, e))?));
        }
        Ok(out)
    }

    /// Drops every job started before `cutoff_micros`, with its returns (Salt's
    /// `keep_jobs_seconds` cleanup); the jids dropped, oldest first. Reads only the expired
    /// rows of the time index.
    pub fn expire_jobs(&self, cutoff_micros: u64) -> Result<Vec<String>, StoreError> {
        let mut dropped = Vec::new();
        loop {
            // In bounded transactions: each copies the pages it changes, and on a nearly
            // full disk a small one fits where one for a day of jobs would not.
            let batch = self.write("expiring jobs", "*", Room::Frees, |txn| {
                let mut times = txn.open_table(JOB_TIMES)?;
                let expired: Vec<(u64, String)> = times
                    .range(..(cutoff_micros, ""))?
                    .take(EXPIRY_BATCH)
                    .map(|row| row.map(|(k, _)| (k.value().0, k.value().1.to_owned())))
                    .collect::<Result<_, _>>()?;
                let mut jobs = txn.open_table(JOBS)?;
                let mut returns = txn.open_table(RETURNS)?;
                for (started, jid) in &expired {
                    times.remove((*started, jid.as_str()))?;
                    jobs.remove(jid.as_str())?;
                    let mut minions = Vec::new();
                    for row in returns.range((jid.as_str(), "")..)? {
                        let (key, _) = row?;
                        let (row_jid, id) = key.value();
                        if row_jid != jid {
                            break;
                        }
                        minions.push(id.to_owned());
                    }
                    for id in minions {
                        returns.remove((jid.as_str(), id.as_str()))?;
                    }
                }
                Ok(expired)
            })?;
            let done = batch.len() < EXPIRY_BATCH;
            dropped.extend(batch.into_iter().map(|(_, jid)| jid));
            if done {
                return Ok(dropped);
            }
        }
    }
}

/// Jobs dropped per expiry transaction.
const EXPIRY_BATCH: usize = 500;

#[cfg(test)]
mod tests {
    use super::*;

    fn job(jid: &str, started: u64) -> Job {
        Job {
            jid: jid.into(),
            load: map([("fun", Value::from("test.ping")), ("jid", Value::from(jid))]),
            minions: vec!["a".into(), "b".into()],
            started_micros: started,
        }
    }

    #[test]
    fn jobs_and_returns_round_trip_and_expire_in_time_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("halite.redb")).unwrap();
        store.put_job(&job("20240101120000000001", 100)).unwrap();
        store.put_job(&job("20240101120000000002", 200)).unwrap();
        store.put_return("20240101120000000001", "b", &Value::from(2), 150).unwrap();
        store.put_return("20240101120000000001", "a", &Value::from(1), 150).unwrap();
        store.put_return("20240101120000000002", "a", &Value::from(3), 250).unwrap();
        // A return for a job nobody published here starts its own job.
        let stray = map([("fun", Value::from("state.apply")), ("fun_args", Value::Array(vec![Value::from("web")]))]);
        store.put_return("20240101120000000003", "c", &stray, 300).unwrap();
        // The args a minion echoes are the job's, stored once in its load, not per return.
        let echoing = map([("return", Value::from(4)), ("fun_args", Value::Array(vec![Value::from("x")]))]);
        store.put_return("20240101120000000002", "b", &echoing, 250).unwrap();
        let stored = store.returns("20240101120000000002").unwrap();
        assert_eq!(stored[1], ("b".to_string(), map([("return", Value::from(4))])));

        assert_eq!(store.job("20240101120000000001").unwrap(), Some(job("20240101120000000001", 100)));
        let got = store.returns("20240101120000000001").unwrap();
        assert_eq!(got, vec![("a".to_string(), Value::from(1)), ("b".to_string(), Value::from(2))]);
        let all: Vec<String> = store.jobs().unwrap().into_iter().map(|j| j.jid).collect();
        assert_eq!(all, ["20240101120000000001", "20240101120000000002", "20240101120000000003"]);
        let stray_job = store.job("20240101120000000003").unwrap().unwrap();
        assert_eq!(stray_job.minions, ["c"]);
        assert_eq!(stray_job.load.get_text("fun"), Some("state.apply"));
        assert_eq!(stray_job.load.get("arg"), Some(&Value::Array(vec![Value::from("web")])));
        assert_eq!(store.returns("20240101120000000003").unwrap()[0].1, map([("fun", Value::from("state.apply"))]));

        assert_eq!(store.expire_jobs(201).unwrap(), ["20240101120000000001", "20240101120000000002"]);
        assert_eq!(store.job("20240101120000000001").unwrap(), None);
        assert!(store.returns("20240101120000000001").unwrap().is_empty());
        assert!(store.returns("20240101120000000002").unwrap().is_empty());
        assert_eq!(store.returns("20240101120000000003").unwrap().len(), 1);
        assert!(store.expire_jobs(201).unwrap().is_empty());
    }

    #[test]
    fn a_return_dense_in_items_reads_back_once_its_args_are_left_out() {
        // 100,000 one-byte items passed the network's budget next to 400 KB of args; stored
        // without them, the row is a fifth as long with as many items, and must still read.
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("halite.redb")).unwrap();
        let dense = Value::Array((0..100_000).map(|i| Value::from(i % 100)).collect());
        let ret = map([("return", dense.clone()), ("fun_args", Value::from("x".repeat(400_000)))]);
        assert!(payload::decode(&payload::encode(&ret)).is_ok(), "within the network's budget as sent");
        // A job this cache does not know: the stand-in is built inside the transaction.
        store.put_return("20240101120000000009", "m", &ret, 100).unwrap();
        let stored = store.returns("20240101120000000009").unwrap();
        assert_eq!(stored, vec![("m".to_string(), map([("return", dense)]))]);
        let job = store.job("20240101120000000009").unwrap().unwrap();
        assert_eq!(job.load.get("arg").and_then(|a| a.as_text()).map(str::len), Some(400_000));
    }
}
