//! Python's `optparse` as Salt's command-line tools use it: options anywhere among the
//! positional arguments, `--` ending them, long options abbreviated to any unique prefix,
//! `--name=value` or `--name value`, `-xVALUE` or `-x VALUE`, short flags bundled (`-vs`).
//!
//! clap parses differently in exactly the places admins' scripts rely on (abbreviations,
//! interspersed options, error texts and the exit code), so the tools that must read a
//! command line the way Salt does use this instead.

use std::collections::HashMap;

/// What an option does with its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `store_true`.
    Flag,
    /// `store_false` (the destination starts true).
    FlagFalse,
    /// `store`: takes one value.
    Value,
    /// `count` (`-v -v`).
    Count,
}

/// One option: its spellings and where its value goes.
#[derive(Debug, Clone)]
pub struct Opt {
    pub short: Option<char>,
    pub longs: &'static [&'static str],
    pub dest: &'static str,
    pub kind: Kind,
}

/// Parsed values by destination: the last value for `Value`, `"1"` for a set flag (or
/// `"0"` for a cleared `FlagFalse`), the number for `Count`.
#[derive(Debug, Default, Clone)]
pub struct Parsed {
    pub values: HashMap<&'static str, String>,
    pub args: Vec<String>,
}

impl Parsed {
    pub fn flag(&self, dest: &str) -> bool {
        self.values.get(dest).is_some_and(|v| v != "0")
    }

    pub fn value(&self, dest: &str) -> Option<&str> {
        self.values.get(dest).map(String::as_str)
    }
}

/// Parses `argv` (without the program name). The error is optparse's message, e.g.
/// `no such option: --foo`, which the tool prints after its usage line (exit 64 in Salt).
pub fn parse(opts: &[Opt], argv: &[String]) -> Result<Parsed, String> {
    let mut parsed = Parsed::default();
    let mut i = 0;
    while i < argv.len() {
        let arg = &argv[i];
        i += 1;
        if arg == "--" {
            parsed.args.extend(argv[i..].iter().cloned());
            break;
        }
        if let Some(body) = arg.strip_prefix("--") {
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (body, None),
            };
            let opt = match_long(opts, name)?;
            let shown = format!("--{name}");
            match opt.kind {
                Kind::Value => {
                    let value = match inline {
                        Some(v) => v,
                        None if i < argv.len() => {
                            i += 1;
                            argv[i - 1].clone()
                        }
                        None => return Err(format!("{shown} option requires 1 argument")),
                    };
                    parsed.values.insert(opt.dest, value);
                }
                _ if inline.is_some() => return Err(format!("{shown} option does not take a value")),
                kind => set_flag(&mut parsed, opt.dest, kind),
            }
        } else if arg.len() > 1 && arg.starts_with('-') {
            let chars: Vec<char> = arg[1..].chars().collect();
            let mut j = 0;
            while j < chars.len() {
                let c = chars[j];
                j += 1;
                let opt = opts.iter().find(|o| o.short == Some(c)).ok_or_else(|| format!("no such option: -{c}"))?;
                if opt.kind == Kind::Value {
                    let rest: String = chars[j..].iter().collect();
                    let value = if !rest.is_empty() {
                        rest
                    } else if i < argv.len() {
                        i += 1;
                        argv[i - 1].clone()
                    } else {
                        return Err(format!("-{c} option requires 1 argument"));
                    };
                    parsed.values.insert(opt.dest, value);
                    break;
                }
                set_flag(&mut parsed, opt.dest, opt.kind);
            }
        } else {
            parsed.args.push(arg.clone());
        }
    }
    Ok(parsed)
}

fn set_flag(parsed: &mut Parsed, dest: &'static str, kind: Kind) {
    let value = match kind {
        Kind::FlagFalse => "0".to_owned(),
        Kind::Count => (parsed.value(dest).and_then(|v| v.parse::<u32>().ok()).unwrap_or(0) + 1).to_string(),
        _ => "1".to_owned(),
    };
    parsed.values.insert(dest, value);
}

/// optparse's `_match_abbrev`: an exact spelling wins, else the one option some spelling of
/// which starts with `name`.
fn match_long<'a>(opts: &'a [Opt], name: &str) -> Result<&'a Opt, String> {
    if let Some(exact) = opts.iter().find(|o| o.longs.contains(&name)) {
        return Ok(exact);
    }
    let mut hits: Vec<(&str, &Opt)> = Vec::new();
    for opt in opts {
        for long in opt.longs {
            if long.starts_with(name) {
                hits.push((long, opt));
            }
        }
    }
    match hits.as_slice() {
        [] => Err(format!("no such option: --{name}")),
        [(_, opt)] => Ok(opt),
        many => {
            let mut names: Vec<String> = many.iter().map(|(l, _)| format!("--{l}")).collect();
            names.sort();
            Err(format!("ambiguous option: --{name} ({}?)", names.join(", ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTS: &[Opt] = &[
        Opt { short: Some('t'), longs: &["timeout"], dest: "timeout", kind: Kind::Value },
        Opt { short: Some('v'), longs: &["verbose"], dest: "verbose", kind: Kind::Flag },
        Opt { short: Some('s'), longs: &["static"], dest: "static", kind: Kind::Flag },
        Opt { short: None, longs: &["hide-timeout"], dest: "show_timeout", kind: Kind::FlagFalse },
        Opt { short: None, longs: &["out", "output"], dest: "output", kind: Kind::Value },
        Opt { short: None, longs: &["out-indent", "output-indent"], dest: "output_indent", kind: Kind::Value },
    ];

    fn p(args: &[&str]) -> Result<Parsed, String> {
        parse(OPTS, &args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn reads_like_optparse() {
        let got = p(&["*", "-vst5", "test.ping", "--out=json", "--hide-timeout", "--", "-x"]).unwrap();
        assert_eq!(got.args, ["*", "test.ping", "-x"]);
        assert!(got.flag("verbose") && got.flag("static"));
        assert_eq!(got.value("timeout"), Some("5"));
        assert_eq!(got.value("output"), Some("json"));
        assert!(!got.flag("show_timeout"));
        assert_eq!(p(&["--time", "3"]).unwrap().value("timeout"), Some("3"));
        assert_eq!(p(&["--out", "yaml"]).unwrap().value("output"), Some("yaml"));
    }

    #[test]
    fn errors_read_like_optparse() {
        assert_eq!(p(&["--nope"]).unwrap_err(), "no such option: --nope");
        assert_eq!(p(&["-x"]).unwrap_err(), "no such option: -x");
        assert_eq!(p(&["-t"]).unwrap_err(), "-t option requires 1 argument");
        assert_eq!(p(&["--verbose=1"]).unwrap_err(), "--verbose option does not take a value");
        assert!(p(&["--ou", "json"]).unwrap_err().starts_with("ambiguous option: --ou ("));
    }
}
