//! Loading behaviour that needs no Salt install: embedded defaults, include order, warnings,
//! and the errors for values halite refuses.

use std::path::{Path, PathBuf};

use halite_config::{ConfigError, MasterConfig, Origin, Value, Warning};

fn write(dir: &Path, name: &str, text: &str) {
    let file = dir.join(name);
    std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
    std::fs::write(file, text).expect("write config");
}

fn load(dir: &Path) -> Result<(MasterConfig, Vec<Warning>), ConfigError> {
    MasterConfig::load(Some(dir))
}

/// The error for a master file holding `text`.
fn error_for(text: &str) -> (ConfigError, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "master", text);
    let err = load(dir.path()).expect_err("should be refused");
    (err, dir.path().join("master"))
}

fn assert_invalid(text: &str, key: &str) {
    let (err, file) = error_for(text);
    match &err {
        ConfigError::InvalidValue { key: k, origin: Origin::File(f), .. } => {
            assert_eq!(k, key, "{err}");
            assert_eq!(f, &file, "{err}");
        }
        other => panic!("{text:?}: expected an invalid value of {key}, got {other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains(key) && message.contains(&*file.to_string_lossy()), "{message}");
}

#[test]
fn embedded_defaults_live_under_dot_halite_and_serve_the_repo() {
    let repo = tempfile::tempdir().expect("tempdir");
    for dir in ["states", "pillar", "crates/x"] {
        std::fs::create_dir_all(repo.path().join(dir)).expect("mkdir");
    }
    write(repo.path(), "Cargo.toml", "[workspace]\n");
    let cwd = repo.path().join("crates/x");

    let (c, warnings) = MasterConfig::load_at(None, &cwd).expect("embedded defaults");
    assert!(warnings.is_empty(), "{warnings:?}");
    let halite = cwd.join(".halite");
    assert_eq!(c.config_dir, None);
    assert_eq!(c.interface, "127.0.0.1");
    assert_eq!(c.root_dir, halite);
    assert_eq!(c.pki_dir, halite.join("pki/master"));
    assert_eq!(c.cachedir, halite.join("cache"));
    assert_eq!(c.sock_dir, halite.join("run"));
    assert_eq!(c.log_file, halite.join("master.log").to_string_lossy());
    assert_eq!(c.file_roots.get("base"), Some(&[repo.path().join("states")][..]));
    assert_eq!(c.pillar_roots.get("base"), Some(&[repo.path().join("pillar")][..]));
    // Everything else Salt re-roots stays inside .halite too.
    for key in ["pidfile", "extension_modules", "token_dir", "sqlite_queue_dir", "key_logfile"] {
        let path = c.extra(key).and_then(Value::as_str).unwrap_or_default();
        assert!(Path::new(path).starts_with(&halite), "{key}: {path}");
    }
    // Salt's defaults otherwise.
    assert_eq!((c.publish_port, c.ret_port, c.keysize, c.worker_threads), (4505, 4506, 2048, 5));
    assert_eq!(c.extra("gather_job_timeout"), Some(&Value::from(10)));
}

#[test]
fn embedded_defaults_without_a_repo_use_the_current_directory() {
    let cwd = tempfile::tempdir().expect("tempdir");
    let (c, _) = MasterConfig::load_at(None, cwd.path()).expect("embedded defaults");
    assert_eq!(c.file_roots.get("base"), Some(&[cwd.path().join("states")][..]));
}

#[test]
fn master_d_files_override_master_in_sorted_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write(d, "master", "publish_port: 4000\nret_port: 4001\ntimeout: 9\n");
    write(d, "master.d/20-b.conf", "publish_port: 5001\n");
    write(d, "master.d/10-a.conf", "publish_port: 5000\nret_port: 5002\n");
    write(d, "master.d/30-c.txt", "publish_port: 1\n");
    let (c, warnings) = load(d).expect("load");
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!((c.publish_port, c.ret_port, c.timeout), (5001, 5002, 9));
    assert_eq!(c.files, vec![d.join("master"), d.join("master.d/10-a.conf"), d.join("master.d/20-b.conf")]);
    assert_eq!(c.config_dir.as_deref(), Some(d));
}

#[test]
fn a_relative_config_dir_is_found_from_the_current_directory() {
    let cwd = tempfile::tempdir().expect("tempdir");
    write(cwd.path(), "etc/master", "ret_port: 7000\nroot_dir: root\n");
    let (c, _) = MasterConfig::load_at(Some(Path::new("etc")), cwd.path()).expect("load");
    assert_eq!(c.ret_port, 7000);
    assert_eq!(c.root_dir, cwd.path().join("root"));
    assert_eq!(c.pki_dir, cwd.path().join("root/etc/salt/pki/master"));
}

#[test]
fn an_empty_config_dir_is_salts_defaults() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (c, warnings) = load(dir.path()).expect("load");
    assert!(warnings.is_empty());
    assert!(c.files.is_empty());
    assert_eq!(c.interface, "0.0.0.0");
    assert_eq!(c.pki_dir, Path::new("/etc/salt/pki/master"));
    assert_eq!(c.file_roots.get("base"), Some(&[PathBuf::from("/srv/salt"), PathBuf::from("/srv/spm/salt")][..]));
    assert_eq!(c.extra("conf_file"), Some(&Value::from("/etc/salt/master")));
}

