//! The steps of Salt's state `Compiler` the reactor runs on rendered reaction files:
//! `pad_funcs` (`local.cmd.run:` → `local:` with function `cmd.run`), `verify_high`,
//! `compile_high_data` (one chunk per ID and function, `names` expanded) and `order_chunks`
//! (`order`, then `state + name + fun` — not file order), then the `cmd` → `local` alias.

use halite_yaml::py::{self, text};
use halite_yaml::Value;

/// The requisites whose arguments `verify_high` checks.
const REQUISITES: &[&str] = &["require", "watch", "prereq", "onchanges"];

/// A chunk: Salt's low data for one reaction, keys in insertion order.
pub type Chunk = Vec<(String, Value)>;

/// Rendered reaction files merged by ID (a later file's ID replaces an earlier one's).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct High {
    ids: Vec<(Value, Value)>,
}

fn as_str(v: &Value) -> Option<&str> {
    v.as_str()
}

pub fn get<'a>(chunk: &'a [(String, Value)], key: &str) -> Option<&'a Value> {
    chunk.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

fn set(chunk: &mut Chunk, key: &str, value: Value) {
    match chunk.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = value,
        None => chunk.push((key.to_owned(), value)),
    }
}

fn map_set(pairs: &mut Vec<(Value, Value)>, key: Value, value: Value) {
    match pairs.iter_mut().find(|(k, _)| *k == key) {
        Some(slot) => slot.1 = value,
        None => pairs.push((key, value)),
    }
}

impl High {
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// `render_template` + `pad_funcs` + the `__sls__` stamp of `render_reaction`: the data a
    /// file rendered to, or why Salt's render of it would fail.
    pub fn from_rendered(rendered: Value, path: &str) -> Result<High, String> {
        let Value::Map(ids) = rendered else {
            return Err(format!("it rendered to {}, not a dictionary of reactions", kind(&rendered)));
        };
        let mut high = High { ids: Vec::new() };
        for (name, body) in ids {
            let body = match body {
                Value::String(s) => match s.as_str().and_then(|s| s.split_once('.')) {
                    Some((state, fun)) => Value::Map(vec![(Value::from(state), Value::Array(vec![Value::from(fun)]))]),
                    None => return Err(format!("ID {} is not formed as a dictionary", py::repr(&name))),
                },
                Value::Map(pairs) => Value::Map(pad_funcs(pairs)),
                other => {
                    return Err(format!("ID {} is a {}, not a dictionary", py::repr(&name), kind(&other)));
                }
            };
            let Value::Map(mut pairs) = body else { continue };
            map_set(&mut pairs, Value::from("__sls__"), Value::from(path));
            map_set(&mut high.ids, name, Value::Map(pairs));
        }
        Ok(high)
    }

    /// Python's `dict.update`.
    pub fn update(&mut self, other: High) {
        for (k, v) in other.ids {
            map_set(&mut self.ids, k, v);
        }
    }

