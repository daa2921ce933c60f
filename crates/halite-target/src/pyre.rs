//! Python `re.match` on top of `fancy-regex`.
//!
//! Salt's pcre targets (`-E`, `E@`, `grain_pcre`, `pillar_pcre`) are Python regular
//! expressions. The `regex` crate alone cannot run all of them (no back-references or
//! look-around, which Python has), and reads a few constructs differently; `fancy-regex` adds
//! the backtracking features and delegates everything else to `regex`. What still differs is
//! rewritten before compiling:
//!
//! | Python | meaning in Python | rewritten as |
//! |---|---|---|
//! | `\Z` | end of text | `\z` (in `regex`, `\Z` is an error) |
//! | `$` (no `(?m)`) | end of text, or before a final `\n` | `(?=\n?\z)` (in `regex`, end of text only) |
//! | `{` not opening `{m}`, `{m,}`, `{,n}`, `{m,n}` | a literal `{` | `\{` (an error in `regex`) |
//! | `{,n}` | `{0,n}` | `{0,n}` |
//! | `[` inside a class | a literal `[` | `\[` (`regex` nests classes) |
//! | `&&`, `--`, `~~` inside a class | literal characters | escaped (`regex` set operations) |
//! | `(?P=name)` | back-reference to a named group | `\k<name>` |
//!
//! Differences left: Unicode case folding of a few characters, and the backtracking limit —
//! a pattern that would make Python backtrack for minutes fails here after
//! [`BACKTRACK_LIMIT`] steps and counts as no match, where Python would hang the master.

use std::fmt;

/// Backtracking steps one match may take before it is abandoned (as no match).
pub const BACKTRACK_LIMIT: usize = 1_000_000;

/// A compiled Python regular expression, matched as `re.match` does: anchored at the start of
/// the text only.
#[derive(Clone)]
pub struct PyRegex {
    pattern: String,
    anchored: fancy_regex::Regex,
}

impl fmt::Debug for PyRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PyRegex").field(&self.pattern).finish()
    }
}

/// A pattern Python would reject, or one the engine cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid regular expression {pattern:?}: {reason}")]
pub struct RegexError {
    pub pattern: String,
    pub reason: String,
}

impl PyRegex {
    /// Compiles `pattern` with Python's syntax.
    pub fn new(pattern: &str) -> Result<PyRegex, RegexError> {
        PyRegex::build(pattern, true)
    }

    /// For `re.search`: the pattern may match anywhere in the text.
    pub fn new_search(pattern: &str) -> Result<PyRegex, RegexError> {
        PyRegex::build(pattern, false)
    }

    fn build(pattern: &str, anchored: bool) -> Result<PyRegex, RegexError> {
        let error = |reason: String| RegexError { pattern: pattern.to_owned(), reason };
        let translated = translate(pattern).map_err(error)?;
        let wrapped = if anchored { format!(r"\A(?:{translated})") } else { format!("(?:{translated})") };
        let anchored = fancy_regex::RegexBuilder::new(&wrapped)
            .backtrack_limit(BACKTRACK_LIMIT)
            .build()
            .map_err(|e| error(e.to_string()))?;
        Ok(PyRegex { pattern: pattern.to_owned(), anchored })
    }

    /// `re.match(pattern, text)` (or `re.search` when built with [`PyRegex::new_search`]) is
    /// not None. A match that exceeds the backtracking limit is no match.
    pub fn is_match(&self, text: &str) -> bool {
        self.anchored.is_match(text).unwrap_or(false)
    }

    pub fn as_str(&self) -> &str {
        &self.pattern
    }
}

/// Letters Python's `re` accepts after a backslash; any other ASCII letter is an error there
/// ("bad escape"), even where `regex` would know it (`\z`, `\p{..}`, `\h`).
const PYTHON_ESCAPES: &str = "abBdDfnNrsStuUvwWxAZ";

