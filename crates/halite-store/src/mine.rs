//! The mine: per minion, the map of function name → data the minion last sent with `_mine`
//! (Salt's `minions/<id>/mine` cache entry). It lives next to the minion data cache and goes
//! with it when the minion's key does ([`Store::forget_minion`]).
//!
//! A minion's mine is read, changed and written back in one write transaction, so two
//! `_mine` requests of the same minion racing on two workers cannot lose each other's
//! functions, as two read-modify-write cycles of Salt's cache files can.

use std::collections::HashMap;

use halite_proto::payload::{self, Value};
use redb::{ReadableTable, TableDefinition};

use crate::health::Room;
use crate::{Store, StoreError};

pub(crate) const MINE: TableDefinition<&str, &[u8]> = TableDefinition::new("mine");

/// Python's `dict.update`: a key already present keeps its place and takes the new value,
/// new keys follow in their order.
fn dict_update(into: &mut Vec<(Value, Value)>, from: Vec<(Value, Value)>) {
    for (k, v) in from {
        match into.iter_mut().find(|(key, _)| *key == k) {
            Some(slot) => slot.1 = v,
            None => into.push((k, v)),
        }
    }
}

// redb's own error type is large; see the note on `Store`'s impl.
#[allow(clippy::result_large_err)]
fn decode_map(raw: &[u8], id: &str) -> Result<Vec<(Value, Value)>, redb::Error> {
    match payload::decode_stored(raw) {
        Ok(Value::Map(pairs)) => Ok(pairs),
        Ok(_) => Ok(Vec::new()),
        Err(e) => Err(redb::Error::Corrupted(format!("mine of {id}: {e}"))),
    }
}

#[allow(clippy::result_large_err)]
impl Store {
    /// Stores a minion's `_mine` data: merged into what it had (`dict.update`), or, with
    /// `clear`, in place of it. Durable on return.
    pub fn update_mine(&self, id: &str, data: Vec<(Value, Value)>, clear: bool) -> Result<(), StoreError> {
        let key = id.to_owned();
        let room = Room::adds(
            key.len() + data.iter().map(|(k, v)| payload::encode(k).len() + payload::encode(v).len()).sum::<usize>(),
        );
        self.write_shared("saving mine data", id, room, move |txn| {
            let mut table = txn.open_table(MINE)?;
            let mut mine = match (clear, table.get(key.as_str())?) {
                (false, Some(raw)) => decode_map(raw.value(), &key)?,
                _ => Vec::new(),
            };
            dict_update(&mut mine, data.clone());
            table.insert(key.as_str(), payload::encode(&Value::Map(mine)).as_slice())?;
            Ok(())
        })
    }

    /// Drops one function from a minion's mine (nothing to do when it has none).
    pub fn delete_mine_function(&self, id: &str, function: &str) -> Result<(), StoreError> {
        self.write("deleting a mine function", id, Room::Frees, |txn| {
            let mut table = txn.open_table(MINE)?;
            let Some(mut mine) = table.get(id)?.map(|raw| decode_map(raw.value(), id)).transpose()? else {
                return Ok(());
            };
            let before = mine.len();
            mine.retain(|(k, _)| k.as_str() != Some(function));
            if mine.len() != before {
                table.insert(id, payload::encode(&Value::Map(mine)).as_slice())?;
            }
            Ok(())
        })
    }

    /// Drops a minion's whole mine; whether it had one (Salt's cache `flush` answer).
    pub fn flush_mine(&self, id: &str) -> Result<bool, StoreError> {
        self.write("flushing mine data", id, Room::Frees, |txn| Ok(txn.open_table(MINE)?.remove(id)?.is_some()))
    }

    /// The mine of each of `ids` that has one, read in one transaction.
    pub fn mine_of(&self, ids: &[String]) -> Result<HashMap<String, Value>, StoreError> {
        let what = "reading mine data";
        let txn = self.read(what, "*")?;
        let table = txn.open_table(MINE).map_err(|e| self.fail(what, "*", e))?;
        let mut out = HashMap::new();
        for id in ids {
            let Some(raw) = table.get(id.as_str()).map_err(|e| self.fail(what, id, e))? else { continue };
            out.insert(id.clone(), payload::decode_stored(raw.value()).map_err(|e| self.err(what, id, e))?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use halite_proto::payload::map;

    fn pairs(v: Value) -> Vec<(Value, Value)> {
        match v {
            Value::Map(p) => p,
            _ => unreachable!("a map literal"),
        }
    }

    #[test]
    fn mine_updates_merge_clear_delete_flush_and_forget() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("halite.redb")).unwrap();
        let ids = ["web1".to_string(), "db1".to_string()];
        store.update_mine("web1", pairs(map([("a", Value::from(1)), ("b", Value::from(2))])), false).unwrap();
        store.update_mine("web1", pairs(map([("b", Value::from(3)), ("c", Value::from(4))])), false).unwrap();
        let got = store.mine_of(&ids).unwrap();
        assert_eq!(got["web1"], map([("a", Value::from(1)), ("b", Value::from(3)), ("c", Value::from(4))]));
        assert!(!got.contains_key("db1"));

        store.update_mine("web1", pairs(map([("z", Value::from(0))])), true).unwrap();
        assert_eq!(store.mine_of(&ids).unwrap()["web1"], map([("z", Value::from(0))]), "clear replaces");

        store.update_mine("web1", pairs(map([("y", Value::from(9))])), false).unwrap();
        store.delete_mine_function("web1", "z").unwrap();
        store.delete_mine_function("web1", "absent").unwrap();
        store.delete_mine_function("db1", "z").unwrap();
        assert_eq!(store.mine_of(&ids).unwrap()["web1"], map([("y", Value::from(9))]));

        assert!(store.flush_mine("web1").unwrap());
        assert!(!store.flush_mine("web1").unwrap(), "nothing left to flush");
        assert!(store.mine_of(&ids).unwrap().is_empty());

        store.update_mine("db1", pairs(map([("a", Value::from(1))])), false).unwrap();
        assert_eq!(store.known_minions().unwrap(), vec!["db1".to_string()], "a mine alone makes a minion known");
        store.forget_minion("db1").unwrap();
        assert!(store.mine_of(&ids).unwrap().is_empty(), "the mine goes with the key");
    }
}
