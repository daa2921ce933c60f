//! `hosts allow` / `hosts deny`: parsing a list of host patterns from rsyncd.conf and
//! deciding whether a connecting client may use a module, with the precedence of the
//! reference daemon (rsync's access.c).
//!
//! halite-rsyncd makes no reverse lookups. Like rsync with `reverse lookup = no`, a
//! client with no known name is called [`UNDETERMINED_HOSTNAME`], and name patterns are
//! matched against that placeholder: `*` still matches every client (so the common
//! `hosts deny = *` denies everyone not allowed), while `*.example.com` never matches.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, ToSocketAddrs};

/// The name rsync gives a client whose name it did not look up. Name patterns are
/// matched against it when the daemon passes no host name.
pub const UNDETERMINED_HOSTNAME: &str = "UNDETERMINED";

/// One entry of a `hosts allow` / `hosts deny` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// An address, an address/prefix or an address/netmask.
    Address(AddressPattern),
    /// A host name or a wildcard pattern over host names, lower-cased (rsync compares
    /// names without regard to case).
    Name(String),
    /// `@netgroup`: halite-rsyncd cannot consult NIS netgroups, so it never matches.
    Netgroup(String),
}

/// An address pattern: the client matches when its address agrees with `network` on
/// every bit set in `mask`. Masks need not be contiguous, as in the reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressPattern {
    network: IpAddr,
    mask: IpAddr,
    scope: Option<String>,
}

impl AddressPattern {
    /// The address written in the pattern.
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// The netmask, of the same family as the address.
    pub fn mask(&self) -> IpAddr {
        self.mask
    }

    /// The IPv6 zone written after `%`, if any.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    fn matches(&self, client: IpAddr, in_deny_list: bool) -> bool {
        let agrees = match (self.network, self.mask, client) {
            (IpAddr::V4(net), IpAddr::V4(mask), IpAddr::V4(addr)) => {
                (u32::from(net) ^ u32::from(addr)) & u32::from(mask) == 0
            }
            (IpAddr::V6(net), IpAddr::V6(mask), IpAddr::V6(addr)) => {
                (u128::from(net) ^ u128::from(addr)) & u128::from(mask) == 0
            }
            _ => false,
        };
        if agrees && self.scope.is_some() {
            // The client's zone is not known here; rsync requires it to equal the
            // pattern's. Resolve the doubt towards refusing the client in either list.
            return in_deny_list;
        }
        agrees
    }
}

/// Why a hosts list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostPatternError {
    #[error("'{token}' looks like an address but is not one")]
    BadAddress { token: String },
    #[error("'{token}' has a malformed mask: {reason}")]
    BadMask { token: String, reason: &'static str },
    #[error("the list has no patterns")]
    Empty,
}

/// Something about a valid pattern that the operator should know: each one means the
/// pattern behaves differently from what its text suggests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostNote {
    /// `@netgroup` never matches in halite-rsyncd.
    Netgroup(String),
    /// An IPv4 address in a short or octal form, read the way getaddrinfo reads it.
    UnusualIpv4 { token: String, means: Ipv4Addr },
    /// An IPv6 pattern with a `%zone`, which cannot be checked.
    Zone(String),
    /// A wildcard that can only match a name from a reverse lookup, which
    /// halite-rsyncd never makes.
    NameNeverMatches(String),
    /// A plain host name, which matches only through a forward lookup of the name.
    NeedsForwardLookup(String),
}

impl fmt::Display for HostNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostNote::Netgroup(name) => {
                write!(f, "netgroup pattern '@{name}' never matches: halite-rsyncd does not read netgroups")
            }
            HostNote::UnusualIpv4 { token, means } => {
                write!(f, "'{token}' is read as the address {means} (short or octal form); write the four decimal octets")
            }
            HostNote::Zone(token) => write!(
                f,
                "'{token}' names an IPv6 zone, which halite-rsyncd cannot check: the pattern never allows and always denies a matching address"
            ),
            HostNote::NameNeverMatches(token) => write!(
                f,
                "host name pattern '{token}' never matches: halite-rsyncd makes no reverse lookups (clients are named {UNDETERMINED_HOSTNAME})"
            ),
            HostNote::NeedsForwardLookup(token) => write!(
                f,
                "host name '{token}' matches only when the daemon resolves it (forward lookup); without that it never matches"
            ),
        }
    }
}