    /// `verify_high`: Salt's messages for data no chunk can be compiled from.
    pub fn verify(&self) -> Vec<String> {
        let mut errors = Vec::new();
        for (name, body) in &self.ids {
            if as_str(name).is_some_and(|n| n.starts_with("__")) {
                continue;
            }
            let Value::Map(pairs) = body else { continue };
            let sls = pairs.iter().find(|(k, _)| as_str(k) == Some("__sls__")).map_or(String::new(), |(_, v)| text(v));
            let name_text = text(name);
            if as_str(name).is_none() {
                errors.push(format!(
                    "ID '{name_text}' in SLS '{sls}' is not formed as a string, but is a {}. It may need to be quoted",
                    kind(name)
                ));
            }
            for (state, args) in pairs {
                let Some(state) = as_str(state) else {
                    errors.push(format!("State {} in SLS '{sls}' is not formed as a string", py::repr(state)));
                    continue;
                };
                if state.starts_with("__") {
                    continue;
                }
                let Value::Array(args) = args else {
                    errors.push(format!("State '{name_text}' in SLS '{sls}' is not formed as a list"));
                    continue;
                };
                let mut funs: Vec<String> = state.split_once('.').map(|(_, f)| vec![f.to_owned()]).unwrap_or_default();
                for arg in args {
                    match arg {
                        Value::String(_) => {
                            let f = text(arg);
                            if f.trim().contains(' ') {
                                errors.push(format!(
                                    "The function \"{f}\" in state \"{name_text}\" in SLS \"{sls}\" has whitespace, a \
                                     function with whitespace is not supported, perhaps this is an argument that is \
                                     missing a \":\""
                                ));
                            }
                            funs.push(f);
                        }
                        // Salt fails on an empty mapping (`next(iter(arg))`) and reacts to nothing.
                        Value::Map(kv) if kv.is_empty() => {
                            errors.push(format!("An empty argument in state '{name_text}' in SLS '{sls}'"))
                        }
                        // Only requisites are checked for their shape, as in Salt.
                        Value::Map(kv) if as_str(&kv[0].0).is_some_and(|k| REQUISITES.contains(&k)) => {
                            if !matches!(kv[0].1, Value::Array(_)) {
                                errors.push(format!(
                                    "The {} statement in state '{name_text}' in SLS '{sls}' needs to be formed as a list",
                                    text(&kv[0].0)
                                ));
                            }
                            if kv.len() != 1 {
                                errors.push(format!(
                                    "Multiple dictionaries defined in argument of state '{name_text}' in SLS '{sls}'"
                                ));
                            }
                        }
                        _ => {}
                    }
                }
                match funs.len() {
                    0 if state == "require" || state == "watch" => {}
                    0 => errors.push(format!("No function declared in state '{name_text}' in SLS '{sls}'")),
                    1 => {}
                    _ => errors.push(format!(
                        "Too many functions declared in state '{name_text}' in SLS '{sls}'. Please choose one of the \
                         following: {}",
                        funs.join(", ")
                    )),
                }
            }
        }
        errors
    }

    /// `compile_high_data` + `order_chunks` + `resolve_aliases`, on data [`High::verify`]
    /// accepted.
    pub fn chunks(&self) -> Vec<Chunk> {
        let mut chunks = Vec::new();
        for (name, body) in &self.ids {
            if as_str(name).is_some_and(|n| n.starts_with("__")) {
                continue;
            }
            let Value::Map(pairs) = body else { continue };
            for (state, run) in pairs {
                let Some(state) = as_str(state).filter(|s| !s.starts_with("__")) else { continue };
                let Value::Array(run) = run else { continue };
                let mut chunk: Chunk = vec![("state".into(), Value::from(state)), ("name".into(), name.clone())];
                for key in ["__sls__", "__env__", "__sls_included_from__"] {
                    if let Some((_, v)) = pairs.iter().find(|(k, _)| as_str(k) == Some(key)) {
                        chunk.push((key.into(), v.clone()));
                    }
                }
                chunk.push(("__id__".into(), name.clone()));
                let mut funs: Vec<String> = Vec::new();
                let mut names: Vec<Value> = Vec::new();
                for arg in run {
                    match arg {
                        Value::String(_) => {
                            let f = text(arg);
                            if !funs.contains(&f) {
                                funs.push(f);
                            }
                        }
                        Value::Map(kv) => {
                            for (k, v) in kv {
                                if as_str(k) == Some("names") {
                                    if let Value::Array(list) = v {
                                        for n in list {
                                            if !names.contains(n) {
                                                names.push(n.clone());
                                            }
                                        }
                                    }
                                } else {
                                    for (k, v) in kv {
                                        set(&mut chunk, &text(k), v.clone());
                                    }
                                }
                            }
                        }
                        _ => {}
                    }
                }
                let lives: Vec<Chunk> = if names.is_empty() {
                    vec![chunk]
                } else {
                    names
                        .iter()
                        .enumerate()
                        .map(|(i, entry)| {
                            let mut live = chunk.clone();
                            match entry {
                                Value::Map(kv) if !kv.is_empty() => {
                                    set(&mut live, "name", kv[0].0.clone());
                                    if let Value::Array(updates) = &kv[0].1 {
                                        for u in updates {
                                            if let Value::Map(u) = u {
                                                for (k, v) in u {
                                                    set(&mut live, &text(k), v.clone());
                                                }
                                            }
                                        }
                                    }
                                }
                                other => set(&mut live, "name", other.clone()),
                            }
                            set(&mut live, "name_order", Value::from(i as u64 + 1));
                            live
                        })
                        .collect()
                };
                for live in lives {
                    for fun in &funs {
                        let mut c = live.clone();
                        set(&mut c, "fun", Value::from(fun.as_str()));
                        chunks.push(c);
                    }
                }
            }
        }
        // Salt orders twice (`compile_high_data` ends with it, `reactions` does it again); the
        // second pass is the one that adds `name_order` to chunks the first gave the default.
        order_chunks(&mut chunks);
        order_chunks(&mut chunks);
        for chunk in &mut chunks {
            if get(chunk, "state").and_then(as_str) == Some("cmd") {
                set(chunk, "state", Value::from("local"));
            }
        }
        chunks
    }
}

