//! Warnings about what network peers send, rate-limited per peer and per kind, and peer
//! bytes made short and safe before they reach a log line.
//!
//! Owns: the budget of log lines a peer can cause ([`Limiter`]: so many lines per kind and
//! peer address per window, the rest counted and reported in one summary line), and
//! [`shown`], the only way peer-supplied text or bytes should enter a log line.
//!
//! Must not: decide whether a request is refused (callers do), do I/O beyond emitting
//! `tracing` events, or hold memory that a peer can grow (the number of tracked keys is
//! capped; peers past the cap share one budget per kind).
//!
//! Why: a hostile peer that can make the master log 100 bytes per 2-byte message can fill
//! the disk and bury the lines an operator needs. Every warning caused by peer input goes
//! through [`Limiter::admit`] (usually through [`peer_warn!`]).

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

/// Lines of one kind from one peer address per window before the rest are only counted.
pub const LINES_PER_WINDOW: u32 = 5;
/// The window after which a peer's budget is renewed and its suppressed lines summarised.
pub const WINDOW: Duration = Duration::from_secs(10);
/// Peer-and-kind pairs tracked at once; a flood from many addresses shares the overflow
/// budget rather than growing the table.
pub const MAX_TRACKED: usize = 4096;
/// Bytes of peer data a log line shows before it says how many more there were.
pub const SHOWN_BYTES: usize = 64;

/// The process-wide limiter every crate of the master logs peer input through.
pub static PEERS: LazyLock<Limiter> = LazyLock::new(|| Limiter::new(LINES_PER_WINDOW, WINDOW, MAX_TRACKED));

/// Per (kind, peer address) budgets of log lines.
pub struct Limiter {
    lines: u32,
    window: Duration,
    max_tracked: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    slots: HashMap<(&'static str, Option<IpAddr>), Slot>,
    /// One per kind, shared by the addresses that arrived once `slots` was full: a flood from
    /// many addresses spends that kind's overflow budget, not every kind's.
    overflow: HashMap<&'static str, Slot>,
}

/// The address a budget is kept for: an IPv4-mapped IPv6 address is its IPv4 address (a
/// dual-stack socket sees both), and an IPv6 address stands for its /64, which one host
/// usually holds whole (rotating addresses inside it buys no new budgets).
pub fn host_key(peer: Option<IpAddr>) -> Option<IpAddr> {
    match peer? {
        IpAddr::V4(v4) => Some(IpAddr::V4(v4)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => Some(IpAddr::V4(v4)),
            None => Some(IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1)))),
        },
    }
}

#[derive(Clone, Copy)]
struct Slot {
    since: Instant,
    logged: u32,
    suppressed: u64,
}

impl Slot {
    fn new(now: Instant) -> Slot {
        Slot { since: now, logged: 0, suppressed: 0 }
    }

    /// Admits a line, renewing the window first; on admission, how many were suppressed
    /// in the window before.
    fn admit(&mut self, now: Instant, window: Duration, lines: u32) -> Option<u64> {
        let mut carried = 0;
        if now.duration_since(self.since) >= window {
            carried = self.suppressed;
            *self = Slot::new(now);
        }
        if self.logged < lines {
            self.logged += 1;
            Some(carried)
        } else {
            self.suppressed += 1;
            None
        }
    }
}

/// Lines that were suppressed in a window that has ended: what [`Limiter::expired`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppressed {
    pub kind: &'static str,
    /// `None` for the overflow budget shared by peers past [`MAX_TRACKED`], or for lines
    /// that have no peer address.
    pub peer: Option<IpAddr>,
    pub count: u64,
}

impl Limiter {
    pub fn new(lines: u32, window: Duration, max_tracked: usize) -> Limiter {
        Limiter { lines, window, max_tracked, state: Mutex::new(State::default()) }
    }

    /// Whether a line of `kind` caused by `peer` may be logged now. `Some(n)`: log it, and
    /// say that `n` lines of the same kind and peer were suppressed before it (0 usually).
    pub fn admit(&self, kind: &'static str, peer: Option<IpAddr>) -> Option<u64> {
        self.admit_at(kind, peer, Instant::now())
    }

