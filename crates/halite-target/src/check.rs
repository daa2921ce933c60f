//! Which accepted minions a target names: Salt's `CkMinions.check_minions`, the master's
//! "expected minions" of a job.

use std::collections::{BTreeSet, HashSet};
use std::net::IpAddr;

use halite_yaml::{py, Value};
use ipnet::IpNet;

use crate::nodegroup::{self, OPERATORS};
use crate::pyre::PyRegex;
use crate::subdict::{SubdictMatcher, ValueMatch, DEFAULT_DELIMITER};
use crate::{fnmatch, TargetError};

/// Salt's `tgt_type` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetType {
    Glob,
    Pcre,
    List,
    Grain,
    GrainPcre,
    Pillar,
    PillarPcre,
    PillarExact,
    Ipcidr,
    Compound,
    CompoundPillarExact,
    Nodegroup,
    Range,
}

impl TargetType {
    pub const ALL: [TargetType; 13] = [
        TargetType::Glob,
        TargetType::Pcre,
        TargetType::List,
        TargetType::Grain,
        TargetType::GrainPcre,
        TargetType::Pillar,
        TargetType::PillarPcre,
        TargetType::PillarExact,
        TargetType::Ipcidr,
        TargetType::Compound,
        TargetType::CompoundPillarExact,
        TargetType::Nodegroup,
        TargetType::Range,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TargetType::Glob => "glob",
            TargetType::Pcre => "pcre",
            TargetType::List => "list",
            TargetType::Grain => "grain",
            TargetType::GrainPcre => "grain_pcre",
            TargetType::Pillar => "pillar",
            TargetType::PillarPcre => "pillar_pcre",
            TargetType::PillarExact => "pillar_exact",
            TargetType::Ipcidr => "ipcidr",
            TargetType::Compound => "compound",
            TargetType::CompoundPillarExact => "compound_pillar_exact",
            TargetType::Nodegroup => "nodegroup",
            TargetType::Range => "range",
        }
    }

    pub fn from_name(name: &str) -> Option<TargetType> {
        TargetType::ALL.into_iter().find(|t| t.name() == name)
    }
}

/// A target as a publish load carries it: text, or a list of words (`-L` given a list, or a
/// nodegroup the client already expanded into compound words).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    Text(String),
    Words(Vec<String>),
}

impl Expr {
    /// The load's `tgt`: a string, a list of strings, or anything else as Python's `str()`.
    pub fn from_value(tgt: &Value) -> Expr {
        match tgt {
            Value::Array(items) => Expr::Words(items.iter().map(py::text).collect()),
            Value::Nil => Expr::Text(String::new()),
            other => Expr::Text(py::text(other)),
        }
    }

    fn text(&self, tgt_type: TargetType) -> Result<&str, TargetError> {
        match self {
            Expr::Text(t) => Ok(t),
            Expr::Words(w) => Err(TargetError::NotText { tgt_type: tgt_type.name(), words: w.clone() }),
        }
    }
}

/// One minion's entry in the minion data cache: what it last reported through `_pillar`.
#[derive(Debug, Clone, Copy, Default)]
pub struct CachedMinion<'a> {
    pub grains: Option<&'a Value>,
    pub pillar: Option<&'a Value>,
}

/// What targeting reads: the accepted keys and the minion data cache.
pub trait MinionIndex {
    /// Ids of the accepted keys, in any order.
    fn accepted(&self) -> Vec<String>;
    /// The cache entry of `id`, `None` when the minion has never reported data.
    fn cached(&self, id: &str) -> Option<CachedMinion<'_>>;
}

/// The minions a target names, in Salt's order (accepted ids sorted ignoring case; list
/// targets in the order listed), and the ids a list named that have no accepted key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Matched {
    pub minions: Vec<String>,
    pub missing: Vec<String>,
}

