//! `/etc/halite/jumpbox.yaml`, the file the site's states write
//! (states/salt/files/jumpbox.yaml.jinja):
//!
//! ```yaml
//! listen: [0.0.0.0:2222]                 # addresses to accept SSH on
//! host_keys: [/etc/ssh/ssh_host_ed25519_key]   # OpenSSH private keys; generated if missing
//! authorized_keys: /home/%u/.ssh/authorized_keys   # %u user, %h home, %% a percent sign
//! banner: /etc/ssh/banner                # sent before authentication, and by `ssh jumpbox`
//! forward_to: [10.0.0.0/24]              # where forwards may go (resolved addresses)
//! users: {alice: [10.0.0.5/32]}          # narrower forward_to for some users
//! audit_log: /var/log/halite/jumpbox.log # one JSON line per connection and forward
//! vms: /var/lib/halite/roster.json       # the VM list `ssh jumpbox` prints (the master's roster)
//! trusted_user_ca_keys: /etc/ssh/user_ca.pub   # CA keys (OpenSSH public-key lines) whose user
//!                                        # certificates sign in, as sshd's TrustedUserCAKeys
//! max_startups: 32                       # unauthenticated connections at once
//! login_grace_time: 120                  # seconds to authenticate
//! max_auth_tries: 6                      # key offers per connection
//! max_sessions: 10                       # session channels open per connection
//! max_channels_per_user: 100             # open forwards per user, all connections
//! keepalive_interval: 15                 # seconds of silence before a keepalive; 0: none
//! keepalive_max: 3                       # unanswered keepalives before the connection drops
//! idle_timeout: 3600                     # seconds with no channel open before the connection
//!                                        # drops (OpenSSH's UnusedConnectionTimeout)
//! connect_timeout: 10                    # seconds to resolve and connect a forward
//! stall_timeout: 15                      # seconds a destination may read nothing while the
//!                                        # client sends, before its forward is closed
//! throttle: {failures: 5, window: 600, ban: 600}   # per source address; failures: 0 is off
//! ```
//!
//! Parsing is pure: text in, a typed [`Config`] and the warnings to log out. An invalid
//! value fails naming its key; an unknown key is a warning.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use rmpv::Value;

/// Where the daemon reads its config when `-c` is not given.
pub const DEFAULT_PATH: &str = "/etc/halite/jumpbox.yaml";

/// The port for listen addresses written without one (the site's: sshd keeps 22).
pub const DEFAULT_PORT: u16 = 2222;

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub listen: Vec<SocketAddr>,
    pub host_keys: Vec<PathBuf>,
    pub authorized_keys: String,
    pub banner: Option<PathBuf>,
    pub forward_to: Vec<IpNet>,
    pub users: BTreeMap<String, Vec<IpNet>>,
    pub audit_log: Option<PathBuf>,
    pub vms: Option<PathBuf>,
    pub trusted_user_ca_keys: Option<PathBuf>,
    pub max_startups: usize,
    pub login_grace_time: Duration,
    pub max_auth_tries: usize,
    pub max_sessions: usize,
    pub max_channels_per_user: usize,
    pub keepalive_interval: Option<Duration>,
    pub keepalive_max: usize,
    pub idle_timeout: Duration,
    pub connect_timeout: Duration,
    pub stall_timeout: Duration,
    pub throttle: ThrottleConfig,
}

/// fail2ban's sshd jail, built in: `failures` failed sign-ins from one source within
/// `window` ban that source's new connections for `ban`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleConfig {
    pub failures: u32,
    pub window: Duration,
    pub ban: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: Vec::new(),
            host_keys: vec![PathBuf::from("/etc/ssh/ssh_host_ed25519_key")],
            authorized_keys: "%h/.ssh/authorized_keys".to_owned(),
            banner: None,
            forward_to: Vec::new(),
            users: BTreeMap::new(),
            audit_log: None,
            vms: None,
            trusted_user_ca_keys: None,
            // sshd's MaxStartups starts refusing at 10 by default; a jump box for a few
            // admins has as little need, and a little more room for a burst of `-J` hops.
            max_startups: 32,
            login_grace_time: Duration::from_secs(120),
            max_auth_tries: 6,
            max_sessions: 10,
            max_channels_per_user: 100,
            keepalive_interval: Some(Duration::from_secs(15)),
            keepalive_max: 3,
            idle_timeout: Duration::from_secs(3600),
            connect_timeout: Duration::from_secs(10),
            stall_timeout: Duration::from_secs(15),
            throttle: ThrottleConfig { failures: 5, window: Duration::from_secs(600), ban: Duration::from_secs(600) },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Yaml(String),
    #[error("the configuration is not a mapping of keys")]
    NotAMapping,
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.to_owned(), message: message.into() }
}

