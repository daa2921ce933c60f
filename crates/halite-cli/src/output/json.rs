//! Salt's `json` outputter: `json.dumps(data, default=repr, indent=4, ensure_ascii=False)`.

use std::fmt::Write as _;

use halite_yaml::{py, Value};

/// `indent`: Salt's `--out-indent`; `None` (unset) is 4, a negative number is one line.
pub(super) fn output(data: &Value, indent: Option<i64>) -> String {
    let indent = match indent {
        None => Some(4),
        Some(n) if n < 0 => None,
        Some(n) => Some(n as usize),
    };
    let mut out = String::new();
    dump(data, indent, 0, &mut out);
    out
}

fn dump(v: &Value, indent: Option<usize>, depth: usize, out: &mut String) {
    match v {
        Value::Nil => out.push_str("null"),
        Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Integer(i) => {
            let _ = write!(out, "{i}");
        }
        Value::F32(f) => float(f64::from(*f), out),
        Value::F64(f) => float(*f, out),
        Value::String(s) => string(&String::from_utf8_lossy(s.as_bytes()), out),
        // `default=repr`: bytes are written as the text of their repr.
        Value::Binary(_) | Value::Ext(..) => string(&py::repr(v), out),
        Value::Array(items) if items.is_empty() => out.push_str("[]"),
        Value::Map(pairs) if pairs.is_empty() => out.push_str("{}"),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                separator(i, indent, depth + 1, out);
                dump(item, indent, depth + 1, out);
            }
            close(indent, depth, out);
            out.push(']');
        }
        Value::Map(pairs) => {
            out.push('{');
            for (i, (k, val)) in pairs.iter().enumerate() {
                separator(i, indent, depth + 1, out);
                key(k, out);
                out.push_str(": ");
                dump(val, indent, depth + 1, out);
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
fn key(k: &Value, out: &mut String) {
    match k {
        Value::String(_) => dump(k, None, 0, out),
        Value::Nil => out.push_str("\"null\""),
        Value::Boolean(b) => out.push_str(if *b { "\"true\"" } else { "\"false\"" }),
        other => {
            let mut text = String::new();
            dump(other, None, 0, &mut text);
            string(text.trim_matches('"'), out);
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

fn string(s: &str, out: &mut String) {
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
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
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
        assert_eq!(
            output(&v, None),
            "{\n    \"a\": [\n        1,\n        2.0,\n        null\n    ],\n    \"é\": {},\n    \"3\": true\n}"
        );
        assert_eq!(output(&v, Some(-1)), "{\"a\": [1, 2.0, null], \"é\": {}, \"3\": true}");
        assert_eq!(output(&Value::from("x\u{1}"), None), "\"x\\u0001\"");
    }
}
