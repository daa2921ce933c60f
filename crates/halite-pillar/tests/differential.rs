//! Differential test: a corpus of pillar trees compiled by halite and by Salt 3007.8's own
//! `salt.pillar.Pillar.compile_pillar` (the code `salt-run pillar.show_pillar` and the
//! master's `_pillar` run), from the same master config file, for the same minions. The
//! pillars must be equal as Salt sends them: same keys, same order, same values, same
//! `_errors`.

use std::path::Path;
use std::process::Command;

use halite_pillar::{Compiler, Request, Settings};
use halite_testkit::SaltVersion;
use halite_yaml::dump::{json, JsonStyle};
use halite_yaml::Value;

struct Case {
    name: &'static str,
    /// Extra master config lines.
    config: &'static str,
    files: &'static [(&'static str, &'static str)],
}

/// The minions every case compiles for: the site's VMs and their `roles` grain.
const MINIONS: &[(&str, &str)] = &[
    ("salt", "{roles: [salt], os: Debian, osrelease: '12', num_cpus: 2, ipv4: [10.0.0.1], level: staging}"),
    ("db1-masterdb", "{roles: [db, masterdb], os: Debian, osrelease: '12', num_cpus: 8, ipv4: [10.0.0.21]}"),
    ("app1", "{roles: [app], os: Ubuntu, osrelease: '22.04', num_cpus: 4, ipv4: [10.0.0.31], mem_total: 7982}"),
    // Between them, every role of the VM-roles document, so the site's whole pillar is compared.
    ("mail1-source.staging.wpdn", "{roles: [mail, source], level: staging, os: Debian, osrelease: '12', num_cpus: 2}"),
    ("sessions1-memcache-elastic", "{roles: [sessions, memcache, elastic], os: Debian, osrelease: '12', num_cpus: 2}"),
    ("accounts1-blog-project", "{roles: [accounts, blog, project], os: Debian, osrelease: '12', num_cpus: 2}"),
    (
        "notes1-bots-jobrunner",
        "{roles: [notes, bots, jobrunner], level: staging, os: Debian, osrelease: '12', num_cpus: 2}",
    ),
];

