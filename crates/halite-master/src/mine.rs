//! The mine: minions store function results on the master (`_mine`), read those of other
//! minions (`_mine_get`), and drop their own (`_mine_delete`, `_mine_flush`) — Salt's
//! `AESFuncs` and `RemoteFuncs` methods of those names. Pillar templates (`mine.get`) and
//! `salt-run mine.get` read through the same [`mine_get`].
//!
//! Each minion's mine is one entry of `halite-store`'s minion data cache, kept only when
//! `minion_data_cache` or `enforce_mine_cache` is set, as Salt does, and dropped with the
//! rest of the minion's data when its key goes.
//!
//! Where halite parts from Salt: `_mine` with `clear: True` raises `UnboundLocalError`
//! in Salt 3006–3008 (`mine.update clear=True` stores nothing); here it replaces the
//! minion's mine with the data sent, which is what `clear` documents. Data that is not a
//! mapping is refused with the answer Salt gives when the handler raises (`""`).

use std::collections::HashMap;
use std::sync::Arc;

use halite_pki::PkiDir;
use halite_proto::payload::{self, map, Value, ValueExt};
use halite_ratelog::{peer_warn, shown};
use halite_store::Store;
use halite_target::pyre::PyRegex;
use halite_yaml::py;
use tracing::{debug, error, warn};

use crate::command::{Caller, MineCmd};
use crate::events::EventBus;
use crate::jobs;

/// Salt's `MINE_ITEM_ACL_ID`: a mine entry holding this key wraps its data with an ACL.
const ACL_ID: &str = "__saltmine_acl__";
/// Salt's `MINE_ITEM_ACL_DATA`: where such an entry keeps the data itself.
const ACL_DATA: &str = "__data__";

/// What `AESFuncs.run_func` answers when the command raised.
fn raised() -> Value {
    Value::from("")
}

/// The mine options of the master config.
#[derive(Debug, Clone, Default)]
pub struct MineSettings {
    /// `minion_data_cache` or `enforce_mine_cache`: whether `_mine` data is kept at all.
    pub keep: bool,
    /// `mine_get`, when configured: minion id regex → list of function regexes it may read.
    pub acl: Option<Value>,
}

impl MineSettings {
    pub fn from_config(c: &halite_config::MasterConfig) -> MineSettings {
        let enforce = c.extra("enforce_mine_cache").is_some_and(py::truthy);
        MineSettings { keep: c.minion_data_cache || enforce, acl: c.extra("mine_get").cloned() }
    }
}

/// What `_mine_get` reads: the minions a target names and their mines.
pub trait MineIndex {
    /// Salt's `check_minions(tgt, tgt_type, greedy=False)`; a target Salt cannot evaluate
    /// names nobody (the implementation logs why).
    fn minions(&self, tgt: &Value, tgt_type: &str) -> Vec<String>;
    /// The stored mine of each of `ids` that has one.
    fn mines(&self, ids: &[String]) -> HashMap<String, Value>;
}