/// A parsed hosts list and what the operator should be told about it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostList {
    pub patterns: Vec<HostPattern>,
    pub notes: Vec<HostNote>,
}

/// Parses a `hosts allow` / `hosts deny` value: patterns separated by commas, spaces
/// or tabs. A value with no pattern at all is refused: rsync would read
/// `hosts allow = ,` as "allow nobody", which is more likely a mistake than a wish.
pub fn parse_host_list(value: &str) -> Result<HostList, HostPatternError> {
    let mut list = HostList::default();
    for token in value.split([' ', ',', '\t']).filter(|t| !t.is_empty()) {
        let (pattern, note) = parse_host_pattern(token)?;
        list.patterns.push(pattern);
        list.notes.extend(note);
    }
    if list.patterns.is_empty() {
        return Err(HostPatternError::Empty);
    }
    Ok(list)
}

/// Parses one pattern. Which tokens count as addresses follows the reference: digits
/// and dots only, or anything with a colon; everything else is a host name pattern.
pub fn parse_host_pattern(token: &str) -> Result<(HostPattern, Option<HostNote>), HostPatternError> {
    let token = token.to_ascii_lowercase();
    if let Some(group) = token.strip_prefix('@').filter(|g| !g.is_empty()) {
        return Ok((HostPattern::Netgroup(group.to_string()), Some(HostNote::Netgroup(group.to_string()))));
    }
    let (address_part, mask_part) = match token.split_once('/') {
        Some((a, m)) => (a, Some(m)),
        None => (token.as_str(), None),
    };
    let looks_numeric = address_part.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if looks_numeric || address_part.contains(':') {
        return parse_address_pattern(&token, address_part, mask_part);
    }
    let note = if has_wildcard(&token) {
        (!wildcard_match(&token, &UNDETERMINED_HOSTNAME.to_ascii_lowercase()))
            .then(|| HostNote::NameNeverMatches(token.clone()))
    } else if token.contains('/') {
        Some(HostNote::NameNeverMatches(token.clone()))
    } else {
        Some(HostNote::NeedsForwardLookup(token.clone()))
    };
    Ok((HostPattern::Name(token), note))
}

fn parse_address_pattern(
    token: &str,
    address_part: &str,
    mask_part: Option<&str>,
) -> Result<(HostPattern, Option<HostNote>), HostPatternError> {
    let bad_address = || HostPatternError::BadAddress { token: token.to_string() };
    let mut note = None;
    let (network, scope) = if address_part.contains(':') {
        let (bare, scope) = match address_part.split_once('%') {
            Some((bare, zone)) if !zone.is_empty() => (bare, Some(zone.to_string())),
            Some(_) => return Err(bad_address()),
            None => (address_part, None),
        };
        let address: Ipv6Addr = bare.parse().map_err(|_| bad_address())?;
        if scope.is_some() {
            note = Some(HostNote::Zone(token.to_string()));
        }
        (IpAddr::V6(address), scope)
    } else {
        let (address, canonical) = parse_ipv4_as_getaddrinfo(address_part).ok_or_else(bad_address)?;
        if !canonical {
            note = Some(HostNote::UnusualIpv4 { token: token.to_string(), means: address });
        }
        (IpAddr::V4(address), None)
    };
    let mask = match mask_part {
        None => prefix_mask(network, full_prefix(network)),
        Some(text) => parse_mask(network, text)
            .map_err(|reason| HostPatternError::BadMask { token: token.to_string(), reason })?,
    };
    Ok((HostPattern::Address(AddressPattern { network, mask, scope }), note))
}

