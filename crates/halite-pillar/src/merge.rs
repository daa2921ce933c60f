//! Salt's `salt.utils.dictupdate.merge`: how two pillar dicts become one, by
//! `pillar_source_merging_strategy` and `pillar_merge_lists`.
//!
//! Keys are compared as Python compares dict keys (`1`, `1.0` and `True` are one key); a key
//! already present keeps its place and its original spelling, new keys go last — the order
//! of a Python dict after `d[k] = v`.

use halite_yaml::{py, Value};

/// `pillar_source_merging_strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// `recurse`, or `aggregate` when the renderer ends in `yamlex`.
    Smart,
    /// Dicts merged key by key at every depth; lists replaced (or appended to with
    /// `pillar_merge_lists`).
    Recurse,
    /// Salt's yamlex aggregation at level 1; for data no yamlex tag marked, a top-level
    /// `update`.
    Aggregate,
    /// Top-level keys of the later source replace the earlier ones whole.
    Overwrite,
    /// Only the top file of the minion's saltenv (or `base`) is read; merged as `recurse`.
    None,
    /// Keys present in both become `[earlier, later]`; keys only in the later source are
    /// dropped — Salt's `merge_list`, reproduced as it is.
    List,
}

impl Strategy {
    pub fn from_name(name: &str) -> Option<Strategy> {
        Some(match name {
            "smart" => Strategy::Smart,
            "recurse" => Strategy::Recurse,
            "aggregate" => Strategy::Aggregate,
            "overwrite" => Strategy::Overwrite,
            "none" => Strategy::None,
            "list" => Strategy::List,
            _ => return None,
        })
    }

    /// `smart` resolved against the renderer, as `merge` does first.
    fn resolve(self, renderer: &str) -> Strategy {
        match self {
            Strategy::Smart => {
                let last = renderer.rsplit('|').next().unwrap_or("");
                if last == "yamlex" || renderer.starts_with("yamlex_") {
                    Strategy::Aggregate
                } else {
                    Strategy::Recurse
                }
            }
            other => other,
        }
    }
}

/// `merge(obj_a, obj_b, strategy, renderer, merge_lists)` for two dicts (any other value in
/// `a` counts as an empty dict; `b` must be the newer source).
pub fn merge(a: Value, b: Value, strategy: Strategy, renderer: &str, merge_lists: bool) -> Value {
    let a = into_pairs(a);
    let b = into_pairs(b);
    Value::Map(match strategy.resolve(renderer) {
        Strategy::Recurse | Strategy::None | Strategy::Smart => update(a, b, merge_lists),
        Strategy::Aggregate | Strategy::Overwrite => shallow_update(a, b),
        Strategy::List => merge_list(a, b),
    })
}

fn into_pairs(v: Value) -> Vec<(Value, Value)> {
    match v {
        Value::Map(pairs) => pairs,
        _ => Vec::new(),
    }
}

fn position(pairs: &[(Value, Value)], key: &Value) -> Option<usize> {
    pairs.iter().position(|(k, _)| py::eq(k, key))
}

/// `dictupdate.update(dest, upd, merge_lists=...)`: dicts recurse, lists are replaced or, with
/// `merge_lists`, extended by the items of `upd` not already in `dest`.
pub fn update(mut dest: Vec<(Value, Value)>, upd: Vec<(Value, Value)>, merge_lists: bool) -> Vec<(Value, Value)> {
    for (key, val) in upd {
        let Some(i) = position(&dest, &key) else {
            dest.push((key, val));
            continue;
        };
        let slot = &mut dest[i].1;
        match (std::mem::replace(slot, Value::Nil), val) {
            (Value::Map(old), Value::Map(new)) => *slot = Value::Map(update(old, new, merge_lists)),
            (Value::Array(mut old), Value::Array(new)) if merge_lists => {
                // Python tests membership against the destination as it was, so duplicates
                // within `new` itself are all kept.
                let added: Vec<Value> = new.into_iter().filter(|x| !old.iter().any(|o| py::eq(o, x))).collect();
                old.extend(added);
                *slot = Value::Array(old);
            }
            (_, new) => *slot = new,
        }
    }
    dest
}

fn shallow_update(mut dest: Vec<(Value, Value)>, upd: Vec<(Value, Value)>) -> Vec<(Value, Value)> {
    for (key, val) in upd {
        match position(&dest, &key) {
            Some(i) => dest[i].1 = val,
            None => dest.push((key, val)),
        }
    }
    dest
}

fn merge_list(a: Vec<(Value, Value)>, b: Vec<(Value, Value)>) -> Vec<(Value, Value)> {
    a.into_iter()
        .map(|(k, v)| match position(&b, &k) {
            Some(i) => {
                let later = b[i].1.clone();
                (k, Value::Array(vec![v, later]))
            }
            None => (k, v),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn y(text: &str) -> Value {
        halite_yaml::load(text).expect("test YAML")
    }

    fn merged(a: &str, b: &str, strategy: Strategy, lists: bool) -> Value {
        merge(y(a), y(b), strategy, "jinja|yaml", lists)
    }

    #[test]
    fn recurse_merges_dicts_at_every_depth_and_replaces_lists() {
        let a = "users: {alice: {uid: 1, groups: [a]}, bob: {uid: 2}}\nkeep: 1\n";
        let b = "users: {alice: {groups: [b, a, b]}, carol: {uid: 3}}\nnew: 2\n";
        assert_eq!(
            merged(a, b, Strategy::Smart, false),
            y("users: {alice: {uid: 1, groups: [b, a, b]}, bob: {uid: 2}, carol: {uid: 3}}\nkeep: 1\nnew: 2\n")
        );
        assert_eq!(
            merged(a, b, Strategy::Recurse, true),
            y("users: {alice: {uid: 1, groups: [a, b, b]}, bob: {uid: 2}, carol: {uid: 3}}\nkeep: 1\nnew: 2\n"),
            "merge_lists appends what the earlier list lacks, duplicates within the later one kept"
        );
    }

    #[test]
    fn overwrite_and_aggregate_replace_top_level_keys_whole() {
        let a = "users: {alice: 1, bob: 2}\nkeep: 1\n";
        let b = "users: {carol: 3}\n";
        for s in [Strategy::Overwrite, Strategy::Aggregate] {
            assert_eq!(merged(a, b, s, false), y("users: {carol: 3}\nkeep: 1\n"), "{s:?}");
        }
        assert_eq!(merge(y(a), y(b), Strategy::Smart, "yamlex", false), y("users: {carol: 3}\nkeep: 1\n"));
    }

    #[test]
    fn list_pairs_common_keys_and_drops_new_ones() {
        assert_eq!(merged("a: 1\nb: 2\n", "a: 3\nc: 4\n", Strategy::List, false), y("a: [1, 3]\nb: 2\n"));
    }

    #[test]
    fn python_equal_keys_are_one_key() {
        assert_eq!(merged("1: one\n", "true: yes\n", Strategy::Recurse, false), y("1: yes\n"));
    }
}
