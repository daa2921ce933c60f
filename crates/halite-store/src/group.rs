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
//!
//! A writer may also hand its change over with a callback ([`GroupCommit::apply_then`]) and
//! go on with other work: the callback runs once the change is durable. That is what lets a
//! batch grow past the number of writer threads: under a storm of `_return`s every return
//! that arrives during one fsync rides the next one, instead of at most one per worker.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use redb::{Database, WriteTransaction};

/// One change to apply: it must be repeatable, since a failed batch is replayed one by one.
pub(crate) type Change = Arc<dyn Fn(&WriteTransaction) -> Result<(), redb::Error> + Send + Sync>;

/// Runs once its change is durable (or has failed). It must not write to the store: it runs
/// on the committing thread, which would wait for itself.
pub(crate) type Then = Box<dyn FnOnce(Result<(), String>) + Send>;

struct Queued {
    ticket: u64,
    change: Change,
    then: Option<Then>,
}

#[derive(Default)]
struct State {
    next_ticket: u64,
    queued: Vec<Queued>,
    done: HashMap<u64, Result<(), String>>,
    committing: bool,
}

impl State {
    fn enqueue(&mut self, change: Change, then: Option<Then>) -> u64 {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.queued.push(Queued { ticket, change, then });
        ticket
    }
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
        let ticket = state.enqueue(change, None);
        loop {
            if let Some(result) = state.done.remove(&ticket) {
                return result;
            }
            if state.committing {
                state = self.finished.wait(state).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            state = self.lead(db, state);
        }
    }

    /// Queues `change` and returns; `then` gets its result once it is durable. If no commit
    /// is running, this thread commits, before returning, what is queued.
    pub(crate) fn apply_then(&self, db: &Database, change: Change, then: Then) {
        let mut state = self.lock();
        state.enqueue(change, Some(then));
        if !state.committing {
            drop(self.lead(db, state));
        }
    }

    /// Commits batches until nothing is queued: results go to waiting writers, callbacks
    /// run (outside the lock) on this thread.
    fn lead<'a>(&'a self, db: &Database, mut state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        state.committing = true;
        while !state.queued.is_empty() {
            let batch = std::mem::take(&mut state.queued);
            drop(state);
            let results = commit_batch(db, &batch);
            let mut callbacks = Vec::new();
            state = self.lock();
            for (queued, result) in batch.into_iter().zip(results) {
                match queued.then {
                    Some(then) => callbacks.push((then, result)),
                    None => {
                        state.done.insert(queued.ticket, result);
                    }
                }
            }
            self.finished.notify_all();
            drop(state);
            for (then, result) in callbacks {
                then(result);
            }
            state = self.lock();
        }
        state.committing = false;
        self.finished.notify_all();
        state
    }
}

/// Each change's result, in the batch's order.
fn commit_batch(db: &Database, batch: &[Queued]) -> Vec<Result<(), String>> {
    let together = (|| -> Result<(), String> {
        let txn = db.begin_write().map_err(|e| e.to_string())?;
        for queued in batch {
            (queued.change)(&txn).map_err(|e| e.to_string())?;
        }
        txn.commit().map_err(|e| e.to_string())
    })();
    match together {
        Ok(()) => batch.iter().map(|_| Ok(())).collect(),
        Err(_) if batch.len() > 1 => batch.iter().map(|queued| commit_one(db, &queued.change)).collect(),
        Err(e) => vec![Err(e)],
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
        drop((table, txn));

        // Handed-over changes: every callback runs once, after its change is readable.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            for n in 100..164u64 {
                let (db, group, tx) = (&db, &group, tx.clone());
                s.spawn(move || {
                    let change: Change = Arc::new(move |txn: &WriteTransaction| {
                        txn.open_table(T)?.insert(n, n)?;
                        Ok(())
                    });
                    group.apply_then(db, change, Box::new(move |result| tx.send((n, result)).unwrap()));
                });
            }
        });
        drop(tx);
        let mut seen: Vec<u64> = rx
            .iter()
            .map(|(n, result)| {
                assert!(result.is_ok());
                n
            })
            .collect();
        seen.sort();
        assert_eq!(seen, (100..164).collect::<Vec<_>>());
        let txn = db.begin_read().unwrap();
        let table = txn.open_table(T).unwrap();
        assert!(table.get(13).unwrap().is_none());
        assert_eq!(table.get(63).unwrap().unwrap().value(), 126);
    }
}
