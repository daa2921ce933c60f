//! Salt's master configuration, read into a typed [`MasterConfig`].
//!
//! This crate owns reading Salt's master config files the way `salt.config.master_config`
//! (Salt 3007) does, Salt's defaults, root_dir prefixing, unknown-key warnings, and halite's
//! embedded defaults. It is pure except for reading config files (and listing the
//! directories their globs name); it never creates, writes or starts anything.
//!
//! # Reading `-c DIR`
//!
//! [`MasterConfig::load`] with `Some(dir)` reads, as Salt does:
//!
//! 1. `DIR/master`, if it exists (a missing file means "all defaults", as in Salt; a missing
//!    `DIR` is an error, where Salt only warns);
//! 2. the files matched by `default_include` (Salt's default `master.d/*.conf`, relative to
//!    `DIR`), in sorted order, combined with Salt's `dictupdate` (nested mappings merge, lists
//!    concatenate without duplicates), the result overriding `master` key by key;
//! 3. the files matched by `master`'s `include` option (a pattern or a list, relative to
//!    `DIR`, `~` expanded), combined and applied the same way; an include pattern matching
//!    nothing draws a [`Warning::IncludeMatchedNothing`]. Included files may `include` more
//!    files, relative to themselves; a loop is an error.
//!
//! Then, as `apply_master_config` does: `log_dir` relocates the log file, a `sock_dir` longer
//! than `cachedir` + 10 characters moves to `cachedir/.salt-unix`, `token_dir`,
//! `syndic_dir` and `extension_modules` are derived from `cachedir`, and `pki_dir`,
//! `cachedir`, `pidfile`, `sock_dir`, `extension_modules`, `autosign_file`,
//! `autoreject_file`, `token_dir`, `syndic_dir`, `sqlite_queue_dir`, `autosign_grains_dir`,
//! and the log targets `log_file`, `key_logfile`, `ssh_log_file` unless they are URLs, are
//! re-rooted under `root_dir` (made absolute against the current directory) with Salt's
//! exact rules: absolute paths are re-rooted, paths already under root_dir are kept, and a
//! path equal to root_dir gets it twice, as in Salt.
//!
//! # Options
//!
//! Options halite uses are typed fields, validated: a wrong type, a port outside 1-65535, a
//! keysize below 2048 or an unknown log level is a [`ConfigError::InvalidValue`] naming the
//! option and the file it came from. Salt itself mostly logs a warning and carries on with
//! the bad value (or silently turns `auto_accept: 1` into false); halite refuses to start
//! instead. Every other option Salt knows is kept, with Salt's default when no file sets
//! it, in [`MasterConfig::extra`]. A top-level key Salt does not know draws one
//! [`Warning::UnknownKey`]; keys containing a `.` (`mysql.host`) are module settings, which
//! Salt reads from the master config freely, and are kept without a warning. halite's own
//! options ([`HALITE_KEYS`]: `dns_address_book`, `jumpbox_roster`) are known too; Salt, reading the same file,
//! keeps them as unknown keys and ignores them.
//!
//! Salt's defaults come from `salt/master_defaults.yaml`, and the known keys from
//! `salt/master_keys.txt`, both generated from Salt 3007.8 by `salt/generate.py`.
//!
//! # Embedded defaults (no `-c`)
//!
//! [`MasterConfig::load`] with `None` runs halite self-contained, on Salt's defaults except:
//! `interface` 127.0.0.1; `root_dir` `./.halite` in the current directory, with `pki_dir`
//! `.halite/pki/master`, `cachedir` `.halite/cache`, `sock_dir` `.halite/run`, `log_file`
//! `.halite/master.log` (and every other re-rooted path under `.halite/` too); `file_roots`
//! `base: [<repo>/states]` and `pillar_roots` `base: [<repo>/pillar]`, where `<repo>` is the
//! nearest directory at or above the current one holding `states/`, `pillar/` and a
//! `Cargo.toml` (the current directory if there is none).

mod apply;
mod embedded;
mod error;
mod files;
mod layer;
mod pypath;
mod salt_data;
mod typed;

use std::path::{Path, PathBuf};

pub use error::{ConfigError, Origin, Warning};
pub use halite_yaml::Value;

use crate::layer::Layer;

/// Salt master configuration, after Salt's defaults, includes and root_dir prefixing.
#[derive(Debug, Clone, PartialEq)]
pub struct MasterConfig {
    /// The configuration directory given (`-c`), or `None` on embedded defaults.
    pub config_dir: Option<PathBuf>,
    /// Every config file read, in the order read.
    pub files: Vec<PathBuf>,

    // Network.
    /// Address the publish and request sockets bind to.
    pub interface: String,
    /// Bind IPv6 (`None`: Salt's "not set", which binds IPv4 unless `interface` is IPv6).
    pub ipv6: Option<bool>,
    pub publish_port: u16,
    pub ret_port: u16,
    /// ZeroMQ high-water mark of the publish socket.
    pub pub_hwm: i32,
    /// ZeroMQ listen backlog.
    pub zmq_backlog: i32,
    /// Request workers (Salt raises it to 3 when `peer` is configured).
    pub worker_threads: u32,

