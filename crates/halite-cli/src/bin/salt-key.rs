//! `salt-key`: Salt's key manager on a Salt pki dir, with Salt's flags, prompts, messages,
//! outputters and exit codes. Safe beside a running master: keys move by atomic rename, and
//! rejecting or deleting writes the dropfile that makes the master rotate its AES key.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgAction, Parser};
use halite_cli::output::{self, Node, Outputter, Style};
use halite_pki::{KeyState, PkiDir};

/// Salt's exit code for a usage error (`EX_USAGE`).
const EX_USAGE: u8 = 64;

#[derive(Parser, Debug)]
#[command(
    name = "salt-key",
    version,
    about = "salt-key is used to manage Salt authentication keys",
    disable_help_flag = true
)]
struct Args {
    #[arg(short = 'h', long = "help", action = ArgAction::Help)]
    help: Option<bool>,
    /// Salt's configuration directory (default /etc/salt when it holds a master file, else
    /// halite's embedded defaults, as halite-master uses without -c).
    #[arg(short = 'c', long = "config-dir")]
    config_dir: Option<PathBuf>,
    /// List the public keys: pre|un|unaccepted, acc|accepted, rej|rejected, den|denied, all.
    #[arg(short = 'l', long = "list", value_name = "ARG")]
    list: Option<String>,
    /// List all public keys.
    #[arg(short = 'L', long = "list-all")]
    list_all: bool,
    /// Accept the matching public keys (globs; comma-separated).
    #[arg(short = 'a', long = "accept", value_name = "ACCEPT")]
    accept: Option<String>,
    #[arg(short = 'A', long = "accept-all")]
    accept_all: bool,
    #[arg(short = 'r', long = "reject", value_name = "REJECT")]
    reject: Option<String>,
    #[arg(short = 'R', long = "reject-all")]
    reject_all: bool,
    /// Include rejected/accepted keys when accepting/rejecting.
    #[arg(long = "include-all")]
    include_all: bool,
    #[arg(long = "include-accepted")]
    include_accepted: bool,
    #[arg(long = "include-rejected")]
    include_rejected: bool,
    #[arg(long = "include-denied")]
    include_denied: bool,
    /// Print the matching public keys.
    #[arg(short = 'p', long = "print", value_name = "PRINT")]
    print: Option<String>,
    #[arg(short = 'P', long = "print-all")]
    print_all: bool,
    #[arg(short = 'd', long = "delete", value_name = "DELETE")]
    delete: Option<String>,
    #[arg(short = 'D', long = "delete-all")]
    delete_all: bool,
    /// Print the fingerprints of the matching keys.
    #[arg(short = 'f', long = "finger", value_name = "FINGER")]
    finger: Option<String>,
    #[arg(short = 'F', long = "finger-all")]
    finger_all: bool,
    /// Answer yes to every question.
    #[arg(short = 'y', long = "yes")]
    yes: bool,
    /// Suppress output of errors.
    #[arg(short = 'q', long = "quiet")]
    quiet: bool,
    /// Outputter: key (default), json, yaml, nested, txt, raw.
    #[arg(long = "out", alias = "output")]
    out: Option<String>,
    #[arg(long = "out-indent", alias = "output-indent")]
    out_indent: Option<usize>,
    #[arg(long = "no-color", alias = "no-colour")]
    no_color: bool,
    #[arg(long = "force-color", alias = "force-colour")]
    force_color: bool,
    /// Whether rejecting or deleting keys rotates the master's AES key.
    #[arg(long = "rotate-aes-key", default_value = "True")]
    rotate_aes_key: String,
    /// Accepted for compatibility: halite's master drops a deleted minion's cached data itself.
    #[arg(long = "preserve-minions", default_value = "False")]
    preserve_minions: String,
    /// Accepted for compatibility; salt-key logs nothing worth a level.
    #[arg(long = "log-level")]
    log_level: Option<String>,
}

/// The action, after Salt's precedence (`list` before `list_all`, ... `finger_all`), with the
/// `*_all` forms turned into their glob `*` as Salt does.
#[derive(Debug, Clone, PartialEq)]
enum Action {
    List(String),
    Print(String),
    Accept(String),
    Reject(String),
    Delete(String),
    Finger(String),
}

