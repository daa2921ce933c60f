//! The filters, tests and globals Salt adds to Jinja (`salt.utils.jinja`,
//! `SerializerExtension`, the `jinja_filter` registry), for the ones pillar and state
//! templates use. Each keeps Salt's name, defaults and output text.

use std::net::IpAddr;

use base64::Engine as _;
use halite_target::pyre::PyRegex;
use halite_yaml::dump::{self, JsonStyle};
use halite_yaml::Value;
use minijinja::value::{Kwargs, Rest, Value as MjValue, ValueKind};
use minijinja::{Environment, Error, ErrorKind, State};

use super::value::{dict, list, map_pairs, py_eq, py_repr, py_str, to_jinja, to_value, tuple, PyDict, PyList};

fn runtime(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

fn data(v: &MjValue) -> Result<Value, Error> {
    to_value(v)
}

fn items(v: &MjValue) -> Result<Vec<MjValue>, Error> {
    if let Some(l) = v.downcast_object_ref::<PyList>() {
        return Ok(l.items());
    }
    Ok(v.try_iter()?.collect())
}

/// Registers everything on `env`.
pub fn register(env: &mut Environment<'static>) {
    // SerializerExtension.
    env.add_filter("yaml", |v: MjValue, flow_style: Option<bool>| -> Result<MjValue, Error> {
        let text = dump::yaml(&data(&v)?, flow_style.unwrap_or(true));
        let text = text.trim();
        Ok(MjValue::from_safe_string(text.strip_suffix("\n...").unwrap_or(text).to_owned()))
    });
    env.add_filter("json", |v: MjValue, sort_keys: Option<bool>, indent: Option<usize>| -> Result<MjValue, Error> {
        let style = JsonStyle { indent, sort_keys: sort_keys.unwrap_or(true), ensure_ascii: true };
        Ok(MjValue::from_safe_string(dump::json(&data(&v)?, &style).trim().to_owned()))
    });
    env.add_filter("tojson", |v: MjValue, indent: Option<usize>| -> Result<MjValue, Error> {
        let style = JsonStyle { indent, sort_keys: false, ensure_ascii: true };
        let text = dump::json(&data(&v)?, &style)
            .replace('<', "\\u003c")
            .replace('>', "\\u003e")
            .replace('&', "\\u0026")
            .replace('\'', "\\u0027");
        Ok(MjValue::from_safe_string(text))
    });
    env.add_filter("python", |v: MjValue| -> Result<MjValue, Error> { Ok(MjValue::from_safe_string(py_repr(&v))) });
    env.add_filter("load_yaml", |v: MjValue| load_yaml(&py_str(&v)));
    env.add_filter("load_json", |v: MjValue| load_json(&py_str(&v)));
    env.add_filter("load_text", |v: MjValue| -> MjValue { MjValue::from(py_str(&v)) });

    // salt.utils.jinja and the jinja_filter registry.
    env.add_filter("to_bool", |v: MjValue| -> bool { to_bool(&v) });
    env.add_filter("yaml_encode", yaml_encode);
    env.add_filter("yaml_dquote", |v: MjValue| -> MjValue {
        MjValue::from_safe_string(dump::double_quoted(&py_str(&v)))
    });
    env.add_filter("yaml_squote", |v: MjValue| -> MjValue {
        MjValue::from_safe_string(dump::single_quoted(&py_str(&v)))
    });
    env.add_filter("quote", |v: MjValue| -> String { shell_quote(&py_str(&v)) });
    env.add_filter("regex_escape", |v: MjValue| -> String { regex_escape(&py_str(&v)) });
    env.add_filter("regex_search", |v: MjValue, pattern: String, kw: Kwargs| regex_groups(&v, &pattern, kw, false));
    env.add_filter("regex_match", |v: MjValue, pattern: String, kw: Kwargs| regex_groups(&v, &pattern, kw, true));
    env.add_filter("regex_replace", |v: MjValue, pattern: String, repl: String, kw: Kwargs| -> Result<String, Error> {
        let re = compile(&pattern, &kw, false)?;
        Ok(re.replace_all(&py_str(&v), &repl))
    });
    env.add_filter("unique", |v: MjValue| -> Result<MjValue, Error> { Ok(list(dedup(items(&v)?))) });
    env.add_filter("union", |a: MjValue, b: MjValue| -> Result<MjValue, Error> {
        let mut all = items(&a)?;
        all.extend(items(&b)?);
        Ok(list(dedup(all)))
    });
    env.add_filter("intersect", |a: MjValue, b: MjValue| -> Result<MjValue, Error> {
        let b = items(&b)?;
        Ok(list(dedup(items(&a)?.into_iter().filter(|x| b.iter().any(|y| py_eq(x, y))).collect())))
    });
    env.add_filter("difference", |a: MjValue, b: MjValue| -> Result<MjValue, Error> {
        let b = items(&b)?;
        Ok(list(dedup(items(&a)?.into_iter().filter(|x| !b.iter().any(|y| py_eq(x, y))).collect())))
    });
    env.add_filter("symmetric_difference", |a: MjValue, b: MjValue| -> Result<MjValue, Error> {
        let (a, b) = (items(&a)?, items(&b)?);
        let mut out: Vec<MjValue> = a.iter().filter(|x| !b.iter().any(|y| py_eq(x, y))).cloned().collect();
        out.extend(b.iter().filter(|x| !a.iter().any(|y| py_eq(x, y))).cloned());
        Ok(list(dedup(out)))
    });
    env.add_filter("min", |v: MjValue| -> Result<MjValue, Error> {
        Ok(items(&v)?.into_iter().min().unwrap_or_default())
    });
    env.add_filter("max", |v: MjValue| -> Result<MjValue, Error> {
        Ok(items(&v)?.into_iter().max().unwrap_or_default())
    });
    env.add_filter("avg", |v: MjValue| -> Result<f64, Error> {
        let nums: Vec<f64> = items(&v)?.into_iter().map(f64::try_from).collect::<Result<_, _>>()?;
        Ok(if nums.is_empty() { 0.0 } else { nums.iter().sum::<f64>() / nums.len() as f64 })
    });
    env.add_filter("sequence", |v: MjValue| -> MjValue {
        match v.kind() {
            ValueKind::Seq | ValueKind::Map | ValueKind::Iterable => v,
            _ => list(vec![v]),
        }
    });
    env.add_filter("skip", |_: MjValue| -> String { String::new() });
    env.add_filter("is_list", |v: MjValue| -> bool { v.kind() == ValueKind::Seq });
    env.add_filter("is_iter", |v: MjValue| -> bool {
        matches!(v.kind(), ValueKind::Seq | ValueKind::Map | ValueKind::Iterable | ValueKind::Bytes)
    });
    env.add_filter(
        "flatten",
        |v: MjValue, levels: Option<i64>, preserve_nulls: Option<bool>| -> Result<MjValue, Error> {
            let mut out = Vec::new();
            flatten(&v, levels, preserve_nulls.unwrap_or(false), &mut out)?;
            Ok(list(out))
        },
    );
    env.add_filter("to_num", |v: MjValue| -> MjValue {
        let text = py_str(&v);
        let t = text.trim();
        if let Ok(n) = t.parse::<i64>() {
            MjValue::from(n)
        } else if let Ok(f) = t.parse::<f64>() {
            MjValue::from(f)
        } else {
            v
        }
    });
    env.add_filter("base64_encode", |v: MjValue| -> String {
        base64::engine::general_purpose::STANDARD.encode(py_str(&v).as_bytes())
    });
    env.add_filter("base64_decode", |v: MjValue| -> Result<String, Error> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(py_str(&v).trim())
            .map_err(|e| runtime(format!("base64_decode: {e}")))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    });
    for (name, digest) in [
        ("md5", openssl::hash::MessageDigest::md5()),
        ("sha1", openssl::hash::MessageDigest::sha1()),
        ("sha256", openssl::hash::MessageDigest::sha256()),
        ("sha512", openssl::hash::MessageDigest::sha512()),
    ] {
        env.add_filter(name, move |v: MjValue| -> Result<String, Error> {
            let hash = openssl::hash::hash(digest, py_str(&v).as_bytes()).map_err(|e| runtime(e.to_string()))?;
            Ok(hash.iter().map(|b| format!("{b:02x}")).collect())
        });
    }
    env.add_filter("path_join", |first: MjValue, rest: Rest<MjValue>| -> String {
        let mut path = py_str(&first);
        for part in rest.iter().map(py_str) {
            if part.starts_with('/') || path.is_empty() {
                path = part;
            } else {
                if !path.ends_with('/') {
                    path.push('/');
                }
                path.push_str(&part);
            }
        }
        path
    });
    env.add_filter("exactly_n_true", |v: MjValue, n: Option<usize>| -> Result<bool, Error> {
        Ok(items(&v)?.iter().filter(|x| x.is_true()).count() == n.unwrap_or(1))
    });
    env.add_filter("exactly_one_true", |v: MjValue| -> Result<bool, Error> {
        Ok(items(&v)?.iter().filter(|x| x.is_true()).count() == 1)
    });
    env.add_filter("traverse", |v: MjValue, key: String, default: Option<MjValue>, delimiter: Option<String>| {
        let found = crate::salt_fns::traverse(&data(&v)?, &key, delimiter.as_deref().unwrap_or(":"));
        Ok::<_, Error>(found.map(|f| to_jinja(&f)).unwrap_or_else(|| default.unwrap_or(MjValue::from(()))))
    });
    env.add_filter("sorted_ignorecase", |v: MjValue| -> Result<MjValue, Error> {
        let mut all = items(&v)?;
        all.sort_by_cached_key(|x| py_str(x).to_lowercase());
        Ok(list(all))
    });
    env.add_filter("substring_in_list", |needle: String, v: MjValue| -> Result<bool, Error> {
        Ok(items(&v)?.iter().any(|x| py_str(x).contains(&needle)))
    });
    env.add_filter("contains_whitespace", |v: MjValue| -> bool { py_str(&v).chars().any(char::is_whitespace) });
    env.add_filter("is_hex", |v: MjValue| -> bool {
        let t = py_str(&v);
        let t = t.strip_prefix("0x").unwrap_or(&t);
        !t.is_empty() && t.chars().all(|c| c.is_ascii_hexdigit())
    });
    env.add_filter("is_ip", |v: MjValue| -> bool { py_str(&v).parse::<IpAddr>().is_ok() });
    env.add_filter("is_ipv4", |v: MjValue| -> bool { matches!(py_str(&v).parse::<IpAddr>(), Ok(IpAddr::V4(_))) });
    env.add_filter("is_ipv6", |v: MjValue| -> bool { matches!(py_str(&v).parse::<IpAddr>(), Ok(IpAddr::V6(_))) });
    env.add_filter("to_entries", |v: MjValue| -> Result<MjValue, Error> {
        Ok(list(
            map_pairs(&v)?
                .into_iter()
                .map(|(k, val)| dict(vec![(MjValue::from("key"), k), (MjValue::from("value"), val)]))
                .collect(),
        ))
    });
    env.add_filter("from_entries", |v: MjValue| -> Result<MjValue, Error> {
        let mut pairs = Vec::new();
        for entry in items(&v)? {
            pairs.push((entry.get_attr("key")?, entry.get_attr("value")?));
        }
        Ok(dict(pairs))
    });
    // Jinja's `dictsort` gives (key, value) tuples, sorted case-insensitively by key.
    env.add_filter("dictsort", |v: MjValue, kw: Kwargs| -> Result<MjValue, Error> {
        let by_value = kw.get::<Option<String>>("by")?.as_deref() == Some("value");
        let reverse = kw.get::<Option<bool>>("reverse")?.unwrap_or(false);
        let case_sensitive = kw.get::<Option<bool>>("case_sensitive")?.unwrap_or(false);
        kw.assert_all_used()?;
        let mut pairs = map_pairs(&v)?;
        let key = |p: &(MjValue, MjValue)| {
            let v = if by_value { &p.1 } else { &p.0 };
            match v.as_str() {
                Some(s) if !case_sensitive => MjValue::from(s.to_lowercase()),
                _ => v.clone(),
            }
        };
        pairs.sort_by_key(key);
        if reverse {
            pairs.reverse();
        }
        Ok(list(pairs.into_iter().map(|(k, val)| tuple(vec![k, val])).collect()))
    });
    // Jinja's `string` is Python's `str()`.
    env.add_filter("string", |v: MjValue| -> String { py_str(&v) });
    env.add_filter("format", |fmt: String, args: Rest<MjValue>| -> Result<String, Error> {
        percent_format(&fmt, &args)
    });

    env.add_test("match", |v: MjValue, pattern: String, kw: Kwargs| -> Result<bool, Error> {
        let re = compile(&pattern, &kw, true)?;
        Ok(re.is_match(&py_str(&v)))
    });
    env.add_test("equalto", |a: MjValue, b: MjValue| -> bool { py_eq(&a, &b) });
    env.add_test("list", |v: MjValue| -> bool { v.kind() == ValueKind::Seq });

    env.add_function("raise", |msg: MjValue| -> Result<MjValue, Error> { Err(runtime(py_str(&msg))) });
    env.add_function("ifelse", |state: &State, args: Rest<MjValue>| -> Result<MjValue, Error> { ifelse(state, &args) });
    env.add_function("odict", |args: Rest<MjValue>| -> Result<MjValue, Error> { make_dict(&args) });
    env.add_function("dict", |args: Rest<MjValue>| -> Result<MjValue, Error> { make_dict(&args) });
}

