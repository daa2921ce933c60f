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

use redb::WriteTransaction;

use crate::health::Room;
use crate::{Store, StoreError};

/// One change to apply: it must be repeatable, since a failed batch is replayed one by one.
pub(crate) type Change = Arc<dyn Fn(&WriteTransaction) -> Result<(), redb::Error> + Send + Sync>;

/// Runs once its change is durable (or has failed). It must not write to the store: it runs
/// on the committing thread, which would wait for itself.
pub(crate) type Then = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// A change with what the error names if it fails, and the room it needs.
pub(crate) struct Write {
    pub(crate) what: &'static str,
    pub(crate) id: String,
    pub(crate) room: Room,
    pub(crate) change: Change,
}

struct Queued {
    ticket: u64,
    write: Write,
    then: Option<Then>,
}

#[derive(Default)]
struct State {
    next_ticket: u64,
    queued: Vec<Queued>,
    done: HashMap<u64, Result<(), StoreError>>,
    committing: bool,
}

impl State {
    fn enqueue(&mut self, write: Write, then: Option<Then>) -> u64 {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.queued.push(Queued { ticket, write, then });
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

    /// Applies `write` durably, in a transaction shared with whatever else is queued.
    /// The error, if any, is this change's alone.
    pub(crate) fn apply(&self, store: &Store, write: Write) -> Result<(), StoreError> {
        let mut state = self.lock();
        let ticket = state.enqueue(write, None);
        loop {
            if let Some(result) = state.done.remove(&ticket) {
                return result;
            }
            if state.committing {
                state = self.finished.wait(state).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            state = self.lead(store, state);
        }
    }

    /// Queues `change` and returns; `then` gets its result once it is durable. If no commit
    /// is running, this thread commits, before returning, what is queued.
    pub(crate) fn apply_then(&self, store: &Store, write: Write, then: Then) {
        let mut state = self.lock();
        state.enqueue(write, Some(then));
        if !state.committing {
            drop(self.lead(store, state));
        }
    }

    /// Commits batches until nothing is queued: results go to waiting writers, callbacks
    /// run (outside the lock) on this thread.
    fn lead<'a>(&'a self, store: &Store, mut state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        state.committing = true;
        while !state.queued.is_empty() {
            let batch = std::mem::take(&mut state.queued);
            drop(state);
            let results = commit_batch(store, &batch);
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
fn commit_batch(store: &Store, batch: &[Queued]) -> Vec<Result<(), StoreError>> {
    if let [one] = batch {
        return vec![commit_one(store, &one.write)];
    }
    let room = batch.iter().fold(Room::Adds { changes: 0, bytes: 0 }, |room, queued| room.plus(queued.write.room));
    let together = (|| -> Result<(), StoreError> {
        let (what, id) = ("saving a batch of changes", "*");
        let txn = store.begin_write(what, id, room)?;
        for queued in batch {
            (queued.write.change)(&txn).map_err(|e| store.fail(what, id, e))?;
        }
        txn.commit().map_err(|e| store.fail(what, id, e))
    })();
    match together {
        Ok(()) => batch.iter().map(|_| Ok(())).collect(),
        // Replayed alone, each change meets its own error, or fits where the batch did not.
        Err(_) => batch.iter().map(|queued| commit_one(store, &queued.write)).collect(),
    }
}

fn commit_one(store: &Store, write: &Write) -> Result<(), StoreError> {
    let Write { what, id, room, change } = write;
    let txn = store.begin_write(what, id, *room)?;
    change(&txn).map_err(|e| store.fail(what, id, e))?;
    txn.commit().map_err(|e| store.fail(what, id, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::{ReadableTableMetadata, TableDefinition};

    const T: TableDefinition<u64, u64> = TableDefinition::new("t");

    fn write(n: u64, change: Change) -> Write {
        Write { what: "test write", id: n.to_string(), room: Room::adds(8), change }
    }

    // redb's error type is large; the changes in the store return it too (see lib.rs).
    #[allow(clippy::result_large_err)]
    #[test]
    fn concurrent_writers_all_land_and_a_failing_one_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        std::thread::scope(|s| {
            for n in 0..64u64 {
                let store = &store;
                s.spawn(move || {
                    let change: Change = if n == 13 {
                        Arc::new(|_txn: &WriteTransaction| Err(redb::Error::Corrupted("refused on purpose".into())))
                    } else {
                        Arc::new(move |txn: &WriteTransaction| {
                            txn.open_table(T)?.insert(n, n * 2)?;
                            Ok(())
                        })
                    };
                    let result = store.group.apply(store, write(n, change));
                    assert_eq!(result.is_err(), n == 13, "writer {n}: {result:?}");
                    if let Err(e) = result {
                        assert!(e.to_string().contains("\"13\""), "the error names its own writer: {e}");
                    }
                });
            }
        });
        let db = store.health.database().ok().unwrap();
        let txn = db.begin_read().unwrap();
        let table = txn.open_table(T).unwrap();
        assert_eq!(table.len().unwrap(), 63);
        drop((table, txn));

        // Handed-over changes: every callback runs once, after its change is readable.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            for n in 100..164u64 {
                let (store, tx) = (&store, tx.clone());
                s.spawn(move || {
                    let change: Change = Arc::new(move |txn: &WriteTransaction| {
                        txn.open_table(T)?.insert(n, n)?;
                        Ok(())
                    });
                    store.group.apply_then(
                        store,
                        write(n, change),
                        Box::new(move |result| tx.send((n, result)).unwrap()),
                    );
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