impl Args {
    fn action(&self) -> Action {
        let all = || "*".to_owned();
        if let Some(l) = &self.list {
            return Action::List(l.clone());
        }
        if self.list_all {
            return Action::List("all".into());
        }
        if let Some(m) = &self.print {
            return Action::Print(m.clone());
        }
        if self.print_all {
            return Action::Print(all());
        }
        if let Some(m) = &self.accept {
            return Action::Accept(m.clone());
        }
        if self.accept_all {
            return Action::Accept(all());
        }
        if let Some(m) = &self.reject {
            return Action::Reject(m.clone());
        }
        if self.reject_all {
            return Action::Reject(all());
        }
        if let Some(m) = &self.delete {
            return Action::Delete(m.clone());
        }
        if self.delete_all {
            return Action::Delete(all());
        }
        if let Some(m) = &self.finger {
            return Action::Finger(m.clone());
        }
        if self.finger_all {
            return Action::Finger(all());
        }
        Action::List("all".into())
    }
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("Usage: salt-key [options]\n\nsalt-key: error: {message}");
    ExitCode::from(EX_USAGE)
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) if matches!(e.kind(), clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let text = e.kind().as_str().map(str::to_owned).unwrap_or_else(|| e.to_string());
            return usage_error(&text);
        }
    };
    if let Action::List(arg) = args.action() {
        if !["acc", "pre", "un", "rej", "den", "all"].iter().any(|p| arg.starts_with(p)) {
            return usage_error(&format!("'{arg}' is not a valid argument to '--list'"));
        }
    }
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            if !args.quiet {
                eprintln!("Error: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}

struct Tool<'a> {
    args: &'a Args,
    pki: PkiDir,
    config: halite_config::MasterConfig,
    outputter: Outputter,
    style: Style,
}

/// Keys by state, in the order Salt's `list_keys` builds them.
type Listing = Vec<(String, Vec<String>)>;

const LIST_ORDER: [KeyState; 4] = [KeyState::Accepted, KeyState::Pending, KeyState::Rejected, KeyState::Denied];

fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let config = halite_cli::config::load(args.config_dir.as_deref())?;
    let pki = PkiDir::open(&config.pki_dir)?;
    let name = args.out.as_deref().unwrap_or("key");
    let outputter = Outputter::from_name(name).unwrap_or_else(|| {
        eprintln!("[ERROR   ] Invalid outputter {name} specified, fall back to nested");
        Outputter::Nested
    });
    let color = !args.no_color && (args.force_color || std::io::stdout().is_terminal());
    let style = Style { color, indent: args.out_indent.map(|i| i as i64), ..Style::default() };
    let tool = Tool { args, pki, config, outputter, style };
    match args.action() {
        Action::List(which) => tool.list(&which),
        Action::Print(glob) => tool.print(&glob),
        Action::Finger(glob) => tool.finger(&glob),
        Action::Accept(glob) => tool.change(Change::Accept, &glob),
        Action::Reject(glob) => tool.change(Change::Reject, &glob),
        Action::Delete(glob) => tool.change(Change::Delete, &glob),
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Change {
    Accept,
    Reject,
    Delete,
}

impl Change {
    /// The past participle Salt prints (`cmd.rstrip("e") + "ed"`).
    fn done(self) -> &'static str {
        match self {
            Change::Accept => "accepted",
            Change::Reject => "rejected",
            Change::Delete => "deleted",
        }
    }
}

impl Tool<'_> {
    fn display(&self, data: &Node) {
        print!("{}", output::render(&data.to_value(), self.outputter, self.style));
    }

    fn list_keys(&self) -> anyhow::Result<Listing> {
        LIST_ORDER.iter().map(|s| Ok((s.dir_name().to_owned(), self.pki.list(*s)?))).collect()
    }

    /// Salt's `name_match`: ids matching any comma-separated glob, per state (states with no
    /// match left out); `full` adds the master's own key files as `local`. An id matching two
    /// globs is listed twice, as Salt lists it.
    fn name_match(&self, glob: &str, full: bool) -> anyhow::Result<Listing> {
        let patterns: Vec<&str> = glob.split(',').collect();
        let mut listing = self.list_keys()?;
        if full {
            listing.push(("local".into(), self.pki.local_keys()?));
        }
        Ok(listing
            .into_iter()
            .map(|(state, ids)| {
                let hits = ids.into_iter().flat_map(|id| {
                    let n = patterns.iter().filter(|p| halite_target::fnmatch(&id, p)).count();
                    std::iter::repeat_n(id, n)
                });
                (state, hits.collect::<Vec<_>>())
            })
            .filter(|(_, ids)| !ids.is_empty())
            .collect())
    }

    fn list(&self, which: &str) -> anyhow::Result<ExitCode> {
        let listing = self.list_keys()?;
        let wanted = |state: &str| match which {
            w if w.starts_with("acc") => state == "minions",
            w if w.starts_with("pre") || w.starts_with("un") => state == "minions_pre",
            w if w.starts_with("rej") => state == "minions_rejected",
            w if w.starts_with("den") => state == "minions_denied",
            _ => true,
        };
        self.display(&listing_node(listing.into_iter().filter(|(s, _)| wanted(s)).collect()));
        Ok(ExitCode::SUCCESS)
    }

    fn key_path(&self, state: &str, id: &str) -> PathBuf {
        if state == "local" {
            self.pki.root().join(id)
        } else {
            self.pki.root().join(state).join(id)
        }
    }

    fn print(&self, glob: &str) -> anyhow::Result<ExitCode> {
        self.per_key(glob, false, |path| {
            std::fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned()).map_err(Into::into)
        })
    }

    fn finger(&self, glob: &str) -> anyhow::Result<ExitCode> {
        let hash_type = self.config.extra("hash_type").and_then(|v| v.as_str()).unwrap_or("sha256").to_owned();
        self.per_key(glob, true, |path| {
            // Salt's pem_finger answers "" for a file that vanished meanwhile.
            match std::fs::read(path) {
                Ok(pem) => halite_pki::finger(&pem, &hash_type).map_err(|e| anyhow::anyhow!("hash_type: {e}")),
                Err(_) => Ok(String::new()),
            }
        })
    }

    /// `-p`/`-f`: a value per matching key, grouped by state.
    fn per_key(
        &self,
        glob: &str,
        full: bool,
        value: impl Fn(&std::path::Path) -> anyhow::Result<String>,
    ) -> anyhow::Result<ExitCode> {
        let mut data = Vec::new();
        for (state, ids) in self.name_match(glob, full)? {
            let mut pairs = Vec::new();
            for id in ids {
                let v = value(&self.key_path(&state, &id))?;
                pairs.push((id, Node::Str(v)));
            }
            data.push((state, Node::Map(pairs)));
        }
        self.display(&Node::Map(data));
        Ok(ExitCode::SUCCESS)
    }

    /// `-a`/`-r`/`-d` and their `-A`/`-R`/`-D` forms: Salt's KeyCLI flow of match, show,
    /// confirm, act, report.
    fn change(&self, change: Change, glob: &str) -> anyhow::Result<ExitCode> {
        let a = self.args;
        let (include_accepted, include_rejected) = match change {
            Change::Accept => (false, a.include_all || a.include_rejected),
            Change::Reject => (a.include_all || a.include_accepted, false),
            Change::Delete => (a.include_accepted, a.include_rejected),
        };
        let matched = self.name_match(glob, false)?;
        let selected: Listing = if change == Change::Delete {
            matched
        } else {
            let get = |state: &str| matched.iter().find(|(s, _)| s == state).map(|(s, ids)| (s.clone(), ids.clone()));
            [
                ("minions_pre", true),
                ("minions", include_accepted),
                ("minions_rejected", include_rejected),
                ("minions_denied", a.include_denied),
            ]
            .into_iter()
            .filter(|(_, on)| *on)
            .filter_map(|(state, _)| get(state))
            .collect()
        };
        if selected.is_empty() {
            let mut statuses = vec!["unaccepted"];
            for (flag, name) in
                [(include_accepted, "accepted"), (include_rejected, "rejected"), (a.include_denied, "denied")]
            {
                if flag {
                    statuses.push(name);
                }
            }
            let stat_str = match statuses.split_last() {
                Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
                _ => statuses[0].to_owned(),
            };
            println!("The key glob '{glob}' does not match any {stat_str} keys.");
            return Ok(ExitCode::SUCCESS);
        }
        println!("The following keys are going to be {}:", change.done());
        self.display(&listing_node(selected.clone()));
        if !a.yes && !confirm(change == Change::Delete)? {
            return Ok(ExitCode::SUCCESS);
        }
        let done = match change {
            Change::Accept => {
                let mut from = vec![KeyState::Pending];
                if include_rejected {
                    from.push(KeyState::Rejected);
                }
                if a.include_denied {
                    from.push(KeyState::Denied);
                }
                let refused = self.move_selected(&selected, &from, KeyState::Accepted, true)?;
                // Salt drops keys it refused from what it reports.
                let accepted: Listing = selected
                    .iter()
                    .map(|(s, ids)| (s.clone(), ids.iter().filter(|id| !refused.contains(id)).cloned().collect()))
                    .collect();
                self.where_now(&accepted)?
            }
            Change::Reject => {
                let mut from = vec![KeyState::Pending];
                if include_accepted {
                    from.push(KeyState::Accepted);
                }
                if a.include_denied {
                    from.push(KeyState::Denied);
                }
                self.move_selected(&selected, &from, KeyState::Rejected, false)?;
                self.where_now(&selected)?
            }
            Change::Delete => {
                for (state, ids) in &selected {
                    let state = KeyState::from_dir_name(state).expect("a key state");
                    for id in ids {
                        self.pki.remove(state, id)?;
                    }
                }
                selected
            }
        };
        let rotation = if change != Change::Accept && a.rotate_aes_key.eq_ignore_ascii_case("true") {
            halite_pki::request_rotation(&self.config.cachedir, &self.config.master_id()).map(|_| ())
        } else {
            Ok(())
        };
        for (_, ids) in &done {
            for id in ids {
                println!("Key for minion {id} {}.", change.done());
            }
        }
        self.announce(change, &done);
        rotation.map_err(|e| anyhow::anyhow!("the master was not told to rotate its AES key: {e}"))?;
        Ok(ExitCode::SUCCESS)
    }

    /// Salt's salt-key fires `salt/key` on the master's bus for every key it changes; so does
    /// this one when the master runs (reactors and `state.event` watchers expect it). Without
    /// a running master there is nobody to tell, as with Salt.
    fn announce(&self, change: Change, done: &Listing) {
        let act = match change {
            Change::Accept => "accept",
            Change::Reject => "reject",
            Change::Delete => "delete",
        };
        let Ok(identity) = halite_cli::client::Identity::current(&self.config) else { return };
        let Ok(mut client) = halite_cli::client::Client::connect(&self.config.sock_dir) else { return };
        for id in done.iter().flat_map(|(_, ids)| ids) {
            let data = output::Value::Map(vec![
                (output::Value::from("result"), output::Value::Boolean(true)),
                (output::Value::from("act"), output::Value::from(act)),
                (output::Value::from("id"), output::Value::from(id.as_str())),
            ]);
            let request = halite_ipc::Request::Fire {
                user: identity.user.clone(),
                key: identity.key.clone(),
                tag: "salt/key".into(),
                data,
            };
            if client.call(&request).is_err() {
                return;
            }
        }
    }

    /// Moves the selected ids found in `from` states to `to`; with `validate`, ids whose file
    /// is not an RSA public key stay where they are and are returned.
    fn move_selected(
        &self,
        selected: &Listing,
        from: &[KeyState],
        to: KeyState,
        validate: bool,
    ) -> anyhow::Result<Vec<String>> {
        let mut refused = Vec::new();
        for state in from {
            let Some((_, ids)) = selected.iter().find(|(s, _)| s == state.dir_name()) else { continue };
            for id in ids {
                if validate && !self.pki.holds_valid_key(*state, id)? {
                    eprintln!("Unable to accept invalid key for {id}.");
                    refused.push(id.clone());
                    continue;
                }
                self.pki.move_key(id, *state, to)?;
            }
        }
        Ok(refused)
    }

    /// Salt's `dict_match`: where each selected id is now, grouped by state in the order the
    /// ids were selected.
    fn where_now(&self, selected: &Listing) -> anyhow::Result<Listing> {
        let current = self.list_keys()?;
        let mut out: Listing = Vec::new();
        for (_, ids) in selected {
            let mut ids = ids.clone();
            ids.sort_by_cached_key(|i| i.to_lowercase());
            for id in ids {
                for (state, present) in &current {
                    if present.contains(&id) {
                        match out.iter_mut().find(|(s, _)| s == state) {
                            Some((_, list)) => list.push(id.clone()),
                            None => out.push((state.clone(), vec![id.clone()])),
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

fn listing_node(listing: Listing) -> Node {
    Node::Map(listing.into_iter().map(|(state, ids)| (state, Node::list(ids))).collect())
}

/// Salt's prompt: `[N/y]` for deletes (default no), `[n/Y]` otherwise (default yes). End of
/// input is an empty answer.
fn confirm(delete: bool) -> anyhow::Result<bool> {
    print!("{}", if delete { "Proceed? [N/y] " } else { "Proceed? [n/Y] " });
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    let answer = answer.trim_end_matches(['\n', '\r']);
    Ok(if answer.is_empty() { !delete } else { answer.to_lowercase().starts_with('y') })
}
