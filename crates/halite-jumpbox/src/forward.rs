//! Whether a `direct-tcpip` channel may be opened, and to which addresses.
//!
//! A forward is decided in two steps around the name lookup the daemon does:
//! 1. [`Request::parse`] checks what the client asked for before anything is resolved: the
//!    key's `permitopen`/`no-port-forwarding` options (against the host exactly as the client
//!    wrote it, as sshd compares them) and the shape of the name.
//! 2. [`allowed_addresses`] keeps, of the addresses the name resolved to, those inside the
//!    user's networks. The daemon connects only to those, so a name that resolves once to an
//!    internal address and then to something else (DNS rebinding) cannot move the connection:
//!    there is no second lookup.
//!
//! Pure: no lookups, no sockets.

use std::net::IpAddr;

use ipnet::IpNet;

/// Longest host name a client may ask for: DNS's own limit.
pub const MAX_HOST: usize = 253;

/// Why a forward was refused; the text goes to the audit log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("port forwarding is not allowed for this key")]
    KeyForbids,
    #[error("permitopen does not allow {host}:{port}")]
    NotPermitted { host: String, port: u32 },
    #[error("port {0} is not a TCP port")]
    BadPort(u32),
    #[error("{0:?} is not a host name or address")]
    BadHost(String),
    #[error("{host} resolves to no address inside forward_to ({addresses})")]
    OutsideNetworks { host: String, addresses: String },
    #[error("too many open channels for this user")]
    TooManyChannels,
    #[error("{0}")]
    Unreachable(String),
}

impl Refused {
    /// Whether the client hears "administratively prohibited" (policy) rather than "connect
    /// failed" (the network), as sshd tells them apart.
    pub fn is_policy(&self) -> bool {
        !matches!(self, Refused::Unreachable(_))
    }
}

/// A forward the client asked for, checked against its key's options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub host: String,
    pub port: u16,
    /// The host is an address literal: nothing to resolve.
    pub literal: Option<IpAddr>,
}

impl Request {
    /// `may_open` is the key's verdict on (host, port) as written: its `permitopen` and
    /// port-forwarding options.
    pub fn parse(host: &str, port: u32, may_open: impl FnOnce(&str, u16) -> bool) -> Result<Request, Refused> {
        let port16 = u16::try_from(port).ok().filter(|p| *p != 0).ok_or(Refused::BadPort(port))?;
        if !may_open(host, port16) {
            return Err(Refused::NotPermitted { host: host.to_owned(), port });
        }
        let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        if let Ok(addr) = bare.parse::<IpAddr>() {
            return Ok(Request { host: host.to_owned(), port: port16, literal: Some(addr) });
        }
        if !valid_name(host) {
            return Err(Refused::BadHost(host.chars().take(80).collect()));
        }
        Ok(Request { host: host.to_owned(), port: port16, literal: None })
    }
}

/// A DNS name of letters, digits, `-` and `_`, with an optional final dot.
fn valid_name(host: &str) -> bool {
    let name = host.strip_suffix('.').unwrap_or(host);
    !name.is_empty()
        && name.len() <= MAX_HOST
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// The addresses among `resolved` that lie in `networks`, in the resolver's order, with
/// IPv4-mapped IPv6 addresses taken as the IPv4 address they are.
pub fn allowed_addresses(host: &str, resolved: &[IpAddr], networks: &[IpNet]) -> Result<Vec<IpAddr>, Refused> {
    let allowed: Vec<IpAddr> = resolved
        .iter()
        .map(|a| match a {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(*a, IpAddr::V4),
            v4 => *v4,
        })
        .filter(|a| networks.iter().any(|net| net.contains(a)))
        .collect();
    if allowed.is_empty() {
        let addresses = if resolved.is_empty() {
            "none".to_owned()
        } else {
            resolved.iter().take(8).map(ToString::to_string).collect::<Vec<_>>().join(", ")
        };
        return Err(Refused::OutsideNetworks { host: host.to_owned(), addresses });
    }
    Ok(allowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets() -> Vec<IpNet> {
        vec!["10.0.0.0/24".parse().unwrap(), "fd00::/64".parse().unwrap()]
    }

    #[test]
    fn only_addresses_inside_the_networks_are_kept() {
        let resolved: Vec<IpAddr> =
            vec!["192.0.2.1".parse().unwrap(), "10.0.0.4".parse().unwrap(), "::ffff:10.0.0.5".parse().unwrap()];
        assert_eq!(
            allowed_addresses("app1", &resolved, &nets()).unwrap(),
            vec!["10.0.0.4".parse::<IpAddr>().unwrap(), "10.0.0.5".parse().unwrap()]
        );
        let outside = allowed_addresses("evil", &["127.0.0.1".parse().unwrap()], &nets()).unwrap_err();
        assert_eq!(outside.to_string(), "evil resolves to no address inside forward_to (127.0.0.1)");
        assert!(allowed_addresses("none", &[], &nets()).is_err());
    }

    #[test]
    fn the_keys_verdict_comes_first_on_the_host_as_written() {
        let r = Request::parse("DB1", 22, |h, p| h == "DB1" && p == 22).unwrap();
        assert_eq!(r.literal, None);
        assert_eq!(
            Request::parse("db1", 22, |_, _| false),
            Err(Refused::NotPermitted { host: "db1".into(), port: 22 })
        );
    }

    #[test]
    fn hosts_and_ports_are_checked() {
        let any = |_: &str, _: u16| true;
        assert_eq!(Request::parse("[fd00::3]", 80, any).unwrap().literal, Some("fd00::3".parse().unwrap()));
        assert_eq!(Request::parse("10.0.0.4", 22, any).unwrap().literal, Some("10.0.0.4".parse().unwrap()));
        assert!(Request::parse("app1.production.wpdn.", 22, any).is_ok());
        assert_eq!(Request::parse("app1", 0, any), Err(Refused::BadPort(0)));
        assert_eq!(Request::parse("app1", 70000, any), Err(Refused::BadPort(70000)));
        for bad in ["", "a..b", "a b", "a/b", "..", &"a".repeat(64), &"a.".repeat(130)] {
            let refused = Request::parse(bad, 22, any);
            assert!(matches!(refused, Err(Refused::BadHost(_))), "{bad:?}: {refused:?}");
        }
    }
}
