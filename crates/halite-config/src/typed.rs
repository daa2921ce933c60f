//! The applied options as typed fields, with Salt's types and halite's bounds, and the
//! last value fix-ups of `apply_master_config` / `master_config` that concern them.

use std::cell::RefCell;
use std::collections::HashSet;
use std::path::PathBuf;

use halite_yaml::{py, Value};

use crate::error::{ConfigError, Origin, Warning};
use crate::files::kind;
use crate::layer::{truthy, Layer};
use crate::pypath;
use crate::{MasterConfig, Roots, StateAggregate};

/// `salt.crypt.VALID_SIGNING_ALGORITHMS`.
const SIGNING_ALGORITHMS: &[&str] = &["PKCS1v15-SHA1", "PKCS1v15-SHA224"];

/// The names of `salt._logging.LOG_LEVELS`.
const LOG_LEVELS: &[&str] =
    &["all", "garbage", "trace", "debug", "profile", "info", "warning", "error", "critical", "quiet"];

const C_INT_MAX: u64 = i32::MAX as u64;

/// Salt's default `keep_jobs` (hours) and `keep_jobs_seconds`.
const KEEP_JOBS_DEFAULT_HOURS: u64 = 24;
const KEEP_JOBS_DEFAULT_SECONDS: u64 = 86_400;

pub(crate) fn master_config(
    opts: Layer,
    cwd: &str,
    config_dir: Option<PathBuf>,
    files: Vec<PathBuf>,
    warnings: &mut Vec<Warning>,
) -> Result<MasterConfig, ConfigError> {
    let o = Options { opts: &opts, fields: RefCell::default() };
    let config = MasterConfig {
        config_dir,
        files,
        interface: o.string("interface")?,
        ipv6: o.opt_bool("ipv6")?,
        publish_port: o.port("publish_port")?,
        ret_port: o.port("ret_port")?,
        // ZeroMQ takes these as C ints.
        pub_hwm: o.int_in("pub_hwm", 0, C_INT_MAX)?,
        zmq_backlog: o.int_in("zmq_backlog", 0, C_INT_MAX)?,
        worker_threads: worker_threads(&o, warnings)?,
        // Salt keeps root_dir as written and makes it absolute wherever it uses it.
        root_dir: PathBuf::from(pypath::abspath(&o.string("root_dir")?, cwd)),
        pki_dir: o.path("pki_dir")?,
        cachedir: o.path("cachedir")?,
        sock_dir: o.path("sock_dir")?,
        log_file: o.string("log_file")?,
        autosign_file: o.opt_path("autosign_file")?,
        autoreject_file: o.opt_path("autoreject_file")?,
        autosign_grains_dir: o.opt_path("autosign_grains_dir")?,
        auto_accept: o.bool("auto_accept")?,
        open_mode: o.bool("open_mode")?,
        max_minions: o.int_in("max_minions", 0, u64::MAX)?,
        // Below 2048 bits a new master key would be weak (and refused by OpenSSL 3's default
        // security level); Salt itself does not check.
        keysize: o.int_in("keysize", 2048, 16_384)?,
        sign_pub_messages: o.bool("sign_pub_messages")?,
        publish_session: o.int_in("publish_session", 0, u64::MAX)?,
        auth_events: o.bool("auth_events")?,
        permissive_pki_access: o.bool("permissive_pki_access")?,
        request_server_ttl: o.int_in("request_server_ttl", 0, u64::MAX)?,
        minimum_auth_version: o.int_in("minimum_auth_version", 0, 3)?,
        publish_signing_algorithm: o.one_of("publish_signing_algorithm", SIGNING_ALGORITHMS)?,
        ping_on_rotate: o.bool("ping_on_rotate")?,
        rotate_aes_key: o.bool("rotate_aes_key")?,
        timeout: o.int_in("timeout", 0, u64::MAX)?,
        keep_jobs_seconds: keep_jobs_seconds(&o, warnings)?,
        loop_interval: o.seconds("loop_interval")?,
        minion_data_cache: o.bool("minion_data_cache")?,
        log_level: o.one_of("log_level", LOG_LEVELS)?,
        user: o.opt_string("user")?,
        file_roots: o.roots("file_roots")?,
        pillar_roots: o.roots("pillar_roots")?,
        hash_type: o.string("hash_type")?.to_lowercase(),
        file_buffer_size: o.int_in("file_buffer_size", 1, u64::MAX)?,
        file_ignore_regex: o.string_or_list("file_ignore_regex")?,
        file_ignore_glob: o.string_or_list("file_ignore_glob")?,
        fileserver_ignoresymlinks: o.bool("fileserver_ignoresymlinks")?,
        state_top: o.string("state_top")?,
        renderer: o.string("renderer")?,
        top_file_merging_strategy: o.string("top_file_merging_strategy")?,
        env_order: o.string_list("env_order")?,
        default_top: o.string("default_top")?,
        failhard: o.bool("failhard")?,
        state_auto_order: o.bool("state_auto_order")?,
        state_events: o.bool("state_events")?,
        state_aggregate: o.state_aggregate("state_aggregate")?,
        jinja_env: o.mapping("jinja_env")?,
        jinja_sls_env: o.mapping("jinja_sls_env")?,
        jinja_lstrip_blocks: o.bool("jinja_lstrip_blocks")?,
        jinja_trim_blocks: o.bool("jinja_trim_blocks")?,
        nodegroups: o.nodegroups("nodegroups")?,
        peer: o.peer_rules("peer")?,
        peer_run: o.peer_rules("peer_run")?,
        reactor: o.reactor("reactor")?,
        reactor_worker_threads: o.int_in("reactor_worker_threads", 1, 1024)?,
        reactor_worker_hwm: reactor_worker_hwm(&o, warnings)?,
        dns_address_book: o.opt_nonempty_path("dns_address_book")?,
        jumpbox_roster: o.opt_nonempty_path("jumpbox_roster")?,
        extra: Vec::new(),
    };
    // Every option read into a field above leaves `extra`.
    let fields = o.fields.into_inner();
    let mut extra: Vec<(String, Value)> =
        opts.into_entries().into_iter().filter(|e| !fields.contains(&e.key)).map(|e| (e.key, e.value)).collect();
    extra.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(MasterConfig { extra, ..config })
}

