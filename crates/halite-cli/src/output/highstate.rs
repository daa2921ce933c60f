//! Salt's `highstate` outputter (`salt/output/highstate.py`) for state returns: one block per
//! state in run order, then a per-minion summary.

use halite_yaml::{py, Value};

use super::{color, nested, Style};

/// `state_output`: how much of each state is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StateOutput {
    #[default]
    Full,
    /// One line per state.
    Terse,
    /// Terse unless the state failed.
    Mixed,
    /// Terse unless the state failed or changed something.
    Changes,
}

/// The `state_*` options the outputter reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateOptions {
    pub output: StateOutput,
    /// The `*_id` variants: show the state's ID where the terse line shows its name.
    pub by_id: bool,
    /// `state_verbose`: false hides states that succeeded without changes.
    pub verbose: bool,
    /// `state_output_diff`: also hides them (`--output-diff`).
    pub diff: bool,
    /// `state_output_profile`: start times and durations.
    pub profile: bool,
}

impl Default for StateOptions {
    fn default() -> Self {
        StateOptions { output: StateOutput::Full, by_id: false, verbose: true, diff: false, profile: true }
    }
}

impl StateOptions {
    /// Reads Salt's `state_output` value (`full`, `terse`, `mixed`, `changes`, their `_id`
    /// variants; `filter` is shown as full).
    pub fn with_output(mut self, name: &str) -> StateOptions {
        let name = name.to_lowercase();
        self.by_id = name.ends_with("_id");
        self.output = if name.starts_with("terse") {
            StateOutput::Terse
        } else if name.starts_with("mixed") {
            StateOutput::Mixed
        } else if name.starts_with("changes") {
            StateOutput::Changes
        } else {
            StateOutput::Full
        };
        self
    }
}

struct Colors {
    on: bool,
}

impl Colors {
    fn c(&self, code: &'static str) -> &'static str {
        if self.on {
            code
        } else {
            ""
        }
    }
}

pub(super) fn output(data: &Value, style: Style) -> String {
    let mut data = data;
    if let Some(inner) = get(data, "return") {
        data = inner;
    }
    if let Some(inner) = get(data, "data") {
        data = inner;
    }
    match data {
        Value::Integer(_) | Value::String(_) => return py::text(data),
        Value::Nil => return "None".into(),
        _ => {}
    }
    let Some(hosts) = data.as_map() else { return String::new() };
    hosts.iter().map(|(host, host_data)| format_host(&py::text(host), host_data, style)).collect::<Vec<_>>().join("\n")
}

fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_map()?.iter().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v)
}

/// A state's `result`: True, False or None (anything else counts as its truth value).
fn result_of(ret: &Value) -> Option<bool> {
    match get(ret, "result") {
        Some(Value::Boolean(b)) => Some(*b),
        Some(Value::Nil) | None => None,
        Some(other) => Some(!matches!(other, Value::Integer(i) if i.as_i64() == Some(0))),
    }
}

