//! Pillar end to end: real salt-minion 3006, 3007 and 3008 processes get the pillar halite
//! compiles for them (`pillar.items`, `pillar.get`, `saltutil.refresh_pillar`), `-I`
//! targets it, states and templates read it, `salt-run pillar.show_pillar`/`show_top` show
//! it; a broken sls or a 50 MB value affects only the minions it is for.

mod common;

use std::path::Path;

use common::{describe, json, json_returns, salt, salt_run, start_minions, Master};
use halite_testkit::SaltVersion;

const MINIONS: &[(&str, SaltVersion, &[&str])] = &[
    ("db1-masterdb", SaltVersion::V3006, &["db", "masterdb"]),
    ("sessions1", SaltVersion::V3007, &["sessions"]),
    ("app1", SaltVersion::V3008, &["app"]),
];

fn write(path: &Path, contents: &str) {
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
    std::fs::write(path, contents).expect("write a test file");
}

fn pillar_tree(pillar: &Path) {
    write(
        &pillar.join("top.sls"),
        "base:\n  '*':\n    - infra\n    - users\n  'roles:db':\n    - match: grain\n    - db\n\
         \x20 sessions1:\n    - broken\n  app1:\n    - big\n",
    );
    write(
        &pillar.join("infra.sls"),
        "{% set tld = 'org' %}\ninfra:\n  current:\n    tld: {{ tld }}\n  hosts_entries:\n\
         {% for r in grains['roles'] %}\n    - {{ r }}.webplatform.{{ tld }}\n{% endfor %}\n",
    );
    write(&pillar.join("users/init.sls"), "include:\n  - .admins\nusers:\n  deploy: {uid: 2000}\n");
    write(&pillar.join("users/admins.sls"), "users:\n  alice: {uid: 1000, shell: /bin/bash}\n");
    write(&pillar.join("db.sls"), "postgres:\n  port: 5432\n  primary: {{ 'masterdb' in grains['roles'] }}\n");
    write(&pillar.join("broken.sls"), "sessions: {% if %}\n");
    write(&pillar.join("big.sls"), "big: {{ 'x' * 50000000 }}\n");
}

