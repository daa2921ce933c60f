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
//! Differences left: Unicode case folding of a few characters, and two bounds Python does not
//! have, because minions send patterns too: a pattern longer than [`MAX_PATTERN_BYTES`] is
//! refused, and a match that needs more than [`BACKTRACK_LIMIT`] backtracking steps (such as
//! `(a|a)+b`, which would keep Python busy for minutes) is given up: no match for
//! [`PyRegex::is_match`], [`Abandoned::Backtracking`] from [`PyRegex::try_match`].

use std::fmt;

use crate::Abandoned;

/// Backtracking steps one match may take before it is given up. A step costs about 45 ns, so
/// this is about half a millisecond; patterns written for real use take under a hundred steps
/// (fancy-regex hands everything without look-around or back-references to `regex`, which
/// does not backtrack at all).
pub const BACKTRACK_LIMIT: usize = 10_000;

/// Longest pattern compiled. Parsing and analysis are linear in the pattern, and `regex`'s
/// own size limit bounds the automaton, so this keeps compiling one pattern cheap; a long
/// alternation of ids belongs in a list target.
pub const MAX_PATTERN_BYTES: usize = 4096;

/// The most memory one compiled pattern may take (the `regex` crate's size limit, 10 MiB by
/// default). Compiling stops as soon as it is passed, so a short pattern that expands hugely
/// (`\w{4000}`, Unicode classes repeated) fails in a moment instead of taking ~0.1 s per
/// word of a target; patterns targets use are a few KiB compiled.
pub const COMPILED_BYTES_LIMIT: usize = 4 << 20;

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
        if pattern.len() > MAX_PATTERN_BYTES {
            return Err(RegexError {
                pattern: crate::shown(pattern),
                reason: format!("longer than halite's limit of {MAX_PATTERN_BYTES} bytes"),
            });
        }
        let error = |reason: String| RegexError { pattern: pattern.to_owned(), reason };
        let translated = translate(pattern).map_err(error)?;
        let wrapped = if anchored { format!(r"\A(?:{translated})") } else { format!("(?:{translated})") };
        let anchored = fancy_regex::RegexBuilder::new(&wrapped)
            .backtrack_limit(BACKTRACK_LIMIT)
            .delegate_size_limit(COMPILED_BYTES_LIMIT)
            .build()
            .map_err(|e| error(e.to_string()))?;
        Ok(PyRegex { pattern: pattern.to_owned(), anchored })
    }

    /// `re.match(pattern, text)` (or `re.search` when built with [`PyRegex::new_search`]) is
    /// not None. A match that exceeds the backtracking limit is no match.
    pub fn is_match(&self, text: &str) -> bool {
        self.try_match(text).unwrap_or(false)
    }

    /// [`PyRegex::is_match`], telling a match given up at [`BACKTRACK_LIMIT`] (or at the
    /// engine's bound on its backtracking stack) from no match, for callers that count them.
    pub fn try_match(&self, text: &str) -> Result<bool, Abandoned> {
        // Compiling caught every other error; at match time fancy-regex only fails on its
        // two runtime bounds.
        self.anchored.is_match(text).map_err(|_| Abandoned::Backtracking)
    }

    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// `m.groups()` of the first match: each group's text, `None` for a group that did not
    /// take part; `None` when nothing matches.
    pub fn groups(&self, text: &str) -> Option<Vec<Option<String>>> {
        let caps = self.anchored.captures(text).ok()??;
        Some((1..caps.len()).map(|i| caps.get(i).map(|m| m.as_str().to_owned())).collect())
    }

    /// `re.sub(pattern, repl, text)`: every match replaced, `repl` in Python's syntax
    /// (`\1`, `\g<1>`, `\g<name>`, `\n`, `\\`).
    pub fn replace_all(&self, text: &str, repl: &str) -> String {
        let mut out = String::new();
        let mut last = 0;
        let mut at = 0;
        while at <= text.len() {
            let Ok(Some(caps)) = self.anchored.captures_from_pos(text, at) else { break };
            let Some(whole) = caps.get(0) else { break };
            out.push_str(&text[last..whole.start()]);
            let group = |name: &str| {
                let m = match name.parse::<usize>() {
                    Ok(n) => caps.get(n),
                    Err(_) => caps.name(name),
                };
                m.map(|m| m.as_str())
            };
            expand_python_replacement(repl, group, &mut out);
            last = whole.end();
            at = if whole.end() == whole.start() {
                // An empty match: step over one character, as Python does.
                match text[whole.end()..].chars().next() {
                    Some(c) => {
                        out.push(c);
                        last = whole.end() + c.len_utf8();
                        last
                    }
                    None => break,
                }
            } else {
                whole.end()
            };
        }
        out.push_str(&text[last.min(text.len())..]);
        out
    }
}