const CASES: &[Case] = &[
    Case {
        name: "yaml11",
        config: "",
        files: &[
            ("top.sls", "base:\n  '*':\n    - scalars\n"),
            (
                "scalars.sls",
                "#!yaml\nmode: 0644\nten: 010\neight: 08\nhex: 0x1f\nbin: 0b101\noct: 0o17\nthousand: 1_000\n\
                 sexa: 1:30\nyes_: yes\non_: On\noff_: off\nsci: 1e3\nsci2: 1.0e+3\ninf: .inf\nninf: -.inf\n\
                 date: 2001-12-14\nstamp: 2001-12-14 21:59:43.10 -5\nnull_: ~\nempty:\nquoted: '0644'\n\
                 base: &b {a: 1, b: 2}\nmerged:\n  <<: *b\n  b: 3\nomap: !!omap {x: 1, y: 2}\n\
                 float: 1.5\ntilde_str: '~'\nnegoct: -0644\nlist: [1, two, 3.0, null, true]\n",
            ),
        ],
    },
    Case {
        name: "jinja_idioms",
        config: "",
        files: &[
            ("top.sls", "base:\n  '*':\n    - site\n    - users\n    - filters\n"),
            (
                "site.sls",
                "{% set roles = grains.get('roles', []) %}\n\
                 {% set hosts = [] %}\n\
                 {% for r in roles %}{% do hosts.append(r ~ '.' ~ grains['id']) %}{% endfor %}\n\
                 {% set conf = {'port': 80} %}{% do conf.update({'workers': grains['num_cpus'] * 2}) %}\n\
                 site:\n  id: {{ grains['id'] }}\n  roles: {{ roles|yaml }}\n  roles_json: {{ roles|json }}\n\
                 \x20 hosts: {{ hosts }}\n  conf: {{ conf|yaml }}\n  first: {{ roles|first }}\n\
                 \x20 joined: {{ roles|join(',') }}\n  upper: {{ grains.os|upper }}\n\
                 \x20 is_db: {{ 'db' in roles }}\n  tld: {{ salt['pillar.get']('infra:current:tld', 'org') }}\n\
                 \x20 os_family: {{ salt['grains.get']('os_family', 'unknown') }}\n\
                 \x20 mem: {{ grains.get('mem_total', 0) }}\n  release: {{ grains['osrelease'] }}\n\
                 \x20 bool: {{ 'yes'|to_bool }}\n  none: {{ None }}\n  count: {{ roles|length }}\n\
                 {% if grains['os'] == 'Debian' %}\n  debian: true\n{% else %}\n  debian: false\n{% endif %}\n\
                 \x20 sls: {{ sls }}\n  slspath: '{{ slspath }}'\n  tpldir: {{ tpldir }}\n  saltenv: {{ saltenv }}\n",
            ),
            (
                "users/init.sls",
                "{% import_yaml 'users/defaults.yaml' as defaults %}\n\
                 {% from 'users/map.jinja' import shells with context %}\n\
                 {% load_yaml as extra %}\nadmins: [alice, bob]\n{% endload %}\n\
                 users:\n{% for name in extra.admins %}\n  {{ name }}:\n    shell: {{ shells[grains['os']] }}\n\
                 \x20   uid: {{ defaults.uid_base + loop.index }}\n{% endfor %}\n",
            ),
            ("users/defaults.yaml", "uid_base: {{ 1000 }}\n"),
            (
                "filters.sls",
                "{% import_json 'data.json' as data %}\n\
                 filters:\n  json_import: {{ data|json }}\n  tojson: {{ data.b|tojson }}\n\
                 \x20 block: {{ ({'k': [1, 2]}|yaml(False))|yaml_dquote }}\n\
                 \x20 unique: {{ [3, 1, 3, 2, 1]|unique|list }}\n\
                 \x20 replaced: {{ 'db1-masterdb'|regex_replace('[0-9]+', 'N') }}\n\
                 \x20 searched: {{ 'db1-masterdb'|regex_search('(db)([0-9])') }}\n\
                 \x20 bools: {{ ['yes', 'no', 1, 0, 'True', none]|map('to_bool')|list }}\n\
                 \x20 quoted: {{ 'a b'|quote }}\n  dquote: {{ 'x: y'|yaml_dquote }}\n\
                 \x20 squote: {{ \"it's\"|yaml_squote }}\n  encoded: {{ 12|yaml_encode }}\n\
                 \x20 sorted: {{ ['b', 'A', 'c']|sorted_ignorecase }}\n\
                 \x20 dictsort: {{ {'b': 1, 'a': 2}|dictsort }}\n\
                 \x20 sequence: {{ 'one'|sequence }}\n  traverse: {{ {'a': {'b': [5]}}|traverse('a:b:0') }}\n\
                 \x20 item: {{ salt['grains.item']('os', 'num_cpus') }}\n\
                 \x20 config: {{ salt['config.get']('state_top') }}\n\
                 \x20 merged: {{ salt['defaults.merge']({'a': {'x': 1}}, {'a': {'y': 2}}) }}\n\
                 {% set ns = namespace(total=0) %}{% for n in [1, 2, 3] %}{% set ns.total = ns.total + n %}{% endfor %}\n\
                 \x20 total: {{ ns.total }}\n  popped: {% set l = [1, 2, 3] %}{{ l.pop() }} {{ l }}\n\
                 \x20 default: {{ grains.get('nope')|default('dflt', true) }}\n\
                 \x20 fmt: {{ '%s-%d'|format('a', 3) }}\n  round: {{ 2.567|round(1) }}\n\
                 \x20 slice: {{ grains['roles'][:1] }}\n  keys: {{ {'z': 1, 'y': 2}.keys()|list }}\n",
            ),
            ("data.json", "{\"b\": [1, \"two\"], \"a\": {\"nested\": true}}"),
            ("users/map.jinja", "{% set shells = {'Debian': '/bin/bash', 'Ubuntu': '/bin/zsh'} %}\n"),
        ],
    },
    Case {
        name: "includes",
        config: "",
        files: &[
            ("top.sls", "base:\n  '*':\n    - app\n"),
            (
                "app/init.sls",
                "include:\n  - .db\n  - common\n  - svc.*\n  - extra:\n      defaults: {greeting: hi}\n      key: 'nested:deeper'\n\
                 app: {name: main, port: 80}\n",
            ),
            ("app/db.sls", "app: {port: 5432, db: true}\nrelative: app.db\n"),
            ("common.sls", "include: [app]\ncommon: {from: common}\napp: {name: common}\n"),
            ("svc/a.sls", "svcs: [a]\n"),
            ("svc/b.sls", "svcs: [b]\n"),
            ("extra.sls", "greeting: {{ greeting }}\n"),
        ],
    },
    Case {
        name: "targets",
        config: "nodegroups:\n  dbs: 'G@roles:db'\n",
        files: &[
            (
                "top.sls",
                "base:\n  '*':\n    - common\n  'roles:db':\n    - match: grain\n    - db\n\
                 \x20 'app*':\n    - app\n  'E@^db\\d':\n    - match: compound\n    - dbre\n\
                 \x20 'salt,app1':\n    - match: list\n    - listed\n  'G@os:Ubuntu and not app2':\n    - ubuntu\n\
                 \x20 dbs:\n    - match: nodegroup\n    - ng\n  '^s.*':\n    - match: pcre\n    - pcre\n\
                 \x20 'roles:d.*':\n    - match: grain_pcre\n    - gpcre\n  '10.0.0.0/28':\n    - match: ipcidr\n    - net\n\
                 \x20 'first*':\n    - order: -5\n    - first\n\
                 \x20 'maybe*':\n    - ignore_missing: True\n    - nothere\n  'ap*':\n    - last\n",
            ),
            ("common.sls", "seen: [common]\n"),
            ("db.sls", "seen: [db]\n"),
            ("app.sls", "seen: [app]\n"),
            ("dbre.sls", "seen: [dbre]\n"),
            ("listed.sls", "seen: [listed]\n"),
            ("ubuntu.sls", "seen: [ubuntu]\n"),
            ("ng.sls", "seen: [ng]\n"),
            ("pcre.sls", "seen: [pcre]\n"),
            ("gpcre.sls", "seen: [gpcre]\n"),
            ("net.sls", "seen: [net]\n"),
            ("last.sls", "last: true\n"),
        ],
    },
    Case {
        name: "strategy_recurse_lists",
        config: "pillar_merge_lists: True\n",
        files: MERGE_TREE,
    },
    Case { name: "strategy_smart", config: "", files: MERGE_TREE },
    Case { name: "strategy_overwrite", config: "pillar_source_merging_strategy: overwrite\n", files: MERGE_TREE },
    Case { name: "strategy_aggregate", config: "pillar_source_merging_strategy: aggregate\n", files: MERGE_TREE },
    Case { name: "strategy_none", config: "pillar_source_merging_strategy: none\n", files: MERGE_TREE },
    Case { name: "strategy_list", config: "pillar_source_merging_strategy: list\n", files: MERGE_TREE },
    Case { name: "includes_override", config: "pillar_includes_override_sls: True\n", files: MERGE_TREE },
    Case {
        name: "errors",
        config: "",
        files: &[
            (
                "top.sls",
                "base:\n  '*':\n    - good\n    - badjinja\n    - badyaml\n    - nosuch\n    - badinclude\n    - listy\n\
                 \x20   - dupkey\n    - loop_a\n    - undefined_var\n    - unknown_tag\n    - empty\n    - omap_seq\n",
            ),
            ("good.sls", "good: 1\n"),
            ("badjinja.sls", "bad: {% if %}\n"),
            ("badyaml.sls", "bad: [1, 2\n"),
            ("badinclude.sls", "include: [nowhere]\nafter_bad_include: 1\n"),
            ("listy.sls", "- a\n- b\n"),
            ("dupkey.sls", "a: 1\na: 2\n"),
            ("loop_a.sls", "include: [loop_b]\nloop_a: 1\n"),
            ("loop_b.sls", "include: [loop_a]\nloop_b: 1\n"),
            ("undefined_var.sls", "x: {{ nope }}\n"),
            ("unknown_tag.sls", "x: !!python/object:os.system ls\n"),
            ("omap_seq.sls", "x: !!omap [{a: 1}]\n"),
            ("empty.sls", "\n  \n"),
        ],
    },
    Case { name: SITE, config: "", files: &[] },
    Case {
        name: "top_missing_sls_and_env",
        config: "",
        files: &[
            ("top.sls", "base:\n  '*':\n    - present\n    - absent\ndev:\n  '*':\n    - devonly\n"),
            ("present.sls", "present: true\n"),
        ],
    },
];

