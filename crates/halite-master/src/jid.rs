//! Job ids: `%Y%m%d%H%M%S%f` in UTC, 20 digits, strictly increasing within this master so
//! two publishes in the same microsecond still get distinct jids.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static LAST_MICROS: AtomicU64 = AtomicU64::new(0);

/// Microseconds since the epoch by the system clock.
pub fn now_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

pub fn new_jid() -> String {
    let now = now_micros();
    let mut last = LAST_MICROS.load(Ordering::Relaxed);
    let micros = loop {
        let candidate = now.max(last + 1);
        match LAST_MICROS.compare_exchange(last, candidate, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => break candidate,
            Err(seen) => last = seen,
        }
    };
    format_jid(micros)
}

/// Formats microseconds since the epoch as a jid.
pub fn format_jid(micros: u64) -> String {
    let t = Civil::from_micros(micros);
    format!("{:04}{:02}{:02}{:02}{:02}{:02}{:06}", t.year, t.month, t.day, t.hour, t.minute, t.second, t.micros)
}

/// An event's `_stamp`: Python's `datetime.utcnow().isoformat()`, which leaves out the
/// fraction when it is zero.
pub fn iso_stamp(micros: u64) -> String {
    let t = Civil::from_micros(micros);
    let base = format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}", t.year, t.month, t.day, t.hour, t.minute, t.second);
    if t.micros == 0 {
        base
    } else {
        format!("{base}.{:06}", t.micros)
    }
}

/// A UTC calendar time.
struct Civil {
    year: i64,
    month: i64,
    day: i64,
    hour: u64,
    minute: u64,
    second: u64,
    micros: u64,
}

impl Civil {
    /// Civil-from-days (proleptic Gregorian), as Howard Hinnant's date algorithms do it.
    fn from_micros(micros: u64) -> Civil {
        let secs = micros / 1_000_000;
        let frac = micros % 1_000_000;
        let days = (secs / 86_400) as i64;
        let rem = secs % 86_400;
        let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        Civil { year, month, day, hour: h, minute: m, second: s, micros: frac }
    }
}

/// Salt's `is_jid`: 20 digits, optionally followed by `_<suffix>`. Salt takes any suffix;
/// here it is letters, digits, `_` and `-` only, since a jid names files and directories
/// (`publish_auth/<jid>`, Salt's job cache) and arrives from minions.
pub fn is_jid(jid: &str) -> bool {
    let (digits, rest) = jid.split_at(jid.len().min(20));
    digits.len() == 20
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (rest.is_empty()
            || (rest.starts_with('_') && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_salt() {
        // 2024-01-01T12:00:00Z
        assert_eq!(format_jid(1_704_110_400_000_000), "20240101120000000000");
        // 2000-02-29T23:59:59.999999Z (leap day)
        assert_eq!(format_jid(951_868_799_999_999), "20000229235959999999");
    }

    #[test]
    fn strictly_increasing() {
        let a = new_jid();
        let b = new_jid();
        assert!(b > a && is_jid(&a) && is_jid(&b));
        assert!(!is_jid("2024") && is_jid("20240101120000000000_42"));
        assert!(!is_jid("20240101120000000000_/../x") && !is_jid("20240101120000000000_a.b"));
    }
}
