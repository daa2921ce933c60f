//! Failed sign-ins per source, the way the site's fail2ban jail treated sshd on this VM:
//! after `failures` failed connections from one source within `window`, that source's new
//! connections are dropped unread for `ban`, while every other source goes on signing in.
//!
//! A source is an IPv4 address, or an IPv6 /64: one host usually holds a whole /64, so
//! counting single IPv6 addresses would let it rotate past any limit.
//!
//! The table is bounded ([`MAX_SOURCES`]): when full, entries whose window and ban are over
//! go first, then the oldest; an attacker spraying addresses can evict its own entries but
//! cannot grow the daemon's memory.
//!
//! Pure: the caller passes the time.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::config::ThrottleConfig;

/// Sources tracked at once: each costs some 64 bytes.
pub const MAX_SOURCES: usize = 65_536;

/// What a source is counted as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Source(u128);

impl Source {
    pub fn of(address: IpAddr) -> Source {
        match address {
            IpAddr::V4(v4) => Source(u128::from(u32::from(v4))),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source(u128::from(u32::from(v4))),
                None => Source((u128::from(v6) & !((1u128 << 64) - 1)) | 1),
            },
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Record {
    first: Instant,
    failures: u32,
    banned_until: Option<Instant>,
}

/// The verdict on a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Admit,
    /// Banned for this much longer.
    Banned(Duration),
}

#[derive(Debug)]
pub struct Throttle {
    config: ThrottleConfig,
    records: HashMap<Source, Record>,
}

impl Throttle {
    pub fn new(config: ThrottleConfig) -> Throttle {
        Throttle { config, records: HashMap::new() }
    }

    /// New limits apply to the failures counted so far (a reload keeps the table).
    pub fn reconfigure(&mut self, config: ThrottleConfig) {
        self.config = config;
    }

    pub fn admit(&mut self, address: IpAddr, now: Instant) -> Admission {
        let source = Source::of(address);
        match self.records.get(&source).and_then(|r| r.banned_until) {
            Some(until) if until > now => Admission::Banned(until - now),
            Some(_) => {
                self.records.remove(&source);
                Admission::Admit
            }
            None => Admission::Admit,
        }
    }

    /// Counts a failed connection; true when this failure starts a ban.
    pub fn failed(&mut self, address: IpAddr, now: Instant) -> bool {
        if self.config.failures == 0 {
            return false;
        }
        if self.records.len() >= MAX_SOURCES {
            self.make_room(now);
        }
        let record =
            self.records.entry(Source::of(address)).or_insert(Record { first: now, failures: 0, banned_until: None });
        if record.banned_until.is_some() {
            return false;
        }
        if now.duration_since(record.first) > self.config.window {
            *record = Record { first: now, failures: 0, banned_until: None };
        }
        record.failures += 1;
        if record.failures >= self.config.failures {
            record.banned_until = Some(now + self.config.ban);
            return true;
        }
        false
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Drops what is over; if the table is still full, the oldest quarter goes at once, so a
    /// spray of new sources costs amortised constant time per failure.
    fn make_room(&mut self, now: Instant) {
        let window = self.config.window;
        self.records.retain(|_, r| match r.banned_until {
            Some(until) => until > now,
            None => now.duration_since(r.first) <= window,
        });
        if self.records.len() >= MAX_SOURCES {
            let mut firsts: Vec<Instant> = self.records.values().map(|r| r.first).collect();
            let quarter = firsts.len() / 4;
            let cutoff = *firsts.select_nth_unstable(quarter).1;
            self.records.retain(|_, r| r.first > cutoff);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ThrottleConfig {
        ThrottleConfig { failures: 3, window: Duration::from_secs(60), ban: Duration::from_secs(600) }
    }

    fn ip(t: &str) -> IpAddr {
        t.parse().unwrap()
    }

    #[test]
    fn a_source_is_banned_after_its_failures_and_others_are_not() {
        let mut t = Throttle::new(config());
        let now = Instant::now();
        assert!(!t.failed(ip("192.0.2.1"), now));
        assert!(!t.failed(ip("192.0.2.1"), now));
        assert!(t.failed(ip("192.0.2.1"), now));
        assert_eq!(t.admit(ip("192.0.2.1"), now + Duration::from_secs(1)), Admission::Banned(Duration::from_secs(599)));
        assert_eq!(t.admit(ip("192.0.2.2"), now), Admission::Admit);
        assert_eq!(t.admit(ip("192.0.2.1"), now + Duration::from_secs(600)), Admission::Admit);
        assert!(t.is_empty(), "an expired ban is forgotten");
    }

    #[test]
    fn failures_outside_the_window_start_over() {
        let mut t = Throttle::new(config());
        let now = Instant::now();
        t.failed(ip("192.0.2.1"), now);
        t.failed(ip("192.0.2.1"), now);
        assert!(!t.failed(ip("192.0.2.1"), now + Duration::from_secs(61)));
        assert_eq!(t.admit(ip("192.0.2.1"), now + Duration::from_secs(61)), Admission::Admit);
    }

    #[test]
    fn an_ipv6_64_is_one_source_and_mapped_v4_is_v4() {
        assert_eq!(Source::of(ip("2001:db8::1")), Source::of(ip("2001:db8::ffff:2")));
        assert_ne!(Source::of(ip("2001:db8::1")), Source::of(ip("2001:db8:0:1::1")));
        assert_eq!(Source::of(ip("::ffff:192.0.2.1")), Source::of(ip("192.0.2.1")));
    }

    #[test]
    fn zero_failures_is_off() {
        let mut t = Throttle::new(ThrottleConfig { failures: 0, ..config() });
        let now = Instant::now();
        for _ in 0..10 {
            assert!(!t.failed(ip("192.0.2.1"), now));
        }
        assert_eq!(t.admit(ip("192.0.2.1"), now), Admission::Admit);
    }

    #[test]
    fn the_table_stays_bounded_under_a_spray() {
        let mut t = Throttle::new(config());
        let start = Instant::now();
        for i in 0..(MAX_SOURCES as u32 * 2) {
            t.failed(IpAddr::V4(i.into()), start + Duration::from_millis(u64::from(i % 1000)));
            assert!(t.len() <= MAX_SOURCES);
        }
    }
}
