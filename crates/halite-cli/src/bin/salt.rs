//! `salt`: publish a job to the minions a target names and print their returns, with Salt's
//! syntax, options, outputs and exit codes. Talks to the running master over the local
//! channel in `sock_dir` (see halite-ipc).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use halite_cli::batch::{self, BatchEvent, BatchJob, BatchSize};
use halite_cli::client::{Client, ClientError, Identity};
use halite_cli::display::Printer;
use halite_cli::optparse::{self, Kind, Opt};
use halite_cli::output::Value;
use halite_cli::returns::{retcode_of, wait_for_returns, Collector, MinionReturn};
use halite_ipc::{ErrorKind, Request};

const USAGE: &str = "Usage: salt [options] '<target>' <function> [arguments]";
/// Salt's exit codes (`salt.defaults.exitcodes`) and the CLI's own.
const EX_GENERIC: u8 = 1;
const EX_NO_RETURN: u8 = 2;
const EX_MISSING_TARGET: u8 = 42;
const EX_USAGE: u8 = 64;

const fn flag(short: Option<char>, longs: &'static [&'static str], dest: &'static str) -> Opt {
    Opt { short, longs, dest, kind: Kind::Flag }
}

const fn value(short: Option<char>, longs: &'static [&'static str], dest: &'static str) -> Opt {
    Opt { short, longs, dest, kind: Kind::Value }
}

/// Salt's `SaltCMDOptionParser` options, in its order. Those halite does not act on are still
/// accepted, so existing command lines parse; `main` refuses the ones whose effect would
/// otherwise be silently missing.
const OPTIONS: &[Opt] = &[
    flag(Some('h'), &["help"], "help"),
    flag(None, &["version"], "version"),
    flag(Some('V'), &["versions-report"], "versions_report"),
    value(Some('c'), &["config-dir"], "config_dir"),
    value(Some('t'), &["timeout"], "timeout"),
    flag(Some('s'), &["static"], "static"),
    flag(Some('p'), &["progress"], "progress"),
    flag(None, &["failhard"], "failhard"),
    flag(None, &["async"], "async"),
    value(None, &["subset"], "subset"),
    flag(Some('v'), &["verbose"], "verbose"),
    Opt { short: None, longs: &["hide-timeout"], dest: "show_timeout", kind: Kind::FlagFalse },
    flag(None, &["show-jid"], "show_jid"),
    value(Some('b'), &["batch", "batch-size"], "batch"),
    value(None, &["batch-wait"], "batch_wait"),
    value(None, &["batch-safe-limit"], "batch_safe_limit"),
    value(None, &["batch-safe-size"], "batch_safe_size"),
    value(None, &["return"], "return"),
    value(None, &["return_config"], "return_config"),
    value(None, &["return_kwargs"], "return_kwargs"),
    value(Some('a'), &["auth", "eauth", "external-auth"], "eauth"),
    flag(Some('T'), &["make-token"], "mktoken"),
    value(None, &["username"], "username"),
    value(None, &["password"], "password"),
    flag(Some('d'), &["doc", "documentation"], "doc"),
    value(None, &["args-separator"], "args_separator"),
    flag(None, &["summary"], "cli_summary"),
    value(None, &["metadata"], "metadata"),
    flag(None, &["output-diff"], "state_output_diff"),
    flag(None, &["config-dump"], "config_dump"),
    flag(None, &["preview-target"], "preview_target"),
    // Not in Salt's `salt` (it is salt-call's): exit with the minions' own highest retcode.
    flag(None, &["retcode-passthrough"], "retcode_passthrough"),
    // Targeting.
    flag(Some('H'), &["hosts"], "list_hosts"),
    flag(Some('E'), &["pcre"], "pcre"),
    flag(Some('L'), &["list"], "list"),
    flag(Some('G'), &["grain"], "grain"),
    flag(Some('P'), &["grain-pcre"], "grain_pcre"),
    flag(Some('N'), &["nodegroup"], "nodegroup"),
    flag(Some('R'), &["range"], "range"),
    value(None, &["delimiter"], "delimiter"),
    flag(Some('C'), &["compound"], "compound"),
    flag(Some('I'), &["pillar"], "pillar_target"),
    flag(Some('J'), &["pillar-pcre"], "pillar_pcre"),
    flag(Some('S'), &["ipcidr"], "ipcidr"),
    // Output.
    value(None, &["out", "output"], "output"),
    value(None, &["out-indent", "output-indent"], "output_indent"),
    value(None, &["out-file", "output-file"], "output_file"),
    flag(None, &["out-file-append", "output-file-append"], "output_file_append"),
    flag(None, &["no-color", "no-colour"], "no_color"),
    flag(None, &["force-color", "force-colour"], "force_color"),
    value(None, &["state-output", "state_output"], "state_output"),
    value(None, &["state-verbose", "state_verbose"], "state_verbose"),
    // Logging and the rest of Salt's mix-ins.
    value(Some('l'), &["log-level"], "log_level"),
    value(None, &["log-file"], "log_file"),
    value(None, &["log-file-level"], "log_file_level"),
    flag(None, &["hard-crash"], "hard_crash"),
    value(None, &["saltfile"], "saltfile"),
    flag(None, &["args-stdin"], "args_stdin"),
    value(None, &["module-executors"], "module_executors"),
    value(None, &["executor-opts"], "executor_opts"),
];

