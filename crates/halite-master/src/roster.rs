//! The roster: the accepted minions with their `roles` grain and whether they hold a
//! connection to the publish port now, as JSON, for the VM list halite-jumpbox prints
//! (`jumpbox_roster`).
//!
//! ```json
//! {"minions": [
//!   {"id": "app1", "roles": ["app", "monit"], "connected": true},
//!   {"id": "db1", "roles": ["db"], "connected": false}
//! ]}
//! ```
//!
//! A file for the same reason as the address book (`address_book.rs`): halite-jumpbox
//! faces the network and must not hold a credential that publishes jobs. Roles are the
//! minions' own grains, shown to admins as information and never used for a decision;
//! halite-jumpbox escapes control characters before they reach a terminal. Each minion's
//! list is bounded so one minion cannot make the file large.

use std::collections::HashSet;

use halite_pki::KeyState;
use halite_proto::payload::{Value, ValueExt};

use crate::master::Master;

/// Roles taken per minion, and characters per role: a VM has a handful of short ones.
pub const MAX_ROLES: usize = 32;
pub const MAX_ROLE_CHARS: usize = 64;

/// A minion's `roles` grain as a list of text: a list of strings, or one string.
pub fn roles(grains: &Value) -> Vec<String> {
    let items: Vec<&Value> = match grains.get("roles") {
        Some(Value::Array(list)) => list.iter().collect(),
        Some(single) => vec![single],
        None => Vec::new(),
    };
    items
        .into_iter()
        .filter_map(|item| item.as_text())
        .take(MAX_ROLES)
        .map(|role| role.chars().take(MAX_ROLE_CHARS).collect())
        .collect()
}

/// The roster's text, and how many minions it lists.
pub fn text(master: &Master) -> anyhow::Result<(usize, String)> {
    let ids = master.pki.list(KeyState::Accepted)?;
    let data = master.store.minion_data_of(&ids)?;
    let connected: HashSet<String> = master.connected_ids().into_iter().collect();
    let minions: Vec<serde_json::Value> = ids
        .iter()
        .map(|id| {
            let roles = data.get(id).map(|d| roles(&d.grains)).unwrap_or_default();
            serde_json::json!({"id": id, "roles": roles, "connected": connected.contains(id)})
        })
        .collect();
    Ok((minions.len(), render(&minions)))
}

/// One minion per line, so a diff of two rosters reads as a diff of VMs.
fn render(minions: &[serde_json::Value]) -> String {
    let mut out = String::from("{\"minions\": [");
    for (i, vm) in minions.iter().enumerate() {
        out.push_str(if i == 0 { "\n  " } else { ",\n  " });
        out.push_str(&vm.to_string());
    }
    out.push_str("\n]}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn y(text: &str) -> Value {
        halite_yaml::load(text).unwrap()
    }

    #[test]
    fn roles_are_a_bounded_list_of_text() {
        assert_eq!(roles(&y("{roles: [app, monit]}")), ["app", "monit"]);
        assert_eq!(roles(&y("{roles: db}")), ["db"]);
        assert_eq!(roles(&y("{os: Debian}")), Vec::<String>::new());
        assert_eq!(roles(&y("{roles: [1, {a: b}, web]}")), ["web"]);
        let many = format!("{{roles: [{}]}}", vec!["x".repeat(100); 100].join(", "));
        let got = roles(&y(&many));
        assert_eq!(got.len(), MAX_ROLES);
        assert_eq!(got[0].len(), MAX_ROLE_CHARS);
    }

    #[test]
    fn the_roster_reads_as_halite_jumpbox_expects() {
        let text = render(&[
            serde_json::json!({"id": "app1", "roles": ["app"], "connected": true}),
            serde_json::json!({"id": "db1", "roles": [], "connected": false}),
        ]);
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["minions"][0]["id"], "app1");
        assert_eq!(back["minions"][1]["connected"], false);
        assert_eq!(text.lines().count(), 4);
        assert_eq!(render(&[]), "{\"minions\": [\n]}\n");
        assert!(serde_json::from_str::<serde_json::Value>(&render(&[])).is_ok());
    }
}
