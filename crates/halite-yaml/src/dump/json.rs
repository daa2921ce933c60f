//! Python's `json.dumps` (`indent`, `sort_keys`, `ensure_ascii`; `default=repr`).

use std::fmt::Write as _;

use crate::{py, Value};

/// The `json.dumps` options Salt varies.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonStyle {
    /// `None`: one line with `", "` and `": "` separators; `Some(n)`: n spaces per level.
    pub indent: Option<usize>,
    pub sort_keys: bool,
    /// Non-ASCII characters as `\uXXXX` escapes (Python's default).
    pub ensure_ascii: bool,
}

/// `json.dumps(data, ...)`; mappings whose keys Python could not sort stay in their order.
pub fn json(data: &Value, style: &JsonStyle) -> String {
    let mut out = String::new();
    dump(data, style, 0, &mut out);
    out
}

fn dump(v: &Value, style: &JsonStyle, depth: usize, out: &mut String) {
    let indent = style.indent;
    match v {
        Value::Nil => out.push_str("null"),
        Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Integer(i) => {
            let _ = write!(out, "{i}");
        }
        Value::F32(f) => float(f64::from(*f), out),
        Value::F64(f) => float(*f, out),
        Value::String(s) => string(&String::from_utf8_lossy(s.as_bytes()), style.ensure_ascii, out),
        // `default=repr`: bytes are written as the text of their repr.
        Value::Binary(_) | Value::Ext(..) => string(&py::repr(v), style.ensure_ascii, out),
        Value::Array(items) if items.is_empty() => out.push_str("[]"),
        Value::Map(pairs) if pairs.is_empty() => out.push_str("{}"),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                separator(i, indent, depth + 1, out);
                dump(item, style, depth + 1, out);
            }
            close(indent, depth, out);
            out.push(']');
        }
        Value::Map(pairs) => {
            out.push('{');
            let sorted = if style.sort_keys { py::sorted_keys(pairs) } else { None };
            let ordered = sorted.unwrap_or_else(|| pairs.iter().collect());
            for (i, (k, val)) in ordered.into_iter().enumerate() {
                separator(i, indent, depth + 1, out);
                key(k, style, out);
                out.push_str(": ");
                dump(val, style, depth + 1, out);
            }
            close(indent, depth, out);
            out.push('}');
        }
    }
}

fn separator(i: usize, indent: Option<usize>, depth: usize, out: &mut String) {
    match indent {
        Some(n) => {
            if i > 0 {
                out.push(',');
            }
            out.push('\n');
            out.push_str(&" ".repeat(n * depth));
        }
        None if i > 0 => out.push_str(", "),
        None => {}
    }
}

fn close(indent: Option<usize>, depth: usize, out: &mut String) {
    if let Some(n) = indent {
        out.push('\n');
        out.push_str(&" ".repeat(n * depth));
    }
}

/// JSON object keys: Python converts numbers, booleans and None to their JSON text.
fn key(k: &Value, style: &JsonStyle, out: &mut String) {
    let one_line = JsonStyle { indent: None, ..*style };
    match k {
        Value::String(_) => dump(k, &one_line, 0, out),
        Value::Nil => out.push_str("\"null\""),
        Value::Boolean(b) => out.push_str(if *b { "\"true\"" } else { "\"false\"" }),
        other => {
            let mut text = String::new();
            dump(other, &one_line, 0, &mut text);
            string(text.trim_matches('"'), style.ensure_ascii, out);
        }
    }
}

fn float(f: f64, out: &mut String) {
    if f.is_nan() {
        out.push_str("NaN");
    } else if f.is_infinite() {
        out.push_str(if f > 0.0 { "Infinity" } else { "-Infinity" });
    } else {
        out.push_str(&py::float_repr(f));
    }
}

fn string(s: &str, ensure_ascii: bool, out: &mut String) {
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
            c if (c as u32) < 0x20 || (ensure_ascii && (c as u32) > 0x7e) => {
                // Beyond the BMP, Python writes the UTF-16 surrogate pair.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dumps_like_python() {
        let v = Value::Map(vec![
            (Value::from("a"), Value::Array(vec![Value::from(1), Value::F64(2.0), Value::Nil])),
            (Value::from("é"), Value::Map(vec![])),
            (Value::from(3), Value::Boolean(true)),
        ]);
        let indented = JsonStyle { indent: Some(4), ..JsonStyle::default() };
        assert_eq!(
            json(&v, &indented),
            "{\n    \"a\": [\n        1,\n        2.0,\n        null\n    ],\n    \"é\": {},\n    \"3\": true\n}"
        );
        assert_eq!(json(&v, &JsonStyle::default()), "{\"a\": [1, 2.0, null], \"é\": {}, \"3\": true}");
        assert_eq!(json(&Value::from("x\u{1}"), &indented), "\"x\\u0001\"");
        let salt_filter = JsonStyle { indent: None, sort_keys: true, ensure_ascii: true };
        let m = Value::Map(vec![(Value::from("b"), Value::from("é😀")), (Value::from("a"), Value::from(1))]);
        assert_eq!(json(&m, &salt_filter), "{\"a\": 1, \"b\": \"\\u00e9\\ud83d\\ude00\"}");
    }
}
