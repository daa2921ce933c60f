//! Response rate limiting over UDP, as Knot's and NSD's: a client's address prefix may be
//! sent so many replies per second; past it, replies are dropped, except every `slip`-th,
//! which goes out truncated (TC set, no records) so that a real client behind a spoofed
//! flood still gets its answer over TCP, where no address can be forged. Whoever forges a
//! victim's address to make halite-dns flood it gets a few small replies per second through,
//! not an amplifier.
//!
//! Sans-IO: the caller passes `now`. The table of prefixes is bounded; prefixes past the
//! bound share one bucket, so a flood from many addresses cannot grow memory.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

/// What to do with a UDP reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Send,
    /// Send it truncated: TC set, the question only.
    Slip,
    Drop,
}

/// Prefixes tracked at once (each a few dozen bytes).
pub const MAX_PREFIXES: usize = 65_536;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
    limited: u64,
}

/// Per-prefix token buckets of replies.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    slip: u64,
    v4_prefix: u8,
    v6_prefix: u8,
    buckets: HashMap<IpAddr, Bucket>,
    overflow: Option<Bucket>,
    /// When full buckets were last swept out of a full table: at most once a second, so a
    /// flood of new prefixes costs a sweep per second, not one per packet.
    last_sweep: Option<Instant>,
}

impl RateLimiter {
    /// `rate` replies per second per prefix (with a burst of as many), every `slip`-th
    /// limited reply sent truncated (0: never), prefixes of `v4_prefix` and `v6_prefix` bits.
    pub fn new(rate: u32, slip: u32, v4_prefix: u8, v6_prefix: u8) -> RateLimiter {
        RateLimiter {
            rate: f64::from(rate),
            burst: f64::from(rate.max(1)),
            slip: u64::from(slip),
            v4_prefix: v4_prefix.min(32),
            v6_prefix: v6_prefix.min(128),
            buckets: HashMap::new(),
            overflow: None,
            last_sweep: None,
        }
    }

    fn prefix(&self, client: IpAddr) -> IpAddr {
        match client.to_canonical() {
            IpAddr::V4(v4) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.v4_prefix)).unwrap_or(0);
                IpAddr::from((u32::from(v4) & mask).to_be_bytes())
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.v6_prefix)).unwrap_or(0);
                IpAddr::from((u128::from(v6) & mask).to_be_bytes())
            }
        }
    }

    /// Whether a reply to `client` goes out at `now`. `own_bucket`: the client's address is
    /// its own prefix (the site's VMs, which share one /24: one busy VM must not spend the
    /// others' replies).
    pub fn check(&mut self, client: IpAddr, own_bucket: bool, now: Instant) -> Verdict {
        let prefix = if own_bucket { client.to_canonical() } else { self.prefix(client) };
        let sweep_due = self.last_sweep.is_none_or(|last| now.saturating_duration_since(last).as_secs() >= 1);
        if !self.buckets.contains_key(&prefix) && self.buckets.len() >= MAX_PREFIXES && sweep_due {
            self.last_sweep = Some(now);
            // Buckets that have refilled hold nothing worth keeping.
            let (rate, burst) = (self.rate, self.burst);
            self.buckets.retain(|_, b| b.tokens + now.saturating_duration_since(b.last).as_secs_f64() * rate < burst);
        }
        let fresh = Bucket { tokens: self.burst, last: now, limited: 0 };
        let bucket = if self.buckets.len() < MAX_PREFIXES || self.buckets.contains_key(&prefix) {
            self.buckets.entry(prefix).or_insert(fresh)
        } else {
            self.overflow.get_or_insert(fresh)
        };
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Verdict::Send;
        }
        bucket.limited += 1;
        if self.slip > 0 && bucket.limited % self.slip == 0 {
            Verdict::Slip
        } else {
            Verdict::Drop
        }
    }

    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_prefix_gets_its_rate_then_every_slipth_reply_truncated() {
        let mut rrl = RateLimiter::new(10, 2, 24, 56);
        let t0 = Instant::now();
        let verdicts: Vec<Verdict> =
            (0..20).map(|i| rrl.check(IpAddr::from([10, 0, 0, (i % 3) as u8]), false, t0)).collect();
        assert!(verdicts[..10].iter().all(|v| *v == Verdict::Send));
        assert_eq!(verdicts[10..].iter().filter(|v| **v == Verdict::Slip).count(), 5);
        assert_eq!(verdicts[10..].iter().filter(|v| **v == Verdict::Drop).count(), 5);
        // Another /24 has its own budget; time refills this one.
        assert_eq!(rrl.check(IpAddr::from([10, 0, 1, 1]), false, t0), Verdict::Send);
        // A client with its own bucket is not the /24's.
        assert_eq!(rrl.check(IpAddr::from([10, 0, 0, 9]), true, t0), Verdict::Send);
        assert_eq!(rrl.check(IpAddr::from([10, 0, 0, 1]), false, t0 + Duration::from_millis(200)), Verdict::Send);
        // IPv4-mapped is IPv4.
        assert_eq!(rrl.prefix("::ffff:10.0.0.77".parse().unwrap()), IpAddr::from([10, 0, 0, 0]));
        assert_eq!(rrl.prefix("2001:db8:1:2:3::1".parse().unwrap()), "2001:db8:1::".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn a_flood_from_many_addresses_shares_one_bucket_past_the_table() {
        let mut rrl = RateLimiter::new(5, 0, 32, 128);
        let t0 = Instant::now();
        for i in 0..(MAX_PREFIXES as u32 + 1000) {
            rrl.check(IpAddr::from(i.to_be_bytes()), false, t0);
        }
        assert!(rrl.tracked() <= MAX_PREFIXES);
        let overflowed =
            (0..10).filter(|i| rrl.check(IpAddr::from([250, 0, 0, *i]), false, t0) == Verdict::Send).count();
        assert!(overflowed <= 5, "the shared bucket holds its rate: {overflowed}");
    }
}
