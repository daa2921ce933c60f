//! Which accepted minions a target names: Salt's `CkMinions.check_minions`, the master's
//! "expected minions" of a job.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use halite_yaml::{py, Value};
use ipnet::IpNet;

use crate::glob::Glob;
use crate::nodegroup::{self, OPERATORS};
use crate::pyre::PyRegex;
use crate::subdict::{SubdictMatcher, ValueMatch, DEFAULT_DELIMITER};
use crate::{Abandoned, TargetError, MAX_DEPTH, MAX_WORDS};

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
    /// Minions left out because matching them against some term of the target needed more
    /// work than halite allows one minion (see the crate's limits and [`crate::Abandoned`]).
    /// Such a minion is not in `minions`, whatever the other terms said: the target fails
    /// closed. Nothing here logs; a caller may report a non-zero count once per target.
    pub abandoned: usize,
}

/// `CkMinions.check_minions(expr, tgt_type, delimiter, greedy=True)`.
///
/// Grain and pillar forms only name minions whose cached data matches; an accepted minion
/// with no cache entry is not expected (Salt 3006.30 and 3008.5, #68976; 3007.8 still
/// expected every such minion). `ipcidr` keeps such minions, as every Salt release does.
/// Where Salt logs an error and returns no minions, this returns the error; so does a target
/// past one of halite's limits (see the crate's documentation).
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
    // Sets of minions are sets of positions in this list; an id is accepted once (a key
    // file per id).
    let mut positions = HashMap::with_capacity(accepted.len());
    accepted.retain(|id| {
        let new = !positions.contains_key(id);
        if new {
            positions.insert(id.clone(), positions.len());
        }
        new
    });
    let abandoned = RefCell::new(IdSet::empty(accepted.len()));
    let ck = Checker { index, accepted, positions, nodegroups, abandoned };
    let delimiter = if delimiter.is_empty() { DEFAULT_DELIMITER } else { delimiter };
    let set = match tgt_type {
        TargetType::List => return Ok(ck.list(expr, false)),
        TargetType::Compound | TargetType::CompoundPillarExact => {
            let words = match expr {
                Expr::Text(t) => compound_words(t)?,
                Expr::Words(w) if w.len() > MAX_WORDS => {
                    return Err(TargetError::Compound { expr: crate::shown(&w.join(" ")), reason: too_many_words() })
                }
                Expr::Words(w) => w.clone(),
            };
            return ck.compound(words, tgt_type == TargetType::CompoundPillarExact);
        }
        TargetType::Nodegroup => {
            return ck.compound(nodegroup::expand(expr.text(tgt_type)?, nodegroups)?, false);
        }
        TargetType::Glob => ck.glob(expr.text(tgt_type)?),
        TargetType::Pcre => ck.pcre(expr.text(tgt_type)?)?,
        TargetType::Grain => ck.cached(expr.text(tgt_type)?, delimiter, Bank::Grains, ValueMatch::Glob)?,
        TargetType::GrainPcre => ck.cached(expr.text(tgt_type)?, delimiter, Bank::Grains, ValueMatch::Regex)?,
        TargetType::Pillar => ck.cached(expr.text(tgt_type)?, delimiter, Bank::Pillar, ValueMatch::Glob)?,
        TargetType::PillarPcre => ck.cached(expr.text(tgt_type)?, delimiter, Bank::Pillar, ValueMatch::Regex)?,
        TargetType::PillarExact => ck.cached(expr.text(tgt_type)?, delimiter, Bank::Pillar, ValueMatch::Exact)?,
        TargetType::Ipcidr => ck.ipcidr(expr.text(tgt_type)?)?,
        TargetType::Range => return Err(TargetError::Range),
    };
    Ok(ck.matched(&set, Vec::new()))
}

/// The words of a compound target given as text, refused past [`MAX_WORDS`] before the rest
/// of a hostile target is split and copied.
fn compound_words(text: &str) -> Result<Vec<String>, TargetError> {
    let words: Vec<String> = text.split_whitespace().take(MAX_WORDS + 1).map(str::to_owned).collect();
    if words.len() > MAX_WORDS {
        return Err(TargetError::Compound { expr: crate::shown(text), reason: too_many_words() });
    }
    Ok(words)
}

