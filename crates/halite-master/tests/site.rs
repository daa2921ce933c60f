//! The site this repository ships (`states/`, `pillar/`): one real salt-minion 3007 per
//! role of the VM-roles document, at both levels, named the way the site named its VMs so
//! that `_grains/roles.py` derives the `roles` and `level` grains from the id. Each renders
//! its pillar and highstate through halite and dry-runs it: no render errors, a state from
//! every sls of its roles, no failed state, every `salt://` source served. The salt VM's DNS files (dns.yaml and the zones),
//! rendered by Salt's own Jinja from the context its highstate gives them, are served by
//! halite-dns with the VMs of an address book; its rsyncd.conf and secrets file, rendered
//! the same way, are served by halite-rsyncd to the stock rsync client.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{describe, json_returns, salt, start_minions, Dns, Master};
use halite_testkit::{venv, wait_until, SaltVersion};
use serde_json::Value;

/// One VM per role (`db1-masterdb` carries both database roles, as the document asks of
/// exactly one VM) and a VM with two roles, then the same VMs in the staging cluster.
const VMS: &[&str] = &[
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
    // Some VMs fill more than one role; these two share a daemon (memcached).
    "sessions2-memcache",
];
const STAGING: &str = ".staging.wpdn";

/// The execution modules the site's states and the minion's own work call (by file name:
/// `aptpkg` is `pkg`, `cmdmod` is `cmd`); the minions load no others, which makes a dry run
/// a third of the CPU (see `MinionSpec::loading_only`). Chosen by comparing every role's
/// dry run (`salt-call --local state.apply test=True`) with all modules and with these,
/// state by state: the same results and comments. Some states skip a check when its module
/// is missing instead of failing, so the test also checks that a missing source still fails.
const SITE_MODULES: &[&str] = &[
    "aptpkg",
    "cmdmod",
    "config",
    "cp",
    "data",
    "debian_service",
    "defaults",
    "disk",
    "dpkg_lowpkg",
    "environ",
    "event",
    "file",
    "grains",
    "groupadd",
    "jinja",
    "linux_shadow",
    "linux_sysctl",
    "match",
    "mine",
    "mount",
    "network",
    "pillar",
    "pkg_resource",
    "publish",
    "saltutil",
    "slsutil",
    "ssh",
    "state",
    "status",
    "sysmod",
    "systemd_service",
    "test",
    "useradd",
];

/// The roles and level the site's grain module must derive from a VM's name.
fn expected_grains(id: &str) -> (Vec<String>, &'static str) {
    let (host, level) = match id.strip_suffix(STAGING) {
        Some(host) => (host, "staging"),
        None => (id, "production"),
    };
    let roles = host.split('-').map(|part| part.trim_end_matches(|c: char| c.is_ascii_digit()).to_owned()).collect();
    (roles, level)
}

fn repo_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(name)
}

/// Every `salt://` URL anywhere in a rendered highstate.
fn salt_urls(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::String(s) if s.starts_with("salt://") => found.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| salt_urls(v, found)),
        Value::Object(map) => map.values().for_each(|v| salt_urls(v, found)),
        _ => {}
    }
}

fn returns(master: &Master, args: &[&str]) -> BTreeMap<String, Value> {
    let out = salt(master, args);
    let got = json_returns(&out);
    assert!(!got.is_empty(), "{args:?}: {}", describe(&out));
    got
}

