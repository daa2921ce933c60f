//! Differential test: every snippet is loaded by halite and by the real
//! `salt.utils.yaml.safe_load` of Salt 3007.8 (the minion venv `tests/install-minions.sh`
//! builds), and the results must agree value for value, type for type; where Salt raises,
//! halite must return an error.
//!
//! Values cross from Python as JSON with a type tag on every node, so `1`, `1.0`, `True`,
//! `"1"` and `None` stay distinct.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use halite_yaml::Value;
use serde_json::{json, Value as Json};

const CASES: &[&str] = &[
    // YAML 1.1 booleans, and what is not one.
    "[yes, Yes, YES, no, No, NO, on, On, ON, off, Off, OFF, true, True, TRUE, false, False, FALSE]",
    "[y, Y, n, N, yES, tRUE, oN, nO]",
    // Nulls.
    "[~, null, Null, NULL, nULL, '', 'null']",
    "a:\nb: ~\nc: !!null whatever\n",
    // Integers, with Salt's leading-zero strip.
    "[0, 00, 000, 0644, 0_644, 0755, -0644, +0644, 09, 0o17, 0x1F, 0x_1f, -0x10, 0b101, 0b1_0, -0b11]",
    "[1_000, +12, -12, 1:30, -1:30, 1_2:30, 1:59, 1:60, 0:30, 01:30, 1:30:00]",
    "[9223372036854775807, -9223372036854775808, 18446744073709551615]",
    "mode: 0600\nuser: root\n",
    // Floats.
    "[1.5, 1., 0., .5, -.5, +.5, 1.0e+3, 1.0e3, 1e3, 1e+3, .5E+3, 1.5e-3, 685_230.15, 190:20:30.15]",
    "[.inf, -.inf, +.inf, .Inf, .INF, .nan, .NaN, .NAN, -.nan, inf, nan]",
    "[0.1, 100000000000000000.0, 0.00001, 123456789.125]",
    // Timestamps stay text.
    "[2001-12-14, 2001-12-14t21:59:43.10-05:00, 2001-12-14 21:59:43.10 -5, 2002-12-14, 2001-1-1]",
    // Strings.
    "[abc, 'single ''quoted''', \"double \\\"quoted\\\"\", \"tab\\tnew\\nline\", \"\\u00e9\\x41\", héllo]",
    "['123', \"yes\", '0644', \"~\", '1.5', '<<', '=']",
    "plain: multi\n  line\n  plain scalar\n",
    "lit: |\n  line one\n  line two\nfold: >\n  folded\n  text\n\n  para\n",
    "keep: |+\n  kept\n\nstrip: |-\n  stripped\nindent: |2\n    two more\n",
    "url: http://example.com:8080/path?q=1#frag\ncolon: a:b\nhash: a#b\n",
    "windows: line\r\nendings: here\r\n",
    "\u{feff}bom: true\n",
    "key: value # a comment\n# full line\nother: 'x' # more\n",
    // Collections.
    "- a\n- - b\n  - c\n- {d: 1, e: [2, 3]}\n-\n- ''\n",
    "{a: 1, b: [x, y], c: {d: e}}",
    "[a, b: c, {d: e}]",
    "{a, b: , c}",
    "outer:\n  inner:\n    deep: [1, {x: y}]\n  list:\n  - 1\n  - two\n",
    // Non-string keys.
    "1: one\n2.5: two and a half\ntrue: yes\n~: null key\n0644: mode\n",
    "{1: a, '1': b}",
    // Duplicate keys: Salt refuses them, in Python's sense of equality.
    "a: 1\na: 2\n",
    "{1: a, true: b}",
    "{1: a, 1.0: b}",
    "{0: a, false: b}",
    "{'a': 1, \"a\": 2}",
    // Unhashable keys.
    "? [a, b]\n: c\n",
    "? {a: b}\n: c\n",
    // Anchors, aliases and merges.
    "base: &b {x: 1, y: 2}\nref: *b\n",
    "base: &b {x: 1, y: 2}\nchild:\n  <<: *b\n  y: 3\n  z: 4\n",
    "a: &a {x: 1}\nb: &b {y: 2}\nc:\n  <<: [*a, *b]\n  z: 3\n",
    "a: &a {x: 1}\nb: &b {x: 2}\nc: {<<: [*a, *b]}\n",
    "a: &a {1: one}\nc:\n  <<: *a\n  '1': string one\n",
    "a: &a {x: 1}\nb: &b {<<: *a, y: 2}\nc: {<<: *b, z: 3}\n",
    "<<: 1\n",
    "<<: [1]\n",
    "k: <<\n",
    "'<<': {a: 1}\n",
    "- &x a\n- &x b\n",
    "- *nope\n",
    "anchored_scalar: &s 0644\nalias: *s\n",
    // Tags.
    "[!!str 12, !!str yes, !!int '12', !!int 0644, !!float 1, !!float 1e3, !!bool 'yes', !!null '']",
    "[! 12, ! yes, ! '12', ! \"yes\", !<tag:yaml.org,2002:int> '7']",
    "k: !!binary aGVsbG8=\n",
    "k: !!binary |\n  aGVs\n  bG8=\n",
    "k: !!python/unicode text\n",
    "k: !!timestamp 2001-01-01\n",
    "k: !!omap [a: 1, b: 2]\n",
    "k: !!pairs [a: 1, a: 2]\n",
    "k: !foo bar\n",
    "k: !!bool maybe\n",
    "k: !!int\n",
    "k: !!int 1.5\n",
    "k: !!str [a]\n",
    "k: !!map [a]\n",
    "k: !!seq {a: 1}\n",
    "k: =\n",
    "=: value key\n",
    "k: 0b_\n",
    // Documents.
    "",
    "# only a comment\n",
    "---\n",
    "--- 42\n",
    "--- text\n...\n",
    "%YAML 1.1\n---\nk: yes\n",
    "a: 1\n---\nb: 2\n",
    "plain scalar document",
    // Syntax errors.
    "k: [1, 2\n",
    "a: b: c\n",
    "a:\n\t- tab\n",
    "k: @reserved\n",
    "- a\nb: c\n",
    "k: 'unterminated\n",
    // Syntax corners where libyaml and yaml-rust2 could part ways, and more tags.
    "{a:1}",
    "[a:1, b: 2]",
    "a: 1\t# tab comment",
    "e: \"\\/ \\N \\_ \\L \\P \\e \\a \\0\"",
    "k: 'multi\n  line\n\n  single'",
    "? a\n: b",
    "%TAG !e! tag:example.com,2000:app/\n---\nk: !e!foo bar",
    "key:\n- a\n- b",
    "k: |  # comment\n  text",
    "[[], {}, '', \"\"]",
    "--- a\n...\n--- b",
    "[-foo, --foo, - -1]",
    "- - -1",
    "\"quoted: key\": v",
    "k: a b\n  c",
    "k: \u{e9}moji \u{1f600} \u{4e2d}\u{6587}",
    "k: \"\\U0001F600\"",
    "k: a b",
    "a: b c",
    "k: -",
    "k: - a",
    "{a: 1,}",
    "[a, b, ]",
    "k: [a, # comment\n  b]",
    "k: 1_000.5_5",
    "[0.0.0.0, 127.0.0.1, 1.2.3, 10.0.0.1/24, 12:30, 1:2:3, 1_:30]",
    "interface: 0.0.0.0\npublish_port: 4505\nfile_roots:\n  base:\n    - /srv/salt",
    "a: &x\nb: *x",
    "*x : v",
    "&x k: v",
    "? !!str 1\n: v",
    "k: >-\n  folded\n  strip\n",
    "k: |+\n  keep\n",
    "k:   trailing spaces   ",
    "k: \"\\ud800\"",
    "k: 'it''s'",
    "k: \"a\\\n  b\"",
    "[a\n, b]",
    "a:\n  - b\n  -\n    c: d",
    "? - a\n  - b",
    "k: !!float 1_0",
    "k: !!float -.NaN",
    "k: !!int -0b-1",
    "k: 0o0",
    "- 1\n- -",
    "\"a\": 1\n'b': 2",
    "{? a: b}",
    "[? a : b]",
    "k: !!str &a foo",
    "k: &a !!str foo",
    "!!set\n? a\n? b",
    "!!omap\n- a: 1\n- b: 2",
    "!!omap {a: 1}",
    "!!pairs [a]",
    "!!pairs [{a: 1, b: 2}]",
    "k: !!binary \"aGVsbG8\"",
    "k: !!binary \"!!!!\"",
    "k: !!binary \"aGV sbG8=\"",
    "{.5: a, 0.5: b}",
    "{~: a, null: b}",
    "{\"\": a, ~: b}",
    "k: !!null [1]",
    "k: !!timestamp [1]",
    "k: !!set [a]",
    "k: !<!> 12",
    "k: !<!foo> 12",
    "[!!str, !!int 0]\n",
    "[0x, 0b, __1, 1__, +1_0]",
    "k: 0_\n",
    // Block scalars at the end of the input, and tabs after indicators.
    "k: |\n  text",
    "k: |\n  text\n# c",
    "k: |\n  text\n  ",
    "k: |+\n  text",
    "k: |-\n  text",
    "k: >\n  a\n  b",
    "- |\n  x",
    "k: |\n  text\n  # not a comment",
    "k: |\n  text\n\n",
    "k: |+\n  text\n\n",
    "k: |+\n  text\n\n  ",
    "k: |\n",
    "k: |",
    "k: >+\n  a\n\n b",
    "a:\tb",
    "a: \tb",
    "a: b\t",
    "a:\n  b: 1\n\tc: 2",
    "k: [a,\tb]",
    "k:\t[a]",
    "k: |\n\ttab",
    "k: |\n  a\n\tb",
    "k: x\n\n",
    "k: |\n",
    "k: |\nj: 1\n",
    "k: >\n\nj: 1\n",
    "- |\n- x\n",
    "k: |+\n",
    "k: |+\n\n\n",
    "k: |-\n",
    "k: |\n\n\n",
    "k: |\n  \n",
    "k: |\n   \n  x\n",
    "k: |\n  text\n     \n",
    "k: |\n  text\n     ",
    "k: >\n  a\n\n  b\n",
    "k: >\n  a\n    b\n  c\n",
    "k: >2\n   a\n  b\n",
    "k: |2-\n   a\n",
    "k: |-2\n   a\n",
    "- >\n a\n- |\n b\n",
    "k: |\n  x\n# c\n",
    "k: |\n  x\n  # c\n",
    "k: |\n  text\n     x",
    "k: |\n  # x\n# x",
    "k: |+\n  x\n\n# c\n\n",
    "k: >-\n  a\n\n\n",
    "a:\tb\nc:\t\td\ne: 'x:\ty'\n",
    "k: {a:\tb}\n",
    "k: |\n  a:\tb\n",
    "- k:\tv\n",
    // A state file, as Jinja would hand it to the yaml renderer.
    "/etc/motd:\n  file.managed:\n    - source: salt://motd\n    - mode: 0644\n    - user: root\n    - makedirs: True\n    - require:\n      - pkg: base\n",
];

