//! rsyncd.conf(5): reading the daemon's configuration into typed settings, with the
//! grammar and the quirks of the reference (rsync's params.c and loadparm.c), so that a
//! file the stock daemon accepts means the same here.
//!
//! What the reader does, as the reference does:
//! - `[module]` sections; parameters before the first one (or after `[global]`) are
//!   global, and a module parameter there becomes the default of every module defined
//!   after it. A string parameter that a module leaves unset and that has no built-in
//!   default takes the value the global section has at the end of the file, even when
//!   it is set after the module (the reference looks it up late); booleans and
//!   numbers are fixed when the module begins.
//! - Parameter names ignore case and every blank (`readonly` is `read only`), but not
//!   underscores: `read_only` is unknown to rsync and so here.
//! - A module named twice is one module: the second section continues the first.
//! - `&include` reads a file (or a directory's `*.conf` files) whose global settings
//!   stay inside it; `&merge` (a directory's `*.inc` files) reads as if pasted in.
//!   Relative paths are taken from the including file's directory; rsync takes them
//!   from its working directory, which for a daemon is rarely meaningful.
//!
//! Where this reader is stricter than the reference, on purpose: a bad boolean or
//! number, a bad port or address, a malformed hosts pattern, a module without `path`
//! and a missing include are errors (rsync logs most of them and carries on with a
//! default, which can silently open a module). Unknown parameters are warnings.

use crate::hosts::{parse_host_list, wildcard_match, HostNote, HostPattern};
use std::ffi::{CStr, CString};
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The port when the configuration names none (or names 0, as rsync allows).
pub const DEFAULT_PORT: u16 = 873;
/// The lock file of `max connections` when none is named.
pub const DEFAULT_LOCK_FILE: &str = "/var/run/rsyncd.lock";
/// rsync's default format for transfer logging.
pub const DEFAULT_LOG_FORMAT: &str = "%o %h [%a] %m (%u) %f %l";
/// rsync's default `dont compress` list (the suffixes of rsync.1's --skip-compress).
pub const DEFAULT_DONT_COMPRESS: &str = "*.3g2 *.3gp *.7z *.aac *.ace *.apk *.avi *.bz2 *.deb *.dmg *.ear *.f4v \
*.flac *.flv *.gpg *.gz *.iso *.jar *.jpeg *.jpg *.lrz *.lz *.lz4 *.lzma *.lzo *.m1a *.m1v *.m2a *.m2ts *.m2v \
*.m4a *.m4b *.m4p *.m4r *.m4v *.mka *.mkv *.mov *.mp1 *.mp2 *.mp3 *.mp4 *.mpa *.mpeg *.mpg *.mpv *.mts *.odb \
*.odf *.odg *.odi *.odm *.odp *.ods *.odt *.oga *.ogg *.ogm *.ogv *.ogx *.opus *.otg *.oth *.otp *.ots *.ott \
*.oxt *.png *.qt *.rar *.rpm *.rz *.rzip *.spx *.squashfs *.sxc *.sxd *.sxg *.sxm *.sxw *.sz *.tbz *.tbz2 *.tgz \
*.tlz *.ts *.txz *.tzo *.vob *.war *.webm *.webp *.xz *.z *.zip *.zst";
/// Largest configuration file read, per file.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;
/// Most bytes read across a configuration and everything it includes.
pub const MAX_TOTAL_CONFIG_BYTES: u64 = 16 << 20;
/// Most files read for one configuration.
pub const MAX_CONFIG_FILES: usize = 1000;
/// Deepest nesting of `&include` / `&merge`; rsync has no bound, so a file that
/// includes itself would recurse until the stack runs out.
pub const MAX_INCLUDE_DEPTH: usize = 16;

/// The section name that is not a module but the global settings.
const GLOBAL_SECTION: &str = "global";

/// Parameters rsync knows and halite-rsyncd reads but does not act on; the daemon
/// names each one that a configuration sets (see [`Config::unsupported_in_use`]).
pub const NOT_ACTED_ON: &[&str] = &[
    "charset",
    "daemon chroot",
    "daemon gid",
    "daemon uid",
    "early exec",
    "fake super",
    "insecure links",
    "listen backlog",
    "name converter",
    "open noatime",
    "post-xfer exec",
    "pre-xfer exec",
    "proxy protocol",
    "proxy protocol hosts",
    "socket options",
    "syslog facility",
    "syslog tag",
    "temp dir",
    // Read, not yet acted on by halite-rsyncd (named at start-up until they are):
    // per-suffix compression, chmod rules.
    "ignore nonreadable",
    "dont compress",
    "incoming chmod",
    "outgoing chmod",
];

/// A place in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{} is larger than {limit} bytes", path.display())]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("{} is not UTF-8 text", path.display())]
    NotUtf8 { path: PathBuf },
    #[error("{at}: {message}")]
    Syntax { at: Location, message: &'static str },
    #[error("{at}: invalid value {value:?} for `{key}`: {reason}")]
    InvalidValue { at: Location, key: &'static str, value: String, reason: String },
    #[error("{at}: module [{module}] has no `path`")]
    MissingPath { at: Location, module: String },
    #[error("{at}: invalid module name {name:?}: {reason}")]
    InvalidModuleName { at: Location, name: String, reason: &'static str },
    #[error("{at}: unknown directive `{name}` (there are &include and &merge)")]
    UnknownDirective { at: Location, name: String },
    #[error("{at}: includes nest more than {limit} deep")]
    IncludeTooDeep { at: Location, limit: usize },
    #[error("{at}: cannot include {}: {source}", path.display())]
    Include { at: Location, path: PathBuf, source: io::Error },
    #[error("{at}: cannot include {}: neither a file nor a directory", path.display())]
    IncludeNotFileOrDir { at: Location, path: PathBuf },
    #[error("{at}: the configuration and its includes exceed {limit}")]
    TooMuch { at: Location, limit: String },
}

/// Something in a configuration the daemon should log once at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub at: Location,
    pub kind: WarningKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WarningKind {
    /// A parameter rsync does not know; it is ignored.
    UnknownParameter(String),
    /// A global parameter inside a module section; ignored, as rsync does.
    GlobalParameterInModule { key: &'static str, module: String },
    /// A line that is neither a section, a comment nor `name = value`; ignored.
    BadlyFormedLine(String),
    /// The file ends in the middle of a parameter name; ignored.
    UnexpectedEnd(String),
    /// A second section for a module already defined: it continues the first.
    ModuleContinued { module: String, first: Location },
    /// `name =` in the global section, where it has no effect.
    NameInGlobalSection,
    /// A `%VAR%` reference in a string, which halite-rsyncd keeps as written where
    /// rsync would substitute the environment variable when the value is used.
    VariableNotExpanded { key: &'static str },
    /// A hosts pattern that does not do what it looks like.
    Hosts { key: &'static str, note: HostNote },
    /// A directory entry an include skipped because it is not a file.
    IncludeEntrySkipped(PathBuf),
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.at)?;
        match &self.kind {
            WarningKind::UnknownParameter(name) => write!(f, "unknown parameter `{name}` ignored"),
            WarningKind::GlobalParameterInModule { key, module } => {
                write!(f, "global parameter `{key}` in module [{module}] ignored")
            }
            WarningKind::BadlyFormedLine(text) => write!(f, "badly formed line ignored: {text:?}"),
            WarningKind::UnexpectedEnd(text) => write!(f, "the file ends inside a parameter name: {text:?}"),
            WarningKind::ModuleContinued { module, first } => {
                write!(f, "module [{module}] is defined again; this section continues the one at {first}")
            }
            WarningKind::NameInGlobalSection => write!(f, "`name` in the global section has no effect"),
            WarningKind::VariableNotExpanded { key } => {
                write!(f, "`{key}` contains a %VAR% reference, which halite-rsyncd leaves as written")
            }
            WarningKind::Hosts { key, note } => write!(f, "`{key}`: {note}"),
            WarningKind::IncludeEntrySkipped(path) => write!(f, "{} is not a file; not included", path.display()),
        }
    }
}

/// A parameter halite-rsyncd does not act on, and where it was set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsupportedSetting {
    /// The module it was set in, or "global".
    pub section: String,
    pub key: &'static str,
    pub at: Location,
}

impl fmt::Display for UnsupportedSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] `{}` ({}) is not acted on by halite-rsyncd", self.section, self.key, self.at)
    }
}

/// The daemon-wide settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Global {
    /// `address`: where to listen; None for every address.
    pub address: Option<IpAddr>,
    /// `port`; 873 when unset or 0.
    pub port: u16,
    pub motd_file: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    /// The global `log file`: the daemon's own log, and every module's default.
    pub log_file: Option<PathBuf>,
    /// The global `reverse lookup`, which decides the lookup at connect time in rsync.
    pub reverse_lookup: bool,
    pub socket_options: Option<String>,
    pub listen_backlog: i32,
    pub daemon_chroot: Option<PathBuf>,
    pub daemon_uid: Option<String>,
    pub daemon_gid: Option<String>,
    pub proxy_protocol: bool,
    pub proxy_protocol_hosts: Option<String>,
}

/// How many connections a module takes at once (`max connections`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionLimit {
    /// 0: no limit.
    Unlimited,
    AtMost(u32),
    /// A negative value: rsync refuses every connection, so the module is disabled.
    Refused,
}

/// What an `auth users` rule grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthAccess {
    /// No suffix (or an unknown one): the module's `read only` applies.
    Module,
    /// `:ro`
    ReadOnly,
    /// `:rw`
    ReadWrite,
    /// `:deny`
    Deny,
}

impl AuthAccess {
    /// Whether the user's transfer is read-only, or None when the rule denies it.
    pub fn read_only(self, module_read_only: bool) -> Option<bool> {
        match self {
            AuthAccess::Module => Some(module_read_only),
            AuthAccess::ReadOnly => Some(true),
            AuthAccess::ReadWrite => Some(false),
            AuthAccess::Deny => None,
        }
    }
}

/// One `auth users` rule: a user name pattern, or a group name pattern (`@group`),
/// with an optional `:ro`, `:rw` or `:deny`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser {
    /// The wildcard pattern, without the `@` of a group rule.
    pub pattern: String,
    pub group: bool,
    pub access: AuthAccess,
}

/// The first rule a user matches, as the reference decides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthMatch<'g> {
    pub access: AuthAccess,
    /// The group of the user that matched a group rule: its `@group:` line in the
    /// secrets file may authenticate the user too.
    pub group: Option<&'g str>,
}

/// The first rule of `rules` that `user` matches, trying rules in order: a user rule
/// matches the name, a group rule matches one of `user_groups` (the groups of the
/// local account of that name; none when there is no such account). None when no
/// rule matches, which refuses the login.
pub fn match_auth_rule<'g>(rules: &[AuthUser], user: &str, user_groups: &[&'g str]) -> Option<AuthMatch<'g>> {
    rules.iter().find_map(|rule| {
        if rule.group {
            let group = user_groups.iter().find(|g| wildcard_match(&rule.pattern, g))?;
            Some(AuthMatch { access: rule.access, group: Some(*group) })
        } else {
            wildcard_match(&rule.pattern, user).then_some(AuthMatch { access: rule.access, group: None })
        }
    })
}

