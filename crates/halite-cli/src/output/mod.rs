//! Salt's outputters (`--out`), for the data halite's tools print.
//!
//! Each submodule reproduces one of Salt's `salt/output/*.py` on the data it receives (a
//! Python value: here a [`Value`], maps in insertion order as Python dicts keep them), and
//! differential tests against the Python tools hold them to it. [`render`] is Salt's
//! `display_output`: the outputter's text, trailing whitespace stripped, one newline.

mod highstate;
mod key;
mod nested;
mod text;

pub use halite_yaml::Value;
pub use highstate::{StateOptions, StateOutput};

/// Printable data as the tools build it: strings, lists and maps of them.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Str(String),
    List(Vec<Node>),
    Map(Vec<(String, Node)>),
}

impl Node {
    pub fn list<S: Into<String>>(items: impl IntoIterator<Item = S>) -> Node {
        Node::List(items.into_iter().map(|s| Node::Str(s.into())).collect())
    }

    pub fn to_value(&self) -> Value {
        match self {
            Node::Str(s) => Value::from(s.as_str()),
            Node::List(items) => Value::Array(items.iter().map(Node::to_value).collect()),
            Node::Map(pairs) => {
                Value::Map(pairs.iter().map(|(k, v)| (Value::from(k.as_str()), v.to_value())).collect())
            }
        }
    }
}

/// The outputters halite has, by Salt's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outputter {
    Key,
    Json,
    Yaml,
    Nested,
    Txt,
    Raw,
    NewlineValuesOnly,
    Quiet,
    Highstate,
}

impl Outputter {
    /// `None` for a name halite does not have; Salt then logs an error and falls back to
    /// nested. `text` is Salt's alias of `txt`.
    pub fn from_name(name: &str) -> Option<Outputter> {
        Some(match name {
            "key" => Outputter::Key,
            "json" => Outputter::Json,
            "yaml" => Outputter::Yaml,
            "nested" => Outputter::Nested,
            "txt" | "text" => Outputter::Txt,
            "raw" => Outputter::Raw,
            "newline_values_only" => Outputter::NewlineValuesOnly,
            "quiet" => Outputter::Quiet,
            "highstate" => Outputter::Highstate,
            _ => return None,
        })
    }
}

/// Rendering options shared by the outputters.
#[derive(Debug, Clone, Copy, Default)]
pub struct Style {
    pub color: bool,
    /// `--out-indent`: `None` is Salt's default (json indent 4, yaml block style).
    pub indent: Option<i64>,
    /// A job's return code: nested paints lists and dict keys red when it is not 0.
    pub retcode: i64,
    /// The `state_*` options of the highstate outputter.
    pub state: StateOptions,
}

/// Renders `data` as `salt.output.display_output` prints it: the outputter's text with
/// trailing whitespace stripped, then a newline; nothing at all when that text is empty.
pub fn render(data: &Value, outputter: Outputter, style: Style) -> String {
    let mut text = format(data, outputter, style);
    text.truncate(text.trim_end().len());
    if !text.is_empty() {
        text.push('\n');
    }
    text
}

/// The outputter's own text (`salt.output.out_format` before the strip).
pub fn format(data: &Value, outputter: Outputter, style: Style) -> String {
    match outputter {
        Outputter::Key => key::output(data, style.color),
        Outputter::Json => json_output(data, style.indent),
        Outputter::Yaml => halite_yaml::dump::yaml(data, false),
        Outputter::Nested => nested::output(data, style),
        Outputter::Txt => text::txt(data),
        Outputter::Raw => halite_yaml::py::text(data),
        Outputter::NewlineValuesOnly => text::newline_values_only(data),
        Outputter::Quiet => String::new(),
        Outputter::Highstate => highstate::output(data, style),
    }
}

/// Salt's `json` outputter: `json.dumps(data, default=repr, indent=4, ensure_ascii=False)`;
/// `indent` is `--out-indent`: unset is 4, a negative number is one line.
fn json_output(data: &Value, indent: Option<i64>) -> String {
    let indent = match indent {
        None => Some(4),
        Some(n) if n < 0 => None,
        Some(n) => Some(n as usize),
    };
    halite_yaml::dump::json(data, &halite_yaml::dump::JsonStyle { indent, sort_keys: false, ensure_ascii: false })
}

/// Salt's terminal colours (`salt.utils.color.get_colors`): each code starts with a reset.
pub(crate) mod color {
    pub const RED: &str = "\x1b[0;31m";
    pub const LIGHT_RED: &str = "\x1b[0;1;31m";
    pub const GREEN: &str = "\x1b[0;32m";
    pub const LIGHT_GREEN: &str = "\x1b[0;1;32m";
    pub const LIGHT_YELLOW: &str = "\x1b[0;1;33m";
    pub const BLUE: &str = "\x1b[0;34m";
    pub const LIGHT_BLUE: &str = "\x1b[0;1;34m";
    pub const MAGENTA: &str = "\x1b[0;35m";
    pub const LIGHT_MAGENTA: &str = "\x1b[0;1;35m";
    pub const CYAN: &str = "\x1b[0;36m";
    pub const ENDC: &str = "\x1b[0;0m";
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Value {
        Node::Map(vec![
            ("minions".into(), Node::list(["db1-masterdb", "salt"])),
            ("minions_pre".into(), Node::list(["app1", "db2", "Web1"])),
            ("minions_rejected".into(), Node::list(["bots"])),
            ("minions_denied".into(), Node::list(["mail"])),
        ])
        .to_value()
    }

    #[test]
    fn txt_raw_nested_on_key_listings() {
        assert_eq!(
            render(&sample(), Outputter::Txt, Style::default()),
            "minions: ['db1-masterdb', 'salt']\nminions_pre: ['app1', 'db2', 'Web1']\nminions_rejected: ['bots']\nminions_denied: ['mail']\n"
        );
        assert_eq!(
            render(&sample(), Outputter::Raw, Style::default()),
            "{'minions': ['db1-masterdb', 'salt'], 'minions_pre': ['app1', 'db2', 'Web1'], 'minions_rejected': ['bots'], 'minions_denied': ['mail']}\n"
        );
        assert_eq!(
            render(&sample(), Outputter::Nested, Style::default()),
            "minions:\n    - db1-masterdb\n    - salt\nminions_denied:\n    - mail\nminions_pre:\n    - app1\n    - db2\n    - Web1\nminions_rejected:\n    - bots\n"
        );
        assert_eq!(render(&sample(), Outputter::Quiet, Style::default()), "");
    }
}
