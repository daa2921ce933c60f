//! Salt's outputters (`--out`), for the data halite's tools print.
//!
//! Each function reproduces one of Salt's `salt/output/*.py` byte for byte on the shapes the
//! tools produce (differential tests against the Python tools hold them to it): `key`,
//! `json`, `yaml`, `nested`, `txt` and `raw`.

use std::fmt::Write as _;

/// Printable data: what Salt's outputters receive as Python dicts, lists and strings.
/// Maps keep their insertion order, as Python dicts do.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Str(String),
    List(Vec<Node>),
    Map(Vec<(String, Node)>),
}

impl Node {
    pub fn list<S: Into<String>>(items: impl IntoIterator<Item = S>) -> Node {
        Node::List(items.into_iter().map(|s| Node::Str(s.into())).collect())
    }
}

/// The outputters a tool accepts with `--out`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outputter {
    Key,
    Json,
    Yaml,
    Nested,
    Txt,
    Raw,
}

impl Outputter {
    /// `None` for a name Salt does not have; Salt then logs an error and falls back to nested.
    pub fn from_name(name: &str) -> Option<Outputter> {
        Some(match name {
            "key" => Outputter::Key,
            "json" => Outputter::Json,
            "yaml" => Outputter::Yaml,
            "nested" => Outputter::Nested,
            "txt" => Outputter::Txt,
            "raw" => Outputter::Raw,
            _ => return None,
        })
    }
}

/// Rendering options shared by the outputters.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
    /// `--out-indent` for json; Salt's default is 4.
    pub indent: usize,
}

impl Default for Style {
    fn default() -> Self {
        Style { color: false, indent: 4 }
    }
}

/// Renders `data` the way `salt.output.display_output` prints it: the outputter's text with
/// trailing whitespace stripped, then one newline.
pub fn render(data: &Node, outputter: Outputter, style: Style) -> String {
    let mut text = match outputter {
        Outputter::Key => key(data, style.color),
        Outputter::Json => {
            let mut out = String::new();
            json(data, style.indent, 0, &mut out);
            out
        }
        Outputter::Yaml => yaml(data),
        Outputter::Nested => nested(data),
        Outputter::Txt => txt(data),
        Outputter::Raw => py_repr(data),
    };
    text.truncate(text.trim_end().len());
    text.push('\n');
    text
}

mod color {
    pub const RED: &str = "\x1b[0;31m";
    pub const LIGHT_RED: &str = "\x1b[0;1;31m";
    pub const GREEN: &str = "\x1b[0;32m";
    pub const LIGHT_GREEN: &str = "\x1b[0;1;32m";
    pub const BLUE: &str = "\x1b[0;34m";
    pub const LIGHT_BLUE: &str = "\x1b[0;1;34m";
    pub const MAGENTA: &str = "\x1b[0;35m";
    pub const LIGHT_MAGENTA: &str = "\x1b[0;1;35m";
    pub const ENDC: &str = "\x1b[0;0m";
}

/// Salt's `key` outputter: key states sorted by directory name, each with its title, and ids
/// in Python's (code point) order; `id:  value` lines when a state maps ids to values.
fn key(data: &Node, use_color: bool) -> String {
    let Node::Map(states) = data else { return nested(data) };
    let paint = |code: &'static str| if use_color { code } else { "" };
    let mut sorted: Vec<&(String, Node)> = states.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = String::new();
    for (state, entries) in sorted {
        let (title, title_color, item_color) = match state.as_str() {
            "minions_pre" => ("Unaccepted Keys:", color::LIGHT_RED, color::RED),
            "minions" => ("Accepted Keys:", color::LIGHT_GREEN, color::GREEN),
            "minions_denied" => ("Denied Keys:", color::LIGHT_MAGENTA, color::MAGENTA),
            "minions_rejected" => ("Rejected Keys:", color::LIGHT_BLUE, color::BLUE),
            _ => ("Local Keys:", color::LIGHT_MAGENTA, color::MAGENTA),
        };
        let _ = writeln!(out, "{}{title}{}", paint(title_color), paint(color::ENDC));
        match entries {
            Node::List(ids) => {
                let mut ids: Vec<&str> = ids.iter().filter_map(as_str).collect();
                ids.sort_unstable();
                for id in ids {
                    let _ = writeln!(out, "{}{id}{}", paint(item_color), paint(color::ENDC));
                }
            }
            Node::Map(pairs) => {
                let mut pairs: Vec<&(String, Node)> = pairs.iter().collect();
                pairs.sort_by(|a, b| a.0.cmp(&b.0));
                for (id, value) in pairs {
                    let value = as_str(value).unwrap_or_default();
                    let _ = writeln!(out, "{}{id}:  {value}{}", paint(item_color), paint(color::ENDC));
                }
            }
            Node::Str(_) => {}
        }
    }
    out
}

