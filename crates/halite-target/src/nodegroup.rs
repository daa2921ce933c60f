//! Nodegroups: names for compound targets, from the master config's `nodegroups`.

use halite_yaml::{py, Value};

use crate::TargetError;

pub(crate) const OPERATORS: [&str; 5] = ["and", "or", "not", "(", ")"];

/// Salt's `nodegroup_comp`: the words of the compound target that nodegroup `name` stands
/// for, with nested `N@` groups expanded in place (each wrapped in parentheses).
///
/// Salt's quirks are kept, because a site's nodegroups were written against them: a
/// top-level group with no nested group comes back as its own words, *not* parenthesised, so
/// `N@g or x` with `g: 'a and b'` reads `a and b or x`; a group of bare words with no
/// wildcard and no `X@` engine is a list (`L@a,b`), or a regex (`E@a,b`) if any word holds a
/// regex character.
pub fn expand(name: &str, nodegroups: &[(String, Value)]) -> Result<Vec<String>, TargetError> {
    expand_nested(name, nodegroups, &mut Vec::new(), true)
}

fn expand_nested(
    name: &str,
    nodegroups: &[(String, Value)],
    skip: &mut Vec<String>,
    first_call: bool,
) -> Result<Vec<String>, TargetError> {
    if skip.iter().any(|s| s == name) {
        return Err(TargetError::NestedNodegroup(name.to_owned()));
    }
    let definition = nodegroups
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
        .ok_or_else(|| TargetError::UnknownNodegroup(name.to_owned()))?;
    let words: Vec<String> = match definition {
        Value::String(_) => py::text(definition).split_whitespace().map(str::to_owned).collect(),
        Value::Array(items) => items.iter().map(py::text).collect(),
        other => {
            return Err(TargetError::BadNodegroup { name: name.to_owned(), definition: py::repr(other) });
        }
    };

    skip.push(name.to_owned());
    let mut expanded_nested = false;
    let mut ret = Vec::with_capacity(words.len() + 2);
    for word in &words {
        match word.strip_prefix("N@") {
            Some(inner) if !OPERATORS.contains(&word.as_str()) && !inner.is_empty() => {
                expanded_nested = true;
                ret.extend(expand_nested(inner, nodegroups, skip, false)?);
            }
            _ => ret.push(word.clone()),
        }
    }
    skip.pop();
    if !ret.is_empty() {
        ret.insert(0, "(".to_owned());
        ret.push(")".to_owned());
    }

    if let Some(joined) = as_list_or_regex(&words) {
        if !first_call || !expanded_nested {
            return Ok(vec![joined]);
        }
    }
    Ok(if expanded_nested || !first_call { ret } else { words })
}

/// Salt's `_nodegroup_regex`: bare words without operators, wildcards or engines are a list
/// of ids, or one regex if any holds a regex character.
fn as_list_or_regex(words: &[String]) -> Option<String> {
    if words.iter().any(|w| OPERATORS.contains(&w.as_str())) {
        return None;
    }
    let has_engine = |w: &str| {
        let b = w.as_bytes();
        b.len() >= 2 && b[0].is_ascii_uppercase() && b[1] == b'@'
    };
    if words.iter().any(|w| w.contains('*') || has_engine(w)) {
        return None;
    }
    let regexy = words.iter().any(|w| w.contains(['(', '[', '{', '\\', '?', '}', ']', ')']));
    Some(format!("{}@{}", if regexy { "E" } else { "L" }, words.join(",")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups() -> Vec<(String, Value)> {
        vec![
            ("dbs".into(), Value::from("G@roles:db and not db2")),
            ("pair".into(), Value::Array(vec![Value::from("app1"), Value::from("mail")])),
            ("rx".into(), Value::from("web[0-9] db?")),
            ("nested".into(), Value::from("N@dbs or N@pair")),
            ("loop".into(), Value::from("N@loop")),
        ]
    }

    fn words(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn expands_like_nodegroup_comp() {
        let g = groups();
        assert_eq!(expand("dbs", &g).unwrap(), words(&["G@roles:db", "and", "not", "db2"]));
        assert_eq!(expand("pair", &g).unwrap(), words(&["L@app1,mail"]));
        assert_eq!(expand("rx", &g).unwrap(), words(&["E@web[0-9],db?"]));
        assert_eq!(
            expand("nested", &g).unwrap(),
            words(&["(", "(", "G@roles:db", "and", "not", "db2", ")", "or", "L@app1,mail", ")"])
        );
        assert!(matches!(expand("loop", &g), Err(TargetError::NestedNodegroup(_))));
        assert!(matches!(expand("none", &g), Err(TargetError::UnknownNodegroup(_))));
    }
}