/// Expands a Python replacement; `group` finds a group by number or name.
fn expand_python_replacement<'t>(repl: &str, group: impl Fn(&str) -> Option<&'t str>, out: &mut String) {
    let chars: Vec<char> = repl.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '\\' || i + 1 == chars.len() {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let next = chars[i + 1];
        if next.is_ascii_digit() {
            let mut j = i + 1;
            while j < chars.len() && j < i + 3 && chars[j].is_ascii_digit() {
                j += 1;
            }
            let n: usize = chars[i + 1..j].iter().collect::<String>().parse().unwrap_or(0);
            out.push_str(group(&n.to_string()).unwrap_or(""));
            i = j;
        } else if next == 'g' && chars.get(i + 2) == Some(&'<') {
            let close = chars[i + 3..].iter().position(|c| *c == '>').map(|p| i + 3 + p);
            let Some(close) = close else {
                out.push_str("\\g");
                i += 2;
                continue;
            };
            let name: String = chars[i + 3..close].iter().collect();
            out.push_str(group(&name).unwrap_or(""));
            i = close + 1;
        } else {
            match next {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                '\\' => out.push('\\'),
                other => {
                    out.push('\\');
                    out.push(other);
                }
            }
            i += 2;
        }
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

    #[test]
    fn groups_and_sub_like_python() {
        let re = PyRegex::new_search(r"(\w+)@(\w+)?").unwrap();
        assert_eq!(re.groups("mail: root@"), Some(vec![Some("root".into()), None]));
        assert_eq!(PyRegex::new(r"\d").unwrap().groups("a1"), None);
        let sub = PyRegex::new_search(r"(\d+)").unwrap();
        assert_eq!(sub.replace_all("a1b22", r"<\1>"), "a<1>b<22>");
        assert_eq!(sub.replace_all("a1", r"\g<1>$"), "a1$");
        assert_eq!(PyRegex::new_search("x*").unwrap().replace_all("ab", "-"), "-a-b-");
    }

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
    fn runaway_backtracking_is_given_up() {
        let evil = PyRegex::new(r"(a+)+\1b").expect("compiles");
        assert!(!evil.is_match(&"a".repeat(40)));
        // Patterns that keep Python busy for minutes against a long run of `a` that cannot
        // match. Run by fancy-regex's backtracking VM (they look around or refer back: `$`
        // is a look-ahead here), each is given up at the limit (in about a millisecond).
        let text = format!("{}!", "a".repeat(50_000));
        for pattern in ["(a|aa)+$", "(a|a)+(?=b)", "(.*a){20}(?=x)", "(a+)+$"] {
            let re = PyRegex::new(pattern).expect("compiles");
            assert_eq!(re.try_match(&text), Err(Abandoned::Backtracking), "{pattern}");
            assert!(!re.is_match(&text), "{pattern}");
        }
        // Without those, fancy-regex hands the pattern to `regex`, which does not backtrack:
        // an honest answer in linear time.
        let re = PyRegex::new("(a|a)+b").expect("compiles");
        assert_eq!(re.try_match(&text), Ok(false));
        assert_eq!(re.try_match(&format!("{}b", "a".repeat(50_000))), Ok(true));
    }

    #[test]
    fn long_patterns_are_refused_before_compiling() {
        let at_limit = "a".repeat(MAX_PATTERN_BYTES);
        assert!(PyRegex::new(&at_limit).expect("at the limit").is_match(&at_limit));
        let err = PyRegex::new(&"a".repeat(200_000)).expect_err("past the limit");
        assert!(err.reason.contains("4096 bytes"), "{err}");
        assert!(err.pattern.len() < 200, "the error abbreviates the pattern: {}", err.pattern.len());
    }
}

#[cfg(test)]
mod compiled_size_tests {
    use super::*;

    #[test]
    fn short_patterns_that_expand_hugely_are_refused() {
        let started = std::time::Instant::now();
        let err = PyRegex::new(r"\w{4000}").expect_err("past the compiled size limit");
        assert!(err.reason.contains("building NFA"), "{err}");
        eprintln!("refused in {:?}", started.elapsed());
        // What targets use still compiles.
        assert!(PyRegex::new(r"^(web|db|app)[0-9]+\.(production|staging)\.wpdn$").is_ok());
        assert!(PyRegex::new(r"\w{50}").is_ok());
    }
}