fn full_prefix(address: IpAddr) -> u32 {
    match address {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

fn prefix_mask(address: IpAddr, prefix: u32) -> IpAddr {
    match address {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(u32::MAX.checked_shl(32 - prefix).unwrap_or(0))),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(u128::MAX.checked_shl(128 - prefix).unwrap_or(0))),
    }
}

fn parse_mask(network: IpAddr, text: &str) -> Result<IpAddr, &'static str> {
    match network {
        IpAddr::V4(_) => {
            if let Ok(mask) = text.parse::<Ipv4Addr>() {
                return Ok(IpAddr::V4(mask));
            }
        }
        IpAddr::V6(_) => {
            if let Ok(mask) = text.parse::<Ipv6Addr>() {
                return Ok(IpAddr::V6(mask));
            }
        }
    }
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err("expected a prefix length or a netmask of the address's family");
    }
    match text.parse::<u32>() {
        Ok(prefix) if prefix <= full_prefix(network) => Ok(prefix_mask(network, prefix)),
        _ => Err("prefix length longer than the address"),
    }
}

/// Reads a digits-and-dots IPv4 address as glibc's getaddrinfo does (and so as rsync
/// does): one to four parts, the last filling the remaining bytes, a leading zero
/// meaning octal. The flag says whether it was the plain four-decimal-octet form.
fn parse_ipv4_as_getaddrinfo(text: &str) -> Option<(Ipv4Addr, bool)> {
    let parts: Vec<&str> = text.split('.').collect();
    if parts.len() > 4 {
        return None;
    }
    let mut canonical = parts.len() == 4;
    let mut values = Vec::with_capacity(parts.len());
    for part in &parts {
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let value = if part.len() > 1 && part.starts_with('0') {
            canonical = false;
            u32::from_str_radix(&part[1..], 8).ok()?
        } else {
            part.parse::<u32>().ok()?
        };
        values.push(value);
    }
    let (last, leading) = values.split_last()?;
    let mut address: u32 = 0;
    for (i, byte) in leading.iter().enumerate() {
        if *byte > 255 {
            return None;
        }
        address |= byte << (24 - 8 * i as u32);
    }
    let remaining_bits = 32 - 8 * leading.len() as u32;
    if remaining_bits < 32 && *last >> remaining_bits != 0 {
        return None;
    }
    address |= last;
    Some((Ipv4Addr::from(address), canonical))
}

fn has_wildcard(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

/// Whether a client may use a module, given its `hosts allow` and `hosts deny` lists
/// (empty when not set), with no DNS lookups of any kind: see
/// [`allows_resolving`] for the rules. `hostname` is the client's name if the daemon
/// knows one; halite passes None, which names the client [`UNDETERMINED_HOSTNAME`].
pub fn allows(allow: &[HostPattern], deny: &[HostPattern], addr: IpAddr, hostname: Option<&str>) -> bool {
    allows_resolving(allow, deny, addr, hostname, None)
}

/// Resolves a host name to its addresses; None when it cannot be resolved.
pub type Resolver<'a> = &'a dyn Fn(&str) -> Option<Vec<IpAddr>>;

/// The rule of the reference, in order:
/// 1. an allow list is given and the client matches it: allowed;
/// 2. an allow list is given, no deny list: refused;
/// 3. a deny list is given and the client matches it: refused;
/// 4. otherwise: allowed.
///
/// An IPv4 client seen as an IPv4-mapped IPv6 address is matched as IPv4. With a
/// `resolver` (rsync's `forward lookup = yes`), a plain host name pattern also matches
/// when one of its addresses is the client's, and a name in the deny list that cannot
/// be resolved counts as a match, so that a DNS failure cannot let a denied host in.
pub fn allows_resolving(
    allow: &[HostPattern],
    deny: &[HostPattern],
    addr: IpAddr,
    hostname: Option<&str>,
    resolver: Option<Resolver<'_>>,
) -> bool {
    let client = Client {
        addr: addr.to_canonical(),
        name: hostname.unwrap_or(UNDETERMINED_HOSTNAME).to_ascii_lowercase(),
        resolver,
    };
    if !allow.is_empty() {
        if client.matches_any(allow, false) {
            return true;
        }
        if deny.is_empty() {
            return false;
        }
    }
    deny.is_empty() || !client.matches_any(deny, true)
}

/// Resolves a name with the system resolver, for [`allows_resolving`].
pub fn system_resolver(name: &str) -> Option<Vec<IpAddr>> {
    let addrs = (name, 0u16).to_socket_addrs().ok()?;
    Some(addrs.map(|a| a.ip().to_canonical()).collect())
}

struct Client<'r> {
    addr: IpAddr,
    name: String,
    resolver: Option<Resolver<'r>>,
}

