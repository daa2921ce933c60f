//! Job ids: `%Y%m%d%H%M%S%f` in UTC, 20 digits, strictly increasing within this master so
//! two publishes in the same microsecond still get distinct jids.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static LAST_MICROS: AtomicU64 = AtomicU64::new(0);

pub fn new_jid() -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0);
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

/// Formats microseconds since the epoch as a jid (civil-from-days, proleptic Gregorian).
pub fn format_jid(micros: u64) -> String {
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
    format!("{year:04}{month:02}{day:02}{h:02}{m:02}{s:02}{frac:06}")
}

/// Salt's `is_jid`: 20 digits, optionally followed by `_<suffix>`.
pub fn is_jid(jid: &str) -> bool {
    let (digits, rest) = jid.split_at(jid.len().min(20));
    digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()) && (rest.is_empty() || rest.starts_with('_'))
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
    }
}