/// `CkMinions.check_minions(expr, tgt_type, delimiter, greedy=True)`.
///
/// Grain and pillar forms only name minions whose cached data matches; an accepted minion
/// with no cache entry is not expected (Salt 3006.30 and 3008.5, #68976; 3007.8 still
/// expected every such minion). `ipcidr` keeps such minions, as every Salt release does.
/// Where Salt logs an error and returns no minions, this returns the error.
pub fn check_minions(
    index: &impl MinionIndex,
    expr: &Expr,
    tgt_type: TargetType,
    delimiter: &str,
    nodegroups: &[(String, Value)],
) -> Result<Matched, TargetError> {
    let mut accepted = index.accepted();
    // Salt lists the pki dir with `sorted_ignorecase`; the stable sort keeps ids that differ
    // only in case in a fixed order.
    accepted.sort_by_cached_key(|id| id.to_lowercase());
    let ck = Checker { index, accepted, nodegroups };
    let delimiter = if delimiter.is_empty() { DEFAULT_DELIMITER } else { delimiter };
    let set = match tgt_type {
        TargetType::List => return Ok(ck.list(expr, false)),
        TargetType::Compound | TargetType::CompoundPillarExact => {
            let words = match expr {
                Expr::Text(t) => t.split_whitespace().map(str::to_owned).collect(),
                Expr::Words(w) => w.clone(),
            };
            return ck.compound(words, tgt_type == TargetType::CompoundPillarExact);
        }
        TargetType::Nodegroup => {
            return ck.compound(nodegroup::expand(expr.text(tgt_type)?, nodegroups)?, false);
        }
        TargetType::Glob => ck.glob(expr.text(tgt_type)?),
        TargetType::Pcre => ck.pcre(expr.text(tgt_type)?)?,
        TargetType::Grain => ck.cached(expr.text(tgt_type)?, delimiter, Bank::Grains, ValueMatch::Glob),
        TargetType::GrainPcre => ck.cached(expr.text(tgt_type)?, delimiter, Bank::Grains, ValueMatch::Regex),
        TargetType::Pillar => ck.cached(expr.text(tgt_type)?, delimiter, Bank::Pillar, ValueMatch::Glob),
        TargetType::PillarPcre => ck.cached(expr.text(tgt_type)?, delimiter, Bank::Pillar, ValueMatch::Regex),
        TargetType::PillarExact => ck.cached(expr.text(tgt_type)?, delimiter, Bank::Pillar, ValueMatch::Exact),
        TargetType::Ipcidr => ck.ipcidr(expr.text(tgt_type)?)?,
        TargetType::Range => return Err(TargetError::Range),
    };
    Ok(Matched { minions: ck.ordered(&set), missing: Vec::new() })
}

/// Whether the one minion `id` (with its grains and pillar) is named by a target: what a
/// minion decides for itself on a publish, and what a pillar top file decides for the minion
/// whose pillar compiles.
pub fn matches_one(
    id: &str,
    data: CachedMinion<'_>,
    expr: &Expr,
    tgt_type: TargetType,
    delimiter: &str,
    nodegroups: &[(String, Value)],
) -> Result<bool, TargetError> {
    struct One<'a> {
        id: &'a str,
        data: CachedMinion<'a>,
    }
    impl MinionIndex for One<'_> {
        fn accepted(&self) -> Vec<String> {
            vec![self.id.to_owned()]
        }
        fn cached(&self, id: &str) -> Option<CachedMinion<'_>> {
            (id == self.id).then_some(self.data)
        }
    }
    let matched = check_minions(&One { id, data }, expr, tgt_type, delimiter, nodegroups)?;
    Ok(matched.minions.iter().any(|m| m == id))
}

#[derive(Clone, Copy)]
enum Bank {
    Grains,
    Pillar,
}

struct Checker<'a, I> {
    index: &'a I,
    accepted: Vec<String>,
    nodegroups: &'a [(String, Value)],
}

type IdSet = BTreeSet<String>;