/// `odict(...)` / `dict(...)`: a new dict, from a mapping or pairs, plus keyword arguments.
fn make_dict(args: &[MjValue]) -> Result<MjValue, Error> {
    let d = dict(Vec::new());
    let target = d.downcast_object_ref::<PyDict>().expect("a dict");
    for arg in args {
        if arg.kind() == ValueKind::Map {
            for (k, v) in map_pairs(arg)? {
                target.insert(k, v);
            }
        } else {
            for pair in items(arg)? {
                let kv = items(&pair)?;
                if let [k, v] = kv.as_slice() {
                    target.insert(k.clone(), v.clone());
                }
            }
        }
    }
    Ok(d)
}

pub fn load_yaml(text: &str) -> Result<MjValue, Error> {
    let loaded = halite_yaml::load(text).map_err(|e| runtime(format!("Encountered error loading yaml: {e}")))?;
    Ok(to_jinja(&loaded))
}

pub fn load_json(text: &str) -> Result<MjValue, Error> {
    let loaded: PyJson = serde_json::from_str(text).map_err(|_| runtime(format!("Unable to load json from {text}")))?;
    Ok(to_jinja(&loaded.0))
}

/// JSON read into a value keeping object order, as Python's `json.loads` does.
struct PyJson(Value);

impl<'de> serde::Deserialize<'de> for PyJson {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = PyJson;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_unit<E>(self) -> Result<PyJson, E> {
                Ok(PyJson(Value::Nil))
            }
            fn visit_bool<E>(self, b: bool) -> Result<PyJson, E> {
                Ok(PyJson(Value::Boolean(b)))
            }
            fn visit_i64<E>(self, n: i64) -> Result<PyJson, E> {
                Ok(PyJson(Value::from(n)))
            }
            fn visit_u64<E>(self, n: u64) -> Result<PyJson, E> {
                Ok(PyJson(Value::from(n)))
            }
            fn visit_f64<E>(self, n: f64) -> Result<PyJson, E> {
                Ok(PyJson(Value::F64(n)))
            }
            fn visit_str<E>(self, s: &str) -> Result<PyJson, E> {
                Ok(PyJson(Value::from(s)))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<PyJson, A::Error> {
                let mut items = Vec::new();
                while let Some(PyJson(v)) = seq.next_element()? {
                    items.push(v);
                }
                Ok(PyJson(Value::Array(items)))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<PyJson, A::Error> {
                let mut pairs: Vec<(Value, Value)> = Vec::new();
                while let Some((k, PyJson(v))) = map.next_entry::<String, PyJson>()? {
                    // A repeated key keeps its first place and its last value, as in Python.
                    match pairs.iter_mut().find(|(existing, _)| existing.as_str() == Some(k.as_str())) {
                        Some(slot) => slot.1 = v,
                        None => pairs.push((Value::from(k), v)),
                    }
                }
                Ok(PyJson(Value::Map(pairs)))
            }
        }
        d.deserialize_any(V)
    }
}

