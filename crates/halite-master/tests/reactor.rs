//! The reactor end to end, with real salt-minion 3007 processes: reactions to `salt/key`
//! (halite's `salt-key -a`: an echo to every minion and the site's `mine.send`, and a `wheel.key.accept` reaction of the reactor itself), to
//! `minion_start` (a local and a runner reaction), to `salt/auth`, and a broken and a missing reaction file that are logged
//! while the master keeps serving.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{describe, json, json_returns, salt, salt_run, Master};
use halite_testkit::{Endpoints, Minion, MinionSpec, SaltVersion};

const TIMEOUT: Duration = Duration::from_secs(90);

/// The site's key reaction (mine.send of every minion's addresses) and an echo naming the key.
const KEY_SLS: &str = "{% if data['act'] == 'accept' %}\n\
ping_all:\n  local.test.echo:\n    - tgt: '*'\n    - arg:\n      - accepted {{ data['id'] }}\n\
send_addresses:\n  local.mine.send:\n    - tgt: '*'\n    - args:\n      - name: network.ip_addrs\n\
{% endif %}\n";

const START_SLS: &str = "mark_start:\n  local.grains.setval:\n    - tgt: {{ data['id'] }}\n    - arg:\n      \
                         - reactor_saw\n      - {{ tag }}\npresent:\n  runner.manage.present: []\n\
                         no_such: runner.nope.fun\n";

/// The classic auto-accept reactor: new-style `args`, a wheel function, Jinja on the event.
const AUTH_SLS: &str = "{% if data['act'] == 'pend' and data['id'].startswith('auto-') %}\n\
accept_auto:\n  wheel.key.accept:\n    - args:\n      - match: {{ data['id'] }}\n\
{% endif %}\n";

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

/// The jids the master logged for reaction `id`, in order.
fn reaction_jids(master: &Master, id: &str) -> Vec<String> {
    master
        .log()
        .lines()
        .filter(|l| l.contains("reaction published") && l.contains(&format!("reaction={id} ")))
        .filter_map(|l| l.split("jid=").nth(1))
        .filter_map(|rest| rest.split([' ', '}']).next())
        .map(str::to_owned)
        .collect()
}

