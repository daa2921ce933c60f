//! Compiles of small trees; the same shapes are compared with Salt's own compile in
//! `tests/differential.rs`.

use super::*;

pub(crate) fn settings(root: &std::path::Path) -> Settings {
    Settings::with_roots(vec![("base".into(), vec![root.to_path_buf()])])
}

fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

fn y(t: &str) -> Value {
    halite_yaml::load(t).unwrap()
}

fn compile(files: &[(&str, &str)], id: &str, grains: &str) -> Compiled {
    let dir = tree(files);
    let c = Compiler::new(settings(dir.path())).unwrap();
    let grains = y(grains);
    let empty = Value::Map(vec![]);
    c.compile(&Request { minion_id: id, grains: &grains, saltenv: None, pillarenv: None, pillar_override: &empty })
}

#[test]
fn top_includes_and_merges() {
    let files = [
        ("top.sls", "base:\n  '*': [common]\n  'roles:db':\n    - match: grain\n    - db\n"),
        ("common.sls", "include:\n  - users\n  - .tld\nsite: {name: webplatform, port: 80}\n"),
        ("tld.sls", "infra: {current: {tld: org}}\n"),
        ("users/init.sls", "site: {port: 8080, admins: [alice]}\nusers: {alice: 1000}\n"),
        ("db.sls", "{% set port = 5432 %}postgres:\n  port: {{ port }}\n  host: {{ grains['id'] }}\n"),
    ];
    let c = compile(&files, "db1", "roles: [db]");
    assert!(c.errors.is_empty(), "{:?} {:?}", c.errors, c.details);
    assert_eq!(
        c.pillar,
        y("site: {port: 80, admins: [alice], name: webplatform}\nusers: {alice: 1000}\ninfra: {current: {tld: org}}\npostgres: {port: 5432, host: db1}\n"),
        "the including sls wins over what it includes"
    );
    let c = compile(&files, "web1", "roles: [app]");
    assert!(c.pillar.as_map().unwrap().iter().all(|(k, _)| k.as_str() != Some("postgres")));
}

#[test]
fn errors_land_in_the_pillar() {
    let files = [
        ("top.sls", "base:\n  '*': [good, broken_yaml, broken_jinja, missing, listy]\n"),
        ("good.sls", "a: 1\n"),
        ("broken_yaml.sls", "a: [1\n"),
        ("broken_jinja.sls", "{% if %}\n"),
        ("listy.sls", "- 1\n"),
    ];
    let c = compile(&files, "m", "{}");
    assert_eq!(
        c.errors,
        [
            "Rendering SLS 'broken_yaml' failed. Please see master log for details.",
            "Rendering SLS 'broken_jinja' failed. Please see master log for details.",
            "Specified SLS 'missing' in environment 'base' is not available on the salt master",
            "SLS 'listy' does not render to a dictionary",
        ]
    );
    assert_eq!(get_key(&c.pillar, "a"), Some(&y("1")));
    assert!(c.details.iter().any(|d| d.contains("broken_yaml")), "{:?}", c.details);
}

#[test]
fn include_loops_end_and_keys_nest() {
    let files = [
        ("top.sls", "base:\n  '*': [a]\n"),
        ("a.sls", "include: [b]\nfrom_a: 1\n"),
        ("b.sls", "include: [a, {c: {key: 'deep:er', defaults: {v: 7}}}]\nfrom_b: 2\n"),
        ("c.sls", "value: {{ v }}\n"),
    ];
    let c = compile(&files, "m", "{}");
    assert!(c.errors.is_empty(), "{:?} {:?}", c.errors, c.details);
    assert_eq!(c.pillar, y("from_a: 1\ndeep: {er: {value: 7}}\nfrom_b: 2\n"));
}

#[test]
fn the_override_comes_first_and_wins() {
    let dir = tree(&[("top.sls", "base:\n  '*': [a]\n"), ("a.sls", "a: 1\no: from_sls\n")]);
    let c = Compiler::new(settings(dir.path())).unwrap();
    let grains = y("{}");
    let over = y("o: 1");
    let got =
        c.compile(&Request { minion_id: "m", grains: &grains, saltenv: None, pillarenv: None, pillar_override: &over });
    assert_eq!(got.pillar, y("o: 1\na: 1\n"));
}
