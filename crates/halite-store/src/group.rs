//! Group commit: concurrent writers share one redb transaction and one fsync.
//!
//! Why: every `_return`, `_pillar` and new session key is a write, and redb runs one write
//! transaction at a time, each ending in an fsync. Under a swarm of returns the workers
//! would queue behind each other's fsyncs. Here a writer queues its change; whoever finds
//! no commit running becomes the leader, applies every queued change in one transaction and
//! commits once; each writer still returns only after its own change is durable, with its
//! own error. A change that fails inside a shared transaction would take its neighbours
//! down with it, so on any failure the batch is aborted and each change is retried in a
//! transaction of its own, which pins the error on the writer that caused it.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use redb::{Database, WriteTransaction};

/// One change to apply: it must be repeatable, since a failed batch is replayed one by one.
pub(crate) type Change = Arc<dyn Fn(&WriteTransaction) -> Result<(), redb::Error> + Send + Sync>;

#[derive(Default)]
struct State {
    next_ticket: u64,
    queued: Vec<(u64, Change)>,
    done: HashMap<u64, Result<(), String>>,
    committing: bool,
}

#[derive(Default)]
pub(crate) struct GroupCommit {
    state: Mutex<State>,
    finished: Condvar,
}

impl GroupCommit {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies `change` durably, in a transaction shared with whatever else is queued.
    /// The error, if any, is redb's text for this change alone.
    pub(crate) fn apply(&self, db: &Database, change: Change) -> Result<(), String> {
        let mut state = self.lock();
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state.queued.push((ticket, change));
        loop {
            if let Some(result) = state.done.remove(&ticket) {
                return result;
            }
            if state.committing {
                state = self.finished.wait(state).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            state.committing = true;
            let batch = std::mem::take(&mut state.queued);
            drop(state);
            let results = commit_batch(db, &batch);
            state = self.lock();
            state.done.extend(results);
            state.committing = false;
            self.finished.notify_all();
        }
    }
}

fn commit_batch(db: &Database, batch: &[(u64, Change)]) -> Vec<(u64, Result<(), String>)> {
    let together = (|| -> Result<(), String> {
        let txn = db.begin_write().map_err(|e| e.to_string())?;
        for (_, change) in batch {
            change(&txn).map_err(|e| e.to_string())?;
        }
        txn.commit().map_err(|e| e.to_string())
    })();
    match together {
        Ok(()) => batch.iter().map(|(ticket, _)| (*ticket, Ok(()))).collect(),
        Err(_) if batch.len() > 1 => batch.iter().map(|(ticket, change)| (*ticket, commit_one(db, change))).collect(),
        Err(e) => vec![(batch[0].0, Err(e))],
    }
}

fn commit_one(db: &Database, change: &Change) -> Result<(), String> {
    let txn = db.begin_write().map_err(|e| e.to_string())?;
    change(&txn).map_err(|e| e.to_string())?;
    txn.commit().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::{ReadableTableMetadata, TableDefinition};

    const T: TableDefinition<u64, u64> = TableDefinition::new("t");

    // redb's error type is large; the changes in the store return it too (see lib.rs).
    #[allow(clippy::result_large_err)]
    #[test]
    fn concurrent_writers_all_land_and_a_failing_one_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("db")).unwrap();
        let group = GroupCommit::default();
        std::thread::scope(|s| {
            for n in 0..64u64 {
                let (db, group) = (&db, &group);
                s.spawn(move || {
                    let change: Change = if n == 13 {
                        Arc::new(|_txn: &WriteTransaction| Err(redb::Error::Corrupted("refused on purpose".into())))
                    } else {
                        Arc::new(move |txn: &WriteTransaction| {
                            txn.open_table(T)?.insert(n, n * 2)?;
                            Ok(())
                        })
                    };
                    let result = group.apply(db, change);
                    assert_eq!(result.is_err(), n == 13, "writer {n}: {result:?}");
                });
            }
        });
        let txn = db.begin_read().unwrap();
        let table = txn.open_table(T).unwrap();
        assert_eq!(table.len().unwrap(), 63);
        assert!(table.get(13).unwrap().is_none());
        assert_eq!(table.get(63).unwrap().unwrap().value(), 126);
    }
}
