//! Salt's minion matching rules, as a pure library.
//!
//! Owns: the semantics of the patterns Salt matches minion ids (and later grains and pillar)
//! against — Python's `fnmatch.fnmatch` ([`fnmatch`]) and Salt's `expr_match` ([`expr_match`]),
//! the "glob, then anchored regex" rule of signing files and whitelists. The full targeting
//! engine (grain, pillar, compound, nodegroup, ipcidr) grows here.
//!
//! Must not: read files, open sockets or know where minion data is stored. Callers hand in ids
//! and data; a yes/no or a list of ids comes out.

mod glob;

pub use glob::fnmatch;

/// Salt's `salt.utils.stringutils.expr_match`: `expr` matches `line` as an fnmatch glob, or as
/// the regular expression `\A{expr}\Z` applied with Python's `re.match`.
///
/// Salt splices `expr` into the anchors without a group, so `a|b` means `\Aa|b\Z` and matches
/// every line starting with `a`; that is reproduced rather than "fixed", because signing files
/// written for Salt rely on whatever it does. An expression the Rust regex engine rejects
/// (back-references, look-around) counts as no match, as Python's `re.error` does in Salt.
pub fn expr_match(line: &str, expr: &str) -> bool {
    if fnmatch(line, expr) {
        return true;
    }
    // `\A(?:...)` reproduces re.match's implicit anchoring at the start of the whole pattern.
    match regex::Regex::new(&format!(r"\A(?:\A{expr}\z)")) {
        Ok(re) => re.is_match(line),
        Err(_) => false,
    }
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
        // A pattern Rust cannot compile is no match, as re.error is in Salt.
        assert!(!expr_match("aa", r"(a)\1"));
    }
}
