//! Salt's `yamlify_arg`: how a command-line argument (or a targeting key) becomes a value.

use rmpv::Value;

/// Reads one command-line argument as Salt's `salt.utils.args.yamlify_arg` does: YAML where
/// that gives a number, bool, None or a bracketed list/dict, the text unchanged otherwise.
///
/// Kept as text: blank text, `---` and `...`; digits joined by underscores (YAML 1.1 would
/// read `1_000` as 1000); anything holding a tab, CR or LF; a mapping or sequence not
/// written in flow style (`a: b` stays the string `a: b`); text whose `#` would start a
/// YAML comment unless the result is not a string; `|` and `!`; types the CLI does not pass
/// on (binary, sets, ordered maps); and anything that fails to load.
pub fn yamlify_arg(arg: &str) -> Value {
    let original = || Value::from(arg);
    let stripped = arg.trim_matches(char::is_whitespace);
    if matches!(stripped, "" | "---" | "...") {
        return original();
    }
    if arg.contains('_') && stripped.chars().all(|c| c.is_ascii_digit() || c == '_') {
        return original();
    }
    if arg.contains(['\t', '\r', '\n']) {
        return original();
    }
    if arg.contains('#') {
        return match crate::load(arg) {
            Ok(Value::String(_) | Value::Nil) | Err(_) => original(),
            Ok(value) => value,
        };
    }
    let loaded = if arg == "None" { Ok(Value::Nil) } else { crate::load(arg) };
    match loaded {
        Err(_) => original(),
        Ok(Value::Map(_)) if !arg.starts_with('{') || is_set(arg) => original(),
        Ok(Value::Array(_)) if !arg.starts_with('[') => original(),
        Ok(Value::String(s)) if s.as_bytes().is_empty() && matches!(arg, "|" | "!") => original(),
        Ok(Value::Nil) if arg == "!" || stripped.starts_with('#') => original(),
        Ok(Value::Binary(_) | Value::Ext(..)) => original(),
        Ok(value) => value,
    }
}

/// A `!!set` loads as a mapping here but as a Python set in Salt, which yamlify_arg refuses.
fn is_set(arg: &str) -> bool {
    arg.contains("!!set") || arg.contains("tag:yaml.org,2002:set")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_arguments_read_as_salt_reads_them() {
        let s = |t: &str| Value::from(t);
        assert_eq!(yamlify_arg("1"), Value::from(1));
        assert_eq!(yamlify_arg("1_000"), s("1_000"));
        assert_eq!(yamlify_arg("yes"), Value::Boolean(true));
        assert_eq!(yamlify_arg("None"), Value::Nil);
        assert_eq!(yamlify_arg("null"), Value::Nil);
        assert_eq!(yamlify_arg("a: b"), s("a: b"));
        assert_eq!(yamlify_arg("{a: b}"), Value::Map(vec![(s("a"), s("b"))]));
        assert_eq!(yamlify_arg("- a"), s("- a"));
        assert_eq!(yamlify_arg("[1, x]"), Value::Array(vec![Value::from(1), s("x")]));
        assert_eq!(yamlify_arg("a #b"), s("a #b"));
        assert_eq!(yamlify_arg("#"), s("#"));
        assert_eq!(yamlify_arg("12 # n"), Value::from(12));
        assert_eq!(yamlify_arg("!"), s("!"));
        assert_eq!(yamlify_arg("|"), s("|"));
        assert_eq!(yamlify_arg("{broken"), s("{broken"));
        assert_eq!(yamlify_arg("a\tb"), s("a\tb"));
        assert_eq!(yamlify_arg(" "), s(" "));
        assert_eq!(yamlify_arg("1.5"), Value::F64(1.5));
        assert_eq!(yamlify_arg("0644"), Value::from(644));
    }
}
