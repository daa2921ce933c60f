//! Grain and pillar matching: Salt's `traverse_dict_and_list` and `subdict_match`.
//!
//! `roles:db` is tried as every split of the expression on the delimiter, deepest key
//! first: `data["roles"]` against `db`. `a:b:c` tries `data["a"]["b"]` against `c`, then
//! `data["a"]` against `b:c`, so a value may itself contain the delimiter. A list value
//! matches when any member does; a dict value matches when the rest names one of its keys,
//! `*`, or matches deeper (with `*:` searching every value). Values are compared as Python's
//! `str()` of them, lowercased, with the pattern lowercased too: grain targeting is
//! case-insensitive, and `True`, `None` or `['a', 'b']` are matched as that text.

use std::cell::RefCell;
use std::collections::HashMap;

use halite_yaml::{py, yamlify_arg, Value};

use crate::glob::fnmatch;
use crate::pyre::PyRegex;

/// How the last component is compared with a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueMatch {
    /// `fnmatch` (grain, pillar).
    Glob,
    /// `re.match` (grain_pcre, pillar_pcre).
    Regex,
    /// `==` (pillar_exact).
    Exact,
}

/// Salt's `DEFAULT_TARGET_DELIM`.
pub const DEFAULT_DELIMITER: &str = ":";

/// `traverse_dict_and_list(data, key, None, delimiter)`: the value at the delimited path,
/// indexing lists by number or by the key of an embedded dict, and retrying a dict key that
/// YAML reads as something else (`1`, `true`) with that value. `None` where Salt returns the
/// default.
pub fn traverse<'a>(data: &'a Value, key: &str, delimiter: &str) -> Option<&'a Value> {
    if delimiter.is_empty() {
        return None;
    }
    let mut ptr = data;
    for part in key.split(delimiter) {
        ptr = match ptr {
            Value::Array(items) => step_into_list(items, part)?,
            Value::Map(pairs) => match lookup(pairs, &Value::from(part)) {
                Some(v) => v,
                None => {
                    let loaded = yamlify_arg(part);
                    if py::eq(&loaded, &Value::from(part)) || matches!(loaded, Value::Array(_) | Value::Map(_)) {
                        return None;
                    }
                    lookup(pairs, &loaded)?
                }
            },
            // Indexing a string, number or None with a string is a TypeError: the default.
            _ => return None,
        };
    }
    Some(ptr)
}

fn step_into_list<'a>(items: &'a [Value], part: &str) -> Option<&'a Value> {
    let embedded = items.iter().filter_map(|v| match v {
        Value::Map(pairs) => Some(pairs),
        _ => None,
    });
    match python_int(part) {
        None => embedded.into_iter().find_map(|pairs| lookup(pairs, &Value::from(part))),
        Some(idx) => {
            let key = Value::from(idx);
            if let Some(v) = embedded.into_iter().find_map(|pairs| lookup(pairs, &key)) {
                return Some(v);
            }
            let len = i64::try_from(items.len()).ok()?;
            let at = if idx < 0 { idx + len } else { idx };
            usize::try_from(at).ok().and_then(|at| items.get(at))
        }
    }
}

/// Python's `int(text)`: surrounding whitespace, a sign, digits with single underscores
/// between them.
fn python_int(text: &str) -> Option<i64> {
    let t = text.trim();
    let (neg, digits) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || digits.starts_with('_') || digits.ends_with('_') || digits.contains("__") {
        return None;
    }
    let clean: String = digits.chars().filter(|&c| c != '_').collect();
    if !clean.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let n: i64 = clean.parse().ok()?;
    Some(if neg { -n } else { n })
}

/// A Python dict lookup: the first key equal to `key` in Python's sense.
fn lookup<'a>(pairs: &'a [(Value, Value)], key: &Value) -> Option<&'a Value> {
    pairs.iter().find(|(k, _)| py::eq(k, key)).map(|(_, v)| v)
}

/// One grain or pillar expression, ready to be matched against many minions' data.
pub struct SubdictMatcher {
    expr: String,
    delimiter: String,
    mode: ValueMatch,
    // The regex of each distinct last component, compiled once per target rather than once
    // per minion; `None` remembers a pattern Python would reject.
    regexes: RefCell<HashMap<String, Option<PyRegex>>>,
}

impl SubdictMatcher {
    pub fn new(expr: &str, delimiter: &str, mode: ValueMatch) -> SubdictMatcher {
        SubdictMatcher {
            expr: expr.to_owned(),
            delimiter: delimiter.to_owned(),
            mode,
            regexes: RefCell::new(HashMap::new()),
        }
    }

    /// `subdict_match(data, expr, delimiter, regex_match, exact_match)`.
    pub fn matches(&self, data: &Value) -> bool {
        self.subdict_match(data, &self.expr, &self.delimiter)
    }