fn wait_for<T>(what: &str, master: &Master, mut f: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(started.elapsed() < TIMEOUT, "{what} never happened\n{}", master.log());
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// `reactor_saw` of each minion, through a job of halite's `salt`.
fn reactor_saw(master: &Master, ids: &[&str]) -> bool {
    let out = salt(master, &["-L", &ids.join(","), "grains.get", "reactor_saw", "--out", "json", "-t", "5"]);
    let returns = json_returns(&out);
    ids.iter().all(|id| returns.get(*id) == Some(&serde_json::json!("minion_start")))
}

#[test]
fn reactions_run_for_key_start_and_auth_events_and_broken_files_are_logged() {
    let srv = tempfile::Builder::new().prefix("hr").tempdir_in("/tmp").expect("temp dir");
    let roots = srv.path().join("salt");
    write(&roots.join("reactor/key.sls"), KEY_SLS);
    write(&roots.join("reactor/start.sls"), START_SLS);
    write(&roots.join("reactor/broken.sls"), "{% if %}\nnot: [closed\n");
    let auth_sls = srv.path().join("reactor-fs/auth.sls");
    write(&auth_sls, AUTH_SLS);
    let autosign = srv.path().join("autosign.conf");
    write(&autosign, "early1\nearly2\n");
    let config = [
        "file_roots:".to_owned(),
        "  base:".to_owned(),
        format!("    - {}", roots.display()),
        format!("autosign_file: {}", autosign.display()),
        "reactor_worker_threads: 2".to_owned(),
        "reactor:".to_owned(),
        "  - 'salt/key':".to_owned(),
        "    - salt://reactor/key.sls".to_owned(),
        "  - 'minion_start':".to_owned(),
        "    - salt://reactor/start.sls".to_owned(),
        "    - salt://reactor/broken.sls".to_owned(),
        "    - salt://reactor/missing.sls".to_owned(),
        "  - 'salt/auth':".to_owned(),
        format!("    - {}", srv.path().join("reactor-fs/*.sls").display()),
    ];
    let master = Master::start_with(common::Setup { extra: config.to_vec(), ..common::Setup::default() });
    let endpoints =
        Endpoints { host: "127.0.0.1".into(), ret_port: master.ret_port, publish_port: master.publish_port };
    let start = |id: &str| Minion::start(MinionSpec::new(id, SaltVersion::V3007), &endpoints);

    // Autosigned minions: their start events set a grain through the minion_start reaction,
    // though two of that tag's three files fail.
    let mut minions = vec![start("early1"), start("early2")];
    for m in &minions {
        m.wait_authenticated(TIMEOUT).unwrap_or_else(|e| panic!("{e}\n{}", m.log()));
    }
    wait_for("the minion_start reaction on early1 and early2", &master, || {
        reactor_saw(&master, &["early1", "early2"]).then_some(())
    });
    let log = master.log();
    assert!(log.contains("Failed to render \"salt://reactor/broken.sls\" for tag minion_start: Jinja error"), "{log}");
    assert!(log.contains("Can not render SLS salt://reactor/missing.sls for tag minion_start"), "{log}");
    // Runner reactions run in the master; an unknown runner is an error naming the reaction.
    let log = master.wait_log_contains("runner reaction done", TIMEOUT);
    assert!(log.contains("fun=manage.present"), "{log}");
    assert!(
        log.contains("Reactor 'no_such' failed to execute runner 'nope.fun': 'nope.fun' is not available."),
        "{log}"
    );

    // salt-key -a on a pending minion: salt-key fires salt/key, the reactor publishes to
    // every accepted minion, and those connected return it.
    minions.push(start("late"));
    let pending = master.pki_dir().join("minions_pre/late");
    wait_for("late's key pending", &master, || pending.exists().then_some(()));
    let out = master.salt_key(&["-a", "late", "-y"]);
    assert!(out.status.success(), "{}", describe(&out));
    let jid = wait_for("the salt/key reaction", &master, || reaction_jids(&master, "ping_all").pop());
    master.wait_returns(&jid, &["early1", "early2"], TIMEOUT);
    let job = json(&salt_run(&master, &["jobs.list_job", &jid, "--out", "json"]));
    assert_eq!(job["Function"], "test.echo", "{job}");
    assert_eq!(job["Arguments"], serde_json::json!(["accepted late"]), "{job}");
    assert_eq!(job["Minions"], serde_json::json!(["early1", "early2", "late"]), "{job}");
    assert_eq!(job["Result"]["early1"]["return"], "accepted late", "{job}");
    // ...and runs mine.send on all: the connected minions' addresses land in the mine (the
    // minions have no mine_functions, so nothing else puts them there).
    let mined = wait_for("the key reaction's mine.send", &master, || {
        let out = salt_run(&master, &["mine.get", "*", "network.ip_addrs", "--out", "json"]);
        let got = json(&out);
        ["early1", "early2"].iter().all(|id| got[id].as_array().is_some_and(|a| !a.is_empty())).then_some(got)
    });
    println!("mine after the salt/key reaction: {mined}");
    // The accepted minion joins, and its own start reaction reaches it.
    minions[2].wait_authenticated(TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    wait_for("the minion_start reaction on late", &master, || reactor_saw(&master, &["late"]).then_some(()));

    // A pending `auto-` minion: the salt/auth reaction accepts it with wheel.key.accept, the
    // salt/key event that fires sets off the key reaction, and every minion returns that job.
    minions.push(start("auto-1"));
    minions[3].wait_authenticated(TIMEOUT).unwrap_or_else(|e| panic!("{e}\n{}", master.log()));
    let jid = wait_for("the key reaction to the reactor's own accept", &master, || {
        reaction_jids(&master, "ping_all").get(1).cloned()
    });
    master.wait_returns(&jid, &["early1", "early2", "late"], TIMEOUT);
    let looked_up = json(&salt_run(&master, &["jobs.lookup_jid", &jid, "--out", "json"]));
    assert_eq!(looked_up["late"], "accepted auto-1", "{looked_up}");
    wait_for("the minion_start reaction on auto-1", &master, || reactor_saw(&master, &["auto-1"]).then_some(()));

    // The master served throughout and still does.
    let out = salt(&master, &["*", "test.ping", "--out", "json", "-t", "10"]);
    assert_eq!(json_returns(&out).len(), 4, "{}", describe(&out));
    Minion::stop_all(&mut minions);
}
