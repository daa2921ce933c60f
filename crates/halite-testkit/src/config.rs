//! Salt daemon config files: the testkit's defaults plus a test's own YAML lines.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

/// Options rendered one per line as `key: <JSON>`. JSON is valid YAML flow syntax, and
/// quoting every string keeps YAML 1.1 from reading an id or role such as `on`, `no` or
/// `3006` as a bool or a number.
#[derive(Default)]
pub(crate) struct SaltConfig {
    options: Vec<(String, Value)>,
}

impl SaltConfig {
    pub(crate) fn set(&mut self, key: &str, value: impl Into<Value>) -> &mut Self {
        self.options.push((key.to_owned(), value.into()));
        self
    }

    /// The file text: defaults first, then `extra` verbatim. A default whose key an `extra`
    /// line sets at top level is left out, since Salt's YAML loader rejects a repeated key
    /// ("found conflicting ID") rather than letting the later one win.
    pub(crate) fn render<S: AsRef<str>>(&self, extra: &[S]) -> String {
        let overridden: Vec<&str> = extra.iter().filter_map(|l| top_level_key(l.as_ref())).collect();
        let mut text = String::new();
        for (key, value) in self.options.iter().filter(|(k, _)| !overridden.contains(&k.as_str())) {
            let _ = writeln!(text, "{key}: {value}");
        }
        for line in extra {
            text.push_str(line.as_ref());
            text.push('\n');
        }
        text
    }

    /// Writes the rendered config to `path`, creating its directory.
    pub(crate) fn write<S: AsRef<str>>(&self, path: &Path, extra: &[S]) {
        let dir = path.parent().expect("a config file path has a parent dir");
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        std::fs::write(path, self.render(extra)).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }
}

/// The key a raw YAML line sets at the top level of the document, if any.
fn top_level_key(line: &str) -> Option<&str> {
    if line.starts_with(|c: char| c.is_whitespace() || c == '#' || c == '-') {
        return None;
    }
    let (key, _) = line.split_once(':')?;
    Some(key.trim().trim_matches(|c| c == '"' || c == '\''))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_lines_replace_defaults_with_the_same_key_and_nothing_else() {
        let mut c = SaltConfig::default();
        c.set("id", "on").set("log_level", "info").set("grains", serde_json::json!({"roles": ["db"]}));
        let text = c.render(&["log_level: debug", "grains:", "  log_level: nested", "# id: comment"]);
        assert_eq!(
            text, "id: \"on\"\nlog_level: debug\ngrains:\n  log_level: nested\n# id: comment\n",
            "a top-level key in the extra lines must drop the default, nested or commented ones must not"
        );
    }
}