/// The outcome of [`authorise_user`]: the access of the first matching rule and the
/// group that matched, if it was a group rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserAuthorisation {
    pub access: AuthAccess,
    pub group: Option<String>,
}

/// [`match_auth_rule`] with the groups of the local account named `user`, looked up
/// only when a group rule needs them, as rsync does. None when no rule matches.
pub fn authorise_user(rules: &[AuthUser], user: &str) -> Option<UserAuthorisation> {
    let groups = if rules.iter().any(|r| r.group) { groups_of_user(user) } else { Vec::new() };
    let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
    let matched = match_auth_rule(rules, user, &groups)?;
    Some(UserAuthorisation { access: matched.access, group: matched.group.map(str::to_string) })
}

/// Whether `user` may log in: None when no rule matches, Some(false) when the first
/// match is a `:deny` rule. It drops the matched group and the `:ro`/`:rw` access;
/// a daemon needs [`authorise_user`] for those.
pub fn user_authorised(rules: &[AuthUser], user: &str) -> Option<bool> {
    authorise_user(rules, user).map(|a| a.access != AuthAccess::Deny)
}

/// Splits a list value as rsync's conf_strtok does: on blanks and commas, or, when the
/// value starts with a comma, on commas only, so that entries may contain spaces.
pub fn split_config_list(value: &str) -> Vec<&str> {
    let value = value.trim_start_matches(is_c_space);
    match value.strip_prefix(',') {
        Some(rest) => rest.split(',').map(|t| t.trim_matches(is_c_space)).filter(|t| !t.is_empty()).collect(),
        None => value.split([' ', ',', '\t', '\r', '\n']).filter(|t| !t.is_empty()).collect(),
    }
}

fn parse_auth_users(value: &str) -> Vec<AuthUser> {
    split_config_list(value)
        .into_iter()
        .map(|token| {
            let (name, access) = match token.split_once(':') {
                Some((name, suffix)) => (name, parse_auth_suffix(suffix)),
                None => (token, AuthAccess::Module),
            };
            match name.strip_prefix('@') {
                Some(group) => AuthUser { pattern: group.to_string(), group: true, access },
                None => AuthUser { pattern: name.to_string(), group: false, access },
            }
        })
        .collect()
}

/// rsync looks only at the first letters: `d...` denies, `ro...` and `rw...` set the
/// access, anything else is ignored.
fn parse_auth_suffix(suffix: &str) -> AuthAccess {
    let mut letters = suffix.chars().map(|c| c.to_ascii_lowercase());
    match (letters.next(), letters.next()) {
        (Some('d'), _) => AuthAccess::Deny,
        (Some('r'), Some('o')) => AuthAccess::ReadOnly,
        (Some('r'), Some('w')) => AuthAccess::ReadWrite,
        _ => AuthAccess::Module,
    }
}

/// One module's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    pub name: String,
    /// Where the section that defined it begins.
    pub defined_at: Location,
    /// `path`, trailing slashes removed. A `/./` in it splits the chroot directory
    /// from the served one.
    pub path: PathBuf,
    /// `comment`; empty when unset.
    pub comment: String,
    pub read_only: bool,
    pub write_only: bool,
    pub list: bool,
    /// `uid` as written (a name or a number); see [`resolve_uid`].
    pub uid: Option<String>,
    /// `gid` as written: one or more names or numbers, `*` first for all the user's
    /// groups; see [`Module::gid_list`] and [`resolve_gid`].
    pub gid: Option<String>,
    /// `use chroot`: yes, no, or unset (rsync 3.2.7+: try the chroot and carry on
    /// without it if it fails, unless the path has a `/./` split).
    pub use_chroot: Option<bool>,
    pub strict_modes: bool,
    /// `auth users`; empty for anonymous access.
    pub auth_users: Vec<AuthUser>,
    pub secrets_file: Option<PathBuf>,
    pub auth_digest: Option<String>,
    /// `hosts allow`; empty when unset.
    pub hosts_allow: Vec<HostPattern>,
    /// `hosts deny`; empty when unset.
    pub hosts_deny: Vec<HostPattern>,
    pub max_connections: ConnectionLimit,
    pub lock_file: PathBuf,
    /// `timeout` in seconds; 0 for none.
    pub timeout: u32,
    /// `refuse options`, split on blanks (rsync splits on spaces only).
    pub refuse_options: Vec<String>,
    /// `munge symlinks`: None for the default of [`Module::munge_symlinks_effective`].
    pub munge_symlinks: Option<bool>,
    /// `numeric ids`: None for the default of [`Module::numeric_ids_effective`].
    pub numeric_ids: Option<bool>,
    pub open_noatime: Option<bool>,
    pub log_file: Option<PathBuf>,
    pub log_format: String,
    pub transfer_logging: bool,
    pub ignore_errors: bool,
    pub ignore_nonreadable: bool,
    /// `dont compress` patterns.
    pub dont_compress: Vec<String>,
    /// The daemon filter chain's parameters as written. rsync builds the chain from
    /// `filter`, `include from`, `include`, `exclude from`, `exclude`, in that order.
    pub filter: Option<String>,
    pub include: Option<String>,
    pub exclude: Option<String>,
    pub include_from: Option<PathBuf>,
    pub exclude_from: Option<PathBuf>,
    pub incoming_chmod: Option<String>,
    pub outgoing_chmod: Option<String>,
    pub max_verbosity: i32,
    pub reverse_lookup: bool,
    pub forward_lookup: bool,
    pub temp_dir: Option<PathBuf>,
    pub fake_super: bool,
    pub charset: Option<String>,
    pub pre_xfer_exec: Option<String>,
    pub post_xfer_exec: Option<String>,
    pub early_exec: Option<String>,
    pub name_converter: Option<String>,
    pub insecure_links: bool,
    pub syslog_facility: String,
    pub syslog_tag: String,
}

impl Module {
    /// Whether the module must be chrooted: `use chroot = yes`, or unset with a `/./`
    /// split in the path.
    pub fn chroot_required(&self) -> bool {
        match self.use_chroot {
            Some(required) => required,
            None => self.chroot_split().is_some(),
        }
    }

    /// Whether a chroot is to be tried at all (`use chroot` is not `no`).
    pub fn chroot_wanted(&self) -> bool {
        self.use_chroot != Some(false)
    }

    /// The directory to chroot into and the path served inside it, when the path has a
    /// `/./` split: `/var/rsync/./module1` gives ("/var/rsync", "/module1").
    pub fn chroot_split(&self) -> Option<(&str, &str)> {
        let path = self.path.to_str()?;
        let at = path.find("/./")?;
        Some((&path[..at], &path[at + 2..]))
    }

    /// Whether symlinks are munged: as set, else rsync's default — on unless the
    /// module is chrooted (`chrooted`: whether the chroot was actually made) straight
    /// into the served directory.
    pub fn munge_symlinks_effective(&self, chrooted: bool) -> bool {
        self.munge_symlinks.unwrap_or_else(|| {
            let inner_is_root = match self.chroot_split() {
                Some((_, inner)) => inner.split('/').all(|c| c.is_empty() || c == "."),
                None => true,
            };
            !chrooted || !inner_is_root
        })
    }

    /// Whether ids are sent as numbers only: as set, except that a chrooted module
    /// without a `name converter` defaults to yes and any other to no.
    pub fn numeric_ids_effective(&self, chrooted: bool) -> bool {
        if chrooted {
            self.numeric_ids != Some(false) && self.name_converter.is_none()
        } else {
            self.numeric_ids == Some(true)
        }
    }

    /// The entries of `gid`, split as rsync splits them.
    pub fn gid_list(&self) -> Vec<&str> {
        self.gid.as_deref().map(split_config_list).unwrap_or_default()
    }

    /// Whether the module asks for a login.
    pub fn requires_auth(&self) -> bool {
        !self.auth_users.is_empty()
    }
}

/// A whole configuration: the global settings and the modules in file order (the
/// order of the module listing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub global: Global,
    pub modules: Vec<Module>,
    unsupported: Vec<UnsupportedSetting>,
}

impl Config {
    /// Reads the configuration at `path` and everything it includes.
    pub fn load(path: &Path) -> Result<(Config, Vec<Warning>), ConfigError> {
        let mut loader = Loader::new();
        loader.parse_file(path, 0)?;
        loader.finish()
    }

    /// Reads a configuration already in memory; `origin` names it in messages and is
    /// the base of relative include paths.
    pub fn parse(text: &str, origin: &Path) -> Result<(Config, Vec<Warning>), ConfigError> {
        if text.len() as u64 > MAX_CONFIG_BYTES {
            return Err(ConfigError::TooLarge { path: origin.into(), limit: MAX_CONFIG_BYTES });
        }
        let mut loader = Loader::new();
        loader.parse_text(text, origin, 0)?;
        loader.finish()
    }

    /// The module a client names, compared exactly as rsync does (case matters).
    pub fn module(&self, name: &str) -> Option<&Module> {
        self.modules.iter().find(|m| m.name == name)
    }

    /// The modules shown to a client asking for the list.
    pub fn listed_modules(&self) -> impl Iterator<Item = &Module> {
        self.modules.iter().filter(|m| m.list)
    }

