//! Budgets that keep one peer from spending what every peer shares: the rate at which
//! strangers may add keys to `minions_pre/` and how many may wait there ([`NewKeys`]), and
//! the token bucket they and the per-minion event budget are made of ([`TokenBucket`]).
//!
//! Salt has neither: it writes every new key it is sent. A human reviews pending keys, so a
//! site never needs many new ones a second from one address; a flood of sign-ins under fresh
//! ids would otherwise fill the pki dir's disk.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use halite_pki::{KeyState, PkiDir};

/// New pending keys one address (an IPv6 /64) may add per second, after a burst of
/// [`NEW_KEYS_BURST_PER_ADDRESS`]: a VM brings one key; a few NATed behind one address, a few.
pub const NEW_KEYS_PER_SECOND_PER_ADDRESS: f64 = 1.0;
pub const NEW_KEYS_BURST_PER_ADDRESS: f64 = 20.0;
/// Keys that may wait in `minions_pre/` at once; past it new ones are not recorded until an
/// admin accepts, rejects or deletes some. 10,000 keys of at most 16 KiB is 160 MiB of disk.
pub const MAX_PENDING_KEYS: usize = 10_000;
/// Addresses whose budgets are kept; those past it share one.
const MAX_ADDRESSES: usize = 4096;
/// How long a count of `minions_pre/` is trusted (salt-key moves keys out of it meanwhile).
const RECOUNT_AFTER: Duration = Duration::from_secs(1);

/// A token bucket: `rate` tokens a second, at most `burst` saved.
pub(crate) struct TokenBucket {
    tokens: f64,
    rate: f64,
    burst: f64,
    at: Instant,
}

impl TokenBucket {
    pub(crate) fn new(rate: f64, burst: f64, now: Instant) -> TokenBucket {
        TokenBucket { tokens: burst, rate, burst, at: now }
    }

    /// Takes a token if one is there.
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        let refill = now.saturating_duration_since(self.at).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Why a new key was not recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The asking address's budget is spent for now.
    TooFast,
    /// `minions_pre/` holds [`MAX_PENDING_KEYS`].
    Full,
}

/// Whether a stranger's key may be written to `minions_pre/` now.
pub(crate) struct NewKeys {
    state: Mutex<NewKeysState>,
}

struct NewKeysState {
    by_address: HashMap<Option<IpAddr>, TokenBucket>,
    shared: TokenBucket,
    /// Keys in `minions_pre/` when last counted, plus those written since, and when.
    pending: Option<(usize, Instant)>,
}

impl NewKeys {
    pub(crate) fn new(now: Instant) -> NewKeys {
        let shared = TokenBucket::new(NEW_KEYS_PER_SECOND_PER_ADDRESS, NEW_KEYS_BURST_PER_ADDRESS, now);
        NewKeys { state: Mutex::new(NewKeysState { by_address: HashMap::new(), shared, pending: None }) }
    }

    /// Takes a new key's place for `ip`, or says why there is none.
    pub(crate) fn admit(&self, ip: Option<IpAddr>, pki: &PkiDir, now: Instant) -> Result<(), Refusal> {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let pending = match state.pending {
            Some((count, at)) if now.saturating_duration_since(at) < RECOUNT_AFTER && count < MAX_PENDING_KEYS => count,
            // A failed count is taken as full: the write would likely fail too.
            _ => pki.list(KeyState::Pending).map_or(MAX_PENDING_KEYS, |keys| keys.len()),
        };
        state.pending = Some((pending, now));
        if pending >= MAX_PENDING_KEYS {
            return Err(Refusal::Full);
        }
        let key = halite_ratelog::host_key(ip);
        let tracked = state.by_address.len() < MAX_ADDRESSES || state.by_address.contains_key(&key);
        let bucket = if tracked {
            state
                .by_address
                .entry(key)
                .or_insert_with(|| TokenBucket::new(NEW_KEYS_PER_SECOND_PER_ADDRESS, NEW_KEYS_BURST_PER_ADDRESS, now))
        } else {
            &mut state.shared
        };
        if !bucket.take(now) {
            return Err(Refusal::TooFast);
        }
        state.pending = Some((pending + 1, now));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_refills_at_its_rate_up_to_its_burst() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(2.0, 3.0, t0);
        assert!((0..3).all(|_| b.take(t0)));
        assert!(!b.take(t0));
        assert!(b.take(t0 + Duration::from_millis(500)));
        assert!(!b.take(t0 + Duration::from_millis(500)));
        let later = t0 + Duration::from_secs(100);
        assert_eq!((0..10).filter(|_| b.take(later)).count(), 3);
    }

    #[test]
    fn each_address_has_its_budget_and_the_dir_a_ceiling() {
        let dir = tempfile::tempdir().expect("temp dir");
        let pki = PkiDir::open(dir.path().join("pki")).expect("pki dir");
        let keys = NewKeys::new(Instant::now());
        let t0 = Instant::now();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let burst = NEW_KEYS_BURST_PER_ADDRESS as usize;
        assert_eq!((0..burst + 5).filter(|_| keys.admit(Some(a), &pki, t0).is_ok()).count(), burst);
        assert_eq!(keys.admit(Some(a), &pki, t0), Err(Refusal::TooFast));
        // Another address is not starved by the first.
        assert_eq!(keys.admit(Some(b), &pki, t0), Ok(()));
        // The ceiling counts what the dir holds.
        keys.state.lock().unwrap().pending = Some((MAX_PENDING_KEYS, t0));
        assert_eq!(keys.admit(Some(b), &pki, t0 + Duration::from_secs(5)), Ok(()), "recounted: the dir is empty");
        keys.state.lock().unwrap().pending = Some((MAX_PENDING_KEYS, t0 + Duration::from_secs(5)));
        assert_eq!(keys.admit(Some(b), &pki, t0 + Duration::from_secs(5)), Ok(()), "a full count is always recounted");
    }
}