    pub fn admit_at(&self, kind: &'static str, peer: Option<IpAddr>, now: Instant) -> Option<u64> {
        // A poisoned lock only means another thread panicked while logging: keep counting.
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let State { slots, overflow } = &mut *state;
        let full = slots.len() >= self.max_tracked;
        let peer = host_key(peer);
        let slot = match slots.get_mut(&(kind, peer)) {
            Some(slot) => slot,
            None if full => overflow.entry(kind).or_insert_with(|| Slot::new(now)),
            None => slots.entry((kind, peer)).or_insert_with(|| Slot::new(now)),
        };
        slot.admit(now, self.window, self.lines)
    }

    /// Forgets the budgets whose window has ended, returning the ones that had suppressed
    /// lines, so a caller on a timer can write the summary nobody else would have written
    /// (the peer stopped before its next admitted line).
    pub fn expired(&self, now: Instant) -> Vec<Suppressed> {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut out = Vec::new();
        let window = self.window;
        state.slots.retain(|&(kind, peer), slot| {
            let ended = now.duration_since(slot.since) >= window;
            if ended && slot.suppressed > 0 {
                out.push(Suppressed { kind, peer, count: slot.suppressed });
            }
            !ended
        });
        state.overflow.retain(|&kind, slot| {
            let ended = now.duration_since(slot.since) >= window;
            if ended && slot.suppressed > 0 {
                out.push(Suppressed { kind, peer: None, count: slot.suppressed });
            }
            !ended
        });
        out
    }

    /// Logs one summary line per budget that ended with lines suppressed. Call it every
    /// second or so.
    pub fn flush(&self) {
        for s in self.expired(Instant::now()) {
            match s.peer {
                Some(peer) => tracing::warn!(kind = s.kind, %peer, suppressed = s.count, "similar warnings suppressed"),
                None => tracing::warn!(kind = s.kind, suppressed = s.count, "similar warnings suppressed"),
            }
        }
    }
}

/// A warning caused by a peer's input, through [`PEERS`]: at most [`LINES_PER_WINDOW`] per
/// kind and peer address per [`WINDOW`]; the line that follows a suppressed run carries
/// `suppressed = n`.
///
/// `peer_warn!("kind", Some(ip), field = value, "message")`
#[macro_export]
macro_rules! peer_warn {
    ($kind:expr, $peer:expr, $($rest:tt)+) => {{
        let peer: Option<std::net::IpAddr> = $peer;
        if let Some(suppressed) = $crate::PEERS.admit($kind, peer) {
            match peer {
                Some(peer) => $crate::tracing::warn!(kind = $kind, %peer, suppressed, $($rest)+),
                None => $crate::tracing::warn!(kind = $kind, suppressed, $($rest)+),
            }
        }
    }};
}

/// An error of the process's own (a full disk, a failing store) that every request can meet
/// at once: at most [`LINES_PER_WINDOW`] lines per kind per [`WINDOW`], the rest counted in
/// the summary, so one cause cannot fill the log.
#[macro_export]
macro_rules! limited_error {
    ($kind:expr, $($rest:tt)+) => {{
        if let Some(suppressed) = $crate::PEERS.admit($kind, None) {
            $crate::tracing::error!(kind = $kind, suppressed, $($rest)+);
        }
    }};
}

#[doc(hidden)]
pub use tracing;

/// Peer-supplied bytes as a log line may show them: at most [`SHOWN_BYTES`], in double quotes,
/// control characters, `"` and `\` escaped as Rust escapes them and bytes that are not UTF-8
/// as `\xNN`, then how many bytes were left out.
pub fn shown(data: &(impl AsRef<[u8]> + ?Sized)) -> Shown<'_> {
    shown_up_to(data, SHOWN_BYTES)
}

/// [`shown`] with room for `max` bytes: for text an operator needs whole when it is honest
/// (a pillar render error), which a peer can still make long or full of control characters.
pub fn shown_up_to(data: &(impl AsRef<[u8]> + ?Sized), max: usize) -> Shown<'_> {
    Shown { data: data.as_ref(), max }
}

pub struct Shown<'a> {
    data: &'a [u8],
    max: usize,
}

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let head = &self.data[..self.data.len().min(self.max)];
        f.write_str("\"")?;
        for chunk in head.utf8_chunks() {
            for c in chunk.valid().chars() {
                // Control characters would start a forged line or drive a terminal; a quote
                // or backslash would end or bend the quoted value. Text stays readable.
                if c.is_control() || c == '"' || c == '\\' {
                    write!(f, "{}", c.escape_default())?;
                } else {
                    f.write_fmt(format_args!("{c}"))?;
                }
            }
            for byte in chunk.invalid() {
                write!(f, "\\x{byte:02x}")?;
            }
        }
        f.write_str("\"")?;
        if self.data.len() > head.len() {
            write!(f, "…(+{} bytes)", self.data.len() - head.len())?;
        }
        Ok(())
    }
}