#[test]
fn a_missing_config_dir_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = load(&dir.path().join("nope")).expect_err("missing dir");
    assert!(matches!(err, ConfigError::MissingConfigDir(_)), "{err:?}");
}

#[test]
fn each_unknown_key_is_reported_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write(d, "master", "publsh_port: 4505\nmysql.host: db\npeer_run: {}\npresence_events: true\n");
    write(d, "master.d/a.conf", "publsh_port: 4506\nauto_acept: true\n");
    let (c, warnings) = load(d).expect("load");
    let conf = d.join("master.d/a.conf");
    assert_eq!(
        warnings,
        vec![
            Warning::UnknownKey { key: "publsh_port".into(), file: conf.clone() },
            Warning::UnknownKey { key: "auto_acept".into(), file: conf },
        ]
    );
    // Unknown and module options are kept as written.
    assert_eq!(c.extra("publsh_port"), Some(&Value::from(4506)));
    assert_eq!(c.extra("mysql.host"), Some(&Value::from("db")));
    assert!(warnings[0].to_string().contains("publsh_port"));
}

/// A halite-only path option (`key`): off unless set, taken as written (not re-rooted), a
/// typed field rather than an extra, null for unset, and invalid as anything but a path.
fn assert_halites_own_path_option(key: &str, field: fn(&MasterConfig) -> &Option<PathBuf>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (c, warnings) = load(d).expect("load");
    assert_eq!(field(&c), &None, "off unless set");
    write(d, "master", &format!("root_dir: /srv/r\n{key}: /var/lib/halite/file\n"));
    let (c, warnings_set) = load(d).expect("load");
    assert_eq!(field(&c), &Some(PathBuf::from("/var/lib/halite/file")), "not re-rooted");
    assert_eq!((warnings, warnings_set), (vec![], vec![]), "a known key");
    assert_eq!(c.extra(key), None, "a typed field, not an extra");
    write(d, "master", &format!("{key}:\n"));
    assert_eq!(field(&load(d).expect("load").0), &None, "null is unset");
    for bad in ["''", "[a]", "true"] {
        assert_invalid(&format!("{key}: {bad}\n"), key);
    }
}

#[test]
fn dns_address_book_is_halites_own_path_option() {
    assert_halites_own_path_option("dns_address_book", |c| &c.dns_address_book);
}

#[test]
fn jumpbox_roster_is_halites_own_path_option() {
    assert_halites_own_path_option("jumpbox_roster", |c| &c.jumpbox_roster);
}

#[test]
fn include_follows_patterns_and_nested_includes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write(d, "master", "include:\n  - extra/*.conf\n  - nowhere/*.conf\n");
    write(d, "extra/a.conf", "ret_port: 4600\ninclude: deeper/b.conf\n");
    write(d, "extra/deeper/b.conf", "publish_port: 4601\n");
    let (c, warnings) = load(d).expect("load");
    assert_eq!((c.publish_port, c.ret_port), (4601, 4600));
    assert_eq!(
        warnings,
        vec![Warning::IncludeMatchedNothing {
            pattern: format!("{}/nowhere/*.conf", d.display()),
            file: d.join("master")
        }]
    );
}

