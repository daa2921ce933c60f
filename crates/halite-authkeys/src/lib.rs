//! OpenSSH's `authorized_keys` format, as halite-jumpbox reads it: the keys a user may sign
//! in with, and what each line's options allow that key to do.
//!
//! Owns: parsing a file's text into [`Entry`]s (the options of sshd(8)'s "AUTHORIZED_KEYS
//! FILE FORMAT", the key type and its base64 blob), and the decisions those options make —
//! whether a key signs in from an address ([`Entry::admits`]: `from=`, `expiry-time=`) and
//! whether it may open a forward ([`Entry::may_open`]: `restrict`, `no-port-forwarding`,
//! `port-forwarding`, `permitopen=`).
//!
//! Must not: read files, resolve names or look at the clock. The caller passes the text, the
//! client's address and the time; that keeps this crate pure, fuzzable, and testable with
//! vectors taken from what sshd 9.2 does with the same lines.
//!
//! What sshd does, and therefore this crate:
//! - A line that does not parse (an unknown option, a bad `permitopen`, an undecodable key)
//!   is skipped on its own; the rest of the file still counts. [`parse`] returns those lines'
//!   errors beside the entries so the daemon can log them.
//! - Options apply in the order written: `restrict,port-forwarding` forwards, while
//!   `port-forwarding,restrict` does not.
//! - `permitopen` compares the host literally and case-sensitively with what the client asked
//!   for (a name is not resolved to match an address), and `*` stands for any host or port.
//! - `from=` is matched against the client's address only (sshd's default `UseDNS no`): CIDR
//!   blocks, exact addresses and `*`/`?` wildcards over the address's text, `!` negating. A
//!   CIDR block with host bits set is an error that refuses the key, as sshd does.
//! - Options that only mean something for a shell (`command=`, `environment=`, `pty`,
//!   `X11-forwarding`, `agent-forwarding`, `user-rc`, `tunnel=`, `permitlisten=`) are parsed
//!   and kept, so a line that sshd accepts is accepted, but a jump host that never opens a
//!   shell nor listens has nothing to apply them to.

use std::fmt;
use std::net::IpAddr;

use base64::Engine;
use ipnet::IpNet;
use sha2::{Digest, Sha256};

/// Longest line read: an RSA-16384 key with options is under 4 KiB; sshd bounds keys at
/// 16 KiB. A longer line is refused without decoding it.
pub const MAX_LINE: usize = 64 * 1024;

/// Options on one line: far more than any real line, few enough that a hostile file cannot
/// make one line cost much.
pub const MAX_OPTIONS: usize = 256;

/// The key types sshd reads in an `authorized_keys` file.
pub const KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
    "ssh-dss",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("line {line}: longer than {MAX_LINE} bytes")]
    TooLong { line: usize },
    #[error("line {line}: bad options: {reason}")]
    BadOptions { line: usize, reason: String },
    #[error("line {line}: no key after the options")]
    MissingKey { line: usize },
    #[error("line {line}: unknown key type {key_type:?}")]
    UnknownKeyType { line: usize, key_type: String },
    #[error("line {line}: the key is not valid base64 or does not hold a {key_type} key")]
    BadKey { line: usize, key_type: String },
}

/// A host and port a `permitopen` option allows; `None` is `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermitOpen {
    pub host: Option<String>,
    pub port: Option<u16>,
}

impl PermitOpen {
    fn matches(&self, host: &str, port: u16) -> bool {
        self.port.is_none_or(|p| p == port) && self.host.as_deref().is_none_or(|h| h == host)
    }
}

/// A moment given as sshd's `expiry-time` writes it, before a time zone is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CivilTime {
    pub year: i32,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    /// Written with a trailing `Z` or `UTC`; without it sshd reads the time in the system's
    /// zone.
    pub utc: bool,
}

