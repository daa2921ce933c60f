//! `salt-run`: Salt's runner command for the runner functions halite has (`jobs.*`,
//! `manage.*`), with Salt's syntax, outputs and exit codes. Runners run here and use the
//! master over the local channel, as Salt's run in the salt-run process.

use std::process::ExitCode;

use halite_cli::client::{Client, Identity};
use halite_cli::display::Printer;
use halite_cli::optparse::{self, Kind, Opt};
use halite_cli::output::Value;
use halite_cli::runners::{self, Context, RunnerError};

const USAGE: &str = "Usage: salt-run [options] <function> [arguments]";
const EX_USAGE: u8 = 64;

const fn flag(short: Option<char>, longs: &'static [&'static str], dest: &'static str) -> Opt {
    Opt { short, longs, dest, kind: Kind::Flag }
}

const fn value(short: Option<char>, longs: &'static [&'static str], dest: &'static str) -> Opt {
    Opt { short, longs, dest, kind: Kind::Value }
}

const OPTIONS: &[Opt] = &[
    flag(Some('h'), &["help"], "help"),
    flag(None, &["version"], "version"),
    value(Some('c'), &["config-dir"], "config_dir"),
    value(Some('t'), &["timeout"], "timeout"),
    flag(Some('d'), &["doc", "documentation"], "doc"),
    flag(None, &["async"], "async"),
    flag(None, &["show-jid"], "show_jid"),
    flag(Some('q'), &["quiet"], "quiet"),
    value(Some('a'), &["auth", "eauth", "external-auth"], "eauth"),
    value(None, &["out", "output"], "output"),
    value(None, &["out-indent", "output-indent"], "output_indent"),
    value(None, &["out-file", "output-file"], "output_file"),
    flag(None, &["out-file-append", "output-file-append"], "output_file_append"),
    flag(None, &["no-color", "no-colour"], "no_color"),
    flag(None, &["force-color", "force-colour"], "force_color"),
    value(Some('l'), &["log-level"], "log_level"),
    value(None, &["log-file"], "log_file"),
    value(None, &["log-file-level"], "log_file_level"),
];

const NOT_SUPPORTED: &[(&str, &str)] =
    &[("doc", "--doc"), ("async", "--async"), ("show_jid", "--show-jid"), ("eauth", "--eauth")];

fn usage_error(msg: &str) -> ExitCode {
    eprintln!("{USAGE}\n\nsalt-run: error: {msg}");
    ExitCode::from(EX_USAGE)
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let parsed = match optparse::parse(OPTIONS, &argv) {
        Ok(p) => p,
        Err(msg) => return usage_error(&msg),
    };
    if parsed.flag("help") {
        println!(
            "{USAGE}\n\nRuns a runner function on the master.\n\nRunner functions: {}",
            runners::FUNCTIONS.iter().chain(&["state.event"]).copied().collect::<Vec<_>>().join(", ")
        );
        return ExitCode::SUCCESS;
    }
    if parsed.flag("version") {
        println!("salt-run {} (halite)", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    if let Some((_, name)) = NOT_SUPPORTED.iter().find(|(dest, _)| parsed.values.contains_key(dest)) {
        return usage_error(&format!("{name} is not supported by halite yet"));
    }
    let Some(fun) = parsed.args.first().cloned() else {
        println!("{USAGE}");
        return usage_error("no function given");
    };
    match run(&parsed, &fun) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("{e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(parsed: &optparse::Parsed, fun: &str) -> anyhow::Result<u8> {
    let timeout = match parsed.value("timeout") {
        None => None,
        Some(t) => match t.parse::<u64>() {
            Ok(t) if t > 0 => Some(t),
            Ok(_) => None,
            Err(_) => {
                usage_error(&format!("option -t: invalid integer value: '{t}'"));
                return Ok(EX_USAGE);
            }
        },
    };
    let config = halite_cli::config::load(parsed.value("config_dir").map(std::path::Path::new))?;
    let printer = Printer::from_options(parsed, &config)?;
    let quiet = parsed.flag("quiet");
    let args = halite_cli::args::parse_input(&parsed.args[1..], &[]);
    let unreachable = |e: &dyn std::fmt::Display| -> anyhow::Result<u8> {
        eprintln!("[ERROR   ] {e}");
        printer.display(&Value::from("The salt master could not be contacted. Is master running?"), None, 1)?;
        Ok(1)
    };
    let identity = match Identity::current(&config) {
        Ok(i) => i,
        Err(e) => return unreachable(&e),
    };
    let mut client = match Client::connect(&config.sock_dir) {
        Ok(c) => c,
        Err(e) => return unreachable(&e),
    };
    let mut ctx = Context { client: &mut client, identity: &identity, config: &config, timeout };
    // state.event streams to stdout as events arrive, so it is not one of the runners that
    // compute a value (and that the master can run itself).
    let result = if fun == "state.event" {
        halite_cli::event_stream::event(&mut ctx, &args, &mut std::io::stdout().lock())
    } else {
        runners::call(&mut ctx, fun, &args)
    };
    match result {
        Ok(out) => {
            if !quiet {
                printer.display(&out.data, out.outputter.as_deref(), 0)?;
            }
            Ok(0)
        }
        // Salt prints why through nested and exits 0; so does halite, for scripts' sake.
        Err(e @ (RunnerError::Unknown(_) | RunnerError::BadArguments(_))) => {
            if !quiet {
                printer.display(&Value::from(e.to_string()), Some("nested"), 1)?;
            }
            Ok(0)
        }
        Err(RunnerError::Backend(e)) => unreachable(&e),
    }
}
