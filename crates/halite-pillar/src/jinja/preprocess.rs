//! Salt's Jinja dialect rewritten into MiniJinja's, before compiling.
//!
//! Two things Salt's templates rely on have no MiniJinja equivalent:
//!
//! - **Mutable literals.** `[...]` and `{...}` in an expression become calls that wrap the
//!   literal in a Python-like list or dict ([`super::value`]), so `{% do x.append(1) %}`
//!   works on `{% set x = [] %}`. A `[` is a literal where an operand may start (after an
//!   operator, `(`, `,`, `=`, a keyword such as `in`, or at the start of the tag), and a
//!   subscript after a name, a literal or a closing bracket.
//! - **Salt's tags** (`salt.utils.jinja.SerializerExtension`): `{% import_yaml x as y %}`
//!   (and `import_json`, `import_text`) become a `set` calling a function that renders and
//!   loads the file; `{% load_yaml as y %}...{% endload %}` (and `load_json`, `load_text`) a
//!   block `set` followed by a filter; `{% profile %}` blocks are kept as plain blocks.
//!
//! Rewrites never add or remove a newline, so line numbers in errors stay the template's.

use minijinja::machinery::{tokenize, Span, Token};
use minijinja::syntax::SyntaxConfig;

/// The global function [`rewrite`] wraps list literals in.
pub const LIST_FN: &str = "__halite_list";
/// The global function [`rewrite`] wraps dict literals in.
pub const DICT_FN: &str = "__halite_dict";
/// The global function `import_yaml`/`import_json`/`import_text` become calls to.
pub const IMPORT_FN: &str = "__halite_import";

/// Rewrites `source`; a template MiniJinja cannot tokenize is returned unchanged, so that
/// compiling it reports the syntax error at its real place.
pub fn rewrite(source: &str) -> String {
    let tokens: Vec<(Token<'_>, Span)> = match tokenize(source, false, SyntaxConfig::default()).collect() {
        Ok(tokens) => tokens,
        Err(_) => return source.to_owned(),
    };
    let mut w = Writer { source, out: String::with_capacity(source.len() + 64), copied: 0 };
    let mut loads: Vec<(String, &'static str)> = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        match tokens[i].0 {
            Token::VariableStart | Token::BlockStart => {
                let end = tokens[i..]
                    .iter()
                    .position(|(t, _)| matches!(t, Token::VariableEnd | Token::BlockEnd))
                    .map_or(tokens.len(), |p| i + p);
                let inner = &tokens[i + 1..end];
                let is_block = matches!(tokens[i].0, Token::BlockStart);
                if !(is_block && w.salt_tag(inner, &mut loads)) {
                    w.literals(inner);
                }
                i = end + 1;
            }
            _ => i += 1,
        }
    }
    w.finish()
}

struct Writer<'s> {
    source: &'s str,
    out: String,
    /// Bytes of `source` already in `out`.
    copied: usize,
}

fn start(span: &Span) -> usize {
    span.start_offset as usize
}

fn end(span: &Span) -> usize {
    span.end_offset as usize
}

/// Keywords after which an operand (so a literal `[`) may follow.
const OPERAND_KEYWORDS: &[&str] = &["in", "and", "or", "not", "if", "else", "elif", "is", "do", "with", "print"];