/// Target options and the `tgt_type` each selects.
const TARGET_TYPES: &[(&str, &str, &str)] = &[
    ("pcre", "--pcre", "pcre"),
    ("list", "--list", "list"),
    ("grain", "--grain", "grain"),
    ("grain_pcre", "--grain-pcre", "grain_pcre"),
    ("nodegroup", "--nodegroup", "nodegroup"),
    ("range", "--range", "range"),
    ("compound", "--compound", "compound"),
    ("pillar_target", "--pillar", "pillar"),
    ("pillar_pcre", "--pillar-pcre", "pillar_pcre"),
    ("ipcidr", "--ipcidr", "ipcidr"),
];

/// Options halite parses but cannot honour yet; using one is an error rather than a job run
/// differently from what was asked.
const NOT_SUPPORTED: &[(&str, &str)] = &[
    ("progress", "--progress"),
    ("subset", "--subset"),
    ("batch_safe_limit", "--batch-safe-limit"),
    ("eauth", "--eauth"),
    ("mktoken", "--make-token"),
    ("doc", "--doc"),
    ("config_dump", "--config-dump"),
    ("list_hosts", "--hosts"),
    ("args_stdin", "--args-stdin"),
];

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let parsed = match optparse::parse(OPTIONS, &argv) {
        Ok(p) => p,
        Err(msg) => return ExitCode::from(usage_error(&msg)),
    };
    match run(parsed) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("{e:#}");
            ExitCode::from(EX_GENERIC)
        }
    }
}

/// optparse's error: usage, blank line, `salt: error: <msg>`; the exit code is 64.
fn usage_error(msg: &str) -> u8 {
    eprintln!("{USAGE}\n\nsalt: error: {msg}");
    EX_USAGE
}

fn exit_with(code: u8, stderr_msg: &str) -> anyhow::Result<u8> {
    eprint!("{stderr_msg}");
    Ok(code)
}

struct Cli {
    parsed: optparse::Parsed,
    printer: Printer,
}

