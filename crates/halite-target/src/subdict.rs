//! Grain and pillar matching: Salt's `traverse_dict_and_list` and `subdict_match`.
//!
//! `roles:db` is tried as every split of the expression on the delimiter, deepest key
//! first: `data["roles"]` against `db`. `a:b:c` tries `data["a"]["b"]` against `c`, then
//! `data["a"]` against `b:c`, so a value may itself contain the delimiter. A list value
//! matches when any member does; a dict value matches when the rest names one of its keys,
//! `*`, or matches deeper (with `*:` searching every value). Values are compared as Python's
//! `str()` of them, lowercased, with the pattern lowercased too: grain targeting is
//! case-insensitive, and `True`, `None` or `['a', 'b']` are matched as that text.
//!
//! Bounds (see the crate's limits): that search tries a key at every delimiter and searches
//! again below every dict it reaches, so its work grows with the delimiters and, for data
//! nested like the expression or a run of `*:` prefixes, exponentially. An expression longer
//! than [`MAX_EXPR_BYTES`] or with more than [`MAX_DELIMITERS`] delimiters is refused
//! ([`ExprError`]); matching one minion's data that takes more than [`MAX_STEPS`] lookups and
//! comparisons is given up ([`Abandoned::Steps`]). Within them the search is Salt's, split for
//! split, done without Salt's waste: the keys Salt traverses for one expression are all
//! prefixes of the deepest, so one walk finds every value they would, and each value pattern
//! is lowercased and compiled once per target, not once per comparison.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::ptr;

use halite_yaml::{py, yamlify_arg, Value};

use crate::glob::Glob;
use crate::pyre::PyRegex;
use crate::Abandoned;

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

/// Longest grain or pillar expression matched: its value part is compiled as a glob or a
/// regex (see [`crate::pyre::MAX_PATTERN_BYTES`]), once for each split Salt tries.
pub const MAX_EXPR_BYTES: usize = 4096;

/// Most delimiters in a grain or pillar expression, counting `:` as well when the target has
/// another delimiter (Salt searches below a dict with `:`). Every delimiter is a split Salt
/// tries, and each split a value pattern; a MAC or IPv6 address holds at most 7.
pub const MAX_DELIMITERS: usize = 64;

/// Lookups and comparisons one expression may take against one minion's data. A target
/// written for real use takes a few dozen (one per key part, one per list member compared);
/// a hostile one can otherwise take exponentially many. Each costs well under a microsecond.
pub const MAX_STEPS: usize = 10_000;

/// A grain or pillar expression past one of halite's bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid grain or pillar target {expr:?}: {reason}")]
pub struct ExprError {
    /// The expression, abbreviated when long.
    pub expr: String,
    pub reason: String,
}

/// `traverse_dict_and_list(data, key, None, delimiter)`: the value at the delimited path,
/// indexing lists by number or by the key of an embedded dict, and retrying a dict key that
/// YAML reads as something else (`1`, `true`) with that value. `None` where Salt returns the
/// default.
pub fn traverse<'a>(data: &'a Value, key: &str, delimiter: &str) -> Option<&'a Value> {
    if delimiter.is_empty() {
        return None;
    }
    key.split(delimiter).try_fold(data, |ptr, part| step(ptr, part, || yaml_key(part)))
}

/// One part of a `traverse_dict_and_list` path; `retry` gives the key to try in a dict
/// that lacks `part` (see [`yaml_key`]).
fn step<'a>(ptr: &'a Value, part: &str, retry: impl FnOnce() -> Option<Value>) -> Option<&'a Value> {
    match ptr {
        Value::Array(items) => step_into_list(items, part),
        Value::Map(pairs) => lookup_text(pairs, part).or_else(|| lookup(pairs, &retry()?)),
        // Indexing a string, number or None with a string is a TypeError: the default.
        _ => None,
    }
}

/// The key Salt retries a missing dict key with: the part as YAML reads it, when that is a
/// scalar other than the text itself (`1`, `true`).
fn yaml_key(part: &str) -> Option<Value> {
    let loaded = yamlify_arg(part);
    let same = py::eq(&loaded, &Value::from(part)) || matches!(loaded, Value::Array(_) | Value::Map(_));
    (!same).then_some(loaded)
}