impl Client<'_> {
    fn matches_any(&self, patterns: &[HostPattern], in_deny_list: bool) -> bool {
        patterns.iter().any(|p| self.matches(p, in_deny_list))
    }

    fn matches(&self, pattern: &HostPattern, in_deny_list: bool) -> bool {
        match pattern {
            HostPattern::Address(address) => address.matches(self.addr, in_deny_list),
            HostPattern::Netgroup(_) => false,
            HostPattern::Name(name) => {
                // An empty name means the daemon knows for sure there is none; rsync
                // then skips name matching altogether.
                if self.name.is_empty() {
                    return false;
                }
                if wildcard_match(name, &self.name) {
                    return true;
                }
                let Some(resolve) = self.resolver else {
                    return false;
                };
                if has_wildcard(name) || name.contains([':', '/']) {
                    return false;
                }
                match resolve(name) {
                    Some(addrs) => addrs.iter().any(|a| a.to_canonical() == self.addr),
                    None => in_deny_list,
                }
            }
        }
    }
}

/// Shell-style wildcard matching as rsync uses it for host names and `auth users`:
/// `*` (any run), `?` (one character), `[...]` classes with ranges, `!`/`^` negation
/// and `[:alpha:]`-style names, and `\` quoting the next character. Case-sensitive;
/// callers lower-case both sides where rsync ignores case. Unlike rsync's wildmatch,
/// `*` also crosses `/`, which never occurs in the names matched here.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0usize, 0usize);
    // Where to resume after the last `*`: the pattern just past it, and the text
    // position it has swallowed up to.
    let mut resume: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == '*' {
            while p < pattern.len() && pattern[p] == '*' {
                p += 1;
            }
            resume = Some((p, t));
            continue;
        }
        if p < pattern.len() {
            if let Some(next) = match_one(&pattern, p, text[t]) {
                p = next;
                t += 1;
                continue;
            }
        }
        match resume {
            Some((after_star, swallowed)) => {
                p = after_star;
                t = swallowed + 1;
                resume = Some((after_star, swallowed + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// Matches the single-character element of `pattern` at `p` against `c`; returns the
/// position after the element on a match.
fn match_one(pattern: &[char], p: usize, c: char) -> Option<usize> {
    match pattern[p] {
        '?' => Some(p + 1),
        '\\' if p + 1 < pattern.len() => (pattern[p + 1] == c).then_some(p + 2),
        '[' => {
            let (matched, next) = match_class(pattern, p, c)?;
            matched.then_some(next)
        }
        literal => (literal == c).then_some(p + 1),
    }
}

/// Matches a `[...]` class starting at `open`; returns (matched, position after `]`),
/// or None when the class is never closed (which matches nothing, as in wildmatch).
fn match_class(pattern: &[char], open: usize, c: char) -> Option<(bool, usize)> {
    let mut i = open + 1;
    let negated = matches!(pattern.get(i), Some('!') | Some('^'));
    if negated {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let current = *pattern.get(i)?;
        if current == ']' && !first {
            return Some((matched != negated, i + 1));
        }
        first = false;
        if current == '[' && pattern.get(i + 1) == Some(&':') {
            if let Some(len) = pattern[i + 2..].windows(2).position(|w| w == [':', ']']) {
                let name: String = pattern[i + 2..i + 2 + len].iter().collect();
                matched |= char_in_named_class(&name, c);
                i += 2 + len + 2;
                continue;
            }
        }
        let low = if current == '\\' {
            i += 1;
            *pattern.get(i)?
        } else {
            current
        };
        i += 1;
        if pattern.get(i) == Some(&'-') && pattern.get(i + 1).is_some_and(|&n| n != ']') {
            let mut high = pattern[i + 1];
            i += 2;
            if high == '\\' {
                high = *pattern.get(i)?;
                i += 1;
            }
            matched |= low <= c && c <= high;
        } else {
            matched |= low == c;
        }
    }
}

fn char_in_named_class(name: &str, c: char) -> bool {
    match name {
        "alnum" => c.is_ascii_alphanumeric(),
        "alpha" => c.is_ascii_alphabetic(),
        "blank" => c == ' ' || c == '\t',
        "cntrl" => c.is_ascii_control(),
        "digit" => c.is_ascii_digit(),
        "graph" => c.is_ascii_graphic(),
        "lower" => c.is_ascii_lowercase(),
        "print" => c.is_ascii_graphic() || c == ' ',
        "punct" => c.is_ascii_punctuation(),
        "space" => matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c'),
        "upper" => c.is_ascii_uppercase(),
        "xdigit" => c.is_ascii_hexdigit(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(value: &str) -> Vec<HostPattern> {
        parse_host_list(value).expect("valid list").patterns
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("test address")
    }

    #[test]
    fn the_site_lists_allow_its_network_and_deny_everyone_else() {
        let allow = list("10.10.10.0/24");
        let deny = list("*");
        for (client, expected) in [
            ("10.10.10.1", true),
            ("10.10.10.254", true),
            ("::ffff:10.10.10.7", true),
            ("10.10.11.1", false),
            ("192.168.1.1", false),
            ("::1", false),
            ("::ffff:10.10.11.7", false),
            ("fe80::1", false),
        ] {
            assert_eq!(allows(&allow, &deny, ip(client), None), expected, "{client}");
        }
    }

    #[test]
    fn precedence_follows_the_reference() {
        let net = list("10.0.0.0/8");
        let one = list("10.1.2.3");
        let none: Vec<HostPattern> = Vec::new();
        // Nothing given: everyone.
        assert!(allows(&none, &none, ip("1.2.3.4"), None));
        // Only allow: members only.
        assert!(allows(&net, &none, ip("10.9.9.9"), None));
        assert!(!allows(&net, &none, ip("11.0.0.1"), None));
        // Only deny: everyone but members.
        assert!(!allows(&none, &net, ip("10.9.9.9"), None));
        assert!(allows(&none, &net, ip("11.0.0.1"), None));
        // Both: allow wins, then deny, then allowed.
        assert!(allows(&one, &net, ip("10.1.2.3"), None));
        assert!(!allows(&one, &net, ip("10.1.2.4"), None));
        assert!(allows(&one, &net, ip("11.0.0.1"), None));
    }

    #[test]
    fn address_forms_match_like_the_reference() {
        let table: &[(&str, &str, bool)] = &[
            ("192.168.1.5", "192.168.1.5", true),
            ("192.168.1.5", "192.168.1.6", false),
            ("192.168.0.0/16", "192.168.77.1", true),
            ("192.168.0.0/16", "192.169.0.1", false),
            ("192.168.0.0/255.255.0.0", "192.168.3.4", true),
            ("192.168.0.0/255.255.0.0", "192.167.3.4", false),
            // Non-contiguous masks are bitwise, as in match_binary.
            ("10.0.0.5/255.0.0.255", "10.200.100.5", true),
            ("10.0.0.5/255.0.0.255", "10.200.100.6", false),
            ("0.0.0.0/0", "203.0.113.9", true),
            ("0.0.0.0/0", "2001:db8::1", false),
            ("127.1", "127.0.0.1", true),
            ("010.0.0.1", "8.0.0.1", true),
            ("2001:db8::/32", "2001:db8:ffff::1", true),
            ("2001:db8::/32", "2001:db9::1", false),
            ("2001:db8::1", "2001:db8::1", true),
            ("2001:db8::/ffff:ffff::", "2001:db8:1::1", true),
            ("::/0", "::1", true),
            ("::/0", "127.0.0.1", false),
            // A mapped client is IPv4; an IPv4 pattern written as mapped IPv6 is not.
            ("127.0.0.0/8", "::ffff:127.0.0.1", true),
            ("::ffff:127.0.0.1", "::ffff:127.0.0.1", false),
            ("::ffff:127.0.0.1", "127.0.0.1", false),
            ("::1", "::1", true),
            ("::1", "127.0.0.1", false),
        ];
        for &(pattern, client, expected) in table {
            let allow = list(pattern);
            assert_eq!(allows(&allow, &[], ip(client), None), expected, "{pattern} vs {client}");
        }
    }

    #[test]
    fn lists_split_on_commas_spaces_and_tabs() {
        let allow = list(" 10.0.0.1,10.0.0.2 ,\t10.0.0.3  192.168.0.0/16 ");
        assert_eq!(allow.len(), 4);
        assert!(allows(&allow, &[], ip("10.0.0.3"), None));
        assert!(allows(&allow, &[], ip("192.168.9.9"), None));
        assert!(!allows(&allow, &[], ip("10.0.0.4"), None));
    }

    #[test]
    fn name_patterns_see_the_undetermined_placeholder_without_a_name() {
        let none: Vec<HostPattern> = Vec::new();
        let star = list("*");
        let domain = list("*.example.com");
        let undet = list("undet*");
        assert!(!allows(&none, &star, ip("10.0.0.1"), None));
        assert!(allows(&none, &domain, ip("10.0.0.1"), None));
        assert!(!allows(&none, &undet, ip("10.0.0.1"), None));
        assert!(!allows(&none, &domain, ip("10.0.0.1"), Some("Host.Example.COM")));
        assert!(allows(&domain, &star, ip("10.0.0.1"), Some("a.example.com")));
        assert!(!allows(&domain, &star, ip("10.0.0.1"), Some("a.example.org")));
        // A known-empty name skips name matching, as rsync does.
        assert!(allows(&none, &star, ip("10.0.0.1"), Some("")));
    }

    #[test]
    fn forward_lookups_match_names_and_fail_closed_in_deny_lists() {
        let resolver =
            |name: &str| -> Option<Vec<IpAddr>> { (name == "build.example.com").then(|| vec![ip("10.0.0.9")]) };
        let resolver: Resolver<'_> = &resolver;
        let build = list("build.example.com");
        let gone = list("gone.example.com");
        assert!(allows_resolving(&build, &[], ip("10.0.0.9"), None, Some(resolver)));
        assert!(allows_resolving(&build, &[], ip("::ffff:10.0.0.9"), None, Some(resolver)));
        assert!(!allows_resolving(&build, &[], ip("10.0.0.8"), None, Some(resolver)));
        assert!(!allows_resolving(&[], &gone, ip("10.0.0.8"), None, Some(resolver)));
        assert!(!allows_resolving(&gone, &[], ip("10.0.0.8"), None, Some(resolver)));
        // Without lookups a plain name never matches.
        assert!(!allows(&build, &[], ip("10.0.0.9"), None));
        assert!(allows(&[], &gone, ip("10.0.0.9"), None));
    }

    #[test]
    fn zoned_patterns_refuse_in_both_lists() {
        let zoned = list("fe80::%eth0/64");
        assert!(!allows(&zoned, &[], ip("fe80::1"), None));
        assert!(!allows(&[], &zoned, ip("fe80::1"), None));
        assert!(allows(&[], &zoned, ip("fe81::1"), None));
    }

    #[test]
    fn netgroups_never_match_and_are_noted() {
        let parsed = parse_host_list("@trusted").expect("valid");
        assert_eq!(parsed.patterns, vec![HostPattern::Netgroup("trusted".into())]);
        assert_eq!(parsed.notes.len(), 1);
        assert!(!allows(&parsed.patterns, &[], ip("10.0.0.1"), Some("trusted-host")));
    }

    #[test]
    fn notes_flag_patterns_that_do_not_mean_what_they_say() {
        let notes = |value: &str| parse_host_list(value).expect("valid").notes;
        assert!(notes("10.10.10.0/24 * 2001:db8::/32").is_empty());
        assert!(matches!(notes("127.1")[..], [HostNote::UnusualIpv4 { .. }]));
        assert!(matches!(notes("10.1.2.03")[..], [HostNote::UnusualIpv4 { .. }]));
        assert!(matches!(notes("*.example.com")[..], [HostNote::NameNeverMatches(_)]));
        // Looks like an address range but is a name pattern in rsync too.
        assert!(matches!(notes("10.10.*")[..], [HostNote::NameNeverMatches(_)]));
        assert!(matches!(notes("backup.example.com")[..], [HostNote::NeedsForwardLookup(_)]));
        assert!(matches!(notes("fe80::1%eth0")[..], [HostNote::Zone(_)]));
    }

    #[test]
    fn malformed_addresses_and_masks_are_refused() {
        for bad in [
            "10.0.0.256",
            "1.2.3.4.5",
            "1..2",
            "09.1.1.1",
            "4294967296",
            "1:2:3:zz::",
            "fe80::1%",
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0.0/-1",
            "10.0.0.0/+8",
            "10.0.0.0/ffff::",
            "2001:db8::/129",
            "2001:db8::/255.255.0.0",
        ] {
            assert!(parse_host_list(bad).is_err(), "{bad} should be refused");
        }
        assert_eq!(parse_host_list(" , ,"), Err(HostPatternError::Empty));
        assert_eq!(parse_host_list(""), Err(HostPatternError::Empty));
    }

    #[test]
    fn ipv4_reads_like_getaddrinfo() {
        let read = |s: &str| parse_ipv4_as_getaddrinfo(s).map(|(a, c)| (a.to_string(), c));
        assert_eq!(read("1.2.3.4"), Some(("1.2.3.4".into(), true)));
        assert_eq!(read("0"), Some(("0.0.0.0".into(), false)));
        assert_eq!(read("4294967295"), Some(("255.255.255.255".into(), false)));
        assert_eq!(read("1.16777215"), Some(("1.255.255.255".into(), false)));
        assert_eq!(read("1.16777216"), None);
        assert_eq!(read("1.2.3.0377"), Some(("1.2.3.255".into(), false)));
        assert_eq!(read("1.2.3.0400"), None);
        assert_eq!(read("1.2.3.4."), None);
        assert_eq!(read(".1"), None);
    }

    #[test]
    fn wildcards() {
        let table: &[(&str, &str, bool)] = &[
            ("*", "", true),
            ("*", "anything", true),
            ("a*c", "abbbc", true),
            ("a*c", "abbbd", false),
            ("*.example.com", "x.example.com", true),
            ("*.example.com", "example.com", false),
            ("h?st", "host", true),
            ("h?st", "hst", false),
            ("web[0-9]", "web7", true),
            ("web[0-9]", "weba", false),
            ("web[!0-9]", "weba", true),
            ("web[^0-9]", "web1", false),
            ("[]x]", "]", true),
            ("[[:digit:]]*", "9lives", true),
            ("[[:digit:]]*", "lives", false),
            ("a\\*", "a*", true),
            ("a\\*", "ab", false),
            ("[abc", "a", false),
            ("**a", "bba", true),
            ("*a*b*", "xxaxxbxx", true),
            ("*a*b*", "xxbxxaxx", false),
        ];
        for &(pattern, text, expected) in table {
            assert_eq!(wildcard_match(pattern, text), expected, "{pattern} vs {text}");
        }
    }
}
