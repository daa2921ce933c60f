//! The accepted minions as zone records: one A/AAAA per address at `<id>.<zone>`, and the
//! PTRs of the reverse zones, from the address book the master writes (`dns_address_book`).
//!
//! The master exports the book as a file rather than halite-dns asking it over the local
//! channel: that channel publishes jobs to every VM, and a network-facing daemon must not
//! hold a credential that is root on the whole site (`docs/decisions.md`).
//!
//! Every address in the book is what a minion reported (its mine's `network.ip_addrs`, or its
//! grains), so nothing here lets one minion speak for another's name:
//! - a minion's records are at `<id>.<zone>`, its id being one label (a dotted id would make
//!   names above it, which could hide a wildcard's answer) and compared without case: ids
//!   that differ only in case (`web1`, `WEB1`, both valid in Salt) are both left out;
//! - only addresses inside the networks configured for the zone are taken;
//! - a name the zone file holds data at keeps the file's data ([`Zone::with_generated`]);
//! - a PTR is made only for an address served at a minion's name, that no zone file holds
//!   (the master's, a router's) and that no other minion reports: either could be lying.
//!
//! [`Zone::with_generated`]: crate::zone::Zone::with_generated
//!
//! Pure: text in, records out. The daemon reads the file and rebuilds the zones.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::str::FromStr;

use domain::base::{Name, Serial};
use domain::rdata::{Aaaa, Ptr, A};
use ipnet::IpNet;

use crate::zone::{key_of, suffixes, Generated, RecordData, StoredName, Zone};

/// Largest address book read: some 50 VMs write a few KiB; a runaway file must not take the
/// host's memory.
pub const MAX_BOOK_BYTES: usize = 16 << 20;

/// Addresses taken per minion: a VM has a handful; a minion reporting thousands would only
/// make every answer about it truncate.
pub const MAX_ADDRESSES_PER_MINION: usize = 32;

/// The minions and their addresses, as the master wrote them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressBook {
    minions: BTreeMap<String, Vec<IpAddr>>,
}

/// Whether `id` can be a host name's first label: letters, digits and hyphens, 1 to 63 of
/// them, not starting or ending with a hyphen. A minion id outside that (Salt allows almost
/// any) is left out of the zone rather than turned into a name that means something else
/// (`*`, an escaped dot, a name above another).
fn host_label(id: &str) -> bool {
    (1..=63).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !id.starts_with('-')
        && !id.ends_with('-')
}

impl AddressBook {
    /// Reads the book: `<id> <address>...` per line, `#` comments. What cannot be used (an id
    /// that is not a host name or shares its name with another, an address that does not
    /// parse) is left out and reported.
    pub fn parse(text: &str) -> (AddressBook, Vec<String>) {
        let mut book = AddressBook::default();
        let mut problems = Vec::new();
        // The ids as written, per name: more than one is a collision.
        let mut spellings: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace();
            let id = words.next().expect("a non-blank line has a word");
            if !host_label(id) {
                problems.push(format!("line {}: minion {id:?} is not a host name, left out", n + 1));
                continue;
            }
            let name = id.to_ascii_lowercase();
            spellings.entry(name.clone()).or_default().push(id);
            let addresses = book.minions.entry(name).or_default();
            for word in words {
                match IpAddr::from_str(word) {
                    Ok(_) if addresses.len() >= MAX_ADDRESSES_PER_MINION => {
                        problems.push(format!(
                            "line {}: {id} has more than {MAX_ADDRESSES_PER_MINION} addresses; the rest are left out",
                            n + 1
                        ));
                        break;
                    }
                    Ok(addr) if !addresses.contains(&addr) => addresses.push(addr),
                    Ok(_) => {}
                    Err(_) => problems.push(format!("line {}: {word:?} is not an address, left out", n + 1)),
                }
            }
        }
        for (name, ids) in spellings.into_iter().filter(|(_, ids)| ids.len() > 1) {
            problems.push(format!("minions {ids:?} share the name {name:?}; both are left out"));
            book.minions.remove(&name);
        }
        (book, problems)
    }

    pub fn len(&self) -> usize {
        self.minions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.minions.is_empty()
    }

    /// Every (minion, address) with the address inside one of `networks`.
    fn within<'a>(&'a self, networks: &'a [IpNet]) -> impl Iterator<Item = (&'a str, IpAddr)> + 'a {
        self.minions.iter().flat_map(move |(id, addrs)| {
            addrs.iter().filter(|a| networks.iter().any(|net| net.contains(*a))).map(move |a| (id.as_str(), *a))
        })
    }
}