fn run(parsed: optparse::Parsed) -> anyhow::Result<u8> {
    if parsed.flag("help") {
        print!("{}", help_text());
        return Ok(0);
    }
    if parsed.flag("version") || parsed.flag("versions_report") {
        println!("salt {} (halite)", env!("CARGO_PKG_VERSION"));
        return Ok(0);
    }
    let selected: Vec<&(&str, &str, &str)> = TARGET_TYPES.iter().filter(|(dest, _, _)| parsed.flag(dest)).collect();
    if selected.len() > 1 {
        let names: Vec<&str> = selected.iter().map(|(_, name, _)| *name).collect();
        let msg = format!("The options {} are mutually exclusive. Please only choose one of them", names.join("/"));
        return Ok(usage_error(&msg));
    }
    let tgt_type = selected.first().map_or("glob", |(_, _, t)| *t);
    if let Some((_, name)) = NOT_SUPPORTED.iter().find(|(dest, _)| parsed.values.contains_key(dest)) {
        let msg = format!("{name} is not supported by halite yet");
        return Ok(usage_error(&msg));
    }
    let timeout: i64 = match parsed.value("timeout").map(str::parse::<i64>) {
        None => 0,
        Some(Ok(t)) => t,
        Some(Err(_)) => {
            let msg = format!("option -t: invalid integer value: '{}'", parsed.value("timeout").unwrap_or(""));
            return Ok(usage_error(&msg));
        }
    };
    let preview = parsed.flag("preview_target");
    let mut args = parsed.args.clone();
    if args.len() <= 1 && !preview {
        print!("{}", help_text());
    }
    if preview {
        args.push("not_a_valid_command".into());
    }
    let Some(target) = args.first().cloned() else {
        return exit_with(EX_MISSING_TARGET, "\nCannot execute command without defining a target.\n\n");
    };
    let tgt = if tgt_type == "list" {
        let ids: Vec<String> = if target.contains(',') {
            target.replace(' ', "").split(',').map(str::to_owned).collect()
        } else {
            target.split_whitespace().map(str::to_owned).collect()
        };
        Value::Array(ids.into_iter().map(Value::from).collect())
    } else {
        Value::from(target.as_str())
    };
    let Some(fun_text) = args.get(1).cloned() else {
        return exit_with(EX_MISSING_TARGET, "\nIncomplete options passed.\n\n");
    };
    let separator = parsed.value("args_separator").unwrap_or(",").to_owned();
    let (fun, arg) = match function_and_args(&fun_text, &args[2..], &separator) {
        Ok(fa) => fa,
        Err(msg) => return exit_with(EX_MISSING_TARGET, &msg),
    };

    let config = halite_cli::config::load(parsed.value("config_dir").map(std::path::Path::new))?;
    let cli = Cli::new(parsed, &config)?;
    let identity = match Identity::current(&config) {
        Ok(i) => i,
        Err(e) => return cli.master_unreachable(&e),
    };
    let mut client = match Client::connect(&config.sock_dir) {
        Ok(c) => c,
        Err(e) => return cli.master_unreachable(&e),
    };

    let mut kwargs = vec![(Value::from("delimiter"), Value::from(cli.parsed.value("delimiter").unwrap_or(":")))];
    for (dest, key) in [
        ("return_config", "ret_config"),
        ("return_kwargs", "ret_kwargs"),
        ("module_executors", "module_executors"),
        ("executor_opts", "executor_opts"),
        ("metadata", "metadata"),
    ] {
        if let Some(v) = cli.parsed.value(dest).filter(|v| !v.is_empty()) {
            let v = if key == "ret_config" { Value::from(v) } else { halite_yaml::yamlify_arg(v) };
            kwargs.push((Value::from(key), v));
        }
    }
    let mut load = vec![
        (Value::from("tgt"), tgt.clone()),
        (Value::from("tgt_type"), Value::from(tgt_type)),
        (Value::from("fun"), fun.clone()),
        (Value::from("arg"), arg),
        (Value::from("ret"), Value::from(cli.parsed.value("return").unwrap_or(""))),
        (Value::from("kwargs"), Value::Map(kwargs)),
    ];
    if tgt_type == "nodegroup" {
        // Salt's client refuses an unknown nodegroup before publishing.
        let name = target.as_str();
        if !config.nodegroups.iter().any(|(n, _)| n == name) {
            let conf = cli.parsed.value("config_dir").map_or("/etc/salt".to_owned(), str::to_owned);
            return cli.print_error(&format!("Node group {name} unavailable in {conf}/master"));
        }
    }
    if let Some(size) = cli.parsed.value("batch").filter(|b| !b.is_empty() && !cli.parsed.flag("static")) {
        let size = match BatchSize::parse(size) {
            Ok(s) => s,
            Err(msg) => {
                println!("{msg}");
                return Ok(EX_GENERIC);
            }
        };
        let wait = cli.parsed.value("batch_wait").and_then(|w| w.parse::<f64>().ok()).unwrap_or(0.0);
        let field = |k: &str| load.iter().find(|(key, _)| key.as_str() == Some(k)).map(|(_, v)| v.clone());
        let timeout = if timeout <= 0 { config.timeout } else { timeout as u64 };
        let gather = config.gather_job_timeout();
        let job = BatchJob {
            tgt: tgt.clone(),
            tgt_type,
            fun: fun.clone(),
            arg: field("arg").unwrap_or(Value::Array(vec![])),
            kwargs: field("kwargs").unwrap_or(Value::Map(vec![])),
            ret: cli.parsed.value("return").unwrap_or(""),
            size,
            wait: Duration::from_secs_f64(wait.max(0.0)),
            timeout: Duration::from_secs(timeout),
            gather_job_timeout: Duration::from_secs(gather),
            failhard: cli.parsed.flag("failhard"),
        };
        let worst = batch::run(&mut client, &identity, &job, |event| {
            let shown = match event {
                BatchEvent::Line(line) => {
                    println!("{line}");
                    Ok(())
                }
                BatchEvent::Return { data, out } => cli.display(&data, out, 0),
            };
            shown.map_err(|e| ClientError::Io(std::io::Error::other(e.to_string())))
        })?;
        return Ok(u8::try_from(worst.clamp(0, 255)).unwrap_or(EX_GENERIC));
    }
    let load_value = Value::Map(std::mem::take(&mut load));

    if preview {
        let request = Request::Preview { user: identity.user.clone(), key: identity.key.clone(), load: load_value };
        return match client.call(&request) {
            Ok(reply) => {
                let minions = get(&reply, "minions").cloned().unwrap_or(Value::Array(vec![]));
                let empty = minions.as_array().is_none_or(|a| a.is_empty());
                cli.display(&minions, None, 0)?;
                if empty {
                    return exit_with(EX_NO_RETURN, "ERROR: No return received\n");
                }
                Ok(0)
            }
            Err(e) => cli.master_error(e, false),
        };
    }

    let is_async = cli.parsed.flag("async");
    let request = Request::Publish {
        user: identity.user.clone(),
        key: identity.key.clone(),
        load: load_value,
        listen: !is_async,
    };
    let published = match client.call(&request) {
        Ok(reply) => reply,
        Err(ClientError::Master { kind: ErrorKind::NoMinions, .. }) => return cli.no_minions(is_async),
        Err(e) => return cli.master_error(e, is_async),
    };
    let jid = get(&published, "jid").and_then(Value::as_str).unwrap_or("").to_owned();
    if is_async {
        println!("Executed command with job ID: {jid}");
        return Ok(0);
    }
    let ids = |key: &str| -> Vec<String> {
        get(&published, key)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    };
    cli.collect(&mut client, &identity, &jid, &ids("minions"), &ids("missing"), timeout, &config, &fun)
}

