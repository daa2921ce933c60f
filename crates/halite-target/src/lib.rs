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

mod check;
mod glob;
pub mod nodegroup;
pub mod pyre;
pub mod subdict;

pub use check::{check_minions, matches_one, CachedMinion, Expr, Matched, MinionIndex, TargetType};
pub use glob::fnmatch;

/// Why a target names no minion, where Salt would log an error and match nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error(transparent)]
    Regex(#[from] pyre::RegexError),
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
}
