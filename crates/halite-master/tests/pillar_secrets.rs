//! Secrets follow the minion id, not grains (docs/site.md, "Secrets"). A minion sets its own
//! grains, so the site's `pillar/top.sls` gives the `private/` files by minion id only, the
//! id a minion's accepted key signs for, read as `_grains/roles.py` reads roles from it.
//!
//! - The tree: no sls but the top file includes a private file, and the top file lists them
//!   under id targets only.
//! - Real 3007 minions: `app1` claiming `roles: [db, masterdb, salt]` in its config gets
//!   those roles' data but only its own secrets; `db1-masterdb` gets the database secrets.
//! - `salt-run pillar.show_pillar` with every role claimed (and with none), for every VM name
//!   of the site at both levels and for names that only look like them: each gets exactly
//!   the secrets its name's roles need.
//!
//! A secret is recognised by its placeholder (`CHANGE-ME-...`, one per value, in the
//! repository's `pillar/private/`).

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use common::{describe, json, json_returns, salt, salt_run, start_minions, Master};
use halite_testkit::SaltVersion;
use serde_json::Value;

/// The private files (under `pillar/private/`, without `.sls`) the VMs of each role need;
/// `*`: every VM. Every private file must be somewhere here.
const NEEDS: &[(&str, &[&str])] = &[
    ("*", &["monit"]),
    ("salt", &["rsync"]),
    ("mail", &["mail"]),
    // Every db VM may become the masterdb, which creates the applications' accounts.
    (
        "db",
        &["mariadb", "databases/wpwiki", "databases/wpblog", "databases/tracker", "databases/notes", "databases/fxa"],
    ),
    ("sessions", &["sessions"]),
    ("accounts", &["databases/fxa"]),
    ("app", &["app", "databases/wpwiki", "sessions"]),
    ("jobrunner", &["app", "databases/wpwiki", "sessions"]),
    ("blog", &["blog", "databases/wpblog"]),
    ("project", &["databases/tracker", "sessions"]),
    ("notes", &["notes", "databases/notes"]),
    ("bots", &["bots"]),
];

/// Every role of the VM-roles document.
const ALL_ROLES: &[&str] = &[
    "source",
    "salt",
    "mail",
    "masterdb",
    "db",
    "sessions",
    "memcache",
    "elastic",
    "accounts",
    "app",
    "blog",
    "project",
    "notes",
    "bots",
    "jobrunner",
];

/// The site's VM names (as in site.rs), then names that look like them but carry no role
/// (or other roles) as `_grains/roles.py` reads them.
const IDS: &[&str] = &[
    "source",
    "salt",
    "mail1",
    "db1-masterdb",
    "db2",
    "sessions1",
    "accounts1",
    "memcache1",
    "elastic1",
    "app1",
    "blog1",
    "project1",
    "notes1",
    "bots1",
    "jobrunner1",
    "sessions2-memcache",
    "intruder",
    "masterdb1",
    "xdb1",
    "db1x",
    "salty",
    "app1.db1-masterdb.wpdn",
    "web1-app-x.db",
];
const STAGING: &str = ".staging.wpdn";

fn repo_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(name)
}

/// The roles `_grains/roles.py` reads from a minion id: the dash-separated parts of its first
/// label, digits dropped.
fn roles_of(id: &str) -> Vec<String> {
    let mut roles: Vec<String> = Vec::new();
    for part in id.split('.').next().unwrap_or_default().split('-') {
        let role: String = part.chars().filter(|c| !c.is_ascii_digit()).collect();
        if !role.is_empty() && !roles.contains(&role) {
            roles.push(role);
        }
    }
    roles
}

