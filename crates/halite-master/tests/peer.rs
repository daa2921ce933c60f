//! Peer publishing end to end: real salt-minion 3007 and 3006 (v2 envelope) processes call
//! `publish.publish`, `publish.full_data` and `publish.runner` through halite-master under
//! `peer` / `peer_run` rules, and scripted minions use the commands no stock module sends
//! any more (`minion_publish`) or should not be able to use (another minion's `pub_ret`).

mod common;

use std::time::{Duration, Instant};

use common::{describe, json_returns, salt, start_minions, FakeMinion, Master};
use halite_proto::payload::{map, Value, ValueExt};
use halite_testkit::SaltVersion;
use serde_json::json;

const MINIONS: &[(&str, SaltVersion, &[&str])] =
    &[("peer-a", SaltVersion::V3007, &[]), ("peer-b", SaltVersion::V3007, &[]), ("peer-old", SaltVersion::V3006, &[])];

/// What minion `id` answers to `salt id <fun> <args>`.
fn from_minion(master: &Master, id: &str, args: &[&str]) -> serde_json::Value {
    let mut argv = vec![id];
    argv.extend_from_slice(args);
    argv.extend_from_slice(&["--out", "json", "-t", "60"]);
    let out = salt(master, &argv);
    let mut returns = json_returns(&out);
    returns.remove(id).unwrap_or_else(|| panic!("{id} did not answer {args:?}:\n{}", describe(&out)))
}

fn accepted_fake(master: &Master, id: &str) -> FakeMinion {
    let fake = FakeMinion::new(id, 2048);
    assert!(matches!(fake.authenticate(master, 3), common::AuthOutcome::Accepted { .. }), "{id} accepted");
    fake
}

fn call(fake: &FakeMinion, master: &Master, pairs: Vec<(&str, Value)>) -> Value {
    fake.v3_call(master, map(pairs)).unwrap_or_else(|e| panic!("{}: {e}", fake.id))
}

/// A reply mapping's entries sorted by key (returns arrive in any order).
fn by_id(reply: &Value) -> Vec<(String, Value)> {
    let mut entries: Vec<(String, Value)> = reply
        .as_map()
        .unwrap_or_else(|| panic!("a mapping: {reply}"))
        .iter()
        .map(|(k, v)| (k.as_str().unwrap_or_default().to_owned(), v.clone()))
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries
}