/// Salt's `RemoteFuncs._mine_get`: the mine data of `fun` (one name, a comma-separated
/// list, or a list) on the minions `tgt` names, for the minion `load["id"]`, filtered by the
/// master's `mine_get` ACL (`acl`) and each entry's own `allow_tgt`. One function gives
/// `{minion: data}`; several give `{function: {minion: data}}`.
pub fn mine_get(load: &Value, acl: Option<&Value>, index: &impl MineIndex) -> Value {
    let empty = || map::<_, String>([]);
    let (Some(requester), Some(tgt), Some(fun)) = (load.get("id"), load.get("tgt"), load.get("fun")) else {
        peer_warn!("bad mine", None, "_mine_get without id, tgt or fun");
        return empty();
    };
    let requester = requester.as_str().unwrap_or_default();
    let (functions, by_function): (Vec<&str>, bool) = match fun {
        Value::String(s) => {
            let mut names: Vec<&str> = Vec::new();
            for name in s.as_str().unwrap_or_default().split(',') {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
            let several = names.len() > 1;
            (names, several)
        }
        Value::Array(items) => (items.iter().filter_map(Value::as_str).collect(), true),
        _ => return empty(),
    };
    let allowed = match acl {
        None => functions,
        Some(acl) => {
            let allowed = allowed_by_master(acl, requester, &functions);
            if allowed.is_empty() {
                debug!(requester, "mine_get: the master's mine_get ACL allows none of the functions");
                return empty();
            }
            allowed
        }
    };
    if !halite_proto::valid_id(requester) {
        peer_warn!("bad mine", None, requester = %shown(requester), "_mine_get from an invalid id");
        return empty();
    }
    // Old minions name the target type `expr_form`; `tgt_type` wins when both are there.
    let tgt_type = match (load.get("expr_form"), load.get("tgt_type")) {
        (Some(form), None) if !form.is_nil() => form,
        (_, Some(t)) => t,
        (_, None) => &Value::from("glob"),
    };
    let Some(tgt_type) = tgt_type.as_str() else {
        peer_warn!(
            "bad mine",
            None,
            requester = %shown(requester),
            tgt_type = %shown(&py::repr(tgt_type)),
            "_mine_get with a target type that is not text"
        );
        return raised();
    };
    // A minion names pillar targets for its peers' cached pillar, never by glob on it.
    let tgt_type = match tgt_type.to_lowercase().as_str() {
        "pillar" => "pillar_exact",
        "compound" => "compound_pillar_exact",
        _ => tgt_type,
    };
    let minions = index.minions(tgt, tgt_type);
    let mines = index.mines(&minions);
    let mut ret: Vec<(Value, Value)> = Vec::new();
    for minion in &minions {
        let Some(mine) = mines.get(minion) else { continue };
        for function in &allowed {
            let Some(StoredEntry { data, allow_tgt }) = stored_entry(mine, function) else {
                continue;
            };
            if let Some((allow_tgt, allow_type)) = allow_tgt {
                let permitted = index.minions(allow_tgt, allow_type);
                // Salt hides an entry whose allow_tgt names nobody, and one that names
                // others than the requester.
                if !permitted.iter().any(|m| m == requester) {
                    debug!(requester, %minion, function, "mine_get: denied by the entry's allow_tgt");
                    continue;
                }
            }
            if by_function {
                let slot = match ret.iter().position(|(k, _)| k.as_str() == Some(function)) {
                    Some(i) => i,
                    None => {
                        ret.push((Value::from(*function), Value::Map(Vec::new())));
                        ret.len() - 1
                    }
                };
                if let Value::Map(per_minion) = &mut ret[slot].1 {
                    per_minion.push((Value::from(minion.as_str()), data.clone()));
                }
            } else {
                ret.push((Value::from(minion.as_str()), data.clone()));
            }
        }
    }
    Value::Map(ret)
}

/// One function's entry in a minion's stored mine, unwrapped.
pub(crate) struct StoredEntry<'a> {
    /// What the function returned on the minion.
    pub data: &'a Value,
    /// The entry's own ACL (`allow_tgt`, `allow_tgt_type`, glob by default), when the minion
    /// stored it with one: who may read it through `mine.get`.
    pub allow_tgt: Option<(&'a Value, &'a str)>,
}

/// `function`'s entry in `mine` (one minion's stored mine, a mapping of function names to
/// entries), read as `_mine_get` reads it: an entry the minion stored with an ACL
/// (`__saltmine_acl__`) wraps its data in `__data__`; any other entry is the data itself.
/// The mine's other readers (the address book) read entries through this too, so they see
/// the data `mine.get` would answer, never the wrapper.
pub(crate) fn stored_entry<'a>(mine: &'a Value, function: &str) -> Option<StoredEntry<'a>> {
    let Value::Map(functions) = mine else { return None };
    let entry = functions.iter().find(|(k, _)| k.as_str() == Some(function)).map(|(_, v)| v)?;
    if entry.get(ACL_ID).is_none() {
        return Some(StoredEntry { data: entry, allow_tgt: None });
    }
    let allow_tgt = entry.get("allow_tgt").map(|t| (t, entry.get_text("allow_tgt_type").unwrap_or("glob")));
    Some(StoredEntry { data: entry.get(ACL_DATA).unwrap_or(&Value::Nil), allow_tgt })
}

/// The functions the master's `mine_get` option lets `requester` read: every entry whose id
/// regex matches (`re.match`) contributes its list of function regexes. An option that is
/// not a mapping allows nothing.
fn allowed_by_master<'f>(acl: &Value, requester: &str, functions: &[&'f str]) -> Vec<&'f str> {
    let Value::Map(entries) = acl else {
        warn!("mine_get is not a mapping of minion id regexes to lists of functions; every request is refused");
        return Vec::new();
    };
    let matches = |pattern: &Value, text: &str| match pattern.as_str().map(PyRegex::new) {
        Some(Ok(re)) => re.is_match(text),
        Some(Err(e)) => {
            warn!(error = %e, "mine_get: an invalid regular expression matches nothing");
            false
        }
        None => false,
    };
    let perms: Vec<&Value> = entries
        .iter()
        .filter(|(pattern, _)| matches(pattern, requester))
        .filter_map(|(_, perms)| match perms {
            Value::Array(list) => Some(list.iter()),
            _ => None,
        })
        .flatten()
        .collect();
    functions.iter().copied().filter(|f| perms.iter().any(|p| matches(p, f))).collect()
}