fn as_str(node: &Node) -> Option<&str> {
    match node {
        Node::Str(s) => Some(s),
        _ => None,
    }
}

/// Python's `json.dumps(indent=n)`: insertion order, `": "` and `","` separators, non-ASCII
/// escaped (`ensure_ascii`).
fn json(node: &Node, indent: usize, depth: usize, out: &mut String) {
    let pad = |d: usize| " ".repeat(indent * d);
    match node {
        Node::Str(s) => json_str(s, out),
        Node::List(items) if items.is_empty() => out.push_str("[]"),
        Node::Map(pairs) if pairs.is_empty() => out.push_str("{}"),
        Node::List(items) => {
            out.push_str("[\n");
            for (i, item) in items.iter().enumerate() {
                out.push_str(&pad(depth + 1));
                json(item, indent, depth + 1, out);
                out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
            }
            out.push_str(&pad(depth));
            out.push(']');
        }
        Node::Map(pairs) => {
            out.push_str("{\n");
            for (i, (k, v)) in pairs.iter().enumerate() {
                out.push_str(&pad(depth + 1));
                json_str(k, out);
                out.push_str(": ");
                json(v, indent, depth + 1, out);
                out.push_str(if i + 1 < pairs.len() { ",\n" } else { "\n" });
            }
            out.push_str(&pad(depth));
            out.push('}');
        }
    }
}

fn json_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// PyYAML's `safe_dump(default_flow_style=False)` as Salt's yaml outputter calls it: mapping
/// keys sorted, block sequences at their key's indentation.
fn yaml(node: &Node) -> String {
    let mut out = String::new();
    match node {
        Node::Map(pairs) if !pairs.is_empty() => yaml_map(pairs, 0, &mut out),
        Node::List(items) if !items.is_empty() => yaml_list(items, 0, &mut out),
        other => {
            out.push_str(&yaml_inline(other, 0));
            out.push('\n');
        }
    }
    out
}

fn yaml_map(pairs: &[(String, Node)], indent: usize, out: &mut String) {
    let mut sorted: Vec<&(String, Node)> = pairs.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (k, v) in sorted {
        let _ = write!(out, "{}{}:", " ".repeat(indent), yaml_scalar(k, indent + 2));
        match v {
            Node::Map(inner) if !inner.is_empty() => {
                out.push('\n');
                yaml_map(inner, indent + 2, out);
            }
            Node::List(items) if !items.is_empty() => {
                out.push('\n');
                yaml_list(items, indent, out);
            }
            other => {
                let _ = writeln!(out, " {}", yaml_inline(other, indent + 2));
            }
        }
    }
}

fn yaml_list(items: &[Node], indent: usize, out: &mut String) {
    for item in items {
        let _ = write!(out, "{}-", " ".repeat(indent));
        match item {
            Node::Map(inner) if !inner.is_empty() => {
                // PyYAML puts a mapping's first key on the dash line.
                let mut nested_out = String::new();
                yaml_map(inner, indent + 2, &mut nested_out);
                out.push(' ');
                out.push_str(nested_out.trim_start());
            }
            Node::List(inner) if !inner.is_empty() => {
                out.push('\n');
                yaml_list(inner, indent + 2, out);
            }
            other => {
                let _ = writeln!(out, " {}", yaml_inline(other, indent + 2));
            }
        }
    }
}