#[test]
fn minions_publish_to_each_other_within_the_peer_rules() {
    let master = Master::start(&[
        "auto_accept: True",
        "peer:",
        "  '.*': ['grains.*', 'network.*', 'test.*']",
        "peer_run:",
        "  'peer-a': ['manage.up', 'jobs.list_jobs']",
        "gather_job_timeout: 2",
        "worker_threads: 3",
    ]);
    let _minions = start_minions(&master, MINIONS, |spec| spec);
    let everyone = json!({"peer-a": true, "peer-b": true, "peer-old": true});

    // publish.publish: minion_pub, then pub_ret polled until every minion answered; from a
    // 3007 minion (v3 envelope) and a 3006 one (v2, shared AES key).
    assert_eq!(from_minion(&master, "peer-a", &["publish.publish", "*", "test.ping"]), everyone);
    assert_eq!(from_minion(&master, "peer-old", &["publish.publish", "*", "test.ping"]), everyone);
    // Arguments are read as Salt reads them, and other target forms work.
    assert_eq!(
        from_minion(&master, "peer-b", &["publish.publish", "peer-a,peer-old", "grains.get", "id", "tgt_type=list"]),
        json!({"peer-a": "peer-a", "peer-old": "peer-old"})
    );

    // A target naming nobody publishes nothing; Salt's minion then answers None.
    assert_eq!(from_minion(&master, "peer-a", &["publish.publish", "nobody*", "test.ping"]), json!(null));

    // publish.full_data: pub_ret's shape, Salt's get_cache_returns: {id: {"ret": ...}}.
    let full = from_minion(&master, "peer-a", &["publish.full_data", "*", "test.echo", "hello"]);
    let full = full.as_object().unwrap_or_else(|| panic!("full_data is a mapping: {full}"));
    assert_eq!(full.len(), 3, "{full:?}");
    for (id, data) in full {
        assert_eq!(data["ret"], json!("hello"), "{id}: {data}");
    }

    // Outside the rules: refused with Salt's empty answer, and the master says who and what.
    assert_eq!(from_minion(&master, "peer-a", &["publish.publish", "*", "cmd.run", "echo hi"]), json!({}));
    let log = master.wait_log_contains("peer publish refused", Duration::from_secs(10));
    assert!(
        log.lines().any(|l| l.contains("peer publish refused") && l.contains("peer-a") && l.contains("cmd.run")),
        "the refusal names the minion and the function:\n{log}"
    );

    // publish.runner: runs in the master for a minion peer_run allows, not for another.
    assert_eq!(
        from_minion(&master, "peer-a", &["publish.runner", "manage.up"]),
        json!(["peer-a", "peer-b", "peer-old"])
    );
    assert_eq!(from_minion(&master, "peer-b", &["publish.runner", "manage.up"]), json!({}));
    let log = master.wait_log_contains("peer runner refused", Duration::from_secs(10));
    assert!(log.lines().any(|l| l.contains("peer runner refused") && l.contains("peer-b") && l.contains("manage.up")));
    let jobs = from_minion(&master, "peer-a", &["publish.runner", "jobs.list_jobs"]);
    let jobs = jobs.as_object().unwrap_or_else(|| panic!("jobs.list_jobs is a mapping: {jobs}"));
    assert!(jobs.values().any(|j| j["Function"] == json!("test.echo")), "the peer jobs are in the job cache");

    // pub_ret answers only the minion that published the job.
    let auth_dir = master.root().join("cache/publish_auth");
    let jids: Vec<String> = std::fs::read_dir(&auth_dir)
        .unwrap_or_else(|e| panic!("{}: {e}", auth_dir.display()))
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    let by_a = jids
        .iter()
        .find(|j| std::fs::read_to_string(auth_dir.join(j)).ok().as_deref() == Some("peer-a"))
        .expect("a job published by peer-a");
    let stranger = accepted_fake(&master, "peer-fake");
    let stolen = call(&stranger, &master, vec![("cmd", Value::from("pub_ret")), ("jid", Value::from(by_a.as_str()))]);
    assert_eq!(stolen, map::<_, String>([]), "another minion's returns are not handed out");
    master.wait_log_contains("pub_ret refused", Duration::from_secs(10));

    // minion_pub + pub_ret by hand, as publish.publish does them.
    let published = call(
        &stranger,
        &master,
        vec![
            ("cmd", Value::from("minion_pub")),
            ("fun", Value::from("test.ping")),
            ("arg", Value::Array(vec![])),
            ("tgt", Value::from("peer-*")),
            ("tgt_type", Value::from("glob")),
            ("ret", Value::from("")),
            ("tmo", Value::from(5)),
            ("form", Value::from("clean")),
        ],
    );
    let jid = published.get_text("jid").unwrap_or_else(|| panic!("minion_pub answers a jid: {published}")).to_owned();
    let targeted = published.get("minions").and_then(Value::as_array).map(Vec::len);
    assert_eq!(targeted, Some(4), "three real minions and the caller itself: {published}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let returns = loop {
        let r = call(&stranger, &master, vec![("cmd", Value::from("pub_ret")), ("jid", Value::from(jid.as_str()))]);
        if r.as_map().is_some_and(|m| m.len() == 3) || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    for (id, _, _) in MINIONS {
        assert_eq!(returns.get(id).and_then(|r| r.get("ret")), Some(&Value::Boolean(true)), "{id}: {returns}");
    }

    // minion_publish, the synchronous form: answered with the returns once they are in, and
    // without holding a request worker meanwhile. Four scripted minions (one more than the
    // three workers) each wait on a job that includes themselves, so never completes; the
    // real minions' returns of a job published meanwhile must still get through.
    let waiting: Vec<_> = (0..4).map(|n| accepted_fake(&master, &format!("peer-wait{n}"))).collect();
    let master_ref = &master;
    std::thread::scope(|scope| {
        let calls: Vec<_> = waiting
            .into_iter()
            .map(|fake| {
                scope.spawn(move || {
                    let answer = call(
                        &fake,
                        master_ref,
                        vec![
                            ("cmd", Value::from("minion_publish")),
                            ("fun", Value::from("test.ping")),
                            ("arg", Value::Array(vec![])),
                            ("tgt", Value::from(format!("peer-a,peer-b,peer-old,{}", fake.id))),
                            ("tgt_type", Value::from("list")),
                            ("ret", Value::from("")),
                            // Far longer than the ping below may take on a loaded machine, and
                            // longer than its -t: held workers would starve the ping outright.
                            ("tmo", Value::from("25")),
                        ],
                    );
                    (answer, Instant::now())
                })
            })
            .collect();
        std::thread::sleep(Duration::from_secs(1));
        let out = salt(master_ref, &["-L", "peer-a,peer-b,peer-old", "test.ping", "--out", "json", "-t", "15"]);
        let pinged = Instant::now();
        let returns = json_returns(&out);
        assert!(
            returns.len() == 3 && returns.values().all(|r| *r == serde_json::Value::Bool(true)),
            "returns got through while peers waited:\n{}",
            describe(&out)
        );
        for handle in calls {
            let (answer, answered) = handle.join().expect("minion_publish caller");
            assert!(answered > pinged, "the ping's returns waited for minion_publish: request workers were held");
            assert_eq!(
                by_id(&answer),
                vec![
                    ("peer-a".to_owned(), Value::Boolean(true)),
                    ("peer-b".to_owned(), Value::Boolean(true)),
                    ("peer-old".to_owned(), Value::Boolean(true))
                ],
                "the minions that returned, by id: {answer}\n{}",
                master_ref.log()
            );
        }
    });

    // The full form carries each minion's whole return and the jid.
    let full = call(
        &stranger,
        &master,
        vec![
            ("cmd", Value::from("minion_publish")),
            ("fun", Value::from("test.echo")),
            ("arg", Value::Array(vec![Value::from("x")])),
            ("tgt", Value::from("peer-a")),
            ("ret", Value::from("")),
            ("form", Value::from("full")),
        ],
    );
    let jid = full.get_text("__jid__").unwrap_or_else(|| panic!("full form has __jid__: {full}"));
    let a = full.get("peer-a").unwrap_or_else(|| panic!("{full}"));
    assert_eq!(a.get("ret"), Some(&Value::from("x")), "{full}");
    assert_eq!(a.get_text("jid"), Some(jid), "{full}");
    assert!(a.get("return").is_none(), "return is renamed ret: {full}");
}
