//! The accepted minions as zone records: one A/AAAA per address at `<id>.<zone>`, and the
//! PTRs of the reverse zones, from the address book the master writes (`dns_address_book`).
//!
//! The master exports the book as a file rather than halite-dns asking it over the local
//! channel: that channel publishes jobs to every VM, and a network-facing daemon must not
//! hold a credential that is root on the whole site (`docs/decisions.md`).
//!
//! Every address in the book is what a minion reported (its mine's `network.ip_addrs`, or its
//! grains), so nothing here lets one minion speak for another's name:
//! - a minion's records are at its own name: `<id>.<zone>` for a one-label id, the id itself
//!   for an id that is a name one label below the zone (`db1.production.wpdn` in
//!   `production.wpdn`, as the site names its VMs); any other id is not in the zone (a name
//!   deeper down would make names above it, which can hide a wildcard's answer). Ids naming
//!   the same name (`web1`, `WEB1`, `web1.production.wpdn`: distinct Salt ids) are all left
//!   out;
//! - only addresses inside the networks configured for the zone are taken;
//! - a name the zone file holds data at keeps the file's data ([`Zone::with_generated`]);
//! - a PTR is made only for an address served at exactly one minion's name and held by no
//!   zone file (the master's, a router's): of two minions reporting one address, either
//!   could be lying.
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