#[test]
fn real_minions_get_their_pillar() {
    let tree = tempfile::Builder::new().prefix("hp").tempdir_in("/tmp").expect("temp dir");
    let pillar = tree.path().join("pillar");
    let states = tree.path().join("states");
    let out = tree.path().join("out");
    pillar_tree(&pillar);
    write(
        &states.join("motd.sls"),
        &format!(
            "{}/{{{{ grains['id'] }}}}:\n  file.managed:\n    - makedirs: True\n    - contents: \
             \"tld={{{{ salt['pillar.get']('infra:current:tld') }}}} admin={{{{ pillar['users']['alice']['uid'] }}}}\"\n",
            out.display()
        ),
    );
    let master = Master::start(&[
        "auto_accept: True",
        "pillar_roots:",
        "  base:",
        &format!("    - {}", pillar.display()),
        "file_roots:",
        "  base:",
        &format!("    - {}", states.display()),
    ]);
    // 3008 masks pillar values in pillar.items output unless told not to.
    let minions = start_minions(&master, MINIONS, |spec| spec.with_config("pillar_mask_output: False"));
    let ids: Vec<&str> = MINIONS.iter().map(|(id, _, _)| *id).collect();

    // pillar.items on each minion: what the top file gives it, rendered with its grains.
    // (Not app1: its pillar holds the 50 MB value, checked below without shipping it back.)
    let items = json_returns(&salt(&master, &["-L", "db1-masterdb,sessions1", "pillar.items", "--out", "json"]));
    let db = &items["db1-masterdb"];
    assert_eq!(db["infra"]["current"]["tld"], "org", "{db}");
    assert_eq!(
        db["infra"]["hosts_entries"],
        serde_json::json!(["db.webplatform.org", "masterdb.webplatform.org"]),
        "{db}"
    );
    assert_eq!(db["users"], serde_json::json!({"deploy": {"uid": 2000}, "alice": {"uid": 1000, "shell": "/bin/bash"}}));
    assert_eq!(db["postgres"], serde_json::json!({"port": 5432, "primary": true}));
    assert!(db.get("_errors").is_none(), "{db}");
    // The broken sls is only in sessions1's top: only its pillar carries the error.
    let sessions = &items["sessions1"];
    assert_eq!(
        sessions["_errors"],
        serde_json::json!(["Rendering SLS 'broken' failed. Please see master log for details."]),
        "{sessions}"
    );
    assert_eq!(sessions["infra"]["current"]["tld"], "org", "the rest of its pillar is there");
    let log = master.log();
    assert!(log.contains("Rendering SLS 'broken' failed"), "one clear log line with the cause:\n{log}");
    // The 50 MB value reaches app1 whole.
    let len = json_returns(&salt(
        &master,
        &["app1", "slsutil.renderer", "string={{ pillar['big']|length }}", "default_renderer=jinja", "--out", "json"],
    ));
    assert_eq!(len["app1"].to_string().trim_matches('"'), "50000000", "{len:?}");

    // pillar.get, and -I targeting on the cached pillar.
    let got = json_returns(&salt(&master, &["*", "pillar.get", "postgres:port", "--out", "json"]));
    assert_eq!(got["db1-masterdb"], 5432);
    assert_eq!(got["sessions1"], "");
    let targeted = json_returns(&salt(&master, &["-I", "postgres:primary:True", "test.ping", "--out", "json"]));
    assert_eq!(targeted.keys().collect::<Vec<_>>(), ["db1-masterdb"]);

    // States and templates on the minions read the pillar.
    let applied = salt(&master, &["-L", "db1-masterdb,app1", "state.apply", "motd", "--out", "json"]);
    assert!(applied.status.success(), "{}", describe(&applied));
    let motd = std::fs::read_to_string(out.join("db1-masterdb")).expect("motd for db1");
    assert_eq!(motd.trim_end(), "tld=org admin=1000");
    // A minion whose pillar failed refuses to run states, naming the failure, as with Salt.
    let refused = salt(&master, &["sessions1", "state.apply", "motd", "--out", "json"]);
    assert!(!refused.status.success(), "{}", describe(&refused));
    let refused = json_returns(&refused)["sessions1"].to_string();
    assert!(refused.contains("Pillar failed to render") && refused.contains("broken"), "{refused}");

    // salt-run shows what the master compiles, from the cached grains.
    let shown = json(&salt_run(&master, &["pillar.show_pillar", "db1-masterdb", "--out", "json"]));
    assert_eq!(&shown, db, "show_pillar equals what the minion got");
    let top = json(&salt_run(&master, &["pillar.show_top", "--out", "json"]));
    assert_eq!(top["base"]["roles:db"], serde_json::json!([{"match": "grain"}, "db"]), "{top}");

    // A change to the tree reaches minions on refresh_pillar.
    write(&pillar.join("users/admins.sls"), "users:\n  alice: {uid: 1001, shell: /bin/zsh}\n");
    let refreshed = json_returns(&salt(&master, &["*", "saltutil.refresh_pillar", "wait=True", "--out", "json"]));
    assert_eq!(refreshed.len(), ids.len(), "{refreshed:?}");
    // 3008 masks pillar.get values whatever pillar_mask_output says; only `unmask=True`
    // (which older minions reject) shows them.
    let mut uid = json_returns(&salt(
        &master,
        &["-L", "db1-masterdb,sessions1", "pillar.get", "users:alice:uid", "--out", "json"],
    ));
    uid.extend(json_returns(&salt(
        &master,
        &["app1", "pillar.get", "users:alice:uid", "unmask=True", "--out", "json"],
    )));
    for id in &ids {
        assert_eq!(uid[*id], 1001, "{id}: {uid:?}");
    }
    assert!(master.log().contains("halite master ready"));
    drop(minions);
}
