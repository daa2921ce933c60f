//! Salt's `nested` outputter (`salt/output/nested.py`), the default for execution functions.

use halite_yaml::{py, Value};

use halite_yaml::py::sorted_keys;

use super::{color, Style};

struct Painter {
    on: bool,
    retcode: i64,
}

impl Painter {
    fn paint(&self, code: &'static str) -> &'static str {
        if self.on {
            code
        } else {
            ""
        }
    }

    /// Lists and dict keys turn red when the job failed.
    fn structure(&self, normal: &'static str) -> &'static str {
        self.paint(if self.retcode != 0 { color::RED } else { normal })
    }

    /// Salt's `ustring`: indent, colour, prefix, text, reset, suffix.
    fn line(&self, out: &mut Vec<String>, indent: usize, code: &'static str, prefix: &str, msg: &str, suffix: &str) {
        out.push(format!("{}{code}{prefix}{msg}{}{suffix}", " ".repeat(indent), self.paint(color::ENDC)));
    }
}

pub(super) fn output(data: &Value, style: Style) -> String {
    output_indented(data, style, 0)
}

/// Salt's `nested_indent`: the whole output shifted right (highstate prints changes at 14).
pub(super) fn output_indented(data: &Value, style: Style, indent: usize) -> String {
    let painter = Painter { on: style.color, retcode: style.retcode };
    let mut out = Vec::new();
    display(&painter, data, indent, "", &mut out);
    out.join("\n")
}

fn display(p: &Painter, ret: &Value, indent: usize, prefix: &str, out: &mut Vec<String>) {
    match ret {
        Value::Nil | Value::Boolean(_) => {
            p.line(out, indent, p.paint(color::LIGHT_YELLOW), prefix, &py::text(ret), "");
        }
        Value::Integer(_) | Value::F32(_) | Value::F64(_) => {
            p.line(out, indent, p.paint(color::LIGHT_YELLOW), prefix, &py::repr(ret), "");
        }
        Value::String(_) | Value::Binary(_) => {
            // Bytes that are not UTF-8 stay bytes in Salt, which nested then skips.
            let Some(text) = as_text(ret) else { return };
            let continuation = " ".repeat(prefix.chars().count());
            for (i, line) in split_lines(&text).into_iter().enumerate() {
                let line_prefix = if i == 0 { prefix } else { continuation.as_str() };
                // Salt's strip_esc_sequence: a return must not drive the admin's terminal.
                p.line(out, indent, p.paint(color::GREEN), line_prefix, &line.replace('\x1b', "?"), "");
            }
        }
        Value::Array(items) => {
            let code = p.structure(color::GREEN);
            for item in items {
                match item {
                    Value::Array(_) | Value::Map(_) => {
                        p.line(out, indent, code, "", "|_", "");
                        let inner_prefix = if item.is_map() { "" } else { "- " };
                        display(p, item, indent + 2, inner_prefix, out);
                    }
                    scalar => display(p, scalar, indent, "- ", out),
                }
            }
        }
        Value::Map(pairs) => {
            if indent > 0 {
                p.line(out, indent, p.structure(color::CYAN), "", "----------", "");
            }
            let code = p.structure(color::CYAN);
            let stringified: Vec<(Value, Value)>;
            let sorted = match sorted_keys(pairs) {
                Some(s) => s,
                None => {
                    // Salt's fallback: keys that do not sort are turned into text first.
                    stringified = pairs.iter().map(|(k, v)| (Value::from(py::text(k)), v.clone())).collect();
                    sorted_keys(&stringified).unwrap_or_default()
                }
            };
            for (key, value) in sorted {
                p.line(out, indent, code, prefix, &py::text(key), ":");
                display(p, value, indent + 4, "", out);
            }
        }
        Value::Ext(..) => {}
    }
}

fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        Value::Binary(b) => std::str::from_utf8(b).ok().map(str::to_owned),
        _ => None,
    }
}

/// Python's `str.splitlines()`: every Unicode line boundary, `\r\n` as one, no trailing
/// empty line, nothing at all for the empty string.
pub(crate) fn split_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let boundary =
            matches!(c, '\n' | '\r' | '\x0b' | '\x0c' | '\x1c' | '\x1d' | '\x1e' | '\u{85}' | '\u{2028}' | '\u{2029}');
        if boundary {
            lines.push(&text[start..i]);
            let mut end = i + c.len_utf8();
            if c == '\r' {
                if let Some(&(j, '\n')) = chars.peek() {
                    chars.next();
                    end = j + 1;
                }
            }
            start = end;
        }
    }
    if start < text.len() {
        lines.push(&text[start..]);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use halite_proto_free::*;

    mod halite_proto_free {
        pub use halite_yaml::Value;
        pub fn s(t: &str) -> Value {
            Value::from(t)
        }
        pub fn m(pairs: Vec<(&str, Value)>) -> Value {
            Value::Map(pairs.into_iter().map(|(k, v)| (Value::from(k), v)).collect())
        }
    }

    #[test]
    fn nested_like_salt() {
        let ret = m(vec![(
            "db1",
            m(vec![
                ("roles", Value::Array(vec![s("db"), s("masterdb")])),
                ("ok", Value::Boolean(true)),
                ("n", Value::from(3)),
                ("f", Value::F64(1.5)),
                ("none", Value::Nil),
                ("text", s("line1\nline2")),
                ("empty", s("")),
                ("nested", Value::Array(vec![m(vec![("a", s("b"))]), Value::Array(vec![s("x")])])),
            ]),
        )]);
        let want = "db1:\n    ----------\n    empty:\n    f:\n        1.5\n    n:\n        3\n    nested:\n        |_\n          ----------\n          a:\n              b\n        |_\n          - x\n    none:\n        None\n    ok:\n        True\n    roles:\n        - db\n        - masterdb\n    text:\n        line1\n        line2";
        assert_eq!(output(&ret, Style::default()), want);
        let colored = output(&m(vec![("a", Value::Boolean(true))]), Style { color: true, ..Style::default() });
        assert_eq!(colored, "\x1b[0;36ma\x1b[0;0m:\n    \x1b[0;1;33mTrue\x1b[0;0m");
    }

    #[test]
    fn splitlines_like_python() {
        assert_eq!(split_lines("a\r\nb\rc\n"), ["a", "b", "c"]);
        assert!(split_lines("").is_empty());
        assert_eq!(split_lines("\n"), [""]);
    }
}