fn yaml_inline(node: &Node, indent: usize) -> String {
    match node {
        Node::Str(s) => yaml_scalar(s, indent),
        Node::List(_) => "[]".into(),
        Node::Map(_) => "{}".into(),
    }
}

/// A string as PyYAML writes it: plain when it would read back as the same string, else
/// single-quoted; a multi-line string is single-quoted with each line break written as an
/// empty line and continuation lines indented, as PyYAML does for PEM keys.
fn yaml_scalar(s: &str, indent: usize) -> String {
    if plain_safe(s) {
        return s.to_owned();
    }
    let escaped = s.replace('\'', "''");
    if !s.contains('\n') {
        return format!("'{escaped}'");
    }
    let pad = " ".repeat(indent);
    let mut out = String::from("'");
    let lines: Vec<&str> = escaped.split('\n').collect();
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            out.push_str("\n\n");
            out.push_str(&pad);
        }
        out.push_str(line);
    }
    out.push('\'');
    out
}

fn plain_safe(s: &str) -> bool {
    let Some(first) = s.chars().next() else { return false };
    // PyYAML's analyze_scalar: these always start a flow indicator; `-`, `?` and `:` only
    // when a space or the end follows.
    let second = s.chars().nth(1);
    let starts_indicator =
        ",[]{}#&*!|>'\"%@`".contains(first) || ("-?:".contains(first) && second.is_none_or(|c| c == ' '));
    let indicator_free = !starts_indicator && !first.is_whitespace();
    let body_ok = s.chars().all(|c| c.is_ascii_graphic() || c == ' ')
        && !s.ends_with(' ')
        && !s.ends_with(':')
        && !s.contains(": ")
        && !s.contains(" #");
    // The value must also read back as this very string, not a number, bool, null or date.
    let reads_back = matches!(halite_yaml::load(s), Ok(halite_yaml::Value::String(ref v)) if v.as_str() == Some(s));
    indicator_free && body_ok && reads_back
}

/// Salt's `nested` outputter for the shapes the tools print.
fn nested(node: &Node) -> String {
    let mut out = String::new();
    nested_into(node, 0, &mut out);
    out
}

fn nested_into(node: &Node, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match node {
        Node::Str(s) => {
            for line in s.split('\n') {
                let _ = writeln!(out, "{pad}{line}");
            }
        }
        Node::List(items) => {
            for item in items {
                match item {
                    Node::Str(s) => {
                        let _ = writeln!(out, "{pad}- {s}");
                    }
                    other => nested_into(other, indent + 2, out),
                }
            }
        }
        Node::Map(pairs) => {
            if indent > 0 {
                let _ = writeln!(out, "{pad}----------");
            }
            let mut sorted: Vec<&(String, Node)> = pairs.iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            for (k, v) in sorted {
                let _ = writeln!(out, "{pad}{k}:");
                nested_into(v, indent + 4, out);
            }
        }
    }
}

/// Salt's `txt` outputter: one `key: <Python repr>` line per top-level key.
fn txt(node: &Node) -> String {
    match node {
        Node::Map(pairs) => pairs.iter().map(|(k, v)| format!("{k}: {}\n", py_repr(v))).collect(),
        other => format!("{}\n", py_repr(other)),
    }
}

/// Python's `repr()` of the data.
pub fn py_repr(node: &Node) -> String {
    match node {
        Node::Str(s) => py_repr_str(s),
        Node::List(items) => format!("[{}]", items.iter().map(py_repr).collect::<Vec<_>>().join(", ")),
        Node::Map(pairs) => format!(
            "{{{}}}",
            pairs.iter().map(|(k, v)| format!("{}: {}", py_repr_str(k), py_repr(v))).collect::<Vec<_>>().join(", ")
        ),
    }
}