impl CivilTime {
    /// Seconds since the epoch of this date and time read as UTC.
    pub fn as_utc(&self) -> i64 {
        let days = days_from_civil(self.year, self.month, self.day);
        days * 86_400 + i64::from(self.hour * 3600 + self.minute * 60 + self.second)
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i32, month: u32, day: u32) -> i64 {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// One `from=` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FromPattern {
    negated: bool,
    kind: FromKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum FromKind {
    Net(IpNet),
    /// Host bits set under the mask (`10.0.0.1/8`): sshd refuses the key when it meets one.
    BadNet,
    Wildcard(String),
}

/// What a line's options decided, in the order they were written.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Options {
    pub port_forwarding: bool,
    pub agent_forwarding: bool,
    pub x11_forwarding: bool,
    pub pty: bool,
    pub user_rc: bool,
    pub cert_authority: bool,
    pub command: Option<String>,
    pub environment: Vec<String>,
    pub principals: Option<Vec<String>>,
    pub permitopen: Vec<PermitOpen>,
    pub permitlisten: Vec<String>,
    pub tunnel: Option<String>,
    /// Every `expiry-time` of the line: the key expires at the earliest, as sshd keeps it.
    pub expiry: Vec<CivilTime>,
    pub no_touch_required: bool,
    pub verify_required: bool,
    from: Option<Vec<FromPattern>>,
}

impl Options {
    fn permissive() -> Options {
        Options {
            port_forwarding: true,
            agent_forwarding: true,
            x11_forwarding: true,
            pty: true,
            user_rc: true,
            ..Options::default()
        }
    }
}

/// One usable line: its options, its key and the comment after it.
#[derive(Clone, PartialEq, Eq)]
pub struct Entry {
    /// 1-based line number in the file, for logs.
    pub line: usize,
    pub options: Options,
    pub key_type: String,
    /// The key in SSH wire encoding, as decoded from the line's base64.
    pub blob: Vec<u8>,
    pub comment: String,
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("line", &self.line)
            .field("key", &fingerprint(&self.blob))
            .field("options", &self.options)
            .field("comment", &self.comment)
            .finish()
    }
}

/// Why a key that matched a line may not sign in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("line {line}: the key is only for a certificate authority")]
    CertAuthority { line: usize },
    #[error("line {line}: the key is not allowed from {address}")]
    NotFrom { line: usize, address: IpAddr },
    #[error("line {line}: the key expired")]
    Expired { line: usize },
    #[error("line {line}: a security key's touch or PIN cannot be verified (the line needs no-touch-required, without verify-required)")]
    Unverifiable { line: usize },
}

impl Entry {
    /// A grant made outside the file (an OpenSSH user certificate): no option but whether
    /// the key may forward, and line 0.
    pub fn granted(key_type: String, blob: Vec<u8>, comment: String, port_forwarding: bool) -> Entry {
        Entry { line: 0, options: Options { port_forwarding, ..Options::default() }, key_type, blob, comment }
    }

    /// Whether this line lets its key sign in from `address` at `now` (seconds since the
    /// epoch); `local` gives the epoch seconds of an `expiry-time` written without a zone, in
    /// the system's zone (as mktime(3) does, daylight saving included).
    pub fn admits(&self, address: IpAddr, now: i64, local: &dyn Fn(&CivilTime) -> i64) -> Result<(), Refusal> {
        if self.options.cert_authority {
            return Err(Refusal::CertAuthority { line: self.line });
        }
        if let Some(patterns) = &self.options.from {
            if !from_allows(patterns, address) {
                return Err(Refusal::NotFrom { line: self.line, address });
            }
        }
        for expiry in &self.options.expiry {
            let at = if expiry.utc { expiry.as_utc() } else { local(expiry) };
            // sshd refuses once the time is past, not at it.
            if now > at {
                return Err(Refusal::Expired { line: self.line });
            }
        }
        Ok(())
    }

    /// Whether a key signed in through this line may open a forward to `host`:`port` as the
    /// client named it.
    pub fn may_open(&self, host: &str, port: u16) -> bool {
        self.options.port_forwarding
            && (self.options.permitopen.is_empty() || self.options.permitopen.iter().any(|p| p.matches(host, port)))
    }
}

