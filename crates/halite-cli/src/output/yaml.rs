//! Salt's `yaml` outputter: PyYAML's `safe_dump(default_flow_style=False)` through Salt's
//! `SafeOrderedDumper` (keys sorted, block style, unicode kept).

use std::fmt::Write as _;

use halite_yaml::{py, Value};

pub(super) fn output(data: &Value, _indent: Option<i64>) -> String {
    let mut out = String::new();
    match data {
        Value::Map(pairs) if !pairs.is_empty() => map(pairs, 0, &mut out),
        Value::Array(items) if !items.is_empty() => list(items, 0, &mut out),
        other => {
            out.push_str(&inline(other, 0));
            out.push_str("\n...\n");
        }
    }
    out
}

fn map(pairs: &[(Value, Value)], indent: usize, out: &mut String) {
    let sorted = super::sorted_keys(pairs).unwrap_or_else(|| pairs.iter().collect());
    for (k, v) in sorted {
        let _ = write!(out, "{}{}:", " ".repeat(indent), inline(k, indent + 2));
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
                let _ = writeln!(out, " {}", inline(other, indent + 2));
            }
        }
    }
}

fn list(items: &[Value], indent: usize, out: &mut String) {
    for item in items {
        let _ = write!(out, "{}-", " ".repeat(indent));
        match item {
            Value::Map(inner) if !inner.is_empty() => {
                // PyYAML puts a mapping's first key on the dash line.
                let mut nested_out = String::new();
                map(inner, indent + 2, &mut nested_out);
                out.push(' ');
                out.push_str(nested_out.trim_start());
            }
            Value::Array(inner) if !inner.is_empty() => {
                out.push('\n');
                list(inner, indent + 2, out);
            }
            other => {
                let _ = writeln!(out, " {}", inline(other, indent + 2));
            }
        }
    }
}

fn inline(v: &Value, indent: usize) -> String {
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
        Value::String(s) => scalar(&String::from_utf8_lossy(s.as_bytes()), indent),
        Value::Array(_) => "[]".into(),
        Value::Map(_) => "{}".into(),
        other => scalar(&py::text(other), indent),
    }
}

/// A string as PyYAML writes it: plain when it would resolve back to a string, else
/// single-quoted; line breaks in single quotes are written as an empty line.
fn scalar(s: &str, indent: usize) -> String {
    if plain_safe(s) {
        return s.to_owned();
    }
    let escaped = s.replace('\'', "''");
    if !s.contains('\n') {
        return format!("'{escaped}'");
    }
    let pad = " ".repeat(indent);
    let mut out = String::from("'");
    for (i, line) in escaped.split('\n').enumerate() {
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
    let second = s.chars().nth(1);
    let starts_indicator =
        ",[]{}#&*!|>'\"%@`".contains(first) || ("-?:".contains(first) && second.is_none_or(|c| c == ' '));
    let body_ok = s.chars().all(|c| !c.is_control())
        && !s.ends_with(' ')
        && !s.ends_with(':')
        && !s.contains(": ")
        && !s.contains(" #");
    let reads_back = matches!(halite_yaml::load(s), Ok(Value::String(ref v)) if v.as_str() == Some(s));
    !starts_indicator && !first.is_whitespace() && body_ok && reads_back
}

#[cfg(test)]
mod tests {
    use super::super::{render, tests::sample, Outputter, Style};

    #[test]
    fn block_style_sorted() {
        assert_eq!(
            render(&sample(), Outputter::Yaml, Style::default()),
            "minions:\n- db1-masterdb\n- salt\nminions_denied:\n- mail\nminions_pre:\n- app1\n- db2\n- Web1\nminions_rejected:\n- bots\n"
        );
    }
}