impl fmt::Debug for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([127, 0, 0, last]))
    }

    #[test]
    fn a_peer_gets_its_budget_then_a_count() {
        let limiter = Limiter::new(2, Duration::from_secs(10), 16);
        let t0 = Instant::now();
        assert_eq!(limiter.admit_at("frame", ip(1), t0), Some(0));
        assert_eq!(limiter.admit_at("frame", ip(1), t0), Some(0));
        for _ in 0..1000 {
            assert_eq!(limiter.admit_at("frame", ip(1), t0), None);
        }
        // Other peers and other kinds have budgets of their own.
        assert_eq!(limiter.admit_at("frame", ip(2), t0), Some(0));
        assert_eq!(limiter.admit_at("cmd", ip(1), t0), Some(0));
        // The next window's first line says how many were dropped.
        let later = t0 + Duration::from_secs(11);
        assert_eq!(limiter.admit_at("frame", ip(1), later), Some(1000));
        assert_eq!(limiter.admit_at("frame", ip(1), later), Some(0));
    }

    #[test]
    fn ended_windows_are_summarised_once_and_forgotten() {
        let limiter = Limiter::new(1, Duration::from_secs(10), 16);
        let t0 = Instant::now();
        limiter.admit_at("frame", ip(1), t0);
        limiter.admit_at("frame", ip(1), t0);
        limiter.admit_at("frame", ip(1), t0);
        limiter.admit_at("quiet", ip(2), t0);
        assert!(limiter.expired(t0 + Duration::from_secs(5)).is_empty());
        let ended = limiter.expired(t0 + Duration::from_secs(10));
        assert_eq!(ended, vec![Suppressed { kind: "frame", peer: ip(1), count: 2 }]);
        assert!(limiter.expired(t0 + Duration::from_secs(20)).is_empty());
        assert_eq!(limiter.state.lock().unwrap().slots.len(), 0);
    }

    #[test]
    fn many_peers_share_one_overflow_budget() {
        let limiter = Limiter::new(1, Duration::from_secs(10), 4);
        let t0 = Instant::now();
        let admitted = (0..=255u8).filter(|n| limiter.admit_at("frame", ip(*n), t0).is_some()).count();
        // Four tracked peers, one line from the overflow budget for all the others.
        assert_eq!(admitted, 5);
        assert_eq!(limiter.state.lock().unwrap().slots.len(), 4);
        // Another kind still has its own overflow line.
        assert!(limiter.admit_at("auth refused", ip(200), t0).is_some());
        let ended = limiter.expired(t0 + Duration::from_secs(10));
        assert!(ended.contains(&Suppressed { kind: "frame", peer: None, count: 251 }), "{ended:?}");
    }

    #[test]
    fn one_host_is_one_budget_however_it_writes_its_address() {
        let limiter = Limiter::new(1, Duration::from_secs(10), 16);
        let t0 = Instant::now();
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert!(limiter.admit_at("frame", Some(v4), t0).is_some());
        assert!(limiter.admit_at("frame", Some(mapped), t0).is_none());
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(limiter.admit_at("frame", Some(a), t0).is_some());
        assert!(limiter.admit_at("frame", Some(b), t0).is_none(), "the same /64");
        assert!(limiter.admit_at("frame", Some(other), t0).is_some(), "another /64");
    }

    #[test]
    fn shown_is_short_and_escaped() {
        assert_eq!(shown("web1").to_string(), "\"web1\"");
        assert_eq!(shown(b"a\nb\x00\xff\"'").to_string(), "\"a\\nb\\u{0}\\xff\\\"'\"");
        assert_eq!(shown("caf\u{e9} \u{1b}[31m").to_string(), "\"caf\u{e9} \\u{1b}[31m\"");
        let long = "x".repeat(1000);
        let text = shown(&long).to_string();
        assert!(text.ends_with("…(+936 bytes)"), "{text}");
        assert!(text.len() < SHOWN_BYTES + 32);
    }
}