/// The most reactions waiting at once; what `reactor_worker_hwm: 0` becomes.
const REACTOR_QUEUE_MAX: u32 = 10_000_000;

/// Salt's thread pool reads `reactor_worker_hwm: 0` as an unbounded queue; halite's queue is
/// always bounded, so 0 (a valid Salt setting) becomes the largest bound, with a warning.
fn reactor_worker_hwm(o: &Options<'_>, warnings: &mut Vec<Warning>) -> Result<u32, ConfigError> {
    let hwm: u32 = o.int_in("reactor_worker_hwm", 0, u64::from(REACTOR_QUEUE_MAX))?;
    if hwm > 0 {
        return Ok(hwm);
    }
    if let Some(file) = file_of(&o.origin("reactor_worker_hwm")) {
        warnings.push(Warning::Adjusted {
            key: "reactor_worker_hwm".to_owned(),
            file,
            message: format!("0 (unbounded in Salt) read as {REACTOR_QUEUE_MAX}: halite bounds the reactor queue"),
        });
    }
    Ok(REACTOR_QUEUE_MAX)
}

/// Salt resets `worker_threads` below 3 to 3 when `peer` is configured (publish.* needs the
/// workers).
fn worker_threads(o: &Options<'_>, warnings: &mut Vec<Warning>) -> Result<u32, ConfigError> {
    let threads: u32 = o.int_in("worker_threads", 1, 1024)?;
    let peer = o.opts.entry("peer").filter(|e| truthy(&e.value));
    match (threads < 3, peer) {
        (true, Some(peer)) => {
            if let Some(file) = file_of(&o.origin("worker_threads")).or_else(|| file_of(&peer.origin)) {
                warnings.push(Warning::Adjusted {
                    key: "worker_threads".to_owned(),
                    file,
                    message: format!("raised from {threads} to 3, the least that works with 'peer'"),
                });
            }
            Ok(3)
        }
        _ => Ok(threads),
    }
}