#[test]
fn an_include_loop_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write(d, "master", "");
    write(d, "master.d/a.conf", "include: b.inc\n");
    write(d, "master.d/b.inc", "include: a.conf\n");
    let err = load(d).expect_err("loop");
    assert!(matches!(err, ConfigError::IncludeCycle { .. }), "{err:?}");
}

#[test]
fn broken_files_name_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write(d, "master", "interface: 0.0.0.0\n");
    write(d, "master.d/bad.conf", "publish_port: [4505\n");
    match load(d).expect_err("bad yaml") {
        ConfigError::Yaml { path, source } => {
            assert_eq!(path, d.join("master.d/bad.conf"));
            assert_eq!(source.line, 2);
        }
        other => panic!("{other:?}"),
    }
    let (err, file) = error_for("- a list\n- not options\n");
    assert!(matches!(&err, ConfigError::NotAMapping { path, .. } if *path == file), "{err:?}");
    let (err, _) = error_for("a: 1\na: 2\n");
    assert!(matches!(err, ConfigError::Yaml { .. }), "duplicate keys are refused like Salt: {err:?}");
}

#[test]
fn invalid_values_name_the_option_and_file() {
    assert_invalid("publish_port: '4505'\n", "publish_port");
    assert_invalid("publish_port: 70000\n", "publish_port");
    assert_invalid("ret_port: 0\n", "ret_port");
    assert_invalid("keysize: 1024\n", "keysize");
    assert_invalid("auto_accept: 1\n", "auto_accept");
    assert_invalid("open_mode: 'yes'\n", "open_mode");
    assert_invalid("interface: 10\n", "interface");
    assert_invalid("log_level: loud\n", "log_level");
    assert_invalid("publish_signing_algorithm: SHA256\n", "publish_signing_algorithm");
    assert_invalid("worker_threads: 0\n", "worker_threads");
    assert_invalid("timeout: 2.5\n", "timeout");
    assert_invalid("file_roots: /srv/salt\n", "file_roots");
    assert_invalid("file_roots:\n  base: /srv/salt\n", "file_roots");
    assert_invalid("pillar_roots:\n  base: [1]\n", "pillar_roots");
    assert_invalid("env_order: base\n", "env_order");
    assert_invalid("nodegroups: web\n", "nodegroups");
    assert_invalid("pki_dir: [a]\n", "pki_dir");
    assert_invalid("pidfile: 5\n", "pidfile");
    assert_invalid("include: 5\n", "include");
}

#[test]
fn salt_value_fix_ups() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::create_dir_all(d.join("roots/a")).expect("mkdir");
    std::fs::create_dir_all(d.join("roots/b")).expect("mkdir");
    write(
        d,
        "master",
        &format!(
            "keep_jobs: 2\nnodegroups:\nhash_type: SHA512\nlog_level: DEBUG\n\
             file_roots:\n  base: ['{}/roots/*', /srv/plain]\n\
             pillar_roots:\n  1: [/srv/one]\n\
             state_aggregate: [pkg]\nid: 1234\n",
            d.display()
        ),
    );
    let (c, warnings) = load(d).expect("load");
    assert_eq!(c.keep_jobs_seconds, 7200);
    assert_eq!(
        warnings,
        vec![Warning::Deprecated { key: "keep_jobs".into(), file: d.join("master"), replacement: "keep_jobs_seconds" }]
    );
    assert!(c.nodegroups.is_empty());
    assert_eq!(c.hash_type, "sha512");
    assert_eq!(c.log_level, "debug");
    assert_eq!(
        c.file_roots.get("base"),
        Some(&[d.join("roots/a"), d.join("roots/b"), PathBuf::from("/srv/plain")][..])
    );
    assert_eq!(c.pillar_roots.get("1"), Some(&[PathBuf::from("/srv/one")][..]));
    assert_eq!(c.state_aggregate, halite_config::StateAggregate::States(vec!["pkg".into()]));
    assert_eq!(c.extra("id"), Some(&Value::from("1234")));
}