/// The master's mine: the four commands over its store, and `mine.get` for templates.
pub struct Mine {
    store: Arc<Store>,
    pki: PkiDir,
    nodegroups: Vec<(String, Value)>,
    settings: MineSettings,
    events: EventBus,
}

/// Whether storing `data` (with `clear`) changes a minion's mine that was `before`. The
/// mine is refreshed every `mine_interval` with the same data; only a difference counts.
fn changes(before: Option<&Value>, data: &[(Value, Value)], clear: bool) -> bool {
    let old: &[(Value, Value)] = match before {
        Some(Value::Map(pairs)) => pairs,
        _ => &[],
    };
    if clear && old.len() != data.len() {
        return true;
    }
    data.iter().any(|(k, v)| old.iter().find(|(ok, _)| ok == k).map(|(_, ov)| ov) != Some(v))
}

impl MineIndex for Mine {
    fn minions(&self, tgt: &Value, tgt_type: &str) -> Vec<String> {
        let delimiter = halite_target::subdict::DEFAULT_DELIMITER;
        match jobs::expected_in(&self.pki, &self.store, &self.nodegroups, tgt, tgt_type, delimiter) {
            Ok(matched) => matched.minions,
            Err(e) => {
                peer_warn!("bad mine", None, error = %e, "mine target names no minion");
                Vec::new()
            }
        }
    }

    fn mines(&self, ids: &[String]) -> HashMap<String, Value> {
        self.store.mine_of(ids).unwrap_or_else(|e| {
            halite_ratelog::limited_error!("mine not read", error = %e, "cannot read mine data; answering without it");
            HashMap::new()
        })
    }
}

impl Mine {
    pub fn new(
        store: Arc<Store>,
        pki: PkiDir,
        nodegroups: Vec<(String, Value)>,
        settings: MineSettings,
        events: EventBus,
    ) -> Mine {
        Mine { store, pki, nodegroups, settings, events }
    }

    /// The answer to mine command `cmd` from the minion `caller` proved to be: its own mine
    /// is the only one it changes, and `_mine_get`'s ACLs are applied to it.
    pub(crate) fn command(&self, cmd: MineCmd, caller: &Caller, load: &Value) -> Value {
        let minion = caller.id();
        let has = |keys: &[&str]| keys.iter().all(|k| load.get(k).is_some());
        // Salt's AESFuncs answer a load missing a key they need with an empty dict.
        let missing = || {
            peer_warn!("bad mine", caller.ip(), %minion, cmd = ?cmd, "mine command without the keys it needs");
            map::<_, String>([])
        };
        match cmd {
            MineCmd::Get => {
                let mut load = load.clone();
                payload::insert(&mut load, "id", Value::from(minion));
                self.get(&load)
            }
            MineCmd::Update if has(&["id", "data"]) => self.update(minion, load),
            MineCmd::Delete if has(&["id", "fun"]) => self.delete(minion, load),
            MineCmd::Flush if has(&["id"]) => self.flush(minion),
            MineCmd::Update | MineCmd::Delete | MineCmd::Flush => missing(),
        }
    }

    /// `_mine_get`, also for `salt-run mine.get` (whose load names the master's id).
    pub fn get(&self, load: &Value) -> Value {
        mine_get(load, self.settings.acl.as_ref(), self)
    }

    fn update(&self, minion: &str, load: &Value) -> Value {
        if !self.settings.keep {
            debug!("mine data not kept: minion_data_cache and enforce_mine_cache are off");
            return Value::Boolean(true);
        }
        let Some(Value::Map(data)) = load.get("data") else {
            peer_warn!("bad mine", None, %minion, "_mine data is not a mapping of function names to data; refused");
            return raised();
        };
        let clear = load.get("clear").is_some_and(py::truthy);
        let before = self.store.mine_of(&[minion.to_owned()]).ok().and_then(|mut m| m.remove(minion));
        match self.store.update_mine(minion, data.clone(), clear) {
            Ok(()) => {
                debug!(functions = data.len(), clear, "mine data stored");
                if changes(before.as_ref(), data, clear) {
                    // Salt fires nothing here. halite does, so what is built from the mine
                    // (the site's /etc/hosts and zones) can follow a VM's new data as soon as
                    // it is stored, not at a guess of when; minions may not fire halite/ tags.
                    self.events.fire(format!("halite/mine/{minion}/changed"), map([("id", Value::from(minion))]));
                }
                Value::Boolean(true)
            }
            Err(e) => {
                halite_ratelog::limited_error!("mine not saved", error = %e, "cannot store mine data");
                raised()
            }
        }
    }