fn step_into_list<'a>(items: &'a [Value], part: &str) -> Option<&'a Value> {
    let embedded = items.iter().filter_map(|v| match v {
        Value::Map(pairs) => Some(pairs),
        _ => None,
    });
    match python_int(part) {
        None => embedded.into_iter().find_map(|pairs| lookup_text(pairs, part)),
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

/// [`lookup`] of a text key, which in Python equals only a text key of the same characters
/// (and is compared here without building a `Value` for it).
fn lookup_text<'a>(pairs: &'a [(Value, Value)], key: &str) -> Option<&'a Value> {
    pairs.iter().find(|(k, _)| matches!(k, Value::String(s) if s.as_bytes() == key.as_bytes())).map(|(_, v)| v)
}

/// One grain or pillar expression, ready to be matched against many minions' data.
pub struct SubdictMatcher {
    expr: String,
    mode: ValueMatch,
    /// Where each occurrence of the target's delimiter starts in `expr`, as Python's `split`
    /// finds them (left to right, not overlapping).
    delimiters: Vec<usize>,
    delimiter_len: usize,
    /// Where each `:` is: below a dict, Salt searches again with the default delimiter.
    colons: Vec<usize>,
    /// The value pattern at each offset of `expr`, lowercased and compiled once per target.
    /// Every pattern Salt compares a value with is a suffix of the expression (the part after
    /// a delimiter, or after a `*:` prefix), so its offset names it, and the delimiter bound
    /// bounds how many there are.
    patterns: RefCell<HashMap<usize, ValuePattern>>,
    /// [`yaml_key`] of each key part tried (by its span in `expr`), read once per target: a
    /// YAML load costs more than the rest of a step.
    yaml_keys: RefCell<HashMap<(usize, usize), Option<Value>>>,
}

/// Which delimiter a search splits on.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Delim {
    Target,
    Colon,
}

impl SubdictMatcher {
    /// The matcher for `expr`. An expression past halite's bounds matches nothing;
    /// [`SubdictMatcher::checked`] says why.
    pub fn new(expr: &str, delimiter: &str, mode: ValueMatch) -> SubdictMatcher {
        SubdictMatcher::checked(expr, delimiter, mode).unwrap_or_else(|_| SubdictMatcher::nothing(mode))
    }

    /// A matcher without a delimiter, which matches nothing.
    fn nothing(mode: ValueMatch) -> SubdictMatcher {
        SubdictMatcher {
            expr: String::new(),
            mode,
            delimiters: Vec::new(),
            delimiter_len: 0,
            colons: Vec::new(),
            patterns: RefCell::default(),
            yaml_keys: RefCell::default(),
        }
    }

    /// The matcher for `expr`, or why it is past [`MAX_EXPR_BYTES`] or [`MAX_DELIMITERS`].
    pub fn checked(expr: &str, delimiter: &str, mode: ValueMatch) -> Result<SubdictMatcher, ExprError> {
        let refuse = |reason: String| ExprError { expr: crate::shown(expr), reason };
        if expr.len() > MAX_EXPR_BYTES {
            return Err(refuse(format!("longer than halite's limit of {MAX_EXPR_BYTES} bytes")));
        }
        let starts = |d: &str| -> Vec<usize> {
            // An empty delimiter splits nothing (Python's `split("")` raises): no key, no match.
            if d.is_empty() {
                Vec::new()
            } else {
                expr.match_indices(d).map(|(at, _)| at).take(MAX_DELIMITERS + 1).collect()
            }
        };
        let (delimiters, colons) = (starts(delimiter), starts(DEFAULT_DELIMITER));
        if delimiters.len().max(colons.len()) > MAX_DELIMITERS {
            return Err(refuse(format!("more than halite's limit of {MAX_DELIMITERS} delimiters")));
        }
        Ok(SubdictMatcher {
            expr: expr.to_owned(),
            delimiters,
            delimiter_len: delimiter.len(),
            colons,
            ..SubdictMatcher::nothing(mode)
        })
    }

    /// `subdict_match(data, expr, delimiter, regex_match, exact_match)`; a match given up at
    /// halite's bounds is no match.
    pub fn matches(&self, data: &Value) -> bool {
        self.try_matches(data).unwrap_or(false)
    }

