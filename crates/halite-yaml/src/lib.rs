//! YAML text to [`rmpv::Value`] exactly as Salt reads it (and, in [`dump`], values back to
//! JSON and YAML text exactly as Salt writes them).
//!
//! Salt loads every YAML file (master config, SLS, pillar) through
//! `salt.utils.yaml.safe_load`, i.e. `SaltYamlSafeLoader`: PyYAML's `SafeLoader` on top of
//! libyaml (`CSafeLoader`), YAML 1.1 scalar resolution, plus a few Salt overrides. This crate
//! owns reproducing that reading; it is pure (no file I/O). Parsing (syntax) is done by
//! `yaml-rust2`'s event parser; composing, tag resolution and construction are done here,
//! because `yaml-rust2`'s own loader resolves scalars by YAML 1.2 rules (`yes` would be a
//! string, `0644` would be 644 for the wrong reason, `1e3` would be a float).
//!
//! # What a plain (unquoted) scalar becomes
//!
//! | text | value | note |
//! |---|---|---|
//! | `~`, `null`, `Null`, `NULL`, empty | `Nil` | `nULL` is a string |
//! | `yes no on off true false` in lower, Capitalised or UPPER case | `Boolean` | `y`, `n`, `tRUE` are strings |
//! | `12`, `-3`, `1_000`, `0x1F`, `0b101` | `Integer` | |
//! | `0644`, `0_644` | `Integer(644)` | Salt strips leading zeros: **not** octal |
//! | `-0644`, `+0644` | `Integer(-420)`, `Integer(420)` | the strip misses signed values, so PyYAML reads octal |
//! | `0o17`, `09`, `0:30`, `1:60` | `String` | not YAML 1.1 integers |
//! | `1:30`, `-1:30` | `Integer(90)`, `Integer(-90)` | base 60 |
//! | `1.5`, `1.`, `.5`, `1.0e+3`, `190:20:30.15` | `F64` | |
//! | `1e3`, `1.0e3`, `-.5`, `+.5` | `String` | YAML 1.1 needs a dot and a signed exponent; `.5` takes no sign |
//! | `.inf`, `-.inf`, `.NaN` | `F64` | `-.nan` is a string |
//! | `2001-12-14`, `2001-12-14 21:59:43.10 -5` | `String` | Salt keeps timestamps as their text |
//! | `=` as a mapping key | `String("=")` | as a value it is an error, as in PyYAML |
//!
//! Quoted and block (`|`, `>`) scalars are strings, except with the non-specific tag `!`:
//! libyaml marks `! "12"` as resolvable, so it is the integer 12.
//!
//! # Tags, collections and values
//!
//! `!!null !!bool !!int !!float !!str !!timestamp !!binary !!seq !!map !!set !!omap !!pairs
//! !!python/unicode` are honoured with PyYAML's conversions (`!!int` also gets Salt's
//! leading-zero strip); any other tag is an error, as in `SafeLoader`. Python types map to
//! `Value` as: `None` → `Nil`, `bool` → `Boolean`, `int` → `Integer` (beyond `i64`/`u64` is an
//! error: Python would keep a big integer, msgpack cannot), `float` → `F64`, `str` (and
//! timestamps) → `String`, `bytes` → `Binary`, `list` → `Array`, `dict` → `Map` in document
//! order, `set` (`!!set`) → `Map` whose values are `Nil`, the list of tuples of
//! `!!omap`/`!!pairs` → `Array` of two-element `Array`s.
//!
//! Mappings follow `SaltYamlSafeLoader.construct_mapping`: keys that Python cannot hash
//! (sequences, mappings, sets) are errors, and a key equal to an earlier one *in Python's
//! sense* (`1`, `1.0` and `true` are equal) is an error ("found conflicting ID"), where plain
//! PyYAML would keep the last. Merge keys (`<<`) follow Salt's `flatten_mapping`: merged
//! entries come first, an own key drops the merged entry whose key has the same *text*, and
//! two merged mappings sharing a key are a conflict too. Anchors may not be redefined
//! (libyaml's composer refuses it).
//!
//! # Where halite differs, deliberately
//!
//! Python can build what a `Value` cannot hold, so these are errors instead: recursive
//! aliases (`&a [*a]`), integers outside `i64`/`u64`, nesting deeper than [`MAX_DEPTH`], and
//! documents whose aliases expand to more than [`MAX_ALIAS_EXPANSION`] extra values (PyYAML
//! shares aliased objects; a `Value` tree copies them, so an "alias bomb" must be refused).
//! Errors PyYAML raises as plain Python exceptions (`!!int` on an empty scalar, `0b_`,
//! `!!bool maybe`) are [`YamlError`]s here.
//!
//! # Where yaml-rust2 and libyaml part, and what is done about it
//!
//! Both parse the same documents the same way except at a few edges, found by the
//! differential test against Salt (`tests/salt_oracle.rs`):
//!
//! * `key:<TAB>value` — libyaml takes the tab as the separating blank, yaml-rust2 refuses it;
//!   halite turns such a tab into a space and parses again (marks do not move).
//! * A block scalar (`|`, `>`) running into the end of the input — libyaml keeps only the line
//!   breaks it read (`k: |\n  text` without a final newline is `"text"`, and `k: |\n` is
//!   `""`), yaml-rust2 acts as if one more followed; halite recomputes that scalar's trailing
//!   breaks with libyaml's chomping rules.
//! * A leading byte-order mark is dropped, as libyaml does.
//! * Still different, and accepted: a tab after a `- ` indicator and a `|` inside a flow
//!   collection (libyaml refuses both, yaml-rust2 reads them), and flow collections nested
//!   deeper than 255 levels (yaml-rust2 refuses them, libyaml allows 999).
//!
//! Error messages are yaml-rust2's for syntax errors and PyYAML's wording otherwise. Lines
//! match libyaml's; columns point at a node's value, which for a tagged or anchored node is
//! after its `!tag` / `&anchor` rather than at it.