/// Whether a zone holds reverse names (`in-addr.arpa`, `ip6.arpa`): its minion records are
/// PTRs, not addresses.
pub fn is_reverse(apex: &StoredName) -> bool {
    ["in-addr.arpa.", "ip6.arpa."].iter().any(|tree| under(apex, &StoredName::from_str(tree).expect("a valid name")))
}

fn under(name: &StoredName, apex: &StoredName) -> bool {
    let (key, apex_key) = (key_of(name), key_of(apex));
    let found = suffixes(&key).any(|s| s == apex_key.as_slice());
    found
}

/// `<id>.<apex>`, when it is a name (short enough).
fn host_name(id: &str, apex: &StoredName) -> Option<StoredName> {
    StoredName::from_str(&format!("{id}.{apex}.")).ok().filter(|n| under(n, apex))
}

/// The records the minions add to the forward zone `apex`: an A or AAAA at `<id>.<apex>`
/// for each of their addresses inside `networks`.
pub fn address_records(book: &AddressBook, apex: &StoredName, networks: &[IpNet]) -> Vec<Generated> {
    book.within(networks)
        .filter_map(|(id, addr)| {
            let owner = host_name(id, apex)?;
            let data = match addr {
                IpAddr::V4(v4) => RecordData::A(A::new(v4)),
                IpAddr::V6(v6) => RecordData::Aaaa(Aaaa::new(v6)),
            };
            Some((owner, data))
        })
        .collect()
}

/// The addresses the A/AAAA records in `generated` serve, by owner, leaving out the owners
/// [`Zone::with_generated`] did not add.
///
/// [`Zone::with_generated`]: crate::zone::Zone::with_generated
pub fn served(generated: &[Generated], left_out: &[StoredName]) -> Vec<(StoredName, IpAddr)> {
    generated
        .iter()
        .filter(|(owner, _)| !left_out.contains(owner))
        .filter_map(|(owner, data)| {
            let addr = match data {
                RecordData::A(a) => IpAddr::V4(a.addr()),
                RecordData::Aaaa(aaaa) => IpAddr::V6(aaaa.addr()),
                _ => return None,
            };
            Some((owner.clone(), addr))
        })
        .collect()
}

/// Every address a zone's A and AAAA records hold.
pub fn zone_addresses(zone: &Zone) -> impl Iterator<Item = IpAddr> + '_ {
    zone.nodes().flat_map(|node| node.rrsets.iter()).flat_map(|set| set.data.iter()).filter_map(|data| match data {
        RecordData::A(a) => Some(IpAddr::V4(a.addr())),
        RecordData::Aaaa(aaaa) => Some(IpAddr::V6(aaaa.addr())),
        _ => None,
    })
}

/// The PTRs the minions add to the reverse zone `apex`: for each address inside `networks`
/// whose reverse name is in the zone, a PTR to the minion's name that serves it. `served`:
/// each forward zone's minion names and addresses ([`served`]), in the order of the zones;
/// the first zone serving an address names it. An address a zone file holds (`claimed`) gets
/// no PTR, nor does one served at two names of the same zone; the latter are returned beside
/// the records, for the log.
pub fn ptr_records(
    apex: &StoredName,
    networks: &[IpNet],
    served: &[Vec<(StoredName, IpAddr)>],
    claimed: &HashSet<IpAddr>,
) -> (Vec<Generated>, Vec<IpAddr>) {
    let mut names: BTreeMap<IpAddr, Vec<&StoredName>> = BTreeMap::new();
    for zone in served {
        let mut this_zone: BTreeMap<IpAddr, Vec<&StoredName>> = BTreeMap::new();
        for (owner, addr) in zone {
            this_zone.entry(*addr).or_default().push(owner);
        }
        for (addr, owners) in this_zone {
            names.entry(addr).or_insert(owners);
        }
    }
    let mut records = Vec::new();
    let mut ambiguous = Vec::new();
    for (addr, owners) in names {
        if claimed.contains(&addr) || !networks.iter().any(|net| net.contains(&addr)) {
            continue;
        }
        if owners.len() > 1 {
            ambiguous.push(addr);
            continue;
        }
        let Ok(owner) = Name::<bytes::Bytes>::reverse_from_addr(addr) else { continue };
        if under(&owner, apex) {
            records.push((owner, RecordData::Ptr(Ptr::new(owners[0].clone()))));
        }
    }
    (records, ambiguous)
}