/// What a file held: its usable lines and the errors of the others.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizedKeys {
    pub entries: Vec<Entry>,
    pub errors: Vec<LineError>,
}

impl AuthorizedKeys {
    /// The lines naming the key whose wire encoding is `blob`, in file order.
    pub fn lines_for<'a>(&'a self, blob: &'a [u8]) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries.iter().filter(move |e| e.blob == blob)
    }
}

/// The `SHA256:` fingerprint ssh-keygen -l prints for a key's wire encoding.
pub fn fingerprint(blob: &[u8]) -> String {
    let digest = Sha256::digest(blob);
    format!("SHA256:{}", base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest))
}

/// Parses a whole file's text.
pub fn parse(text: &str) -> AuthorizedKeys {
    let mut out = AuthorizedKeys::default();
    for (index, line) in text.split('\n').enumerate() {
        match parse_line(index + 1, line) {
            Ok(Some(entry)) => out.entries.push(entry),
            Ok(None) => {}
            Err(e) => out.errors.push(e),
        }
    }
    out
}

/// Parses one line; `Ok(None)` for a blank line or a comment.
pub fn parse_line(number: usize, line: &str) -> Result<Option<Entry>, LineError> {
    if line.len() > MAX_LINE {
        return Err(LineError::TooLong { line: number });
    }
    let line = line.strip_suffix('\r').unwrap_or(line).trim_start_matches([' ', '\t']);
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let (options, rest) = if KEY_TYPES.contains(&first_word(line)) {
        (Options::permissive(), line)
    } else {
        let (options, rest) = parse_options(line).map_err(|reason| LineError::BadOptions { line: number, reason })?;
        (options, rest.trim_start_matches([' ', '\t']))
    };
    let key_type = first_word(rest);
    if key_type.is_empty() {
        return Err(LineError::MissingKey { line: number });
    }
    if !KEY_TYPES.contains(&key_type) {
        return Err(LineError::UnknownKeyType { line: number, key_type: key_type.to_owned() });
    }
    let rest = rest[key_type.len()..].trim_start_matches([' ', '\t']);
    let encoded = first_word(rest);
    let comment = rest[encoded.len()..].trim().to_owned();
    let bad_key = || LineError::BadKey { line: number, key_type: key_type.to_owned() };
    let blob = base64::engine::general_purpose::STANDARD.decode(encoded).map_err(|_| bad_key())?;
    if embedded_type(&blob) != Some(key_type.as_bytes()) {
        return Err(bad_key());
    }
    Ok(Some(Entry { line: number, options, key_type: key_type.to_owned(), blob, comment }))
}

fn first_word(text: &str) -> &str {
    text.split([' ', '\t']).next().unwrap_or("")
}

/// The algorithm name a wire-encoded key starts with.
fn embedded_type(blob: &[u8]) -> Option<&[u8]> {
    let len = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?) as usize;
    blob.get(4..4usize.checked_add(len)?)
}

/// Parses the options at the start of `line`, returning them and the text after them.
fn parse_options(line: &str) -> Result<(Options, &str), String> {
    let mut options = Options::permissive();
    let mut rest = line;
    for _ in 0..MAX_OPTIONS {
        let name_len = rest.find(['=', ',', ' ', '\t']).unwrap_or(rest.len());
        let name = &rest[..name_len];
        rest = &rest[name_len..];
        let value = match rest.strip_prefix('=') {
            Some(after) => {
                let (value, after) = quoted(after)?;
                rest = after;
                Some(value)
            }
            None => None,
        };
        apply(&mut options, name, value)?;
        match rest.strip_prefix(',') {
            Some(after) => rest = after,
            None if rest.is_empty() || rest.starts_with([' ', '\t']) => return Ok((options, rest)),
            None => return Err(format!("unexpected text after option {name:?}")),
        }
    }
    Err(format!("more than {MAX_OPTIONS} options"))
}

