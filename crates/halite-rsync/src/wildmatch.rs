//! rsync's shell-style wildcard matcher (lib/wildmatch.c): `?`, `*` that stops at `/`,
//! `**` that crosses it, `[...]` classes with ranges, negation by `!` or `^` and the
//! `[:name:]` classes, and backslash escapes, plus the variants filter rules need: matching
//! against the last N components of a path or after any of its slashes.
//!
//! This module owns the meaning of a pattern, including every oddity of malformed ones
//! (an unclosed `[` or unknown `[:class:]` never matches anything, `[]` takes `]` as a
//! member), because a client's filter rules must select exactly what stock rsync selects.
//! It must not be exponential: patterns arrive from the network. The reference bounds its
//! backtracking with two abort codes; this one computes the same answers bottom-up, one
//! row per `*` group over the text, so the work is O(pattern × text), memory O(text), and
//! there is no recursion at all. Patterns and texts beyond the caps below never match.

/// The longest pattern compiled: rsync's MAXPATHLEN. The filter parser discards longer
/// rules before they get here, as the reference does.
pub const MAX_PATTERN_LEN: usize = 4096;

/// The longest text matched: a transfer-root prefix plus a path, each under MAXPATHLEN,
/// with room to spare. It keeps one match at a few tens of millions of steps at worst.
pub const MAX_TEXT_LEN: usize = 16 * 1024;

/// Where in the text a pattern may start (the reference's `where` argument).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Anchor {
    /// At the start of the text only.
    Start,
    /// At the start of the last N slash-separated components; no match if there are
    /// fewer than N.
    LastComponents(usize),
    /// At the start of the text or right after any slash in it.
    AnySlash,
}

/// One step's outcome, with the reference's two ways to stop early: `AbortAll` when the
/// text ran out (no later start can help), `AbortToStarstar` when a single `*` met a
/// slash (only an enclosing `**` may still try further along).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    False,
    True,
    AbortAll,
    AbortToStarstar,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Named {
    Alnum,
    Alpha,
    Blank,
    Cntrl,
    Digit,
    Graph,
    Lower,
    Print,
    Punct,
    Space,
    Upper,
    Xdigit,
}

impl Named {
    fn from_name(name: &[u8]) -> Option<Named> {
        Some(match name {
            b"alnum" => Named::Alnum,
            b"alpha" => Named::Alpha,
            b"blank" => Named::Blank,
            b"cntrl" => Named::Cntrl,
            b"digit" => Named::Digit,
            b"graph" => Named::Graph,
            b"lower" => Named::Lower,
            b"print" => Named::Print,
            b"punct" => Named::Punct,
            b"space" => Named::Space,
            b"upper" => Named::Upper,
            b"xdigit" => Named::Xdigit,
            _ => return None,
        })
    }

