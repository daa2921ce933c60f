//! A configuration dict as Salt builds it while loading: top-level options in insertion
//! order, each remembering where its value came from, with Python's `dict.update` and Salt's
//! `salt.utils.dictupdate.update` as the two ways of combining them.

use halite_yaml::{py, Value};

use crate::error::Origin;

#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub key: String,
    pub value: Value,
    pub origin: Origin,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Layer {
    entries: Vec<Entry>,
}

impl Layer {
    /// A layer from a loaded mapping. Top-level keys become their Python `str()`: Salt looks
    /// options up by name, so a non-string key can only be an unknown option anyway.
    pub fn from_map(pairs: Vec<(Value, Value)>, origin: &Origin) -> Layer {
        let mut layer = Layer::default();
        for (key, value) in pairs {
            let key = py::str(&key).unwrap_or_else(|| format!("{key}"));
            layer.set(&key, value, origin.clone());
        }
        layer
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn into_entries(self) -> Vec<Entry> {
        self.entries
    }

    pub fn entry(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key == key)
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entry(key).map(|e| &e.value)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.entry(key).is_some()
    }

    /// `d[key] = value`: an existing key keeps its place, a new one goes last.
    pub fn set(&mut self, key: &str, value: Value, origin: Origin) {
        match self.entries.iter_mut().find(|e| e.key == key) {
            Some(e) => {
                e.value = value;
                e.origin = origin;
            }
            None => self.entries.push(Entry { key: key.to_owned(), value, origin }),
        }
    }

    /// Replaces a value Salt derives from others, keeping the key's origin for messages.
    pub fn replace(&mut self, key: &str, value: Value) {
        let origin = self.entry(key).map_or(Origin::SaltDefaults, |e| e.origin.clone());
        self.set(key, value, origin);
    }

    /// Python's `dict.update`.
    pub fn update(&mut self, other: Layer) {
        for e in other.entries {
            self.set(&e.key, e.value, e.origin);
        }
    }

    /// `salt.utils.dictupdate.update(self, other, recursive_update=True, merge_lists=True)`,
    /// which Salt uses to combine included files: mappings merge key by key, lists are
    /// concatenated without the items already present, anything else is replaced.
    pub fn merge(&mut self, other: Layer) {
        for e in other.entries {
            match self.entries.iter_mut().find(|mine| mine.key == e.key) {
                Some(mine) => {
                    merge_value(&mut mine.value, e.value);
                    mine.origin = e.origin;
                }
                None => self.entries.push(e),
            }
        }
    }
}

fn merge_value(dest: &mut Value, upd: Value) {
    match (dest, upd) {
        (Value::Map(dest), Value::Map(upd)) => {
            for (key, value) in upd {
                match dest.iter_mut().find(|(k, _)| py::eq(k, &key)) {
                    Some((_, existing)) => merge_value(existing, value),
                    None => dest.push((key, value)),
                }
            }
        }
        (Value::Array(dest), Value::Array(upd)) => {
            // `merged.extend([x for x in upd if x not in merged])`: the filter runs against
            // the list before extending, so duplicates within `upd` all stay.
            let fresh: Vec<Value> = upd.into_iter().filter(|item| !dest.iter().any(|d| py::eq(d, item))).collect();
            dest.extend(fresh);
        }
        (dest, upd) => *dest = upd,
    }
}

pub(crate) use halite_yaml::py::truthy;

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(yaml: &str) -> Layer {
        match halite_yaml::load(yaml).unwrap() {
            Value::Map(pairs) => Layer::from_map(pairs, &Origin::SaltDefaults),
            other => panic!("not a map: {other}"),
        }
    }

    #[test]
    fn merge_is_salts_dictupdate_with_merge_lists() {
        let mut a = layer("m: {x: 1, n: {p: 1}}\nl: [1, a]\ns: old\n");
        a.merge(layer("m: {y: 2, n: {q: 2}}\nl: [a, true, b, b]\ns: new\nt: added\n"));
        let expected = layer("m: {x: 1, n: {p: 1, q: 2}, y: 2}\nl: [1, a, b, b]\ns: new\nt: added\n");
        let got: Vec<_> = a.entries().iter().map(|e| (e.key.clone(), e.value.clone())).collect();
        let want: Vec<_> = expected.entries().iter().map(|e| (e.key.clone(), e.value.clone())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn update_is_shallow() {
        let mut a = layer("m: {x: 1}\n");
        a.update(layer("m: {y: 2}\n"));
        assert_eq!(a.get("m"), layer("m: {y: 2}\n").get("m"));
    }
}