fn py_repr_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    let mut out = String::new();
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Node {
        Node::Map(vec![
            ("minions".into(), Node::list(["db1-masterdb", "salt"])),
            ("minions_pre".into(), Node::list(["app1", "db2", "Web1"])),
            ("minions_rejected".into(), Node::list(["bots"])),
            ("minions_denied".into(), Node::list(["mail"])),
        ])
    }

    // Expected texts below were produced by salt-key 3007.8 on the same keys.
    #[test]
    fn key_outputter() {
        let want = "Accepted Keys:\ndb1-masterdb\nsalt\nDenied Keys:\nmail\nUnaccepted Keys:\nWeb1\napp1\ndb2\nRejected Keys:\nbots\n";
        assert_eq!(render(&sample(), Outputter::Key, Style::default()), want);
        let colored = render(&sample(), Outputter::Key, Style { color: true, ..Style::default() });
        assert!(colored.starts_with("\x1b[0;1;32mAccepted Keys:\x1b[0;0m\n\x1b[0;32mdb1-masterdb\x1b[0;0m\n"));
    }

    #[test]
    fn yaml_txt_raw_nested() {
        assert_eq!(
            render(&sample(), Outputter::Yaml, Style::default()),
            "minions:\n- db1-masterdb\n- salt\nminions_denied:\n- mail\nminions_pre:\n- app1\n- db2\n- Web1\nminions_rejected:\n- bots\n"
        );
        assert_eq!(
            render(&sample(), Outputter::Txt, Style::default()),
            "minions: ['db1-masterdb', 'salt']\nminions_pre: ['app1', 'db2', 'Web1']\nminions_rejected: ['bots']\nminions_denied: ['mail']\n"
        );
        assert_eq!(
            render(&sample(), Outputter::Raw, Style::default()),
            "{'minions': ['db1-masterdb', 'salt'], 'minions_pre': ['app1', 'db2', 'Web1'], 'minions_rejected': ['bots'], 'minions_denied': ['mail']}\n"
        );
        assert_eq!(
            render(&sample(), Outputter::Nested, Style::default()),
            "minions:\n    - db1-masterdb\n    - salt\nminions_denied:\n    - mail\nminions_pre:\n    - app1\n    - db2\n    - Web1\nminions_rejected:\n    - bots\n"
        );
        let fingers =
            Node::Map(vec![("minions_pre".into(), Node::Map(vec![("db2".into(), Node::Str("56:cf".into()))]))]);
        assert_eq!(
            render(&fingers, Outputter::Nested, Style::default()),
            "minions_pre:\n    ----------\n    db2:\n        56:cf\n"
        );
        assert_eq!(render(&fingers, Outputter::Yaml, Style::default()), "minions_pre:\n  db2: 56:cf\n");
    }

    #[test]
    fn yaml_quotes_what_would_not_read_back() {
        for (s, want) in [
            ("db1", "db1"),
            ("yes", "'yes'"),
            ("123", "'123'"),
            ("0644", "'0644'"),
            ("a: b", "'a: b'"),
            ("it's", "it's"),
            ("a #b", "'a #b'"),
            ("-x", "-x"),
            ("~", "'~'"),
            ("", "''"),
        ] {
            assert_eq!(yaml_scalar(s, 0), want, "{s:?}");
        }
        let pem = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
        assert_eq!(
            yaml_scalar(pem, 4),
            "'-----BEGIN PUBLIC KEY-----\n\n    AAAA\n\n    -----END PUBLIC KEY-----\n\n    '"
        );
    }

    #[test]
    fn json_matches_python_dumps() {
        let want = "{\n    \"minions\": [\n        \"db1-masterdb\",\n        \"salt\"\n    ],\n    \"minions_pre\": [\n        \"app1\",\n        \"db2\",\n        \"Web1\"\n    ],\n    \"minions_rejected\": [\n        \"bots\"\n    ],\n    \"minions_denied\": [\n        \"mail\"\n    ]\n}\n";
        assert_eq!(render(&sample(), Outputter::Json, Style::default()), want);
        let mut s = String::new();
        json_str("é\u{1F600}", &mut s);
        assert_eq!(s, "\"\\u00e9\\ud83d\\ude00\"");
        assert_eq!(render(&Node::Map(vec![]), Outputter::Json, Style::default()), "{}\n");
    }
}
