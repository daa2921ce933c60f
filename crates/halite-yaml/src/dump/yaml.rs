//! PyYAML's `safe_dump` as Salt calls it (`salt.utils.yaml.safe_dump`: `SafeOrderedDumper`,
//! `allow_unicode=True`, keys sorted): block style for the `yaml` outputter, flow style for
//! the `yaml` Jinja filter, both folding long lines at 80 columns as PyYAML's emitter does.

use std::fmt::Write as _;

use crate::{py, Value};

/// The document `safe_dump(data, default_flow_style=flow)` writes.
pub fn yaml(data: &Value, flow: bool) -> String {
    let mut out = String::new();
    match data {
        Value::Map(pairs) if !pairs.is_empty() && !flow => map(pairs, 0, &mut out),
        Value::Array(items) if !items.is_empty() && !flow => list(items, 0, &mut out),
        Value::Map(_) | Value::Array(_) if flow => {
            let mut w = Writer { out: String::new(), column: 0, indent: 0, split: true };
            flow_node(data, 0, true, &mut w);
            out.push_str(&w.out);
            out.push('\n');
        }
        other => {
            // libyaml's emitter (Salt dumps with `CSafeDumper`) does not close a document
            // holding a plain scalar with `...`, as PyYAML's own emitter would.
            out.push_str(&inline(other, 0, 2, true));
            out.push('\n');
        }
    }
    out
}

/// A string in PyYAML's double-quoted style on one line (Salt's `yaml_dquote` filter, which
/// writes with an unbounded width).
pub fn double_quoted(text: &str) -> String {
    let mut w = Writer { out: String::new(), column: 0, indent: 0, split: false };
    w.double_quoted(text);
    w.out
}

/// A string in PyYAML's single-quoted style on one line (Salt's `yaml_squote` filter).
pub fn single_quoted(text: &str) -> String {
    let mut w = Writer { out: String::new(), column: 0, indent: 0, split: false };
    w.single_quoted(text);
    w.out
}

/// Flow style: `{a: 1, b: [x, y]}`. Before each item PyYAML breaks the line (indenting by
/// two per nesting level) once the column is past 80; plain scalars may also fold at spaces.
fn flow_node(v: &Value, depth: usize, first: bool, w: &mut Writer) {
    let lead = |w: &mut Writer| {
        if !first {
            w.write(" ");
        }
    };
    match v {
        Value::Array(items) if !items.is_empty() => {
            lead(w);
            w.write("[");
            w.indent = (depth + 1) * 2;
            for (i, item) in items.iter().enumerate() {
                let fresh = flow_separator(i, w);
                flow_node(item, depth + 1, fresh, w);
            }
            w.write("]");
            w.indent = depth * 2;
        }
        Value::Map(pairs) if !pairs.is_empty() => {
            lead(w);
            w.write("{");
            w.indent = (depth + 1) * 2;
            let sorted = py::sorted_keys(pairs).unwrap_or_else(|| pairs.iter().collect());
            for (i, (k, val)) in sorted.into_iter().enumerate() {
                let fresh = flow_separator(i, w);
                if !fresh {
                    w.write(" ");
                }
                // Keys are simple keys: never folded; a key PyYAML would not write as a
                // simple key (a collection) is not something Salt data has.
                w.split = false;
                flow_scalar(k, w);
                w.split = true;
                w.write(":");
                flow_node(val, depth + 1, false, w);
            }
            w.write("}");
            w.indent = depth * 2;
        }
        scalar => {
            lead(w);
            // A scalar node is written one indentation step deeper than its collection.
            let collection_indent = w.indent;
            w.indent += 2;
            flow_scalar(scalar, w);
            w.indent = collection_indent;
        }
    }
}

/// Writes the `,` before item `i` and breaks the line when past 80 columns; returns whether
/// the item starts a fresh line (or follows the opening bracket), so needs no space.
fn flow_separator(i: usize, w: &mut Writer) -> bool {
    if i > 0 {
        w.write(",");
    }
    if w.column > BEST_WIDTH {
        w.write_indent();
        return true;
    }
    i == 0
}

/// A scalar (or empty collection) in flow context, where `,[]{}` and friends forbid the
/// plain style.
fn flow_scalar(v: &Value, w: &mut Writer) {
    match v {
        Value::String(s) => {
            let s = String::from_utf8_lossy(s.as_bytes());
            let a = analyze(&s);
            if resolves_to_str(&s) && a.allow_flow_plain && !s.is_empty() {
                w.plain(&s);
            } else if a.allow_single_quoted {
                w.single_quoted(&s);
            } else {
                w.double_quoted(&s);
            }
        }
        other => {
            let text = inline(other, w.column, w.indent, w.split);
            w.write(&text);
        }
    }
}