/// The case that compiles the repository's own `pillar/` (the site's).
const SITE: &str = "site";

const MERGE_TREE: &[(&str, &str)] = &[
    ("top.sls", "base:\n  '*':\n    - one\n    - two\n    - three\n"),
    ("one.sls", "users: {alice: {uid: 1000, groups: [adm]}, bob: {uid: 1001}}\npkgs: [vim, git]\nonly_one: 1\n"),
    (
        "two.sls",
        "include: [inc]\nusers: {alice: {groups: [sudo, adm]}, carol: {uid: 1002}}\npkgs: [git, curl]\nfrom_two: 2\n",
    ),
    ("inc.sls", "users: {alice: {shell: /bin/sh}}\nfrom_inc: 3\n"),
    ("three.sls", "pkgs: [htop]\nusers: {dave: {uid: 1003}}\n"),
];

const ORACLE: &str = r#"
import json, sys
import salt.config, salt.pillar
jobs = json.load(open(sys.argv[1]))
out = {}
for job in jobs:
    opts = salt.config.master_config(job["config"])
    res = {}
    for mid, grains in job["minions"]:
        grains = dict(grains)
        grains["id"] = mid
        try:
            data = salt.pillar.get_pillar(opts, grains, mid, None).compile_pillar()
        except Exception as exc:
            data = {"__exception__": repr(exc)}
        res[mid] = json.dumps(data, default=repr, ensure_ascii=False)
    out[job["name"]] = res
