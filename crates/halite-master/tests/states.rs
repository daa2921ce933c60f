//! The file server end to end: real salt-minion 3006, 3007 and 3008 processes fetch files
//! from halite's `file_roots`, list them, sync custom grains from `_grains/`, and run
//! `state.apply` (for real and with `test=True`), `state.highstate`, `state.show_top` and
//! `state.show_sls` on a small tree whose states write under a temp directory.

mod common;

use std::path::Path;

use common::{describe, json_returns, salt, start_minions, Master};
use halite_testkit::SaltVersion;

const MINIONS: &[(&str, SaltVersion, &[&str])] = &[
    ("db1-masterdb", SaltVersion::V3006, &["db", "masterdb"]),
    ("sessions1", SaltVersion::V3007, &["sessions"]),
    ("app1", SaltVersion::V3008, &["app"]),
];

fn write(path: &Path, contents: impl AsRef<[u8]>) {
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
    std::fs::write(path, contents).expect("write a test file");
}

/// The state tree: a common state for every minion, a web state for `app` minions (by
/// grain, in the top file), a Jinja template, a directory to recurse, a file larger than
/// one 1 MiB chunk, a custom grain module, and a symlink leading out of the tree.
fn state_tree(states: &Path, out: &Path, secret: &Path) -> Vec<u8> {
    let out = out.display();
    write(&states.join("top.sls"), "base:\n  '*':\n    - common\n  'roles:app':\n    - match: grain\n    - web\n");
    write(
        &states.join("common/init.sls"),
        format!(
            "motd:\n  file.managed:\n    - name: {out}/{{{{ grains['id'] }}}}/motd\n    - source: salt://common/motd.jinja\n    \
             - template: jinja\n    - makedirs: True\n    - context:\n        greeting: hello\n"
        ),
    );
    write(
        &states.join("common/motd.jinja"),
        "{{ greeting }} from {{ grains['id'] }}, tld {{ salt['pillar.get']('infra:current:tld', 'none') }}\n",
    );
    write(
        &states.join("web.sls"),
        format!(
            "docroot:\n  file.recurse:\n    - name: {out}/{{{{ grains['id'] }}}}/www\n    - source: salt://web/files\n    \
             - makedirs: True\n"
        ),
    );
    write(&states.join("web/files/index.html"), "<h1>webplatform</h1>\n");
    write(&states.join("web/files/css/site.css"), "body { margin: 0 }\n");
    let big: Vec<u8> = (0..3 * 1024 * 1024 + 17).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    write(&states.join("blobs/big.bin"), &big);
    write(
        &states.join("_grains/site_roles.py"),
        "def site_roles():\n    '''The site named its VMs for their roles: db1-masterdb is db and masterdb.'''\n    \
         import re\n    name = __opts__['id']\n    return {'derived_roles': [re.sub(r'[0-9]+$', '', p) for p in name.split('-')]}\n",
    );
    std::os::unix::fs::symlink(secret, states.join("leak.txt")).expect("symlink");
    big
}

