//! Salt's reading of a job's arguments (`salt.utils.args.parse_input`), for the CLIs' text
//! arguments and for the argument lists minions send with `publish.*`.

use halite_yaml::{yamlify_arg, Value};

/// `name=value` with a Python identifier-like name (`[^\d\W][\w.-]*`) and no second `=`
/// right after the first; the value may not span lines (Salt's `KWARG_REGEX`).
pub fn parse_kwarg(arg: &str) -> Option<(&str, &str)> {
    let (name, value) = arg.split_once('=')?;
    let mut chars = name.chars();
    let first = chars.next()?;
    let word = |c: char| c.is_alphanumeric() || c == '_';
    if !word(first) || first.is_numeric() || !chars.all(|c| word(c) || c == '.' || c == '-') {
        return None;
    }
    // `(?!=)`: `a==b` is no kwarg; `.*$` stops at a line break (a final one is allowed).
    if value.starts_with('=') || value.trim_end_matches('\n').contains('\n') || value.matches('\n').count() > 1 {
        return None;
    }
    Some((name, value.strip_suffix('\n').unwrap_or(value)))
}

/// `parse_input(args, no_parse)` then `condition_input`: text arguments YAML-read as Salt
/// reads them, `name=value` texts and `{"__kwarg__": True, ...}` maps gathered into one
/// trailing `{"__kwarg__": True, ...}` dict (names in `no_parse` keep their text), other
/// values kept as they are, and a 20-digit integer that is a jid turned back into text.
pub fn parse_input(args: &[Value], no_parse: &[&str]) -> Vec<Value> {
    let mut positional = Vec::new();
    let mut kwargs: Vec<(Value, Value)> = Vec::new();
    // A repeated name keeps its first position and its last value, as a dict does.
    let mut set = |name: Value, value: Value| match kwargs.iter_mut().find(|(k, _)| *k == name) {
        Some(slot) => slot.1 = value,
        None => kwargs.push((name, value)),
    };
    for arg in args {
        match arg {
            Value::String(s) => {
                let Some(text) = s.as_str() else {
                    positional.push(arg.clone());
                    continue;
                };
                match parse_kwarg(text) {
                    Some((name, value)) => {
                        let value = if no_parse.contains(&name) { Value::from(value) } else { yamlify_arg(value) };
                        set(Value::from(name), value);
                    }
                    None => positional.push(condition(yamlify_arg(text))),
                }
            }
            Value::Map(pairs)
                if pairs.iter().any(|(k, v)| k.as_str() == Some("__kwarg__") && *v == Value::Boolean(true)) =>
            {
                for (k, v) in pairs.iter().filter(|(k, _)| k.as_str() != Some("__kwarg__")) {
                    set(k.clone(), v.clone());
                }
            }
            other => positional.push(condition(other.clone())),
        }
    }
    if !kwargs.is_empty() {
        let mut kw = vec![(Value::from("__kwarg__"), Value::Boolean(true))];
        kw.extend(kwargs);
        positional.push(Value::Map(kw));
    }
    positional
}

fn condition(v: Value) -> Value {
    match &v {
        Value::Integer(i) => {
            let text = i.to_string();
            if text.len() == 20 && text.bytes().all(|b| b.is_ascii_digit()) {
                Value::from(text)
            } else {
                v
            }
        }
        _ => v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kwargs_like_salt() {
        assert_eq!(parse_kwarg("name=value"), Some(("name", "value")));
        assert_eq!(parse_kwarg("a.b-c=1=2"), Some(("a.b-c", "1=2")));
        assert_eq!(parse_kwarg("1a=x"), None);
        assert_eq!(parse_kwarg("a==b"), None);
        assert_eq!(parse_kwarg("=x"), None);
        assert_eq!(parse_kwarg("a b=x"), None);
        assert_eq!(parse_kwarg("a=x\ny"), None);
        let args: Vec<Value> = ["roles", "default=[1, 2]", "x=yes", "quiet=off"].into_iter().map(Value::from).collect();
        let got = parse_input(&args, &["quiet"]);
        assert_eq!(
            got,
            vec![
                Value::from("roles"),
                Value::Map(vec![
                    (Value::from("__kwarg__"), Value::Boolean(true)),
                    (Value::from("default"), Value::Array(vec![Value::from(1), Value::from(2)])),
                    (Value::from("x"), Value::Boolean(true)),
                    (Value::from("quiet"), Value::from("off")),
                ])
            ]
        );
    }

    #[test]
    fn values_from_minions_like_salt() {
        let kw = Value::Map(vec![(Value::from("__kwarg__"), Value::Boolean(true)), (Value::from("a"), Value::from(1))]);
        let plain = Value::Map(vec![(Value::from("a"), Value::from(2))]);
        let got = parse_input(
            &[Value::from(3), plain.clone(), kw, Value::from("a=4"), Value::from(12345678901234567890u64)],
            &[],
        );
        assert_eq!(
            got,
            vec![
                Value::from(3),
                plain,
                Value::from("12345678901234567890"),
                Value::Map(vec![(Value::from("__kwarg__"), Value::Boolean(true)), (Value::from("a"), Value::from(4))]),
            ]
        );
    }
}