/// `pad_funcs` on one ID's body: a list under a dotted key (`local.cmd.run`) moves under its
/// first part with the rest appended as the function, unless that part was already seen.
fn pad_funcs(mut pairs: Vec<(Value, Value)>) -> Vec<(Value, Value)> {
    let mut keys: Vec<String> = pairs.iter().filter_map(|(k, _)| as_str(k).map(str::to_owned)).collect();
    keys.sort();
    let mut seen: Vec<String> = Vec::new();
    for key in keys {
        if key.starts_with('_') {
            continue;
        }
        let Some(i) = pairs.iter().position(|(k, _)| as_str(k) == Some(key.as_str())) else { continue };
        if !matches!(pairs[i].1, Value::Array(_)) {
            continue;
        }
        match key.split_once('.') {
            Some((state, fun)) => {
                if seen.iter().any(|s| s == state) {
                    continue;
                }
                let (_, list) = pairs.remove(i);
                let Value::Array(mut list) = list else { continue };
                list.push(Value::from(fun));
                map_set(&mut pairs, Value::from(state), Value::Array(list));
                seen.push(state.to_owned());
            }
            None => seen.push(key),
        }
    }
    pairs
}

/// A Python number an `order` reads as (`True` is 1).
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Boolean(b) => Some(f64::from(u8::from(*b))),
        Value::Integer(i) => i.as_f64(),
        Value::F64(f) => Some(*f),
        Value::F32(f) => Some(f64::from(*f)),
        _ => None,
    }
}

fn is_int(v: &Value) -> bool {
    matches!(v, Value::Boolean(_) | Value::Integer(_))
}

/// `order_chunks`.
fn order_chunks(chunks: &mut [Chunk]) {
    let mut cap = 1.0_f64;
    for chunk in chunks.iter() {
        if let Some(order) = get(chunk, "order").filter(|o| is_int(o)).and_then(number) {
            if order > cap - 1.0 && order > 0.0 {
                cap = order + 100.0;
            }
        }
    }
    let mut keyed: Vec<(f64, String, Chunk)> = chunks
        .iter()
        .map(|chunk| {
            let mut chunk = chunk.clone();
            let order = match get(&chunk, "order") {
                None => cap,
                Some(o) => {
                    let mut order = match number(o) {
                        Some(n) => n,
                        None if as_str(o) == Some("last") => cap + 1_000_000.0,
                        None if as_str(o) == Some("first") => 0.0,
                        None => cap,
                    };
                    if let Some(i) = chunk.iter().position(|(k, _)| k == "name_order") {
                        let (_, n) = chunk.remove(i);
                        order += number(&n).unwrap_or(0.0) / 10_000.0;
                    }
                    if order < 0.0 {
                        order += cap + 1_000_000.0;
                    }
                    order
                }
            };
            let value =
                if order.fract() == 0.0 && order.abs() < 1e15 { Value::from(order as i64) } else { Value::F64(order) };
            set(&mut chunk, "order", value);
            let field = |k: &str| get(&chunk, k).map(text).unwrap_or_default();
            let key = format!("{}{}{}", field("state"), field("name"), field("fun"));
            (order, key, chunk)
        })
        .collect();
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    for (slot, (_, _, chunk)) in chunks.iter_mut().zip(keyed) {
        *slot = chunk;
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Nil => "NoneType",
        Value::Boolean(_) => "bool",
        Value::Integer(_) => "int",
        Value::F32(_) | Value::F64(_) => "float",
        Value::String(_) => "str",
        Value::Binary(_) => "bytes",
        Value::Array(_) => "list",
        Value::Map(_) => "dict",
        Value::Ext(..) => "object",
    }
}
