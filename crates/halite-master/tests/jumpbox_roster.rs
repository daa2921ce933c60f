//! The master's roster for halite-jumpbox (`jumpbox_roster`): real minions appear with their
//! `roles` grain and as connected; stopped, they are listed as not connected.

mod common;

use std::time::Duration;

use common::{start_minions, Master};
use halite_testkit::{wait_until, SaltVersion};

fn roster(path: &std::path::Path) -> serde_json::Value {
    std::fs::read_to_string(path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default()
}

fn vm<'a>(roster: &'a serde_json::Value, id: &str) -> Option<&'a serde_json::Value> {
    roster["minions"].as_array()?.iter().find(|vm| vm["id"] == id)
}

#[test]
fn minions_are_listed_with_their_roles_and_presence() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("roster.json");
    let master = Master::start(&["auto_accept: True", &format!("jumpbox_roster: {}", path.display())]);
    let mut minions = start_minions(
        &master,
        &[("app1", SaltVersion::V3008, &["app", "monit"]), ("db1", SaltVersion::V3006, &["db"])],
        |spec| spec,
    );
    let listed = || {
        let r = roster(&path);
        vm(&r, "app1").is_some_and(|v| v["connected"] == true && v["roles"] == serde_json::json!(["app", "monit"]))
            && vm(&r, "db1").is_some_and(|v| v["connected"] == true && v["roles"] == serde_json::json!(["db"]))
    };
    // Presence has no event: the roster follows within the master's presence poll (5 s).
    assert!(
        wait_until(Duration::from_secs(20), listed),
        "roster: {:?}\nmaster:\n{}",
        std::fs::read_to_string(&path),
        master.log()
    );
    // Presence is by address, as Salt's `manage.present` finds it: every minion here shares
    // 127.0.0.1, so only stopping them all takes them off.
    minions.clear();
    let gone = || {
        let r = roster(&path);
        ["app1", "db1"].iter().all(|id| vm(&r, id).is_some_and(|v| v["connected"] == false))
    };
    assert!(wait_until(Duration::from_secs(20), gone), "still connected: {:?}", std::fs::read_to_string(&path));
    assert_eq!(vm(&roster(&path), "db1").unwrap()["roles"], serde_json::json!(["db"]), "roles stay from the cache");
}
