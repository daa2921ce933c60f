//! What a session channel prints: the banner (the level and the ssh_config to use) and the
//! site's VMs with their roles and whether the master sees them connected.
//!
//! The VM list is the roster file the master writes (`vms:` in jumpbox.yaml), a JSON object
//! `{"minions": [{"id": "app1", "roles": ["app"], "connected": true}, ...]}`. A file rather
//! than a question over the master's local channel: a credential for that channel publishes
//! jobs to every VM, and a daemon that faces the network must not hold one
//! (docs/decisions.md). When the file is missing or unreadable the list is left out with a
//! note saying why.
//!
//! Pure: text in, text out.

use serde::{Deserialize, Serialize};

/// Largest roster read: a few KiB for the site's VMs.
pub const MAX_ROSTER_BYTES: u64 = 4 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Vm {
    pub id: String,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub connected: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Roster {
    pub minions: Vec<Vm>,
}

/// The roster, or why there is none.
pub type Listing = Result<Roster, String>;

pub fn parse_roster(text: &str) -> Listing {
    serde_json::from_str::<Roster>(text).map_err(|e| format!("the roster is not readable: {e}"))
}

/// What `ssh jumpbox` prints: the banner, then the list.
pub fn welcome(banner: Option<&str>, listing: &Listing) -> String {
    let mut out = String::new();
    if let Some(banner) = banner {
        out.push_str(banner);
        if !banner.ends_with('\n') {
            out.push('\n');
        }
        out.push('\n');
    }
    out.push_str(&table(listing));
    out
}

/// The VM list as text, one VM per line (`ssh jumpbox vms`).
pub fn table(listing: &Listing) -> String {
    let roster = match listing {
        Ok(roster) => roster,
        Err(why) => return format!("The VM list is not available: {why}\n"),
    };
    let width = roster.minions.iter().map(|vm| printable(&vm.id).chars().count()).max().unwrap_or(2).max(2);
    let mut out = format!("{:<width$}  {:<9}  ROLES\n", "VM", "MASTER");
    for vm in &roster.minions {
        let state = if vm.connected { "connected" } else { "-" };
        let roles: Vec<String> = vm.roles.iter().map(|r| printable(r)).collect();
        out.push_str(&format!("{:<width$}  {state:<9}  {}\n", printable(&vm.id), roles.join(", ")));
    }
    out
}

/// The list as JSON (`ssh jumpbox vms --json`).
pub fn json(listing: &Listing) -> String {
    let value = match listing {
        Ok(roster) => serde_json::to_value(roster).expect("a roster serialises"),
        Err(why) => serde_json::json!({"minions": null, "error": why}),
    };
    let mut out = serde_json::to_string_pretty(&value).expect("JSON serialises");
    out.push('\n');
    out
}

/// Grains are the minions' own words: control characters (a terminal escape in a role
/// name) are shown escaped, never sent to an admin's terminal as they are.
fn printable(text: &str) -> String {
    text.chars().flat_map(|c| if c.is_control() { c.escape_default().collect::<Vec<_>>() } else { vec![c] }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_shows_roles_and_connection() {
        let listing = parse_roster(
            r#"{"minions":[{"id":"app1","roles":["app","monit"],"connected":true},{"id":"db1","roles":["db"],"connected":false}]}"#,
        );
        assert_eq!(table(&listing), "VM    MASTER     ROLES\napp1  connected  app, monit\ndb1   -          db\n");
        let text = welcome(Some("LEVEL: PROD"), &listing);
        assert!(text.starts_with("LEVEL: PROD\n\nVM "), "{text}");
    }

    #[test]
    fn a_missing_roster_is_a_note() {
        let listing: Listing = Err("no roster configured".into());
        assert_eq!(table(&listing), "The VM list is not available: no roster configured\n");
        assert!(json(&listing).contains("\"error\""));
        assert!(parse_roster("{").is_err());
    }

    #[test]
    fn terminal_escapes_in_grains_are_shown_escaped() {
        let listing = parse_roster(r#"{"minions":[{"id":"x","roles":["\u001b[2J"],"connected":true}]}"#);
        assert!(table(&listing).contains("\\u{1b}[2J"), "{}", table(&listing));
    }
}
