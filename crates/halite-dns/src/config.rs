//! `/etc/halite/dns.yaml`, the file the site's states write (states/salt/files/dns.yaml.jinja):
//!
//! ```yaml
//! listen: [10.0.0.2:53]                 # addresses to answer on, UDP and TCP
//! zones: {dev.wpdn: /etc/halite/dns/dev.wpdn.zone}
//! forwarders: [10.0.0.1]                # where names outside the zones go
//! allow_recursion: [10.0.0.0/24]        # who may have them resolved (default: loopback and
//!                                       # the networks of the listen addresses)
//! cache_size: 10000                     # forwarded answers kept
//! user: halite-dns                      # started as root: the user to run as once bound
//! transfer: {dev.wpdn: [10.0.0.3]}      # secondaries: may AXFR the zone, get its NOTIFYs
//! rate_limit: 1000                      # UDP replies per second per /24 (/56); 0: off
//! rate_limit_slip: 2                    # every 2nd limited reply sent truncated
//! tcp_max_connections: 1024             # TCP connections served at once
//! tcp_idle_timeout: 10                  # seconds a TCP connection may wait for a query
//! udp_threads: 2                        # UDP sockets and threads per listen address
//!                                       # (default: one per core; gdnsd's udp_threads)
//! minion_addresses: /var/lib/halite/minion-addresses   # the master's dns_address_book
//! minions: {dev.wpdn: [10.0.0.0/24], 0.0.10.in-addr.arpa: [10.0.0.0/24]}
//!                                       # zones that also hold the accepted minions: A/AAAA
//!                                       # (PTR in a reverse zone) for addresses in the networks
//! ```
//!
//! Parsing is pure: text in, a typed [`Config`] (and the warnings to log) out. An invalid
//! value fails naming its key; an unknown key is a warning; a known key halite-dns does not
//! act on yet is named in a warning too, never silently ignored.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use rmpv::Value;

use crate::zone::StoredName;

/// The DNS port, for addresses written without one.
pub const DNS_PORT: u16 = 53;

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub listen: Vec<SocketAddr>,
    /// Each zone's apex and master file, in the order written.
    pub zones: Vec<(StoredName, PathBuf)>,
    pub forwarders: Vec<SocketAddr>,
    /// The clients that may have names outside the zones forwarded. `None`: loopback and
    /// the networks of the `listen` addresses' interfaces, which the daemon looks up.
    pub allow_recursion: Option<Vec<IpNet>>,
    /// Forwarded answers the cache holds at most.
    pub cache_size: usize,
    /// The user to run as once the sockets are bound, when started as root (port 53 needs
    /// root or CAP_NET_BIND_SERVICE; nothing after binding does).
    pub user: Option<String>,
    /// Each zone's secondaries: the addresses that may transfer it (by IP), and where its
    /// NOTIFYs are sent (port 53 unless given).
    pub transfer: Vec<(StoredName, Vec<SocketAddr>)>,
    /// UDP replies per second to one client prefix (/24 for IPv4, /56 for IPv6, as Knot's
    /// defaults); 0 turns rate limiting off.
    pub rate_limit: u32,
    /// Every `rate_limit_slip`-th reply past the rate goes out truncated (0: none do).
    pub rate_limit_slip: u32,
    /// TCP connections served at once (RFC 7766 6.2.2: a server bounds them); more are
    /// closed as they are accepted. Knot's `tcp-max-clients`.
    pub tcp_max_connections: usize,
    /// How long a TCP connection may go without a complete query before it is closed
    /// (RFC 7766 6.2.3; Knot's `tcp-idle-timeout`, 10 s).
    pub tcp_idle_timeout: Duration,
    /// Threads answering UDP on each listen address, each with a socket of its own
    /// (`SO_REUSEPORT`). `None`: one per core. gdnsd's `udp_threads`, Knot's `udp-workers`.
    pub udp_threads: Option<usize>,
    /// The address book the master writes (its `dns_address_book`): each accepted minion's
    /// addresses.
    pub minion_addresses: Option<PathBuf>,
    /// The zones that also hold the accepted minions, each with the networks whose addresses
    /// go in it (a reverse zone's PTRs name the minion a forward zone serves the address at).
    pub minions: Vec<(StoredName, Vec<IpNet>)>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: Vec::new(),
            zones: Vec::new(),
            forwarders: Vec::new(),
            allow_recursion: None,
            cache_size: 10_000,
            user: None,
            transfer: Vec::new(),
            // Far above what this site's ~50 VMs ask (they share one /24), far below what
            // would make the server an amplifier worth forging addresses for.
            rate_limit: 1000,
            rate_limit_slip: 2,
            tcp_max_connections: 1024,
            tcp_idle_timeout: Duration::from_secs(10),
            udp_threads: None,
            minion_addresses: None,
            minions: Vec::new(),
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
    ConfigError::Invalid { key: key.to_string(), message: message.into() }
}

