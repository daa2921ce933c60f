//! The master's event bus as an admin watches it: `salt-run state.event` against real
//! salt-minion 3006 and 3007 processes. A job's `new` and `ret` events, `event.send` from a
//! minion, `salt-call event.fire_master`, a tag filter with a count, and a minion refused
//! when it fires a tag only the master may fire or another minion's event.

mod common;

use std::time::Duration;

use common::{describe, salt, start_minions, text, Master, Watcher};
use halite_testkit::SaltVersion;

#[test]
fn state_event_shows_jobs_and_minion_events_as_salt_prints_them() {
    let master = Master::start(&["auto_accept: True"]);
    let minions =
        start_minions(&master, &[("web1", SaltVersion::V3006, &[]), ("app1", SaltVersion::V3007, &[])], |s| s);
    let all = Watcher::start(&master, &["pretty=True"]);
    all.wait_subscribed(&master);

    // A job: its `new` event with the publish, then each minion's `ret`, pretty-printed
    // with sorted keys as Salt's runner prints them.
    let out = salt(&master, &["app1", "test.ping", "--out", "json", "--show-jid"]);
    assert!(out.status.success(), "{}", describe(&out));
    let jid = text(&out.stdout).lines().find_map(|l| l.strip_prefix("jid: ")).expect("--show-jid").to_owned();
    let shown = all.wait_for(&format!("salt/job/{jid}/ret/app1\t{{"), Duration::from_secs(30));
    println!("state.event pretty=True printed:\n{shown}");
    let new = shown.split(&format!("salt/job/{jid}/new\t")).nth(1).expect("the job's new event");
    let new_block: String = new.lines().take_while(|l| *l != "}").collect::<Vec<_>>().join("\n");
    assert!(new_block.contains("\"fun\": \"test.ping\""), "{new_block}");
    assert!(new_block.contains("\"minions\": [\n        \"app1\"\n    ]"), "{new_block}");
    let keys: Vec<&str> =
        new_block.lines().filter(|l| l.starts_with("    \"")).map(|l| l.trim().split('"').nth(1).unwrap()).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "pretty=True sorts keys");

    // event.send from a minion (through its own connection), and salt-call
    // event.fire_master (a separate client with the minion's key), on a second watcher
    // that filters by tag and stops after two.
    let mine = Watcher::start(&master, &["my/*", "count=2"]);
    std::thread::sleep(Duration::from_secs(2));
    let out = salt(&master, &["web1", "event.send", "my/sent", r#"{"answer": 42}"#, "--out", "json"]);
    assert!(out.status.success(), "{}", describe(&out));
    let called = minions[1].salt_call(&["event.fire_master", r#"{"from": "salt-call"}"#, "my/called"]);
    assert!(called.status.success(), "{}", describe(&called));
    let shown = mine.wait_for("\nNone\n", Duration::from_secs(30));
    println!("state.event my/* count=2 printed:\n{shown}");
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), 3, "two events then the runner's return:\n{shown}");
    let sent = lines.iter().find(|l| l.starts_with("my/sent\t{")).expect("event.send shown");
    assert!(sent.contains("\"answer\": 42") && sent.contains("\"id\": \"web1\""), "{sent}");
    let fired = lines.iter().find(|l| l.starts_with("my/called\t{")).expect("fire_master shown");
    assert!(fired.contains("\"from\": \"salt-call\""), "{fired}");
    assert_eq!(lines[2], "None");
    let mut mine = mine;
    let status = mine.child.wait().expect("the count=2 watcher exits");
    assert!(status.success(), "state.event count=2 exits 0");

    // A minion may not fire the tags the master alone fires: a forged `salt/key` would
    // drive a reactor that accepts keys.
    let out = salt(&master, &["app1", "event.send", "salt/key", r#"{"act": "accept", "id": "intruder"}"#]);
    assert!(out.status.success(), "{}", describe(&out));
    master.wait_log_contains("only the master fires this tag", Duration::from_secs(20));
    // Nor another minion's events: a forged start event would set off that minion's reactions.
    let out = salt(&master, &["app1", "event.send", "salt/minion/web1/start", r#"{"id": "*"}"#]);
    assert!(out.status.success(), "{}", describe(&out));
    master.wait_log_contains("the tag names another minion", Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(1));
    assert!(!all.output().contains("salt/key\t"), "a minion's salt/key reached the bus:\n{}", all.output());
    assert!(!all.output().contains("salt/minion/web1/start\t"), "app1 fired web1's start:\n{}", all.output());
}
