//! Salt's `display_output` for the tools: which outputter prints a piece of data (the
//! `--out` option, else the one the data asks for, else nested), colour on a terminal, and
//! `--out-file`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use halite_config::MasterConfig;
use halite_yaml::{py, Value};

use crate::optparse::Parsed;
use crate::output::{self, Outputter, StateOptions, Style};

pub struct Printer {
    /// `--out`, or `output` from the master config.
    pub outputter: Option<String>,
    pub style: Style,
    out_file: Option<PathBuf>,
}

impl Printer {
    /// Reads Salt's output options (`--out`, `--out-indent`, `--out-file`,
    /// `--out-file-append`, `--no-color`, `--force-color`); an existing `--out-file` is
    /// emptied unless appending, as Salt does, keeping its permissions.
    pub fn from_options(parsed: &Parsed, config: &MasterConfig) -> anyhow::Result<Printer> {
        let config_output = config.extra("output").and_then(|v| v.as_str()).map(str::to_owned);
        let outputter = parsed.value("output").map(str::to_owned).or(config_output);
        let color = if parsed.flag("force_color") {
            true
        } else if parsed.flag("no_color") {
            false
        } else {
            config.extra("color").and_then(Value::as_bool).unwrap_or(true) && std::io::stdout().is_terminal()
        };
        let indent = match parsed.value("output_indent") {
            None => None,
            Some(v) => Some(v.parse::<i64>().map_err(|_| anyhow::anyhow!("--out-indent: {v:?} is not a number"))?),
        };
        let config_text = |key: &str| config.extra(key).map(py::text);
        let config_bool = |key: &str, default: bool| config.extra(key).and_then(Value::as_bool).unwrap_or(default);
        let mut state = StateOptions {
            verbose: config_bool("state_verbose", true),
            diff: config_bool("state_output_diff", false) || parsed.flag("state_output_diff"),
            profile: config_bool("state_output_profile", true),
            ..StateOptions::default()
        };
        if let Some(name) = parsed.value("state_output").map(str::to_owned).or_else(|| config_text("state_output")) {
            state = state.with_output(&name);
        }
        match parsed.value("state_verbose") {
            Some("True" | "true") => state.verbose = true,
            Some("False" | "false") => state.verbose = false,
            _ => {}
        }
        let out_file = parsed.value("output_file").map(PathBuf::from);
        if let Some(path) = &out_file {
            if !parsed.flag("output_file_append") && path.is_file() {
                std::fs::OpenOptions::new()
                    .write(true)
                    .truncate(true)
                    .open(path)
                    .map_err(|e| anyhow::anyhow!("{}: Access denied: {e}", path.display()))?;
            }
        }
        Ok(Printer { outputter, style: Style { color, indent, retcode: 0, state }, out_file })
    }

    /// Prints `data` with the `--out` outputter, else the one the data asks for
    /// (`requested`), else nested; an unknown name falls back to nested with Salt's error.
    pub fn display(&self, data: &Value, requested: Option<&str>, retcode: i64) -> anyhow::Result<()> {
        let name = match self.outputter.as_deref() {
            Some(o) if o != "highstate" => Some(o),
            _ => requested,
        };
        let outputter = match name.filter(|n| !n.is_empty()) {
            None => Outputter::Nested,
            Some("no_return") => return self.emit(&no_return(data, self.style.color)),
            Some(n) => Outputter::from_name(n).unwrap_or_else(|| {
                if n != "grains" {
                    eprintln!("[ERROR   ] Invalid outputter {n} specified, fall back to nested");
                }
                Outputter::Nested
            }),
        };
        let text = output::render(data, outputter, Style { retcode, ..self.style });
        self.emit(&text)
    }

    fn emit(&self, text: &str) -> anyhow::Result<()> {
        match &self.out_file {
            Some(path) => {
                if text.is_empty() {
                    return Ok(());
                }
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| anyhow::anyhow!("--out-file {}: {e}", path.display()))?;
                f.write_all(text.as_bytes())?;
            }
            None => {
                let mut out = std::io::stdout().lock();
                // A closed pipe (`salt ... | head`) is not an error, as in Salt.
                let _ = out.write_all(text.as_bytes()).and_then(|_| out.flush());
            }
        }
        Ok(())
    }
}

/// Salt's `no_return` outputter: keys cyan, each line of the text red, indented by four.
fn no_return(data: &Value, color: bool) -> String {
    let (cyan, red, endc) = if color { ("\x1b[0;36m", "\x1b[0;31m", "\x1b[0;0m") } else { ("", "", "") };
    let mut out = String::new();
    let Some(pairs) = data.as_map() else { return out };
    let mut pairs: Vec<&(Value, Value)> = pairs.iter().collect();
    pairs.sort_by_key(|(k, _)| py::text(k));
    for (k, v) in pairs {
        out.push_str(&format!("{cyan}{}{endc}:\n", py::text(k)));
        for line in py::text(v).split('\n') {
            out.push_str(&format!("{red}    {line}{endc}\n"));
        }
    }
    out.truncate(out.trim_end().len());
    if !out.is_empty() {
        out.push('\n');
    }
    out
}