    /// Every parameter halite-rsyncd does not act on that the configuration sets, once
    /// per section and parameter, in file order.
    pub fn unsupported_in_use(&self) -> &[UnsupportedSetting] {
        &self.unsupported
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Global,
    Module,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    /// yes / no / unset.
    Bool3,
    Int {
        min: i64,
        max: i64,
    },
    Text,
    /// Text with trailing slashes removed.
    Path,
    Hosts,
    Address,
}

const ANY_INT: Kind = Kind::Int { min: i32::MIN as i64, max: i32::MAX as i64 };
const SECONDS: Kind = Kind::Int { min: 0, max: i32::MAX as i64 };
const PORT: Kind = Kind::Int { min: 0, max: u16::MAX as i64 };

struct Param {
    name: &'static str,
    scope: Scope,
    kind: Kind,
    /// A module string with no built-in default: unset in a module, it takes the
    /// global value from the end of the configuration (see the module header).
    late_default: bool,
}

const fn global(name: &'static str, kind: Kind) -> Param {
    Param { name, scope: Scope::Global, kind, late_default: false }
}

const fn local(name: &'static str, kind: Kind) -> Param {
    let late_default = matches!(kind, Kind::Text | Kind::Path | Kind::Hosts);
    Param { name, scope: Scope::Module, kind, late_default }
}

const fn local_with_default(name: &'static str, kind: Kind) -> Param {
    Param { name, scope: Scope::Module, kind, late_default: false }
}

/// Every parameter of rsync 3.5's daemon-parm.txt, by its public name.
const PARAMS: &[Param] = &[
    global("address", Kind::Address),
    global("daemon chroot", Kind::Path),
    global("daemon gid", Kind::Text),
    global("daemon uid", Kind::Text),
    global("motd file", Kind::Text),
    global("pid file", Kind::Text),
    global("proxy protocol hosts", Kind::Text),
    global("socket options", Kind::Text),
    global("listen backlog", ANY_INT),
    global("port", PORT),
    global("proxy protocol", Kind::Bool),
    local("auth digest", Kind::Text),
    local("auth users", Kind::Text),
    local("charset", Kind::Text),
    local("comment", Kind::Text),
    local_with_default("dont compress", Kind::Text),
    local("early exec", Kind::Text),
    local("exclude", Kind::Text),
    local("exclude from", Kind::Text),
    local("filter", Kind::Text),
    local("gid", Kind::Text),
    local("hosts allow", Kind::Hosts),
    local("hosts deny", Kind::Hosts),
    local("include", Kind::Text),
    local("include from", Kind::Text),
    local("incoming chmod", Kind::Text),
    local_with_default("lock file", Kind::Text),
    local("log file", Kind::Text),
    local_with_default("log format", Kind::Text),
    local("name", Kind::Text),
    local("name converter", Kind::Text),
    local("outgoing chmod", Kind::Text),
    local("post-xfer exec", Kind::Text),
    local("pre-xfer exec", Kind::Text),
    local("refuse options", Kind::Text),
    local("secrets file", Kind::Text),
    local_with_default("syslog tag", Kind::Text),
    local("uid", Kind::Text),
    local("path", Kind::Path),
    local("temp dir", Kind::Path),
    local("max connections", ANY_INT),
    local("max verbosity", ANY_INT),
    local("timeout", SECONDS),
    local_with_default("syslog facility", Kind::Text),
    local("fake super", Kind::Bool),
    local("forward lookup", Kind::Bool),
    local("ignore errors", Kind::Bool),
    local("ignore nonreadable", Kind::Bool),
    local("insecure links", Kind::Bool),
    local("list", Kind::Bool),
    local("read only", Kind::Bool),
    local("reverse lookup", Kind::Bool),
    local("strict modes", Kind::Bool),
    local("transfer logging", Kind::Bool),
    local("write only", Kind::Bool),
    local("munge symlinks", Kind::Bool3),
    local("numeric ids", Kind::Bool3),
    local("open noatime", Kind::Bool3),
    local("use chroot", Kind::Bool3),
];

/// rsync compares names ignoring case and every blank.
fn names_equal(a: &str, b: &str) -> bool {
    let squeeze = |s: &str| s.chars().filter(|c| !is_c_space(*c)).map(|c| c.to_ascii_lowercase()).collect::<String>();
    squeeze(a) == squeeze(b)
}

fn find_param(name: &str) -> Option<usize> {
    if name.starts_with('-') {
        return None;
    }
    PARAMS.iter().position(|p| names_equal(p.name, name))
}

/// C's isspace in the C locale.
fn is_c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Bool(bool),
    Bool3(Option<bool>),
    Int(i64),
    Text(String),
    Hosts(Vec<HostPattern>),
    Address(Option<IpAddr>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Assigned {
    value: Value,
    at: Location,
}

/// One value slot per entry of [`PARAMS`].
type Values = Vec<Option<Assigned>>;

struct ModuleState {
    name: String,
    values: Values,
    defined_at: Location,
}

/// The reader's state, mirroring loadparm.c's: the global values (module defaults
/// included), the modules so far, whether parameters currently go to the global
/// section, and the saved global values of the `&include`s being read.
struct Loader {
    globals: Values,
    in_global: bool,
    modules: Vec<ModuleState>,
    current: usize,
    saved_globals: Vec<Values>,
    warnings: Vec<Warning>,
    unsupported: Vec<UnsupportedSetting>,
    bytes_read: u64,
    files_read: usize,
}

impl Loader {
    fn new() -> Loader {
        Loader {
            globals: vec![None; PARAMS.len()],
            in_global: true,
            modules: Vec::new(),
            current: 0,
            saved_globals: Vec::new(),
            warnings: Vec::new(),
            unsupported: Vec::new(),
            bytes_read: 0,
            files_read: 0,
        }
    }

    fn warn(&mut self, at: &Location, kind: WarningKind) {
        self.warnings.push(Warning { at: at.clone(), kind });
    }

    fn parse_file(&mut self, path: &Path, depth: usize) -> Result<(), ConfigError> {
        let text = self.read_config_file(path)?;
        self.parse_text(&text, path, depth)
    }

    fn read_config_file(&mut self, path: &Path) -> Result<String, ConfigError> {
        let read_error = |source| ConfigError::Read { path: path.into(), source };
        let too_large = || ConfigError::TooLarge { path: path.into(), limit: MAX_CONFIG_BYTES };
        let file = open_operator_file(path).map_err(read_error)?;
        let meta = file.metadata().map_err(read_error)?;
        if meta.len() > MAX_CONFIG_BYTES {
            return Err(too_large());
        }
        let mut bytes = Vec::new();
        file.take(MAX_CONFIG_BYTES + 1).read_to_end(&mut bytes).map_err(read_error)?;
        if bytes.len() as u64 > MAX_CONFIG_BYTES {
            return Err(too_large());
        }
        self.files_read += 1;
        self.bytes_read += bytes.len() as u64;
        let at = Location { file: path.into(), line: 1 };
        if self.files_read > MAX_CONFIG_FILES {
            return Err(ConfigError::TooMuch { at, limit: format!("{MAX_CONFIG_FILES} files") });
        }
        if self.bytes_read > MAX_TOTAL_CONFIG_BYTES {
            return Err(ConfigError::TooMuch { at, limit: format!("{MAX_TOTAL_CONFIG_BYTES} bytes") });
        }
        String::from_utf8(bytes).map_err(|_| ConfigError::NotUtf8 { path: path.into() })
    }

    /// The line grammar of params.c, including its treatment of odd input.
    fn parse_text(&mut self, text: &str, file: &Path, depth: usize) -> Result<(), ConfigError> {
        let mut lexer = Lexer::new(text);
        let mut c = lexer.eat_whitespace();
        while let Some(ch) = c {
            c = match ch {
                '\n' => lexer.eat_whitespace(),
                ';' | '#' => lexer.eat_comment(),
                '[' => {
                    let at = lexer.location(file);
                    let name = lexer.read_section_name(&at)?;
                    self.begin_section(name, at)?;
                    lexer.eat_whitespace()
                }
                // A stray backslash at the start of a line is skipped, as in params.c.
                '\\' => lexer.eat_whitespace(),
                '&' => {
                    let at = lexer.location(file);
                    if let Some((name, value)) = lexer.read_parameter(ch, &at, &mut self.warnings)? {
                        self.directive(&name, &value, &at, file, depth)?;
                    }
                    lexer.eat_whitespace()
                }
                _ => {
                    let at = lexer.location(file);
                    if let Some((name, value)) = lexer.read_parameter(ch, &at, &mut self.warnings)? {
                        self.set_parameter(&name, &value, &at)?;
                    }
                    lexer.eat_whitespace()
                }
            };
        }
        Ok(())
    }

    fn begin_section(&mut self, name: String, at: Location) -> Result<(), ConfigError> {
        if names_equal(&name, GLOBAL_SECTION) {
            self.in_global = true;
            return Ok(());
        }
        if name.contains('/') {
            return Err(ConfigError::InvalidModuleName { at, name, reason: "module names cannot contain '/'" });
        }
        self.in_global = false;
        // rsync finds an existing module by the same blank- and case-blind comparison
        // as parameter names, searching from the latest.
        if let Some(existing) = self.modules.iter().rposition(|m| names_equal(&m.name, &name)) {
            let first = self.modules[existing].defined_at.clone();
            let module = self.modules[existing].name.clone();
            self.warn(&at, WarningKind::ModuleContinued { module, first });
            self.current = existing;
            return Ok(());
        }
        self.modules.push(ModuleState { name, values: self.globals.clone(), defined_at: at });
        self.current = self.modules.len() - 1;
        Ok(())
    }

    fn section_label(&self) -> String {
        if self.in_global {
            GLOBAL_SECTION.to_string()
        } else {
            self.modules[self.current].name.clone()
        }
    }

    fn set_parameter(&mut self, name: &str, raw: &str, at: &Location) -> Result<(), ConfigError> {
        let Some(index) = find_param(name) else {
            self.warn(at, WarningKind::UnknownParameter(name.to_string()));
            return Ok(());
        };
        let param = &PARAMS[index];
        if !self.in_global && param.scope == Scope::Global {
            let module = self.modules[self.current].name.clone();
            self.warn(at, WarningKind::GlobalParameterInModule { key: param.name, module });
            return Ok(());
        }
        if param.name == "name" {
            return self.rename_module(raw, at);
        }
        let value = self.convert(param, raw, at)?;
        if NOT_ACTED_ON.contains(&param.name) {
            let section = self.section_label();
            if !self.unsupported.iter().any(|u| u.section == section && u.key == param.name) {
                self.unsupported.push(UnsupportedSetting { section, key: param.name, at: at.clone() });
            }
        }
        let assigned = Some(Assigned { value, at: at.clone() });
        if self.in_global {
            self.globals[index] = assigned;
        } else {
            self.modules[self.current].values[index] = assigned;
        }
        Ok(())
    }

    /// `name =` renames the current module, as in rsync (the module is then found, and
    /// listed, under the new name).
    fn rename_module(&mut self, raw: &str, at: &Location) -> Result<(), ConfigError> {
        if self.in_global {
            self.warn(at, WarningKind::NameInGlobalSection);
            return Ok(());
        }
        let reason = if raw.is_empty() {
            Some("a module name cannot be empty")
        } else if raw.contains('/') {
            Some("module names cannot contain '/'")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(ConfigError::InvalidModuleName { at: at.clone(), name: raw.to_string(), reason });
        }
        self.modules[self.current].name = raw.to_string();
        Ok(())
    }

    fn convert(&mut self, param: &Param, raw: &str, at: &Location) -> Result<Value, ConfigError> {
        let invalid = |reason: String| ConfigError::InvalidValue {
            at: at.clone(),
            key: param.name,
            value: raw.to_string(),
            reason,
        };
        match param.kind {
            Kind::Bool => parse_bool(&expand_environment(raw), false)
                .map(|b| Value::Bool(b.unwrap_or(false)))
                .ok_or_else(|| invalid("expected yes/no, true/false or 1/0".into())),
            Kind::Bool3 => parse_bool(&expand_environment(raw), true)
                .map(Value::Bool3)
                .ok_or_else(|| invalid("expected yes/no, true/false, 1/0 or unset".into())),
            Kind::Int { min, max } => {
                let expanded = expand_environment(raw);
                match parse_int(&expanded) {
                    Some(n) if (min..=max).contains(&n) => Ok(Value::Int(n)),
                    Some(_) => Err(invalid(format!("expected a number from {min} to {max}"))),
                    None => Err(invalid("expected a whole number".into())),
                }
            }
            Kind::Address => {
                let expanded = expand_environment(raw);
                if expanded.is_empty() {
                    return Ok(Value::Address(None));
                }
                expanded
                    .parse::<IpAddr>()
                    .map(|a| Value::Address(Some(a)))
                    .map_err(|_| invalid("expected an IPv4 or IPv6 address (halite-rsyncd resolves no names)".into()))
            }
            Kind::Hosts => {
                if raw.is_empty() {
                    return Ok(Value::Hosts(Vec::new()));
                }
                let list = parse_host_list(raw).map_err(|e| invalid(e.to_string()))?;
                for note in list.notes {
                    self.warn(at, WarningKind::Hosts { key: param.name, note });
                }
                Ok(Value::Hosts(list.patterns))
            }
            Kind::Text | Kind::Path => {
                if param.name != "log format" && has_variable_reference(raw) {
                    self.warn(at, WarningKind::VariableNotExpanded { key: param.name });
                }
                let mut text = raw.to_string();
                if param.kind == Kind::Path {
                    while text.len() > 1 && text.ends_with('/') {
                        text.pop();
                    }
                }
                Ok(Value::Text(text))
            }
        }
    }

    fn directive(
        &mut self,
        name: &str,
        value: &str,
        at: &Location,
        file: &Path,
        depth: usize,
    ) -> Result<(), ConfigError> {
        let scoped = if name.eq_ignore_ascii_case("&include") {
            true
        } else if name.eq_ignore_ascii_case("&merge") {
            false
        } else {
            return Err(ConfigError::UnknownDirective { at: at.clone(), name: name.to_string() });
        };
        if depth + 1 > MAX_INCLUDE_DEPTH {
            return Err(ConfigError::IncludeTooDeep { at: at.clone(), limit: MAX_INCLUDE_DEPTH });
        }
        let named = Path::new(value);
        let path =
            if named.is_absolute() { named.to_path_buf() } else { file.parent().unwrap_or(Path::new("")).join(named) };
        let include_error = |source| ConfigError::Include { at: at.clone(), path: path.clone(), source };
        let meta = std::fs::metadata(&path).map_err(include_error)?;
        if meta.is_file() {
            if scoped {
                self.save_globals();
            }
            self.parse_file(&path, depth + 1)?;
            if scoped {
                self.restore_globals(true);
            }
            return Ok(());
        }
        if !meta.is_dir() {
            return Err(ConfigError::IncludeNotFileOrDir { at: at.clone(), path });
        }
        let suffix = if scoped { ".conf" } else { ".inc" };
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(&path).map_err(include_error)? {
            let entry = entry.map_err(include_error)?;
            if entry.file_name().as_bytes().ends_with(suffix.as_bytes()) {
                entries.push(entry.path());
            }
        }
        entries.sort_by(|a, b| a.as_os_str().as_bytes().cmp(b.as_os_str().as_bytes()));
        let mut first = true;
        for entry in entries {
            let is_file = std::fs::metadata(&entry).map(|m| m.is_file()).unwrap_or(false);
            if !is_file {
                self.warn(at, WarningKind::IncludeEntrySkipped(entry));
                continue;
            }
            if scoped {
                if first {
                    self.save_globals();
                } else {
                    self.restore_globals(false);
                }
            }
            first = false;
            self.parse_file(&entry, depth + 1)?;
        }
        if scoped && !first {
            self.restore_globals(true);
        }
        Ok(())
    }

    /// An included file starts in the global section with the includer's globals.
    fn save_globals(&mut self) {
        self.in_global = true;
        self.saved_globals.push(self.globals.clone());
    }

    /// Back to the globals saved at the include (between the files of a directory too),
    /// still in the global section: after an `&include`, parameters are global even
    /// if the include was written inside a module.
    fn restore_globals(&mut self, finished: bool) {
        self.in_global = true;
        let saved = if finished { self.saved_globals.pop() } else { self.saved_globals.last().cloned() };
        if let Some(saved) = saved {
            self.globals = saved;
        }
    }

    fn finish(self) -> Result<(Config, Vec<Warning>), ConfigError> {
        let global = build_global(&Settings { own: &self.globals, late: &self.globals });
        let mut modules = Vec::with_capacity(self.modules.len());
        for state in &self.modules {
            modules.push(build_module(state, &self.globals)?);
        }
        Ok((Config { global, modules, unsupported: self.unsupported }, self.warnings))
    }
}

/// Looks values up by parameter name: the section's own, else (for strings without a
/// built-in default) the final global value.
struct Settings<'v> {
    own: &'v Values,
    late: &'v Values,
}

impl<'v> Settings<'v> {
    fn get(&self, name: &str) -> Option<&'v Assigned> {
        let index = PARAMS.iter().position(|p| p.name == name)?;
        match &self.own[index] {
            Some(assigned) => Some(assigned),
            None if PARAMS[index].late_default => self.late[index].as_ref(),
            None => None,
        }
    }

