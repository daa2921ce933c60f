//! Salt's targeting, as a pure library: which minions a target names.
//!
//! Owns: the semantics of every targeting form Salt has — glob (Python's `fnmatch`), pcre
//! (Python's `re.match`, see [`pyre`]), list, grain and pillar with nested keys and a custom
//! delimiter ([`subdict`]), grain_pcre, pillar_pcre, pillar_exact, ipcidr, compound
//! (`G@ E@ P@ L@ I@ J@ S@ N@ R@`, `and`/`or`/`not`, parentheses) and nodegroups
//! ([`nodegroup`]) — and Salt's `CkMinions.check_minions` over them ([`check_minions`]), the
//! master's "expected minions". Also Salt's `expr_match`, the "glob, then anchored regex" rule
//! of signing files and whitelists.
//!
//! Must not: read files, open sockets or know where minion data is stored. Callers hand in
//! accepted ids and cached data through [`MinionIndex`]; a list of ids comes out.
//!
//! # Limits
//!
//! Minions send targets too (`_mine_get`, peer publish), so what one target may cost the
//! master is bounded. Each bound is far past what a target written for real use needs; Salt
//! has none of them except, in effect, the first.
//!
//! | bound | value | what it bounds, and why that value |
//! |---|---|---|
//! | [`MAX_DEPTH`] | 199 | nesting of `(`, `not` and nested nodegroups in a compound target, which the evaluator recurses over. Salt `eval`s the joined expression; Python's tokenizer refuses more than 200 nested brackets and the innermost operand is itself one (a set literal), so 199 is the deepest target Salt can evaluate either. |
//! | [`MAX_WORDS`] | 1000 | words of a compound target, nodegroups expanded. Every term is a pass over all minions; a real target has a few dozen words, and a long list of ids is one `L@a,b,c` word. |
//! | [`pyre::MAX_PATTERN_BYTES`] | 4096 | a regular expression's length, so that compiling one stays cheap. |
//! | [`pyre::COMPILED_BYTES_LIMIT`] | 4 MiB | a compiled regular expression's size: a short pattern that expands (`\w{4000}`) fails in ~30 ms instead of compiling for ~110 ms; `\w{50}` still fits. |
//! | [`pyre::BACKTRACK_LIMIT`] | 10,000 | backtracking steps of one regex match (about half a millisecond); patterns written for real use take under a hundred. |
//! | [`subdict::MAX_EXPR_BYTES`] | 4096 | a grain or pillar expression's length (its value part is compiled as a glob or regex). |
//! | [`subdict::MAX_DELIMITERS`] | 64 | delimiters in a grain or pillar expression: Salt tries a key at every delimiter, so they bound the keys and value patterns tried. A MAC or IPv6 address has at most 7. |
//! | [`subdict::MAX_STEPS`] | 10,000 | lookups and comparisons matching one grain or pillar expression against one minion (Salt's search recurses, and `*:` prefixes multiply it). |
//!
//! A target past the first five names nobody, with an error naming the limit
//! ([`TargetError::Compound`], [`TargetError::Regex`], [`TargetError::Subdict`]). The last two
//! are per minion: a minion whose match needs more work is not matched and is counted in
//! [`Matched::abandoned`] ([`Abandoned`] says which bound), so the caller can report it once
//! per target; nothing here logs.

mod check;
mod glob;
pub mod nodegroup;
pub mod pyre;
pub mod subdict;

pub use check::{check_minions, matches_one, CachedMinion, Expr, Matched, MinionIndex, TargetType};
pub use glob::fnmatch;

/// Deepest nesting of `(`, `not` and nested nodegroups in a compound target (see the crate's
/// limits).
pub const MAX_DEPTH: usize = 199;

/// Most words in a compound target, nodegroups expanded (see the crate's limits).
pub const MAX_WORDS: usize = 1000;

/// Why a target names no minion, where Salt would log an error and match nothing.
///
/// Errors show a long target abbreviated (its start and its length), so an error about a
/// hostile multi-megabyte target does not carry it into a log line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error(transparent)]
    Regex(#[from] pyre::RegexError),
    #[error(transparent)]
    Subdict(#[from] subdict::ExprError),
    #[error("invalid IP/CIDR target {0:?}")]
    Ipcidr(String),
    #[error("invalid compound target {expr:?}: {reason}")]
    Compound { expr: String, reason: String },
    #[error("unknown nodegroup {0:?}")]
    UnknownNodegroup(String),
    #[error("nodegroup {0:?} includes itself")]
    NestedNodegroup(String),
    #[error("nodegroup {name:?} is neither a string nor a list: {definition}")]
    BadNodegroup { name: String, definition: String },
    #[error("a {tgt_type} target must be a string, not the list {words:?}")]
    NotText { tgt_type: &'static str, words: Vec<String> },
    #[error("range targeting needs a range server (seco.range), which halite does not support")]
    Range,
}

/// Why matching one minion was given up: it needed more work than halite allows one minion
/// (see the crate's limits). The minion counts as not matched and [`Matched::abandoned`]
/// counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Abandoned {
    #[error("a regular expression needed more than {} backtracking steps", pyre::BACKTRACK_LIMIT)]
    Backtracking,
    #[error("a grain or pillar expression needed more than {} steps", subdict::MAX_STEPS)]
    Steps,
}

/// Characters of a target an error shows before abbreviating it.
const SHOWN_CHARS: usize = 100;

/// `text` as an error shows it: whole when short, else its start and its length.
pub fn shown(text: &str) -> String {
    match text.char_indices().nth(SHOWN_CHARS) {
        None => text.to_owned(),
        Some((cut, _)) => format!("{}... ({} bytes)", &text[..cut], text.len()),
    }
}

/// Salt's `salt.utils.stringutils.expr_match`: `expr` matches `line` as an fnmatch glob, or as
/// the regular expression `\A{expr}\Z` applied with Python's `re.match`.
///
/// Salt splices `expr` into the anchors without a group, so `a|b` means `\Aa|b\Z` and matches
/// every line starting with `a`; that is reproduced rather than "fixed", because signing files
/// written for Salt rely on whatever it does. An expression Python rejects counts as no match,
/// as `re.error` does in Salt.
pub fn expr_match(line: &str, expr: &str) -> bool {
    if fnmatch(line, expr) {
        return true;
    }
    pyre::PyRegex::new(&format!(r"\A{expr}\Z")).is_ok_and(|re| re.is_match(line))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expr_match_is_glob_then_anchored_regex() {
        assert!(expr_match("web1", "web*"));
        assert!(expr_match("web1", "web1"));
        assert!(expr_match("web12", r"web\d+"));
        assert!(!expr_match("xweb12", r"web\d+"));
        assert!(!expr_match("web12x", r"web\d+"));
        // Salt's unparenthesised splice: `\Aa|b\Z`.
        assert!(expr_match("abc", "a|b"));
        assert!(!expr_match("cab", "a|b"));
        // Back-references are Python syntax too.
        assert!(expr_match("aa", r"(a)\1"));
        assert!(!expr_match("aa", r"(a"));
    }

    #[test]
    fn long_text_is_shown_abbreviated() {
        assert_eq!(shown("web1"), "web1");
        let long = "é".repeat(1000);
        let s = shown(&long);
        assert!(s.starts_with(&"é".repeat(SHOWN_CHARS)) && s.ends_with("... (2000 bytes)"), "{s}");
    }
}