print(json.dumps(out))
"#;

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("the repository's pillar/") {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::create_dir_all(to).unwrap();
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Each minion's pillar as JSON text, with halite's failure details (for messages).
fn halite_json(config_dir: &Path) -> Vec<(String, String, Vec<String>)> {
    let (config, _warnings) = halite_config::MasterConfig::load(Some(config_dir)).expect("master config");
    let compiler = Compiler::new(Settings::from_config(&config).expect("pillar settings")).expect("compiler");
    let style = JsonStyle { indent: None, sort_keys: false, ensure_ascii: false };
    MINIONS
        .iter()
        .map(|(id, grains)| {
            let grains = halite_yaml::load(grains).unwrap();
            let empty = Value::Map(Vec::new());
            let req =
                Request { minion_id: id, grains: &grains, saltenv: None, pillarenv: None, pillar_override: &empty };
            let compiled = compiler.compile(&req);
            (id.to_string(), json(&compiled.pillar, &style), compiled.details)
        })
        .collect()
}

#[test]
fn pillar_compiles_like_salt_3007() {
    let python = halite_testkit::venv(SaltVersion::V3007).join("bin/python");
    assert!(python.is_file(), "{} is missing: run tests/install-minions.sh", python.display());
    let dir = tempfile::Builder::new().prefix("hpd").tempdir_in("/tmp").unwrap();
    let mut jobs = Vec::new();
    for case in CASES {
        let root = dir.path().join(case.name);
        for (path, text) in case.files {
            write(&root.join("pillar").join(path), text);
        }
        if case.name == SITE {
            copy_tree(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pillar"), &root.join("pillar"));
        }
        let config = format!(
            "pillar_roots:\n  base:\n    - {root}/pillar\n  dev:\n    - {root}/dev\ncachedir: {root}/cache\npki_dir: {root}/pki\n\
             sock_dir: {root}/run\nlog_file: {root}/master.log\n{}",
            case.config,
            root = root.display()
        );
        write(&root.join("etc/master"), &config);
        let minions: Vec<serde_json::Value> = MINIONS
            .iter()
            .map(|(id, grains)| {
                let grains = halite_yaml::load(grains).unwrap();
                let text = json(&grains, &JsonStyle::default());
                serde_json::json!([id, serde_json::from_str::<serde_json::Value>(&text).unwrap()])
            })
            .collect();
        jobs.push(serde_json::json!({"name": case.name, "config": root.join("etc/master"), "minions": minions}));
    }
    let jobs_file = dir.path().join("jobs.json");
    std::fs::write(&jobs_file, serde_json::to_string(&jobs).unwrap()).unwrap();
    let out = Command::new(&python).arg("-c").arg(ORACLE).arg(&jobs_file).output().expect("run Salt's pillar");
    assert!(out.status.success(), "Salt's compile failed: {}", String::from_utf8_lossy(&out.stderr));
    let salt: serde_json::Value = serde_json::from_slice(&out.stdout).expect("oracle JSON");

    let mut failures = Vec::new();
    for case in CASES {
        for (id, ours, details) in halite_json(&dir.path().join(case.name).join("etc")) {
            let theirs = salt[case.name][&id].as_str().unwrap_or_default();
            // The corpus must exercise rendering, not just agree on failing.
            let expect_errors = matches!(case.name, "errors" | "top_missing_sls_and_env");
            assert_eq!(ours.contains("\"_errors\""), expect_errors, "{} / {id}: {ours}\n{details:?}", case.name);
            if std::env::var_os("HALITE_DIFF_SHOW").is_some() {
                eprintln!("{} / {id}: {ours}", case.name);
            }
            if ours != theirs {
                failures.push(format!("{} / {id}:\n  salt:   {theirs}\n  halite: {ours}", case.name));
            }
        }
    }
    assert!(failures.is_empty(), "{} differences:\n{}", failures.len(), failures.join("\n"));
}