/// Salt's `to_bool`.
fn to_bool(v: &MjValue) -> bool {
    match v.kind() {
        ValueKind::None | ValueKind::Undefined => false,
        ValueKind::Bool => v.is_true(),
        ValueKind::String => matches!(v.as_str().unwrap_or("").to_lowercase().as_str(), "yes" | "1" | "true"),
        ValueKind::Number if v.is_integer() => i64::try_from(v.clone()).map(|n| n > 0).unwrap_or(true),
        ValueKind::Seq | ValueKind::Map => v.len().unwrap_or(0) > 0,
        _ => false,
    }
}

/// Salt's `yaml_encode`: a scalar as YAML text; strings double-quoted.
fn yaml_encode(v: MjValue) -> Result<MjValue, Error> {
    let text = match data(&v)? {
        Value::String(s) => dump::double_quoted(s.as_str().unwrap_or_default()),
        Value::Array(_) | Value::Map(_) => {
            return Err(runtime(format!("yaml_encode() only works with YAML scalar data; failed for {}", v.kind())))
        }
        scalar => dump::yaml(&scalar, false).trim_end().to_owned(),
    };
    Ok(MjValue::from_safe_string(text))
}

/// Python's `shlex.quote`.
fn shell_quote(s: &str) -> String {
    if s.is_empty() {
        return "''".into();
    }
    if s.chars().all(|c| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c)) {
        return s.to_owned();
    }
    format!("'{}'", s.replace('\'', "'\"'\"'"))
}