fn format_host(host: &str, data: &Value, style: Style) -> String {
    let colors = Colors { on: style.color };
    let opts = style.state;
    let mut hcolor = colors.c(color::GREEN);
    let mut lines: Vec<String> = Vec::new();
    let mut nchanges = 0usize;
    // Counts by result: succeeded, failed, not run; and warnings.
    let (mut n_true, mut n_false, mut n_none, mut n_warnings) = (0usize, 0usize, 0usize, 0usize);
    let mut durations = 0f64;
    let endc = colors.c(color::ENDC);
    match data {
        Value::Integer(_) => {
            lines.push(format!("{hcolor}    {}{endc}", py::text(data)));
            hcolor = colors.c(color::CYAN);
        }
        Value::String(_) => {
            for line in nested::split_lines(&py::text(data)) {
                lines.push(format!("{hcolor}    {line}{endc}"));
            }
            hcolor = colors.c(color::CYAN);
        }
        Value::Array(errors) => {
            hcolor = colors.c(color::LIGHT_RED);
            lines.push(format!("    {hcolor}Data failed to compile:{endc}"));
            for err in errors {
                lines.push(format!("{hcolor}----------\n    {}{endc}", py::text(err).replace('\x1b', "?")));
            }
        }
        Value::Map(states) => {
            let mut states: Vec<(&Value, &Value)> =
                states.iter().filter(|(_, info)| get(info, "result").is_some()).map(|(k, v)| (k, v)).collect();
            let run_num = |info: &Value| get(info, "__run_num__").and_then(Value::as_f64).unwrap_or(0.0);
            states.sort_by(|a, b| run_num(a.1).total_cmp(&run_num(b.1)));
            for (tname, ret) in states {
                let result = result_of(ret);
                match result {
                    Some(true) => n_true += 1,
                    Some(false) => n_false += 1,
                    None => n_none += 1,
                }
                durations += get(ret, "duration").and_then(duration_ms).unwrap_or(0.0);
                let (changed, ctext) = format_changes(get(ret, "changes"), style);
                nchanges += usize::from(changed);
                if (opts.diff || !opts.verbose) && result == Some(true) && !changed {
                    continue;
                }
                let mut tcolor = colors.c(color::GREEN);
                if changed {
                    tcolor = colors.c(color::CYAN);
                }
                if result == Some(false) {
                    hcolor = colors.c(color::RED);
                    tcolor = colors.c(color::RED);
                }
                if result.is_none() {
                    hcolor = colors.c(color::LIGHT_YELLOW);
                    tcolor = colors.c(color::LIGHT_YELLOW);
                }
                let tname = py::text(tname);
                let mut comps: Vec<&str> = tname.split("_|-").collect();
                while comps.len() < 4 {
                    comps.push("");
                }
                if opts.by_id {
                    comps[2] = comps[1];
                }
                let terse = match opts.output {
                    StateOutput::Terse => true,
                    StateOutput::Mixed => result != Some(false),
                    StateOutput::Changes => result == Some(true) && !changed,
                    StateOutput::Full => false,
                };
                if terse {
                    lines.push(format_terse(tcolor, &comps, ret, result, &colors, opts.profile));
                    continue;
                }
                lines.extend(full_state(tcolor, &comps, ret, result, &colors, opts.profile));
                lines.push(format!("{tcolor}     Changes:   {ctext}{endc}"));
                if let Some(Value::Array(warnings)) = get(ret, "warnings") {
                    n_warnings += 1;
                    let text: Vec<String> = warnings.iter().map(py::text).collect();
                    let red = colors.c(color::LIGHT_RED);
                    lines.push(format!("   {red} Warnings: {}{endc}", wrap(&text.join("\n"), 80, 14).trim_start()));
                }
            }
            lines.extend(summary(host, (n_true, n_false, n_none, n_warnings), nchanges, durations, &colors, opts));
        }
        _ => {}
    }
    lines.insert(0, format!("{hcolor}{}:{endc}", host.replace('\x1b', "?")));
    lines.join("\n")
}

/// A state's `duration` in milliseconds (a number, or text such as `"12.5 ms"`).
fn duration_ms(v: &Value) -> Option<f64> {
    match v {
        Value::F64(f) => Some(*f),
        Value::F32(f) => Some(f64::from(*f)),
        Value::Integer(i) => i.as_f64(),
        other => py::text(other).split(" ms").next()?.trim().parse().ok(),
    }
}