impl Writer<'_> {
    /// Copies the source up to `at`, then writes `text` in place of `at..resume`.
    fn replace(&mut self, at: usize, resume: usize, text: &str) {
        self.out.push_str(&self.source[self.copied..at]);
        self.out.push_str(text);
        self.copied = resume;
    }

    fn finish(mut self) -> String {
        self.out.push_str(&self.source[self.copied..]);
        self.out
    }

    /// Wraps the list and dict literals among one tag's tokens.
    fn literals(&mut self, tokens: &[(Token<'_>, Span)]) {
        // For each open bracket: whether it was rewritten (so its closer must be too).
        let mut open: Vec<bool> = Vec::new();
        let mut operand_may_start = true;
        for (token, span) in tokens {
            match token {
                Token::BracketOpen if operand_may_start => {
                    self.replace(start(span), end(span), &format!("{LIST_FN}(["));
                    open.push(true);
                }
                Token::BraceOpen => {
                    self.replace(start(span), end(span), &format!("{DICT_FN}({{"));
                    open.push(true);
                }
                Token::BracketOpen | Token::ParenOpen => open.push(false),
                // The guard pops the closer's entry whether or not it was rewritten.
                Token::BracketClose | Token::BraceClose | Token::ParenClose if open.pop() == Some(true) => {
                    let closer = if matches!(token, Token::BraceClose) { "})" } else { "])" };
                    self.replace(start(span), end(span), closer);
                }
                _ => {}
            }
            operand_may_start = match token {
                Token::Ident(word) => OPERAND_KEYWORDS.contains(word),
                Token::Str(_)
                | Token::String(_)
                | Token::Int(_)
                | Token::Int128(_)
                | Token::Float(_)
                | Token::BracketClose
                | Token::BraceClose
                | Token::ParenClose => false,
                _ => true,
            };
        }
    }

    /// Rewrites one of Salt's own tags; `false` when the tag is not one.
    fn salt_tag<'t>(&mut self, tokens: &[(Token<'t>, Span)], loads: &mut Vec<(String, &'static str)>) -> bool {
        let Some((Token::Ident(tag), first)) = tokens.first() else { return false };
        let last = &tokens[tokens.len() - 1].1;
        let whole = (start(first), end(last));
        let name_after_as = || match tokens {
            [.., (Token::Ident("as"), _), (Token::Ident(name), _)] => Some(name.to_string()),
            _ => None,
        };
        match *tag {
            "import_yaml" | "import_json" | "import_text" => {
                let Some(name) = name_after_as() else { return false };
                let Some(path_end) = tokens.len().checked_sub(3).filter(|n| *n >= 1) else { return false };
                let path = &self.source[end(first)..end(&tokens[path_end].1)];
                let kind = &tag["import_".len()..];
                self.replace(whole.0, whole.1, &format!("set {name} = {IMPORT_FN}({:?},{path})", kind));
                true
            }
            "load_yaml" | "load_json" | "load_text" => {
                let Some(name) = name_after_as() else { return false };
                let kind = match *tag {
                    "load_yaml" => "yaml",
                    "load_json" => "json",
                    _ => "text",
                };
                self.replace(whole.0, whole.1, &format!("set {name}"));
                loads.push((name, kind));
                true
            }
            "endload" => {
                let Some((name, kind)) = loads.pop() else { return false };
                let text = match kind {
                    "text" => "endset".to_owned(),
                    _ => format!("endset %}}{{% set {name} = {name}|load_{kind}"),
                };
                self.replace(whole.0, whole.1, &text);
                true
            }
            "profile" => {
                self.replace(whole.0, whole.1, "if true");
                true
            }
            "endprofile" => {
                self.replace(whole.0, whole.1, "endif");
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_wrapped_and_subscripts_left_alone() {
        assert_eq!(
            rewrite("{% set x = [] %}{% do x.append(d['k'][0]) %}{{ [1, [2]] }}{% for a in [1] %}{% endfor %}"),
            "{% set x = __halite_list([]) %}{% do x.append(d['k'][0]) %}{{ __halite_list([1, __halite_list([2])]) }}\
             {% for a in __halite_list([1]) %}{% endfor %}"
        );
        assert_eq!(rewrite("{{ {'a': [1]}|json }}"), "{{ __halite_dict({'a': __halite_list([1])})|json }}");
        assert_eq!(
            rewrite("{{ f(x)[0] }} {{ 'ab'[1] }}\ntext [not] {x}"),
            "{{ f(x)[0] }} {{ 'ab'[1] }}\ntext [not] {x}"
        );
    }

    #[test]
    fn salt_tags_become_sets() {
        assert_eq!(
            rewrite("{%- import_yaml 'defaults.yaml' as defaults -%}"),
            "{%- set defaults = __halite_import(\"yaml\", 'defaults.yaml') -%}"
        );
        assert_eq!(
            rewrite("{% load_yaml as conf %}\na: 1\n{% endload %}"),
            "{% set conf %}\na: 1\n{% endset %}{% set conf = conf|load_yaml %}"
        );
        assert_eq!(rewrite("{% profile as 'x' %}y{% endprofile %}"), "{% if true %}y{% endif %}");
    }
}