    // Paths, after root_dir prefixing.
    /// Absolute (Salt resolves a relative root_dir against the current directory).
    pub root_dir: PathBuf,
    pub pki_dir: PathBuf,
    pub cachedir: PathBuf,
    pub sock_dir: PathBuf,
    /// A path, or a URL such as `udp://host:514` or `file:///dev/log`.
    pub log_file: String,
    pub autosign_file: Option<PathBuf>,
    pub autoreject_file: Option<PathBuf>,
    pub autosign_grains_dir: Option<PathBuf>,

    // Keys and authentication.
    pub auto_accept: bool,
    pub open_mode: bool,
    /// 0: no limit.
    pub max_minions: u64,
    /// Size of a newly generated master key, in bits.
    pub keysize: u32,
    pub sign_pub_messages: bool,
    /// Seconds between AES session key rotations.
    pub publish_session: u64,
    pub auth_events: bool,
    pub permissive_pki_access: bool,
    /// Seconds a request stays valid (0: forever).
    pub request_server_ttl: u64,
    /// The oldest request protocol version served (0: any). Salt 3006.17+, 3007.9+ and 3008
    /// default to 3 (CVE-2025-62349): every request carries the minion's id under its own
    /// session key and `tok`. 2 lets minions before 3006.12 / 3007.4 (shared-key requests)
    /// in. Above 3 no minion could talk.
    pub minimum_auth_version: u8,
    /// `PKCS1v15-SHA1` or `PKCS1v15-SHA224`.
    pub publish_signing_algorithm: String,
    pub ping_on_rotate: bool,
    pub rotate_aes_key: bool,

    // Jobs and the master's loop.
    /// Default seconds the CLI waits for returns.
    pub timeout: u64,
    /// How long job data is kept; a non-default `keep_jobs` (hours) applies when
    /// `keep_jobs_seconds` is left at its default, as in Salt.
    pub keep_jobs_seconds: u64,
    /// Seconds between runs of the master's maintenance loop.
    pub loop_interval: f64,
    pub minion_data_cache: bool,

    // Logging and process.
    /// Lower-cased; one of Salt's levels (`all`, `garbage`, `trace`, `debug`, `profile`,
    /// `info`, `warning`, `error`, `critical`, `quiet`).
    pub log_level: String,
    /// User to run as; `None` keeps the user that started the master (Salt's default is that
    /// user's name).
    pub user: Option<String>,

    // Files and states.
    pub file_roots: Roots,
    pub pillar_roots: Roots,
    /// Lower-cased.
    pub hash_type: String,
    pub file_buffer_size: u64,
    /// Python regexes (validated when the file server starts) and globs of paths the file
    /// server leaves out; Salt also takes one string for a list of one.
    pub file_ignore_regex: Vec<String>,
    pub file_ignore_glob: Vec<String>,
    pub fileserver_ignoresymlinks: bool,
    pub state_top: String,
    pub renderer: String,
    pub top_file_merging_strategy: String,
    pub env_order: Vec<String>,
    pub default_top: String,
    pub failhard: bool,
    pub state_auto_order: bool,
    pub state_events: bool,
    pub state_aggregate: StateAggregate,
    pub jinja_env: Vec<(String, Value)>,
    pub jinja_sls_env: Vec<(String, Value)>,
    pub jinja_lstrip_blocks: bool,
    pub jinja_trim_blocks: bool,
    /// Name → compound target (a string or a list), as Salt's `nodegroups`.
    pub nodegroups: Vec<(String, Value)>,

    // Peer publishing.
    /// `peer`: minion-id regex → function regexes that minion may publish to others
    /// (`publish.*`), in the file's order; both are Python `re.match` patterns, compiled by the
    /// master. Salt ignores entries that are not lists; halite refuses them.
    pub peer: Vec<(String, Vec<String>)>,
    /// `peer_run`: minion-id regex → runner function regexes that minion may run on the master
    /// (`publish.runner`). Empty when unset (Salt has no default for it).
    pub peer_run: Vec<(String, Vec<String>)>,

    // The reactor.
    /// `reactor`: tag glob → reaction sls paths (`salt://...` or filesystem globs), in the
    /// file's order; Salt's single-key mappings, a single path read as a list of one.
    pub reactor: Vec<(String, Vec<String>)>,
    /// Threads that render and run reactions.
    pub reactor_worker_threads: u32,
    /// Reactions that may wait for a reactor thread; past it an event's reactions are dropped
    /// with an error in the log.
    pub reactor_worker_hwm: u32,

    // halite's own options (Salt has none of these).
    /// `dns_address_book`: where the master writes the addresses of the accepted minions for
    /// halite-dns (see `halite-master`'s `address_book`); `None` (unset) writes nothing.
    /// Taken as written: Salt does not know the key, so root_dir does not re-root it.
    pub dns_address_book: Option<PathBuf>,
    /// `jumpbox_roster`: where the master writes the accepted minions with their roles and
    /// whether they are connected, for halite-jumpbox's VM list (`halite-master`'s
    /// `roster`); `None` (unset) writes nothing. Taken as written, like `dns_address_book`.
    pub jumpbox_roster: Option<PathBuf>,

