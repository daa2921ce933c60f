//! ClearFuncs: commands local clients send unencrypted on the request port. Today: `publish`,
//! authenticated by the per-user key Salt keeps in `cachedir/.<user>_key`, so the stock
//! Python `salt` CLI can publish to halite (the job itself goes through `jobs`).

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use halite_proto::crypticle::Crypticle;
use halite_proto::payload::{map, Value, ValueExt};
use tracing::{info, warn};

use crate::jobs::{PublishError, PublishRequest};
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

    /// Whether `key` proves `user`. Salt maps `sudo_<name>` users (the CLI run through
    /// sudo) to root's key.
    pub fn check(&self, user: &str, key: Option<&str>) -> bool {
        let user = if user.starts_with("sudo_") { "root" } else { user };
        match (self.keys.get(user), key) {
            (Some(expected), Some(given)) => {
                // Length first: `memcmp::eq` panics on slices of different lengths, and the
                // key's length is no secret (Salt's keys all have the same one).
                expected.len() == given.len() && openssl::memcmp::eq(expected.as_bytes(), given.as_bytes())
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
        if !self.user_keys.check(user, load.get_text("key")) {
            warn!(%user, "publish with a wrong or missing user key refused");
            return auth_error("user");
        }
        let req = match PublishRequest::from_load(load) {
            Ok(r) => r,
            Err(e) => return map([("error", Value::from(e.to_string()))]),
        };
        match self.publish_job(&req) {
            Ok(published) => map([
                ("enc", Value::from("clear")),
                (
                    "load",
                    map([
                        ("jid", Value::from(published.jid.as_str())),
                        ("minions", Value::Array(published.minions.iter().map(|m| Value::from(m.as_str())).collect())),
                        ("missing", Value::Array(published.missing.iter().map(|m| Value::from(m.as_str())).collect())),
                    ]),
                ),
            ]),
            // Salt answers a target naming nobody with this load; the stock CLI prints "No
            // minions matched the target".
            Err(e @ (PublishError::NoMinions(_) | PublishError::Target { .. })) => {
                info!(%user, error = %e, "publish names no minion");
                map([
                    ("enc", Value::from("clear")),
                    (
                        "load",
                        map([
                            ("jid", Value::Nil),
                            ("minions", Value::Array(vec![])),
                            (
                                "error",
                                Value::from(format!("Master could not resolve minions for target {}", shown_tgt(load))),
                            ),
                        ]),
                    ),
                ])
            }
            Err(e) => {
                warn!(%user, error = %e, "publish failed");
                map([("error", Value::from(e.to_string()))])
            }
        }
    }
}

fn shown_tgt(load: &Value) -> String {
    load.get("tgt").map(halite_yaml::py::text).unwrap_or_default()
}