impl<I: MinionIndex> Checker<'_, I> {
    fn ordered(&self, set: &IdSet) -> Vec<String> {
        self.accepted.iter().filter(|id| set.contains(*id)).cloned().collect()
    }

    fn all(&self) -> IdSet {
        self.accepted.iter().cloned().collect()
    }

    fn glob(&self, pattern: &str) -> IdSet {
        self.accepted.iter().filter(|id| fnmatch(id, pattern)).cloned().collect()
    }

    fn pcre(&self, pattern: &str) -> Result<IdSet, TargetError> {
        let re = PyRegex::new(pattern)?;
        Ok(self.accepted.iter().filter(|id| re.is_match(id)).cloned().collect())
    }

    /// Salt's `_check_list_minions`: listed ids with an accepted key, in the order listed
    /// (each once), and the others as missing unless `ignore_missing`.
    fn list(&self, expr: &Expr, ignore_missing: bool) -> Matched {
        let listed: Vec<String> = match expr {
            Expr::Text(t) => t.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect(),
            Expr::Words(w) => w.clone(),
        };
        let accepted: HashSet<&str> = self.accepted.iter().map(String::as_str).collect();
        let mut seen = HashSet::new();
        let mut out = Matched::default();
        for id in listed {
            if !seen.insert(id.clone()) {
                continue;
            }
            if accepted.contains(id.as_str()) {
                out.minions.push(id);
            } else if !ignore_missing {
                out.missing.push(id);
            }
        }
        out
    }

    fn cached(&self, expr: &str, delimiter: &str, bank: Bank, mode: ValueMatch) -> IdSet {
        let matcher = SubdictMatcher::new(expr, delimiter, mode);
        self.accepted
            .iter()
            .filter(|id| {
                let data = self.index.cached(id).and_then(|m| match bank {
                    Bank::Grains => m.grains,
                    Bank::Pillar => m.pillar,
                });
                data.is_some_and(|d| matcher.matches(d))
            })
            .cloned()
            .collect()
    }

    /// Salt's `_check_ipcidr_minions`: an address must be listed in the minion's `ipv4` (or
    /// `ipv6`) grain, a network must contain one of them. Python's `ip_network` is strict: a
    /// network with host bits set is not a valid target.
    fn ipcidr(&self, expr: &str) -> Result<IdSet, TargetError> {
        enum Want {
            Addr(IpAddr),
            Net(IpNet),
        }
        let want = if let Ok(addr) = expr.parse::<IpAddr>() {
            Want::Addr(addr)
        } else {
            match expr.parse::<IpNet>() {
                Ok(net) if net.trunc() == net => Want::Net(net),
                _ => return Err(TargetError::Ipcidr(expr.to_owned())),
            }
        };
        let proto = match &want {
            Want::Addr(IpAddr::V4(_)) | Want::Net(IpNet::V4(_)) => "ipv4",
            _ => "ipv6",
        };
        let grain_addrs = |grains: &Value| -> Vec<String> {
            match grains.as_map().and_then(|m| m.iter().find(|(k, _)| k.as_str() == Some(proto))) {
                Some((_, Value::Array(items))) => items.iter().map(py::text).collect(),
                Some((_, other)) => vec![py::text(other)],
                None => Vec::new(),
            }
        };
        Ok(self
            .accepted
            .iter()
            .filter(|id| {
                let Some(cached) = self.index.cached(id) else {
                    // Greedy, as in every Salt release: no data yet, still expected.
                    return true;
                };
                let Some(grains) = cached.grains else { return false };
                let addrs = grain_addrs(grains);
                match &want {
                    Want::Addr(addr) => addrs.iter().any(|a| *a == addr.to_string()),
                    Want::Net(net) => addrs.iter().filter_map(|a| a.parse::<IpAddr>().ok()).any(|a| net.contains(&a)),
                }
            })
            .cloned()
            .collect())
    }

    /// Salt's `_check_compound_minions`: each term becomes the set of minions it names, the
    /// words `and`/`or`/`not` become `&`/`|`/`(ALL - ...)`, and the result is evaluated with
    /// Python's precedence (`-` over `&` over `|`).
    fn compound(&self, mut words: Vec<String>, pillar_exact: bool) -> Result<Matched, TargetError> {
        let original = words.join(" ");
        let fail = |reason: &str| TargetError::Compound { expr: original.clone(), reason: reason.to_owned() };
        let mut tokens: Vec<Tok> = Vec::new();
        let mut open: Vec<Open> = Vec::new();
        let mut missing = Vec::new();
        words.reverse();
        while let Some(word) = words.pop() {
            if OPERATORS.contains(&word.as_str()) {
                match (tokens.last(), word.as_str()) {
                    (Some(Tok::LParen), "and" | "or") => return Err(fail("`and`/`or` right after `(`")),
                    (None, "and" | "or" | ")") => return Err(fail("expression begins with a binary operator")),
                    (last, "not") => {
                        if last.is_some() && !matches!(last, Some(Tok::And | Tok::Or | Tok::LParen)) {
                            tokens.push(Tok::And);
                        }
                        tokens.extend([Tok::LParen, Tok::Set(self.all()), Tok::Minus]);
                        open.push(Open::Not);
                    }
                    (_, "and") => tokens.push(Tok::And),
                    (_, "or") => tokens.push(Tok::Or),
                    (_, "(") => {
                        tokens.push(Tok::LParen);
                        open.push(Open::Paren);
                    }
                    _ => {
                        if open.pop() != Some(Open::Paren) {
                            return Err(fail("unexpected `)`"));
                        }
                        tokens.push(Tok::RParen);
                        close_not(&mut tokens, &mut open);
                    }
                }
                continue;
            }
            let term = parse_term(&word);
            let set = match term.engine {
                Some('N') => {
                    let mut expanded = nodegroup::expand(term.pattern, self.nodegroups)?;
                    expanded.reverse();
                    words.extend(expanded);
                    continue;
                }
                Some(engine) => {
                    let delimiter = term.delimiter.unwrap_or(DEFAULT_DELIMITER);
                    let pillar_mode = if pillar_exact { ValueMatch::Exact } else { ValueMatch::Glob };
                    match engine {
                        'G' => self.cached(term.pattern, delimiter, Bank::Grains, ValueMatch::Glob),
                        'P' => self.cached(term.pattern, delimiter, Bank::Grains, ValueMatch::Regex),
                        'I' => self.cached(term.pattern, delimiter, Bank::Pillar, pillar_mode),
                        'J' if pillar_exact => self.cached(term.pattern, delimiter, Bank::Pillar, ValueMatch::Exact),
                        'J' => self.cached(term.pattern, delimiter, Bank::Pillar, ValueMatch::Regex),
                        'L' => {
                            // A list under `not` names ids to leave out; absent ones are fine.
                            let after_not = matches!(tokens.last(), Some(Tok::Minus));
                            let listed = self.list(&Expr::Text(term.pattern.to_owned()), after_not);
                            missing.extend(listed.missing);
                            listed.minions.into_iter().collect()
                        }
                        'S' => self.ipcidr(term.pattern)?,
                        'E' => self.pcre(term.pattern)?,
                        // `R@` (range): Salt's master calls a helper that cannot take the
                        // term's arguments and matches nothing; there is no range server here.
                        _ => return Err(TargetError::Range),
                    }
                }
                None => self.glob(term.pattern),
            };
            tokens.push(Tok::Set(set));
            close_not(&mut tokens, &mut open);
        }
        tokens.extend(open.iter().map(|_| Tok::RParen));
        let set = evaluate(&tokens).ok_or_else(|| fail("not a valid expression"))?;
        Ok(Matched { minions: self.ordered(&set), missing })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Paren,
    Not,
}