mod arg;
mod block_eof;
mod compose;
mod construct;
pub mod dump;
pub mod py;
mod scalar;

pub use arg::yamlify_arg;
pub use rmpv::Value;

/// Deepest nesting of collections accepted (counting aliased collections where they are
/// used). Salt's libyaml goes to 999 levels, but yaml-rust2 stops flow collections at 255
/// and halite's msgpack decoder refuses values deeper than 256, so a deeper document could
/// not travel anyway; the bound also keeps the recursive construction far from the end of a
/// 2 MiB thread stack.
pub const MAX_DEPTH: usize = 256;

/// How many values aliases may add to a document beyond the nodes written in it.
pub const MAX_ALIAS_EXPANSION: usize = 1_000_000;

/// A document Salt's loader would refuse (or Python would fail on), with the position of the
/// offending node or character, both counted from 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (line {line}, column {column})")]
pub struct YamlError {
    /// Line of the problem, from 1.
    pub line: usize,
    /// Column of the problem, from 1, counted in characters.
    pub column: usize,
    /// What is wrong, in the words of PyYAML's message where there is one.
    pub message: String,
}

/// A position in the source text, both parts counted from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Mark {
    pub line: usize,
    pub column: usize,
}

impl Mark {
    fn from_marker(m: &yaml_rust2::scanner::Marker) -> Mark {
        // yaml-rust2 counts lines from 1 but columns from 0.
        Mark { line: m.line(), column: m.col() + 1 }
    }

    pub(crate) fn error(self, message: impl Into<String>) -> YamlError {
        YamlError { line: self.line, column: self.column, message: message.into() }
    }
}

/// Reads one YAML document the way `salt.utils.yaml.safe_load` does.
///
/// An empty stream (nothing, or only comments) and an empty document are `Value::Nil`;
/// a stream holding more than one document is an error, as in `yaml.load`.
pub fn load(text: &str) -> Result<Value, YamlError> {
    load_with(text, false)
}

/// Reads one YAML document the way Salt's `yaml` renderer reads an SLS file (state, pillar
/// or top file): as [`load`], except that its loader builds mappings as `OrderedDict`, which
/// makes `!!omap` a mapping — and a `!!omap` sequence an error.
pub fn load_sls(text: &str) -> Result<Value, YamlError> {
    load_with(text, true)
}

fn load_with(text: &str, sls: bool) -> Result<Value, YamlError> {
    // libyaml drops a leading byte-order mark; yaml-rust2 would read it as part of the
    // first scalar.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let doc = compose_tolerating_tabs(text)?;
    match doc.root {
        None => Ok(Value::Nil),
        Some(root) => construct::construct_document(&doc, root, sls),
    }
}

/// Composes `text`, turning each tab that follows a `:` indicator into a space when
/// yaml-rust2 refuses it: libyaml (and so Salt) reads `key:<TAB>value` as `key: value`.
/// Space for tab keeps every mark where it was. Each retry removes at least one tab.
fn compose_tolerating_tabs(text: &str) -> Result<compose::Document, YamlError> {
    let mut patched: Option<String> = None;
    loop {
        let current = patched.as_deref().unwrap_or(text);
        match compose::compose(current) {
            Ok(doc) => return Ok(doc),
            Err(compose::ComposeError::Yaml(e)) => return Err(e),
            Err(compose::ComposeError::TabAfterColon { at, error }) => {
                let fixed = tabs_after_colon_to_spaces(current, at).ok_or(error)?;
                patched = Some(fixed);
            }
        }
    }
}

/// Replaces the run of blanks just before char index `at` when it follows a `:` and holds a
/// tab; `None` when the text does not look like that.
fn tabs_after_colon_to_spaces(text: &str, at: usize) -> Option<String> {
    let end = text.char_indices().nth(at).map_or(text.len(), |(i, _)| i);
    let blanks = text[..end].len() - text[..end].trim_end_matches([' ', '\t']).len();
    let start = end - blanks;
    if !text[..start].ends_with(':') || !text[start..end].contains('\t') {
        return None;
    }
    Some(format!("{}{}{}", &text[..start], " ".repeat(blanks), &text[end..]))
}