/// Documents where halite deliberately reads differently from Salt, and why. The test checks
/// they still differ, so this list cannot go stale.
const DEVIATIONS: &[(&str, &str)] = &[
    ("k: 72559411200000000000\n", "Python keeps a big integer; a Value holds 64 bits, so halite refuses it"),
    ("k: !!python/unicode [1]", "PyYAML leaks its internal node objects; halite refuses the tag on a collection"),
    ("&a [*a]", "Python builds a list containing itself; a Value tree cannot, so halite refuses it"),
    ("-  a\n-\tb", "libyaml refuses a tab after `-`; yaml-rust2 reads it as a separator"),
    ("- \ta", "libyaml refuses a tab after `- `; yaml-rust2 reads it as a separator"),
    ("[a, |\n]", "libyaml refuses `|` inside a flow collection; yaml-rust2 reads a plain scalar"),
];

fn salt_python() -> Result<PathBuf, String> {
    if let Some(explicit) = std::env::var_os("HALITE_SALT_PYTHON") {
        return Ok(PathBuf::from(explicit));
    }
    let cache = match std::env::var_os("HALITE_MINION_CACHE") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").ok_or("HOME is not set")?).join(".cache/halite/minions"),
    };
    let python = cache.join("salt-3007.8/bin/python");
    if python.is_file() {
        Ok(python)
    } else {
        Err(format!("{} not found (run tests/install-minions.sh)", python.display()))
    }
}

