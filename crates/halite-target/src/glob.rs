//! Python's `fnmatch.fnmatch` on POSIX (case-sensitive, `*` and `?` cross `/` and newlines).

/// Whether `name` matches the shell-style `pattern` exactly as Python's `fnmatch.fnmatch` does on
/// POSIX: `*` any run, `?` any one character, `[seq]`/`[!seq]` classes with ranges, and a `[`
/// with no closing `]` taken literally.
pub fn fnmatch(name: &str, pattern: &str) -> bool {
    Glob::new(pattern).matches(name)
}

/// A compiled `fnmatch` pattern, for matching one pattern against many names without
/// compiling it again for each.
#[derive(Debug)]
pub(crate) struct Glob {
    tokens: Vec<Token>,
    /// The pattern, when it has no wildcard or class (a `[` without `]` is literal): most
    /// compound terms are plain ids (`web1`, `not db2`), compared with `==` against every
    /// minion.
    literal: Option<String>,
}

impl Glob {
    pub(crate) fn new(pattern: &str) -> Glob {
        let tokens = compile(pattern);
        let literal = tokens.iter().all(|t| matches!(t, Token::Literal(_))).then(|| pattern.to_owned());
        Glob { tokens, literal }
    }

    pub(crate) fn matches(&self, name: &str) -> bool {
        if let Some(literal) = &self.literal {
            return name == literal;
        }
        let name: Vec<char> = name.chars().collect();
        matches(&self.tokens, &name)
    }
}

#[derive(Debug, PartialEq)]
enum Token {
    Literal(char),
    AnyOne,
    AnyRun,
    Class { negated: bool, items: Vec<(char, char)> },
}

fn compile(pattern: &str) -> Vec<Token> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' => {
                // Consecutive stars are one star; collapsing them keeps matching linear-ish.
                if tokens.last() != Some(&Token::AnyRun) {
                    tokens.push(Token::AnyRun);
                }
                i += 1;
            }
            '?' => {
                tokens.push(Token::AnyOne);
                i += 1;
            }
            '[' => match parse_class(&chars, i + 1) {
                Some((token, next)) => {
                    tokens.push(token);
                    i = next;
                }
                None => {
                    tokens.push(Token::Literal('['));
                    i += 1;
                }
            },
            c => {
                tokens.push(Token::Literal(c));
                i += 1;
            }
        }
    }
    tokens
}

/// Parses a class body starting after `[`; `None` when there is no closing `]` (then Python
/// treats the `[` as a literal). A `]` right after `[` or `[!` belongs to the set.
fn parse_class(chars: &[char], start: usize) -> Option<(Token, usize)> {
    let mut j = start;
    let negated = chars.get(j) == Some(&'!');
    if negated {
        j += 1;
    }
    let body_start = j;
    if chars.get(j) == Some(&']') {
        j += 1;
    }
    while j < chars.len() && chars[j] != ']' {
        j += 1;
    }
    if j >= chars.len() {
        return None;
    }
    let body = &chars[body_start..j];
    let mut items = Vec::new();
    let mut k = 0;
    while k < body.len() {
        if k + 2 < body.len() && body[k + 1] == '-' {
            // Python drops reversed ranges such as `z-a` instead of failing.
            if body[k] <= body[k + 2] {
                items.push((body[k], body[k + 2]));
            }
            k += 3;
        } else {
            items.push((body[k], body[k]));
            k += 1;
        }
    }
    Some((Token::Class { negated, items }, j + 1))
}

fn matches(tokens: &[Token], name: &[char]) -> bool {
    // Iterative matcher with single-star backtracking: O(len(name) * len(tokens)) worst case,
    // so a hostile pattern cannot blow up the way a naive recursive matcher does.
    let (mut t, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match tokens.get(t) {
            Some(Token::AnyRun) => {
                star = Some((t, n));
                t += 1;
                continue;
            }
            Some(token) if single_matches(token, name[n]) => {
                t += 1;
                n += 1;
                continue;
            }
            _ => {}
        }
        match star {
            Some((star_t, star_n)) => {
                t = star_t + 1;
                n = star_n + 1;
                star = Some((star_t, star_n + 1));
            }
            None => return false,
        }
    }
    tokens[t..].iter().all(|token| *token == Token::AnyRun)
}

fn single_matches(token: &Token, c: char) -> bool {
    match token {
        Token::Literal(l) => *l == c,
        Token::AnyOne => true,
        Token::AnyRun => true,
        Token::Class { negated, items } => items.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *negated,
    }
}

#[cfg(test)]
mod tests {
    use super::fnmatch;

    #[test]
    fn matches_python_fnmatch() {
        // (name, pattern, Python's fnmatch.fnmatch result)
        let cases = [
            ("web1", "web*", true),
            ("web1", "*", true),
            ("", "*", true),
            ("", "?", false),
            ("a/b", "a*b", true),
            ("a\nb", "a?b", true),
            ("Web1", "web*", false),
            ("db2", "db[0-9]", true),
            ("dbx", "db[!0-9]", true),
            ("db2", "db[!0-9]", false),
            ("db]", "db[]]", true),
            ("db[", "db[", true),
            ("db[x", "db[x", true),
            ("d-", "d[a-]", true),
            ("dz", "d[z-a]", false),
            ("abcabd", "*abd", true),
            ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaab", "*a*a*a*a*a*a*a*a*c", false),
            ("x.y", "x.y", true),
            ("xzy", "x.y", false),
            ("app1", "app1,db1", false),
        ];
        for (name, pattern, want) in cases {
            assert_eq!(fnmatch(name, pattern), want, "fnmatch({name:?}, {pattern:?})");
        }
    }
}
