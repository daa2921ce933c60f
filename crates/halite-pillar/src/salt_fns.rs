//! The `salt` function table of templates rendered on the master: what `salt['grains.get']`
//! and friends answer while a minion's pillar compiles.
//!
//! Salt loads every execution module on the master for this, with the minion's grains and
//! the master's options. halite answers the functions pillar templates use from the same
//! data; any other name is an error naming the function and the template, never a guess.
//! `pillar.*` (and the `pillar` variable) see an empty pillar, as in Salt: its loader's
//! `__pillar__` is empty while pillar renders (no `ext_pillar_first` in halite), whatever
//! was compiled before and whatever the minion sent as `pillar_override`.
//!
//! `mine.get` answers from the master's mine ([`Mine`], which the master implements over
//! its store), as the minion whose pillar compiles would get it with its own `mine.get`.
//! Salt renders pillar with `file_client: local`, so there `mine.get` reads the master's
//! own, normally empty, local mine cache; halite gives templates the real mine instead.

use std::sync::Arc;

use halite_yaml::py::{self, truthy};
use halite_yaml::{yamlify_arg, Value};

/// The master's mine, as templates read it.
pub trait Mine: Send + Sync {
    /// What Salt's `_mine_get` answers minion `requester` asking for `fun` of the minions
    /// `tgt` (of type `tgt_type`) names: the targeting, ACLs and reply shapes are the
    /// master's.
    fn get(&self, requester: &str, tgt: &Value, fun: &Value, tgt_type: &Value) -> Value;
}

impl std::fmt::Debug for dyn Mine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Mine")
    }
}

/// The data functions read.
#[derive(Debug, Clone)]
pub struct FnData {
    pub grains: Value,
    pub pillar: Value,
    /// The master's options as the loader has them (with the minion's `id`).
    pub opts: Value,
    /// Where `mine.get` reads; without one it finds nothing, as Salt's master does.
    pub mine: Option<Arc<dyn Mine>>,
}

/// The functions halite answers, for error messages and documentation.
pub const FUNCTIONS: &[&str] = &[
    "grains.get",
    "grains.item",
    "grains.items",
    "grains.has_value",
    "pillar.get",
    "pillar.item",
    "pillar.items",
    "pillar.raw",
    "config.get",
    "config.option",
    "defaults.merge",
    "slsutil.merge",
    "test.true",
    "test.false",
    "mine.get",
];

/// Why a call failed; the renderer adds the template's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("salt function {0:?} is not available while rendering on the master (halite answers: {list})", list = FUNCTIONS.join(", "))]
    Unknown(String),
    #[error("{function}: {reason}")]
    BadArguments { function: String, reason: String },
}

/// Arguments as Python received them: positional, then keyword.
pub struct Args {
    pub positional: Vec<Value>,
    pub keyword: Vec<(String, Value)>,
}

impl Args {
    /// The argument at `pos` or named `name`, or `None`.
    fn get(&self, pos: usize, name: &str) -> Option<&Value> {
        self.keyword.iter().find(|(k, _)| k == name).map(|(_, v)| v).or_else(|| self.positional.get(pos))
    }

    fn text(&self, function: &str, pos: usize, name: &str, default: Option<&str>) -> Result<String, CallError> {
        match (self.get(pos, name), default) {
            (Some(Value::String(s)), _) => Ok(s.as_str().unwrap_or_default().to_owned()),
            (Some(other), _) => Ok(py::text(other)),
            (None, Some(d)) => Ok(d.to_owned()),
            (None, None) => Err(CallError::BadArguments {
                function: function.to_owned(),
                reason: format!("missing required argument {name:?}"),
            }),
        }
    }
}