/// A double-quoted option value (`\"` standing for a quote) and the text after it.
fn quoted(text: &str) -> Result<(String, &str), String> {
    let body = text.strip_prefix('"').ok_or("option value is not quoted")?;
    let mut value = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((value, &body[i + 1..])),
            '\\' if body[i + 1..].starts_with('"') => {
                chars.next();
                value.push('"');
            }
            c => value.push(c),
        }
    }
    Err("missing end quote".to_owned())
}

fn apply(options: &mut Options, name: &str, value: Option<String>) -> Result<(), String> {
    let lower = name.to_ascii_lowercase();
    let flag = |set: &mut bool, on: bool| -> Result<(), String> {
        if value.is_some() {
            return Err(format!("option {name:?} takes no value"));
        }
        *set = on;
        Ok(())
    };
    match lower.as_str() {
        "restrict" => {
            if value.is_some() {
                return Err("option \"restrict\" takes no value".to_owned());
            }
            let kept = std::mem::take(options);
            *options = Options {
                port_forwarding: false,
                agent_forwarding: false,
                x11_forwarding: false,
                pty: false,
                user_rc: false,
                ..kept
            };
            Ok(())
        }
        "cert-authority" => flag(&mut options.cert_authority, true),
        "port-forwarding" => flag(&mut options.port_forwarding, true),
        "no-port-forwarding" => flag(&mut options.port_forwarding, false),
        "agent-forwarding" => flag(&mut options.agent_forwarding, true),
        "no-agent-forwarding" => flag(&mut options.agent_forwarding, false),
        "x11-forwarding" => flag(&mut options.x11_forwarding, true),
        "no-x11-forwarding" => flag(&mut options.x11_forwarding, false),
        "pty" => flag(&mut options.pty, true),
        "no-pty" => flag(&mut options.pty, false),
        "user-rc" => flag(&mut options.user_rc, true),
        "no-user-rc" => flag(&mut options.user_rc, false),
        "no-touch-required" => flag(&mut options.no_touch_required, true),
        "verify-required" => flag(&mut options.verify_required, true),
        _ => {
            let value = value.ok_or_else(|| format!("unknown option {name:?}"))?;
            match lower.as_str() {
                // sshd refuses a line that gives these twice, rather than pick one.
                "command" => once(&mut options.command, "command", value)?,
                "environment" => {
                    let name_ok = value.split_once('=').is_some_and(|(name, _)| {
                        !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    });
                    if !name_ok {
                        return Err(format!("environment {value:?} is not NAME=value"));
                    }
                    options.environment.push(value)
                }
                "principals" => {
                    once(&mut options.principals, "principals", value.split(',').map(str::to_owned).collect())?
                }
                "from" => once(&mut options.from, "from", from_patterns(&value)?)?,
                "permitopen" => options.permitopen.push(permit_open(&value)?),
                "permitlisten" => options.permitlisten.push(value),
                "tunnel" => {
                    if value.parse::<u32>().is_err() && value != "any" {
                        return Err(format!("tunnel {value:?} is not a number"));
                    }
                    options.tunnel = Some(value)
                }
                "expiry-time" => options.expiry.push(expiry_time(&value)?),
                _ => return Err(format!("unknown option {name:?}")),
            }
            Ok(())
        }
    }
}

fn once<T>(slot: &mut Option<T>, name: &str, value: T) -> Result<(), String> {
    if slot.is_some() {
        return Err(format!("multiple {name:?} clauses"));
    }
    *slot = Some(value);
    Ok(())
}