/// Keys halite-dns reads.
const KNOWN: &[&str] = &[
    "listen",
    "zones",
    "forwarders",
    "allow_recursion",
    "cache_size",
    "user",
    "transfer",
    "rate_limit",
    "rate_limit_slip",
    "tcp_max_connections",
    "tcp_idle_timeout",
    "udp_threads",
    "minion_addresses",
    "minions",
];

/// Networks as the config writes them: `10.0.0.0/24`, or an address for itself alone.
fn networks(key: &str, value: &Value) -> Result<Vec<IpNet>, ConfigError> {
    let items = match value {
        Value::Nil => return Ok(Vec::new()),
        Value::Array(items) => items.as_slice(),
        single => std::slice::from_ref(single),
    };
    items
        .iter()
        .map(|item| {
            let text = item.as_str().ok_or_else(|| invalid(key, format!("{item} is not a network")))?;
            IpNet::from_str(text)
                .or_else(|_| IpAddr::from_str(text).map(IpNet::from))
                .map(|net| net.trunc())
                .map_err(|_| invalid(key, format!("{text:?} is not a network (address/prefix, or an address)")))
        })
        .collect()
}

/// A whole number from 0 to `max`.
fn whole(key: &str, value: &Value, max: u32) -> Result<u32, ConfigError> {
    value
        .as_u64()
        .filter(|n| *n <= u64::from(max))
        .map(|n| n as u32)
        .ok_or_else(|| invalid(key, format!("{value} is not a whole number from 0 to {max}")))
}

/// A whole number from 1 to `max`.
fn count(key: &str, value: &Value, max: u64) -> Result<u64, ConfigError> {
    value
        .as_u64()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| invalid(key, format!("{value} is not a whole number from 1 to {max}")))
}

/// An address as the config writes it: `10.0.0.2`, `10.0.0.2:53`, `::1`, `[::1]:5353`.
pub fn parse_addr(text: &str) -> Option<SocketAddr> {
    if let Ok(addr) = SocketAddr::from_str(text) {
        return Some(addr);
    }
    let bare = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')).unwrap_or(text);
    IpAddr::from_str(bare).ok().map(|ip| SocketAddr::new(ip, DNS_PORT))
}

fn addresses(key: &str, value: &Value) -> Result<Vec<SocketAddr>, ConfigError> {
    let items = match value {
        Value::Nil => return Ok(Vec::new()),
        Value::Array(items) => items.as_slice(),
        single => std::slice::from_ref(single),
    };
    items
        .iter()
        .map(|item| {
            let text = item.as_str().ok_or_else(|| invalid(key, format!("{item} is not an address")))?;
            parse_addr(text).ok_or_else(|| invalid(key, format!("{text:?} is not an address (IP, or IP:port)")))
        })
        .collect()
}

