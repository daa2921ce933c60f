//! halite's reading of a config directory against Salt 3007.8's own
//! `salt.config.master_config`, run in the minion venv that `tests/install-minions.sh`
//! builds: every option Salt ends up with must have the same value in halite (typed field or
//! `extra`), and halite must have no option Salt lacks. Skipped, with the reason printed,
//! when the venv is missing.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use halite_config::{MasterConfig, StateAggregate, Value};
use serde_json::{json, Map, Value as Json};

/// Options that legitimately differ: Salt's runtime markers, the master's minion id (a DNS
/// lookup, not config), and `user` (Salt fills in the current user's name; halite leaves it
/// unset, which means the same).
const NOT_COMPARED: &[&str] = &["__cli", "__fs_update", "__role", "id", "user"];

fn salt_python() -> Result<PathBuf, String> {
    if let Some(explicit) = std::env::var_os("HALITE_SALT_PYTHON") {
        return Ok(PathBuf::from(explicit));
    }
    let cache = match std::env::var_os("HALITE_MINION_CACHE") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").ok_or("HOME is not set")?).join(".cache/halite/minions"),
    };
    let python = cache.join("salt-3007.8/bin/python");
    if python.is_file() {
        Ok(python)
    } else {
        Err(format!("{} not found (run tests/install-minions.sh)", python.display()))
    }
}

const MASTER_CONFIG: &str = r#"
import json, sys
import salt.config, salt.utils.job

def plain(v):
    if hasattr(v, "items"):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)) or type(v).__name__ == "ImmutableList":
        return [plain(x) for x in v]
    return v

opts = salt.config.master_config(sys.argv[1])
out = plain(opts)
out["__keep_jobs_seconds"] = salt.utils.job.get_keep_jobs_seconds(opts)
json.dump(out, sys.stdout)
"#;

/// Salt's options for the config directory `dir`, as JSON.
fn salt_opts(python: &Path, dir: &Path) -> Map<String, Json> {
    let output = Command::new(python)
        .args(["-c", MASTER_CONFIG])
        .arg(dir.join("master"))
        // Salt's package shadows stdlib names (`platform`): run it from a neutral directory.
        .current_dir(std::env::temp_dir())
        .env_remove("SALT_MASTER_CONFIG")
        .env_remove("SALT_CONFIG_DIR")
        .stdin(Stdio::null())
        .output()
        .expect("run the Salt venv's python");
    assert!(output.status.success(), "master_config failed: {}", String::from_utf8_lossy(&output.stderr));
    match serde_json::from_slice(&output.stdout).expect("master_config JSON") {
        Json::Object(map) => map,
        other => panic!("master_config gave {other}"),
    }
}