    fn bool(&self, name: &str, default: bool) -> bool {
        match self.get(name).map(|a| &a.value) {
            Some(Value::Bool(b)) => *b,
            _ => default,
        }
    }

    fn bool3(&self, name: &str) -> Option<bool> {
        match self.get(name).map(|a| &a.value) {
            Some(Value::Bool3(b)) => *b,
            _ => None,
        }
    }

    fn int(&self, name: &str, default: i64) -> i64 {
        match self.get(name).map(|a| &a.value) {
            Some(Value::Int(n)) => *n,
            _ => default,
        }
    }

    /// The text as set, even empty.
    fn raw_text(&self, name: &str) -> Option<&'v str> {
        match self.get(name).map(|a| &a.value) {
            Some(Value::Text(text)) => Some(text),
            _ => None,
        }
    }

    /// The text, None when unset or empty (rsync treats both as "not set").
    fn text(&self, name: &str) -> Option<String> {
        self.raw_text(name).filter(|t| !t.is_empty()).map(str::to_string)
    }

    fn path(&self, name: &str) -> Option<PathBuf> {
        self.text(name).map(PathBuf::from)
    }

    fn hosts(&self, name: &str) -> Vec<HostPattern> {
        match self.get(name).map(|a| &a.value) {
            Some(Value::Hosts(patterns)) => patterns.clone(),
            _ => Vec::new(),
        }
    }
}

fn build_global(settings: &Settings<'_>) -> Global {
    let port = match settings.int("port", 0) {
        0 => DEFAULT_PORT,
        n => u16::try_from(n).unwrap_or(DEFAULT_PORT),
    };
    let address = match settings.get("address").map(|a| &a.value) {
        Some(Value::Address(address)) => *address,
        _ => None,
    };
    Global {
        address,
        port,
        motd_file: settings.path("motd file"),
        pid_file: settings.path("pid file"),
        log_file: settings.path("log file"),
        reverse_lookup: settings.bool("reverse lookup", true),
        socket_options: settings.text("socket options"),
        listen_backlog: clamp_i32(settings.int("listen backlog", 5)),
        daemon_chroot: settings.path("daemon chroot"),
        daemon_uid: settings.text("daemon uid"),
        daemon_gid: settings.text("daemon gid"),
        proxy_protocol: settings.bool("proxy protocol", false),
        proxy_protocol_hosts: settings.text("proxy protocol hosts"),
    }
}

fn build_module(state: &ModuleState, globals: &Values) -> Result<Module, ConfigError> {
    let s = Settings { own: &state.values, late: globals };
    let Some(path) = s.path("path") else {
        return Err(ConfigError::MissingPath { at: state.defined_at.clone(), module: state.name.clone() });
    };
    let max_connections = match s.int("max connections", 0) {
        0 => ConnectionLimit::Unlimited,
        n if n < 0 => ConnectionLimit::Refused,
        n => ConnectionLimit::AtMost(u32::try_from(n).unwrap_or(u32::MAX)),
    };
    let words = |name: &str, default: &str| -> Vec<String> {
        s.raw_text(name).unwrap_or(default).split_ascii_whitespace().map(str::to_string).collect()
    };
    Ok(Module {
        name: state.name.clone(),
        defined_at: state.defined_at.clone(),
        path,
        comment: s.raw_text("comment").unwrap_or_default().to_string(),
        read_only: s.bool("read only", true),
        write_only: s.bool("write only", false),
        list: s.bool("list", true),
        uid: s.text("uid"),
        gid: s.text("gid"),
        use_chroot: s.bool3("use chroot"),
        strict_modes: s.bool("strict modes", true),
        auth_users: s.raw_text("auth users").map(parse_auth_users).unwrap_or_default(),
        secrets_file: s.path("secrets file"),
        auth_digest: s.text("auth digest"),
        hosts_allow: s.hosts("hosts allow"),
        hosts_deny: s.hosts("hosts deny"),
        max_connections,
        lock_file: PathBuf::from(s.raw_text("lock file").unwrap_or(DEFAULT_LOCK_FILE)),
        timeout: u32::try_from(s.int("timeout", 0)).unwrap_or(0),
        refuse_options: words("refuse options", ""),
        munge_symlinks: s.bool3("munge symlinks"),
        numeric_ids: s.bool3("numeric ids"),
        open_noatime: s.bool3("open noatime"),
        log_file: s.path("log file"),
        log_format: s.raw_text("log format").unwrap_or(DEFAULT_LOG_FORMAT).to_string(),
        transfer_logging: s.bool("transfer logging", false),
        ignore_errors: s.bool("ignore errors", false),
        ignore_nonreadable: s.bool("ignore nonreadable", false),
        dont_compress: words("dont compress", DEFAULT_DONT_COMPRESS),
        filter: s.text("filter"),
        include: s.text("include"),
        exclude: s.text("exclude"),
        include_from: s.path("include from"),
        exclude_from: s.path("exclude from"),
        incoming_chmod: s.text("incoming chmod"),
        outgoing_chmod: s.text("outgoing chmod"),
        max_verbosity: clamp_i32(s.int("max verbosity", 1)),
        reverse_lookup: s.bool("reverse lookup", true),
        forward_lookup: s.bool("forward lookup", true),
        temp_dir: s.path("temp dir"),
        fake_super: s.bool("fake super", false),
        charset: s.text("charset"),
        pre_xfer_exec: s.text("pre-xfer exec"),
        post_xfer_exec: s.text("post-xfer exec"),
        early_exec: s.text("early exec"),
        name_converter: s.text("name converter"),
        insecure_links: s.bool("insecure links", false),
        syslog_facility: s.raw_text("syslog facility").unwrap_or("daemon").to_string(),
        syslog_tag: s.raw_text("syslog tag").unwrap_or("rsyncd").to_string(),
    })
}

fn clamp_i32(n: i64) -> i32 {
    n.clamp(i32::MIN as i64, i32::MAX as i64) as i32
}