impl Config {
    /// Reads the config's text; the warnings are for the log (unknown keys).
    pub fn parse(text: &str) -> Result<(Config, Vec<String>), ConfigError> {
        let value = halite_yaml::load(text).map_err(|e| ConfigError::Yaml(e.to_string()))?;
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
                "listen" => config.listen = addresses(key, value)?,
                "forwarders" => config.forwarders = addresses(key, value)?,
                "allow_recursion" => config.allow_recursion = Some(networks(key, value)?),
                "cache_size" => config.cache_size = count(key, value, 10_000_000)? as usize,
                "user" => {
                    let user = value.as_str().filter(|u| !u.is_empty() && !u.contains('\0'));
                    config.user =
                        Some(user.ok_or_else(|| invalid(key, format!("{value} is not a user name")))?.to_string());
                }
                "transfer" => {
                    for (zone, apex, addrs) in per_zone(key, value, "addresses")? {
                        config.transfer.push((apex, addresses(&format!("transfer.{zone}"), addrs)?));
                    }
                }
                "minions" => {
                    for (zone, apex, nets) in per_zone(key, value, "networks")? {
                        let nets = networks(&format!("minions.{zone}"), nets)?;
                        if nets.is_empty() {
                            return Err(invalid(&format!("minions.{zone}"), "no network: no minion would be added"));
                        }
                        config.minions.push((apex, nets));
                    }
                }
                "minion_addresses" => {
                    let path = value.as_str().filter(|p| !p.is_empty() && !p.contains('\0'));
                    config.minion_addresses =
                        Some(PathBuf::from(path.ok_or_else(|| invalid(key, format!("{value} is not a file name")))?));
                }
                "rate_limit" => config.rate_limit = whole(key, value, 1_000_000)?,
                "rate_limit_slip" => config.rate_limit_slip = whole(key, value, 100)?,
                "tcp_max_connections" => config.tcp_max_connections = count(key, value, 1_000_000)? as usize,
                "tcp_idle_timeout" => config.tcp_idle_timeout = Duration::from_secs(count(key, value, 3600)?),
                "udp_threads" => config.udp_threads = Some(count(key, value, 256)? as usize),
                "zones" => {
                    let Value::Map(zones) = value else { return Err(invalid(key, "not a mapping of zone to file")) };
                    for (zone, file) in zones {
                        let zone = zone.as_str().ok_or_else(|| invalid(key, format!("{zone} is not a zone name")))?;
                        let apex =
                            zone_name(zone).ok_or_else(|| invalid(key, format!("{zone:?} is not a domain name")))?;
                        let file = file
                            .as_str()
                            .filter(|f| !f.is_empty())
                            .ok_or_else(|| invalid(&format!("zones.{zone}"), "not a file name"))?;
                        if config.zones.iter().any(|(seen, _)| *seen == apex) {
                            return Err(invalid(key, format!("{zone} is listed twice")));
                        }
                        config.zones.push((apex, PathBuf::from(file)));
                    }
                }
                other => warnings
                    .push(format!("unknown key {other:?} in the configuration, ignored (known: {})", KNOWN.join(", "))),
            }
        }
        for (key, apex) in
            config.transfer.iter().map(|t| ("transfer", &t.0)).chain(config.minions.iter().map(|m| ("minions", &m.0)))
        {
            if !config.zones.iter().any(|(zone, _)| zone == apex) {
                return Err(invalid(&format!("{key}.{apex}"), "not a zone listed under zones"));
            }
        }
        match (&config.minion_addresses, config.minions.is_empty()) {
            (None, false) => {
                return Err(invalid("minions", "set, but minion_addresses (the master's dns_address_book) is not"))
            }
            (Some(_), true) => {
                warnings.push("minion_addresses is set but no zone lists minions: the file is not read".into())
            }
            _ => {}
        }
        if config.listen.is_empty() {
            return Err(invalid("listen", "no address to answer on"));
        }
        Ok((config, warnings))
    }
}

/// The entries of a `{zone: what}` mapping, with each zone's name read.
fn per_zone<'v>(key: &str, value: &'v Value, what: &str) -> Result<Vec<(String, StoredName, &'v Value)>, ConfigError> {
    let Value::Map(zones) = value else { return Err(invalid(key, format!("not a mapping of zone to {what}"))) };
    zones
        .iter()
        .map(|(zone, item)| {
            let zone = zone.as_str().ok_or_else(|| invalid(key, format!("{zone} is not a zone name")))?;
            let apex = zone_name(zone).ok_or_else(|| invalid(key, format!("{zone:?} is not a domain name")))?;
            Ok((zone.to_owned(), apex, item))
        })
        .collect()
}