/// Python's `re.escape` (3.7+): every character special in a pattern gets a backslash.
fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "()[]{}?*+-|^$\\.&~# \t\n\r\x0b\x0c".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn compile(pattern: &str, kw: &Kwargs, anchored: bool) -> Result<PyRegex, Error> {
    let mut flags = String::new();
    if kw.get::<Option<bool>>("ignorecase")?.unwrap_or(false) {
        flags.push('i');
    }
    if kw.get::<Option<bool>>("multiline")?.unwrap_or(false) {
        flags.push('m');
    }
    kw.assert_all_used()?;
    let pattern = if flags.is_empty() { pattern.to_owned() } else { format!("(?{flags}){pattern}") };
    let re = if anchored { PyRegex::new(&pattern) } else { PyRegex::new_search(&pattern) };
    re.map_err(|e| runtime(e.to_string()))
}

/// `regex_search` / `regex_match`: the groups of the match as a tuple, or `None`.
fn regex_groups(v: &MjValue, pattern: &str, kw: Kwargs, anchored: bool) -> Result<MjValue, Error> {
    let re = compile(pattern, &kw, anchored)?;
    Ok(match re.groups(&py_str(v)) {
        Some(groups) => tuple(groups.into_iter().map(|g| g.map_or(MjValue::from(()), MjValue::from)).collect()),
        None => MjValue::from(()),
    })
}