impl Cli {
    fn new(parsed: optparse::Parsed, config: &halite_config::MasterConfig) -> anyhow::Result<Cli> {
        let printer = Printer::from_options(&parsed, config)?;
        Ok(Cli { parsed, printer })
    }

    fn display(&self, data: &Value, requested: Option<&str>, retcode: i64) -> anyhow::Result<()> {
        self.printer.display(data, requested, retcode)
    }

    /// How Salt's CLI reports an exception it catches: the message through the outputter.
    fn print_error(&self, message: &str) -> anyhow::Result<u8> {
        self.display(&Value::from(message), Some(""), 1)?;
        Ok(0)
    }

    /// Salt's client when the master names no minion: its message, then the empty return
    /// through the outputter (`{}` in json, nothing in nested), then the error and exit 2.
    fn no_minions(&self, is_async: bool) -> anyhow::Result<u8> {
        println!("No minions matched the target. No command was sent, no jid was assigned.");
        if is_async {
            println!("Executed command with job ID: 0");
            return Ok(0);
        }
        self.display(&Value::Map(vec![]), None, 0)?;
        exit_with(EX_NO_RETURN, "ERROR: No return received\n")
    }

    fn master_unreachable(&self, e: &ClientError) -> anyhow::Result<u8> {
        eprintln!("[ERROR   ] {e}");
        self.print_error("The salt master could not be contacted. Is master running?")
    }