    fn subdict_match(&self, data: &Value, expr: &str, delimiter: &str) -> bool {
        if delimiter.is_empty() {
            return false;
        }
        let splits: Vec<&str> = expr.split(delimiter).collect();
        for idx in (1..splits.len()).rev() {
            let key = splits[..idx].join(delimiter);
            let (matchstr, found) = if key == "*" {
                (expr.to_owned(), Some(data))
            } else {
                (splits[idx..].join(delimiter), traverse(data, &key, delimiter))
            };
            let Some(found) = found else { continue };
            match found {
                Value::Map(pairs) if pairs.is_empty() => continue,
                Value::Map(pairs) => {
                    if self.dict_match(pairs, &matchstr) {
                        return true;
                    }
                }
                Value::Array(members) => {
                    for member in members {
                        if let Value::Map(pairs) = member {
                            if self.dict_match(pairs, &matchstr) {
                                return true;
                            }
                        }
                        if self.value_match(member, &matchstr) {
                            return true;
                        }
                    }
                }
                scalar => {
                    if self.value_match(scalar, &matchstr) {
                        return true;
                    }
                }
            }
        }
        false
    }

    fn dict_match(&self, pairs: &[(Value, Value)], pattern: &str) -> bool {
        // Salt spells the wildcard prefix with a literal colon whatever the delimiter, and
        // searches below with the default delimiter.
        let (wildcard, pattern) = match pattern.strip_prefix("*:") {
            Some(rest) => (true, rest),
            None => (false, pattern),
        };
        if pattern == "*" || lookup(pairs, &Value::from(pattern)).is_some() {
            return true;
        }
        let inner = Value::Map(pairs.to_vec());
        if self.subdict_match(&inner, pattern, DEFAULT_DELIMITER) {
            return true;
        }
        wildcard
            && pairs.iter().any(|(_, v)| match v {
                Value::Map(inner) => self.dict_match(inner, pattern),
                Value::Array(items) => items.iter().any(|item| self.value_match(item, pattern)),
                scalar => self.value_match(scalar, pattern),
            })
    }

    /// Salt's inner `_match`: `str()` of both sides, lowercased, then glob, regex or `==`.
    fn value_match(&self, target: &Value, pattern: &str) -> bool {
        let target = py::text(target).to_lowercase();
        let pattern = pattern.to_lowercase();
        match self.mode {
            ValueMatch::Glob => fnmatch(&target, &pattern),
            ValueMatch::Exact => target == pattern,
            ValueMatch::Regex => {
                let mut cache = self.regexes.borrow_mut();
                let regex = cache.entry(pattern.clone()).or_insert_with(|| PyRegex::new(&pattern).ok());
                regex.as_ref().is_some_and(|r| r.is_match(&target))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t: &str) -> Value {
        Value::from(t)
    }

    fn grains() -> Value {
        Value::Map(vec![
            (s("roles"), Value::Array(vec![s("db"), s("masterdb")])),
            (s("os"), s("Debian")),
            (s("num"), Value::from(4)),
            (s("virtual"), Value::Boolean(false)),
            (s("url"), s("http://a:8080")),
            (
                s("ip_interfaces"),
                Value::Map(vec![(s("eth0"), Value::Array(vec![s("10.0.0.5")])), (s("lo"), Value::Array(vec![]))]),
            ),
            (s("dl"), Value::Array(vec![Value::Map(vec![(s("k"), s("v"))]), s("plain")])),
            (Value::from(1), s("int key")),
        ])
    }

    fn glob(expr: &str) -> bool {
        SubdictMatcher::new(expr, ":", ValueMatch::Glob).matches(&grains())
    }

    #[test]
    fn grain_globs_like_salt() {
        assert!(glob("roles:db"));
        assert!(glob("roles:master*"));
        assert!(!glob("roles:web"));
        assert!(glob("os:debian"), "case-insensitive");
        assert!(!glob("OS:Debian"), "keys are not case-insensitive");
        assert!(glob("num:4"));
        assert!(glob("virtual:false"), "str(False).lower()");
        assert!(glob("url:http://a:8080"), "the value may contain the delimiter");
        assert!(glob("ip_interfaces:eth0:10.0.0.*"));
        assert!(glob("ip_interfaces:eth0"), "a dict matches one of its keys");
        assert!(glob("ip_interfaces:*"));
        assert!(!glob("ip_interfaces:lo:*"), "an empty list has no member to match");
        assert!(glob("dl:k:v"), "embedded dicts in lists are searched");
        assert!(glob("dl:plain"));
        assert!(glob("1:int*"), "a numeric key is retried as YAML reads it");
        assert!(!glob("roles"), "no delimiter, no match");
        assert!(glob("*:debian"), "`*` searches the top level");
    }

    #[test]
    fn regex_and_exact_modes() {
        let m = |expr: &str, mode| SubdictMatcher::new(expr, ":", mode).matches(&grains());
        assert!(m("roles:d.", ValueMatch::Regex));
        assert!(!m("roles:^b", ValueMatch::Regex));
        assert!(!m("roles:(", ValueMatch::Regex), "a bad regex is no match");
        assert!(m("os:debian", ValueMatch::Exact));
        assert!(!m("os:deb*", ValueMatch::Exact));
    }

    #[test]
    fn custom_delimiter() {
        let m = SubdictMatcher::new("ip_interfaces|eth0|10.0.0.5", "|", ValueMatch::Glob);
        assert!(m.matches(&grains()));
    }

    #[test]
    fn traverse_lists_by_index() {
        let v = Value::Map(vec![(s("a"), Value::Array(vec![s("x"), s("y")]))]);
        assert_eq!(traverse(&v, "a:1", ":"), Some(&s("y")));
        assert_eq!(traverse(&v, "a:-1", ":"), Some(&s("y")));
        assert_eq!(traverse(&v, "a:2", ":"), None);
        assert_eq!(traverse(&v, "a:0:z", ":"), None);
    }
}