fn map(pairs: &[(Value, Value)], indent: usize, out: &mut String) {
    let sorted = py::sorted_keys(pairs).unwrap_or_else(|| pairs.iter().collect());
    for (k, v) in sorted {
        // Keys are simple keys: PyYAML never folds them.
        let key = inline(k, indent, indent + 2, false);
        let _ = write!(out, "{}{key}:", " ".repeat(indent));
        match v {
            Value::Map(inner) if !inner.is_empty() => {
                out.push('\n');
                map(inner, indent + 2, out);
            }
            Value::Array(items) if !items.is_empty() => {
                out.push('\n');
                list(items, indent, out);
            }
            other => {
                let column = indent + key.chars().count() + 2;
                let _ = writeln!(out, " {}", inline(other, column, indent + 2, true));
            }
        }
    }
}

fn list(items: &[Value], indent: usize, out: &mut String) {
    for item in items {
        let _ = write!(out, "{}-", " ".repeat(indent));
        match item {
            // PyYAML starts a nested mapping or sequence on the dash line.
            Value::Map(inner) if !inner.is_empty() => {
                let mut nested_out = String::new();
                map(inner, indent + 2, &mut nested_out);
                out.push(' ');
                out.push_str(nested_out.trim_start());
            }
            Value::Array(inner) if !inner.is_empty() => {
                let mut nested_out = String::new();
                list(inner, indent + 2, &mut nested_out);
                out.push(' ');
                out.push_str(nested_out.trim_start());
            }
            other => {
                let _ = writeln!(out, " {}", inline(other, indent + 2, indent + 2, true));
            }
        }
    }
}

/// A scalar (or an empty collection) written at `column`, continuation lines at `indent`;
/// `split` allows folding long lines (not for keys).
fn inline(v: &Value, column: usize, indent: usize, split: bool) -> String {
    match v {
        Value::Nil => "null".into(),
        Value::Boolean(b) => if *b { "true" } else { "false" }.into(),
        Value::Integer(i) => i.to_string(),
        Value::F32(_) | Value::F64(_) => {
            let f = v.as_f64().unwrap_or(0.0);
            if f.is_nan() {
                ".nan".into()
            } else if f.is_infinite() {
                if f > 0.0 { ".inf" } else { "-.inf" }.into()
            } else {
                let r = py::float_repr(f).to_lowercase();
                if !r.contains('.') && r.contains('e') {
                    r.replacen('e', ".0e", 1)
                } else {
                    r
                }
            }
        }
        Value::String(s) => scalar(&String::from_utf8_lossy(s.as_bytes()), column, indent, split),
        Value::Array(_) => "[]".into(),
        Value::Map(_) => "{}".into(),
        other => scalar(&py::text(other), column, indent, split),
    }
}

/// A string as PyYAML writes it, starting at `column` with continuation lines at `indent`:
/// PyYAML's `analyze_scalar` and `choose_scalar_style` pick plain, single- or double-quoted
/// style, and its writers fold long lines past 80 columns.
fn scalar(s: &str, column: usize, indent: usize, split: bool) -> String {
    let a = analyze(s);
    let mut w = Writer { out: String::new(), column, indent, split };
    if resolves_to_str(s) && a.allow_block_plain {
        w.plain(s);
    } else if a.allow_single_quoted {
        w.single_quoted(s);
    } else {
        w.double_quoted(s);
    }
    w.out
}

struct Analysis {
    allow_block_plain: bool,
    allow_flow_plain: bool,
    allow_single_quoted: bool,
}

const BREAKS: &[char] = &['\n', '\u{85}', '\u{2028}', '\u{2029}'];
const SPACE_OR_BREAK: &[char] = &['\0', ' ', '\t', '\r', '\n', '\u{85}', '\u{2028}', '\u{2029}'];