/// A zone's name as the config writes it, with or without the final dot.
pub fn zone_name(text: &str) -> Option<StoredName> {
    let absolute = if text.ends_with('.') { text.to_string() } else { format!("{text}.") };
    StoredName::from_str(&absolute).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sites_config_reads() {
        let text = "listen:\n  - 10.0.0.2:53\nzones:\n  dev.wpdn: /etc/halite/dns/dev.wpdn.zone\nforwarders: ['10.0.0.1', '[2001:db8::1]:5353']\n";
        let (config, warnings) = Config::parse(text).unwrap();
        assert!(warnings.is_empty());
        assert_eq!(config.listen, vec!["10.0.0.2:53".parse().unwrap()]);
        assert_eq!(config.zones[0].0.to_string(), "dev.wpdn");
        assert_eq!(config.zones[0].1, PathBuf::from("/etc/halite/dns/dev.wpdn.zone"));
        assert_eq!(config.forwarders, vec!["10.0.0.1:53".parse().unwrap(), "[2001:db8::1]:5353".parse().unwrap()]);
    }

    #[test]
    fn bad_values_name_their_key_and_unknown_keys_warn() {
        let err = |text: &str| Config::parse(text).unwrap_err().to_string();
        assert_eq!(err("listen: [nowhere]\n"), "listen: \"nowhere\" is not an address (IP, or IP:port)");
        assert_eq!(err("listen: []\n"), "listen: no address to answer on");
        assert!(err("listen: [::1]\nzones: {a..b: x}\n").starts_with("zones: "));
        assert_eq!(err("listen: ['::1']\nzones: {a: ''}\n"), "zones.a: not a file name");
        assert_eq!(
            err("listen: ['::1']\ntcp_idle_timeout: 0\n"),
            "tcp_idle_timeout: 0 is not a whole number from 1 to 3600"
        );
        assert!(err("listen: ['::1']\ntcp_max_connections: many\n").starts_with("tcp_max_connections: "));
        assert_eq!(
            err("listen: ['::1']\nallow_recursion: [10.0.0.0/33]\n"),
            "allow_recursion: \"10.0.0.0/33\" is not a network (address/prefix, or an address)"
        );
        let (config, _) = Config::parse("listen: ['::1']\nallow_recursion: [10.1.2.3/8, '::1']\n").unwrap();
        assert_eq!(config.allow_recursion, Some(vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()]));
        assert_eq!(
            err("listen: ['::1']\ntransfer: {a.b: [10.0.0.3]}\n"),
            "transfer.a.b: not a zone listed under zones"
        );
        let (config, _) =
            Config::parse("listen: ['::1']\nzones: {a.b: f}\ntransfer: {a.b: [10.0.0.3, '10.0.0.4:5300']}\n").unwrap();
        assert_eq!(config.transfer[0].1, vec!["10.0.0.3:53".parse().unwrap(), "10.0.0.4:5300".parse().unwrap()]);
        let (config, _) =
            Config::parse("listen: ['::1']\ntcp_max_connections: 5\ntcp_idle_timeout: 2\nudp_threads: 3\n").unwrap();
        assert_eq!((config.tcp_max_connections, config.tcp_idle_timeout), (5, Duration::from_secs(2)));
        assert_eq!(config.udp_threads, Some(3));
        assert!(err("listen: ['::1']\nudp_threads: 0\n").starts_with("udp_threads: "));
        let book = "listen: ['::1']\nzones: {a.b: f, 2.10.in-addr.arpa: r}\nminion_addresses: /book\n";
        let (config, _) =
            Config::parse(&format!("{book}minions: {{a.b: 10.2.0.0/16, 2.10.in-addr.arpa: [10.2.0.0/16]}}\n")).unwrap();
        assert_eq!(config.minions[1], (zone_name("2.10.in-addr.arpa").unwrap(), vec!["10.2.0.0/16".parse().unwrap()]));
        assert_eq!(
            err(&format!("{book}minions: {{c.d: [10.0.0.0/8]}}\n")),
            "minions.c.d: not a zone listed under zones"
        );
        assert_eq!(err(&format!("{book}minions: {{a.b: []}}\n")), "minions.a.b: no network: no minion would be added");
        assert!(
            err("listen: ['::1']\nzones: {a.b: f}\nminions: {a.b: [10.0.0.0/8]}\n").starts_with("minions: set, but")
        );
        let (_, warnings) = Config::parse("listen: ['::1']\nrecursion: yes\n").unwrap();
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("\"recursion\""));
    }
}
