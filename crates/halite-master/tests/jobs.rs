//! Jobs end to end: halite's `salt` CLI → the local channel → halite-master → real
//! salt-minion 3006, 3007 and 3008 processes with the site's roles as grains → returns on the
//! event bus → the CLI's output and exit code.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{describe, json, json_returns, salt, salt_run, text, Master};
use halite_testkit::{Endpoints, Minion, MinionSpec, SaltVersion};

const AUTH_TIMEOUT: Duration = Duration::from_secs(90);

/// The site's VMs: hostnames as ids, roles as grains, the three minion versions mixed.
const SITE: &[(&str, SaltVersion, &[&str])] = &[
    ("salt", SaltVersion::V3006, &["salt"]),
    ("db1-masterdb", SaltVersion::V3007, &["db", "masterdb"]),
    ("db2", SaltVersion::V3008, &["db"]),
    ("sessions1", SaltVersion::V3006, &["sessions"]),
    ("mail", SaltVersion::V3007, &["mail"]),
    ("app1", SaltVersion::V3008, &["app"]),
];

fn ids(returns: &BTreeMap<String, serde_json::Value>) -> Vec<&str> {
    returns.keys().map(String::as_str).collect()
}

#[test]
fn salt_cli_targets_the_site_and_reports_what_salt_reports() {
    let master = Master::start(&["auto_accept: True", "nodegroups:", "  dbs: 'G@roles:db'", "  pair: [mail, app1]"]);
    let endpoints =
        Endpoints { host: "127.0.0.1".into(), ret_port: master.ret_port, publish_port: master.publish_port };
    let mut minions: Vec<Minion> = SITE
        .iter()
        .map(|(id, version, roles)| Minion::start(MinionSpec::new(id, *version).with_roles(roles), &endpoints))
        .collect();
    for m in &minions {
        m.wait_authenticated(AUTH_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    }

    // Grain targets need each minion's grains in the data cache (sent with its first
    // `_pillar`); then every minion must hear a publish (a SUB socket that just connected
    // can miss the first one).
    let started = Instant::now();
    loop {
        let out = salt(&master, &["-G", "roles:*", "--preview-target", "--out", "json"]);
        let listed: Vec<String> = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if listed.len() == SITE.len() {
            break;
        }
        assert!(
            started.elapsed() < AUTH_TIMEOUT,
            "grains never cached for all minions: {listed:?}\n{}",
            describe(&out)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    loop {
        let out = salt(&master, &["*", "test.ping", "--out", "json", "-t", "5"]);
        if out.status.success() && json_returns(&out).len() == SITE.len() {
            break;
        }
        assert!(started.elapsed() < AUTH_TIMEOUT, "not every minion answers test.ping:\n{}", describe(&out));
    }

    // The admin's daily command: every minion's roles, as JSON and as Salt's nested text.
    let out = salt(&master, &["*", "grains.get", "roles", "--out", "json"]);
    assert!(out.status.success(), "{}", describe(&out));
    let returns = json_returns(&out);
    for (id, _, roles) in SITE {
        assert_eq!(returns[*id], serde_json::json!(roles), "roles of {id}");
    }
    let out = salt(&master, &["db1-masterdb", "grains.get", "roles"]);
    assert_eq!(text(&out.stdout), "db1-masterdb:\n    - db\n    - masterdb\n", "{}", describe(&out));

    // Every targeting form names exactly the minions Salt would.
    let cases: &[(&[&str], &[&str])] = &[
        (&["-G", "roles:db"], &["db1-masterdb", "db2"]),
        (&["-C", "G@roles:db and not db2"], &["db1-masterdb"]),
        (&["-C", "( app1 or mail ) or G@roles:salt"], &["app1", "mail", "salt"]),
        (&["-L", "mail,app1"], &["app1", "mail"]),
        (&["-E", "db[0-9]"], &["db1-masterdb", "db2"]),
        (&["-N", "dbs"], &["db1-masterdb", "db2"]),
        (&["-N", "pair"], &["app1", "mail"]),
        (&["-P", "roles:^s"], &["salt", "sessions1"]),
        (&["-S", "127.0.0.1"], &["app1", "db1-masterdb", "db2", "mail", "salt", "sessions1"]),
    ];
    for (options, want) in cases {
        let mut args: Vec<&str> = options.to_vec();
        args.extend(["test.ping", "--out", "json"]);
        let out = salt(&master, &args);
        assert!(out.status.success(), "salt {args:?}: {}", describe(&out));
        assert_eq!(ids(&json_returns(&out)), *want, "salt {args:?}");
        let mut preview: Vec<&str> = options.to_vec();
        preview.extend(["--preview-target", "--out", "json"]);
        let mut listed: Vec<String> = serde_json::from_slice(&salt(&master, &preview).stdout).unwrap_or_default();
        // A list target is previewed in the order listed, as Salt does; the rest sorted.
        listed.sort();
        assert_eq!(listed, *want, "salt {preview:?}");
    }

    // kwargs are YAML-read into the job's `__kwarg__`, multi-function jobs return a dict.
    let out = salt(&master, &["app1", "test.arg", "a", "1", "flag=yes", "items=[1, 2]", "--out", "json"]);
    let ret = &json_returns(&out)["app1"];
    assert_eq!(ret["args"], serde_json::json!(["a", 1]), "{}", describe(&out));
    assert_eq!(ret["kwargs"]["flag"], serde_json::json!(true));
    assert_eq!(ret["kwargs"]["items"], serde_json::json!([1, 2]));
    let out = salt(&master, &["app1", "test.echo,grains.get", "hello", ",", "roles", "--out", "json"]);
    assert_eq!(
        json_returns(&out)["app1"],
        serde_json::json!({"test.echo": "hello", "grains.get": ["app"]}),
        "{}",
        describe(&out)
    );

    // A target matching nothing: Salt's two lines and exit code 2, nothing published.
    let out = salt(&master, &["nothing*", "test.ping"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert_eq!(text(&out.stdout), "No minions matched the target. No command was sent, no jid was assigned.\n");
    assert_eq!(text(&out.stderr), "ERROR: No return received\n");
    let out = salt(&master, &["-C", "G@roles:db and", "test.ping"]);
    assert_eq!(out.status.code(), Some(2), "a malformed compound expression: {}", describe(&out));
    assert!(text(&out.stderr).contains("invalid compound target"), "{}", describe(&out));
    let out = salt(&master, &["--bogus", "*", "test.ping"]);
    assert_eq!(out.status.code(), Some(64), "{}", describe(&out));
    assert!(text(&out.stderr).ends_with("salt: error: no such option: --bogus\n"), "{}", describe(&out));

    // --async prints the jid and leaves; the job cache has the job and, soon, every return.
    let out = salt(&master, &["*", "grains.get", "roles", "--async"]);
    let line = text(&out.stdout);
    let jid =
        line.trim().strip_prefix("Executed command with job ID: ").unwrap_or_else(|| panic!("{}", describe(&out)));
    let want: serde_json::Value =
        SITE.iter().map(|(id, _, roles)| (id.to_string(), serde_json::json!(roles))).collect();
    let started = Instant::now();
    loop {
        let out = salt_run(&master, &["jobs.lookup_jid", jid, "--out", "json"]);
        if json(&out) == want {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "jobs.lookup_jid {jid}: {}", describe(&out));
        std::thread::sleep(Duration::from_millis(300));
    }
    let listed = json(&salt_run(&master, &["jobs.list_jobs", "search_function=grains.*", "--out", "json"]));
    assert_eq!(listed[jid]["Function"], "grains.get", "{listed}");
    assert_eq!(listed[jid]["Arguments"], serde_json::json!(["roles"]));
    assert_eq!(listed[jid]["Target"], "*");
    let job = json(&salt_run(&master, &["jobs.list_job", jid, "--out", "json"]));
    assert_eq!(job["Minions"].as_array().map(Vec::len), Some(SITE.len()), "{job}");
    assert_eq!(job["Result"]["db2"]["return"], serde_json::json!(["db"]));
    let up = json(&salt_run(&master, &["manage.up", "--out", "json"]));
    assert_eq!(up, serde_json::json!(["app1", "db1-masterdb", "db2", "mail", "salt", "sessions1"]));
    let present = json(&salt_run(&master, &["manage.present", "--out", "json"]));
    assert!(present.as_array().is_some_and(|p| p.iter().any(|id| id == "app1")), "{present}");
    // jobs.active: a job still running on a minion is listed with who runs it.
    let out = salt(&master, &["app1", "test.sleep", "8", "--async"]);
    let sleeping = text(&out.stdout).trim().rsplit(' ').next().unwrap_or("").to_owned();
    let started = Instant::now();
    let active = loop {
        let active = json(&salt_run(&master, &["jobs.active", "--out", "json"]));
        if active.get(&sleeping).is_some() || started.elapsed() > Duration::from_secs(6) {
            break active;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(active[&sleeping]["Function"], "test.sleep", "{active}");
    assert!(active[&sleeping]["Running"][0]["app1"].is_number(), "{active}");
    let out = salt_run(&master, &["no.such_function"]);
    assert_eq!(text(&out.stdout), "'no.such_function' is not available.\n", "{}", describe(&out));

    // Batches: a window of two minions at a time, every minion once.
    let out = salt(&master, &["*", "test.ping", "-b", "2"]);
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = text(&out.stdout);
    // Slots reopen one by one as minions return, so there are at least three runs.
    let runs: Vec<&str> = stdout.lines().filter(|l| l.starts_with("Executing run on [")).collect();
    assert!(runs.len() >= SITE.len() / 2, "{stdout}");
    assert!(runs.iter().all(|r| r.matches('\'').count() <= 4), "at most two minions per run: {runs:?}");
    for (id, _, _) in SITE {
        assert!(stdout.contains(&format!("\n{id}:\n    True\n")), "{id} in the batch output:\n{stdout}");
    }

    // A minion that is down shows as not returned and sets the exit code, as in Salt.
    let mail = minions.iter_mut().find(|m| m.id() == "mail").expect("mail minion");
    mail.kill();
    let out = salt(&master, &["*", "test.ping", "-t", "2"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("mail:\n    Minion did not return. [No response]\n"), "{}", describe(&out));
    assert!(stdout.contains("app1:\n    True\n"), "{}", describe(&out));
    assert_eq!(text(&out.stderr), "ERROR: Minions returned with non-zero exit code\n");
    let out = salt(&master, &["*", "test.ping", "-t", "2", "--hide-timeout", "--out", "json"]);
    assert_eq!(out.status.code(), Some(0), "--hide-timeout: {}", describe(&out));
    assert!(!json_returns(&out).contains_key("mail"));
    let out = salt(&master, &["*", "test.ping", "-b", "50%", "-t", "2"]);
    assert!(text(&out.stdout).starts_with("Minion mail did not respond. No job will be sent.\n"), "{}", describe(&out));
    let status = json(&salt_run(&master, &["manage.status", "-t", "2", "--out", "json"]));
    assert_eq!(status["down"], serde_json::json!(["mail"]), "{status}");
    assert_eq!(status["up"].as_array().map(Vec::len), Some(SITE.len() - 1));
    Minion::stop_all(&mut minions);
}