    fn delete(&self, minion: &str, load: &Value) -> Value {
        if !self.settings.keep {
            return Value::Boolean(true);
        }
        let Some(fun) = load.get_text("fun") else {
            // Salt looks the value up as a key; only text names a function.
            return Value::Boolean(true);
        };
        match self.store.delete_mine_function(minion, fun) {
            Ok(()) => Value::Boolean(true),
            Err(e) => {
                error!(error = %e, fun, "cannot delete a mine function");
                Value::Boolean(false)
            }
        }
    }

    fn flush(&self, minion: &str) -> Value {
        if !self.settings.keep {
            return Value::Boolean(true);
        }
        match self.store.flush_mine(minion) {
            Ok(had) => Value::Boolean(had),
            Err(e) => {
                error!(error = %e, "cannot flush mine data");
                raised()
            }
        }
    }
}

impl halite_pillar::salt_fns::Mine for Mine {
    fn get(&self, requester: &str, tgt: &Value, fun: &Value, tgt_type: &Value) -> Value {
        let load = map([
            ("id", Value::from(requester)),
            ("tgt", tgt.clone()),
            ("fun", fun.clone()),
            ("tgt_type", tgt_type.clone()),
        ]);
        Mine::get(self, &load)
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn only_new_or_different_data_is_a_change() {
        let kv = |k: &str, v: &str| (Value::from(k), Value::from(v));
        let before = Value::Map(vec![kv("network.ip_addrs", "10.0.0.1"), kv("test.ping", "True")]);
        assert!(changes(None, &[kv("network.ip_addrs", "10.0.0.1")], false), "a first entry");
        assert!(!changes(Some(&before), &[kv("network.ip_addrs", "10.0.0.1")], false), "the hourly refresh");
        assert!(changes(Some(&before), &[kv("network.ip_addrs", "10.0.0.2")], false), "a new address");
        assert!(changes(Some(&before), &[kv("network.ip_addrs", "10.0.0.1")], true), "clear drops test.ping");
        assert!(!changes(Some(&before), &[kv("network.ip_addrs", "10.0.0.1"), kv("test.ping", "True")], true));
    }
    use super::*;
    use std::cell::RefCell;

    fn y(text: &str) -> Value {
        halite_yaml::load(text).unwrap()
    }

    /// Minions `web1`, `web2` (grain role web) and `db1`; targets are read by a toy matcher
    /// that records the type each was asked with.
    struct Fake {
        mines: HashMap<String, Value>,
        asked: RefCell<Vec<String>>,
    }

    impl MineIndex for Fake {
        fn minions(&self, tgt: &Value, tgt_type: &str) -> Vec<String> {
            let tgt = py::text(tgt);
            self.asked.borrow_mut().push(format!("{tgt_type} {tgt}"));
            let all = ["db1", "web1", "web2"];
            let named: Vec<&str> = match tgt_type {
                "glob" if tgt == "*" => all.to_vec(),
                "glob" => all.iter().copied().filter(|m| m.starts_with(tgt.trim_end_matches('*'))).collect(),
                "list" => all.iter().copied().filter(|m| tgt.split(',').any(|t| t == *m)).collect(),
                "grain" if tgt == "role:web" => vec!["web1", "web2"],
                "compound_pillar_exact" if tgt == "G@role:web and not web2" => vec!["web1"],
                _ => vec![],
            };
            named.into_iter().map(str::to_owned).collect()
        }

        fn mines(&self, ids: &[String]) -> HashMap<String, Value> {
            ids.iter().filter_map(|id| self.mines.get(id).map(|m| (id.clone(), m.clone()))).collect()
        }
    }

    fn fake() -> Fake {
        let mines = [
            ("web1", "{ip: [10.0.0.1], os: Debian}"),
            ("web2", "{ip: [10.0.0.2], secret: {__saltmine_acl__: 1, __data__: s2, allow_tgt: db1}}"),
            ("db1", "{ip: [10.0.0.3], hidden: {__saltmine_acl__: 1, __data__: h, allow_tgt: nobody}, wrapped: {__saltmine_acl__: 1, __data__: w}}"),
        ];
        Fake { mines: mines.iter().map(|(id, m)| (id.to_string(), y(m))).collect(), asked: RefCell::new(Vec::new()) }
    }

    fn get(fake: &Fake, load: &str, acl: Option<&str>) -> Value {
        mine_get(&y(load), acl.map(y).as_ref(), fake)
    }

    #[test]
    fn one_function_by_minion_several_by_function() {
        let f = fake();
        assert_eq!(
            get(&f, "{id: web1, tgt: '*', fun: ip}", None),
            y("{db1: [10.0.0.3], web1: [10.0.0.1], web2: [10.0.0.2]}")
        );
        assert_eq!(
            get(&f, "{id: web1, tgt: 'web*', fun: 'ip,os,ip'}", None),
            y("{ip: {web1: [10.0.0.1], web2: [10.0.0.2]}, os: {web1: Debian}}"),
            "a comma list, deduplicated"
        );
        assert_eq!(get(&f, "{id: web1, tgt: 'web*', fun: [os]}", None), y("{os: {web1: Debian}}"), "a list");
        assert_eq!(get(&f, "{id: web1, tgt: 'web*', fun: absent}", None), y("{}"));
        assert_eq!(get(&f, "{id: web1, tgt: 'web*', fun: 3}", None), y("{}"), "fun neither text nor list");
        assert_eq!(get(&f, "{id: web1, fun: ip}", None), y("{}"), "no tgt");
        assert_eq!(get(&f, "{id: ../x, tgt: '*', fun: ip}", None), y("{}"), "invalid requester id");
    }

    #[test]
    fn target_types_and_salts_substitutions() {
        let f = fake();
        assert_eq!(get(&f, "{id: db1, tgt: 'web2,db1', tgt_type: list, fun: ip}", None).as_map().unwrap().len(), 2);
        assert_eq!(get(&f, "{id: db1, tgt: 'role:web', tgt_type: grain, fun: os}", None), y("{web1: Debian}"));
        assert_eq!(
            get(&f, "{id: db1, tgt: 'G@role:web and not web2', tgt_type: compound, fun: ip}", None),
            y("{web1: [10.0.0.1]}")
        );
        get(&f, "{id: db1, tgt: 'role:web', tgt_type: PILLAR, fun: ip}", None);
        get(&f, "{id: db1, tgt: 'role:web', expr_form: grain, fun: ip}", None);
        get(&f, "{id: db1, tgt: 'role:web', expr_form: grain, tgt_type: list, fun: ip}", None);
        assert_eq!(
            f.asked.borrow()[3..],
            ["pillar_exact role:web", "grain role:web", "list role:web"],
            "pillar becomes pillar_exact; expr_form counts only without tgt_type"
        );
        assert_eq!(get(&f, "{id: db1, tgt: '*', tgt_type: 5, fun: ip}", None), raised());
    }

    #[test]
    fn minion_side_acl() {
        let f = fake();
        assert_eq!(get(&f, "{id: db1, tgt: web2, fun: secret}", None), y("{web2: s2}"), "allowed");
        assert_eq!(get(&f, "{id: web1, tgt: web2, fun: secret}", None), y("{}"), "not in allow_tgt");
        assert_eq!(get(&f, "{id: db1, tgt: db1, fun: hidden}", None), y("{}"), "allow_tgt names nobody");
        assert_eq!(get(&f, "{id: web1, tgt: db1, fun: wrapped}", None), y("{db1: w}"), "no allow_tgt: unwrapped");
        assert!(f.asked.borrow().iter().any(|a| a == "glob db1"), "allow_tgt_type defaults to glob");
    }

    #[test]
    fn master_side_acl() {
        let f = fake();
        let acl = Some("{'web.*': ['^ip$'], 'web1': [os]}");
        assert_eq!(
            get(&f, "{id: web1, tgt: web1, fun: 'ip,os'}", acl),
            y("{ip: {web1: [10.0.0.1]}, os: {web1: Debian}}")
        );
        assert_eq!(get(&f, "{id: web2, tgt: web1, fun: 'ip,os'}", acl), y("{ip: {web1: [10.0.0.1]}}"));
        assert_eq!(get(&f, "{id: web2, tgt: web1, fun: os}", acl), y("{}"), "nothing allowed");
        assert_eq!(get(&f, "{id: db1, tgt: web1, fun: ip}", acl), y("{}"), "no entry for the requester");
        assert_eq!(get(&f, "{id: web1, tgt: web1, fun: ip}", Some("[x]")), y("{}"), "not a mapping");
        assert_eq!(get(&f, "{id: web1, tgt: web1, fun: ip}", Some("{'(': [ip]}")), y("{}"), "bad regex");
    }
}