fn full_state(
    tcolor: &str,
    comps: &[&str],
    ret: &Value,
    result: Option<bool>,
    colors: &Colors,
    profile: bool,
) -> Vec<String> {
    let endc = colors.c(color::ENDC);
    let result_text = match result {
        Some(true) => "True",
        Some(false) => "False",
        None => "None",
    };
    let mut comment = match get(ret, "comment") {
        Some(v) => py::text(v).trim().replace('\n', &format!("\n{}", " ".repeat(14))),
        None => String::new(),
    };
    match get(ret, "data") {
        Some(Value::Array(items)) => {
            for item in items {
                comment = format!("{comment} {}", py::text(item));
            }
        }
        Some(Value::Map(pairs)) => {
            for (k, v) in pairs {
                comment = format!("{comment}\n\t\t{}: {}", py::text(k), py::text(v));
            }
        }
        Some(other) => comment = format!("{comment} {}", py::text(other)),
        None => {}
    }
    let mut out = vec![
        format!("{tcolor}----------{endc}"),
        format!("    {tcolor}      ID: {}{endc}", comps[1]),
        format!("    {tcolor}Function: {}.{}{endc}", comps[0], comps[3]),
        format!("    {tcolor}  Result: {result_text}{endc}"),
        format!("    {tcolor} Comment: {comment}{endc}"),
    ];
    if profile {
        if let Some(start) = get(ret, "start_time") {
            let duration = get(ret, "duration").map(|d| format!("{} ms", py::text(d))).unwrap_or_default();
            out.push(format!("    {tcolor} Started: {}{endc}", py::text(start)));
            out.push(format!("    {tcolor}Duration: {duration}{endc}"));
        }
    }
    if comps[1] != comps[2] {
        out.insert(3, format!("    {tcolor}    Name: {}{endc}", comps[2]));
    }
    out
}

fn format_terse(
    tcolor: &str,
    comps: &[&str],
    ret: &Value,
    result: Option<bool>,
    colors: &Colors,
    profile: bool,
) -> String {
    let changed = get(ret, "changes").is_some_and(is_truthy);
    let label = match result {
        Some(false) => "Failed",
        None => "Differs",
        Some(true) if changed => "Changed",
        Some(true) => "Clean",
    };
    let mut line = String::new();
    if let Some(Value::Array(warnings)) = get(ret, "warnings") {
        let text: Vec<String> = warnings.iter().map(py::text).collect();
        line.push_str(&format!(
            "{}Warnings:\n{}{}",
            colors.c(color::LIGHT_RED),
            text.join("\n"),
            colors.c(color::ENDC)
        ));
    }
    line.push_str(&format!(
        " {tcolor} Name: {} - Function: {}.{} - Result: {label}",
        comps[2],
        comps[0],
        comps[comps.len() - 1]
    ));
    if profile {
        if let Some(start) = get(ret, "start_time") {
            let duration = get(ret, "duration").map(py::text).unwrap_or_default();
            line.push_str(&format!(" - Started: {} - Duration: {duration} ms", py::text(start)));
        }
    }
    line.push_str(colors.c(color::ENDC));
    line
}

fn is_truthy(v: &Value) -> bool {
    match v {
        Value::Nil => false,
        Value::Boolean(b) => *b,
        Value::Map(m) => !m.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::String(s) => !s.as_bytes().is_empty(),
        Value::Integer(i) => i.as_i64() != Some(0),
        _ => true,
    }
}

/// Salt's `_format_changes`: whether the state changed anything, and the text after
/// `Changes:` (the changes through nested, indented by 14).
fn format_changes(changes: Option<&Value>, style: Style) -> (bool, String) {
    let Some(changes) = changes.filter(|c| is_truthy(c)) else { return (false, String::new()) };
    if !changes.is_map() {
        return (true, format!("Invalid Changes data: {}", py::text(changes)));
    }
    let text = nested::output_indented(changes, Style { retcode: 0, ..style }, 14);
    (true, format!("\n{}", text.trim_end()))
}