#[derive(Debug, Clone)]
enum Tok {
    Set(IdSet),
    And,
    Or,
    Minus,
    LParen,
    RParen,
}

/// After a complete operand, a pending `not` ends: its `(ALL - ...)` closes.
fn close_not(tokens: &mut Vec<Tok>, open: &mut Vec<Open>) {
    if open.last() == Some(&Open::Not) {
        tokens.push(Tok::RParen);
        open.pop();
    }
}

/// One word of a compound target, split as Salt's `TARGET_REX` splits it: an optional
/// engine letter, an optional one-character delimiter (grain and pillar engines only), `@`,
/// and the pattern. A word that does not fit is a glob.
struct Term<'w> {
    engine: Option<char>,
    delimiter: Option<&'w str>,
    pattern: &'w str,
}

fn parse_term(word: &str) -> Term<'_> {
    let glob = Term { engine: None, delimiter: None, pattern: word };
    let mut chars = word.char_indices();
    let Some((_, engine)) = chars.next() else { return glob };
    if !"GPIJLNSER".contains(engine) {
        return glob;
    }
    let rest = &word[1..];
    // `TARGET_REX`'s optional delimiter is greedy: `G@@x` is grain `x` with delimiter `@`.
    if "GPIJ".contains(engine) {
        if let Some(delim) = rest.chars().next() {
            let after = &rest[delim.len_utf8()..];
            if let Some(pattern) = after.strip_prefix('@').filter(|p| !p.is_empty()) {
                return Term { engine: Some(engine), delimiter: Some(&rest[..delim.len_utf8()]), pattern };
            }
        }
    }
    if let Some(pattern) = rest.strip_prefix('@').filter(|p| !p.is_empty()) {
        return Term { engine: Some(engine), delimiter: None, pattern };
    }
    glob
}

/// Evaluates the token list as Python evaluates Salt's joined expression; `None` where Python
/// would raise (a syntax error).
fn evaluate(tokens: &[Tok]) -> Option<IdSet> {
    let mut pos = 0;
    let set = parse_or(tokens, &mut pos)?;
    (pos == tokens.len()).then_some(set)
}

fn parse_or(t: &[Tok], pos: &mut usize) -> Option<IdSet> {
    let mut acc = parse_and(t, pos)?;
    while matches!(t.get(*pos), Some(Tok::Or)) {
        *pos += 1;
        acc.extend(parse_and(t, pos)?);
    }
    Some(acc)
}

fn parse_and(t: &[Tok], pos: &mut usize) -> Option<IdSet> {
    let mut acc = parse_minus(t, pos)?;
    while matches!(t.get(*pos), Some(Tok::And)) {
        *pos += 1;
        let rhs = parse_minus(t, pos)?;
        acc.retain(|id| rhs.contains(id));
    }
    Some(acc)
}

fn parse_minus(t: &[Tok], pos: &mut usize) -> Option<IdSet> {
    let mut acc = parse_atom(t, pos)?;
    while matches!(t.get(*pos), Some(Tok::Minus)) {
        *pos += 1;
        let rhs = parse_atom(t, pos)?;
        acc.retain(|id| !rhs.contains(id));
    }
    Some(acc)
}

fn parse_atom(t: &[Tok], pos: &mut usize) -> Option<IdSet> {
    match t.get(*pos)? {
        Tok::Set(s) => {
            *pos += 1;
            Some(s.clone())
        }
        Tok::LParen => {
            *pos += 1;
            let inner = parse_or(t, pos)?;
            matches!(t.get(*pos), Some(Tok::RParen)).then(|| {
                *pos += 1;
                inner
            })
        }
        _ => None,
    }
}