/// A boolean as rsync reads one: case and blanks ignored. `Some(None)` is "unset",
/// accepted only where the parameter has three states.
fn parse_bool(text: &str, allow_unset: bool) -> Option<Option<bool>> {
    let word: String = text.chars().filter(|c| !is_c_space(*c)).map(|c| c.to_ascii_lowercase()).collect();
    match word.as_str() {
        "yes" | "true" | "1" => Some(Some(true)),
        "no" | "false" | "0" => Some(Some(false)),
        "unset" | "-1" if allow_unset => Some(None),
        _ => None,
    }
}

/// A whole number, optionally signed. rsync's atoi also takes "12abc" as 12 and "abc"
/// as 0; such values are refused here.
fn parse_int(text: &str) -> Option<i64> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.strip_prefix('+').unwrap_or(text).parse().ok()
}

/// Substitutes `%NAME%` (NAME starting with an upper-case letter) from the
/// environment, leaving unknown or malformed references as written. rsync does this
/// when it reads non-string parameters.
fn expand_environment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some((name, tail)) = variable_reference(after) {
            if let Ok(value) = std::env::var(name) {
                out.push_str(&value);
                rest = tail;
                continue;
            }
        }
        out.push('%');
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Given the text after a `%`, the variable name and the text after its closing `%`.
fn variable_reference(after: &str) -> Option<(&str, &str)> {
    if !after.starts_with(|c: char| c.is_ascii_uppercase()) {
        return None;
    }
    let end = after.find('%')?;
    Some((&after[..end], &after[end + 1..]))
}

fn has_variable_reference(text: &str) -> bool {
    text.match_indices('%').any(|(at, _)| variable_reference(&text[at + 1..]).is_some())
}

/// Reads characters the way params.c does: a NUL ends the input, and lines are
/// counted for messages.
struct Lexer<'t> {
    chars: std::str::Chars<'t>,
    line: usize,
    ended: bool,
}

impl<'t> Lexer<'t> {
    fn new(text: &'t str) -> Lexer<'t> {
        Lexer { chars: text.chars(), line: 1, ended: false }
    }

    fn location(&self, file: &Path) -> Location {
        Location { file: file.into(), line: self.line }
    }

    fn getc(&mut self) -> Option<char> {
        if self.ended {
            return None;
        }
        match self.chars.next() {
            None | Some('\0') => {
                self.ended = true;
                None
            }
            Some(c) => {
                if c == '\n' {
                    self.line += 1;
                }
                Some(c)
            }
        }
    }

    /// Skips blanks other than newlines; returns the next character.
    fn eat_whitespace(&mut self) -> Option<char> {
        loop {
            match self.getc() {
                Some(c) if is_c_space(c) && c != '\n' => continue,
                other => return other,
            }
        }
    }

    /// Skips to the end of the line; returns the newline (or None at the end).
    fn eat_comment(&mut self) -> Option<char> {
        loop {
            match self.getc() {
                Some('\n') => return Some('\n'),
                None => return None,
                Some(_) => continue,
            }
        }
    }

    /// The name of a `[section]`, its blanks squeezed to single spaces; the rest of
    /// the line after `]` is ignored.
    fn read_section_name(&mut self, at: &Location) -> Result<String, ConfigError> {
        let mut name: Vec<char> = Vec::new();
        let mut end = 0;
        let mut c = self.eat_whitespace();
        loop {
            match c {
                None => {
                    return Err(ConfigError::Syntax {
                        at: at.clone(),
                        message: "the file ends inside a section header",
                    })
                }
                Some(']') => {
                    name.truncate(end);
                    if name.is_empty() {
                        return Err(ConfigError::Syntax { at: at.clone(), message: "empty section name" });
                    }
                    self.eat_comment();
                    return Ok(name.into_iter().collect());
                }
                Some('\n') => {
                    let Some(backslash) = continuation(&name) else {
                        return Err(ConfigError::Syntax { at: at.clone(), message: "a section header lacks its ']'" });
                    };
                    name.truncate(backslash);
                    end = squeezed_end(&name);
                    c = self.getc();
                }
                Some(ch) if is_c_space(ch) => {
                    name.truncate(end);
                    name.push(' ');
                    c = self.eat_whitespace();
                }
                Some(ch) => {
                    name.push(ch);
                    end = name.len();
                    c = self.getc();
                }
            }
        }
    }

    /// A `name = value` line starting with `first`, or a directive (`&name value`).
    /// Lines without `=` are skipped with a warning, as in params.c.
    fn read_parameter(
        &mut self,
        first: char,
        at: &Location,
        warnings: &mut Vec<Warning>,
    ) -> Result<Option<(String, String)>, ConfigError> {
        let mut name: Vec<char> = Vec::new();
        let mut end = 0;
        let mut c = Some(first);
        loop {
            match c {
                Some('=') => {
                    if end == 0 {
                        return Err(ConfigError::Syntax {
                            at: at.clone(),
                            message: "a parameter has no name before '='",
                        });
                    }
                    name.truncate(end);
                    c = self.eat_whitespace();
                    break;
                }
                Some('\n') => {
                    let Some(backslash) = continuation(&name) else {
                        name.truncate(end);
                        let text = name.into_iter().collect();
                        warnings.push(Warning { at: at.clone(), kind: WarningKind::BadlyFormedLine(text) });
                        return Ok(None);
                    };
                    name.truncate(backslash);
                    end = squeezed_end(&name);
                    c = self.getc();
                }
                None => {
                    let text = name.into_iter().collect();
                    warnings.push(Warning { at: at.clone(), kind: WarningKind::UnexpectedEnd(text) });
                    return Ok(None);
                }
                // A directive's name ends at its first blank; an '=' may follow.
                Some(' ' | '\t') if name.first() == Some(&'&') => {
                    name.truncate(end);
                    c = self.eat_whitespace();
                    if c == Some('=') {
                        c = self.eat_whitespace();
                    }
                    break;
                }
                Some(ch) if is_c_space(ch) => {
                    name.truncate(end);
                    name.push(' ');
                    c = self.eat_whitespace();
                }
                Some(ch) => {
                    name.push(ch);
                    end = name.len();
                    c = self.getc();
                }
            }
        }
        let mut value: Vec<char> = Vec::new();
        let mut value_end = 0;
        loop {
            match c {
                None => break,
                // Carriage returns are dropped anywhere in a value.
                Some('\r') => c = self.getc(),
                Some('\n') => match continuation(&value) {
                    None => break,
                    Some(backslash) => {
                        value.truncate(backslash);
                        value_end = backslash;
                        c = self.getc();
                    }
                },
                Some(ch) => {
                    value.push(ch);
                    if !is_c_space(ch) {
                        value_end = value.len();
                    }
                    c = self.getc();
                }
            }
        }
        value.truncate(value_end);
        Ok(Some((name.into_iter().collect(), value.into_iter().collect())))
    }
}

/// Where the backslash is when the text so far ends with one (blanks after it
/// allowed): the line continues on the next.
fn continuation(text: &[char]) -> Option<usize> {
    let last = text.iter().rposition(|c| !is_c_space(*c))?;
    (text[last] == '\\').then_some(last)
}

/// The end of a squeezed name after a continuation: a single trailing space is not
/// part of it unless more follows.
fn squeezed_end(name: &[char]) -> usize {
    match name.last() {
        Some(' ') => name.len() - 1,
        _ => name.len(),
    }
}

/// Opens a file the operator named (configuration, include, secrets file), refusing to
/// follow any symlink on the way that is owned by someone other than root or the
/// daemon's user, as rsync does: otherwise a user who can write a directory on the
/// path could point the root daemon at a file of their choosing. The walk holds a
/// descriptor for each directory and opens each component without following links,
/// so the path cannot be changed under it between the check and the open.
pub fn open_operator_file(path: &Path) -> io::Result<File> {
    let bytes = path.as_os_str().as_bytes();
    if bytes.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty path"));
    }
    // SAFETY: geteuid has no preconditions.
    let trusted_uid = unsafe { libc::geteuid() };
    let mut dir = open_directory(if bytes[0] == b'/' { c"/" } else { c"." })?;
    let mut pending: Vec<Vec<u8>> = Vec::new();
    push_components(&mut pending, bytes);
    let mut expansions = 0;
    while let Some(component) = pending.pop() {
        let name = CString::new(component).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
        // SAFETY: a zeroed stat is a valid out-parameter.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: valid descriptor, NUL-terminated name and out-parameter.
        if unsafe { libc::fstatat(dir.as_raw_fd(), name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) } != 0 {
            return Err(io::Error::last_os_error());
        }
        if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
            if st.st_uid != 0 && st.st_uid != trusted_uid {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!("refusing a symlink owned by uid {} on the way", st.st_uid),
                ));
            }
            expansions += 1;
            if expansions > 40 {
                return Err(io::Error::from_raw_os_error(libc::ELOOP));
            }
            let target = read_link_at(&dir, &name)?;
            if target.first() == Some(&b'/') {
                dir = open_directory(c"/")?;
            }
            push_components(&mut pending, &target);
            continue;
        }
        if pending.is_empty() {
            return open_at(&dir, &name, libc::O_RDONLY | libc::O_NOCTTY).map(File::from);
        }
        dir = open_at(&dir, &name, DIRECTORY_WALK_FLAGS)?;
    }
    // The path named a directory such as "/": open it (reading will fail).
    open_at(&dir, c".", libc::O_RDONLY).map(File::from)
}

#[cfg(target_os = "linux")]
const DIRECTORY_WALK_FLAGS: libc::c_int = libc::O_PATH | libc::O_DIRECTORY;
#[cfg(not(target_os = "linux"))]
const DIRECTORY_WALK_FLAGS: libc::c_int = libc::O_RDONLY | libc::O_DIRECTORY;

/// Pushes the components of `path` so that the first is popped first.
fn push_components(pending: &mut Vec<Vec<u8>>, path: &[u8]) {
    for component in path.split(|&b| b == b'/').rev() {
        if !component.is_empty() && component != b"." {
            pending.push(component.to_vec());
        }
    }
}