/// `salt.utils.job.get_keep_jobs_seconds`: the deprecated `keep_jobs` (hours) counts when it
/// was changed and `keep_jobs_seconds` was not.
fn keep_jobs_seconds(o: &Options<'_>, warnings: &mut Vec<Warning>) -> Result<u64, ConfigError> {
    let seconds: u64 = o.int_in("keep_jobs_seconds", 0, u64::MAX)?;
    // An input, not a field: Salt keeps `keep_jobs` among its options, and so does `extra`.
    let hours: u64 = o.parse_int("keep_jobs", 0, u64::MAX / 3600)?;
    if seconds != KEEP_JOBS_DEFAULT_SECONDS || hours == KEEP_JOBS_DEFAULT_HOURS {
        return Ok(seconds);
    }
    if let Some(file) = file_of(&o.origin("keep_jobs")) {
        warnings.push(Warning::Deprecated { key: "keep_jobs".to_owned(), file, replacement: "keep_jobs_seconds" });
    }
    Ok(hours * 3600)
}

fn file_of(origin: &Origin) -> Option<PathBuf> {
    match origin {
        Origin::File(path) => Some(path.clone()),
        Origin::SaltDefaults | Origin::Embedded => None,
    }
}

struct Options<'a> {
    opts: &'a Layer,
    /// Options read into typed fields.
    fields: RefCell<HashSet<String>>,
}