/// Rewrites the Python-only constructs of the module table into `fancy-regex` syntax.
fn translate(pattern: &str) -> Result<String, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let multiline = has_inline_flag(pattern, 'm');
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut i = 0;
    let mut in_class = false;
    // Position of the first character of the current class body, where `]` is literal.
    let mut class_start = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' {
            match chars.get(i + 1) {
                Some('Z') if !in_class => out.push_str(r"\z"),
                Some(&next) if next.is_ascii_alphabetic() && !PYTHON_ESCAPES.contains(next) => {
                    return Err(format!("bad escape \\{next} at position {i}"));
                }
                Some(&next) => {
                    out.push('\\');
                    out.push(next);
                }
                None => out.push('\\'),
            }
            i += 2;
            continue;
        }
        if in_class {
            match c {
                ']' if i != class_start => in_class = false,
                '[' => {
                    out.push_str(r"\[");
                    i += 1;
                    continue;
                }
                '&' | '-' | '~' if chars.get(i + 1) == Some(&c) => {
                    out.push(c);
                    out.push('\\');
                    out.push(c);
                    i += 2;
                    continue;
                }
                _ => {}
            }
            out.push(c);
            i += 1;
            continue;
        }
        match c {
            '[' => {
                in_class = true;
                out.push('[');
                i += 1;
                if chars.get(i) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                class_start = i;
                continue;
            }
            '$' if !multiline => out.push_str(r"(?=\n?\z)"),
            '{' => match quantifier(&chars[i..]) {
                Some((text, len)) => {
                    out.push_str(&text);
                    i += len;
                    continue;
                }
                None => out.push_str(r"\{"),
            },
            '}' => out.push_str(r"\}"),
            '(' if chars[i..].starts_with(&['(', '?', 'P', '=']) => {
                if let Some(end) = chars[i..].iter().position(|&c| c == ')') {
                    let name: String = chars[i + 4..i + end].iter().collect();
                    out.push_str(&format!(r"\k<{name}>"));
                    i += end + 1;
                    continue;
                }
                out.push(c);
            }
            c => out.push(c),
        }
        i += 1;
    }
    Ok(out)
}

/// A Python repetition `{m}`, `{m,}`, `{,n}` or `{m,n}` at the start of `chars`, as
/// `fancy-regex` text and the number of characters it spans.
fn quantifier(chars: &[char]) -> Option<(String, usize)> {
    let end = chars.iter().position(|&c| c == '}')?;
    let body: String = chars[1..end].iter().collect();
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    let text = match body.split_once(',') {
        None if !body.is_empty() && digits(&body) => format!("{{{body}}}"),
        Some((lo, hi)) if digits(lo) && digits(hi) && !(lo.is_empty() && hi.is_empty()) => {
            let lo = if lo.is_empty() { "0" } else { lo };
            format!("{{{lo},{hi}}}")
        }
        _ => return None,
    };
    Some((text, end + 1))
}

/// Whether a `(?flags)` or `(?flags:...)` group turns on `flag` anywhere in the pattern.
fn has_inline_flag(pattern: &str, flag: char) -> bool {
    pattern
        .match_indices("(?")
        .any(|(at, _)| pattern[at + 2..].chars().take_while(|c| c.is_ascii_alphabetic()).any(|c| c == flag))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, text: &str) -> bool {
        PyRegex::new(pattern).unwrap_or_else(|e| panic!("{e}")).is_match(text)
    }

    #[test]
    fn match_is_anchored_at_the_start_only() {
        assert!(m("web", "web1"));
        assert!(!m("web", "xweb"));
        assert!(m("a|b", "bcd"));
        assert!(m(r"web\d+$", "web12"));
        assert!(m(r"web\d+$", "web12\n"));
        assert!(!m(r"web\d+\Z", "web12\n"));
        assert!(m(r"(?m)a$", "a\nb"));
    }

    #[test]
    fn python_only_syntax_is_rewritten() {
        assert!(m(r"(a)\1", "aa"));
        assert!(m(r"(?P<x>a)(?P=x)", "aa"));
        assert!(m(r"a{", "a{"));
        assert!(m(r"a{x}", "a{x}"));
        assert!(m(r"a{,2}b", "aab"));
        assert!(m(r"[[]", "["));
        assert!(m(r"[a&&b]", "&"));
        assert!(m(r"[]a]", "]"));
        assert!(m(r"x(?=y)", "xy"));
        assert!(!m(r"x(?!y)", "xy"));
    }

    #[test]
    fn search_matches_anywhere() {
        let re = PyRegex::new_search(r"\.swp$").unwrap();
        assert!(re.is_match("dir/file.swp"));
        assert!(!re.is_match("file.swpx"));
    }

    #[test]
    fn python_errors_are_errors() {
        assert!(PyRegex::new("(").is_err());
        assert!(PyRegex::new("*a").is_err());
        assert!(PyRegex::new(r"a\z").is_err());
    }

    #[test]
    fn runaway_backtracking_is_no_match() {
        let evil = PyRegex::new(r"(a+)+\1b").expect("compiles");
        assert!(!evil.is_match(&"a".repeat(40)));
    }
}