    /// The C locale's ctype tests: bytes above 0x7f belong to no class, which is also
    /// what glibc answers for them in a UTF-8 locale.
    fn contains(self, c: u8) -> bool {
        match self {
            Named::Alnum => c.is_ascii_alphanumeric(),
            Named::Alpha => c.is_ascii_alphabetic(),
            Named::Blank => c == b' ' || c == b'\t',
            Named::Cntrl => c.is_ascii_control(),
            Named::Digit => c.is_ascii_digit(),
            Named::Graph => c.is_ascii_graphic(),
            Named::Lower => c.is_ascii_lowercase(),
            Named::Print => c.is_ascii_graphic() || c == b' ',
            Named::Punct => c.is_ascii_punctuation(),
            // C's isspace includes the vertical tab, which Rust's ASCII whitespace lacks.
            Named::Space => c.is_ascii_whitespace() || c == 0x0b,
            Named::Upper => c.is_ascii_uppercase(),
            Named::Xdigit => c.is_ascii_hexdigit(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Member {
    Byte(u8),
    Range(u8, u8),
    Named(Named),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Class {
    negated: bool,
    members: Vec<Member>,
}

impl Class {
    fn matches(&self, c: u8) -> bool {
        if c == b'/' {
            return false;
        }
        let hit = self.members.iter().any(|m| match *m {
            Member::Byte(b) => b == c,
            Member::Range(lo, hi) => lo <= c && c <= hi,
            Member::Named(n) => n.contains(c),
        });
        hit != self.negated
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Lit(u8),
    Any,
    Class(Box<Class>),
    /// A backslash ending the pattern: it escapes the terminator, which no byte equals.
    Never,
    /// A malformed class: once reached, nothing can match, whatever the text.
    Abort,
}

/// A compiled pattern: the tokens between `*` groups, and the groups themselves.
#[derive(Clone, Debug)]
pub struct Pattern {
    toks: Vec<Tok>,
    /// `segs[i]` is the token range before star group `i`; the last one has no group after.
    segs: Vec<(usize, usize)>,
    /// Whether each star group is `**` (two or more stars).
    double: Vec<bool>,
    fold: bool,
    too_long: bool,
}

fn get(p: &[u8], i: usize) -> u8 {
    p.get(i).copied().unwrap_or(0)
}

impl Pattern {
    /// Compiles `pattern`; with `fold` both it and the text are compared in lower case
    /// (the reference's iwildmatch, used for host names).
    pub fn compile(pattern: &[u8], fold: bool) -> Pattern {
        let too_long = pattern.len() > MAX_PATTERN_LEN;
        // The reference sees a C string: an embedded NUL ends the pattern.
        let p = match pattern.iter().position(|&b| b == 0) {
            Some(nul) => &pattern[..nul],
            None => pattern,
        };
        let lower = |b: u8| if fold { b.to_ascii_lowercase() } else { b };
        let mut toks = Vec::new();
        let mut segs = Vec::new();
        let mut double = Vec::new();
        let mut seg_start = 0;
        let mut i = 0;
        while i < p.len() && !too_long {
            match p[i] {
                b'\\' => {
                    i += 1;
                    match p.get(i) {
                        Some(&b) => toks.push(Tok::Lit(lower(b))),
                        None => {
                            toks.push(Tok::Never);
                            break;
                        }
                    }
                    i += 1;
                }
                b'?' => {
                    toks.push(Tok::Any);
                    i += 1;
                }
                b'*' => {
                    let mut j = i + 1;
                    while get(p, j) == b'*' {
                        j += 1;
                    }
                    segs.push((seg_start, toks.len()));
                    double.push(j - i > 1);
                    seg_start = toks.len();
                    i = j;
                }
                b'[' => match parse_class(p, i + 1, fold) {
                    Some((class, next)) => {
                        toks.push(Tok::Class(Box::new(class)));
                        i = next;
                    }
                    None => {
                        toks.push(Tok::Abort);
                        break;
                    }
                },
                b => {
                    toks.push(Tok::Lit(lower(b)));
                    i += 1;
                }
            }
        }
        segs.push((seg_start, toks.len()));
        Pattern { toks, segs, double, fold, too_long }
    }

    /// Whether the pattern matches all of `text`.
    pub fn matches(&self, text: &[u8]) -> bool {
        self.matches_at(text, Anchor::Start)
    }

    /// Whether the pattern matches `text` from a start that `anchor` allows through to
    /// its end (wildmatch_array over a text already joined).
    pub fn matches_at(&self, text: &[u8], anchor: Anchor) -> bool {
        if self.too_long || text.len() > MAX_TEXT_LEN {
            return false;
        }
        let text = match anchor {
            Anchor::LastComponents(n) if n > 0 => match trailing_components(text, n) {
                Some(start) => &text[start..],
                None => return false,
            },
            _ => text,
        };
        let eval = Eval::new(self, text);
        let first = eval.run_seg(0, 0);
        if first == Step::True {
            return true;
        }
        if anchor != Anchor::AnySlash || first == Step::AbortAll {
            return false;
        }
        for (i, _) in text.iter().enumerate().filter(|&(_, &b)| b == b'/') {
            match eval.run_seg(0, i + 1) {
                Step::True => return true,
                Step::AbortAll => return false,
                Step::False | Step::AbortToStarstar => {}
            }
        }
        false
    }

    fn is_trailing_group(&self, group: usize) -> bool {
        group + 1 == self.double.len() && {
            let (a, b) = self.segs[group + 1];
            a == b
        }
    }
}

/// The class that starts after a `[` at `i`: its members and the index past its `]`, or
/// `None` if it is malformed (unclosed, or an unknown `[:name:]`).
fn parse_class(p: &[u8], mut i: usize, fold: bool) -> Option<(Class, usize)> {
    let lower = |b: u8| if fold { b.to_ascii_lowercase() } else { b };
    let mut ch = get(p, i);
    let negated = ch == b'!' || ch == b'^';
    if negated {
        i += 1;
        ch = get(p, i);
    }
    let mut members = Vec::new();
    // The previous member's byte, which a following `-` uses as a range's start; a range
    // or named class leaves none, so a `-` after them is literal.
    let mut prev: Option<u8> = None;
    loop {
        if ch == 0 {
            return None;
        }
        let mut this = None;
        if ch == b'\\' {
            i += 1;
            ch = get(p, i);
            if ch == 0 {
                return None;
            }
            let b = lower(ch);
            members.push(Member::Byte(b));
            this = Some(b);
        } else if ch == b'-' && prev.is_some() && get(p, i + 1) != 0 && get(p, i + 1) != b']' {
            i += 1;
            ch = get(p, i);
            if ch == b'\\' {
                i += 1;
                ch = get(p, i);
                if ch == 0 {
                    return None;
                }
            }
            members.push(Member::Range(prev.unwrap_or(0), lower(ch)));
        } else if ch == b'[' && get(p, i + 1) == b':' {
            let start = i + 2;
            let mut j = start;
            while get(p, j) != 0 && get(p, j) != b']' {
                j += 1;
            }
            if get(p, j) == 0 {
                return None;
            }
            if j < start + 1 || p[j - 1] != b':' {
                // No ":]" before the first "]": the "[" is an ordinary member.
                members.push(Member::Byte(b'['));
                this = Some(b'[');
            } else {
                members.push(Member::Named(Named::from_name(&p[start..j - 1])?));
                i = j;
            }
        } else {
            let b = lower(ch);
            members.push(Member::Byte(b));
            this = Some(b);
        }
        prev = this;
        i += 1;
        ch = get(p, i);
        if ch == b']' {
            return Some((Class { negated, members }, i + 1));
        }
    }
}

/// Where the last `n` components of `text` start (the reference's trailing_N_elements).
fn trailing_components(text: &[u8], n: usize) -> Option<usize> {
    let mut left = n;
    for i in (0..text.len()).rev() {
        if text[i] == b'/' {
            left -= 1;
            if left == 0 {
                return Some(i + 1);
            }
        }
    }
    (left == 1).then_some(0)
}

/// A pattern evaluated against one text. `row[t]` is the outcome of the first non-trailing
/// star group's loop started at text offset `t`; the rows of later groups were needed only
/// to build it.
struct Eval<'a> {
    pat: &'a Pattern,
    text: &'a [u8],
    row: Vec<Step>,
    /// The last slash in the text, which answers "is there a slash from here on" for a
    /// trailing single `*` in constant time.
    last_slash: Option<usize>,
}

impl<'a> Eval<'a> {
    fn new(pat: &'a Pattern, text: &'a [u8]) -> Eval<'a> {
        let mut eval = Eval { pat, text, row: Vec::new(), last_slash: text.iter().rposition(|&b| b == b'/') };
        let groups = pat.double.len();
        let loops = if groups > 0 && pat.is_trailing_group(groups - 1) { groups - 1 } else { groups };
        let n = text.len();
        let mut next: Vec<Step> = Vec::new();
        let mut row: Vec<Step> = Vec::new();
        for g in (0..loops).rev() {
            // The loop for group g tries the rest of the pattern at each offset in turn;
            // computed from the end so each offset can fall back on the next one's answer.
            row.clear();
            row.resize(n + 1, Step::AbortAll);
            let double = pat.double[g];
            for t in (0..n).rev() {
                let r = eval.run_seg_with(g + 1, t, &next);
                row[t] = match r {
                    Step::False if !double && text[t] == b'/' => Step::AbortToStarstar,
                    Step::False => row[t + 1],
                    Step::AbortToStarstar if double => row[t + 1],
                    other => other,
                };
            }
            std::mem::swap(&mut next, &mut row);
        }
        eval.row = next;
        eval
    }

    fn run_seg(&self, seg: usize, t: usize) -> Step {
        self.run_seg_with(seg, t, &self.row)
    }

    /// Matches segment `seg` at offset `t`, then whatever follows it: the end of the
    /// pattern, a trailing star group, or a star group whose loop outcomes are `loop_row`.
    fn run_seg_with(&self, seg: usize, mut t: usize, loop_row: &[Step]) -> Step {
        let text = self.text;
        let (a, b) = self.pat.segs[seg];
        for tok in &self.pat.toks[a..b] {
            let Some(&raw) = text.get(t) else {
                return Step::AbortAll;
            };
            let c = if self.pat.fold { raw.to_ascii_lowercase() } else { raw };
            let ok = match tok {
                Tok::Lit(p) => *p == c,
                Tok::Any => c != b'/',
                Tok::Class(class) => class.matches(c),
                Tok::Never => false,
                Tok::Abort => return Step::AbortAll,
            };
            if !ok {
                return Step::False;
            }
            t += 1;
        }
        if seg == self.pat.double.len() {
            return if t == text.len() { Step::True } else { Step::False };
        }
        if self.pat.is_trailing_group(seg) {
            // A trailing "**" takes everything; a trailing "*" only a last component.
            let slash_follows = self.last_slash.is_some_and(|s| s >= t);
            return if self.pat.double[seg] || !slash_follows { Step::True } else { Step::False };
        }
        loop_row.get(t).copied().unwrap_or(Step::AbortAll)
    }
}

/// Whether `pattern` matches all of `text`.
pub fn wildmatch(pattern: &[u8], text: &[u8]) -> bool {
    Pattern::compile(pattern, false).matches(text)
}

/// [`wildmatch`] ignoring ASCII case in both the pattern and the text.
pub fn iwildmatch(pattern: &[u8], text: &[u8]) -> bool {
    Pattern::compile(pattern, true).matches(text)
}

/// Matches `pattern` against the concatenation of `texts`, from where `anchor` allows.
pub fn wildmatch_array(pattern: &[u8], texts: &[&[u8]], anchor: Anchor) -> bool {
    Pattern::compile(pattern, false).matches_at(&texts.concat(), anchor)
}

/// Whether the literal `lit` equals the concatenation of `texts` (or, with
/// [`Anchor::LastComponents`], its last components). `AnySlash` compares the whole text,
/// as the reference does.
pub fn litmatch_array(lit: &[u8], texts: &[&[u8]], anchor: Anchor) -> bool {
    litmatch(lit, &texts.concat(), anchor)
}

pub(crate) fn litmatch(lit: &[u8], text: &[u8], anchor: Anchor) -> bool {
    let text = match anchor {
        Anchor::LastComponents(n) if n > 0 => match trailing_components(text, n) {
            Some(start) => &text[start..],
            None => return false,
        },
        _ => text,
    };
    lit == text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// wildtest.txt's format: two 0/1 flags (match expected, fnmatch agrees), then the
    /// text and the pattern, each bare or quoted with ', " or `.
    fn parse_wildtest(src: &[u8]) -> Vec<(usize, bool, Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        for (n, line) in src.split(|&b| b == b'\n').enumerate() {
            if line.is_empty() || line[0] == b'#' {
                continue;
            }
            let mut s = line;
            let mut flags = [false; 2];
            for f in &mut flags {
                *f = match s.first() {
                    Some(b'1') => true,
                    Some(b'0') => false,
                    _ => panic!("line {}: bad flag", n + 1),
                };
                s = &s[1..];
                assert!(matches!(s.first(), Some(b' ' | b'\t')), "line {}: flag syntax", n + 1);
                while matches!(s.first(), Some(b' ' | b'\t')) {
                    s = &s[1..];
                }
            }
            let mut strings = Vec::new();
            for _ in 0..2 {
                let (word, rest) = match s.first() {
                    Some(&q) if q == b'\'' || q == b'"' || q == b'`' => {
                        let end = s[1..].iter().position(|&b| b == q).expect("unmatched quote") + 1;
                        (&s[1..end], &s[end + 1..])
                    }
                    Some(_) => {
                        let end = s.iter().position(|&b| b == b' ' || b == b'\t').unwrap_or(s.len());
                        (&s[..end], &s[end..])
                    }
                    None => panic!("line {}: not enough strings", n + 1),
                };
                strings.push(word.to_vec());
                s = rest;
                while matches!(s.first(), Some(b' ' | b'\t')) {
                    s = &s[1..];
                }
            }
            let pattern = strings.pop().unwrap();
            let text = strings.pop().unwrap();
            out.push((n + 1, flags[0], text, pattern));
        }
        out
    }

    #[test]
    fn wildtest_vectors() {
        let cases = parse_wildtest(include_bytes!("../tests/data/wildtest.txt"));
        assert!(cases.len() >= 144, "only {} cases parsed", cases.len());
        let mut failures = Vec::new();
        for (line, expect, text, pattern) in &cases {
            if wildmatch(pattern, text) != *expect {
                failures.push(format!(
                    "line {line}: {:?} vs {:?}, expected {expect}",
                    String::from_utf8_lossy(text),
                    String::from_utf8_lossy(pattern)
                ));
            }
            // The same text split into pieces must give the same answer: the array form
            // is a virtual concatenation.
            let pieces: Vec<&[u8]> = text.chunks(3).collect();
            assert_eq!(wildmatch_array(pattern, &pieces, Anchor::Start), *expect, "line {line} (array)");
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn case_folding_applies_to_pattern_and_text() {
        let cases: &[(&[u8], &[u8], bool)] = &[
            (b"abc", b"ABC", true),
            (b"ABC", b"abc", true),
            (b"ABC", b"abd", false),
            (b"*.EXAMPLE.COM", b"foo.example.com", true),
            (b"*.example.com", b"FOO.EXAMPLE.COM", true),
            (b"[A-Z]bc", b"abc", true),
            (b"[ABC]xy", b"bxy", true),
            (b"x[A-Z]z", b"xyz", true),
            (b"[a-z]BC", b"abc", true),
            (b"[\\A]bc", b"abc", true),
            (b"[A-Z]bc", b"5bc", false),
        ];
        for &(p, t, want) in cases {
            assert_eq!(iwildmatch(p, t), want, "{:?} {:?}", p, t);
        }
        assert!(!wildmatch(b"ABC", b"abc"));
    }

    #[test]
    fn anchors() {
        assert!(wildmatch_array(b"b/c", &[b"a/b/c"], Anchor::LastComponents(2)));
        assert!(!wildmatch_array(b"b/c", &[b"a/b/c"], Anchor::LastComponents(3)));
        assert!(wildmatch_array(b"b/c", &[b"b/c"], Anchor::LastComponents(2)));
        assert!(!wildmatch_array(b"b/c", &[b"c"], Anchor::LastComponents(2)));
        assert!(wildmatch_array(b"b/**", &[b"a/", b"b/c/d"], Anchor::AnySlash));
        assert!(!wildmatch_array(b"b/**", &[b"a/xb/c/d"], Anchor::AnySlash));
        assert!(litmatch_array(b"b/c", &[b"a", b"/b/c"], Anchor::LastComponents(2)));
        assert!(!litmatch_array(b"b/c", &[b"a/b/c"], Anchor::Start));
    }

    #[test]
    fn hostile_patterns_stay_cheap() {
        // Each of these drives the naive backtracking matcher into exponential or
        // high-polynomial work; here each is a few rows over the text.
        let text = [b'a'; 4000];
        let mut pat = Vec::new();
        for _ in 0..1000 {
            pat.extend_from_slice(b"*a");
        }
        pat.push(b'b');
        let start = std::time::Instant::now();
        assert!(!wildmatch(&pat, &text));
        let mut pat2 = b"**x*".to_vec();
        pat2.extend_from_slice(&[b'a'; 1000]);
        pat2.push(b'b');
        let mut text2 = vec![b'x'; 1000];
        text2.extend_from_slice(&[b'a'; 2000]);
        text2.push(b'/');
        assert!(!wildmatch(&pat2, &text2));
        assert!(start.elapsed() < std::time::Duration::from_secs(20));
        assert!(!wildmatch(&vec![b'*'; MAX_PATTERN_LEN + 1], b"x"));
    }

    #[test]
    fn odd_bytes_do_not_panic() {
        for p in [&b"["[..], b"[!", b"[[:", b"[[:x", b"[a-", b"\\", b"[\\", b"[a-\\", b"*\0*", b"a[]"] {
            for t in [&b""[..], b"a", b"/", b"[", b"\0", b"ab/cd"] {
                let _ = wildmatch(p, t);
                let _ = iwildmatch(p, t);
                for a in [Anchor::Start, Anchor::AnySlash, Anchor::LastComponents(2)] {
                    let _ = wildmatch_array(p, &[t, b"/", t], a);
                }
            }
        }
    }
}