/// `host:port`, `[v6]:port` or `*:*`, as sshd accepts a `permitopen` value.
fn permit_open(value: &str) -> Result<PermitOpen, String> {
    let (host, port) = if let Some(bracketed) = value.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']').ok_or_else(|| format!("permitopen {value:?}: missing ]"))?;
        (host, after.strip_prefix(':').ok_or_else(|| format!("permitopen {value:?}: no port"))?)
    } else {
        value
            .rsplit_once(':')
            .filter(|(h, _)| !h.contains(':'))
            .ok_or_else(|| format!("permitopen {value:?}: not host:port"))?
    };
    if host.is_empty() {
        return Err(format!("permitopen {value:?}: empty host"));
    }
    let port = match port {
        "*" => None,
        p => Some(p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| format!("permitopen {value:?}: bad port"))?),
    };
    Ok(PermitOpen { host: (host != "*").then(|| host.to_owned()), port })
}

fn from_patterns(value: &str) -> Result<Vec<FromPattern>, String> {
    value
        .split(',')
        .map(|item| {
            let (negated, text) = match item.strip_prefix('!') {
                Some(t) => (true, t),
                None => (false, item),
            };
            if text.is_empty() {
                return Err(format!("from {value:?}: empty pattern"));
            }
            let kind = match net_of(text) {
                Some(Some(net)) => FromKind::Net(net),
                Some(None) => FromKind::BadNet,
                None => FromKind::Wildcard(text.to_ascii_lowercase()),
            };
            Ok(FromPattern { negated, kind })
        })
        .collect()
}

/// `Some(Some(net))` for an address or CIDR block, `Some(None)` for a block with host bits
/// set, `None` for anything else (a name or a wildcard).
fn net_of(text: &str) -> Option<Option<IpNet>> {
    if let Ok(addr) = text.parse::<IpAddr>() {
        return Some(Some(IpNet::from(addr)));
    }
    let (addr, len) = text.split_once('/')?;
    let addr: IpAddr = addr.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    let net = IpNet::new(addr, len).ok()?;
    Some((net.network() == addr).then_some(net))
}

fn from_allows(patterns: &[FromPattern], address: IpAddr) -> bool {
    let address = canonical(address);
    let text = address.to_string();
    let mut positive = false;
    for pattern in patterns {
        let hit = match &pattern.kind {
            FromKind::BadNet => return false,
            FromKind::Net(net) => net.contains(&address),
            FromKind::Wildcard(w) => wildcard(w.as_bytes(), text.as_bytes()),
        };
        if hit && pattern.negated {
            return false;
        }
        positive |= hit;
    }
    positive
}

/// An IPv4 client seen on a dual-stack socket is matched as the IPv4 address it is.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

/// sshd's `match_pattern`: `*` any run, `?` any one character; iterative, so a hostile
/// pattern costs time linear in pattern × text, never exponential.
fn wildcard(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// `YYYYMMDD[HHMM[SS]][Z|UTC]`, sshd's `expiry-time` forms.
fn expiry_time(value: &str) -> Result<CivilTime, String> {
    let bad = || format!("expiry-time {value:?}: not YYYYMMDD[HHMM[SS]][Z]");
    let upper = value.to_ascii_uppercase();
    let (digits, utc) = match upper.strip_suffix('Z').or_else(|| upper.strip_suffix("UTC")) {
        Some(d) => (&value[..d.len()], true),
        None => (value, false),
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) || ![8, 12, 14].contains(&digits.len()) {
        return Err(bad());
    }
    let num = |range: std::ops::Range<usize>| digits.get(range).map_or(Ok(0), |s| s.parse::<u32>().map_err(|_| bad()));
    let time = CivilTime {
        year: num(0..4)? as i32,
        month: num(4..6)?,
        day: num(6..8)?,
        hour: num(8..10)?,
        minute: num(10..12)?,
        second: num(12..14)?,
        utc,
    };
    let days_in_month = match time.month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if time.year % 4 == 0 && (time.year % 100 != 0 || time.year % 400 == 0) => 29,
        2 => 28,
        _ => return Err(bad()),
    };
    if time.year < 1970
        || time.day == 0
        || time.day > days_in_month
        || time.hour > 23
        || time.minute > 59
        || time.second > 60
    {
        return Err(bad());
    }
    Ok(time)
}

#[cfg(test)]
mod tests;
