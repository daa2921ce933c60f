//! The path work of `salt.config.apply_master_config`: `log_dir`, the derived directories,
//! and `prepend_root_dir`. Steps that only touch options halite does not use yet (cluster,
//! TLS, discovery, `fileserver_backend` renames, `file_ignore_*`, the master's minion id)
//! are not replayed; those options keep the values the files gave them.

use halite_yaml::Value;

use crate::error::{ConfigError, Origin};
use crate::layer::{truthy, Layer};
use crate::pypath;

/// Options `apply_master_config` re-roots under root_dir unconditionally.
const PREFIXED: &[&str] = &[
    "pki_dir",
    "cachedir",
    "pidfile",
    "sock_dir",
    "extension_modules",
    "autosign_file",
    "autoreject_file",
    "token_dir",
    "syndic_dir",
    "sqlite_queue_dir",
    "autosign_grains_dir",
];

/// Log targets, re-rooted only when they are paths rather than URLs (`udp://...`).
const LOG_TARGETS: &[&str] = &["log_file", "key_logfile", "ssh_log_file"];

/// Salt's default master log file, whose name `log_dir` reuses.
const DEFAULT_LOG_FILE: &str = "/var/log/salt/master";

/// Merges `overrides` over `defaults` and derives paths as Salt does. `cwd` resolves a
/// relative root_dir (Salt uses `os.path.abspath`).
pub(crate) fn apply_master_config(defaults: Layer, mut overrides: Layer, cwd: &str) -> Result<Layer, ConfigError> {
    adjust_log_file_override(&mut overrides)?;
    let ipc_write_buffer_set = overrides.contains("ipc_write_buffer");
    let mut opts = defaults;
    opts.update(overrides);

    let cachedir = path_str(&opts, "cachedir")?;
    // Unix socket paths are short; Salt moves a long sock_dir under cachedir.
    if path_str(&opts, "sock_dir")?.chars().count() > cachedir.chars().count() + 10 {
        opts.replace("sock_dir", Value::from(pypath::join(&cachedir, ".salt-unix")));
    }
    opts.replace("token_dir", Value::from(pypath::join(&cachedir, "tokens")));
    opts.replace("syndic_dir", Value::from(pypath::join(&cachedir, "syndics")));
    if !opts.get("extension_modules").is_some_and(truthy) {
        opts.replace("extension_modules", Value::from(pypath::join(&cachedir, "extmods")));
    }
    if !opts.get("utils_dirs").is_some_and(truthy) {
        // Built before extension_modules is re-rooted, and never re-rooted itself: Salt's
        // own inconsistency, kept.
        let utils = pypath::join(&path_str(&opts, "extension_modules")?, "utils");
        opts.replace("utils_dirs", Value::Array(vec![Value::from(utils)]));
    }
    if !ipc_write_buffer_set {
        opts.replace("ipc_write_buffer", Value::from(0));
    }

    let mut prefixed: Vec<&str> = PREFIXED.to_vec();
    for key in LOG_TARGETS {
        if let Some(Value::String(s)) = opts.get(key) {
            if !pypath::has_url_scheme(s.as_str().unwrap_or_default()) {
                prefixed.push(key);
            }
        }
    }
    prepend_root_dir(&mut opts, &prefixed, cwd)?;
    Ok(opts)
}

/// `_adjust_log_file_override`: `log_dir` moves a relative (or the default) log_file into it.
fn adjust_log_file_override(overrides: &mut Layer) -> Result<(), ConfigError> {
    let Some(dir) = overrides.entry("log_dir").filter(|e| truthy(&e.value)).cloned() else {
        return Ok(());
    };
    let log_dir = dir.value.as_str().ok_or_else(|| not_a_path("log_dir", &dir.origin))?;
    match overrides.entry("log_file").filter(|e| truthy(&e.value)).cloned() {
        Some(file) => {
            let log_file = file.value.as_str().ok_or_else(|| not_a_path("log_file", &file.origin))?;
            if !log_file.starts_with('/') {
                overrides.set("log_file", Value::from(pypath::join(log_dir, log_file)), file.origin);
            }
        }
        None => {
            let log_file = pypath::join(log_dir, pypath::basename(DEFAULT_LOG_FILE));
            overrides.set("log_file", Value::from(log_file), dir.origin);
        }
    }
    Ok(())
}

/// `prepend_root_dir` on a POSIX Salt, whose default root dir is `/`.
fn prepend_root_dir(opts: &mut Layer, keys: &[&str], cwd: &str) -> Result<(), ConfigError> {
    let root_dir = pypath::abspath(&path_str(opts, "root_dir")?, cwd);
    for key in keys {
        let Some(entry) = opts.entry(key) else {
            continue;
        };
        let path = match &entry.value {
            // Salt would crash on an explicit null; halite treats it as unset.
            Value::Nil => continue,
            Value::String(s) => s.as_str().unwrap_or_default().to_owned(),
            _ => return Err(not_a_path(key, &entry.origin)),
        };
        if let Some(rerooted) = reroot(&path, &root_dir) {
            opts.replace(key, Value::from(rerooted));
        }
    }
    Ok(())
}

/// One path of `prepend_root_dir`; `None` leaves it unchanged.
fn reroot(path: &str, root_dir: &str) -> Option<String> {
    // With the default root dir "/" stripped of its separator (""), every absolute path
    // "starts with the default root dir".
    let under_default = (path.is_empty() || path.starts_with('/')).then_some(path);
    let under_root = (!root_dir.is_empty() && (path == root_dir || path.starts_with(&format!("{root_dir}/"))))
        .then(|| &path[root_dir.len()..]);
    // Salt tests these for truthiness: an empty remainder counts as no match, which is why a
    // path equal to root_dir gets root_dir prepended a second time.
    let chosen = match (under_default.filter(|p| !p.is_empty()), under_root.filter(|p| !p.is_empty())) {
        (_, Some(rest)) => rest,
        (Some(whole), None) => whole,
        (None, None) if path.starts_with('/') => return None,
        (None, None) => path,
    };
    Some(pypath::salt_join(root_dir, chosen))
}

fn path_str(opts: &Layer, key: &str) -> Result<String, ConfigError> {
    match opts.entry(key) {
        Some(e) => e.value.as_str().map(str::to_owned).ok_or_else(|| not_a_path(key, &e.origin)),
        None => Err(ConfigError::InvalidValue {
            key: key.to_owned(),
            origin: Origin::SaltDefaults,
            problem: "is missing".to_owned(),
        }),
    }
}

fn not_a_path(key: &str, origin: &Origin) -> ConfigError {
    ConfigError::InvalidValue {
        key: key.to_owned(),
        origin: origin.clone(),
        problem: "must be a path (a string)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::reroot;

    #[test]
    fn reroot_like_salt() {
        assert_eq!(reroot("/etc/salt/pki/master", "/").as_deref(), Some("/etc/salt/pki/master"));
        assert_eq!(reroot("/etc/salt/pki/master", "/srv/r").as_deref(), Some("/srv/r/etc/salt/pki/master"));
        assert_eq!(reroot("/srv/r/pki", "/srv/r").as_deref(), Some("/srv/r/pki"));
        assert_eq!(reroot("pki", "/srv/r").as_deref(), Some("/srv/r/pki"));
        assert_eq!(reroot("/srv/r", "/srv/r").as_deref(), Some("/srv/r/srv/r"));
        assert_eq!(reroot("", "/srv/r").as_deref(), Some("/srv/r"));
    }
}