/// PyYAML's `analyze_scalar` (with `allow_unicode`, as Salt dumps), reduced to the answers
/// the style choice needs.
fn analyze(s: &str) -> Analysis {
    if s.is_empty() {
        return Analysis { allow_block_plain: true, allow_flow_plain: false, allow_single_quoted: true };
    }
    let chars: Vec<char> = s.chars().collect();
    let mut block_indicators = s.starts_with("---") || s.starts_with("...");
    let mut flow_indicators = block_indicators;
    let (mut line_breaks, mut special) = (false, false);
    let (mut leading_space, mut leading_break, mut trailing_space, mut trailing_break) = (false, false, false, false);
    let (mut break_space, mut space_break) = (false, false);
    let (mut previous_space, mut previous_break) = (false, false);
    let mut preceded_by_ws = true;
    for (i, &ch) in chars.iter().enumerate() {
        let followed_by_ws = i + 1 >= chars.len() || SPACE_OR_BREAK.contains(&chars[i + 1]);
        if i == 0 {
            if "#,[]{}&*!|>'\"%@`".contains(ch) || (ch == '-' && followed_by_ws) {
                block_indicators = true;
                flow_indicators = true;
            }
            if "?:".contains(ch) {
                flow_indicators = true;
                block_indicators |= followed_by_ws;
            }
        } else {
            if ",?[]{}".contains(ch) {
                flow_indicators = true;
            }
            if ch == ':' {
                flow_indicators = true;
                block_indicators |= followed_by_ws;
            }
            if ch == '#' && preceded_by_ws {
                flow_indicators = true;
                block_indicators = true;
            }
        }
        if BREAKS.contains(&ch) {
            line_breaks = true;
        }
        if !(ch == '\n' || (' '..='~').contains(&ch)) {
            let printable_unicode = ch == '\u{85}'
                || ('\u{a0}'..='\u{d7ff}').contains(&ch)
                || ('\u{e000}'..='\u{fffd}').contains(&ch)
                || ('\u{10000}'..'\u{10ffff}').contains(&ch);
            if !printable_unicode || ch == '\u{feff}' {
                special = true;
            }
        }
        if ch == ' ' {
            leading_space |= i == 0;
            trailing_space |= i == chars.len() - 1;
            break_space |= previous_break;
            previous_space = true;
            previous_break = false;
        } else if BREAKS.contains(&ch) {
            leading_break |= i == 0;
            trailing_break |= i == chars.len() - 1;
            space_break |= previous_space;
            previous_space = false;
            previous_break = true;
        } else {
            previous_space = false;
            previous_break = false;
        }
        preceded_by_ws = SPACE_OR_BREAK.contains(&ch);
    }
    let mut allow_block_plain = !(leading_space || leading_break || trailing_space || trailing_break);
    let mut allow_flow_plain = allow_block_plain;
    let mut allow_single_quoted = true;
    if break_space || space_break || special {
        allow_block_plain = false;
        allow_flow_plain = false;
        allow_single_quoted = false;
    }
    if line_breaks {
        allow_flow_plain = false;
        allow_block_plain = false;
    }
    allow_flow_plain &= !flow_indicators;
    allow_block_plain &= !block_indicators;
    Analysis { allow_block_plain, allow_flow_plain, allow_single_quoted }
}