    /// [`SubdictMatcher::matches`], telling a match given up at [`MAX_STEPS`] or at the regex
    /// backtracking limit from no match, for callers that count them.
    pub fn try_matches(&self, data: &Value) -> Result<bool, Abandoned> {
        let mut search = Search { steps_left: MAX_STEPS, failed: BTreeSet::new() };
        self.subdict_match(data, 0, Delim::Target, &mut search)
    }

    // The search recurses (subdict_match -> dict_match -> subdict_match), but each round
    // either moves the pattern past a delimiter or switches from the target's delimiter to
    // `:` at the same offset, so it is at most about twice MAX_DELIMITERS calls deep.

    /// Salt's `subdict_match` of the suffix `expr[from..]`.
    fn subdict_match(&self, data: &Value, from: usize, delim: Delim, search: &mut Search) -> Result<bool, Abandoned> {
        search.once((ptr::from_ref(data), from, Kind::Split(delim)), |search| {
            self.splits_match(data, from, delim, search)
        })
    }

    fn splits_match(&self, data: &Value, from: usize, delim: Delim, search: &mut Search) -> Result<bool, Abandoned> {
        let (starts, len) = match delim {
            Delim::Target => (&self.delimiters, self.delimiter_len),
            Delim::Colon => (&self.colons, DEFAULT_DELIMITER.len()),
        };
        // The delimiters of the suffix. The target's delimiter (which may be several
        // characters long) only ever splits the whole expression, where these are exactly
        // Python's split; `:` is one character, so any suffix's are a tail of them.
        let cuts = &starts[starts.partition_point(|&at| at < from)..];
        if cuts.is_empty() {
            return Ok(false);
        }
        // Salt traverses `data` for every key `parts[:idx]`, deepest first. Each is a prefix
        // of the deepest and a traversal stops at the first part that is missing, so one walk
        // finds all the values: `found[idx - 1]` is the one at `parts[:idx]`.
        let mut found = Vec::with_capacity(cuts.len());
        let (mut ptr, mut part_start) = (data, from);
        for &cut in cuts {
            search.charge()?;
            let Some(next) = step(ptr, &self.expr[part_start..cut], || self.yaml_key(part_start, cut)) else { break };
            found.push(next);
            (ptr, part_start) = (next, cut + len);
        }
        for idx in (1..=cuts.len()).rev() {
            let cut = cuts[idx - 1];
            let (value, pattern_at) = if &self.expr[from..cut] == "*" {
                // Salt: a `*` key matches the whole expression against the data itself.
                (data, from)
            } else {
                match found.get(idx - 1) {
                    Some(&value) => (value, cut + len),
                    None => continue,
                }
            };
            if self.found_match(value, pattern_at, search)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The body of Salt's split loop: the value found at a key against the rest.
    fn found_match(&self, found: &Value, pattern_at: usize, search: &mut Search) -> Result<bool, Abandoned> {
        match found {
            // Salt's traversal default is `{}`, so an empty dict is "not found".
            Value::Map(pairs) if pairs.is_empty() => Ok(false),
            Value::Map(_) => self.dict_match(found, pattern_at, search),
            Value::Array(members) => try_any(members, |member| {
                Ok((matches!(member, Value::Map(_)) && self.dict_match(member, pattern_at, search)?)
                    || self.value_match(member, pattern_at, search)?)
            }),
            scalar => self.value_match(scalar, pattern_at, search),
        }
    }

    /// Salt's inner `_dict_match` of the map `dict` against `expr[at..]`.
    fn dict_match(&self, dict: &Value, at: usize, search: &mut Search) -> Result<bool, Abandoned> {
        search.once((ptr::from_ref(dict), at, Kind::Dict), |search| self.dict_search(dict, at, search))
    }

    fn dict_search(&self, dict: &Value, at: usize, search: &mut Search) -> Result<bool, Abandoned> {
        let Value::Map(pairs) = dict else { return Ok(false) };
        // Salt spells the wildcard prefix with a literal colon whatever the delimiter, and
        // searches below with the default delimiter.
        let wildcard = self.expr[at..].starts_with("*:");
        let at = if wildcard { at + 2 } else { at };
        let pattern = &self.expr[at..];
        if pattern == "*" || lookup_text(pairs, pattern).is_some() {
            return Ok(true);
        }
        if self.subdict_match(dict, at, Delim::Colon, search)? {
            return Ok(true);
        }
        if !wildcard {
            return Ok(false);
        }
        try_any(pairs, |(_, v)| match v {
            Value::Map(_) => self.dict_match(v, at, search),
            Value::Array(items) => try_any(items, |item| self.value_match(item, at, search)),
            scalar => self.value_match(scalar, at, search),
        })
    }

    /// [`yaml_key`] of the part `expr[start..end]`.
    fn yaml_key(&self, start: usize, end: usize) -> Option<Value> {
        let mut keys = self.yaml_keys.borrow_mut();
        keys.entry((start, end)).or_insert_with(|| yaml_key(&self.expr[start..end])).clone()
    }

    /// Salt's inner `_match`: `str()` of both sides, lowercased, then glob, regex or `==`.
    fn value_match(&self, target: &Value, at: usize, search: &mut Search) -> Result<bool, Abandoned> {
        search.charge()?;
        let target = py::text(target).to_lowercase();
        let mut patterns = self.patterns.borrow_mut();
        let pattern = patterns.entry(at).or_insert_with(|| ValuePattern::new(&self.expr[at..], self.mode));
        pattern.matches(&target)
    }
}

/// A value pattern, lowercased and compiled.
enum ValuePattern {
    Glob(Glob),
    Exact(String),
    /// `None` remembers a pattern Python would reject: no match.
    Regex(Option<PyRegex>),
}

impl ValuePattern {
    fn new(pattern: &str, mode: ValueMatch) -> ValuePattern {
        let pattern = pattern.to_lowercase();
        match mode {
            ValueMatch::Glob => ValuePattern::Glob(Glob::new(&pattern)),
            ValueMatch::Exact => ValuePattern::Exact(pattern),
            ValueMatch::Regex => ValuePattern::Regex(PyRegex::new(&pattern).ok()),
        }
    }

    fn matches(&self, target: &str) -> Result<bool, Abandoned> {
        match self {
            ValuePattern::Glob(glob) => Ok(glob.matches(target)),
            ValuePattern::Exact(pattern) => Ok(target == pattern),
            ValuePattern::Regex(Some(re)) => re.try_match(target),
            ValuePattern::Regex(None) => Ok(false),
        }
    }
}

/// One minion's match: the steps it has left, and the states of Salt's search already found
/// not to match. Salt's search reaches the same value with the same suffix again and again
/// (`*:` searches a dict directly and again through each of its ancestors); each state is
/// worked out once, so data searched with a run of `*:` costs its size times the run, not
/// the run's power.
struct Search {
    steps_left: usize,
    failed: BTreeSet<State>,
}

/// A value of the minion's data (by address: the data does not move during a match), the
/// offset of the suffix searched for, and how.
type State = (*const Value, usize, Kind);

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Split(Delim),
    Dict,
}

impl Search {
    /// A lookup or comparison: one step.
    fn charge(&mut self) -> Result<(), Abandoned> {
        self.steps_left = self.steps_left.checked_sub(1).ok_or(Abandoned::Steps)?;
        Ok(())
    }