/// Calls `function` with `args` against `data`.
pub fn call(function: &str, args: &Args, data: &FnData) -> Result<Value, CallError> {
    let default = || args.get(1, "default").cloned().unwrap_or_else(|| Value::from(""));
    let delimiter = |pos: usize| args.text(function, pos, "delimiter", Some(":"));
    Ok(match function {
        "grains.get" => {
            let key = args.text(function, 0, "key", None)?;
            traverse(&data.grains, &key, &delimiter(2)?).unwrap_or_else(default)
        }
        "pillar.get" => {
            let key = args.text(function, 0, "key", None)?;
            traverse(&data.pillar, &key, &delimiter(4)?).unwrap_or_else(default)
        }
        "grains.item" | "pillar.item" => {
            let source = if function == "grains.item" { &data.grains } else { &data.pillar };
            let delimiter = args.text(function, usize::MAX, "delimiter", Some(":"))?;
            let mut out = Vec::new();
            for key in &args.positional {
                let key = py::text(key);
                let value = traverse(source, &key, &delimiter).unwrap_or_else(|| Value::from(""));
                out.push((Value::from(key), value));
            }
            Value::Map(out)
        }
        "grains.items" => data.grains.clone(),
        "pillar.items" | "pillar.raw" => data.pillar.clone(),
        "grains.has_value" => {
            let key = args.text(function, 0, "key", None)?;
            Value::Boolean(traverse(&data.grains, &key, ":").is_some_and(|v| truthy(&v)))
        }
        "config.get" | "config.option" => {
            let key = args.text(function, 0, "key", None)?;
            let delimiter = if function == "config.get" { delimiter(2)? } else { ":".to_owned() };
            config_get(&key, &delimiter, data).unwrap_or_else(default)
        }
        "defaults.merge" | "slsutil.merge" => {
            let dest = args.get(0, if function == "defaults.merge" { "dest" } else { "obj_a" }).cloned();
            let upd = args.get(1, if function == "defaults.merge" { "src" } else { "obj_b" }).cloned();
            let (Some(dest), Some(upd)) = (dest, upd) else {
                return Err(CallError::BadArguments { function: function.into(), reason: "needs two dicts".into() });
            };
            let merge_lists = args.get(usize::MAX, "merge_lists").is_some_and(truthy);
            crate::merge::merge(dest, upd, crate::merge::Strategy::Recurse, "yaml", merge_lists)
        }
        "test.true" => Value::Boolean(true),
        "test.false" => Value::Boolean(false),
        "mine.get" => mine_get(args, data)?,
        other => return Err(CallError::Unknown(other.to_owned())),
    })
}

/// `mine.get(tgt, fun, tgt_type='glob', exclude_minion=False)` from the minion whose
/// pillar compiles. As in Salt's module, `exclude_minion` drops only a top-level key (the
/// one-function shape).
fn mine_get(args: &Args, data: &FnData) -> Result<Value, CallError> {
    let function = "mine.get";
    let required = |pos: usize, name: &str| {
        args.get(pos, name).cloned().ok_or_else(|| CallError::BadArguments {
            function: function.to_owned(),
            reason: format!("missing required argument {name:?}"),
        })
    };
    let (tgt, fun) = (required(0, "tgt")?, required(1, "fun")?);
    let tgt_type = args.get(2, "tgt_type").cloned().unwrap_or_else(|| Value::from("glob"));
    let exclude_minion = args.get(3, "exclude_minion").is_some_and(truthy);
    let requester = lookup(&data.opts, &Value::from("id")).and_then(Value::as_str).unwrap_or_default();
    let mut ret = match &data.mine {
        Some(mine) => mine.get(requester, &tgt, &fun, &tgt_type),
        None => Value::Map(Vec::new()),
    };
    if let (true, Value::Map(pairs)) = (exclude_minion, &mut ret) {
        pairs.retain(|(k, _)| k.as_str() != Some(requester));
    }
    Ok(ret)
}

/// `config.get`: the master's options, then grains, then pillar, then pillar's `master`.
fn config_get(key: &str, delimiter: &str, data: &FnData) -> Option<Value> {
    traverse(&data.opts, key, delimiter)
        .or_else(|| traverse(&data.grains, key, delimiter))
        .or_else(|| traverse(&data.pillar, key, delimiter))
        .or_else(|| data.pillar_master().and_then(|m| traverse(m, key, delimiter)))
}

impl FnData {
    fn pillar_master(&self) -> Option<&Value> {
        lookup(&self.pillar, &Value::from("master"))
    }
}

fn lookup<'a>(map: &'a Value, key: &Value) -> Option<&'a Value> {
    match map {
        Value::Map(pairs) => pairs.iter().find(|(k, _)| py::eq(k, key)).map(|(_, v)| v),
        _ => None,
    }
}