/// Loads every case with Salt and returns the tagged results, in order.
const ORACLE: &str = r#"
import json, sys
import salt.utils.yaml

def tag(v, inside=()):
    if id(v) in inside: return {"t": "recursive"}
    inside = inside + (id(v),)
    if v is None: return {"t": "null"}
    if isinstance(v, bool): return {"t": "bool", "v": v}
    if isinstance(v, int): return {"t": "int", "v": str(v)}
    if isinstance(v, float): return {"t": "float", "v": repr(v)}
    if isinstance(v, str): return {"t": "str", "v": v}
    if isinstance(v, bytes): return {"t": "bytes", "v": v.hex()}
    if isinstance(v, (list, tuple)): return {"t": "list", "v": [tag(x, inside) for x in v]}
    if isinstance(v, dict): return {"t": "map", "v": [[tag(k, inside), tag(x, inside)] for k, x in v.items()]}
    if isinstance(v, (set, frozenset)): return {"t": "set", "v": [tag(x, inside) for x in v]}
    return {"t": "unknown", "v": repr(v)}

import salt.utils.args
load = salt.utils.args.yamlify_arg if sys.argv[1] == "yamlify_arg" else salt.utils.yaml.safe_load
out = []
for text in json.load(sys.stdin):
    try:
        out.append(tag(load(text)))
    except Exception as e:
        mark = getattr(e, "problem_mark", None)
        out.append({"t": "error", "v": "%s: %s" % (type(e).__name__, e),
                    "line": mark.line + 1 if mark is not None else None})