impl Options<'_> {
    fn origin(&self, key: &str) -> Origin {
        self.opts.entry(key).map_or(Origin::SaltDefaults, |e| e.origin.clone())
    }

    fn invalid(&self, key: &str, problem: impl Into<String>) -> ConfigError {
        ConfigError::InvalidValue { key: key.to_owned(), origin: self.origin(key), problem: problem.into() }
    }

    fn expected(&self, key: &str, what: &str, found: &Value) -> ConfigError {
        self.invalid(key, format!("expected {what}, found {}", shown(found)))
    }

    /// The value of a field's option, or an error when Salt's defaults lack it too.
    fn value(&self, key: &str) -> Result<&Value, ConfigError> {
        self.optional(key).ok_or_else(|| self.invalid(key, "is missing"))
    }

    /// The value of a field's option, if it has one.
    fn optional(&self, key: &str) -> Option<&Value> {
        self.fields.borrow_mut().insert(key.to_owned());
        self.opts.get(key)
    }

    fn bool(&self, key: &str) -> Result<bool, ConfigError> {
        match self.value(key)? {
            Value::Boolean(b) => Ok(*b),
            other => Err(self.expected(key, "true or false", other)),
        }
    }

    fn opt_bool(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        match self.optional(key) {
            None | Some(Value::Nil) => Ok(None),
            Some(Value::Boolean(b)) => Ok(Some(*b)),
            Some(other) => Err(self.expected(key, "true, false or nothing", other)),
        }
    }

    /// An integer within `min..=max` (YAML booleans and floats are refused, as Salt's own
    /// validation does).
    fn int_in<T: TryFrom<u64>>(&self, key: &str, min: u64, max: u64) -> Result<T, ConfigError> {
        self.fields.borrow_mut().insert(key.to_owned());
        self.parse_int(key, min, max)
    }

    /// [`Options::int_in`] for an option that is not itself a field.
    fn parse_int<T: TryFrom<u64>>(&self, key: &str, min: u64, max: u64) -> Result<T, ConfigError> {
        let value = self.opts.get(key).ok_or_else(|| self.invalid(key, "is missing"))?;
        let Value::Integer(n) = value else {
            return Err(self.expected(key, "an integer", value));
        };
        n.as_u64()
            .filter(|n| (min..=max).contains(n))
            .and_then(|n| T::try_from(n).ok())
            .ok_or_else(|| self.invalid(key, format!("{n} is out of range ({min} to {max})")))
    }

    fn port(&self, key: &str) -> Result<u16, ConfigError> {
        self.int_in(key, 1, u16::MAX.into())
    }

    /// A non-negative number of seconds, integer or float.
    fn seconds(&self, key: &str) -> Result<f64, ConfigError> {
        let value = self.value(key)?;
        let seconds = match value {
            Value::Integer(n) => n.as_f64(),
            Value::F64(f) => Some(*f),
            Value::F32(f) => Some(f64::from(*f)),
            _ => None,
        };
        match seconds {
            Some(s) if s.is_finite() && s >= 0.0 => Ok(s),
            Some(_) => Err(self.invalid(key, format!("{} is not a number of seconds", shown(value)))),
            None => Err(self.expected(key, "a number of seconds", value)),
        }
    }

    fn string(&self, key: &str) -> Result<String, ConfigError> {
        let value = self.value(key)?;
        value.as_str().map(str::to_owned).ok_or_else(|| self.expected(key, "a string", value))
    }

    fn opt_string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.optional(key) {
            None | Some(Value::Nil) => Ok(None),
            Some(_) => self.string(key).map(Some),
        }
    }

    fn path(&self, key: &str) -> Result<PathBuf, ConfigError> {
        self.string(key).map(PathBuf::from)
    }

    fn opt_path(&self, key: &str) -> Result<Option<PathBuf>, ConfigError> {
        Ok(self.opt_string(key)?.map(PathBuf::from))
    }

    /// A path that may be left unset (or null) but not empty: an empty string would name no
    /// file, and quietly writing nothing is worse than refusing to start.
    fn opt_nonempty_path(&self, key: &str) -> Result<Option<PathBuf>, ConfigError> {
        match self.opt_string(key)? {
            Some(path) if path.is_empty() => Err(self.invalid(key, "must be a path, not empty")),
            path => Ok(path.map(PathBuf::from)),
        }
    }

    /// A string among `allowed`, compared and returned lower-cased when every allowed value
    /// is lower case (log levels), exactly otherwise (signing algorithms).
    fn one_of(&self, key: &str, allowed: &[&str]) -> Result<String, ConfigError> {
        let raw = self.string(key)?;
        let folded = if allowed.iter().all(|a| a.chars().all(|c| !c.is_ascii_uppercase())) {
            raw.to_lowercase()
        } else {
            raw.clone()
        };
        if allowed.contains(&folded.as_str()) {
            Ok(folded)
        } else {
            Err(self.invalid(key, format!("'{raw}' is not one of {}", allowed.join(", "))))
        }
    }

    /// Salt's `file_ignore_*` reading: nothing, one string, or a list of strings.
    fn string_or_list(&self, key: &str) -> Result<Vec<String>, ConfigError> {
        match self.value(key)? {
            Value::Nil => Ok(Vec::new()),
            Value::String(s) => {
                Ok(vec![s.as_str().map(str::to_owned).ok_or_else(|| self.invalid(key, "not UTF-8"))?])
            }
            _ => self.string_list(key),
        }
    }

    fn string_list(&self, key: &str) -> Result<Vec<String>, ConfigError> {
        let value = self.value(key)?;
        let Value::Array(items) = value else {
            return Err(self.expected(key, "a list of strings", value));
        };
        items
            .iter()
            .map(|item| item.as_str().map(str::to_owned).ok_or_else(|| self.expected(key, "a list of strings", value)))
            .collect()
    }

    /// A mapping with its keys as Python's `str()`.
    fn mapping(&self, key: &str) -> Result<Vec<(String, Value)>, ConfigError> {
        let value = self.value(key)?;
        let Value::Map(pairs) = value else {
            return Err(self.expected(key, "a mapping", value));
        };
        pairs
            .iter()
            .map(|(k, v)| {
                let name = py::str(k).ok_or_else(|| self.invalid(key, format!("{} cannot be a name", shown(k))))?;
                Ok((name, v.clone()))
            })
            .collect()
    }

    /// `_validate_file_roots`: saltenv names as `str()`, glob patterns expanded. Salt falls
    /// back to /srv/salt when the option is not a mapping, and reads a saltenv whose value is
    /// not a list as having no directories; both are errors here.
    fn roots(&self, key: &str) -> Result<Roots, ConfigError> {
        let mut roots: Vec<(String, Vec<PathBuf>)> = Vec::new();
        for (saltenv, dirs) in self.mapping(key)? {
            let Value::Array(items) = &dirs else {
                return Err(
                    self.invalid(key, format!("saltenv '{saltenv}' must list directories, found {}", shown(&dirs)))
                );
            };
            let mut expanded = Vec::new();
            for item in items {
                let dir = item.as_str().ok_or_else(|| {
                    self.invalid(key, format!("saltenv '{saltenv}': {} is not a directory", shown(item)))
                })?;
                if pypath::has_magic(dir) {
                    expanded.extend(pypath::glob(dir).into_iter().map(PathBuf::from));
                } else {
                    expanded.push(PathBuf::from(dir));
                }
            }
            // Two keys with the same str() (`1` and '1'): the later one wins, as in Salt.
            roots.retain(|(env, _)| *env != saltenv);
            roots.push((saltenv, expanded));
        }
        Ok(Roots(roots))
    }

    /// A mapping, or Salt's list of one-entry mappings (repacked); an empty `nodegroups:`
    /// is no nodegroups, as in `master_config`.
    fn nodegroups(&self, key: &str) -> Result<Vec<(String, Value)>, ConfigError> {
        match self.optional(key) {
            None | Some(Value::Nil) => Ok(Vec::new()),
            Some(Value::Array(items)) => {
                let mut repacked = Vec::new();
                for item in items {
                    match item {
                        Value::Map(pairs) if pairs.len() == 1 => repacked.extend(pairs.iter().cloned()),
                        other => return Err(self.expected(key, "a mapping of nodegroup names", other)),
                    }
                }
                let o = Layer::from_map(vec![(Value::from(key), Value::Map(repacked))], &self.origin(key));
                Options { opts: &o, fields: RefCell::default() }.mapping(key)
            }
            Some(_) => self.mapping(key),
        }
    }

    /// `peer` / `peer_run`: a mapping of minion-id patterns to lists of function patterns.
    /// Salt skips a pattern whose value is not a list and would fail on a non-string
    /// function pattern at the first publish; both stop start-up here, as does auth_check's
    /// `{target: [functions]}` form, which halite does not implement.
    fn peer_rules(&self, key: &str) -> Result<Vec<(String, Vec<String>)>, ConfigError> {
        if matches!(self.optional(key), None | Some(Value::Nil)) {
            return Ok(Vec::new());
        }
        let mut rules = Vec::new();
        for (minions, funs) in self.mapping(key)? {
            let Value::Array(items) = &funs else {
                return Err(
                    self.invalid(key, format!("'{minions}' must list function patterns, found {}", shown(&funs)))
                );
            };
            let funs = items
                .iter()
                .map(|f| {
                    f.as_str().map(str::to_owned).ok_or_else(|| {
                        self.invalid(
                            key,
                            format!("'{minions}': {} is not a function pattern (target-restricted entries are not supported)", shown(f)),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            rules.push((minions, funs));
        }
        Ok(rules)
    }

    /// Salt's `reactor`: a list of single-key mappings, tag glob → a path or a list of paths.
    /// Salt skips a malformed entry without a word; halite refuses to start on one. Salt
    /// also takes a string naming a file that holds the list, which halite does not read.
    fn reactor(&self, key: &str) -> Result<Vec<(String, Vec<String>)>, ConfigError> {
        let items = match self.optional(key) {
            None | Some(Value::Nil) => return Ok(Vec::new()),
            Some(Value::Array(items)) => items,
            Some(other) => return Err(self.expected(key, "a list of mappings of a tag to reaction files", other)),
        };
        let mut reactor = Vec::new();
        for item in items {
            let Value::Map(pairs) = item else {
                return Err(self.expected(key, "a mapping of one tag to its reaction files", item));
            };
            let [(tag, files)] = pairs.as_slice() else {
                return Err(self.invalid(key, format!("an entry maps {} tags; each maps exactly one", pairs.len())));
            };
            let tag = py::str(tag).ok_or_else(|| self.invalid(key, format!("{} cannot be a tag", shown(tag))))?;
            let path = |v: &Value| {
                v.as_str().map(str::to_owned).ok_or_else(|| {
                    self.invalid(key, format!("tag '{tag}': {} is not a path to a reaction file", shown(v)))
                })
            };
            let files = match files {
                Value::Array(list) => list.iter().map(path).collect::<Result<Vec<_>, _>>()?,
                single => vec![path(single)?],
            };
            reactor.push((tag, files));
        }
        Ok(reactor)
    }

    fn state_aggregate(&self, key: &str) -> Result<StateAggregate, ConfigError> {
        match self.value(key)? {
            Value::Boolean(b) => Ok(StateAggregate::All(*b)),
            Value::Array(_) => self.string_list(key).map(StateAggregate::States),
            other => Err(self.expected(key, "true, false or a list of state modules", other)),
        }
    }
}

/// A value in an error message: its kind, and the value itself when it is short.
fn shown(value: &Value) -> String {
    match py::str(value) {
        Some(text) if text.chars().count() <= 40 => format!("{} ({text:?})", kind(value)),
        _ => kind(value).to_owned(),
    }
}
