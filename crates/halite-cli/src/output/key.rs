//! Salt's `key` outputter (`salt/output/key.py`), salt-key's default.

use halite_yaml::{py, Value};

use super::color;

/// Key states sorted by directory name, each under its title; ids sorted in code point
/// order, escape characters shown as `?`; `id:  value` lines when a state maps ids to values
/// (fingerprints). Data that is not a dict of states is printed by `nested`, as Salt's
/// outputter would fail and fall back.
pub(super) fn output(data: &Value, use_color: bool) -> String {
    let Value::Map(states) = data else { return super::nested::output(data, super::Style::default()) };
    let paint = |code: &'static str| if use_color { code } else { "" };
    let mut sorted: Vec<&(Value, Value)> = states.iter().collect();
    sorted.sort_by_key(|(k, _)| py::text(k));
    let mut out = String::new();
    for (state, entries) in sorted {
        let (title, title_color, item_color) = match state.as_str().unwrap_or("") {
            "minions_pre" => ("Unaccepted Keys:", color::LIGHT_RED, color::RED),
            "minions" => ("Accepted Keys:", color::LIGHT_GREEN, color::GREEN),
            "minions_denied" => ("Denied Keys:", color::LIGHT_MAGENTA, color::MAGENTA),
            "minions_rejected" => ("Rejected Keys:", color::LIGHT_BLUE, color::BLUE),
            _ => ("Local Keys:", color::LIGHT_MAGENTA, color::MAGENTA),
        };
        out.push_str(&format!("{}{title}{}\n", paint(title_color), paint(color::ENDC)));
        let (item_color, endc) = (paint(item_color), paint(color::ENDC));
        match entries {
            Value::Array(ids) => {
                let mut ids: Vec<String> = ids.iter().map(py::text).collect();
                ids.sort_unstable();
                for id in ids {
                    out.push_str(&format!("{item_color}{}{endc}\n", id.replace('\x1b', "?")));
                }
            }
            Value::Map(pairs) => {
                let mut pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (py::text(k), py::text(v))).collect();
                pairs.sort();
                for (id, value) in pairs {
                    out.push_str(&format!("{item_color}{}:  {value}{endc}\n", id.replace('\x1b', "?")));
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{render, tests::sample, Outputter, Style};

    // Expected texts were produced by salt-key 3007.8 on the same keys.
    #[test]
    fn key_outputter() {
        let want = "Accepted Keys:\ndb1-masterdb\nsalt\nDenied Keys:\nmail\nUnaccepted Keys:\nWeb1\napp1\ndb2\nRejected Keys:\nbots\n";
        assert_eq!(render(&sample(), Outputter::Key, Style::default()), want);
        let colored = render(&sample(), Outputter::Key, Style { color: true, ..Style::default() });
        assert!(colored.starts_with("\x1b[0;1;32mAccepted Keys:\x1b[0;0m\n\x1b[0;32mdb1-masterdb\x1b[0;0m\n"));
    }
}