fn summary(
    host: &str,
    (n_true, n_false, n_none, n_warnings): (usize, usize, usize, usize),
    nchanges: usize,
    durations: f64,
    colors: &Colors,
    opts: StateOptions,
) -> Vec<String> {
    let (cyan, green, red, yellow, lred, endc) = (
        colors.c(color::CYAN),
        colors.c(color::GREEN),
        colors.c(color::RED),
        colors.c(color::LIGHT_YELLOW),
        colors.c(color::LIGHT_RED),
        colors.c(color::ENDC),
    );
    // Salt sizes the columns from the counts it recorded (a result seen at least once).
    let mut counts: Vec<usize> = Vec::new();
    for (n, seen) in [(n_true, n_true > 0), (n_false, n_false > 0), (n_none, n_none > 0), (n_warnings, n_warnings > 0)]
    {
        if seen {
            counts.push(n);
        }
    }
    let count_max_len = counts.iter().map(|c| c.to_string().len()).max().unwrap_or(0);
    let line_max_len = "Succeeded".len() + count_max_len + 2;
    let counted = |label: &str, count: String| {
        let width = line_max_len - (label.len() + 2);
        format!("{label}: {count:>width$}")
    };
    let mut out = vec![format!("{cyan}\nSummary for {host}\n{}{endc}", "-".repeat(line_max_len))];
    let mut changestats = Vec::new();
    if n_none > 0 {
        changestats.push(format!("{yellow}unchanged={n_none}{endc}"));
    }
    if nchanges > 0 {
        changestats.push(format!("{green}changed={nchanges}{endc}"));
    }
    let changestats = if changestats.is_empty() { String::new() } else { format!(" ({})", changestats.join(", ")) };
    out.push(format!("{green}{}{endc}{changestats}", counted("Succeeded", (n_true + n_none).to_string())));
    let failed_color = if n_false > 0 { red } else { cyan };
    out.push(format!("{failed_color}{}{endc}", counted("Failed", n_false.to_string())));
    if n_warnings > 0 {
        out.push(format!("{lred}{}{endc}", counted("Warnings", n_warnings.to_string())));
    }
    let total = n_true + n_false + n_none;
    let width = line_max_len.saturating_sub(7);
    out.push(format!("{cyan}{}\nTotal states run: {total:>width$}{endc}", "-".repeat(line_max_len)));
    if opts.profile {
        let (value, unit) = if durations > 999.0 { (durations / 1000.0, "s") } else { (durations, "ms") };
        let width = line_max_len.saturating_sub(5);
        out.push(format!("{cyan}Total run time: {:>width$} {unit}{endc}", format!("{value:.3}")));
    }
    out
}

/// Python's `textwrap.fill(text, width, initial_indent=" " * indent, subsequent_indent=same)`
/// for plain words: whitespace runs become single spaces, lines break between words.
fn wrap(text: &str, width: usize, indent: usize) -> String {
    let pad = " ".repeat(indent);
    let mut lines: Vec<String> = Vec::new();
    let mut current = pad.clone();
    for word in text.split_whitespace() {
        let fits = current.len() == pad.len() || current.len() + 1 + word.len() <= width;
        if !fits {
            lines.push(std::mem::replace(&mut current, pad.clone()));
        }
        if current.len() > pad.len() {
            current.push(' ');
        }
        current.push_str(word);
    }
    lines.push(current);
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pairs: Vec<(&str, Value)>) -> Value {
        Value::Map(pairs.into_iter().map(|(k, v)| (Value::from(k), v)).collect())
    }

    #[test]
    fn one_state_with_changes() {
        let state = m(vec![
            ("name", Value::from("foo")),
            (
                "changes",
                m(vec![(
                    "testing",
                    m(vec![("old", Value::from("Unchanged")), ("new", Value::from("Something pretended to change"))]),
                )]),
            ),
            ("result", Value::Boolean(true)),
            ("comment", Value::from("Success!")),
            ("__run_num__", Value::from(0)),
            ("start_time", Value::from("03:30:00.000001")),
            ("duration", Value::F64(1.5)),
        ]);
        let data = m(vec![("app1", m(vec![("test_|-foo_|-foo_|-succeed_with_changes", state)]))]);
        let want = "app1:
----------
          ID: foo
    Function: test.succeed_with_changes
      Result: True
     Comment: Success!
     Started: 03:30:00.000001
    Duration: 1.5 ms
     Changes:   
              ----------
              testing:
                  ----------
                  new:
                      Something pretended to change
                  old:
                      Unchanged

Summary for app1
------------
Succeeded: 1 (changed=1)
Failed:    0
------------
Total states run:     1
Total run time:   1.500 ms";
        assert_eq!(output(&data, Style::default()), want);
    }
}