/// Salt's `traverse_dict_and_list`: `key` split on `delimiter`, each part a dict key (or,
/// when the dict lacks it, the part read as YAML: `1` finds an integer key), a list index, or
/// a key of the first dict inside a list that has it. `None` where Salt returns the default.
pub fn traverse(data: &Value, key: &str, delimiter: &str) -> Option<Value> {
    let mut ptr = data;
    for each in key.split(delimiter) {
        ptr = match ptr {
            Value::Array(items) => {
                let index: Option<i64> = each.trim().parse().ok();
                let embedded = |k: &Value| items.iter().find_map(|x| lookup(x, k));
                match index {
                    None => embedded(&Value::from(each))?,
                    Some(idx) => match embedded(&Value::from(idx)) {
                        Some(v) => v,
                        None => {
                            let len = items.len() as i64;
                            let i = if idx < 0 { len + idx } else { idx };
                            items.get(usize::try_from(i).ok()?)?
                        }
                    },
                }
            }
            Value::Map(_) => match lookup(ptr, &Value::from(each)) {
                Some(v) => v,
                None => {
                    let loaded = yamlify_arg(each);
                    if loaded.as_str() == Some(each) {
                        return None;
                    }
                    lookup(ptr, &loaded)?
                }
            },
            _ => return None,
        };
    }
    Some(ptr.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn y(t: &str) -> Value {
        halite_yaml::load(t).unwrap()
    }

    #[test]
    fn traverse_like_salt() {
        let d = y("a: {b: [x, {c: 1}, {2: two}]}\n5: five\nl: [[1, 2]]\n");
        assert_eq!(traverse(&d, "a:b:0", ":"), Some(y("x")));
        assert_eq!(traverse(&d, "a:b:c", ":"), Some(y("1")), "a key of a dict inside the list");
        assert_eq!(traverse(&d, "a:b:2", ":"), Some(y("two")), "an embedded dict's int key wins over the index");
        assert_eq!(traverse(&d, "a:b:-3", ":"), Some(y("x")));
        assert_eq!(traverse(&d, "5", ":"), Some(y("five")), "YAML-read key");
        assert_eq!(traverse(&d, "a:nope", ":"), None);
        assert_eq!(traverse(&d, "a:b:0:x", ":"), None);
        assert_eq!(traverse(&d, "a|b", "|"), Some(y("[x, {c: 1}, {2: two}]")));
    }

    #[test]
    fn calls() {
        let data = FnData {
            grains: y("roles: [db]\nos: Debian\n"),
            pillar: y("{}"),
            opts: y("file_roots: {base: [/srv]}"),
            mine: None,
        };
        let args = |p: &[&str]| Args { positional: p.iter().map(|s| Value::from(*s)).collect(), keyword: vec![] };
        assert_eq!(call("grains.get", &args(&["roles"]), &data).unwrap(), y("[db]"));
        assert_eq!(call("grains.get", &args(&["nope"]), &data).unwrap(), y("''"));
        assert_eq!(call("grains.get", &args(&["nope", "d"]), &data).unwrap(), y("d"));
        assert_eq!(call("pillar.get", &args(&["x:y", "dflt"]), &data).unwrap(), y("dflt"));
        assert_eq!(call("config.get", &args(&["os"]), &data).unwrap(), y("Debian"));
        assert_eq!(call("grains.item", &args(&["os", "roles"]), &data).unwrap(), y("{os: Debian, roles: [db]}"));
        assert!(matches!(call("cmd.run", &args(&["id"]), &data), Err(CallError::Unknown(_))));
        assert_eq!(call("mine.get", &args(&["*", "network.ip_addrs"]), &data).unwrap(), y("{}"), "no mine");
        assert!(matches!(call("mine.get", &args(&["*"]), &data), Err(CallError::BadArguments { .. })));
    }

    /// Answers as if every minion named `a*` had `fun` → its id, recording the requests.
    struct FakeMine(std::sync::Mutex<Vec<String>>);

    impl Mine for FakeMine {
        fn get(&self, requester: &str, tgt: &Value, fun: &Value, tgt_type: &Value) -> Value {
            let seen = format!("{requester} {} {} {}", py::text(tgt), py::text(fun), py::text(tgt_type));
            self.0.lock().unwrap().push(seen);
            y("{a1: [10.0.0.1], a2: [10.0.0.2]}")
        }
    }

    #[test]
    fn mine_get_asks_the_master_as_the_compiling_minion() {
        let mine = Arc::new(FakeMine(Default::default()));
        let data = FnData {
            grains: y("{}"),
            pillar: y("{}"),
            opts: y("id: a1"),
            mine: Some(Arc::clone(&mine) as Arc<dyn Mine>),
        };
        let args = |p: &[&str], kw: &[(&str, Value)]| Args {
            positional: p.iter().map(|s| Value::from(*s)).collect(),
            keyword: kw.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
        };
        let all = y("{a1: [10.0.0.1], a2: [10.0.0.2]}");
        assert_eq!(call("mine.get", &args(&["a*", "network.ip_addrs"], &[]), &data).unwrap(), all);
        let excluded =
            call("mine.get", &args(&["a*", "f", "glob"], &[("exclude_minion", Value::Boolean(true))]), &data);
        assert_eq!(excluded.unwrap(), y("{a2: [10.0.0.2]}"));
        call("mine.get", &args(&["G@r:x", "f"], &[("tgt_type", Value::from("compound"))]), &data).unwrap();
        assert_eq!(
            *mine.0.lock().unwrap(),
            ["a1 a* network.ip_addrs glob", "a1 a* f glob", "a1 G@r:x f compound"],
            "the compiling minion asks, with the template's target type"
        );
    }
}