#[test]
fn every_role_renders_and_dry_runs_at_both_levels() {
    // The real secrets are mounted as a pillar root listed before the repository's; its
    // files shadow the placeholders of `pillar/private/`.
    let mounted = tempfile::Builder::new().prefix("hsp").tempdir_in("/tmp").expect("temp dir");
    std::fs::create_dir_all(mounted.path().join("private")).expect("mkdir");
    std::fs::write(mounted.path().join("private/monit.sls"), "monit:\n  httpd:\n    password: mounted-secret\n")
        .expect("write the mounted secret");

    let states = repo_dir("states");
    let master = Master::start(&[
        "auto_accept: True",
        "file_roots:",
        "  base:",
        &format!("    - {}", states.display()),
        "pillar_roots:",
        "  base:",
        &format!("    - {}", mounted.path().display()),
        &format!("    - {}", repo_dir("pillar").display()),
    ]);
    let ids: Vec<String> =
        VMS.iter().map(|vm| vm.to_string()).chain(VMS.iter().map(|vm| format!("{vm}{STAGING}"))).collect();
    let specs: Vec<(&str, SaltVersion, &[&str])> =
        ids.iter().map(|id| (id.as_str(), SaltVersion::V3007, &[][..])).collect();
    let minions = start_minions(&master, &specs, |spec| {
        spec.with_derived_roles().without_package_refresh().loading_only(SITE_MODULES)
    });

    // The grain module comes from the file server; once synced, the names give the roles.
    let synced = returns(&master, &["*", "saltutil.sync_grains", "--out", "json", "-t", "120"]);
    let grains = returns(&master, &["*", "grains.item", "roles", "level", "--out", "json", "-t", "60"]);
    for id in &ids {
        assert_eq!(synced[id], serde_json::json!(["grains.roles"]), "{id}");
        let (roles, level) = expected_grains(id);
        assert_eq!(grains[id]["roles"], serde_json::json!(roles), "{id}: {}", grains[id]);
        assert_eq!(grains[id]["level"], level, "{id}: {}", grains[id]);
    }

    // Pillar: rendered without errors, for the VM's own level, secrets from the mount.
    let pillars = returns(&master, &["*", "pillar.items", "--out", "json", "-t", "120"]);
    for id in &ids {
        let pillar = &pillars[id];
        let (_, level) = expected_grains(id);
        assert!(pillar.get("_errors").is_none(), "{id}: {pillar}");
        assert_eq!(pillar["infra"]["current"]["level"], level, "{id}: {pillar}");
        assert_eq!(pillar["monit"]["httpd"]["password"], "mounted-secret", "{id}");
    }
    let tlds: Vec<&Value> =
        ["salt", "salt.staging.wpdn"].iter().map(|id| &pillars[*id]["infra"]["current"]["tld"]).collect();
    assert_eq!(tlds, ["webplatform.org", "webplatformstaging.org"]);
    // A role's secrets reach the VMs that use them only: the session stores' password
    // reaches the sessions VM and its clients (the wiki), not the blog.
    for (id, sees) in [("sessions1", true), ("app1", true), ("blog1", false)] {
        assert_eq!(pillars[id]["sessions"]["redis"].get("password").is_some(), sees, "{id}: {}", pillars[id]);
    }

    // The salt VMs' highstates, whose file states' contexts give their daemons' configs.
    let salt_vms = ["salt", "salt.staging.wpdn"];
    let highstates =
        returns(&master, &["-L", &salt_vms.join(","), "state.show_highstate", "--out", "json", "-t", "300"]);
    for id in salt_vms {
        let mut urls = Vec::new();
        salt_urls(&highstates[id], &mut urls);
        assert!(!urls.is_empty(), "{id}: no salt:// source in {}", highstates[id]);
        for url in urls {
            let path = url.trim_start_matches("salt://").split('?').next().unwrap_or_default();
            assert!(states.join(path).is_file(), "{id}: {url} is not in states/");
        }
    }

    for id in salt_vms {
        the_dns_the_states_write_serves_the_vms(id, &highstates[id]);
    }
    the_rsync_daemon_the_states_write_serves_the_shares(&highstates["salt"]);
    the_jumpbox_config_the_states_write_loads(&highstates["salt"]);

    // The dry run: each VM's highstate renders with a state from each of its roles' sls
    // and the common ones, and every state checks out (changes pending are fine: nothing is
    // installed), a file state's salt:// source included: one not served fails ("Source
    // file ... not found").
    let dry = salt(&master, &["*", "state.apply", "test=True", "--out", "json", "-t", "600"]);
    let dry_runs = json_returns(&dry);
    let mut failed = Vec::new();
    for id in &ids {
        let Some(results) = dry_runs.get(id).and_then(Value::as_object) else {
            failed.push(format!("{id}: render errors: {}", dry_runs.get(id).cloned().unwrap_or_default()));
            continue;
        };
        let sls: Vec<&str> = results.values().filter_map(|result| result["__sls__"].as_str()).collect();
        let (roles, _) = expected_grains(id);
        for wanted in roles.iter().map(String::as_str).chain(["resolver", "hosts", "monit", "users"]) {
            if !sls.iter().any(|s| *s == wanted || s.starts_with(&format!("{wanted}."))) {
                failed.push(format!("{id}: no state from sls {wanted}; have {sls:?}"));
            }
        }
        for (state, result) in results {
            if result["result"] == false {
                failed.push(format!("{id}: {state}: {}", result["comment"]));
            }
        }
    }
    assert!(failed.is_empty(), "{} failed:\n{}\n{}", failed.len(), failed.join("\n"), describe(&dry));

    // With only SITE_MODULES loaded, a dry run still checks a file state's source (Salt's
    // file.managed skips that check when file.check_managed_changes is not loaded).
    let guard = ["file.managed", "name=/tmp/halite-site-guard", "source=salt://no/such/file", "test=True"];
    let missing = returns(&master, &[&["salt", "state.single"][..], &guard, &["--out", "json", "-t", "60"]].concat());
    let results: Vec<&Value> = missing["salt"].as_object().map(|r| r.values().collect()).unwrap_or_default();
    assert!(
        results.len() == 1
            && results[0]["result"] == false
            && results[0]["comment"].as_str().is_some_and(|c| c.contains("not found")),
        "a missing salt:// source passed the dry run: {}",
        missing["salt"]
    );
    drop(minions);
}