fn too_many_words() -> String {
    format!("more than halite's limit of {MAX_WORDS} words (a long list of ids is one `L@a,b,c` word)")
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
    /// The accepted ids in Salt's order; an [`IdSet`] holds positions in it.
    accepted: Vec<String>,
    positions: HashMap<String, usize>,
    nodegroups: &'a [(String, Value)],
    /// Minions whose matching was given up at a limit.
    abandoned: RefCell<IdSet>,
}

impl<I: MinionIndex> Checker<'_, I> {
    /// The result, failing closed: a minion whose matching was given up anywhere in the
    /// target is left out, whatever the rest said (under `not`, a given-up term would
    /// otherwise let in the very minion whose data made it costly; targets choose who gets a
    /// pillar file or a peer publish).
    fn matched(&self, set: &IdSet, missing: Vec<String>) -> Matched {
        let abandoned = self.abandoned.borrow();
        let mut kept = set.clone();
        kept.subtract(&abandoned);
        Matched {
            minions: kept.iter().map(|at| self.accepted[at].clone()).collect(),
            missing,
            abandoned: abandoned.len(),
        }
    }

    /// The accepted minions `pred` holds for, given each one's position and id.
    fn select(&self, mut pred: impl FnMut(usize, &str) -> bool) -> IdSet {
        let mut set = IdSet::empty(self.accepted.len());
        for (at, id) in self.accepted.iter().enumerate() {
            if pred(at, id) {
                set.insert(at);
            }
        }
        set
    }

    /// The minion at `at` matched, or matching it was given up: then no match, remembered
    /// for [`Matched::abandoned`].
    fn counted(&self, at: usize, outcome: Result<bool, Abandoned>) -> bool {
        outcome.unwrap_or_else(|_| {
            self.abandoned.borrow_mut().insert(at);
            false
        })
    }

    fn glob(&self, pattern: &str) -> IdSet {
        let glob = Glob::new(pattern);
        self.select(|_, id| glob.matches(id))
    }

    fn pcre(&self, pattern: &str) -> Result<IdSet, TargetError> {
        let re = PyRegex::new(pattern)?;
        Ok(self.select(|at, id| self.counted(at, re.try_match(id))))
    }

    /// Salt's `_check_list_minions`: listed ids with an accepted key, in the order listed
    /// (each once), and the others as missing unless `ignore_missing`.
    fn list(&self, expr: &Expr, ignore_missing: bool) -> Matched {
        let listed: Vec<String> = match expr {
            Expr::Text(t) => t.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect(),
            Expr::Words(w) => w.clone(),
        };
        let mut seen = HashSet::new();
        let mut out = Matched::default();
        for id in listed {
            if !seen.insert(id.clone()) {
                continue;
            }
            if self.positions.contains_key(&id) {
                out.minions.push(id);
            } else if !ignore_missing {
                out.missing.push(id);
            }
        }
        out
    }

    fn cached(&self, expr: &str, delimiter: &str, bank: Bank, mode: ValueMatch) -> Result<IdSet, TargetError> {
        let matcher = SubdictMatcher::checked(expr, delimiter, mode)?;
        Ok(self.select(|at, id| {
            let data = self.index.cached(id).and_then(|m| match bank {
                Bank::Grains => m.grains,
                Bank::Pillar => m.pillar,
            });
            data.is_some_and(|d| self.counted(at, matcher.try_matches(d)))
        }))
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
        Ok(self.select(|_, id| {
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
        }))
    }

    /// Salt's `_check_compound_minions`: each term becomes the set of minions it names, the
    /// words `and`/`or`/`not` become `&`/`|`/`(ALL - ...)`, and the result is evaluated with
    /// Python's precedence (`-` over `&` over `|`).
    ///
    /// Bounded by the crate's limits: at most [`MAX_WORDS`] words, nodegroups expanded, and
    /// [`MAX_DEPTH`] open parentheses (each `not` opens one), so that evaluating recurses at
    /// most that deep. Every term is one pass over the minions and every operator one over a
    /// bit set of them; nothing copies the set of all minions per word.
    fn compound(&self, mut words: Vec<String>, pillar_exact: bool) -> Result<Matched, TargetError> {
        let shown = crate::shown(&words.join(" "));
        let fail = |reason: String| TargetError::Compound { expr: shown.clone(), reason };
        let mut tokens: Vec<Tok> = Vec::new();
        let mut open: Vec<Open> = Vec::new();
        let mut missing = Vec::new();
        let mut done = 0;
        words.reverse();
        while let Some(word) = words.pop() {
            done += 1;
            if OPERATORS.contains(&word.as_str()) {
                if matches!(word.as_str(), "not" | "(") && open.len() >= MAX_DEPTH {
                    return Err(fail(format!("nests `(` and `not` deeper than halite's limit of {MAX_DEPTH} levels")));
                }
                match (tokens.last(), word.as_str()) {
                    (Some(Tok::LParen), "and" | "or") => return Err(fail("`and`/`or` right after `(`".into())),
                    (None, "and" | "or" | ")") => return Err(fail("expression begins with a binary operator".into())),
                    (last, "not") => {
                        if last.is_some() && !matches!(last, Some(Tok::And | Tok::Or | Tok::LParen)) {
                            tokens.push(Tok::And);
                        }
                        tokens.extend([Tok::LParen, Tok::All, Tok::Minus]);
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
                            return Err(fail("unexpected `)`".into()));
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
                    if done + words.len() + expanded.len() > MAX_WORDS {
                        return Err(fail(too_many_words()));
                    }
                    expanded.reverse();
                    words.extend(expanded);
                    continue;
                }
                Some(engine) => {
                    let delimiter = term.delimiter.unwrap_or(DEFAULT_DELIMITER);
                    let pillar_mode = if pillar_exact { ValueMatch::Exact } else { ValueMatch::Glob };
                    match engine {
                        'G' => self.cached(term.pattern, delimiter, Bank::Grains, ValueMatch::Glob)?,
                        'P' => self.cached(term.pattern, delimiter, Bank::Grains, ValueMatch::Regex)?,
                        'I' => self.cached(term.pattern, delimiter, Bank::Pillar, pillar_mode)?,
                        'J' if pillar_exact => self.cached(term.pattern, delimiter, Bank::Pillar, ValueMatch::Exact)?,
                        'J' => self.cached(term.pattern, delimiter, Bank::Pillar, ValueMatch::Regex)?,
                        'L' => {
                            // A list under `not` names ids to leave out; absent ones are fine.
                            let after_not = matches!(tokens.last(), Some(Tok::Minus));
                            let listed = self.list(&Expr::Text(term.pattern.to_owned()), after_not);
                            missing.extend(listed.missing);
                            let mut set = IdSet::empty(self.accepted.len());
                            listed
                                .minions
                                .iter()
                                .filter_map(|id| self.positions.get(id))
                                .for_each(|&at| set.insert(at));
                            set
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
        let set = Eval::new(tokens, self.accepted.len()).run().ok_or_else(|| fail("not a valid expression".into()))?;
        Ok(self.matched(&set, missing))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Paren,
    Not,
}

/// Salt's joined expression, a term's set of minions standing for each term.
#[derive(Debug)]
enum Tok {
    Set(IdSet),
    /// Every accepted minion, the left side of a `not`'s `(ALL - ...)`; made only when
    /// evaluated.
    All,
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

/// Evaluates the tokens as Python evaluates Salt's joined expression, by recursive descent
/// (at most [`MAX_DEPTH`] parentheses deep); `None` where Python would raise (a syntax
/// error). The tokens are consumed, so each term's set is used in place, never copied.
struct Eval {
    tokens: std::iter::Peekable<std::vec::IntoIter<Tok>>,
    minions: usize,
}

impl Eval {
    fn new(tokens: Vec<Tok>, minions: usize) -> Eval {
        Eval { tokens: tokens.into_iter().peekable(), minions }
    }

    fn run(mut self) -> Option<IdSet> {
        let set = self.or()?;
        self.tokens.next().is_none().then_some(set)
    }

    /// Takes the next token if it is `op`.
    fn eat(&mut self, op: fn(&Tok) -> bool) -> bool {
        self.tokens.next_if(op).is_some()
    }

    fn or(&mut self) -> Option<IdSet> {
        let mut acc = self.and()?;
        while self.eat(|t| matches!(t, Tok::Or)) {
            acc.union(&self.and()?);
        }
        Some(acc)
    }

    fn and(&mut self) -> Option<IdSet> {
        let mut acc = self.minus()?;
        while self.eat(|t| matches!(t, Tok::And)) {
            acc.intersect(&self.minus()?);
        }
        Some(acc)
    }

    fn minus(&mut self) -> Option<IdSet> {
        let mut acc = self.atom()?;
        while self.eat(|t| matches!(t, Tok::Minus)) {
            acc.subtract(&self.atom()?);
        }
        Some(acc)
    }

    fn atom(&mut self) -> Option<IdSet> {
        match self.tokens.next()? {
            Tok::Set(set) => Some(set),
            Tok::All => Some(IdSet::full(self.minions)),
            Tok::LParen => {
                let inner = self.or()?;
                self.eat(|t| matches!(t, Tok::RParen)).then_some(inner)
            }
            _ => None,
        }
    }
}

/// A set of accepted minions, as a bit per position in the accepted list: the set
/// operations of a compound target cost a word per 64 minions, not a string per minion.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct IdSet {
    bits: Vec<u64>,
}

impl IdSet {
    fn empty(minions: usize) -> IdSet {
        IdSet { bits: vec![0; minions.div_ceil(64)] }
    }

    fn full(minions: usize) -> IdSet {
        let mut set = IdSet { bits: vec![u64::MAX; minions.div_ceil(64)] };
        // Only positions below `minions` are members.
        let used = minions % 64;
        if let (Some(last), true) = (set.bits.last_mut(), used != 0) {
            *last = (1 << used) - 1;
        }
        set
    }

    fn insert(&mut self, at: usize) {
        self.bits[at / 64] |= 1 << (at % 64);
    }

    fn len(&self) -> usize {
        self.bits.iter().map(|w| w.count_ones() as usize).sum()
    }

    fn union(&mut self, other: &IdSet) {
        self.bits.iter_mut().zip(&other.bits).for_each(|(a, b)| *a |= b);
    }

    fn intersect(&mut self, other: &IdSet) {
        self.bits.iter_mut().zip(&other.bits).for_each(|(a, b)| *a &= b);
    }

    fn subtract(&mut self, other: &IdSet) {
        self.bits.iter_mut().zip(&other.bits).for_each(|(a, b)| *a &= !b);
    }

    /// The positions in the set, in order.
    fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.bits
            .iter()
            .enumerate()
            .flat_map(|(word, &bits)| (0..64).filter(move |bit| bits & (1 << bit) != 0).map(move |bit| word * 64 + bit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `count` minions `m0`, `m1`, ..., each with the grains `{x: y, v: <value>}`.
    struct Site {
        ids: Vec<String>,
        grains: Value,
    }

    impl Site {
        fn new(count: usize, value: &str) -> Site {
            let grains = Value::Map(vec![(Value::from("x"), Value::from("y")), (Value::from("v"), Value::from(value))]);
            Site { ids: (0..count).map(|i| format!("m{i}")).collect(), grains }
        }

        fn check(&self, expr: &str, tgt_type: TargetType) -> Result<Matched, TargetError> {
            self.check_with(expr, tgt_type, &[])
        }

        fn check_with(
            &self,
            expr: &str,
            tgt_type: TargetType,
            groups: &[(String, Value)],
        ) -> Result<Matched, TargetError> {
            check_minions(self, &Expr::Text(expr.to_owned()), tgt_type, ":", groups)
        }
    }

    impl MinionIndex for Site {
        fn accepted(&self) -> Vec<String> {
            self.ids.clone()
        }

        fn cached(&self, _id: &str) -> Option<CachedMinion<'_>> {
            Some(CachedMinion { grains: Some(&self.grains), pillar: None })
        }
    }

    fn limit_error(result: Result<Matched, TargetError>, names: &str) {
        match result {
            Err(TargetError::Compound { expr, reason }) => {
                assert!(reason.contains(names), "{reason}");
                assert!(expr.len() < 200, "the error abbreviates the target ({} bytes)", expr.len());
            }
            other => panic!("expected a compound error naming {names:?}, got {other:?}"),
        }
    }

    fn nested(depth: usize, opener: &str, inner: &str) -> String {
        format!("{}{inner}{}", opener.repeat(depth), " )".repeat(depth))
    }

    // These run on the test harness's default thread stack: a limit that failed to hold would
    // overflow it and abort the test binary.
    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let site = Site::new(3, "");
        // 200,000 parentheses are refused by their number before any is parsed.
        limit_error(site.check(&format!("{}m1", "( ".repeat(200_000)), TargetType::Compound), "1000 words");
        limit_error(site.check(&nested(MAX_DEPTH + 1, "( ", "m1"), TargetType::Compound), "199 levels");
        // `not` opens a parenthesis too, as in Salt's `(ALL - ...)`.
        limit_error(site.check(&nested(MAX_DEPTH + 1, "not ( ", "m1"), TargetType::Compound), "199 levels");
        let words = Expr::Words(vec!["(".to_owned(); 150_000]);
        let err = check_minions(&site, &words, TargetType::Compound, ":", &[]);
        limit_error(err, "1000 words");

        // The deepest target Salt's Python can evaluate is evaluated here too.
        let deepest = site.check(&nested(MAX_DEPTH, "( ", "m1"), TargetType::Compound).expect("at the limit");
        assert_eq!(deepest.minions, ["m1"]);
        let deepest_not =
            site.check(&nested(MAX_DEPTH / 2, "not ( ", "m1"), TargetType::Compound).expect("at the limit");
        assert_eq!(deepest_not.minions, ["m0", "m2"], "99 `not`s");
    }

    #[test]
    fn long_not_chains_are_bounded_and_cheap() {
        let site = Site::new(20_000, "");
        // Salt reads `not not x` as `(ALL - & (ALL - x))`, a syntax error; 100,000 of them are
        // refused by their length before any set is made.
        limit_error(site.check(&format!("{}G@x:y", "not ".repeat(100_000)), TargetType::Compound), "1000 words");

        // The longest chain allowed, over many minions: each `and not` is a bit-set operation.
        let excluded: Vec<String> = (0..333).map(|i| format!("m{}", i * 7)).collect();
        let chain: String = excluded.iter().map(|id| format!(" and not {id}")).collect();
        let matched = site.check(&format!("*{chain}"), TargetType::Compound).expect("999 words");
        assert_eq!(matched.minions.len(), 20_000 - 333);
        assert!(excluded.iter().all(|id| !matched.minions.contains(id)));
        assert_eq!(matched.abandoned, 0);

        let chain: Vec<String> = excluded.iter().map(|id| format!("not {id}")).collect();
        let matched = site.check(&format!("G@x:y and {}", chain.join(" and ")), TargetType::Compound).expect("chain");
        assert_eq!(matched.minions.len(), 20_000 - 333);
        let either: Vec<String> = excluded.iter().map(|id| format!("not {id}")).collect();
        let matched = site.check(&either.join(" or "), TargetType::Compound).expect("chain");
        assert_eq!(matched.minions.len(), 20_000, "each minion is outside all but one list");
    }

    #[test]
    fn nested_nodegroups_are_bounded_like_compound_targets() {
        let site = Site::new(3, "");
        let group = |name: String, def: String| (name, Value::from(def));
        // Each group names the next twice: 2^40 words if expanded.
        let doubling: Vec<_> = (0..40)
            .map(|i| group(format!("g{i}"), format!("N@g{} or N@g{}", i + 1, i + 1)))
            .chain([group("g40".into(), "m1".into())])
            .collect();
        limit_error(site.check_with("g0", TargetType::Nodegroup, &doubling), "1000 words");
        limit_error(site.check_with("N@g0", TargetType::Compound, &doubling), "1000 words");
        assert!(nodegroup::expand("g0", &doubling).is_err());
        let small = site.check_with("g33", TargetType::Nodegroup, &doubling).expect("509 words");
        assert_eq!(small.minions, ["m1"]);

        // A chain of groups deeper than a compound target may nest.
        let chain: Vec<_> = (0..300)
            .map(|i| group(format!("c{i}"), format!("N@c{}", i + 1)))
            .chain([group("c300".into(), "m2".into())])
            .collect();
        limit_error(site.check_with("c0", TargetType::Nodegroup, &chain), "199 levels");
        assert_eq!(site.check_with("c250", TargetType::Nodegroup, &chain).expect("50 deep").minions, ["m2"]);

        // Small groups named many times add up.
        let groups = [group("pair".into(), "m1 or m2".into())];
        let target = vec!["N@pair"; 400].join(" or ");
        limit_error(site.check_with(&target, TargetType::Compound, &groups), "1000 words");

        // A group that includes itself further down is still found out.
        let cycle = [group("a".into(), "N@b".into()), group("b".into(), "m1 or N@a".into())];
        assert_eq!(site.check_with("a", TargetType::Nodegroup, &cycle), Err(TargetError::NestedNodegroup("a".into())));
    }

    #[test]
    fn matches_given_up_are_counted_not_matched() {
        // Every minion's grain `v` sends `(a|aa)+$` backtracking past the limit.
        let site = Site::new(50, &format!("{}!", "a".repeat(2000)));
        let matched = site.check("v:(a|aa)+$", TargetType::GrainPcre).expect("a valid target");
        assert_eq!((matched.minions.len(), matched.abandoned), (0, 50));
        // A minion given up on anywhere is left out, even where another term matched it or a
        // `not` stands before the costly term: the target fails closed.
        let matched = site.check("E@m1$ or P@v:(a|aa)+$", TargetType::Compound).expect("a valid target");
        assert_eq!((matched.minions.len(), matched.abandoned), (0, 50));
        let matched = site.check("not P@v:(a|aa)+$", TargetType::Compound).expect("a valid target");
        assert_eq!((matched.minions.len(), matched.abandoned), (0, 50));
        assert_eq!(site.check("v:a+!", TargetType::GrainPcre).expect("honest").abandoned, 0);
    }

    #[test]
    fn grain_targets_past_the_limits_are_errors() {
        let site = Site::new(3, "");
        let many = format!("x{}", ":y".repeat(100_000));
        for tgt_type in [TargetType::Grain, TargetType::Pillar, TargetType::GrainPcre] {
            assert!(matches!(site.check(&many, tgt_type), Err(TargetError::Subdict(_))), "{tgt_type:?}");
        }
        assert!(matches!(site.check(&format!("G@{many}"), TargetType::Compound), Err(TargetError::Subdict(_))));
        let long = format!("E@{}", "a".repeat(10_000));
        assert!(matches!(site.check(&long, TargetType::Compound), Err(TargetError::Regex(_))));
    }

    #[test]
    fn id_sets_keep_salt_order_and_bounds() {
        for n in [0, 1, 63, 64, 65, 130] {
            assert_eq!(IdSet::full(n).iter().collect::<Vec<_>>(), (0..n).collect::<Vec<_>>());
            assert_eq!(IdSet::full(n).len(), n);
        }
        let site = Site { ids: vec!["b".into(), "A".into(), "a".into(), "b".into()], grains: Value::Nil };
        let all = site.check("*", TargetType::Compound).expect("all");
        assert_eq!(all.minions, ["A", "a", "b"], "sorted ignoring case, each id once");
    }
}