/// Whether PyYAML's implicit resolvers (YAML 1.1) read the plain text back as a string;
/// otherwise it must be quoted. Timestamps, `<<` and `=` count as not strings here, though
/// Salt's loader keeps timestamps as text.
fn resolves_to_str(s: &str) -> bool {
    use regex::Regex;
    use std::sync::OnceLock;
    static RESOLVERS: OnceLock<Vec<(&'static str, Regex)>> = OnceLock::new();
    let resolvers = RESOLVERS.get_or_init(|| {
        [
            ("yYnNtTfFoO", r"^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$"),
            (
                "-+0123456789.",
                r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
            ),
            (
                "-+0123456789",
                r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$",
            ),
            ("<", r"^(?:<<)$"),
            ("~nN", r"^(?:~|null|Null|NULL)$"),
            (
                "0123456789",
                r"^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$",
            ),
            ("=", r"^(?:=)$"),
        ]
        .into_iter()
        .filter_map(|(first, re)| Regex::new(re).ok().map(|r| (first, r)))
        .collect()
    });
    let Some(first) = s.chars().next() else { return false };
    !resolvers.iter().any(|(firsts, re)| firsts.contains(first) && re.is_match(s))
}

/// PyYAML's scalar writers, tracking the column for its 80-column folding.
struct Writer {
    out: String,
    column: usize,
    indent: usize,
    split: bool,
}

const BEST_WIDTH: usize = 80;

impl Writer {
    fn write(&mut self, text: &str) {
        self.column += text.chars().count();
        self.out.push_str(text);
    }

    fn write_indent(&mut self) {
        self.out.push('\n');
        self.out.push_str(&" ".repeat(self.indent));
        self.column = self.indent;
    }

    fn line_break(&mut self, br: char) {
        self.out.push(if br == '\n' { '\n' } else { br });
        self.column = 0;
    }

    fn plain(&mut self, text: &str) {
        let chars: Vec<char> = text.chars().collect();
        let (mut spaces, mut start) = (false, 0);
        let mut end = 0;
        while end <= chars.len() {
            let ch = chars.get(end).copied();
            if spaces {
                if ch != Some(' ') {
                    if start + 1 == end && self.column > BEST_WIDTH && self.split {
                        self.write_indent();
                    } else {
                        self.write(&chars[start..end].iter().collect::<String>());
                    }
                    start = end;
                }
            } else if ch.is_none() || ch == Some(' ') {
                self.write(&chars[start..end].iter().collect::<String>());
                start = end;
            }
            if let Some(c) = ch {
                spaces = c == ' ';
            }
            end += 1;
        }
    }

    fn single_quoted(&mut self, text: &str) {
        self.write("'");
        let chars: Vec<char> = text.chars().collect();
        let (mut spaces, mut breaks, mut start) = (false, false, 0);
        let mut end = 0;
        while end <= chars.len() {
            let ch = chars.get(end).copied();
            if spaces {
                if ch != Some(' ') {
                    if start + 1 == end && self.column > BEST_WIDTH && self.split && start != 0 && end != chars.len() {
                        self.write_indent();
                    } else {
                        self.write(&chars[start..end].iter().collect::<String>());
                    }
                    start = end;
                }
            } else if breaks {
                if ch.is_none_or(|c| !BREAKS.contains(&c)) {
                    if chars[start] == '\n' {
                        self.line_break('\n');
                    }
                    for &br in &chars[start..end] {
                        self.line_break(br);
                    }
                    self.write_indent_after_break();
                    start = end;
                }
            } else if (ch.is_none() || ch.is_some_and(|c| c == ' ' || c == '\'' || BREAKS.contains(&c))) && start < end
            {
                self.write(&chars[start..end].iter().collect::<String>());
                start = end;
            }
            if ch == Some('\'') {
                self.write("''");
                start = end + 1;
            }
            if let Some(c) = ch {
                spaces = c == ' ';
                breaks = BREAKS.contains(&c);
            }
            end += 1;
        }
        self.write("'");
    }

    /// `write_indent` right after a line break: the column is 0, so only the indentation.
    fn write_indent_after_break(&mut self) {
        self.out.push_str(&" ".repeat(self.indent));
        self.column = self.indent;
    }

    fn double_quoted(&mut self, text: &str) {
        self.write("\"");
        let chars: Vec<char> = text.chars().collect();
        let mut start = 0;
        let mut end = 0;
        while end <= chars.len() {
            let ch = chars.get(end).copied();
            let needs_escape = ch.is_none_or(|c| {
                "\"\\\u{85}\u{2028}\u{2029}\u{feff}".contains(c)
                    || !((' '..='~').contains(&c)
                        || ('\u{a0}'..='\u{d7ff}').contains(&c)
                        || ('\u{e000}'..='\u{fffd}').contains(&c))
            });
            if needs_escape {
                if start < end {
                    self.write(&chars[start..end].iter().collect::<String>());
                    start = end;
                }
                if let Some(c) = ch {
                    let escaped = match c {
                        '\0' => "\\0".to_owned(),
                        '\x07' => "\\a".to_owned(),
                        '\x08' => "\\b".to_owned(),
                        '\t' => "\\t".to_owned(),
                        '\n' => "\\n".to_owned(),
                        '\x0b' => "\\v".to_owned(),
                        '\x0c' => "\\f".to_owned(),
                        '\r' => "\\r".to_owned(),
                        '\x1b' => "\\e".to_owned(),
                        '"' => "\\\"".to_owned(),
                        '\\' => "\\\\".to_owned(),
                        '\u{85}' => "\\N".to_owned(),
                        '\u{a0}' => "\\_".to_owned(),
                        '\u{2028}' => "\\L".to_owned(),
                        '\u{2029}' => "\\P".to_owned(),
                        c if (c as u32) <= 0xff => format!("\\x{:02X}", c as u32),
                        c if (c as u32) <= 0xffff => format!("\\u{:04X}", c as u32),
                        c => format!("\\U{:08X}", c as u32),
                    };
                    self.write(&escaped);
                    start = end + 1;
                }
            }
            if 0 < end
                && end + 1 < chars.len()
                && (ch == Some(' ') || start >= end)
                && self.column + end.saturating_sub(start) > BEST_WIDTH
                && self.split
            {
                let mut data: String = chars[start.min(end)..end].iter().collect();
                data.push('\\');
                if start < end {
                    start = end;
                }
                self.write(&data);
                self.write_indent();
                if chars.get(start) == Some(&' ') {
                    self.write("\\");
                }
            }
            end += 1;
        }
        self.write("\"");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(v: Value) -> String {
        yaml(&Value::Map(vec![(Value::from("m"), v)]), false)
    }

    // Expected texts: Salt 3007.8's `salt.utils.yaml.safe_dump(..., default_flow_style=False)`.
    #[test]
    fn scalars_like_pyyaml() {
        let s = |t: &str| Value::from(t);
        assert_eq!(
            one(s(&"word ".repeat(30))),
            "m: 'word word word word word word word word word word word word word word word word\n  word word word word word word word word word word word word word word '\n"
        );
        assert_eq!(one(s(&"x".repeat(100))), format!("m: {}\n", "x".repeat(100)));
        assert_eq!(one(s("a\tb")), "m: \"a\\tb\"\n");
        assert_eq!(one(s("café")), "m: café\n");
        assert_eq!(one(s(" lead")), "m: ' lead'\n");
        assert_eq!(one(s("line1\nline2")), "m: 'line1\n\n  line2'\n");
        assert_eq!(one(s("2001-12-14")), "m: '2001-12-14'\n");
        assert_eq!(one(s("<<")), "m: '<<'\n");
        assert_eq!(one(s("=")), "m: '='\n");
        assert_eq!(one(s("x#y")), "m: x#y\n");
        assert_eq!(one(s("#x")), "m: '#x'\n");
        assert_eq!(one(s("- a")), "m: '- a'\n");
        assert_eq!(one(s("\x07bell")), "m: \"\\abell\"\n");
        assert_eq!(one(s("'q'")), "m: '''q'''\n");
        assert_eq!(one(Value::F64(1e16)), "m: 1.0e+16\n");
        assert_eq!(one(Value::Nil), "m: null\n");
        assert_eq!(
            one(Value::Array(vec![
                Value::Array(vec![Value::from(1), Value::from(2)]),
                Value::Map(vec![(s("a"), Value::from(1))])
            ])),
            "m:\n- - 1\n  - 2\n- a: 1\n"
        );
        assert_eq!(one(Value::Array(vec![Value::Array(vec![])])), "m:\n- []\n");
        assert_eq!(
            yaml(&s(&"word ".repeat(30)), false),
            "'word word word word word word word word word word word word word word word word word\n  word word word word word word word word word word word word word '\n"
        );
    }

    // Expected texts: Salt 3007.8's `safe_dump(..., default_flow_style=True)`, the `yaml` filter.
    #[test]
    fn flow_style_like_pyyaml() {
        let v = crate::load("b: [1, 'x y', 'a,b', '', null, true]\na: {c: 'd: e', f: []}\n").unwrap();
        assert_eq!(yaml(&v, true), "{a: {c: 'd: e', f: []}, b: [1, x y, 'a,b', '', null, true]}\n");
        let long = Value::Array((0..30).map(|i| Value::from(format!("item{i}"))).collect());
        assert_eq!(
            yaml(&long, true),
            "[item0, item1, item2, item3, item4, item5, item6, item7, item8, item9, item10, item11,\n  \
             item12, item13, item14, item15, item16, item17, item18, item19, item20, item21,\n  \
             item22, item23, item24, item25, item26, item27, item28, item29]\n"
        );
        assert_eq!(yaml(&Value::from("plain"), true), "plain\n");
        let values = crate::load(
            "{k0: value number 0, k1: value number 1, k2: value number 2, k3: value number 3, k4: value number 4, k5: value number 5}",
        )
        .unwrap();
        assert_eq!(
            yaml(&values, true),
            "{k0: value number 0, k1: value number 1, k2: value number 2, k3: value number 3, k4: value\n    number 4, k5: value number 5}\n"
        );
        let nested =
            crate::load(&format!("{{a: [{}, {{deep: [{}, {}]}}]}}", "x".repeat(50), "y".repeat(40), "z".repeat(40)))
                .unwrap();
        assert_eq!(
            yaml(&nested, true),
            format!("{{a: [{}, {{deep: [{},\n        {}]}}]}}\n", "x".repeat(50), "y".repeat(40), "z".repeat(40))
        );
    }
}