const KNOWN: &[&str] = &[
    "listen",
    "host_keys",
    "authorized_keys",
    "banner",
    "forward_to",
    "users",
    "audit_log",
    "vms",
    "trusted_user_ca_keys",
    "max_startups",
    "login_grace_time",
    "max_auth_tries",
    "max_sessions",
    "max_channels_per_user",
    "keepalive_interval",
    "keepalive_max",
    "idle_timeout",
    "connect_timeout",
    "stall_timeout",
    "throttle",
];

fn list(value: &Value) -> &[Value] {
    match value {
        Value::Nil => &[],
        Value::Array(items) => items.as_slice(),
        single => std::slice::from_ref(single),
    }
}

fn text<'v>(key: &str, value: &'v Value, what: &str) -> Result<&'v str, ConfigError> {
    value
        .as_str()
        .filter(|t| !t.is_empty() && !t.contains('\0'))
        .ok_or_else(|| invalid(key, format!("{value} is not {what}")))
}

fn path(key: &str, value: &Value) -> Result<PathBuf, ConfigError> {
    text(key, value, "a file name").map(PathBuf::from)
}

fn networks(key: &str, value: &Value) -> Result<Vec<IpNet>, ConfigError> {
    list(value)
        .iter()
        .map(|item| {
            let t = text(key, item, "a network")?;
            IpNet::from_str(t)
                .or_else(|_| IpAddr::from_str(t).map(IpNet::from))
                .map(|net| net.trunc())
                .map_err(|_| invalid(key, format!("{t:?} is not a network (address/prefix, or an address)")))
        })
        .collect()
}

/// `0.0.0.0:2222`, `[::]:2222`, or an address alone for [`DEFAULT_PORT`].
pub fn parse_listen(t: &str) -> Option<SocketAddr> {
    if let Ok(addr) = SocketAddr::from_str(t) {
        return Some(addr);
    }
    let bare = t.strip_prefix('[').and_then(|t| t.strip_suffix(']')).unwrap_or(t);
    IpAddr::from_str(bare).ok().map(|ip| SocketAddr::new(ip, DEFAULT_PORT))
}

fn count(key: &str, value: &Value, min: u64, max: u64) -> Result<u64, ConfigError> {
    value
        .as_u64()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| invalid(key, format!("{value} is not a whole number from {min} to {max}")))
}

fn seconds(key: &str, value: &Value, min: u64, max: u64) -> Result<Duration, ConfigError> {
    count(key, value, min, max).map(Duration::from_secs)
}