fn open_directory(path: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: NUL-terminated path; the result is checked before use.
    let fd = unsafe { libc::open(path.as_ptr(), DIRECTORY_WALK_FLAGS | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor just opened and owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn open_at(dir: &OwnedFd, name: &CStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: valid descriptor and NUL-terminated name; the result is checked.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags | libc::O_NOFOLLOW | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor just opened and owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn read_link_at(dir: &OwnedFd, name: &CStr) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: valid descriptor, name, and a buffer of the length given.
    let len = unsafe { libc::readlinkat(dir.as_raw_fd(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if len < 0 {
        return Err(io::Error::last_os_error());
    }
    let len = len as usize;
    if len >= buf.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    buf.truncate(len);
    Ok(buf)
}

/// Why a `uid` or `gid` could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("no user named {0:?}")]
    NoSuchUser(String),
    #[error("no group named {0:?}")]
    NoSuchGroup(String),
    #[error("{0:?} is not a valid id")]
    BadId(String),
}

/// The uid a `uid` value names: a number as is, else a user name looked up in the
/// system's user database.
pub fn resolve_uid(spec: &str) -> Result<u32, IdError> {
    if let Some(number) = numeric_id(spec)? {
        return Ok(number);
    }
    let name = CString::new(spec).map_err(|_| IdError::BadId(spec.to_string()))?;
    lookup_with_growing_buffer(|buf| {
        // SAFETY: a zeroed passwd is a valid out-parameter.
        let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: valid name, out-parameters and a buffer of the length given.
        let rc = unsafe { libc::getpwnam_r(name.as_ptr(), &mut entry, buf.as_mut_ptr(), buf.len(), &mut result) };
        (rc, (!result.is_null()).then_some(entry.pw_uid))
    })
    .ok_or_else(|| IdError::NoSuchUser(spec.to_string()))
}

/// The gid a `gid` entry names: a number as is, else a group name looked up in the
/// system's group database.
pub fn resolve_gid(spec: &str) -> Result<u32, IdError> {
    if let Some(number) = numeric_id(spec)? {
        return Ok(number);
    }
    let name = CString::new(spec).map_err(|_| IdError::BadId(spec.to_string()))?;
    lookup_with_growing_buffer(|buf| {
        // SAFETY: a zeroed group is a valid out-parameter.
        let mut entry: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: valid name, out-parameters and a buffer of the length given.
        let rc = unsafe { libc::getgrnam_r(name.as_ptr(), &mut entry, buf.as_mut_ptr(), buf.len(), &mut result) };
        (rc, (!result.is_null()).then_some(entry.gr_gid))
    })
    .ok_or_else(|| IdError::NoSuchGroup(spec.to_string()))
}

/// The names of the groups of the local user `user` (primary group included), for the
/// `@group` rules of `auth users`; empty when there is no such user.
pub fn groups_of_user(user: &str) -> Vec<String> {
    let Ok(name) = CString::new(user) else {
        return Vec::new();
    };
    let primary = lookup_with_growing_buffer(|buf| {
        // SAFETY: a zeroed passwd is a valid out-parameter.
        let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: valid name, out-parameters and a buffer of the length given.
        let rc = unsafe { libc::getpwnam_r(name.as_ptr(), &mut entry, buf.as_mut_ptr(), buf.len(), &mut result) };
        (rc, (!result.is_null()).then_some(entry.pw_gid))
    });
    let Some(primary) = primary else {
        return Vec::new();
    };
    let mut gids: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut count = gids.len() as libc::c_int;
        // SAFETY: valid name, a buffer of `count` gids and its length.
        let rc = unsafe { libc::getgrouplist(name.as_ptr(), primary, gids.as_mut_ptr(), &mut count) };
        if rc >= 0 {
            gids.truncate(count.max(0) as usize);
            break;
        }
        let wanted = (count.max(0) as usize).max(gids.len() * 2);
        if wanted > 1 << 16 {
            return Vec::new();
        }
        gids.resize(wanted, 0);
    }
    gids.into_iter().filter_map(group_name).collect()
}

fn group_name(gid: libc::gid_t) -> Option<String> {
    lookup_with_growing_buffer(|buf| {
        // SAFETY: a zeroed group is a valid out-parameter.
        let mut entry: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: valid out-parameters and a buffer of the length given.
        let rc = unsafe { libc::getgrgid_r(gid, &mut entry, buf.as_mut_ptr(), buf.len(), &mut result) };
        if result.is_null() {
            return (rc, None);
        }
        // SAFETY: gr_name points into buf, NUL-terminated, while buf lives.
        let name = unsafe { CStr::from_ptr(entry.gr_name) };
        (rc, Some(name.to_string_lossy().into_owned()))
    })
}

fn numeric_id(spec: &str) -> Result<Option<u32>, IdError> {
    if spec.is_empty() {
        return Err(IdError::BadId(spec.to_string()));
    }
    if !spec.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    spec.parse().map(Some).map_err(|_| IdError::BadId(spec.to_string()))
}

/// Runs a reentrant lookup, growing its scratch buffer while it reports ERANGE.
fn lookup_with_growing_buffer<T>(mut lookup: impl FnMut(&mut [libc::c_char]) -> (libc::c_int, Option<T>)) -> Option<T> {
    let mut size = 4096;
    loop {
        let mut buf = vec![0 as libc::c_char; size];
        match lookup(&mut buf) {
            (libc::ERANGE, _) if size < 1 << 20 => size *= 4,
            (_, found) => return found,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const SITE: &str = "\
address = 10.10.10.2
port = 873
hosts allow = 10.10.10.0/24
hosts deny = *
use chroot = yes
strict modes = yes

[backups]
    comment = Backups every VM pushes to and pulls from
    path = /srv/backups
    uid = backup
    gid = backup
    read only = no
    auth users = backup
    secrets file = /etc/rsyncd.secrets

[code]
    comment = Mirrored sources for deployments
    path = /srv/code
    uid = nobody
    gid = nogroup
    read only = yes
    auth users = deploy
    secrets file = /etc/rsyncd.secrets
";

    fn parse(text: &str) -> (Config, Vec<Warning>) {
        Config::parse(text, Path::new("/etc/rsyncd.conf")).expect("config parses")
    }

    fn parse_err(text: &str) -> ConfigError {
        Config::parse(text, Path::new("/etc/rsyncd.conf")).expect_err("config is refused")
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("test address")
    }

    #[test]
    fn the_site_configuration() {
        let (config, warnings) = parse(SITE);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(config.unsupported_in_use().is_empty(), "{:?}", config.unsupported_in_use());
        assert_eq!(config.global.address, Some(ip("10.10.10.2")));
        assert_eq!(config.global.port, 873);
        assert_eq!(config.global.pid_file, None);
        assert_eq!(config.global.motd_file, None);
        let names: Vec<&str> = config.modules.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["backups", "code"]);

        let backups = config.module("backups").expect("backups");
        assert_eq!(backups.comment, "Backups every VM pushes to and pulls from");
        assert_eq!(backups.path, Path::new("/srv/backups"));
        assert_eq!(backups.uid.as_deref(), Some("backup"));
        assert_eq!(backups.gid.as_deref(), Some("backup"));
        assert_eq!(backups.gid_list(), ["backup"]);
        assert!(!backups.read_only);
        assert!(!backups.write_only);
        assert!(backups.list);
        assert_eq!(backups.use_chroot, Some(true));
        assert!(backups.chroot_required());
        assert!(backups.strict_modes);
        assert_eq!(
            backups.auth_users,
            [AuthUser { pattern: "backup".into(), group: false, access: AuthAccess::Module }]
        );
        assert_eq!(backups.secrets_file.as_deref(), Some(Path::new("/etc/rsyncd.secrets")));
        assert_eq!(backups.max_connections, ConnectionLimit::Unlimited);
        assert_eq!(backups.lock_file, Path::new(DEFAULT_LOCK_FILE));
        assert_eq!(backups.timeout, 0);
        assert_eq!(backups.log_format, DEFAULT_LOG_FORMAT);
        assert!(backups.dont_compress.contains(&"*.gz".to_string()));
        assert!(!backups.munge_symlinks_effective(true));
        assert!(backups.numeric_ids_effective(true));
        // The global hosts lists are every module's.
        for module in &config.modules {
            assert!(crate::hosts::allows(&module.hosts_allow, &module.hosts_deny, ip("10.10.10.50"), None));
            assert!(crate::hosts::allows(&module.hosts_allow, &module.hosts_deny, ip("::ffff:10.10.10.50"), None));
            assert!(!crate::hosts::allows(&module.hosts_allow, &module.hosts_deny, ip("10.10.11.50"), None));
            assert!(!crate::hosts::allows(&module.hosts_allow, &module.hosts_deny, ip("2001:db8::1"), None));
        }

        let code = config.module("code").expect("code");
        assert_eq!(code.comment, "Mirrored sources for deployments");
        assert_eq!(code.path, Path::new("/srv/code"));
        assert_eq!(code.uid.as_deref(), Some("nobody"));
        assert_eq!(code.gid.as_deref(), Some("nogroup"));
        assert!(code.read_only);
        assert_eq!(code.auth_users[0].pattern, "deploy");
        assert_eq!(config.module("Code"), None, "module lookup is exact");
    }

    #[test]
    fn defaults_of_an_empty_module() {
        let (config, _) = parse("[m]\npath = /srv/m/\n");
        let m = &config.modules[0];
        assert_eq!(m.path, Path::new("/srv/m"), "trailing slashes go");
        assert!(m.read_only && !m.write_only && m.list && m.strict_modes);
        assert!(m.reverse_lookup && m.forward_lookup);
        assert_eq!(m.use_chroot, None);
        assert!(m.chroot_wanted() && !m.chroot_required());
        assert_eq!(m.max_verbosity, 1);
        assert_eq!(m.syslog_facility, "daemon");
        assert_eq!(m.syslog_tag, "rsyncd");
        assert!(m.auth_users.is_empty() && !m.requires_auth());
        assert!(m.hosts_allow.is_empty() && m.hosts_deny.is_empty());
        assert_eq!(config.global.port, DEFAULT_PORT);
        assert_eq!(config.global.listen_backlog, 5);
        assert!(config.global.reverse_lookup);
        let (root, _) = parse("[root]\npath = /\n");
        assert_eq!(root.modules[0].path, Path::new("/"));
    }

    #[test]
    fn munge_and_numeric_id_defaults_follow_the_chroot() {
        let (config, _) = parse(
            "[plain]\npath = /srv/a\n[split]\npath = /srv/./a\n[splitroot]\npath = /srv/./\n\
             [set]\npath = /srv/a\nmunge symlinks = no\nnumeric ids = yes\n[conv]\npath = /srv\nname converter = /bin/nc\n",
        );
        let m = |name: &str| config.module(name).expect("module").clone();
        assert!(!m("plain").munge_symlinks_effective(true));
        assert!(m("plain").munge_symlinks_effective(false));
        assert!(m("split").munge_symlinks_effective(true));
        assert!(m("split").chroot_required());
        assert_eq!(m("split").chroot_split(), Some(("/srv", "/a")));
        assert!(!m("splitroot").munge_symlinks_effective(true));
        assert!(!m("set").munge_symlinks_effective(false));
        assert!(m("plain").numeric_ids_effective(true));
        assert!(!m("plain").numeric_ids_effective(false));
        assert!(m("set").numeric_ids_effective(false));
        assert!(!m("conv").numeric_ids_effective(true));
    }

    #[test]
    fn names_ignore_case_and_blanks_but_not_underscores() {
        let (config, warnings) =
            parse("[m]\npath = /srv\nREAD ONLY = no\n  writeonly = yes\nL i S t = no\nstrict_modes = no\n");
        let m = &config.modules[0];
        assert!(!m.read_only && m.write_only && !m.list);
        assert!(m.strict_modes, "strict_modes is not a parameter");
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].kind, WarningKind::UnknownParameter("strict_modes".into()));
        assert_eq!(warnings[0].at.line, 6);
    }

    #[test]
    fn booleans() {
        for (text, expected) in [
            ("yes", Some(true)),
            ("YES", Some(true)),
            ("True", Some(true)),
            ("1", Some(true)),
            ("y e s", Some(true)),
            ("no", Some(false)),
            ("FALSE", Some(false)),
            ("0", Some(false)),
            ("unset", None),
            ("-1", None),
        ] {
            let (config, _) = parse(&format!("[m]\npath = /srv\nuse chroot = {text}\n"));
            assert_eq!(config.modules[0].use_chroot, expected, "{text}");
        }
        let err = parse_err("[m]\npath = /srv\nread only = maybe\n");
        match &err {
            ConfigError::InvalidValue { at, key, value, .. } => {
                assert_eq!((*key, value.as_str(), at.line), ("read only", "maybe", 3));
                assert_eq!(at.file, Path::new("/etc/rsyncd.conf"));
            }
            other => panic!("unexpected {other:?}"),
        }
        let shown = err.to_string();
        assert!(shown.contains("/etc/rsyncd.conf:3") && shown.contains("read only"), "{shown}");
        assert!(matches!(parse_err("[m]\npath = /srv\nlist = unset\n"), ConfigError::InvalidValue { key: "list", .. }));
    }

    #[test]
    fn numbers_and_ports() {
        let (config, _) =
            parse("port = 8873\n[m]\npath = /srv\ntimeout = 600\nmax connections = 4\nmax verbosity = +2\n");
        assert_eq!(config.global.port, 8873);
        let m = &config.modules[0];
        assert_eq!((m.timeout, m.max_connections, m.max_verbosity), (600, ConnectionLimit::AtMost(4), 2));
        let (config, _) = parse("port = 0\n[m]\npath = /srv\nmax connections = -1\n");
        assert_eq!(config.global.port, DEFAULT_PORT);
        assert_eq!(config.modules[0].max_connections, ConnectionLimit::Refused);
        for bad in ["port = 65536", "port = -1", "port = eight", "port = 87 3", "port ="] {
            assert!(matches!(parse_err(bad), ConfigError::InvalidValue { key: "port", .. }), "{bad}");
        }
        assert!(matches!(parse_err("timeout = 10s"), ConfigError::InvalidValue { key: "timeout", .. }));
        assert!(matches!(parse_err("timeout = -5"), ConfigError::InvalidValue { key: "timeout", .. }));
        assert!(matches!(
            parse_err("max connections = 99999999999"),
            ConfigError::InvalidValue { key: "max connections", .. }
        ));
        assert!(matches!(parse_err("address = rsync.example.com"), ConfigError::InvalidValue { key: "address", .. }));
        let (config, _) = parse("address = ::1\n");
        assert_eq!(config.global.address, Some(ip("::1")));
    }

    #[test]
    fn environment_references_in_booleans_and_numbers() {
        std::env::set_var("HALITE_TEST_CONFIG_TIMEOUT", "77");
        let (config, _) = parse("[m]\npath = /srv\ntimeout = %HALITE_TEST_CONFIG_TIMEOUT%\n");
        assert_eq!(config.modules[0].timeout, 77);
        assert!(parse_err("[m]\npath = /srv\ntimeout = %HALITE_TEST_NOT_SET_ANYWHERE%\n")
            .to_string()
            .contains("timeout"));
        let (config, warnings) = parse("[m]\npath = /home/%RSYNC_USER_NAME%\nlog format = %t %M %f\n");
        assert_eq!(config.modules[0].path, Path::new("/home/%RSYNC_USER_NAME%"));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert_eq!(warnings[0].kind, WarningKind::VariableNotExpanded { key: "path" });
        assert_eq!(expand_environment("a%b%HALITE_TEST_CONFIG_TIMEOUT%c%"), "a%b77c%");
    }

    #[test]
    fn lexical_details() {
        let text = "# comment\n; another\n  \t\n[ my   module ] trailing text\n\
                    path = /srv/a \\\n   b\ncomment = x # not a comment ; nor this\r\n\
                    refuse options = delete \\\n  checksum\tc\n   \\ list = no\n\
                    no equals sign here\nexclude=  /secret/***  \n";
        let (config, warnings) = parse(text);
        let m = &config.modules[0];
        assert_eq!(m.name, "my module");
        assert_eq!(m.path, Path::new("/srv/a    b"));
        assert_eq!(m.comment, "x # not a comment ; nor this");
        assert_eq!(m.refuse_options, ["delete", "checksum", "c"]);
        assert!(!m.list, "a stray leading backslash is skipped");
        assert_eq!(m.exclude.as_deref(), Some("/secret/***"));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert_eq!(warnings[0].kind, WarningKind::BadlyFormedLine("no equals sign here".into()));
        assert_eq!(warnings[0].at.line, 11);
        // Continued names, a continued section name, and a NUL ending the input.
        let (config, _) = parse("[long \\\n name]\npa\\\nth = /srv\nread \\\n only = no\n\0list = no\n");
        assert_eq!(config.modules[0].name, "long name");
        assert_eq!(config.modules[0].path, Path::new("/srv"));
        assert!(!config.modules[0].read_only);
        assert!(config.modules[0].list);
        // Input ending inside a name is a warning, not an error.
        let (_, warnings) = parse("[m]\npath = /srv\ndangling");
        assert_eq!(warnings[0].kind, WarningKind::UnexpectedEnd("dangling".into()));
    }

    #[test]
    fn syntax_errors() {
        assert!(matches!(parse_err("[unterminated\npath = /x\n"), ConfigError::Syntax { .. }));
        assert!(matches!(parse_err("[unterminated"), ConfigError::Syntax { .. }));
        assert!(matches!(parse_err("[ ]\n"), ConfigError::Syntax { .. }));
        assert!(matches!(parse_err(" = value\n"), ConfigError::Syntax { .. }));
        assert!(matches!(parse_err("[a/b]\npath = /x\n"), ConfigError::InvalidModuleName { .. }));
        assert!(matches!(parse_err("&nosuch x\n"), ConfigError::UnknownDirective { .. }));
        match parse_err("[ok]\npath = /x\n[nopath]\ncomment = c\n") {
            ConfigError::MissingPath { at, module } => assert_eq!((module.as_str(), at.line), ("nopath", 3)),
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(parse_err("[m]\npath =\n"), ConfigError::MissingPath { .. }));
    }

    #[test]
    fn global_values_are_module_defaults() {
        let (config, warnings) =
            parse("read only = no\ncomment = shared\n[a]\npath = /a\n[b]\npath = /b\nread only = yes\ncomment = own\n");
        assert!(warnings.is_empty());
        assert!(!config.modules[0].read_only);
        assert_eq!(config.modules[0].comment, "shared");
        assert!(config.modules[1].read_only);
        assert_eq!(config.modules[1].comment, "own");
    }

    #[test]
    fn late_globals_reach_earlier_modules_only_for_unset_strings() {
        // As in rsync: strings without a default are looked up at the end, booleans
        // and numbers are copied when the module starts.
        let (config, _) = parse(
            "[x]\npath = /x\n[global]\ncomment = late\nlist = no\nauth users = admin\nlock file = /run/late.lock\n\
             [y]\npath = /y\nlist = yes\n",
        );
        let x = &config.modules[0];
        assert_eq!(x.comment, "late");
        assert!(x.list);
        assert_eq!(x.auth_users.len(), 1, "an earlier module still requires the login");
        assert_eq!(x.lock_file, Path::new(DEFAULT_LOCK_FILE), "strings with a default are copied early");
        let y = &config.modules[1];
        assert_eq!(y.comment, "late");
        assert!(y.list);
        assert_eq!(y.lock_file, Path::new("/run/late.lock"));
        // An explicitly empty value is a value.
        let (config, _) = parse("[x]\npath = /x\ncomment =\n[global]\ncomment = late\n");
        assert_eq!(config.modules[0].comment, "");
    }

    #[test]
    fn global_parameters_in_a_module_are_ignored() {
        let (config, warnings) = parse("[m]\npath = /srv\nport = 1234\nmotd file = /etc/motd\n");
        assert_eq!(config.global.port, DEFAULT_PORT);
        assert_eq!(config.global.motd_file, None);
        assert_eq!(warnings.len(), 2);
        assert_eq!(warnings[0].kind, WarningKind::GlobalParameterInModule { key: "port", module: "m".into() });
    }

    #[test]
    fn a_module_named_twice_is_one_module() {
        let (config, warnings) = parse("[c]\npath = /c\ncomment = first\n[d]\npath = /d\n[ C ]\ncomment = second\n");
        let names: Vec<&str> = config.modules.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["c", "d"]);
        assert_eq!(config.modules[0].comment, "second");
        assert!(matches!(&warnings[..], [Warning { kind: WarningKind::ModuleContinued { .. }, .. }]));
        assert_eq!(warnings[0].at.line, 6);
        let (config, _) = parse("[Global]\nport = 1\n[gLo bal]\nport = 2\n");
        assert!(config.modules.is_empty());
        assert_eq!(config.global.port, 2);
    }

    #[test]
    fn name_renames_a_module() {
        let (config, warnings) = parse("name = ignored\n[orig]\npath = /srv\nname = renamed\n");
        assert_eq!(config.modules[0].name, "renamed");
        assert!(config.module("orig").is_none());
        assert_eq!(warnings[0].kind, WarningKind::NameInGlobalSection);
        assert!(matches!(parse_err("[m]\npath = /srv\nname = a/b\n"), ConfigError::InvalidModuleName { .. }));
    }

    #[test]
    fn auth_users_rules() {
        let (config, _) = parse(
            "[m]\npath = /srv\nauth users = joe:deny @guest:deny admin:rw @rsync:ro susan joe sam bob:RO tom:x\n",
        );
        let rules = &config.modules[0].auth_users;
        let shown: Vec<(&str, bool, AuthAccess)> =
            rules.iter().map(|r| (r.pattern.as_str(), r.group, r.access)).collect();
        assert_eq!(
            shown,
            [
                ("joe", false, AuthAccess::Deny),
                ("guest", true, AuthAccess::Deny),
                ("admin", false, AuthAccess::ReadWrite),
                ("rsync", true, AuthAccess::ReadOnly),
                ("susan", false, AuthAccess::Module),
                ("joe", false, AuthAccess::Module),
                ("sam", false, AuthAccess::Module),
                ("bob", false, AuthAccess::ReadOnly),
                ("tom", false, AuthAccess::Module),
            ]
        );
        let first = |user: &str, groups: &[&'static str]| match_auth_rule(rules, user, groups);
        assert_eq!(first("joe", &[]).map(|m| m.access), Some(AuthAccess::Deny));
        assert_eq!(first("admin", &["guest"]), Some(AuthMatch { access: AuthAccess::Deny, group: Some("guest") }));
        assert_eq!(first("admin", &["staff"]).map(|m| m.access), Some(AuthAccess::ReadWrite));
        assert_eq!(first("sam", &["rsync"]), Some(AuthMatch { access: AuthAccess::ReadOnly, group: Some("rsync") }));
        assert_eq!(first("sam", &[]).map(|m| m.access), Some(AuthAccess::Module));
        assert_eq!(first("mallory", &[]), None);
        assert_eq!(AuthAccess::Module.read_only(false), Some(false));
        assert_eq!(AuthAccess::ReadOnly.read_only(false), Some(true));
        assert_eq!(AuthAccess::Deny.read_only(true), None);

        let (config, _) =
            parse("[m]\npath = /srv\nauth users = , joe:deny, @Some Group:deny, admin:rw, ,@RO Group:ro\n");
        let patterns: Vec<&str> = config.modules[0].auth_users.iter().map(|r| r.pattern.as_str()).collect();
        assert_eq!(patterns, ["joe", "Some Group", "admin", "RO Group"]);
        let (config, _) = parse("[m]\npath = /srv\nauth users = @root:ro root:deny\n");
        let root = authorise_user(&config.modules[0].auth_users, "root");
        assert_eq!(root, Some(UserAuthorisation { access: AuthAccess::ReadOnly, group: Some("root".into()) }));
        assert_eq!(user_authorised(&config.modules[0].auth_users, "root"), Some(true));
        assert_eq!(user_authorised(&config.modules[0].auth_users, "no-such-user-halite"), None);
        let (config, _) = parse("[m]\npath = /srv\nauth users = deploy-*\n");
        assert!(match_auth_rule(&config.modules[0].auth_users, "deploy-web", &[]).is_some());
        assert!(match_auth_rule(&config.modules[0].auth_users, "Deploy-web", &[]).is_none());
    }

    #[test]
    fn gid_lists_split_like_rsync() {
        let (config, _) = parse("[a]\npath = /a\ngid = *, staff wheel\n[b]\npath = /b\ngid = ,Domain Users, staff\n");
        assert_eq!(config.modules[0].gid_list(), ["*", "staff", "wheel"]);
        assert_eq!(config.modules[1].gid_list(), ["Domain Users", "staff"]);
    }

    #[test]
    fn hosts_values_are_checked_and_explained() {
        assert!(matches!(
            parse_err("hosts allow = 10.0.0.0/40\n"),
            ConfigError::InvalidValue { key: "hosts allow", .. }
        ));
        assert!(matches!(
            parse_err("[m]\npath = /x\nhosts deny = ,\n"),
            ConfigError::InvalidValue { key: "hosts deny", .. }
        ));
        let (config, warnings) =
            parse("hosts deny = *.example.com @ng\n[m]\npath = /x\n[n]\npath = /y\nhosts deny =\n");
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings.iter().all(|w| matches!(w.kind, WarningKind::Hosts { key: "hosts deny", .. })));
        assert_eq!(config.modules[0].hosts_deny.len(), 2);
        assert!(config.modules[1].hosts_deny.is_empty(), "an empty value overrides the global list");
    }

    #[test]
    fn unsupported_settings_are_named() {
        let (config, _) = parse(
            "socket options = SO_KEEPALIVE\nfake super = yes\n[m]\npath = /srv\npre-xfer exec = /bin/true\n\
             temp dir = /tmp\ntemp dir = /var/tmp\nread only = no\n",
        );
        let named: Vec<(String, &str)> =
            config.unsupported_in_use().iter().map(|u| (u.section.clone(), u.key)).collect();
        assert_eq!(
            named,
            [
                ("global".to_string(), "socket options"),
                ("global".to_string(), "fake super"),
                ("m".to_string(), "pre-xfer exec"),
                ("m".to_string(), "temp dir"),
            ]
        );
        assert!(config.unsupported_in_use()[2].to_string().contains("pre-xfer exec"));
        assert!(config.modules[0].fake_super);
    }

    #[test]
    fn every_named_parameter_exists() {
        for name in NOT_ACTED_ON {
            assert!(find_param(name).is_some(), "{name}");
        }
        let all = PARAMS.iter().map(|p| p.name).collect::<Vec<_>>();
        for name in [
            "path",
            "comment",
            "read only",
            "write only",
            "list",
            "uid",
            "gid",
            "use chroot",
            "strict modes",
            "auth users",
            "secrets file",
            "hosts allow",
            "hosts deny",
            "max connections",
            "timeout",
            "refuse options",
            "munge symlinks",
            "numeric ids",
            "ignore errors",
            "exclude",
            "include",
            "filter",
            "motd file",
            "pid file",
            "address",
            "port",
            "lock file",
            "reverse lookup",
        ] {
            assert!(all.contains(&name), "{name}");
            assert!(!NOT_ACTED_ON.contains(&name), "{name} is acted on");
        }
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        path
    }

    #[test]
    fn include_scopes_globals_and_merge_pastes() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("conf.d")).expect("mkdir");
        write(dir.path(), "conf.d/b.conf", "comment = from b\n[bmod]\npath = /b\n");
        write(dir.path(), "conf.d/a.conf", "read only = no\n[amod]\npath = /a\n");
        write(dir.path(), "conf.d/ignored.txt", "[never]\npath = /n\n");
        write(dir.path(), "conf.d/x.inc", "timeout = 30\n");
        write(dir.path(), "snippet.inc", "comment = merged\n");
        let main = write(
            dir.path(),
            "rsyncd.conf",
            "motd file = /etc/motd\n[first]\npath = /first\n&include conf.d\ncomment = after\n\
             [second]\npath = /second\n&merge snippet.inc\n[global]\n&merge = conf.d\n[third]\npath = /third\n",
        );
        let (config, warnings) = Config::load(&main).expect("loads");
        assert!(warnings.is_empty(), "{warnings:?}");
        let names: Vec<&str> = config.modules.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["first", "amod", "bmod", "second", "third"]);
        let m = |name: &str| config.module(name).expect("module");
        // The directory's files are read in name order, each from the includer's globals.
        assert!(!m("amod").read_only);
        assert!(m("bmod").read_only, "a.conf's globals do not leak into b.conf");
        assert_eq!(m("bmod").comment, "from b");
        // After &include, parameters are global again; the late comment reaches `first`.
        assert_eq!(m("first").comment, "after");
        assert_eq!(m("third").comment, "after");
        // &merge continues the current section.
        assert_eq!(m("second").comment, "merged");
        assert_eq!(m("second").timeout, 0);
        assert_eq!(m("third").timeout, 30, "a merged file's globals stay");
        assert_eq!(config.global.motd_file.as_deref(), Some(Path::new("/etc/motd")));
    }

    #[test]
    fn include_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let looping = write(dir.path(), "loop.conf", "&include loop.conf\n");
        assert!(matches!(Config::load(&looping), Err(ConfigError::IncludeTooDeep { .. })));
        let missing = write(dir.path(), "missing.conf", "\n\n&include nowhere.conf\n");
        match Config::load(&missing) {
            Err(ConfigError::Include { at, path, .. }) => {
                assert_eq!(at.line, 3);
                assert_eq!(path, dir.path().join("nowhere.conf"));
            }
            other => panic!("unexpected {other:?}"),
        }
        let inner_error = write(dir.path(), "bad.inc", "\nlist = perhaps\n");
        let outer = write(dir.path(), "outer.conf", "&merge bad.inc\n");
        match Config::load(&outer) {
            Err(ConfigError::InvalidValue { at, key: "list", .. }) => assert_eq!((at.file, at.line), (inner_error, 2)),
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(Config::load(&dir.path().join("absent.conf")), Err(ConfigError::Read { .. })));
        let big = write(dir.path(), "big.conf", &"#".repeat(MAX_CONFIG_BYTES as usize + 1));
        assert!(matches!(Config::load(&big), Err(ConfigError::TooLarge { .. })));
        let binary = dir.path().join("binary.conf");
        std::fs::write(&binary, b"comment = \xff\n").expect("write");
        assert!(matches!(Config::load(&binary), Err(ConfigError::NotUtf8 { .. })));
    }

    #[test]
    fn untrusted_symlinks_to_a_configuration_are_refused() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let real = write(dir.path(), "real.conf", "[m]\npath = /srv\n");
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let link = dir.path().join("link.conf");
        std::os::unix::fs::symlink("real.conf", &link).expect("symlink");
        assert!(Config::load(&link).is_ok());
        std::os::unix::fs::lchown(&link, Some(65534), None).expect("lchown");
        assert!(matches!(Config::load(&link), Err(ConfigError::Read { .. })));
        // A planted directory link on the way is refused too.
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).expect("mkdir");
        write(&sub, "inner.conf", "[m]\npath = /srv\n");
        let dirlink = dir.path().join("dirlink");
        std::os::unix::fs::symlink(&sub, &dirlink).expect("symlink");
        assert!(Config::load(&dirlink.join("inner.conf")).is_ok());
        std::os::unix::fs::lchown(&dirlink, Some(65534), None).expect("lchown");
        assert!(Config::load(&dirlink.join("inner.conf")).is_err());
    }

    #[test]
    fn operator_files_open_through_dots_and_links() {
        let dir = tempfile::tempdir().expect("tempdir");
        let real = write(dir.path(), "f", "content");
        let odd = dir.path().join("./sub/../f");
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        let mut text = String::new();
        open_operator_file(&odd).expect("open").read_to_string(&mut text).expect("read");
        assert_eq!(text, "content");
        std::os::unix::fs::symlink(&real, dir.path().join("abs")).expect("symlink");
        assert!(open_operator_file(&dir.path().join("abs")).is_ok());
        std::os::unix::fs::symlink("loop", dir.path().join("loop")).expect("symlink");
        assert!(open_operator_file(&dir.path().join("loop")).is_err());
        assert!(open_operator_file(Path::new("")).is_err());
    }

    #[test]
    fn ids_resolve() {
        assert_eq!(resolve_uid("0"), Ok(0));
        assert_eq!(resolve_uid("root"), Ok(0));
        assert_eq!(resolve_gid("0"), Ok(0));
        assert_eq!(resolve_gid("root"), Ok(0));
        assert_eq!(resolve_uid("4294967296"), Err(IdError::BadId("4294967296".into())));
        assert!(matches!(resolve_uid("no-such-user-halite"), Err(IdError::NoSuchUser(_))));
        assert!(matches!(resolve_gid("no-such-group-halite"), Err(IdError::NoSuchGroup(_))));
        assert!(resolve_uid("").is_err());
        assert!(groups_of_user("root").contains(&"root".to_string()));
        assert!(groups_of_user("no-such-user-halite").is_empty());
    }

    #[test]
    fn arbitrary_input_never_panics() {
        let pieces = [
            "[",
            "]",
            "=",
            "\\",
            "\n",
            "\r",
            "\t",
            " ",
            "&include",
            "&merge",
            "#",
            ";",
            "path",
            "/x",
            "[global]",
            "hosts allow",
            "10.0.0.0/8",
            "yes",
            "%",
            "%A",
            "\0",
            "ä",
            "name",
            ":",
            "@",
            ",",
            "auth users",
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..3000 {
            let mut text = String::new();
            for _ in 0..(seed % 40) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                text.push_str(pieces[(seed % pieces.len() as u64) as usize]);
            }
            let _ = Config::parse(&text, Path::new("/nonexistent/fuzz.conf"));
        }
    }
}