json.dump(out, sys.stdout)
"#;

/// `mode` is `safe_load` or `yamlify_arg`: the Salt function each text goes through.
fn run_oracle(python: &PathBuf, mode: &str, texts: &[&str]) -> Vec<Json> {
    let mut child = Command::new(python)
        .args(["-c", ORACLE, mode])
        // Salt's package imports modules named like stdlib ones (`platform`); run from a
        // directory that cannot shadow anything.
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the Salt venv's python");
    let input = serde_json::to_vec(texts).expect("cases as JSON");
    child.stdin.take().expect("stdin").write_all(&input).expect("write cases");
    let output = child.wait_with_output().expect("oracle output");
    assert!(output.status.success(), "oracle failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("oracle JSON")
}

fn tagged(v: &Value) -> Json {
    match v {
        Value::Nil => json!({"t": "null"}),
        Value::Boolean(b) => json!({"t": "bool", "v": b}),
        Value::Integer(i) => json!({"t": "int", "v": i.to_string()}),
        Value::F64(f) => json!({"t": "float", "v": halite_yaml::py::float_repr(*f)}),
        Value::F32(f) => json!({"t": "float", "v": halite_yaml::py::float_repr(f64::from(*f))}),
        Value::String(s) => json!({"t": "str", "v": s.as_str().expect("UTF-8 string")}),
        Value::Binary(b) => {
            json!({"t": "bytes", "v": b.iter().map(|x| format!("{x:02x}")).collect::<String>()})
        }
        Value::Array(items) => {
            json!({"t": "list", "v": items.iter().map(tagged).collect::<Vec<_>>()})
        }
        Value::Map(pairs) => {
            json!({"t": "map", "v": pairs.iter().map(|(k, v)| json!([tagged(k), tagged(v)])).collect::<Vec<_>>()})
        }
        Value::Ext(..) => json!({"t": "ext"}),
    }
}

/// Python sets have no order; halite keeps a `!!set` as a map to `Nil` in document order.
fn same(expected: &Json, actual: &Json) -> bool {
    match (expected["t"].as_str(), actual["t"].as_str()) {
        (Some("set"), Some("map")) => {
            let members = expected["v"].as_array().cloned().unwrap_or_default();
            let pairs = actual["v"].as_array().cloned().unwrap_or_default();
            members.len() == pairs.len()
                && pairs.iter().all(|p| p[1] == json!({"t": "null"}) && members.iter().any(|m| same(m, &p[0])))
        }
        (Some("float"), Some("float")) => {
            let parse = |j: &Json| j["v"].as_str().and_then(|s| s.parse::<f64>().ok());
            match (parse(expected), parse(actual)) {
                (Some(a), Some(b)) => (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits(),
                _ => false,
            }
        }
        (Some(a), Some(b)) if a == b && (a == "list" || a == "map") => {
            let (x, y) = (expected["v"].as_array(), actual["v"].as_array());
            match (x, y) {
                (Some(x), Some(y)) => {
                    x.len() == y.len()
                        && x.iter().zip(y).all(|(p, q)| match (p.as_array(), q.as_array()) {
                            (Some(p), Some(q)) => p.len() == q.len() && p.iter().zip(q).all(|(a, b)| same(a, b)),
                            _ => same(p, q),
                        })
                }
                _ => false,
            }
        }
        _ => expected == actual,
    }
}

/// Whether halite's result is the one Salt produced (any error matches any error: the two
/// parsers word their messages differently).
fn agrees(text: &str, salt: &Json) -> Result<(), String> {
    let got = halite_yaml::load(text);
    let ok = match (&got, salt["t"].as_str()) {
        (Err(_), Some("error")) => true,
        (Ok(v), Some(t)) if t != "error" => same(salt, &tagged(v)),
        _ => false,
    };
    if ok {
        return Ok(());
    }
    let got = match &got {
        Ok(v) => tagged(v).to_string(),
        Err(e) => format!("error: {e}"),
    };
    Err(format!("case {text:?}\n  salt:   {salt}\n  halite: {got}"))
}

#[test]
fn loads_like_salt_3007() {
    let python = match salt_python() {
        Ok(p) => p,
        Err(reason) => {
            eprintln!("SKIPPED loads_like_salt_3007: {reason}");
            return;
        }
    };
    let expected = run_oracle(&python, "safe_load", CASES);
    assert_eq!(expected.len(), CASES.len());
    let failures: Vec<String> =
        CASES.iter().zip(&expected).filter_map(|(text, salt)| agrees(text, salt).err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from Salt:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

#[test]
fn deliberate_deviations_still_differ() {
    let python = match salt_python() {
        Ok(p) => p,
        Err(reason) => {
            eprintln!("SKIPPED deliberate_deviations_still_differ: {reason}");
            return;
        }
    };
    let texts: Vec<&str> = DEVIATIONS.iter().map(|(text, _)| *text).collect();
    let expected = run_oracle(&python, "safe_load", &texts);
    for ((text, why), salt) in DEVIATIONS.iter().zip(&expected) {
        assert!(agrees(text, salt).is_err(), "{text:?} now reads like Salt; drop it from DEVIATIONS ({why})");
    }
}

/// Command-line arguments and targeting keys: `salt.utils.args.yamlify_arg`.
const ARGS: &[&str] = &[
    "1",
    "-1",
    "1.5",
    "1e3",
    "0644",
    "1_000",
    "_",
    "1_",
    "yes",
    "No",
    "on",
    "None",
    "none",
    "null",
    "~",
    "",
    " ",
    "---",
    "...",
    "a: b",
    "{a: b}",
    "{a: [1, 2]}",
    "- a",
    "[1, x]",
    "[broken",
    "{broken",
    "a #b",
    "#",
    "# c",
    "12 # n",
    "[1] # n",
    "!",
    "|",
    ">",
    "!!str 1",
    "!!binary aGk=",
    "!!set {a, b}",
    "a\tb",
    "a\nb",
    "2001-12-14",
    "'quoted'",
    "\"dq\"",
    "roles:db",
    "x=1",
    "*",
    "&a",
    "*a",
    "@x",
    "%x",
    "`x",
    "0x1F",
    "0o17",
    ".inf",
    ".nan",
    "True",
    "FALSE",
    "{}",
    "[]",
    "{a: 1, a: 2}",
    "é",
    "1:30",
];

#[test]
fn yamlify_arg_like_salt_3007() {
    let python = match salt_python() {
        Ok(p) => p,
        Err(reason) => {
            eprintln!("SKIPPED yamlify_arg_like_salt_3007: {reason}");
            return;
        }
    };
    let expected = run_oracle(&python, "yamlify_arg", ARGS);
    let failures: Vec<String> = ARGS
        .iter()
        .zip(&expected)
        .filter_map(|(text, salt)| {
            let got = tagged(&halite_yaml::yamlify_arg(text));
            (!same(salt, &got)).then(|| format!("arg {text:?}\n  salt:   {salt}\n  halite: {got}"))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} args differ from Salt:\n{}",
        failures.len(),
        ARGS.len(),
        failures.join("\n")
    );
}