/// The placeholders (`CHANGE-ME-...`) anywhere in `text`.
fn placeholders(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("CHANGE-ME-") {
        let token: String =
            rest[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect();
        rest = &rest[at + token.len()..];
        found.insert(token);
    }
    found
}

/// Every `.sls` under `dir`, as paths relative to it without `.sls` (`databases/fxa`).
fn sls_files(dir: &Path, prefix: &str, out: &mut Vec<(String, PathBuf)>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        if path.is_dir() {
            sls_files(&path, &format!("{prefix}{name}/"), out);
        } else if let Some(stem) = name.strip_suffix(".sls") {
            out.push((format!("{prefix}{stem}"), path));
        }
    }
}

/// The placeholders of each private file.
fn private_files() -> Vec<(String, BTreeSet<String>)> {
    let mut files = Vec::new();
    sls_files(&repo_dir("pillar/private"), "", &mut files);
    files.sort();
    files
        .into_iter()
        .map(|(name, path)| {
            let found = placeholders(&std::fs::read_to_string(&path).expect("read a private file"));
            assert!(!found.is_empty(), "{name}: a private file without a CHANGE-ME placeholder");
            (name, found)
        })
        .collect()
}

/// The placeholders a minion named `id` must get, whatever its grains say.
fn expected(id: &str, private: &[(String, BTreeSet<String>)]) -> BTreeSet<String> {
    let roles = roles_of(id);
    let files: BTreeSet<&str> = NEEDS
        .iter()
        .filter(|(role, _)| *role == "*" || roles.iter().any(|r| r == role))
        .flat_map(|(_, files)| files.iter().copied())
        .collect();
    private.iter().filter(|(name, _)| files.contains(name.as_str())).flat_map(|(_, p)| p.iter().cloned()).collect()
}

fn keys(map: &Value) -> BTreeSet<&str> {
    map.as_object().map(|m| m.keys().map(String::as_str).collect()).unwrap_or_default()
}

fn secrets_in(pillar: &Value) -> BTreeSet<String> {
    placeholders(&pillar.to_string())
}

/// The tree itself: private files are named by the top file only, under id targets only.
fn check_tree(top: &Value, private: &[(String, BTreeSet<String>)]) {
    for (name, _) in private {
        assert!(
            NEEDS.iter().any(|(_, files)| files.contains(&name.as_str())),
            "pillar/private/{name}.sls: no role in NEEDS; say which VMs need it"
        );
    }
    let mut all = Vec::new();
    sls_files(&repo_dir("pillar"), "", &mut all);
    for (name, path) in all.iter().filter(|(name, _)| name != "top" && !name.starts_with("private/")) {
        let text = std::fs::read_to_string(path).expect("read an sls");
        for line in text.lines().map(str::trim).filter(|l| !l.starts_with('#')) {
            assert!(!line.contains("private."), "pillar/{name}.sls names a private file ({line:?}): only top.sls may");
        }
    }
    let targets = top["base"].as_object().unwrap_or_else(|| panic!("no base in the top: {top}"));
    let mut listed = BTreeSet::new();
    for (target, items) in targets {
        let items = items.as_array().unwrap_or_else(|| panic!("{target}: {items}"));
        let matcher = items.iter().find_map(|i| i.get("match")).and_then(Value::as_str).unwrap_or("glob");
        for sls in items.iter().filter_map(Value::as_str).filter(|s| s.starts_with("private.")) {
            assert!(
                matches!(matcher, "glob" | "pcre" | "list"),
                "{target:?} ({matcher}) gives {sls}: secrets go by minion id only"
            );
            listed.insert(sls.trim_start_matches("private.").replace('.', "/"));
        }
    }
    let files: BTreeSet<String> = private.iter().map(|(name, _)| name.clone()).collect();
    assert_eq!(listed, files, "the top file gives every private file to someone");
}