    /// Every other option, sorted by name: Salt's default unless a file sets it, re-rooted
    /// where Salt re-roots it (`pidfile`, `extension_modules`, ...), plus the options Salt
    /// derives (`token_dir`, `syndic_dir`, `utils_dirs`) and unknown keys as written.
    pub extra: Vec<(String, Value)>,
}

/// `file_roots` / `pillar_roots`: saltenv name → directories, in the file's order. Names are
/// Python's `str()` of the YAML keys; glob patterns are expanded, as Salt does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roots(pub Vec<(String, Vec<PathBuf>)>);

impl Roots {
    /// The directories of `saltenv`.
    pub fn get(&self, saltenv: &str) -> Option<&[PathBuf]> {
        self.0.iter().find(|(env, _)| env == saltenv).map(|(_, dirs)| dirs.as_slice())
    }
}

/// `state_aggregate`: all states, none, or the listed state modules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateAggregate {
    All(bool),
    States(Vec<String>),
}

impl MasterConfig {
    /// Who the master's own jobs (peer publishes, reactions, runners) are published as: its
    /// `user`, root when unset.
    pub fn publishing_user(&self) -> String {
        self.user.clone().unwrap_or_else(|| "root".to_owned())
    }

    /// Salt's `gather_job_timeout`: how long a `saltutil.find_job` follow-up waits (10 s).
    pub fn gather_job_timeout(&self) -> u64 {
        self.extra("gather_job_timeout").and_then(|v| v.as_u64()).unwrap_or(10)
    }

    /// The master's id: the `id` option, else `<hostname>_master` as Salt derives it. The
    /// mine's ACLs and salt-key's rotation dropfile name the master by it.
    pub fn master_id(&self) -> String {
        if let Some(id) = self.extra("id").and_then(|v| v.as_str()) {
            return id.to_owned();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        format!("{host}_master")
    }

    /// Reads the configuration in `config_dir` (Salt's `-c`), or the embedded defaults with
    /// `None`. Relative paths are taken from the current directory.
    pub fn load(config_dir: Option<&Path>) -> Result<(MasterConfig, Vec<Warning>), ConfigError> {
        let cwd = std::env::current_dir().map_err(ConfigError::CurrentDir)?;
        MasterConfig::load_at(config_dir, &cwd)
    }

    /// [`MasterConfig::load`] as if the process ran in `cwd`: a relative `config_dir` or
    /// `root_dir`, and the embedded defaults' `.halite/` and repository, are found from it.
    pub fn load_at(config_dir: Option<&Path>, cwd: &Path) -> Result<(MasterConfig, Vec<Warning>), ConfigError> {
        let cwd_str = cwd.to_string_lossy().into_owned();
        let home = std::env::var("HOME").ok().filter(|h| !h.is_empty());
        let defaults = salt_data::defaults(home.as_deref())?;
        let mut warnings = Vec::new();

        let (overrides, files, config_dir) = match config_dir {
            Some(dir) => {
                let dir = if dir.is_absolute() { dir.to_path_buf() } else { cwd.join(dir) };
                if !dir.is_dir() {
                    return Err(ConfigError::MissingConfigDir(dir));
                }
                let main = pypath::join(&dir.to_string_lossy(), "master");
                let default_include = defaults.get("default_include").cloned().unwrap_or(Value::Nil);
                let mut reader = files::Reader::new(home, &mut warnings);
                let overrides = reader.read_master(&main, &default_include)?;
                let files = std::mem::take(&mut reader.files);
                (overrides, files, Some(dir))
            }
            None => (embedded::overrides(cwd), Vec::new(), None),
        };
        warn_unknown_keys(&overrides, &mut warnings);

        let opts = apply::apply_master_config(defaults, overrides, &cwd_str)?;
        let config = typed::master_config(opts, &cwd_str, config_dir, files, &mut warnings)?;
        Ok((config, warnings))
    }

    /// An option of [`MasterConfig::extra`] by name.
    pub fn extra(&self, key: &str) -> Option<&Value> {
        self.extra.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

/// Python's `glob.glob(pattern)` (not recursive), sorted: what Salt's path options (and the
/// reactor's file paths) expand to.
pub fn glob(pattern: &str) -> Vec<String> {
    pypath::glob(pattern)
}

/// Options halite reads that Salt does not have. They are kept out of `salt/master_keys.txt`,
/// which `salt/generate.py` rewrites from Salt itself.
pub const HALITE_KEYS: &[&str] = &["dns_address_book", "jumpbox_roster"];

fn warn_unknown_keys(overrides: &Layer, warnings: &mut Vec<Warning>) {
    for entry in overrides.entries() {
        let Origin::File(file) = &entry.origin else {
            continue;
        };
        if entry.key.contains('.') || salt_data::is_known_key(&entry.key) || HALITE_KEYS.contains(&entry.key.as_str()) {
            continue;
        }
        warnings.push(Warning::UnknownKey { key: entry.key.clone(), file: file.clone() });
    }
}