fn to_json(v: &Value) -> Json {
    match v {
        Value::Nil => Json::Null,
        Value::Boolean(b) => json!(b),
        Value::Integer(i) => i.as_i64().map_or_else(|| json!(i.as_u64()), |n| json!(n)),
        Value::F64(f) => json!(f),
        Value::F32(f) => json!(f),
        Value::String(s) => json!(s.as_str()),
        Value::Binary(b) => json!(b),
        Value::Array(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Map(pairs) => {
            Json::Object(pairs.iter().map(|(k, v)| (halite_yaml::py::str(k).unwrap_or_default(), to_json(v))).collect())
        }
        Value::Ext(..) => Json::Null,
    }
}

fn path(p: &Path) -> Json {
    json!(p.to_string_lossy())
}

fn seconds(s: f64) -> Json {
    // Salt keeps an integral loop_interval as an int.
    if s.fract() == 0.0 && s < 1e15 {
        json!(s as u64)
    } else {
        json!(s)
    }
}

/// halite's options in Salt's shape: the typed fields under their Salt names, then `extra`.
fn halite_opts(c: &MasterConfig) -> Map<String, Json> {
    let roots = |r: &halite_config::Roots| -> Json {
        Json::Object(
            r.0.iter().map(|(env, dirs)| (env.clone(), Json::Array(dirs.iter().map(|d| path(d)).collect()))).collect(),
        )
    };
    let pairs =
        |p: &[(String, Value)]| -> Json { Json::Object(p.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()) };
    let mut m = Map::new();
    let mut put = |k: &str, v: Json| {
        m.insert(k.to_owned(), v);
    };
    put("interface", json!(c.interface));
    let rules =
        |r: &[(String, Vec<String>)]| -> Json { Json::Object(r.iter().map(|(k, v)| (k.clone(), json!(v))).collect()) };
    put("peer", rules(&c.peer));
    // Salt has no default for peer_run: unset means absent.
    if !c.peer_run.is_empty() {
        put("peer_run", rules(&c.peer_run));
    }
    put("ipv6", json!(c.ipv6));
    put("publish_port", json!(c.publish_port));
    put("ret_port", json!(c.ret_port));
    put("pub_hwm", json!(c.pub_hwm));
    put("zmq_backlog", json!(c.zmq_backlog));
    put("worker_threads", json!(c.worker_threads));
    put("root_dir", path(&c.root_dir));
    put("pki_dir", path(&c.pki_dir));
    put("cachedir", path(&c.cachedir));
    put("sock_dir", path(&c.sock_dir));
    put("log_file", json!(c.log_file));
    for (key, value) in [
        ("autosign_file", &c.autosign_file),
        ("autoreject_file", &c.autoreject_file),
        ("autosign_grains_dir", &c.autosign_grains_dir),
    ] {
        // Salt has no default for these: unset means absent.
        if let Some(p) = value {
            put(key, path(p));
        }
    }
    put("auto_accept", json!(c.auto_accept));
    put("open_mode", json!(c.open_mode));
    put("max_minions", json!(c.max_minions));
    put("keysize", json!(c.keysize));
    put("sign_pub_messages", json!(c.sign_pub_messages));
    put("publish_session", json!(c.publish_session));
    put("auth_events", json!(c.auth_events));
    put("permissive_pki_access", json!(c.permissive_pki_access));
    put("request_server_ttl", json!(c.request_server_ttl));
    put("publish_signing_algorithm", json!(c.publish_signing_algorithm));
    put("ping_on_rotate", json!(c.ping_on_rotate));
    put("rotate_aes_key", json!(c.rotate_aes_key));
    put("timeout", json!(c.timeout));
    // Salt keeps the option as written and applies keep_jobs when it is used.
    put("__keep_jobs_seconds", json!(c.keep_jobs_seconds));
    put("loop_interval", seconds(c.loop_interval));
    put("minion_data_cache", json!(c.minion_data_cache));
    put("log_level", json!(c.log_level));
    put("file_roots", roots(&c.file_roots));
    put("pillar_roots", roots(&c.pillar_roots));
    put("hash_type", json!(c.hash_type));
    put("file_buffer_size", json!(c.file_buffer_size));
    put("file_ignore_regex", json!(c.file_ignore_regex));
    put("file_ignore_glob", json!(c.file_ignore_glob));
    put("fileserver_ignoresymlinks", json!(c.fileserver_ignoresymlinks));
    put("state_top", json!(c.state_top));
    put("renderer", json!(c.renderer));
    put("top_file_merging_strategy", json!(c.top_file_merging_strategy));
    put("env_order", json!(c.env_order));
    put("default_top", json!(c.default_top));
    put("failhard", json!(c.failhard));
    put("state_auto_order", json!(c.state_auto_order));
    put("state_events", json!(c.state_events));
    put(
        "state_aggregate",
        match &c.state_aggregate {
            StateAggregate::All(b) => json!(b),
            StateAggregate::States(s) => json!(s),
        },
    );
    put("jinja_env", pairs(&c.jinja_env));
    put("jinja_sls_env", pairs(&c.jinja_sls_env));
    put("jinja_lstrip_blocks", json!(c.jinja_lstrip_blocks));
    put("jinja_trim_blocks", json!(c.jinja_trim_blocks));
    put("nodegroups", pairs(&c.nodegroups));
    put("reactor", Json::Array(c.reactor.iter().map(|(tag, files)| json!({ tag: files })).collect()));
    put("reactor_worker_threads", json!(c.reactor_worker_threads));
    put("reactor_worker_hwm", json!(c.reactor_worker_hwm));
    // halite's own options: Salt keeps them, as written, among its unknown keys.
    if let Some(p) = &c.dns_address_book {
        put("dns_address_book", path(p));
    }
    if let Some(p) = &c.jumpbox_roster {
        put("jumpbox_roster", path(p));
    }
    for (k, v) in &c.extra {
        put(k, to_json(v));
    }
    m
}

/// Asserts halite reads `dir` as Salt does; returns halite's config for further checks.
fn assert_reads_like_salt(python: &Path, dir: &Path) -> MasterConfig {
    let mut salt = salt_opts(python, dir);
    // Salt keeps keep_jobs_seconds as written; the effective value is compared instead.
    salt.remove("keep_jobs_seconds");
    let (config, _) = MasterConfig::load(Some(dir)).expect("halite reads the config");
    let ours = halite_opts(&config);
    let mut problems = Vec::new();
    for (key, want) in &salt {
        if NOT_COMPARED.contains(&key.as_str()) {
            continue;
        }
        match ours.get(key) {
            Some(got) if got == want => {}
            Some(got) => problems.push(format!("{key}: salt {want}, halite {got}")),
            None => problems.push(format!("{key}: salt {want}, missing in halite")),
        }
    }
    for key in ours.keys() {
        if !salt.contains_key(key) && key != "keep_jobs_seconds" {
            problems.push(format!("{key}: halite has it, salt does not"));
        }
    }
    assert!(problems.is_empty(), "{} differs from Salt:\n{}", dir.display(), problems.join("\n"));
    config
}

fn write(dir: &Path, name: &str, text: &str) {
    let file = dir.join(name);
    std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
    std::fs::write(file, text).expect("write config");
}

macro_rules! python_or_skip {
    ($test:literal) => {
        match salt_python() {
            Ok(p) => p,
            Err(reason) => {
                eprintln!("SKIPPED {}: {reason}", $test);
                return;
            }
        }
    };
}

#[test]
fn defaults_are_salts() {
    let python = python_or_skip!("defaults_are_salts");
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "master", "");
    let config = assert_reads_like_salt(&python, dir.path());
    assert_eq!(config.publish_port, 4505);
    assert_eq!(config.pki_dir, Path::new("/etc/salt/pki/master"));
}