#[test]
fn nodegroups_as_a_list_of_mappings_are_repacked() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "master", "nodegroups:\n  - web: 'G@role:web'\n  - db: [db1, db2]\n");
    let (c, _) = load(dir.path()).expect("load");
    assert_eq!(
        c.nodegroups,
        vec![
            ("web".to_owned(), Value::from("G@role:web")),
            ("db".to_owned(), Value::Array(vec![Value::from("db1"), Value::from("db2")])),
        ]
    );
}

#[test]
fn peer_rules_are_read_in_order_and_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "master",
        "peer:\n  'web.*': ['grains.*', 'test.*']\n  '.*': ['network.*']\npeer_run:\n  db1: ['manage.up']\n",
    );
    let (c, _) = load(dir.path()).expect("load");
    assert_eq!(
        c.peer,
        vec![
            ("web.*".to_owned(), vec!["grains.*".to_owned(), "test.*".to_owned()]),
            (".*".to_owned(), vec!["network.*".to_owned()])
        ]
    );
    assert_eq!(c.peer_run, vec![("db1".to_owned(), vec!["manage.up".to_owned()])]);
    assert!(c.extra("peer").is_none() && c.extra("peer_run").is_none());
    let (c, _) = load(&{
        write(dir.path(), "master", "peer_run:\n");
        dir.path().to_path_buf()
    })
    .expect("load");
    assert!(c.peer.is_empty() && c.peer_run.is_empty());

    assert_invalid("peer: ['.*']\n", "peer");
    assert_invalid("peer:\n  '.*': 'test.*'\n", "peer");
    assert_invalid("peer_run:\n  '.*': [{'G@os:Debian': ['manage.*']}]\n", "peer_run");
}

#[test]
fn reactor_maps_tags_to_files_and_refuses_malformed_entries() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "master",
        "reactor:\n  - 'salt/key':\n    - salt://reactor/key.sls\n    - /srv/reactor/*.sls\n  \
         - 'salt/minion/*/start': salt://reactor/start.sls\nreactor_worker_threads: 2\nreactor_worker_hwm: 5\n",
    );
    let (c, _) = load(dir.path()).expect("load");
    assert_eq!(
        c.reactor,
        vec![
            ("salt/key".to_owned(), vec!["salt://reactor/key.sls".to_owned(), "/srv/reactor/*.sls".to_owned()]),
            ("salt/minion/*/start".to_owned(), vec!["salt://reactor/start.sls".to_owned()]),
        ]
    );
    assert_eq!((c.reactor_worker_threads, c.reactor_worker_hwm), (2, 5));
    assert!(c.extra("reactor").is_none());

    let empty = tempfile::tempdir().expect("tempdir");
    let (c, _) = load(empty.path()).expect("load");
    assert!(c.reactor.is_empty());
    assert_eq!((c.reactor_worker_threads, c.reactor_worker_hwm), (10, 10_000));

    assert_invalid("reactor: salt://reactor.sls\n", "reactor");
    assert_invalid("reactor:\n  - salt/key\n", "reactor");
    assert_invalid("reactor:\n  - {a: x.sls, b: y.sls}\n", "reactor");
    assert_invalid("reactor:\n  - a: [1]\n", "reactor");
    assert_invalid("reactor_worker_threads: 0\n", "reactor_worker_threads");
    assert_invalid("reactor_worker_hwm: many\n", "reactor_worker_hwm");

    // Salt's unbounded queue becomes the largest bound, said once.
    let unbounded = tempfile::tempdir().expect("tempdir");
    write(unbounded.path(), "master", "reactor_worker_hwm: 0\n");
    let (c, warnings) = load(unbounded.path()).expect("load");
    assert_eq!(c.reactor_worker_hwm, 10_000_000);
    assert!(warnings.iter().any(|w| w.to_string().contains("reactor_worker_hwm")), "{warnings:?}");
}
