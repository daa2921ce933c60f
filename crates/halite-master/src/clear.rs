//! ClearFuncs: commands local clients send unencrypted on the request port. Today: `publish`,
//! authenticated by the per-user key Salt keeps in `cachedir/.<user>_key`, so the stock
//! Python `salt` CLI works against halite. Full targeting, the job cache and the event-bus IPC
//! the stock CLI listens on arrive with the jobs work; until then non-list, non-glob targets
//! expect every accepted minion (greedy, as Salt is for data-based targets without a cache).

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use halite_proto::crypticle::Crypticle;
use halite_proto::payload::{map, Value, ValueExt};
use tracing::{info, warn};

use crate::jid;
use crate::master::Master;

/// The local-client keys, by user name.
pub struct UserKeys {
    keys: HashMap<String, String>,
}

impl UserKeys {
    /// Salt's `access_keys`: reads `cachedir/.<user>_key` for each user, creating it (0600)
    /// when missing, so a CLI run as that user can prove itself.
    pub fn load_or_create(cachedir: &Path, users: &[String]) -> anyhow::Result<Self> {
        let mut keys = HashMap::new();
        for user in users {
            let path = cachedir.join(format!(".{user}_key"));
            let key = match std::fs::read_to_string(&path) {
                Ok(k) if !k.trim().is_empty() => k.trim().to_owned(),
                _ => {
                    let key = Crypticle::generate()?.key_string().to_owned();
                    let tmp = cachedir.join(format!(".{user}_key.tmp"));
                    let mut f =
                        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
                    f.write_all(key.as_bytes())?;
                    f.sync_all()?;
                    std::fs::rename(&tmp, &path)?;
                    key
                }
            };
            keys.insert(user.clone(), key);
        }
        Ok(Self { keys })
    }

    fn check(&self, user: &str, key: Option<&str>) -> bool {
        match (self.keys.get(user), key) {
            (Some(expected), Some(given)) => {
                openssl::memcmp::eq(expected.as_bytes(), given.as_bytes()) && expected.len() == given.len()
            }
            _ => false,
        }
    }
}

fn auth_error(kind: &str) -> Value {
    map([(
        "error",
        map([
            ("name", Value::from("AuthenticationError")),
            ("message", Value::from(format!("Authentication failure of type \"{kind}\" occurred."))),
        ]),
    )])
}

impl Master {
    pub(crate) fn clear_publish(&self, load: &Value) -> Value {
        let user = load.get_text("user").unwrap_or("root");
        // The stock CLI sends the key of the user it runs as; Salt maps sudo users to root.
        let key_user = if user.starts_with("sudo_") { "root" } else { user };
        if !self.user_keys.check(key_user, load.get_text("key")) {
            warn!(%user, "publish with a wrong or missing user key refused");
            return auth_error("user");
        }
        let (Some(tgt), Some(fun)) = (load.get("tgt"), load.get("fun")) else {
            return map([("error", Value::from("publish needs tgt and fun"))]);
        };
        let tgt_type = load.get_text("tgt_type").unwrap_or("glob");
        let (minions, missing) = match self.expected_minions(tgt, tgt_type) {
            Ok(m) => m,
            Err(e) => return map([("error", Value::from(e))]),
        };
        if minions.is_empty() {
            let shown = tgt.as_text().map(str::to_owned).unwrap_or_else(|| format!("{tgt}"));
            return map([(
                "load",
                map([
                    ("jid", Value::Nil),
                    ("minions", Value::Array(vec![])),
                    ("error", Value::from(format!("Master could not resolve minions for target {shown}"))),
                ]),
            )]);
        }
        let jid = match load.get_text("jid") {
            Some(j) if jid::is_jid(j) => j.to_owned(),
            _ => jid::new_jid(),
        };
        let mut pub_load = vec![
            ("fun", fun.clone()),
            ("arg", load.get("arg").cloned().unwrap_or(Value::Array(vec![]))),
            ("tgt", tgt.clone()),
            ("jid", Value::from(jid.as_str())),
            ("ret", load.get("ret").cloned().unwrap_or(Value::from(""))),
        ];
        pub_load.push(("tgt_type", Value::from(tgt_type)));
        pub_load.push(("user", Value::from(user)));
        if let Some(Value::Map(kwargs)) = load.get("kwargs") {
            for key in ["delimiter", "ret_config", "metadata", "ret_kwargs", "module_executors", "executor_opts"] {
                if let Some((_, v)) = kwargs.iter().find(|(k, _)| k.as_text() == Some(key)) {
                    pub_load.push((key, v.clone()));
                }
            }
        }
        let minion_list = Value::Array(minions.iter().map(|m| Value::from(m.as_str())).collect());
        let missing_list = Value::Array(missing.iter().map(|m| Value::from(m.as_str())).collect());
        self.events.fire(
            format!("salt/job/{jid}/new"),
            map([
                ("jid", Value::from(jid.as_str())),
                ("tgt_type", Value::from(tgt_type)),
                ("tgt", tgt.clone()),
                ("user", Value::from(user)),
                ("fun", fun.clone()),
                ("arg", load.get("arg").cloned().unwrap_or(Value::Array(vec![]))),
                ("minions", minion_list.clone()),
                ("missing", missing_list.clone()),
            ]),
        );
        let frame = match self.seal_publish(map(pub_load)) {
            Ok(f) => f,
            Err(e) => return map([("error", Value::from(format!("cannot seal publish: {e}")))]),
        };
        if let Err(e) = self.publisher.publish(frame) {
            return map([("error", Value::from(format!("publisher unavailable: {e}")))]);
        }
        info!(%jid, fun = %fun, minions = minions.len(), "published");
        map([
            ("enc", Value::from("clear")),
            ("load", map([("jid", Value::from(jid.as_str())), ("minions", minion_list), ("missing", missing_list)])),
        ])
    }

    /// Which accepted minions a target names (Salt's `check_minions`, glob and list exact;
    /// the full engine arrives with the targeting work).
    fn expected_minions(&self, tgt: &Value, tgt_type: &str) -> Result<(Vec<String>, Vec<String>), String> {
        let accepted = self.pki.list(halite_pki::KeyState::Accepted).map_err(|e| e.to_string())?;
        let list_of = |v: &Value| -> Vec<String> {
            match v {
                Value::Array(items) => items.iter().filter_map(|i| i.as_text().map(str::to_owned)).collect(),
                other => other
                    .as_text()
                    .unwrap_or("")
                    .split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect(),
            }
        };
        Ok(match tgt_type {
            "glob" => {
                let pattern = tgt.as_text().unwrap_or("");
                (accepted.into_iter().filter(|id| halite_target::fnmatch(id, pattern)).collect(), vec![])
            }
            "list" => {
                let wanted = list_of(tgt);
                let missing = wanted.iter().filter(|w| !accepted.contains(w)).cloned().collect();
                (accepted.into_iter().filter(|id| wanted.contains(id)).collect(), missing)
            }
            _ => (accepted, vec![]),
        })
    }
}
