//! The site's own master configuration (`states/salt/files/master.jinja`, which the salt VM
//! installs as `/etc/salt/master`) read by halite's config loader, and the site's reaction
//! files (`reactor/`) rendered by halite's reactor for the events the site relies on: a key
//! accepted, rejected or deleted, and a VM's minion starting. No minion is needed: what the
//! reactions publish is checked as typed actions, the way the master would run them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use halite_config::MasterConfig;
use halite_pillar::jinja::{JinjaOptions, TemplateFiles};
use halite_reactor::{Action, ReactorMap, Renderer, SourceFile, Sources};
use halite_yaml::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The salt VM checks the repository out at /srv/halite; here it is this checkout.
struct Checkout;

impl Sources for Checkout {
    fn files(&self, path: &str) -> Vec<SourceFile> {
        let Some(rel) = path.strip_prefix("/srv/halite/") else { return vec![] };
        let file = repo().join(rel);
        let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()));
        vec![SourceFile { path: path.to_owned(), template_name: rel.to_owned(), text }]
    }
}

impl TemplateFiles for Checkout {
    fn read(&self, _rel: &str) -> Option<Result<String, String>> {
        None
    }
}

fn site_master_config() -> MasterConfig {
    let template = std::fs::read_to_string(repo().join("states/salt/files/master.jinja")).expect("master.jinja");
    assert_eq!(template.matches("{{").count(), 1, "the only template value is the interface");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("master"), template.replace("{{ interface }}", "10.10.10.5")).expect("write");
    let (config, warnings) = MasterConfig::load(Some(dir.path())).expect("the site's master config loads");
    assert!(warnings.is_empty(), "the site's master config warns: {warnings:?}");
    config
}

fn map(pairs: &[(&str, Value)]) -> Value {
    Value::Map(pairs.iter().map(|(k, v)| (Value::from(*k), v.clone())).collect())
}

/// (fun, tgt, tgt_type, arg) of each reaction the event sets off, in Salt's order.
fn reactions(config: &MasterConfig, tag: &str, data: Value) -> Vec<(String, String, String, String)> {
    let files = ReactorMap::new(config.reactor.clone()).reactors_for(tag);
    assert!(!files.is_empty(), "no reaction file for {tag}");
    let opts = map(&[("id", Value::from("salt_master"))]);
    let renderer = Renderer::new(&config.renderer, JinjaOptions::default(), opts, map(&[]), Arc::new(Checkout), None);
    let out = renderer.reactions(tag, &data, &files, &Checkout);
    assert!(out.errors.is_empty(), "{tag}: {:?}", out.errors);
    out.reactions
        .into_iter()
        .map(|r| match r.unwrap_or_else(|e| panic!("{tag}: {e}")).action {
            Action::Local(job) => {
                (job.fun, halite_yaml::py::text(&job.tgt), job.tgt_type, halite_yaml::py::repr(&Value::Array(job.arg)))
            }
            other => panic!("{tag}: the site reacts with local jobs only, not {other:?}"),
        })
        .collect()
}

fn row(fun: &str, tgt: &str, tgt_type: &str, arg: &str) -> (String, String, String, String) {
    (fun.into(), tgt.into(), tgt_type.into(), arg.into())
}

#[test]
fn the_site_master_config_loads_with_its_peer_rules_and_reactor() {
    let config = site_master_config();
    let rules = &config.peer;
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].0, ".*");
    // Read-only calls only: Salt matches with re.match, so the patterns are anchored.
    let allowed =
        |fun: &str| rules[0].1.iter().any(|p| halite_target::pyre::PyRegex::new(p).is_ok_and(|re| re.is_match(fun)));
    for fun in ["grains.get", "grains.items", "network.ip_addrs", "test.ping"] {
        assert!(allowed(fun), "{fun} is allowed");
    }
    for fun in ["grains.setval", "grains.delkey", "network.mod_hostname", "test.sleep", "cmd.run"] {
        assert!(!allowed(fun), "{fun} is refused");
    }
    assert_eq!(config.reactor.len(), 3);
    // halite-dns's dns.yaml (states/salt/files/dns.yaml.jinja) reads the same file.
    let book = std::path::PathBuf::from("/var/lib/halite/minion-addresses");
    assert_eq!(config.dns_address_book.as_ref(), Some(&book));
    let init_sls = std::fs::read_to_string(repo().join("states/salt/init.sls")).expect("init.sls");
    assert!(init_sls.contains(&format!("address_book = '{}'", book.display())), "states/salt writes another path");
}

#[test]
fn a_key_accepted_refreshes_the_mine_and_a_changed_or_removed_entry_rebuilds_hosts() {
    let config = site_master_config();
    let key = |act: &str, result: bool| {
        map(&[("act", Value::from(act)), ("id", Value::from("db2")), ("result", Value::Boolean(result))])
    };
    let hosts = row("state.apply", "*", "glob", "[{'__kwarg__': True, 'mods': 'hosts'}]");
    assert_eq!(
        reactions(&config, "salt/key", key("accept", true)),
        [row("mine.send", "*", "glob", "[{'__kwarg__': True, 'name': 'network.ip_addrs'}]")]
    );
    let changed = map(&[("id", Value::from("db2"))]);
    // The DNS zones follow the master's address book (dns_address_book): no reaction.
    assert_eq!(reactions(&config, "halite/mine/db2/changed", changed), std::slice::from_ref(&hosts));
    for act in ["reject", "delete"] {
        assert_eq!(reactions(&config, "salt/key", key(act, true)), std::slice::from_ref(&hosts), "{act}");
    }
    assert_eq!(reactions(&config, "salt/key", key("accept", false)), [], "a failed key change sets off nothing");
}

#[test]
fn a_starting_vm_refreshes_its_own_mine_entry_and_hosts() {
    let config = site_master_config();
    let data = map(&[("id", Value::from("app1.staging.wpdn")), ("data", Value::from("Minion app1 started"))]);
    assert_eq!(
        reactions(&config, "salt/minion/app1.staging.wpdn/start", data),
        [
            row("mine.update", "['app1.staging.wpdn']", "list", "[]"),
            row("state.apply", "['app1.staging.wpdn']", "list", "[{'__kwarg__': True, 'mods': 'hosts'}]"),
        ]
    );
}