/// Renders a template of `states/` as a minion would for `file.managed ... template: jinja`:
/// with Salt 3007's own Jinja environment (its filters, `yaml` among them) and `context`.
fn render_with_salt(source: &str, context: &Value, dir: &Path) -> String {
    const RENDER: &str = "import json, sys\n\
        import salt.config, salt.utils.templates as templates\n\
        opts = salt.config.minion_config(None)\n\
        opts['file_client'] = 'local'\n\
        context = json.load(open(sys.argv[2]))\n\
        context.update({'opts': opts, 'saltenv': 'base', 'grains': {}, 'pillar': {}, 'salt': {}})\n\
        sys.stdout.write(templates.render_jinja_tmpl(open(sys.argv[1]).read(), context))\n";
    let path = source.strip_prefix("salt://").unwrap_or_else(|| panic!("{source} is not a salt:// source"));
    let context_file = dir.join("context.json");
    std::fs::write(&context_file, context.to_string()).expect("write the context");
    let out = std::process::Command::new(venv(SaltVersion::V3007).join("bin/python"))
        .args(["-c", RENDER])
        .arg(repo_dir("states").join(path))
        .arg(&context_file)
        .output()
        .expect("run Salt's python");
    assert!(out.status.success(), "rendering {source}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// The `source` and `context` of a `file.managed` state of a highstate.
fn managed(state: &Value) -> (&str, &Value) {
    let args = state["file"].as_array().unwrap_or_else(|| panic!("not a file state: {state}"));
    let arg = |name: &str| args.iter().find_map(|a| a.get(name)).unwrap_or_else(|| panic!("no {name}: {state}"));
    (arg("source").as_str().expect("a source"), arg("context"))
}

/// The salt VM `id`'s DNS, from what its states install: `dns.yaml` and every zone file
/// rendered through Salt, moved to a directory of the test's and a loopback port. halite-dns
/// loads them (`--check`), then serves the role entry points from the zone file and a VM of
/// the address book the master would write (A, and PTR in the reverse zone of the internal
/// network).
fn the_dns_the_states_write_serves_the_vms(id: &str, highstate: &Value) {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("dns")).expect("mkdir");
    let states = highstate.as_object().expect("a highstate");
    let (source, context) = managed(&states["/etc/halite/dns.yaml"]);
    let mut config = render_with_salt(source, context, dir.path());
    let zones: Vec<&str> = context["zones"].as_array().expect("zones").iter().filter_map(Value::as_str).collect();
    let reverse_zone = context["reverse_zone"].as_str().expect("the reverse zone");
    let network = context["internal_cidr"].as_str().expect("the internal network");
    let book_path = context["address_book"].as_str().expect("the address book");
    for zone in zones.iter().chain([&reverse_zone]) {
        let name = format!("/etc/halite/dns/{zone}.zone");
        let state = states.get(&name).unwrap_or_else(|| panic!("{id}: no state writes {name}"));
        let (source, context) = managed(state);
        let text = render_with_salt(source, context, dir.path());
        std::fs::write(dir.path().join(format!("dns/{zone}.zone")), text).expect("write the zone");
    }

    let port = common::free_port();
    let listen = config.lines().skip_while(|l| *l != "listen:").nth(1).expect("a listen address").to_owned();
    assert!(listen.ends_with(":53"), "{id}: {listen}");
    config = config
        .replace(&listen, &format!("  - 127.0.0.1:{port}"))
        .replace("/etc/halite/dns/", &format!("{}/dns/", dir.path().display()))
        .replace(book_path, &dir.path().join("book").display().to_string());
    let config_path = dir.path().join("dns.yaml");
    std::fs::write(&config_path, &config).expect("write dns.yaml");
    let check = std::process::Command::new(common::workspace_bin("halite-dns"))
        .args(["--check", "-c"])
        .arg(&config_path)
        .output()
        .expect("halite-dns --check");
    assert!(check.status.success(), "{id}: {config}\n{}", String::from_utf8_lossy(&check.stderr));

    // A VM named as the site names them at this level (db2, db2.staging.wpdn), on the
    // internal network, and one address outside it, which is left out.
    let prefix = network.split('/').next().and_then(|n| n.rsplit_once('.')).expect("an IPv4 network").0;
    let vm = format!("db2{}", id.strip_prefix("salt").expect("a salt VM"));
    std::fs::write(dir.path().join("book"), format!("{vm} {prefix}.31 192.0.2.31\n")).expect("write the book");
    let dns = Dns::spawn(&config_path, port, &dir.path().join("dns.log"));
    let zone = zones[0];
    let log = || std::fs::read_to_string(dir.path().join("dns.log")).unwrap_or_default();
    let served = || dns.dig(&format!("db2.{zone}"), "A") == format!("{prefix}.31");
    assert!(wait_until(std::time::Duration::from_secs(10), served), "{id}: db2 is not served\n{}", log());
    let last = |address: &str| address.rsplit('.').next().unwrap().to_owned();
    assert_eq!(dns.dig(&format!("{}.{reverse_zone}", last(&format!("{prefix}.31"))), "PTR"), format!("db2.{zone}."));
    let (_, zone_context) = managed(&states[&format!("/etc/halite/dns/{zone}.zone")]);
    let masterdb = zone_context["records"]["masterdb"].as_str().expect("the masterdb entry point");
    assert_eq!(dns.dig(&format!("masterdb.{zone}"), "A"), masterdb, "{id}");
    assert_eq!(dns.dig(&format!("salt.{zone}"), "NS"), "", "{id}: salt is an address, not a delegation");
    assert!(dns.dig(reverse_zone, "SOA").starts_with(&format!("salt.{zone}. ")), "{id}");
}

/// The salt VM's rsync shares, from what its states install: `/etc/halite/rsyncd.conf`
/// and the secrets file rendered through Salt, moved to a directory of the test's and
/// loopback. With the stock client and the pillar's passwords, a VM pulls `code` as
/// `deploy` and pushes then pulls back `backups` as `backup`; `code` refuses a push and a
/// wrong password is refused.
fn the_rsync_daemon_the_states_write_serves_the_shares(highstate: &Value) {
    let installed = std::process::Command::new("rsync").arg("--version").output().is_ok_and(|o| o.status.success());
    if !installed {
        eprintln!("rsync is not installed: the shares are not served (tests/install-rsync.sh installs it)");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let states = highstate.as_object().expect("a highstate");
    let (source, context) = managed(&states["/etc/halite/rsyncd.conf"]);
    let mut config = render_with_salt(source, context, dir.path());
    let secrets_path = context["secrets_file"].as_str().expect("the secrets file");
    let (secrets_source, secrets_context) = managed(&states[secrets_path]);
    let secrets = render_with_salt(secrets_source, secrets_context, dir.path());
    let password =
        |user: &str| secrets_context["passwords"][user].as_str().unwrap_or_else(|| panic!("no {user}")).to_owned();
    let local_secrets = dir.path().join("rsyncd.secrets");
    std::fs::write(&local_secrets, secrets).expect("write the secrets");
    std::fs::set_permissions(&local_secrets, std::os::unix::fs::PermissionsExt::from_mode(0o600)).expect("chmod");
    // The shares' trees and the daemon's files go to the test's directory; the internal
    // network's address and rule to loopback.
    let address = context["address"].as_str().expect("an address");
    let allow = context["allow"].as_str().expect("a hosts allow");
    config = config
        .replace(&format!("address = {address}"), "address = 127.0.0.1")
        .replace(&format!("hosts allow = {allow}"), "hosts allow = 127.0.0.1")
        .replace(secrets_path, &local_secrets.display().to_string());
    for (name, share) in context["shares"].as_object().expect("shares") {
        let path = share["path"].as_str().expect("a share path");
        let local = dir.path().join(name);
        std::fs::create_dir_all(&local).expect("mkdir share");
        config = config.replace(&format!("path = {path}"), &format!("path = {}", local.display()));
    }
    config.insert_str(0, &format!("lock file = {}/rsyncd.lock\n", dir.path().display()));
    // As root each connection runs as its share's uid: the writable share is its own.
    let backups = dir.path().join("backups");
    let uid = |name: &str| {
        let out = std::process::Command::new("id").args(["-u", name]).output().expect("id");
        String::from_utf8_lossy(&out.stdout).trim().parse::<u32>().ok()
    };
    let backup_user = context["shares"]["backups"]["uid"].as_str().expect("the backups uid");
    if let Some(u) = uid(backup_user) {
        let _ = std::os::unix::fs::chown(&backups, Some(u), None);
    }
    std::fs::write(dir.path().join("code/deploy.txt"), "deployed\n").expect("seed code");
    let config_path = dir.path().join("rsyncd.conf");
    std::fs::write(&config_path, &config).expect("write rsyncd.conf");
    let port = common::free_port();
    let log = std::fs::File::create(dir.path().join("rsyncd.log")).expect("log");
    let mut daemon = std::process::Command::new(common::workspace_bin("halite-rsyncd"))
        .arg("--config")
        .arg(&config_path)
        .args(["--port", &port.to_string()])
        .stderr(log)
        .spawn()
        .expect("start halite-rsyncd");
    let listening = || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
    assert!(wait_until(std::time::Duration::from_secs(10), listening), "halite-rsyncd did not listen:\n{config}");
    let client = |user: &str, password: &str, args: &[String]| {
        std::process::Command::new("rsync")
            .args(args)
            .env("RSYNC_PASSWORD", password)
            .env("USER", user)
            .output()
            .expect("run rsync")
    };
    let url = |user: &str, share: &str| format!("rsync://{user}@127.0.0.1:{port}/{share}/");
    let text = |o: &std::process::Output| {
        format!("{:?}\n{}{}", o.status.code(), String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
    };
    let pulled = dir.path().join("pulled");
    let out =
        client("deploy", &password("deploy"), &["-a".into(), url("deploy", "code"), pulled.display().to_string()]);
    let daemon_log = || std::fs::read_to_string(dir.path().join("rsyncd.log")).unwrap_or_default();
    assert!(out.status.success(), "pull code: {}\n{config}\n{}", text(&out), daemon_log());
    assert_eq!(std::fs::read_to_string(pulled.join("deploy.txt")).expect("pulled"), "deployed\n");
    let vm = dir.path().join("vm-backup");
    std::fs::create_dir_all(vm.join("etc")).expect("mkdir");
    std::fs::write(vm.join("etc/hosts"), "127.0.0.1 localhost\n").expect("seed backup");
    let backup = password("backup");
    let out = client("backup", &backup, &["-a".into(), format!("{}/", vm.display()), url("backup", "backups")]);
    assert!(out.status.success(), "push backups: {}\n{}", text(&out), daemon_log());
    let restored = dir.path().join("restored");
    let out = client("backup", &backup, &["-a".into(), url("backup", "backups"), restored.display().to_string()]);
    assert!(out.status.success(), "pull backups: {}", text(&out));
    assert_eq!(std::fs::read_to_string(restored.join("etc/hosts")).expect("restored"), "127.0.0.1 localhost\n");
    let out =
        client("deploy", &password("deploy"), &["-a".into(), format!("{}/", vm.display()), url("deploy", "code")]);
    assert!(!out.status.success() && text(&out).contains("read only"), "push to code: {}", text(&out));
    let out = client("backup", "wrong", &["-a".into(), url("backup", "backups"), restored.display().to_string()]);
    assert_eq!(out.status.code(), Some(5), "a wrong password: {}", text(&out));
    let _ = daemon.kill();
    let _ = daemon.wait();
}

/// The salt VM's jump box, from what its states install: `/etc/halite/jumpbox.yaml`
/// rendered through Salt loads in halite-jumpbox (`-t`) without a warning once its host key
/// is a file of the test's, and the banner tells the jump box's port.
fn the_jumpbox_config_the_states_write_loads(highstate: &Value) {
    let dir = tempfile::tempdir().expect("temp dir");
    let states = highstate.as_object().expect("a highstate");
    let (source, context) = managed(&states["/etc/ssh/banner"]);
    let banner = render_with_salt(source, context, dir.path());
    assert!(banner.contains("ProxyJump salt.webplatform.org:2222"), "{banner}");
    let banner_path = dir.path().join("banner");
    std::fs::write(&banner_path, &banner).expect("write the banner");

    let (source, context) = managed(&states["/etc/halite/jumpbox.yaml"]);
    let config = render_with_salt(source, context, dir.path());
    let key = dir.path().join("host_key");
    let config = config
        .replace("/etc/ssh/ssh_host_ed25519_key", &key.display().to_string())
        .replace("  - /etc/ssh/ssh_host_rsa_key\n", "")
        .replace("banner: /etc/ssh/banner", &format!("banner: {}", banner_path.display()));
    let config_path = dir.path().join("jumpbox.yaml");
    std::fs::write(&config_path, &config).expect("write jumpbox.yaml");
    let out = std::process::Command::new(common::workspace_bin("halite-jumpbox"))
        .arg("-t")
        .arg("-c")
        .arg(&config_path)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run halite-jumpbox -t");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "halite-jumpbox -t: {stderr}\n{config}");
    assert!(!stderr.contains("WARN"), "warnings for the site's jumpbox.yaml: {stderr}\n{config}");
    assert!(config.contains("vms: /var/lib/halite/roster.json"), "{config}");
}