/// Whether `id` is a host name: labels of letters, digits and hyphens, 1 to 63 of them, not
/// starting or ending with a hyphen. A minion id outside that (Salt allows almost any) is
/// left out of the zones rather than turned into a name that means something else (`*`, an
/// escaped dot).
fn host_id(id: &str) -> bool {
    id.len() <= 253
        && id.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

impl AddressBook {
    /// Reads the book: `<id> <address>...` per line, `#` comments. What cannot be used (an id
    /// that is not a host name, an address that does not parse) is left out and reported.
    pub fn parse(text: &str) -> (AddressBook, Vec<String>) {
        let mut book = AddressBook::default();
        let mut problems = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace();
            let id = words.next().expect("a non-blank line has a word");
            if !host_id(id) {
                problems.push(format!("minion {id:?} is not a host name, left out"));
                continue;
            }
            let addresses = book.minions.entry(id.to_owned()).or_default();
            for word in words {
                match IpAddr::from_str(word) {
                    Ok(_) if addresses.len() >= MAX_ADDRESSES_PER_MINION => {
                        problems.push(format!(
                            "{id} has more than {MAX_ADDRESSES_PER_MINION} addresses; the rest are left out"
                        ));
                        break;
                    }
                    Ok(addr) if !addresses.contains(&addr) => addresses.push(addr),
                    Ok(_) => {}
                    Err(_) => problems.push(format!("{id}: {word:?} is not an address, left out")),
                }
            }
        }
        (book, problems)
    }

    pub fn len(&self) -> usize {
        self.minions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.minions.is_empty()
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

/// The name a minion has in the zone `apex`, in lower case: `<id>.<apex>` for a one-label id;
/// the id itself when it is one label below the apex; none otherwise.
fn name_in_zone(id: &str, apex: &StoredName) -> Option<StoredName> {
    let apex_text = apex.to_string().to_ascii_lowercase();
    let lower = id.to_ascii_lowercase();
    let text = match lower.strip_suffix(&apex_text).and_then(|rest| rest.strip_suffix('.')) {
        Some(label) if !label.contains('.') => format!("{lower}."),
        Some(_) => return None,
        None if !id.contains('.') => format!("{lower}.{apex_text}."),
        None => return None,
    };
    StoredName::from_str(&text).ok().filter(|n| under(n, apex))
}

/// The records the minions add to the forward zone `apex`: an A or AAAA at each minion's
/// name in the zone for each of its addresses inside `networks`. Minions whose ids name the
/// same name are all left out; what that left out is returned beside the records, for the
/// log.
pub fn address_records(book: &AddressBook, apex: &StoredName, networks: &[IpNet]) -> (Vec<Generated>, Vec<String>) {
    let mut by_name: BTreeMap<Vec<u8>, (StoredName, Vec<&str>)> = BTreeMap::new();
    for id in book.minions.keys() {
        if let Some(owner) = name_in_zone(id, apex) {
            by_name.entry(key_of(&owner)).or_insert_with(|| (owner, Vec::new())).1.push(id);
        }
    }
    let mut records = Vec::new();
    let mut problems = Vec::new();
    for (owner, ids) in by_name.into_values() {
        if ids.len() > 1 {
            problems.push(format!("minions {ids:?} all have the name {owner}; all are left out"));
            continue;
        }
        let inside = book.minions[ids[0]].iter().filter(|a| networks.iter().any(|net| net.contains(*a)));
        records.extend(inside.map(|addr| {
            let data = match addr {
                IpAddr::V4(v4) => RecordData::A(A::new(*v4)),
                IpAddr::V6(v6) => RecordData::Aaaa(Aaaa::new(*v6)),
            };
            (owner.clone(), data)
        }));
    }
    (records, problems)
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
/// every forward zone's minion names and addresses ([`served`]). An address a zone file holds
/// (`claimed`) gets no PTR, nor does one served at more than one name (two minions report it,
/// or one minion is in two forward zones: which name is the host's is not for a minion to
/// say); the latter are returned beside the records, for the log.
pub fn ptr_records(
    apex: &StoredName,
    networks: &[IpNet],
    served: &[(StoredName, IpAddr)],
    claimed: &HashSet<IpAddr>,
) -> (Vec<Generated>, Vec<IpAddr>) {
    let mut names: BTreeMap<IpAddr, BTreeMap<Vec<u8>, &StoredName>> = BTreeMap::new();
    for (owner, addr) in served {
        names.entry(*addr).or_default().insert(key_of(owner), owner);
    }
    let mut records = Vec::new();
    let mut ambiguous = Vec::new();
    for (addr, owners) in names {
        if claimed.contains(&addr) || !networks.iter().any(|net| net.contains(&addr)) {
            continue;
        }
        let Ok(reverse) = Name::<bytes::Bytes>::reverse_from_addr(addr) else { continue };
        if !under(&reverse, apex) {
            continue;
        }
        match owners.into_values().collect::<Vec<_>>().as_slice() {
            [owner] => records.push((reverse, RecordData::Ptr(Ptr::new((*owner).clone())))),
            _ => ambiguous.push(addr),
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
        x.sub.dev.wpdn 10.0.0.10\n\
        app2-jobrunner.Dev.wpdn 10.0.0.12\n\
        app2.staging.wpdn 10.0.0.13\n\
        Cased 10.0.0.11\n\
        app1 10.0.0.5 not-an-address\n\
        APP1 10.0.0.66\n\
        salt 10.0.0.2\n\
        outside 192.0.2.1\n";

    #[test]
    fn the_book_reads_and_leaves_out_what_cannot_be_a_record() {
        let (book, problems) = AddressBook::parse(BOOK);
        assert_eq!(book.len(), 11);
        assert_eq!(book.minions["db1"], vec!["10.0.0.4".parse::<IpAddr>().unwrap()]);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("bad*id") && problems[1].contains("not-an-address"), "{problems:?}");
    }

    #[test]
    fn forward_records_are_at_the_minions_names_within_the_networks() {
        let (book, _) = AddressBook::parse(BOOK);
        let apex = name("dev.wpdn.");
        let (records, problems) = address_records(&book, &apex, &nets(&["10.0.0.0/24", "fd00::/64"]));
        let mut shown: Vec<String> = records.iter().map(|(o, d)| format!("{o} {d}")).collect();
        shown.sort();
        // A one-label id under the zone; an id one label below the zone as itself; a deeper
        // one, or one in another zone, not at all.
        assert_eq!(
            shown,
            [
                "app2-jobrunner.dev.wpdn 10.0.0.12",
                "cased.dev.wpdn 10.0.0.11",
                "db1.dev.wpdn 10.0.0.4",
                "evil.dev.wpdn 10.0.0.3",
                "salt.dev.wpdn 10.0.0.2",
                "web1.dev.wpdn 10.0.0.3",
                "web1.dev.wpdn fd00::3"
            ]
        );
        assert_eq!(problems, ["minions [\"APP1\", \"app1\"] all have the name app1.dev.wpdn; all are left out"]);
        let (records, problems) = address_records(&book, &name("staging.wpdn."), &nets(&["10.0.0.0/24"]));
        let shown: Vec<String> = records.iter().map(|(o, d)| format!("{o} {d}")).collect();
        assert!(
            shown.contains(&"app2.staging.wpdn 10.0.0.13".to_owned())
                && shown.contains(&"db1.staging.wpdn 10.0.0.4".to_owned())
        );
        assert_eq!(problems.len(), 1);
    }

    #[test]
    fn ptrs_name_only_served_unclaimed_addresses_of_one_minion() {
        let (book, _) = AddressBook::parse(BOOK);
        let forward = name("dev.wpdn.");
        let (generated, _) = address_records(&book, &forward, &nets(&["10.0.0.0/24"]));
        // The zone file holds `salt`: its generated record was left out.
        let mut served = served(&generated, &[name("salt.dev.wpdn.")]);
        // A host that is no minion (a router) is in a zone file.
        let claimed = HashSet::from(["10.0.0.11".parse::<IpAddr>().unwrap()]);
        let apex = name("0.0.10.in-addr.arpa.");
        assert!(is_reverse(&apex) && !is_reverse(&forward));
        // db1 is in a second forward zone too: its address has two names.
        served.push((name("db1.staging.wpdn."), "10.0.0.4".parse().unwrap()));
        let (records, ambiguous) = ptr_records(&apex, &nets(&["10.0.0.0/8"]), &served, &claimed);
        let shown: Vec<String> = records.iter().map(|(o, d)| format!("{o} {d}")).collect();
        assert_eq!(shown, ["12.0.0.10.in-addr.arpa app2-jobrunner.dev.wpdn."]);
        let ambiguous: Vec<String> = ambiguous.iter().map(ToString::to_string).collect();
        assert_eq!(ambiguous, ["10.0.0.3", "10.0.0.4"]);
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