#[test]
fn real_minions_fetch_files_and_run_states() {
    let tree = tempfile::Builder::new().prefix("hs").tempdir_in("/tmp").expect("temp dir");
    let states = tree.path().join("states");
    let out = tree.path().join("out");
    let secret = tree.path().join("secret.txt");
    write(&secret, "not for minions\n");
    let big = state_tree(&states, &out, &secret);
    let master =
        Master::start(&["auto_accept: True", "file_roots:", "  base:", &format!("    - {}", states.display())]);
    let minions = start_minions(&master, MINIONS, |spec| spec);
    let ids: Vec<&str> = MINIONS.iter().map(|(id, _, _)| *id).collect();

    // cp.list_master lists the tree (the escaping symlink is not a file it serves).
    let listed = json_returns(&salt(&master, &["*", "cp.list_master", "--out", "json"]));
    for id in &ids {
        let files: Vec<&str> = listed[*id].as_array().expect("a list").iter().filter_map(|f| f.as_str()).collect();
        assert_eq!(
            files,
            [
                "_grains/site_roles.py",
                "blobs/big.bin",
                "common/init.sls",
                "common/motd.jinja",
                "top.sls",
                "web.sls",
                "web/files/css/site.css",
                "web/files/index.html"
            ],
            "{id}"
        );
    }

    // cp.get_file: a 3 MiB file in 1 MiB chunks, plain and gzipped, byte for byte.
    for (n, gzip) in [(0, None), (1, Some("gzip=6"))] {
        let dest = tree.path().join(format!("fetched{n}/{{id}}.bin"));
        let mut args = vec!["*", "cp.get_file", "salt://blobs/big.bin"];
        let dest_arg = dest.display().to_string().replace("{id}", "{{ grains.id }}");
        args.push(&dest_arg);
        args.extend(["template=jinja", "makedirs=True"]);
        args.extend(gzip);
        args.extend(["--out", "json"]);
        let got = salt(&master, &args);
        let returns = json_returns(&got);
        for id in &ids {
            let path = dest.display().to_string().replace("{id}", id);
            assert_eq!(returns[*id], serde_json::json!(path), "{}", describe(&got));
            assert!(std::fs::read(&path).expect("fetched") == big, "{id}: {path} differs from the master's file");
        }
    }
    // Paths that leave the tree are not served: a symlink out of it, `..`, an absolute path.
    for path in ["salt://leak.txt", "salt://../secret.txt", "salt:///etc/passwd", "salt://web/../../secret.txt"] {
        let dest = tree.path().join("stolen");
        let got = salt(&master, &["app1", "cp.get_file", path, &dest.display().to_string(), "--out", "json"]);
        assert_eq!(json_returns(&got)["app1"], serde_json::json!(""), "{path}: {}", describe(&got));
        assert!(!dest.exists(), "{path} was written");
    }

    // A custom grain module from `_grains/`, synced and then used for targeting.
    let synced = json_returns(&salt(&master, &["*", "saltutil.sync_all", "--out", "json"]));
    for id in &ids {
        assert_eq!(synced[*id]["grains"], serde_json::json!(["grains.site_roles"]), "{id}: {}", synced[*id]);
    }
    let derived = json_returns(&salt(&master, &["*", "grains.get", "derived_roles", "--out", "json"]));
    assert_eq!(derived["db1-masterdb"], serde_json::json!(["db", "masterdb"]), "{derived:?}");
    assert_eq!(derived["app1"], serde_json::json!(["app"]));

    // The top file, as minions read it from halite.
    let top = json_returns(&salt(&master, &["*", "state.show_top", "--out", "json"]));
    assert_eq!(top["app1"], serde_json::json!({"base": ["common", "web"]}));
    assert_eq!(top["sessions1"], serde_json::json!({"base": ["common"]}));
    let sls = json_returns(&salt(&master, &["app1", "state.show_sls", "web", "--out", "json"]));
    assert_eq!(sls["app1"]["docroot"]["__sls__"], "web", "{sls:?}");

    // test=True changes nothing; the real run does; a second run finds nothing to do.
    let dry = salt(&master, &["*", "state.apply", "test=True", "--out", "json"]);
    assert!(dry.status.success(), "{}", describe(&dry));
    assert!(!out.exists(), "test=True wrote files");
    let applied = salt(&master, &["*", "state.apply", "--out", "json"]);
    assert!(applied.status.success(), "{}", describe(&applied));
    let applied = json_returns(&applied);
    for id in &ids {
        let states = applied[*id].as_object().unwrap_or_else(|| panic!("{id}: {}", applied[*id]));
        assert!(states.values().all(|s| s["result"] == true), "{id}: {states:?}");
        let motd = std::fs::read_to_string(out.join(id).join("motd")).expect("motd written");
        assert_eq!(motd, format!("hello from {id}, tld none\n"));
    }
    assert_eq!(
        std::fs::read_to_string(out.join("app1/www/css/site.css")).ok().as_deref(),
        Some("body { margin: 0 }\n")
    );
    assert!(!out.join("sessions1/www").exists(), "web applies to app minions only");

    // The tree changes while the master runs: the new file is listed and served at once.
    write(&states.join("web/files/robots.txt"), "User-agent: *\n");
    let again = salt(&master, &["app1", "state.highstate", "--out", "json"]);
    let again = json_returns(&again);
    let docroot = again["app1"]
        .as_object()
        .and_then(|s| s.iter().find(|(k, _)| k.contains("docroot")))
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("{again:?}"));
    assert_eq!(docroot["result"], true, "{docroot}");
    assert!(docroot["changes"].to_string().contains("robots.txt"), "{docroot}");
    assert_eq!(std::fs::read_to_string(out.join("app1/www/robots.txt")).ok().as_deref(), Some("User-agent: *\n"));
    let log = master.log();
    assert!(!log.contains("command not served"), "every file command is served:\n{log}");
    drop(minions);
}
