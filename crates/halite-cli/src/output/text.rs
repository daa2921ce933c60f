//! Salt's line-oriented outputters: `txt` and `newline_values_only`.

use halite_yaml::{py, Value};

use super::nested::split_lines;

/// `txt`: `key: line` for every line of each top-level value (`key: <str(value)>` for
/// values that are not text); data that is not a dict is printed whole.
pub(super) fn txt(data: &Value) -> String {
    let Value::Map(pairs) = data else {
        // Python's `pprint.pformat` would also wrap past 80 columns; halite prints one line.
        return format!("{}\n", if data.is_str() { py::text(data) } else { py::repr(data) });
    };
    let mut out = String::new();
    for (key, value) in pairs {
        let key = py::text(key);
        if let Value::String(s) = value {
            for line in split_lines(&String::from_utf8_lossy(s.as_bytes())) {
                out.push_str(&format!("{key}: {line}\n"));
            }
        } else {
            out.push_str(&format!("{key}: {}\n", py::text(value)));
        }
    }
    out
}

/// `newline_values_only`: each minion's value on its own line, a list's items each on
/// theirs. Salt's outputter fails on data that is not a dict and Salt falls back to nested.
pub(super) fn newline_values_only(data: &Value) -> String {
    let Value::Map(pairs) = data else {
        return super::nested::output(data, super::Style::default());
    };
    let mut values = Vec::new();
    for (_, v) in pairs {
        match v {
            Value::Array(items) => values.extend(items.iter().map(py::text)),
            other => values.push(py::text(other)),
        }
    }
    values.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txt_and_values_only() {
        let v = Value::Map(vec![
            (Value::from("a"), Value::from("l1\nl2")),
            (Value::from("b"), Value::Array(vec![Value::from("x"), Value::from(1)])),
        ]);
        assert_eq!(txt(&v), "a: l1\na: l2\nb: ['x', 1]\n");
        assert_eq!(newline_values_only(&v), "l1\nl2\nx\n1");
    }
}
