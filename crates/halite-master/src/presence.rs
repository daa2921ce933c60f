//! Which minions are connected: Salt's `CkMinions.connected_ids`, as `manage.present` uses it.
//!
//! Salt does not track subscribers; it reads the kernel's TCP table for established
//! connections to the publish port and matches their remote addresses against the cached
//! `ipv4`/`ipv6` grains. halite does the same, so it answers what Salt answers — including
//! Salt's rule that a connection from loopback stands for every address of this host.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use halite_proto::payload::{Value, ValueExt};

use crate::master::Master;

/// Remote addresses of established TCP connections whose local port is `port`, from
/// `/proc/net/tcp` and `/proc/net/tcp6` (Salt's `local_port_tcp`).
pub fn remote_addrs_on_port(port: u16) -> BTreeSet<IpAddr> {
    let mut addrs = BTreeSet::new();
    for (path, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        let Ok(table) = std::fs::read_to_string(path) else { continue };
        for line in table.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st ...; st 01 is ESTABLISHED.
            let (Some(local), Some(remote), Some("01")) = (fields.get(1), fields.get(2), fields.get(3).copied()) else {
                continue;
            };
            let Some(local_port) = local.rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok()) else {
                continue;
            };
            if local_port != port {
                continue;
            }
            if let Some(addr) = remote.split(':').next().and_then(|hex| parse_proc_addr(hex, v6)) {
                addrs.insert(addr);
            }
        }
    }
    addrs
}

/// The kernel prints addresses as 32-bit words in host (little-endian) order.
fn parse_proc_addr(hex: &str, v6: bool) -> Option<IpAddr> {
    if !v6 {
        let n = u32::from_str_radix(hex, 16).ok()?;
        return Some(IpAddr::V4(Ipv4Addr::from(n.swap_bytes())));
    }
    if hex.len() != 32 {
        return None;
    }
    let mut bytes = [0u8; 16];
    for word in 0..4 {
        let n = u32::from_str_radix(&hex[word * 8..word * 8 + 8], 16).ok()?.swap_bytes();
        bytes[word * 4..word * 4 + 4].copy_from_slice(&n.to_be_bytes());
    }
    let v6 = Ipv6Addr::from(bytes);
    Some(v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4))
}

/// This host's own non-loopback addresses, which Salt substitutes for a loopback peer.
fn local_addrs() -> BTreeSet<IpAddr> {
    let mut out = BTreeSet::new();
    if let Ok(text) = std::fs::read_to_string("/proc/net/fib_trie") {
        // `|-- a.b.c.d` followed by `/32 host LOCAL` names a local IPv4 address.
        let lines: Vec<&str> = text.lines().collect();
        for pair in lines.windows(2) {
            if pair[1].contains("/32 host LOCAL") {
                if let Ok(addr) = pair[0].trim().trim_start_matches("|-- ").parse::<Ipv4Addr>() {
                    if !addr.is_loopback() {
                        out.insert(IpAddr::V4(addr));
                    }
                }
            }
        }
    }
    if let Ok(text) = std::fs::read_to_string("/proc/net/if_inet6") {
        for line in text.lines() {
            let Some(hex) = line.split_whitespace().next() else { continue };
            if let Ok(n) = u128::from_str_radix(hex, 16) {
                let addr = Ipv6Addr::from(n);
                if !addr.is_loopback() {
                    out.insert(IpAddr::V6(addr));
                }
            }
        }
    }
    out
}

impl Master {
    /// Ids of cached minions one of whose `ipv4`/`ipv6` grains is the remote address of a
    /// connection to the publish port, sorted.
    pub fn connected_ids(&self) -> Vec<String> {
        let mut addrs = remote_addrs_on_port(self.settings.publish_port);
        let loopback = addrs.iter().any(IpAddr::is_loopback);
        addrs.retain(|a| !a.is_loopback());
        if loopback {
            addrs.extend(local_addrs());
        }
        let wanted: BTreeSet<String> = addrs.iter().map(IpAddr::to_string).collect();
        let ids = self.store.known_minions().unwrap_or_default();
        let data = self.store.minion_data_of(&ids).unwrap_or_default();
        let mut out: Vec<String> = data
            .into_iter()
            .filter(|(_, d)| {
                ["ipv4", "ipv6"].iter().any(|proto| match d.grains.get(proto) {
                    Some(Value::Array(items)) => items.iter().any(|i| i.as_text().is_some_and(|t| wanted.contains(t))),
                    _ => false,
                })
            })
            .map(|(id, _)| id)
            .collect();
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_addresses() {
        assert_eq!(parse_proc_addr("0100007F", false), Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert_eq!(parse_proc_addr("00000000000000000000000001000000", true), Some(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        assert_eq!(
            parse_proc_addr("0000000000000000FFFF00000100007F", true),
            Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            "v4-mapped"
        );
    }
}