    /// `find` for `state`, unless it already failed for this minion (a step either way).
    fn once(
        &mut self,
        state: State,
        find: impl FnOnce(&mut Search) -> Result<bool, Abandoned>,
    ) -> Result<bool, Abandoned> {
        self.charge()?;
        if self.failed.contains(&state) {
            return Ok(false);
        }
        let found = find(self)?;
        if !found {
            self.failed.insert(state);
        }
        Ok(found)
    }
}

/// Python's `any()` over a predicate that may give up.
fn try_any<T>(
    items: impl IntoIterator<Item = T>,
    mut pred: impl FnMut(T) -> Result<bool, Abandoned>,
) -> Result<bool, Abandoned> {
    for item in items {
        if pred(item)? {
            return Ok(true);
        }
    }
    Ok(false)
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
    fn many_delimiters_are_refused_before_any_minion() {
        let many = format!("x{}", ":y".repeat(2000));
        let err = SubdictMatcher::checked(&many, ":", ValueMatch::Glob).err().expect("past the limit");
        assert!(err.reason.contains("64 delimiters"), "{err}");
        assert!(err.expr.len() < 200, "the error abbreviates the expression");
        assert!(!SubdictMatcher::new(&many, ":", ValueMatch::Glob).matches(&grains()));
        // 100,000 delimiters are past the length limit as well.
        let err = SubdictMatcher::checked(&":y".repeat(100_000), ":", ValueMatch::Glob).err().expect("past the limit");
        assert!(err.reason.contains("4096 bytes"), "{err}");
        // `:` counts with another delimiter too: below a dict Salt splits on it.
        let colons = format!("roles|{}", ":".repeat(MAX_DELIMITERS + 1));
        assert!(SubdictMatcher::checked(&colons, "|", ValueMatch::Glob).is_err());
        let long = format!("os:{}", "d".repeat(MAX_EXPR_BYTES));
        assert!(SubdictMatcher::checked(&long, ":", ValueMatch::Glob).is_err());

        // Up to the limit, a value may hold the delimiter, as in Salt.
        let at_limit = format!("os{}", ":*".repeat(MAX_DELIMITERS));
        assert!(!SubdictMatcher::checked(&at_limit, ":", ValueMatch::Glob).expect("at the limit").matches(&grains()));
        let mac = Value::Map(vec![(s("hw"), Value::Map(vec![(s("eth0"), s("52:54:00:AB:cd:01"))]))]);
        let m = SubdictMatcher::checked("hw:eth0:52:54:00:ab:CD:01", ":", ValueMatch::Exact).expect("7 delimiters");
        assert!(m.matches(&mac));
        assert!(SubdictMatcher::new("hw::eth0::52:54:*", "::", ValueMatch::Glob).matches(&mac));
    }

    /// `{"a": {"a": ... {"a": "leaf"}}}`, `depth` maps deep.
    fn chain(depth: usize) -> Value {
        (0..depth).fold(s("leaf"), |inner, _| Value::Map(vec![(s("a"), inner)]))
    }

    #[test]
    fn data_nested_like_the_expression_is_searched_once_per_state() {
        // Salt tries every split of `a:a:...:a:x` again below every dict it reaches: about
        // 2^63 paths through this chain. Remembering the states that failed leaves about
        // 63 x 63 steps, within the budget.
        let hostile = format!("{}x", "a:".repeat(MAX_DELIMITERS - 1));
        let m = SubdictMatcher::checked(&hostile, ":", ValueMatch::Glob).expect("at the limit");
        assert_eq!(m.try_matches(&chain(200)), Ok(false));
        // The same shape, small enough for real data, is searched in full.
        let m = SubdictMatcher::checked("a:a:a:a:a:le*", ":", ValueMatch::Glob).expect("small");
        assert_eq!(m.try_matches(&chain(5)), Ok(true));
        // As in Salt, a dict is matched by its keys' names, not globbed: `le*` is no key.
        assert_eq!(m.try_matches(&chain(6)), Ok(false));
        assert_eq!(m.try_matches(&chain(4)), Ok(false));
    }

    #[test]
    fn wildcard_runs_are_searched_once_per_state() {
        // A run of `*:` searches every value under every dict, again for each `*`.
        let run = |stars: usize, last: &str| format!("{}{last}", "*:".repeat(stars));
        let m =
            |expr: &str| SubdictMatcher::checked(expr, ":", ValueMatch::Glob).expect("valid").try_matches(&grains());
        assert_eq!(m(&run(63, "nothing")), Ok(false));
        assert_eq!(m(&run(63, "eth0")), Ok(true));
        assert_eq!(m(&run(2, "10.0.0.*")), Ok(true));
        // Over a wide dict that is a comparison per value and per `*`: past the budget.
        let wide = Value::Map((0..500).map(|i| (s(&format!("k{i}")), s("v"))).collect());
        let m = SubdictMatcher::checked(&run(63, "nothing"), ":", ValueMatch::Glob).expect("valid");
        assert_eq!(m.try_matches(&wide), Err(Abandoned::Steps));
        assert!(!m.matches(&wide));
    }

    #[test]
    fn catastrophic_regex_values_are_given_up() {
        let data = Value::Map(vec![(s("v"), Value::Array(vec![s(&format!("{}!", "a".repeat(3000))), s("a")]))]);
        let m = SubdictMatcher::checked("v:(a|aa)+$", ":", ValueMatch::Regex).expect("valid");
        assert_eq!(m.try_matches(&data), Err(Abandoned::Backtracking));
        // The minion is given up at its first runaway value, even with a match further on.
        let m = SubdictMatcher::checked("v:a+$", ":", ValueMatch::Regex).expect("valid");
        assert_eq!(m.try_matches(&data), Ok(true));
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