#[test]
fn secrets_follow_the_minion_id_not_its_grains() {
    let started = Instant::now();
    let private = private_files();
    let master = Master::start(&[
        "auto_accept: True",
        "pillar_roots:",
        "  base:",
        &format!("    - {}", repo_dir("pillar").display()),
    ]);
    check_tree(&json(&salt_run(&master, &["pillar.show_top", "--out", "json"])), &private);

    // Real minions: app1 claims the database and salt roles by a static grain, as any minion
    // can in its own config; db1-masterdb has the roles its name gives.
    let claimed = ["db", "masterdb", "salt"];
    let minions = start_minions(
        &master,
        &[("app1", SaltVersion::V3007, &claimed[..]), ("db1-masterdb", SaltVersion::V3007, &["db", "masterdb"][..])],
        |spec| spec,
    );
    let out = salt(&master, &["*", "pillar.items", "--out", "json", "-t", "60"]);
    let pillars = json_returns(&out);
    let (app, db) = (&pillars["app1"], &pillars["db1-masterdb"]);
    for (id, pillar) in [("app1", app), ("db1-masterdb", db)] {
        assert!(pillar.get("_errors").is_none(), "{id}: {pillar}\n{}", describe(&out));
        assert_eq!(secrets_in(pillar), expected(id, &private), "{id}: {pillar}");
    }
    // The claim reached the master: app1 gets the claimed roles' data (grains pick data and
    // states) ...
    assert_eq!(app["infra"]["current"]["roles"], serde_json::json!(claimed), "{app}");
    assert_eq!(app["mariadb"]["replication"]["user"], "replication", "{app}");
    assert!(app["rsync"]["shares"].is_object(), "{app}");
    // ... but none of their secrets: no replication password or certificate, no rsync
    // passwords, no database account but its own wiki's.
    assert!(app["mariadb"]["replication"].get("password").is_none(), "{app}");
    assert!(app["mariadb"].get("ssl").is_none(), "{app}");
    assert!(app["rsync"].get("passwords").is_none(), "{app}");
    assert_eq!(keys(&app["databases"]), BTreeSet::from(["wpwiki"]), "{app}");
    // Its own secrets are all there.
    assert_eq!(app["app"]["mediawiki"]["secret_key"], "CHANGE-ME-wiki-secret-key", "{app}");
    assert_eq!(app["databases"]["wpwiki"]["password"], "CHANGE-ME-wiki-db", "{app}");
    assert_eq!(app["sessions"]["redis"]["password"], "CHANGE-ME-sessions-redis", "{app}");
    // The real db VM keeps the database secrets.
    assert_eq!(db["mariadb"]["replication"]["password"], "CHANGE-ME-mariadb-replication", "{db}");
    assert_eq!(db["mariadb"]["ssl"]["key"], "CHANGE-ME-mariadb-ssl-private-key", "{db}");
    assert_eq!(keys(&db["databases"]), BTreeSet::from(["wpwiki", "wpblog", "tracker", "notes", "fxa"]), "{db}");
    drop(minions);

    // Every name of the site, and names that look like them, claiming every role and none:
    // the secrets depend on the name alone.
    let all_roles = format!("roles=[{}]", ALL_ROLES.join(","));
    let ids = IDS.iter().map(|id| id.to_string()).chain(IDS.iter().map(|id| format!("{id}{STAGING}")));
    for id in ids {
        let level = if id.ends_with(STAGING) { "level=staging" } else { "level=production" };
        for roles in [all_roles.as_str(), "roles=[]"] {
            let shown = json(&salt_run(&master, &["pillar.show_pillar", &id, roles, level, "--out", "json"]));
            assert!(shown.get("_errors").is_none(), "{id} {roles}: {shown}");
            let claimed = roles.trim_start_matches("roles=[").trim_end_matches(']');
            let claimed: Vec<&str> = claimed.split(',').filter(|r| !r.is_empty()).collect();
            assert_eq!(shown["infra"]["current"]["roles"], serde_json::json!(claimed), "{id}: the grains took");
            assert_eq!(secrets_in(&shown), expected(&id, &private), "{id} {roles}: {shown}");
        }
    }
    eprintln!("secrets follow the id: {:.1} s", started.elapsed().as_secs_f64());
}
