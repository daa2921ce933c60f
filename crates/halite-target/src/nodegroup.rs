//! Nodegroups: names for compound targets, from the master config's `nodegroups`.

use halite_yaml::{py, Value};

use crate::{TargetError, MAX_DEPTH, MAX_WORDS};

pub(crate) const OPERATORS: [&str; 5] = ["and", "or", "not", "(", ")"];

/// Salt's `nodegroup_comp`: the words of the compound target that nodegroup `name` stands
/// for, with nested `N@` groups expanded in place (each wrapped in parentheses).
///
/// Salt's quirks are kept, because a site's nodegroups were written against them: a
/// top-level group with no nested group comes back as its own words, *not* parenthesised, so
/// `N@g or x` with `g: 'a and b'` reads `a and b or x`; a group of bare words with no
/// wildcard and no `X@` engine is a list (`L@a,b`), or a regex (`E@a,b`) if any word holds a
/// regex character.
///
/// The crate's compound limits hold here too: groups nested more than [`MAX_DEPTH`] deep, or
/// an expansion past [`MAX_WORDS`] words (groups naming a group twice double at each level),
/// is an error, as the compound target would be.
pub fn expand(name: &str, nodegroups: &[(String, Value)]) -> Result<Vec<String>, TargetError> {
    let mut expansion = Expansion { top: name, nodegroups, path: Vec::new(), out: Vec::new() };
    expansion.group(name, true)?;
    Ok(expansion.out)
}

/// One `expand`: the groups being expanded, outermost first, and the words so far.
struct Expansion<'a> {
    top: &'a str,
    nodegroups: &'a [(String, Value)],
    path: Vec<&'a str>,
    out: Vec<String>,
}

impl Expansion<'_> {
    fn group(&mut self, name: &str, first_call: bool) -> Result<(), TargetError> {
        if self.path.contains(&name) {
            return Err(TargetError::NestedNodegroup(name.to_owned()));
        }
        if self.path.len() >= MAX_DEPTH {
            return Err(self.too_large(format!("nodegroups nest deeper than halite's limit of {MAX_DEPTH} levels")));
        }
        let (name, definition) = self
            .nodegroups
            .iter()
            .find(|(n, _)| n == name)
            .map(|(n, v)| (n.as_str(), v))
            .ok_or_else(|| TargetError::UnknownNodegroup(name.to_owned()))?;
        let words: Vec<String> = match definition {
            Value::String(_) => py::text(definition).split_whitespace().map(str::to_owned).collect(),
            Value::Array(items) => items.iter().map(py::text).collect(),
            other => {
                return Err(TargetError::BadNodegroup { name: name.to_owned(), definition: py::repr(other) });
            }
        };
        // A list or regex group has no `N@` word (that is an engine), so it is one word
        // wherever it is.
        if let Some(joined) = as_list_or_regex(&words) {
            return self.push(joined);
        }
        // Salt wraps a group in parentheses unless it is the top one and nests none.
        let wrap = !first_call || words.iter().any(|w| nested_name(w).is_some());
        if wrap {
            self.push("(".to_owned())?;
        }
        self.path.push(name);
        for word in &words {
            match nested_name(word) {
                Some(inner) => self.group(inner, false)?,
                None => self.push(word.clone())?,
            }
        }
        self.path.pop();
        if wrap {
            self.push(")".to_owned())?;
        }
        Ok(())
    }

    fn push(&mut self, word: String) -> Result<(), TargetError> {
        if self.out.len() >= MAX_WORDS {
            return Err(self.too_large(format!("expands to more than halite's limit of {MAX_WORDS} words")));
        }
        self.out.push(word);
        Ok(())
    }

    fn too_large(&self, reason: String) -> TargetError {
        TargetError::Compound { expr: crate::shown(&format!("N@{}", self.top)), reason }
    }
}

/// The group a word of a definition names with `N@`, if it names one.
fn nested_name(word: &str) -> Option<&str> {
    word.strip_prefix("N@").filter(|inner| !inner.is_empty())
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