/// A user name as sshd accepts one for `%u`: it must not climb out of the directory the
/// pattern names, nor be anything a shell or a log would read differently.
pub fn valid_user(user: &str) -> bool {
    !user.is_empty()
        && user.len() <= 32
        && !user.starts_with(['-', '.'])
        && user.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

impl Config {
    /// Reads the config's text; the warnings are for the log.
    pub fn parse(text_in: &str) -> Result<(Config, Vec<String>), ConfigError> {
        let value = halite_yaml::load(text_in).map_err(|e| ConfigError::Yaml(e.to_string()))?;
        let map = match value {
            Value::Map(map) => map,
            Value::Nil => Vec::new(),
            _ => return Err(ConfigError::NotAMapping),
        };
        let mut warnings = Vec::new();
        let mut config = Config::default();
        for (key, value) in &map {
            let Some(key) = key.as_str() else { return Err(ConfigError::NotAMapping) };
            match key {
                "listen" => {
                    config.listen = list(value)
                        .iter()
                        .map(|item| {
                            let t = text(key, item, "an address")?;
                            parse_listen(t)
                                .ok_or_else(|| invalid(key, format!("{t:?} is not an address (IP, or IP:port)")))
                        })
                        .collect::<Result<_, _>>()?
                }
                "host_keys" => config.host_keys = list(value).iter().map(|v| path(key, v)).collect::<Result<_, _>>()?,
                "authorized_keys" => {
                    let pattern = text(key, value, "a file name pattern")?;
                    expand(pattern, "user", "/home/user").map_err(|m| invalid(key, m))?;
                    config.authorized_keys = pattern.to_owned();
                }
                "banner" => config.banner = Some(path(key, value)?),
                "forward_to" => config.forward_to = networks(key, value)?,
                "users" => {
                    let Value::Map(users) = value else {
                        return Err(invalid(key, "not a mapping of user to networks"));
                    };
                    for (user, nets) in users {
                        let user = user
                            .as_str()
                            .filter(|u| valid_user(u))
                            .ok_or_else(|| invalid(key, format!("{user} is not a user name")))?;
                        config.users.insert(user.to_owned(), networks(&format!("users.{user}"), nets)?);
                    }
                }
                "audit_log" => config.audit_log = Some(path(key, value)?),
                "vms" => config.vms = Some(path(key, value)?),
                "trusted_user_ca_keys" => config.trusted_user_ca_keys = Some(path(key, value)?),
                "max_startups" => config.max_startups = count(key, value, 1, 100_000)? as usize,
                "login_grace_time" => config.login_grace_time = seconds(key, value, 1, 3600)?,
                "max_auth_tries" => config.max_auth_tries = count(key, value, 1, 100)? as usize,
                "max_sessions" => config.max_sessions = count(key, value, 1, 10_000)? as usize,
                "max_channels_per_user" => config.max_channels_per_user = count(key, value, 1, 100_000)? as usize,
                "keepalive_interval" => {
                    let d = seconds(key, value, 0, 3600)?;
                    config.keepalive_interval = (!d.is_zero()).then_some(d);
                }
                "keepalive_max" => config.keepalive_max = count(key, value, 1, 100)? as usize,
                "idle_timeout" => config.idle_timeout = seconds(key, value, 1, 7 * 86_400)?,
                "connect_timeout" => config.connect_timeout = seconds(key, value, 1, 600)?,
                "stall_timeout" => config.stall_timeout = seconds(key, value, 1, 3600)?,
                "throttle" => {
                    let Value::Map(items) = value else {
                        return Err(invalid(key, "not a mapping (failures, window, ban)"));
                    };
                    for (name, v) in items {
                        let name = name.as_str().unwrap_or("");
                        let full = format!("throttle.{name}");
                        match name {
                            "failures" => config.throttle.failures = count(&full, v, 0, 1000)? as u32,
                            "window" => config.throttle.window = seconds(&full, v, 1, 7 * 86_400)?,
                            "ban" => config.throttle.ban = seconds(&full, v, 1, 7 * 86_400)?,
                            _ => warnings.push(format!(
                                "unknown key {full:?} in the configuration, ignored (known: failures, window, ban)"
                            )),
                        }
                    }
                }
                other => warnings
                    .push(format!("unknown key {other:?} in the configuration, ignored (known: {})", KNOWN.join(", "))),
            }
        }
        if config.listen.is_empty() {
            return Err(invalid("listen", "no address to accept connections on"));
        }
        if config.host_keys.is_empty() {
            return Err(invalid("host_keys", "no host key file"));
        }
        if config.forward_to.is_empty() {
            warnings.push("forward_to is empty: every forward will be refused".to_owned());
        }
        for (user, nets) in &config.users {
            for net in nets {
                if !config.forward_to.iter().any(|outer| outer.contains(net)) {
                    warnings.push(format!("users.{user}: {net} is not inside forward_to: forwards there stay refused"));
                }
            }
        }
        Ok((config, warnings))
    }

    /// The networks `user` may forward to: `forward_to`, narrowed by the user's own list.
    pub fn networks_for(&self, user: &str) -> Vec<IpNet> {
        match self.users.get(user) {
            None => self.forward_to.clone(),
            Some(own) => {
                own.iter().filter(|net| self.forward_to.iter().any(|outer| outer.contains(*net))).copied().collect()
            }
        }
    }
}

/// sshd's `%` tokens in the `authorized_keys` pattern: `%u` user, `%h` home, `%%` percent.
pub fn expand(pattern: &str, user: &str, home: &str) -> Result<PathBuf, String> {
    let mut out = String::with_capacity(pattern.len() + home.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('u') => out.push_str(user),
            Some('h') => out.push_str(home),
            Some('%') => out.push('%'),
            other => {
                return Err(format!(
                    "unknown token %{} in {pattern:?} (known: %u, %h, %%)",
                    other.map(String::from).unwrap_or_default()
                ))
            }
        }
    }
    if !out.starts_with('/') {
        // sshd takes a relative pattern from the user's home directory.
        out = format!("{home}/{out}");
    }
    Ok(PathBuf::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SITE: &str = "listen:\n  - 0.0.0.0:2222\nhost_keys:\n  - /etc/ssh/ssh_host_ed25519_key\n  - /etc/ssh/ssh_host_rsa_key\n\
                        authorized_keys: /home/%u/.ssh/authorized_keys\nbanner: /etc/ssh/banner\nforward_to:\n  - 10.0.0.0/24\n";

    #[test]
    fn the_sites_file_reads() {
        let (config, warnings) = Config::parse(SITE).unwrap();
        assert_eq!(warnings, Vec::<String>::new());
        assert_eq!(config.listen, vec!["0.0.0.0:2222".parse().unwrap()]);
        assert_eq!(config.host_keys.len(), 2);
        assert_eq!(config.forward_to, vec!["10.0.0.0/24".parse::<IpNet>().unwrap()]);
        assert_eq!(
            expand(&config.authorized_keys, "alice", "/home/alice").unwrap(),
            PathBuf::from("/home/alice/.ssh/authorized_keys")
        );
    }

    #[test]
    fn invalid_values_name_their_key() {
        for (text, key) in [
            ("listen: nowhere", "listen"),
            ("listen: 127.0.0.1\nforward_to: [10.0.0.0/33]", "forward_to"),
            ("listen: 127.0.0.1\nmax_sessions: 0", "max_sessions"),
            ("listen: 127.0.0.1\nthrottle: {ban: -1}", "throttle.ban"),
            ("listen: 127.0.0.1\nauthorized_keys: /home/%x", "authorized_keys"),
            ("listen: 127.0.0.1\nusers: {../root: [10.0.0.1]}", "users"),
            ("forward_to: [10.0.0.0/24]", "listen"),
        ] {
            match Config::parse(text) {
                Err(ConfigError::Invalid { key: k, .. }) => assert_eq!(k, key, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn unknown_keys_and_empty_forward_to_warn() {
        let (_, warnings) = Config::parse("listen: 127.0.0.1\nPermitRootLogin: no\n").unwrap();
        assert!(warnings[0].contains("PermitRootLogin"), "{warnings:?}");
        assert!(warnings[1].contains("forward_to is empty"), "{warnings:?}");
    }

    #[test]
    fn users_narrow_forward_to() {
        let (config, warnings) =
            Config::parse("listen: 127.0.0.1\nforward_to: [10.0.0.0/24]\nusers: {alice: [10.0.0.5, 192.0.2.0/24]}\n")
                .unwrap();
        assert!(warnings[0].contains("192.0.2.0/24"), "{warnings:?}");
        assert_eq!(config.networks_for("alice"), vec!["10.0.0.5/32".parse::<IpNet>().unwrap()]);
        assert_eq!(config.networks_for("bob"), config.forward_to);
    }

    #[test]
    fn tokens_expand_as_sshds() {
        assert_eq!(expand(".ssh/keys_%%_%u", "bob", "/home/bob").unwrap(), PathBuf::from("/home/bob/.ssh/keys_%_bob"));
        assert!(expand("/x/%", "bob", "/home/bob").is_err());
    }

    #[test]
    fn user_names_cannot_climb() {
        for bad in ["", "..", "../x", "a/b", "-o", "a b", "a\0"] {
            assert!(!valid_user(bad), "{bad:?}");
        }
        assert!(valid_user("deploy-bot.2"));
    }
}