    fn master_error(&self, e: ClientError, is_async: bool) -> anyhow::Result<u8> {
        match e {
            ClientError::Master { kind: ErrorKind::Auth, message } => self.print_error(&message),
            ClientError::Master { kind: ErrorKind::Target, message } => {
                // Salt's master logs the bad target and matches nothing; halite also says why.
                eprintln!("[ERROR   ] {message}");
                self.no_minions(is_async)
            }
            ClientError::Master { message, .. } => self.print_error(&message),
            other => self.master_unreachable(&other),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn collect(
        &self,
        client: &mut Client,
        identity: &Identity,
        jid: &str,
        minions: &[String],
        missing: &[String],
        timeout: i64,
        config: &halite_config::MasterConfig,
        fun: &Value,
    ) -> anyhow::Result<u8> {
        let verbose = self.parsed.flag("verbose");
        if verbose {
            let msg = format!("Executing job with jid {jid}");
            println!("{msg}\n{}\n", "-".repeat(msg.len()));
        } else if self.parsed.flag("show_jid") {
            println!("jid: {jid}");
        }
        let timeout = if timeout <= 0 { config.timeout } else { timeout as u64 };
        let gather = config.gather_job_timeout();
        let show_timeout = !self.parsed.values.contains_key("show_timeout") || self.parsed.flag("show_timeout");
        let collector = Collector::new(
            jid,
            minions,
            missing,
            Duration::from_secs(timeout),
            Duration::from_secs(gather),
            verbose || show_timeout,
            Instant::now(),
        );
        let is_static = self.parsed.flag("static");
        let all = wait_for_returns(client, identity, jid, collector, |ret| {
            if !is_static {
                self.print_return(ret).map_err(|e| ClientError::Io(std::io::Error::other(e.to_string())))?;
            }
            Ok(())
        })?;
        if is_static {
            let combined = Value::Map(all.iter().map(|r| (Value::from(r.id.as_str()), r.ret.clone())).collect());
            // Salt's get_printout: a static state run is printed by highstate.
            let is_state = fun.as_str().is_some_and(|f| f.split('.').next() == Some("state"));
            self.display(&combined, is_state.then_some("highstate"), 0)?;
            if all.is_empty() {
                return exit_with(EX_NO_RETURN, "ERROR: No return received\n");
            }
        }
        if self.parsed.flag("cli_summary") && self.printer.outputter.is_none() && fun.as_str() != Some("sys.doc") {
            print_summary(&all, verbose);
        }
        let worst = all.iter().map(retcode_of).max().unwrap_or(0);
        if all.iter().any(|r| retcode_of(r) != 0) {
            eprintln!("ERROR: Minions returned with non-zero exit code");
            if self.parsed.flag("retcode_passthrough") {
                return Ok(u8::try_from(worst.clamp(1, 255)).unwrap_or(EX_GENERIC));
            }
            return Ok(EX_GENERIC);
        }
        Ok(0)
    }

    fn print_return(&self, ret: &MinionReturn) -> anyhow::Result<()> {
        let data = Value::Map(vec![(Value::from(ret.id.as_str()), ret.ret.clone())]);
        self.display(&data, ret.out.as_deref(), retcode_of(ret))
    }
}

fn print_summary(all: &[MinionReturn], verbose: bool) {
    let not_returned: Vec<&MinionReturn> = all.iter().filter(|r| r.out.as_deref() == Some("no_return")).collect();
    let returned = all.len() - not_returned.len();
    let failed = all.iter().filter(|r| r.out.as_deref() != Some("no_return") && retcode_of(r) != 0).count();
    println!("\n\n-------------------------------------------");
    println!("Summary");
    println!("-------------------------------------------");
    println!("# of minions targeted: {}", all.len());
    println!("# of minions returned: {returned}");
    println!("# of minions that did not return: {}", not_returned.len());
    println!("# of minions with errors: {failed}");
    if verbose && !not_returned.is_empty() {
        let ids: Vec<&str> = not_returned.iter().map(|r| r.id.as_str()).collect();
        println!("Minions not responding: {}", ids.join(" "));
    }
    println!("-------------------------------------------");
}

/// The function(s) and their arguments: `fun` and `parse_input(args)`, or for `f1,f2` one
/// argument list per function, split on standalone separators when there are exactly enough
/// of them, else on separators inside the arguments (Salt's old style).
fn function_and_args(fun: &str, args: &[String], separator: &str) -> Result<(Value, Value), String> {
    let parse = |a: &[String]| Value::Array(halite_cli::args::parse_input(a, &[]));
    if !fun.contains(',') {
        return Ok((Value::from(fun), parse(args)));
    }
    let funs: Vec<&str> = fun.split(',').collect();
    let mut groups: Vec<Vec<String>> = vec![Vec::new()];
    if args.iter().filter(|a| *a == separator).count() == funs.len() - 1 {
        for a in args {
            if a == separator {
                groups.push(Vec::new());
            } else if let Some(g) = groups.last_mut() {
                g.push(a.clone());
            }
        }
    } else {
        for a in args {
            if a.contains(separator) {
                let parts: Vec<&str> = a.split(separator).collect();
                for (i, part) in parts.iter().enumerate() {
                    if !part.is_empty() {
                        if let Some(g) = groups.last_mut() {
                            g.push((*part).to_owned());
                        }
                    }
                    if i + 1 != parts.len() {
                        groups.push(Vec::new());
                    }
                }
            } else if let Some(g) = groups.last_mut() {
                g.push(a.clone());
            }
        }
        if funs.len() > groups.len() {
            return Err("Cannot execute compound command without defining all arguments.\n".into());
        }
        if funs.len() < groups.len() {
            return Err("Cannot execute compound command with more arguments than commands.\n".into());
        }
    }
    Ok((
        Value::Array(funs.iter().map(|f| Value::from(*f)).collect()),
        Value::Array(groups.iter().map(|g| parse(g)).collect()),
    ))
}

fn get<'a>(map: &'a Value, key: &str) -> Option<&'a Value> {
    map.as_map()?.iter().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v)
}