/// The serial of a zone with minions after a change: the latest of its file's, the clock's
/// seconds, and the last one served plus one (RFC 1982 order). The clock keeps it growing
/// across restarts as long as changes came less than once a second on average and the clock
/// did not step back.
pub fn next_serial(file: Serial, previous: Option<Serial>, now: u32) -> Serial {
    [Some(Serial::from(now)), previous.map(|p| p.add(1))].into_iter().flatten().fold(file, |best, candidate| {
        if candidate > best {
            candidate
        } else {
            best
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> StoredName {
        StoredName::from_str(s).unwrap()
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    const BOOK: &str = "# written by the master\n\
        web1 10.0.0.3 fd00::3 127.0.0.1\n\
        db1 10.0.0.4 10.0.0.4\n\
        evil 10.0.0.3\n\
        bad*id 10.0.0.9\n\
        x.sub 10.0.0.10\n\
        Cased 10.0.0.11\n\
        app1 10.0.0.5 not-an-address\n\
        APP1 10.0.0.66\n\
        salt 10.0.0.2\n\
        outside 192.0.2.1\n";

    #[test]
    fn the_book_reads_and_leaves_out_what_cannot_be_a_record() {
        let (book, problems) = AddressBook::parse(BOOK);
        let ids: Vec<&str> = book.minions.keys().map(String::as_str).collect();
        assert_eq!(ids, ["cased", "db1", "evil", "outside", "salt", "web1"]);
        assert_eq!(book.minions["db1"], vec!["10.0.0.4".parse::<IpAddr>().unwrap()]);
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].contains("bad*id") && problems[1].contains("x.sub"), "{problems:?}");
        assert!(problems[2].contains("not-an-address") && problems[3].contains("[\"app1\", \"APP1\"]"), "{problems:?}");
    }

    #[test]
    fn forward_records_are_at_the_ids_within_the_networks() {
        let (book, _) = AddressBook::parse(BOOK);
        let apex = name("dev.wpdn.");
        let records = address_records(&book, &apex, &nets(&["10.0.0.0/24", "fd00::/64"]));
        let shown: Vec<String> = records.iter().map(|(o, d)| format!("{o} {d}")).collect();
        assert_eq!(
            shown,
            [
                "cased.dev.wpdn 10.0.0.11",
                "db1.dev.wpdn 10.0.0.4",
                "evil.dev.wpdn 10.0.0.3",
                "salt.dev.wpdn 10.0.0.2",
                "web1.dev.wpdn 10.0.0.3",
                "web1.dev.wpdn fd00::3"
            ]
        );
    }

    #[test]
    fn ptrs_name_only_served_unclaimed_addresses_of_one_minion() {
        let (book, _) = AddressBook::parse(BOOK);
        let forward = name("dev.wpdn.");
        let generated = address_records(&book, &forward, &nets(&["10.0.0.0/24"]));
        // The zone file holds `salt`: its generated record was left out.
        let served = vec![served(&generated, &[name("salt.dev.wpdn.")])];
        // A host that is no minion (a router) is in a zone file.
        let claimed = HashSet::from(["10.0.0.11".parse::<IpAddr>().unwrap()]);
        let apex = name("0.0.10.in-addr.arpa.");
        assert!(is_reverse(&apex) && !is_reverse(&forward));
        let (records, ambiguous) = ptr_records(&apex, &nets(&["10.0.0.0/8"]), &served, &claimed);
        let shown: Vec<String> = records.iter().map(|(o, d)| format!("{o} {d}")).collect();
        assert_eq!(shown, ["4.0.0.10.in-addr.arpa db1.dev.wpdn."]);
        assert_eq!(ambiguous, vec!["10.0.0.3".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn serials_only_grow() {
        let s = |n: u32| Serial::from(n);
        assert_eq!(next_serial(s(1), None, 1_800_000_000), s(1_800_000_000));
        assert_eq!(next_serial(s(1), Some(s(1_800_000_000)), 1_800_000_000), s(1_800_000_001));
        assert_eq!(next_serial(s(2_000_000_000), Some(s(5)), 1_800_000_000), s(2_000_000_000));
        // Across the wrap of RFC 1982: after 2^32 - 1 comes 0, which is later.
        assert_eq!(next_serial(s(u32::MAX - 5), Some(s(u32::MAX)), 0), s(0));
    }
}