fn dedup(values: Vec<MjValue>) -> Vec<MjValue> {
    let mut out: Vec<MjValue> = Vec::new();
    for v in values {
        if !out.iter().any(|o| py_eq(o, &v)) {
            out.push(v);
        }
    }
    out
}

fn flatten(v: &MjValue, levels: Option<i64>, preserve_nulls: bool, out: &mut Vec<MjValue>) -> Result<(), Error> {
    for item in items(v)? {
        if item.is_none() && !preserve_nulls {
            continue;
        }
        if item.kind() == ValueKind::Seq && levels != Some(0) {
            flatten(&item, levels.map(|l| l - 1), preserve_nulls, out)?;
        } else {
            out.push(item);
        }
    }
    Ok(())
}

/// Salt's `ifelse`: `ifelse('a', x, 'b', y, default)` — the first compound target the minion
/// matches picks its value. Only `*` and grain targets (`G@`) are understood here; anything
/// else is an error naming the target, not a silent default.
fn ifelse(state: &State, args: &[MjValue]) -> Result<MjValue, Error> {
    let grains = state.lookup("grains").map(|g| to_value(&g)).transpose()?.unwrap_or(Value::Nil);
    let mut i = 0;
    while i + 1 < args.len() {
        let target = py_str(&args[i]);
        let matched = if target == "*" {
            true
        } else if let Some(expr) = target.strip_prefix("G@") {
            halite_target::subdict::SubdictMatcher::new(expr, ":", halite_target::subdict::ValueMatch::Glob)
                .matches(&grains)
        } else {
            return Err(runtime(format!("ifelse: target {target:?} is not '*' or a G@ grain target")));
        };
        if matched {
            return Ok(args[i + 1].clone());
        }
        i += 2;
    }
    Ok(args.get(i).cloned().unwrap_or(MjValue::from(())))
}

/// Python's `%` formatting for `%s`, `%r`, `%d`, `%i`, `%f` and `%%`.
fn percent_format(fmt: &str, args: &[MjValue]) -> Result<String, Error> {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let spec = chars.next().ok_or_else(|| runtime("incomplete format"))?;
        if spec == '%' {
            out.push('%');
            continue;
        }
        let arg = args.next().ok_or_else(|| runtime("not enough arguments for format string"))?;
        match spec {
            's' => out.push_str(&py_str(arg)),
            'r' => out.push_str(&py_repr(arg)),
            'd' | 'i' => out.push_str(
                &i64::try_from(arg.clone()).map_err(|_| runtime("%d format: a number is required"))?.to_string(),
            ),
            'f' => out.push_str(&format!("{:.6}", f64::try_from(arg.clone())?)),
            other => return Err(runtime(format!("unsupported format character '{other}'"))),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_like_python() {
        assert_eq!(shell_quote("a b'c"), "'a b'\"'\"'c'");
        assert_eq!(shell_quote("/etc/x.conf"), "/etc/x.conf");
        assert_eq!(regex_escape("a.b*c d"), "a\\.b\\*c\\ d");
    }

    #[test]
    fn json_keeps_object_order() {
        let v = to_value(&load_json(r#"{"b": 1, "a": [true, null, 1.5]}"#).unwrap()).unwrap();
        assert_eq!(v, halite_yaml::load("{b: 1, a: [true, null, 1.5]}").unwrap());
    }
}