#[test]
fn root_dir_prefixing_is_salts() {
    let python = python_or_skip!("root_dir_prefixing_is_salts");
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    let root = root.to_string_lossy();
    write(
        dir.path(),
        "master",
        &format!(
            "root_dir: {root}\n\
             pki_dir: /etc/salt/pki/master\n\
             cachedir: cache\n\
             pidfile: {root}\n\
             log_file: udp://localhost:514\n\
             key_logfile: logs/key\n\
             autoreject_file: {root}/reject\n\
             autosign_file: /etc/salt/autosign.conf\n\
             autosign_grains_dir: grains\n\
             sock_dir: /a/very/long/socket/directory/path/here\n\
             sqlite_queue_dir: ''\n"
        ),
    );
    let config = assert_reads_like_salt(&python, dir.path());
    assert_eq!(config.pki_dir, Path::new(&format!("{root}/etc/salt/pki/master")));
}

#[test]
fn log_dir_and_derived_paths_are_salts() {
    let python = python_or_skip!("log_dir_and_derived_paths_are_salts");
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "master",
        "log_dir: /var/log/halite\nkey_logfile: file:///dev/log\nextension_modules: ''\ncachedir: /srv/cache\nsock_dir: /srv/s\n",
    );
    assert_reads_like_salt(&python, dir.path());
}

#[test]
fn includes_merge_like_salt() {
    let python = python_or_skip!("includes_merge_like_salt");
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write(
        d,
        "master",
        "interface: 10.0.0.1\n\
         publish_port: 4510\n\
         file_roots:\n  base: [/srv/salt]\n  dev: [/srv/dev]\n\
         nodegroups:\n  - web: 'G@role:web'\n  - db: [db1, db2]\n\
         include: [extra/*.conf, missing/*.conf]\n\
         keep_jobs: 48\n\
         mysql.host: db.example.com\n",
    );
    write(d, "master.d/10-net.conf", "publish_port: 4511\nret_port: 4512\nlist: [a, b]\nm: {x: 1, n: {p: 1}}\n");
    write(
        d,
        "master.d/20-more.conf",
        "list: [b, c, true, 1]\nm: {y: 2, n: {q: 2}}\nfile_roots:\n  base: [/srv/other]\n\
         schedule:\n  job1: {function: test.ping, seconds: 60}\n",
    );
    write(
        d,
        "master.d/30-sched.conf",
        "schedule:\n  job1: {function: test.echo}\n  job2: {function: x}\ninclude: nested.conf\n",
    );
    write(d, "master.d/nested.conf", "worker_threads: 7\nauto_accept: true\n");
    write(d, "master.d/ignored.txt", "publish_port: 1\n");
    write(
        d,
        "extra/a.conf",
        "peer: {'.*': ['test.*']}\nworker_threads: 2\nlog_level: debug\nHASH_TYPE_IS_UNKNOWN: 1\n",
    );
    let config = assert_reads_like_salt(&python, d);
    assert_eq!(config.publish_port, 4511);
    assert_eq!(config.worker_threads, 3, "peer raises worker_threads to 3");
}