fn help_text() -> String {
    format!(
        "{USAGE}

Salt allows for commands to be executed across a swath of remote systems in
parallel, so they can be both controlled and queried with ease.

Options:
  --version             show program's version number and exit
  -h, --help            show this help message and exit
  -c CONFIG_DIR, --config-dir=CONFIG_DIR
                        Pass in an alternative configuration directory.
  -t TIMEOUT, --timeout=TIMEOUT
                        Change the timeout, if applicable, for the running
                        command (in seconds). Default: 5.
  -s, --static          Return the data from minions as a group after they all
                        return.
  --async               Run the salt command but don't wait for a reply.
  -v, --verbose         Turn on command verbosity, display jid and active job
                        queries.
  --hide-timeout        Hide minions that timeout.
  --show-jid            Display jid without the additional output of
                        --verbose.
  --summary             Display summary information about a salt command.
  --preview-target      Show the minions expected to match a target. Does not
                        issue any command.
  --retcode-passthrough
                        Exit with the minions' highest return code (halite).
  --args-separator=ARGS_SEPARATOR
                        Set the special argument used as a delimiter between
                        command arguments of compound commands.

  Target Options:
    -E, --pcre          Instead of using shell globs, use pcre regular
                        expressions.
    -L, --list          Instead of using shell globs, take a comma or
                        whitespace delimited list of servers.
    -G, --grain         Use a grain value to identify targets, the syntax for
                        the target is the grain key followed by a globexpression: \"os:Arch*\".
    -P, --grain-pcre    Use a grain value to identify targets, the syntax for
                        the target is the grain key followed by a pcre regular
                        expression: \"os:Arch.*\".
    -N, --nodegroup     Use one of the predefined nodegroups to identify a
                        list of targets.
    --delimiter=DELIMITER
                        Change the default delimiter for matching in multi-
                        level data structures. Default: ':'.
    -C, --compound      The compound target option allows for multiple target
                        types to be evaluated, allowing for greater
                        granularity in target matching.
    -I, --pillar        Use a pillar value to identify targets.
    -J, --pillar-pcre   Use a pillar value to identify targets, with a pcre
                        regular expression.
    -S, --ipcidr        Match based on Subnet (CIDR notation) or IP address.

  Output Options:
    --out=OUTPUT, --output=OUTPUT
                        Print the output from the 'salt' command using the
                        specified outputter.
    --out-indent=OUTPUT_INDENT, --output-indent=OUTPUT_INDENT
                        Print the output indented by the provided value in
                        spaces. Negative values disables indentation.
    --out-file=OUTPUT_FILE, --output-file=OUTPUT_FILE
                        Write the output to the specified file.
    --out-file-append, --output-file-append
                        Append the output to the specified file.
    --no-color, --no-colour
                        Disable all colored output.
    --force-color, --force-colour
                        Force colored output.
"
    )
}
